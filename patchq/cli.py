"""Click commands only: parse options, call one function of the core, render its result.

Exit codes: 0 ok, 1 the patches need you, 2 bad input, 3 the environment failed, 130 interrupted.
"""

from __future__ import annotations

import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import click
from rich.console import Console

from . import __version__
from .errors import EXIT_NEEDS_YOU, BadInput, PatchqError
from .model import PatchEntry, Status
from .report import render_apply, render_entries, render_entry, render_findings, to_json
from .workspace import Workspace, find_workspace, load_workspace, workspace_lock

STATUS_CHOICES = click.Choice([s.value for s in Status])


@dataclass
class Context:
    workspace_opt: str | None
    json: bool
    console: Console

    def root(self) -> Path:
        return find_workspace(Path(self.workspace_opt) if self.workspace_opt else None) \
            if not self.workspace_opt or not (Path(self.workspace_opt) / "pins.lock").exists() \
            else Path(self.workspace_opt).resolve()

    def ws(self) -> Workspace:
        return load_workspace(self.root())

    def emit(self, value, render) -> None:
        if self.json:
            click.echo(to_json(value))
        else:
            render()


pass_ctx = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--workspace", "-w", "workspace_opt", metavar="DIR",
              help="Workspace folder (default: walk up from here to the folder holding pins.lock).")
@click.option("--json", "json_out", is_flag=True, help="Print the report as one JSON document.")
@click.version_option(__version__, prog_name="patchq")
@click.pass_context
def cli(ctx: click.Context, workspace_opt: str | None, json_out: bool) -> None:
    """patchq: annotated patch queues against pinned upstreams — apply, rebase, audit, bundle, build."""
    ctx.obj = Context(workspace_opt, json_out, Console(highlight=False, soft_wrap=False))


@cli.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path), default=".")
@pass_ctx
def init(c: Context, folder: Path) -> None:
    """Make FOLDER a new, empty workspace (pins.lock, queues/, kernels/)."""
    from .workspace import init_workspace
    lock = init_workspace(folder.resolve())
    c.emit({"created": str(lock)}, lambda: c.console.print(f"new workspace: {lock}"))


@cli.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path), required=False)
@click.option("--no-apply", is_flag=True, help="Only build the sample workspace.")
@pass_ctx
def demo(c: Context, folder: Path | None, no_apply: bool) -> None:
    """Build a self-contained sample workspace (offline) and apply its stack."""
    from .demo import build_demo
    target = (folder or Path("patchq-demo")).resolve()
    root = build_demo(target)
    if not c.json:
        c.console.print(f"[bold]sample workspace:[/bold] {root}")
    if no_apply:
        return
    from .apply import apply_stack
    ws = load_workspace(root)
    report = apply_stack(ws, "promoted-demo", keep_going=True, extra=("diagnostic:decode-timing", "negative-archived:mtp-spec-decode"))
    c.emit(report, lambda: render_apply(c.console, report))
    if not c.json:
        c.console.print(f"\ntry: cd {root} && patchq list && patchq flags promoted-demo")


@cli.command("list")
@click.option("--stack", "stack_name", help="Only the patches this stack applies.")
@click.option("--status", type=STATUS_CHOICES, help="Only patches with this status.")
@click.option("--upstream", "-u", help="Only this upstream's queue.")
@pass_ctx
def list_cmd(c: Context, stack_name: str | None, status: str | None, upstream: str | None) -> None:
    """The queues: each patch with its status, flags and measured result."""
    ws = c.ws()
    entries: list[PatchEntry] = []
    if stack_name:
        stack = ws.stack(stack_name)
        for up in stack.upstreams:
            entries.extend(ws.stack_entries(stack, up))
    else:
        for name in ws.upstreams:
            entries.extend(ws.queue(name).entries)
    if upstream:
        ws.upstream(upstream)
        entries = [e for e in entries if e.upstream == upstream]
    if status:
        entries = [e for e in entries if e.status.value == status]
    c.emit(entries, lambda: render_entries(c.console, entries, title=f"stack {stack_name}" if stack_name
                                           else f"queues of {ws.root.name}"))


