"""What every command shares on its way out: the JSON envelope, the human renderer, -q/-v/--color, error reports.

A command calls `c.emit(result, render)` once. With `--json` that prints
`{"version": 1, "command": ..., "ok": ..., "result": ..., "error": null}` on stdout; otherwise `render()` draws the
report on `c.console`, a plain console (`table.py`) that never cuts a word and costs no rich import. Errors go
through `error_envelope` in `cli.main`, so a script reading stdout gets JSON whatever happened, with the same exit
code a person would see. The options `--json`, `-q`, `-v` and `--color` are accepted before the subcommand and
after it, on every command, including ones other modules register later (`PatchqGroup` adds them).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

from .table import Table, Text, paint, parse_markup, render_table

if TYPE_CHECKING:                  # neither is imported at run time before a command needs it
    from rich.console import Console as RichConsole

    from .txn import Txn
    from .workspace import Workspace

ENVELOPE_VERSION = 1
COLOR_CHOICES = ("auto", "always", "never")


# ---- JSON ------------------------------------------------------------------------------------------------------

def plain(value: Any) -> Any:
    """Dataclasses, enums, paths and tuples as JSON-ready data (dataclass properties `ok`/`stopped` included)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        for name in ("ok", "stopped"):
            attr = getattr(type(value), name, None)
            if isinstance(attr, property):
                out[name] = getattr(value, name)
        return out
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def to_json(value: Any) -> str:
    import json  # only for --json output: not on every command's start-up
    return json.dumps(plain(value), indent=2, sort_keys=False)


def ok_of(result: Any) -> bool:
    """A report's own verdict: its `ok`, every `ok` of a dict's values, or True for plain data."""
    if isinstance(result, dict):
        return all(ok_of(v) for v in result.values() if v is not None)
    value = getattr(result, "ok", True)
    return bool(value)


def envelope(command: str, *, ok: bool, result: Any = None, error: dict[str, Any] | None = None) -> str:
    """The one JSON envelope, as printed: a command's report (`Context.emit`) and an error (`error_envelope`)."""
    import json
    doc = {"version": ENVELOPE_VERSION, "command": command, "ok": ok, "result": plain(result), "error": error}
    return json.dumps(doc, indent=2)


def error_envelope(command: str, message: str, *, exit_code: int, kind: str, path: str | None = None,
                   line: int | None = None, hint: str | None = None) -> str:
    error = {"kind": kind, "message": message, "path": path, "line": line, "hint": hint, "exit_code": exit_code}
    return envelope(command, ok=False, error=error)


# ---- the console -----------------------------------------------------------------------------------------------

def want_color(choice: str, stream: TextIO) -> bool:
    if choice == "always":
        return True
    if choice == "never" or os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return _isatty(stream)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def terminal_width(stream: TextIO) -> int | None:
    """The terminal's columns; None (no limit) when piped, so nothing a script reads is ever wrapped."""
    forced = os.environ.get("PATCHQ_WIDTH")
    if forced and forced.isdigit():
        return int(forced)
    if not _isatty(stream):
        return None
    import shutil
    return max(20, shutil.get_terminal_size((80, 24)).columns)


