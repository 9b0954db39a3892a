"""Commands of the edit loop and of workspace setup: refresh, new, mark, status, sync, edit, upstream, stack.

Each command parses its options, opens a workspace transaction when it writes (`txn.workspace_txn`: the workspace
loaded under the lock, so two writers never overwrite each other's change, and every file it changes committed
together), calls one core function and renders its typed result.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .cmdbase import STATUS_CHOICES, Context, cli, pass_ctx
from .complete import complete_id, complete_stack, complete_upstream
from .errors import BadInput

if TYPE_CHECKING:                  # the engine is imported inside the commands: --help must not load it
    from .metadata import StackChange
    from .model import Status
    from .txn import Txn
    from .workspace import Workspace

Command = TypeVar("Command", bound=Callable[..., Any])


@contextlib.contextmanager
def writing(c: Context, operation: str) -> Iterator[tuple[Workspace, Txn]]:
    """`(ws, t)`: the workspace loaded under its lock and the transaction that commits what the command stages."""
    with c.txn(operation) as pair:
        yield pair


def _status(text: str) -> Status:
    from .model import Status
    return Status.parse(text)


def _dir(path: Path | None) -> Path | None:
    return path.resolve() if path is not None else None


# ---- refresh / new / mark ----------------------------------------------------------------------------------------

@cli.command()
@click.argument("patch_ref", metavar="[ID]", required=False, shell_complete=complete_id)
@click.option("--from", "from_dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Checkout whose HEAD is the patch (default: the checkout you are in, else the stack's own).")
@click.option("--stack", "stack_name", help="Use this stack's checkout (when several stacks apply the patch).",
              shell_complete=complete_stack)
@click.option("--force", is_flag=True, help="Take HEAD as the patch even without its Patchq-Id trailer.")
@pass_ctx
def refresh(c: Context, patch_ref: str | None, from_dir: Path | None, stack_name: str | None, force: bool) -> None:
    """Write a checkout's HEAD commit, plus uncommitted changes on top of it, into the patch HEAD is.

    HEAD's Patchq-Id trailer must name ID (without ID it says which patch). Header, description and trailers of the
    patch file stay byte for byte; uncommitted changes are folded into HEAD's commit as well, quilt-style.
    """
    from .editloop import refresh_from_checkout
    from .report_loop import render_refresh
    with writing(c, f"refresh {patch_ref or ''}".strip()) as (ws, t):
        result = refresh_from_checkout(ws, t, patch_ref, from_dir=_dir(from_dir), stack=stack_name, force=force)
    c.emit(result, lambda: render_refresh(c.console, result))


@cli.command()
@click.argument("patch_id", metavar="ID")
@click.option("--upstream", "-u", help="Queue to add the patch to (default: the checkout's upstream).",
              shell_complete=complete_upstream)
@click.option("--status", "-s", type=STATUS_CHOICES, default="promoted", show_default=True)
@click.option("--from", "from_dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Checkout whose uncommitted changes become the patch (default: the patchq checkout you are in).")
@click.option("--title", "-t", default="", help="One-line title (default: the id).")
@click.option("--why", default="", help="Why this change exists; becomes the description.")
@click.option("--flag", "flags", multiple=True, help="Env flag that gates the change (repeatable).")
@click.option("--result", default="", help="Measured result, e.g. '+6 out tok/s (83 -> 89)'.")
@click.option("--date", default="", help="Date of the measurement: YYYY-MM-DD, ISO 8601 or RFC 2822 (default: today).")
@click.option("--base", default="", help="For non-promoted patches: the promoted patch it sits on.")
@click.option("--author", default="", help="'Name <email>' (default: git's user.name and user.email).")
@click.option("--after", "after", metavar="ID", shell_complete=complete_id,
              help="Place it right after this patch (default: at the end).")
@pass_ctx
def new(c: Context, patch_id: str, upstream: str | None, status: str, from_dir: Path | None, title: str, why: str,
        flags: tuple[str, ...], result: str, date: str, base: str, author: str, after: str | None) -> None:
    """Record a checkout's uncommitted changes as a new annotated patch."""
    from .authoring import new_patch
    with writing(c, f"new {patch_id}") as (ws, t):
        entry = new_patch(ws, t, patch_id, upstream=upstream, from_dir=_dir(from_dir), status=_status(status),
                          title=title, why=why, flags=flags, result=result, date=date, base=base, author=author,
                          after=after)
    c.emit(entry, lambda: c.console.print(f"added {entry.ref} as queues/{entry.upstream}/{entry.file}"))