@cli.command()
@click.argument("patch_ref", metavar="ID")
@pass_ctx
def show(c: Context, patch_ref: str) -> None:
    """One patch: its annotation and where it is used."""
    ws = c.ws()
    entry = ws.find_patch(patch_ref)
    stacks = [s.name for s in ws.stacks.values() if entry in ws.stack_entries(s, entry.upstream)]
    extra = {"stacks": ", ".join(stacks)}
    c.emit({"patch": entry, "stacks": stacks}, lambda: render_entry(c.console, entry, extra))


@cli.command()
@pass_ctx
def check(c: Context) -> None:
    """Is the workspace consistent: files, trailers vs series, pins, declared vs found env flags."""
    from .check import check_workspace
    ws = c.ws()
    findings = check_workspace(ws)
    c.emit(findings, lambda: render_findings(c.console, findings, ok_text="workspace is consistent"))
    if any(f.severity == "error" for f in findings):
        sys.exit(EXIT_NEEDS_YOU)


@cli.command()
@click.argument("stack_name", metavar="STACK")
@click.option("--into", type=click.Path(file_okay=False, path_type=Path),
              help="Make fresh checkouts in this new folder (one subfolder per upstream).")
@click.option("--keep-going", is_flag=True, help="Report every patch instead of stopping at the first conflict.")
@click.option("--verify", is_flag=True, help="Compare each result tree with the one recorded in pins.lock.")
@click.option("--upstream", "-u", "only", multiple=True, help="Only these upstreams of the stack.")
@click.option("--with", "extra", multiple=True, metavar="STATUS:ID",
              help="Add a non-included patch on top, e.g. diagnostic:decode-timing.")
@click.option("--check", "check_only", is_flag=True, help="Judge the queues without touching any checkout.")
@click.option("--force", is_flag=True, help="Discard uncommitted changes in patchq's own checkout.")
@click.option("--no-build", is_flag=True, help="Do not rebuild affected native targets.")
@pass_ctx
def apply(c: Context, stack_name: str, into: Path | None, keep_going: bool, verify: bool, only: tuple[str, ...],
          extra: tuple[str, ...], check_only: bool, force: bool, no_build: bool) -> None:
    """Regenerate STACK: clean checkouts at the pins, queues applied in order, one outcome per patch."""
    from .apply import apply_stack
    ws = c.ws()
    with workspace_lock(ws.root, f"apply {stack_name}"):
        report = apply_stack(ws, stack_name, into=into.resolve() if into else None, keep_going=keep_going,
                             verify=verify, only=only, extra=extra, check_only=check_only, force=force)
    c.emit(report, lambda: render_apply(c.console, report))
    if not report.ok:
        sys.exit(EXIT_NEEDS_YOU)


@cli.command()
@click.argument("stack_name", metavar="STACK")
@pass_ctx
def lock(c: Context, stack_name: str) -> None:
    """Record each upstream's result tree for STACK in pins.lock (for apply --verify)."""
    from .apply import lock_stack
    from .workspace import set_lock_values, write_atomic
    ws = c.ws()
    with workspace_lock(ws.root, f"lock {stack_name}"):
        trees = lock_stack(ws, stack_name)
        write_atomic(ws.lock_path, set_lock_values(ws, trees={stack_name: trees}))
    c.emit({"stack": stack_name, "trees": trees},
           lambda: [c.console.print(f"{stack_name}: {up} tree {tree}") for up, tree in trees.items()])