class Console:
    """Prints markup strings, `table.Text` and `table.Table`; anything else (a rich renderable) goes to rich."""

    def __init__(self, stream: TextIO | None = None, *, color: bool = False, width: int | None = None) -> None:
        self._stream = stream
        self.color = color
        self.width = width
        self._rich: RichConsole | None = None

    @property
    def file(self) -> TextIO:
        return self._stream or sys.stdout

    def print(self, *objects: Any, sep: str = " ", end: str = "\n", style: str | None = None, markup: bool = True,
              **_: Any) -> None:
        """Like rich's print: markup strings, `Text`, `Table`; `markup=False` prints strings as they are."""
        parts = []
        for obj in objects:
            if isinstance(obj, Table):
                parts.append("\n".join(render_table(obj, self.width, self.color)))
            elif isinstance(obj, Text):
                parts.append(paint(obj.segments(), self.color))
            elif isinstance(obj, str):
                segs = parse_markup(obj) if markup else [(obj, "")]
                if style:
                    segs = [(t, f"{style} {s}".strip()) for t, s in segs]
                parts.append(paint(segs, self.color))
            elif obj is None:
                continue
            else:
                self._flush_to_rich(parts, obj, sep, end)
                return
        self.file.write(sep.join(parts) + end)
        self.file.flush()

    def line(self, text: str = "") -> None:
        """A line printed as is: no markup, for paths and commands that may hold brackets."""
        self.file.write(text + "\n")

    def _flush_to_rich(self, parts: list[str], obj: Any, sep: str, end: str) -> None:
        if parts:
            self.file.write(sep.join(parts) + sep)
        self.rich().print(obj, end=end)

    def rich(self) -> RichConsole:
        """A real rich console on the same stream, made on first use (rich costs ~100 ms to import)."""
        if self._rich is None:
            from rich.console import Console as RichConsole
            self._rich = RichConsole(file=self.file, highlight=False, soft_wrap=True,
                                     color_system="standard" if self.color else None,
                                     width=self.width or 10_000, no_color=not self.color)
        return self._rich

    def __getattr__(self, name: str) -> Any:      # rule(), status(), log() ... of rich, for commands that use them
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.rich(), name)


# ---- the per-invocation context ----------------------------------------------------------------------------------

@dataclasses.dataclass
class Context:
    """What a command needs besides its own options: the workspace, the output mode and the console."""

    workspace_opt: str | None = None
    json: bool = False
    quiet: bool = False
    verbose: int = 0
    color_choice: str = "auto"
    command: str = ""
    emitted: bool = False
    _console: Console | None = dataclasses.field(default=None, repr=False)
    _err: Console | None = dataclasses.field(default=None, repr=False)

    def root(self) -> Path:
        from .workspace import find_workspace
        if self.workspace_opt and (Path(self.workspace_opt) / "pins.lock").exists():
            return Path(self.workspace_opt).resolve()
        return find_workspace(Path(self.workspace_opt) if self.workspace_opt else None)

    def ws(self) -> Workspace:
        """The workspace, read unlocked: for commands that only list it."""
        from .txn import load_unlocked
        return load_unlocked(self.root())

    @contextlib.contextmanager
    def txn(self, operation: str) -> Iterator[tuple[Workspace, Txn]]:
        """`(ws, t)` of `txn.workspace_txn`: the workspace loaded under the exclusive lock, and the transaction its
        changes are staged on, committed when the block ends."""
        from .txn import workspace_txn
        with workspace_txn(self.root(), operation) as pair:
            yield pair

    @contextlib.contextmanager
    def reading(self, operation: str) -> Iterator[Workspace]:
        """The workspace loaded under the shared lock, for a command that reads it consistently."""
        from .txn import workspace_read
        with workspace_read(self.root(), operation) as ws:
            yield ws

    @property
    def color(self) -> bool:
        return want_color(self.color_choice, sys.stdout)

    @property
    def console(self) -> Console:
        if self._console is None:
            self._console = Console(color=self.color, width=terminal_width(sys.stdout))
        return self._console

    @property
    def err(self) -> Console:
        """stderr, for notes and progress: stdout stays the report alone."""
        if self._err is None:
            self._err = Console(sys.stderr, color=want_color(self.color_choice, sys.stderr),
                                width=terminal_width(sys.stderr))
        return self._err

    def emit(self, result: Any, render: Callable[[], Any] | None = None, *, ok: bool | None = None,
             command: str | None = None) -> None:
        """The one way a command reports: the JSON envelope with --json, else `render()` on the console."""
        self.emitted = True
        if self.json:
            click.echo(envelope(command or self.command, ok=ok_of(result) if ok is None else ok, result=result))
        elif render is not None:
            render()

    def note(self, text: str) -> None:
        """Advice for people (`try: ...`): not in JSON, not with -q."""
        if not self.json and not self.quiet:
            self.console.print(text)