def _mark(c: Context, patch_ref: str, status: str) -> None:
    from .queue import set_status
    with writing(c, f"mark {patch_ref}") as (ws, t):
        entry = set_status(ws, t, patch_ref, _status(status))
    c.emit(entry, lambda: c.console.print(f"{entry.ref} is now {entry.status.value}"))


@cli.command()
@click.argument("patch_ref", metavar="ID", shell_complete=complete_id)
@click.argument("status", type=STATUS_CHOICES)
@pass_ctx
def mark(c: Context, patch_ref: str, status: str) -> None:
    """Change a patch's status (series.yaml and its trailer together)."""
    _mark(c, patch_ref, status)


# ---- status ----------------------------------------------------------------------------------------------------

@cli.command("status")
@click.argument("args", nargs=-1, metavar="[STACK]", shell_complete=complete_stack)
@click.option("--upstream", "-u", "only", multiple=True, help="Only these upstreams.", shell_complete=complete_upstream)
@pass_ctx
def status_cmd(c: Context, args: tuple[str, ...], only: tuple[str, ...]) -> None:
    """Where each stack's checkouts stand: applied patches, HEAD vs the queue, local work, what to run next.

    The old form 'patchq status ID STATUS' still changes a patch's status (now 'patchq mark ID STATUS').
    """
    if len(args) == 2 and args[1] in STATUS_CHOICES.choices:
        click.echo(f"patchq: 'status ID STATUS' is now 'mark ID STATUS'; running 'patchq mark {args[0]} {args[1]}'",
                   err=True)
        _mark(c, args[0], args[1])
        return
    if len(args) > 1:
        raise BadInput("usage: patchq status [STACK] (to change a patch's status: patchq mark ID STATUS)")
    from .report_loop import render_status
    from .wsstatus import workspace_status
    root = c.root()
    from .txn import workspace_read
    with workspace_read(root, "status") as ws:
        report = workspace_status(ws, args[0] if args else None, only=only)
    c.emit(report, lambda: render_status(c.console, report))


# ---- sync ------------------------------------------------------------------------------------------------------

@cli.command()
@click.argument("stack_name", metavar="STACK", shell_complete=complete_stack)
@click.option("--upstream", "-u", "only", multiple=True, help="Only these upstreams of the stack.",
              shell_complete=complete_upstream)
@click.option("--dry-run", is_flag=True, help="Say what would change; write nothing.")
@pass_ctx
def sync(c: Context, stack_name: str, only: tuple[str, ...], dry_run: bool) -> None:
    """Write STACK's checkout back into its queues: edited commits refresh their patches, new commits become
    patches, the checkout's order becomes the queue's; patches missing from the checkout are reported."""
    from .report_loop import render_sync
    from .sync import sync_stack
    with writing(c, f"sync {stack_name}") as (ws, t):
        report = sync_stack(ws, t, stack_name, only=only, dry_run=dry_run)
    c.emit(report, lambda: render_sync(c.console, report))


# ---- edit ------------------------------------------------------------------------------------------------------