@cli.command()
@click.argument("patch_id", metavar="ID")
@click.option("--upstream", "-u", required=True, help="Queue to add the patch to.")
@click.option("--status", "-s", type=STATUS_CHOICES, default="promoted", show_default=True)
@click.option("--from", "from_dir", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Checkout whose uncommitted changes become the patch (e.g. the one 'patchq apply' made).")
@click.option("--title", "-t", default="", help="One-line title (default: the id).")
@click.option("--why", default="", help="Why this change exists; becomes the description.")
@click.option("--flag", "flags", multiple=True, help="Env flag that gates the change (repeatable).")
@click.option("--result", default="", help="Measured result, e.g. '+6 out tok/s (83 -> 89)'.")
@click.option("--date", default="", help="Date of the measurement (YYYY-MM-DD).")
@click.option("--base", default="", help="For non-promoted patches: the promoted patch it sits on.")
@pass_ctx
def new(c: Context, patch_id: str, upstream: str, status: str, from_dir: Path, title: str, why: str,
        flags: tuple[str, ...], result: str, date: str, base: str) -> None:
    """Record a checkout's uncommitted changes as a new annotated patch at the end of a queue."""
    from .queue import add_patch, worktree_diff
    ws = c.ws()
    diff = worktree_diff(from_dir.resolve())
    entry = PatchEntry(id=patch_id, upstream=upstream, file="", status=Status.parse(status), title=title or patch_id,
                       why=why, flags=flags, result=result, date=date, base=base)
    with workspace_lock(ws.root, f"new {patch_id}"):
        entry = add_patch(ws, entry, diff)
    c.emit(entry, lambda: c.console.print(f"added {entry.ref} as queues/{entry.upstream}/{entry.file}"))


@cli.command()
@click.argument("patch_ref", metavar="ID")
@click.option("--from", "from_dir", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Checkout whose HEAD commit is the resolved patch (after 'git am --continue').")
@pass_ctx
def refresh(c: Context, patch_ref: str, from_dir: Path) -> None:
    """Replace a patch's diff with the HEAD commit of a checkout; header and trailers stay byte for byte."""
    from .git import Repo
    from .queue import commit_diff, refresh_patch
    ws = c.ws()
    diff = commit_diff(Repo(from_dir.resolve()), "HEAD")
    with workspace_lock(ws.root, f"refresh {patch_ref}"):
        entry = refresh_patch(ws, patch_ref, diff)
    c.emit(entry, lambda: c.console.print(f"refreshed {entry.ref}"))


@cli.command("status")
@click.argument("patch_ref", metavar="ID")
@click.argument("status", type=STATUS_CHOICES)
@pass_ctx
def status_cmd(c: Context, patch_ref: str, status: str) -> None:
    """Change a patch's status (series.yaml and its trailer together)."""
    from .queue import set_status
    ws = c.ws()
    with workspace_lock(ws.root, f"status {patch_ref}"):
        entry = set_status(ws, patch_ref, Status.parse(status))
    c.emit(entry, lambda: c.console.print(f"{entry.ref} is now {entry.status.value}"))


@cli.command()
@click.argument("spec", metavar="UPSTREAM@REF")
@click.option("--stack", "stack_name", help="Pin only this stack (default: the upstream's default pin).")
@pass_ctx
def pin(c: Context, spec: str, stack_name: str | None) -> None:
    """Resolve a short SHA, tag, branch or 'latest' and write the full commit id into pins.lock."""
    from .sources import ensure_mirror, resolve_ref
    from .workspace import set_lock_values, write_atomic
    name, _, ref = spec.partition("@")
    if not ref:
        raise BadInput(f"expected UPSTREAM@REF, got {spec!r}")
    ws = c.ws()
    upstream = ws.upstream(name)
    mirror = ensure_mirror(upstream, workspace=ws.root, refresh=True)
    sha = resolve_ref(mirror, upstream, ref)
    with workspace_lock(ws.root, f"pin {spec}"):
        if stack_name:
            ws.stack(stack_name)
            data = set_lock_values(ws, stack_pins={stack_name: {name: sha}})
        else:
            data = set_lock_values(ws, pins={name: sha})
        write_atomic(ws.lock_path, data)
    c.emit({"upstream": name, "ref": ref, "pin": sha},
           lambda: c.console.print(f"{name}: {ref} → {sha}  ({mirror.subject(sha)})"))


def main(argv: list[str] | None = None) -> None:
    """Entry point: every patchq error becomes one line on stderr and its exit code, never a traceback."""
    try:
        cli.main(args=argv, prog_name="patchq", standalone_mode=False)
    except PatchqError as exc:
        click.echo(f"error: {exc}", err=True)
        if exc.hint:
            click.echo(f"hint: {exc.hint}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("interrupted: nothing half-written was left in the workspace", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if exc.exit_code == 2 else exc.exit_code)
    except SystemExit:
        raise
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:  # a bug in patchq: say so plainly, keep the traceback for those who ask
        if os.environ.get("PATCHQ_DEBUG"):
            traceback.print_exc()
        click.echo(f"internal error: {type(exc).__name__}: {exc} (this is a patchq bug; "
                   "rerun with PATCHQ_DEBUG=1 for the traceback)", err=True)
        sys.exit(70)
    sys.exit(0)


if __name__ == "__main__":
    main()