# ---- options every command takes ----------------------------------------------------------------------------------

def _set(attr: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        obj = ctx.find_object(Context)
        if obj is None or value in (None, False, 0, ()):
            return
        if attr == "verbose":
            obj.verbose += value
        else:
            setattr(obj, attr, value)
    return callback


def output_options() -> list[click.Option]:
    return [
        click.Option(["--json"], is_flag=True, expose_value=False, callback=_set("json"), is_eager=True,
                     help="Print the report as one JSON envelope on stdout (errors too)."),
        click.Option(["-q", "--quiet"], is_flag=True, expose_value=False, callback=_set("quiet"),
                     help="No progress and no advice lines; reports and errors only."),
        click.Option(["-v", "--verbose"], count=True, expose_value=False, callback=_set("verbose"),
                     help="More detail: stream build logs and git's own progress."),
        click.Option(["--color"], type=click.Choice(COLOR_CHOICES), default=None, expose_value=False,
                     callback=_set("color_choice"),
                     help="Colour the report (default auto: a terminal without NO_COLOR)."),
    ]


def _add_output_options(command: click.Command) -> None:
    taken = {opt for p in command.params for opt in getattr(p, "opts", [])}
    for option in output_options():
        if not taken.intersection(option.opts):
            command.params.append(option)


class PatchqCommand(click.Command):
    """A command with the shared output options, wherever they are written on the line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _add_output_options(self)

    def get_short_help_str(self, limit: int = 45) -> str:
        return whole_short_help(self, limit)

    def invoke(self, ctx: click.Context) -> Any:
        obj = ctx.find_object(Context)
        if obj is not None:
            obj.command = command_name(ctx)
            if not obj.quiet:
                from . import progress
                progress.install(progress.Terminal(sys.stderr, verbose=obj.verbose,
                                                   width=terminal_width(sys.stderr) or 80))
        return super().invoke(ctx)


def whole_short_help(command: click.Command, limit: int) -> str:
    """The first paragraph of the help, never cut with '...': the help formatter wraps it at word breaks."""
    if command.short_help:
        return command.short_help
    text = (command.help or "").split("\f", 1)[0].strip()
    return " ".join(text.split("\n\n", 1)[0].split())


class PatchqGroup(click.Group):
    """The CLI's groups: every command (and sub-group) made through them gets the output options."""

    command_class = PatchqCommand

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _add_output_options(self)

    def get_short_help_str(self, limit: int = 45) -> str:
        return whole_short_help(self, limit)

    def invoke(self, ctx: click.Context) -> Any:
        obj = ctx.find_object(Context)
        if obj is not None and ctx.parent is not None:
            obj.command = command_name(ctx)
        return super().invoke(ctx)


PatchqGroup.group_class = PatchqGroup


def command_name(ctx: click.Context) -> str:
    """`apply`, `upstream add`: the command path without the program name."""
    return " ".join(ctx.command_path.split()[1:])


def guess_command(argv: list[str], group: click.Group) -> str:
    """The subcommand a usage error happened in, from the raw arguments (before click could tell us)."""
    words: list[str] = []
    current: click.Command = group
    for arg in argv:
        if arg == "--":
            break
        if arg.startswith("-"):
            continue
        sub = current.commands.get(arg) if isinstance(current, click.Group) else None
        if sub is None:
            if isinstance(current, click.Group) and not words:
                continue               # an option's value before the subcommand (-w DIR)
            break
        words.append(arg)
        current = sub
    return " ".join(words)


def json_requested(argv: list[str]) -> bool:
    return "--json" in argv[: argv.index("--")] if "--" in argv else "--json" in argv