def _listing(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(v.strip() for value in values for v in value.split(",") if v.strip())


@cli.command()
@click.argument("patch_ref", metavar="ID", shell_complete=complete_id)
@click.option("--title", "-t", help="One-line title (the Subject).")
@click.option("--why", help="The description.")
@click.option("--flag", "flags", multiple=True, help="Env flags that gate the change (replaces the list; '' clears).")
@click.option("--result", help="Measured result.")
@click.option("--baseline", help="What the result was measured against.")
@click.option("--note", "notes", multiple=True, help="Notes and data links (replaces the list; '' clears).")
@click.option("--date", help="Date of the measurement (YYYY-MM-DD, ISO 8601 or RFC 2822).")
@click.option("--base", help="For non-promoted patches: the promoted patch it sits on ('' for the top).")
@click.option("--supersedes", multiple=True, help="Ids this patch replaces (replaces the list; '' clears).")
@click.option("--contains", multiple=True, help="Ids a cumulative patch already holds (replaces the list).")
@click.option("--requires", multiple=True, help="Ids that must be applied before this one (replaces the list).")
@click.option("--author", help="'Name <email>' of the From: header.")
@pass_ctx
def edit(c: Context, patch_ref: str, title: str | None, why: str | None, flags: tuple[str, ...],
         result: str | None, baseline: str | None, notes: tuple[str, ...], date: str | None, base: str | None,
         supersedes: tuple[str, ...], contains: tuple[str, ...], requires: tuple[str, ...],
         author: str | None) -> None:
    """Change a patch's annotation: series.yaml and the patch file's header together, every other byte kept."""
    from .authoring import parse_author, parse_date
    from .metadata import edit_patch
    changes: dict[str, Any] = {}
    for name, value in (("title", title), ("why", why), ("result", result), ("baseline", baseline),
                        ("base", base)):
        if value is not None:
            changes[name] = value
    if title is not None and not title.strip():
        raise BadInput("--title cannot be empty")
    if date is not None:
        changes["date"] = parse_date(date) if date else ""
    if author is not None:
        changes["author"] = parse_author(author)
    for name, values in (("flags", flags), ("notes", notes), ("supersedes", supersedes), ("contains", contains),
                         ("requires", requires)):
        if values:
            changes[name] = _listing(values)
    if not changes:
        raise BadInput("nothing to change: say --title, --why, --flag, --result, ... (see 'patchq edit --help')")
    with writing(c, f"edit {patch_ref}") as (ws, t):
        entry = edit_patch(ws, t, patch_ref, changes)
    c.emit(entry, lambda: c.console.print(f"edited {entry.ref}: {', '.join(sorted(changes))}"))


# ---- upstream --------------------------------------------------------------------------------------------------

@cli.group()
def upstream() -> None:
    """Add and list upstreams (pins.lock)."""


@upstream.command("add")
@click.argument("name")
@click.argument("url")
@click.option("--pin", default="latest", show_default=True,
              help="Full or short SHA, tag, branch or 'latest'; written as the full commit id.")
@click.option("--pypi", default="", metavar="NAME==VERSION", help="A release sdist on the package index as fallback.")
@click.option("--sha256", default="", help="The sdist's sha256 (default: looked up on the package index).")
@click.option("--version", "version", default="", help="The package version the pin is (default: from --pypi).")
@click.option("--description", default="")
@pass_ctx
def upstream_add(c: Context, name: str, url: str, pin: str, pypi: str, sha256: str, version: str,
                 description: str) -> None:
    """Add upstream NAME at URL (a git URL or a local repository), pinned to a full commit."""
    from .metadata import add_upstream
    with writing(c, f"upstream add {name}") as (ws, t):
        info = add_upstream(ws, t, name, url, pin=pin, pypi=pypi, sha256=sha256, version=version,
                            description=description)
    c.emit(info, lambda: c.console.print(f"added upstream {info.name}: {info.url} @ {info.pin}"))


@upstream.command("list")
@pass_ctx
def upstream_list(c: Context) -> None:
    """The upstreams: url, pin, archive, queue size and the stacks using each."""
    from .metadata import upstream_infos
    from .report_loop import render_upstreams
    infos = upstream_infos(c.ws())
    c.emit(infos, lambda: render_upstreams(c.console, infos))


# ---- stack -----------------------------------------------------------------------------------------------------

@cli.group()
def stack() -> None:
    """Add, change and list stacks (pins.lock)."""


def _stack_options(f: Command) -> Command:
    for option in reversed([
        click.option("--upstream", "-u", "upstreams", multiple=True, help="Upstreams in apply order (replaces)."),
        click.option("--include", multiple=True, type=STATUS_CHOICES, help="Statuses applied (replaces)."),
        click.option("--extra", multiple=True, metavar="REF", help="More patches by id (replaces; '' clears)."),
        click.option("--profile", multiple=True, metavar="KEY=VALUE",
                     help="Env the stack runs with (merged; 'KEY=' removes KEY)."),
        click.option("--metric", help="Result: metric name, e.g. output_tok_s."),
        click.option("--value", type=float, help="Result: the measured number."),
        click.option("--lane", help="Result: hardware and setup."),
        click.option("--result-date", help="Result: when it was measured."),
        click.option("--gate", "gates", multiple=True, help="Result: gates it passed (replaces)."),
        click.option("--result-notes", help="Result: free text."),
        click.option("--description", help="Free text."),
    ]):
        f = option(f)
    return f


def _stack_change(upstreams: tuple[str, ...], include: tuple[str, ...], extra: tuple[str, ...],
                  profile: tuple[str, ...], metric: str | None, value: float | None, lane: str | None,
                  result_date: str | None, gates: tuple[str, ...], result_notes: str | None,
                  description: str | None) -> StackChange:
    from .authoring import parse_date
    from .metadata import StackChange
    prof: dict[str, str | None] = {}
    for item in profile:
        key, sep, val = item.partition("=")
        if not sep:
            raise BadInput(f"--profile {item!r} must be KEY=VALUE")
        prof[key.strip()] = val if val != "" else None
    result: dict[str, Any] = {}
    for name, given in (("metric", metric), ("value", value), ("lane", lane), ("notes", result_notes)):
        if given is not None:
            result[name] = given
    if result_date is not None:
        result["date"] = parse_date(result_date, what="--result-date") if result_date else ""
    if gates:
        result["gates"] = _listing(gates)
    return StackChange(upstreams=tuple(upstreams) or None, include=tuple(include) or None,
                       extra=_listing(extra) if extra else None, profile=prof or None, result=result or None,
                       description=description)


@stack.command("add")
@click.argument("name")
@_stack_options
@pass_ctx
def stack_add(c: Context, /, name: str, **opts: Any) -> None:     # `c` positional: pass_ctx puts it first
    """Add stack NAME: its upstreams in apply order and, optionally, include, extra, profile and result."""
    from .metadata import set_stack
    from .report_loop import render_stacks
    change = _stack_change(**opts)
    with writing(c, f"stack add {name}") as (ws, t):
        info = set_stack(ws, t, name, change, create=True)
    c.emit(info, lambda: render_stacks(c.console, [info]))


@stack.command("set")
@click.argument("name")
@_stack_options
@pass_ctx
def stack_set(c: Context, /, name: str, **opts: Any) -> None:     # `c` positional: pass_ctx puts it first
    """Change stack NAME: only the fields given change; comments in pins.lock stay."""
    from .metadata import set_stack
    from .report_loop import render_stacks
    change = _stack_change(**opts)
    if change == type(change)():
        raise BadInput("nothing to change (see 'patchq stack set --help')")
    with writing(c, f"stack set {name}") as (ws, t):
        info = set_stack(ws, t, name, change, create=False)
    c.emit(info, lambda: render_stacks(c.console, [info]))


@stack.command("list")
@pass_ctx
def stack_list(c: Context) -> None:
    """The stacks: upstreams, included statuses, extras, profile and recorded result."""
    from .metadata import stack_info
    from .report_loop import render_stacks
    ws = c.ws()
    infos = [stack_info(ws, s) for s in ws.stacks.values()]
    c.emit(infos, lambda: render_stacks(c.console, infos))
