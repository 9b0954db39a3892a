"""Commands of the edit loop and of workspace setup: refresh, new, mark, status, sync, edit, upstream, stack.

Each command parses its options, takes the workspace lock when it writes (and loads the workspace under it, so two
writers never overwrite each other's change), calls one core function and renders its typed result.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import click

from .cli import STATUS_CHOICES, Context, cli, pass_ctx
from .errors import BadInput
from .model import Status
from .workspace import Workspace, load_workspace, workspace_lock


@contextlib.contextmanager
def writing(c: Context, operation: str) -> Iterator[Workspace]:
    """The workspace loaded under its lock, for a command that writes."""
    root = c.root()
    with workspace_lock(root, operation):
        yield load_workspace(root)


def _dir(path: Path | None) -> Path | None:
    return path.resolve() if path is not None else None


# ---- refresh / new / mark ----------------------------------------------------------------------------------------

@cli.command()
@click.argument("patch_ref", metavar="[ID]", required=False)
@click.option("--from", "from_dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Checkout whose HEAD is the patch (default: the checkout you are in, else the stack's own).")
@click.option("--stack", "stack_name", help="Use this stack's checkout (when several stacks apply the patch).")
@click.option("--force", is_flag=True, help="Take HEAD as the patch even without its Patchq-Id trailer.")
@pass_ctx
def refresh(c: Context, patch_ref: str | None, from_dir: Path | None, stack_name: str | None, force: bool) -> None:
    """Write a checkout's HEAD commit, plus uncommitted changes on top of it, into the patch HEAD is.

    HEAD's Patchq-Id trailer must name ID (without ID it says which patch). Header, description and trailers of the
    patch file stay byte for byte; uncommitted changes are folded into HEAD's commit as well, quilt-style.
    """
    from .editloop import refresh_from_checkout
    from .report_loop import render_refresh
    with writing(c, f"refresh {patch_ref or ''}".strip()) as ws:
        result = refresh_from_checkout(ws, patch_ref, from_dir=_dir(from_dir), stack=stack_name, force=force)
    c.emit(result, lambda: render_refresh(c.console, result))


@cli.command()
@click.argument("patch_id", metavar="ID")
@click.option("--upstream", "-u", help="Queue to add the patch to (default: the checkout's upstream).")
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
@click.option("--after", "after", metavar="ID", help="Place it right after this patch (default: at the end).")
@pass_ctx
def new(c: Context, patch_id: str, upstream: str | None, status: str, from_dir: Path | None, title: str, why: str,
        flags: tuple[str, ...], result: str, date: str, base: str, author: str, after: str | None) -> None:
    """Record a checkout's uncommitted changes as a new annotated patch."""
    from .authoring import new_patch
    with writing(c, f"new {patch_id}") as ws:
        entry = new_patch(ws, patch_id, upstream=upstream, from_dir=_dir(from_dir), status=Status.parse(status),
                          title=title, why=why, flags=flags, result=result, date=date, base=base, author=author,
                          after=after)
    c.emit(entry, lambda: c.console.print(f"added {entry.ref} as queues/{entry.upstream}/{entry.file}"))


def _mark(c: Context, patch_ref: str, status: str) -> None:
    from .queue import set_status
    with writing(c, f"mark {patch_ref}") as ws:
        entry = set_status(ws, patch_ref, Status.parse(status))
    c.emit(entry, lambda: c.console.print(f"{entry.ref} is now {entry.status.value}"))


@cli.command()
@click.argument("patch_ref", metavar="ID")
@click.argument("status", type=STATUS_CHOICES)
@pass_ctx
def mark(c: Context, patch_ref: str, status: str) -> None:
    """Change a patch's status (series.yaml and its trailer together)."""
    _mark(c, patch_ref, status)


# ---- status ----------------------------------------------------------------------------------------------------

@cli.command("status")
@click.argument("args", nargs=-1, metavar="[STACK]")
@click.option("--upstream", "-u", "only", multiple=True, help="Only these upstreams.")
@pass_ctx
def status_cmd(c: Context, args: tuple[str, ...], only: tuple[str, ...]) -> None:
    """Where each stack's checkouts stand: applied patches, HEAD vs the queue, local work, what to run next.

    The old form 'patchq status ID STATUS' still changes a patch's status (now 'patchq mark ID STATUS').
    """
    if len(args) == 2 and args[1] in {s.value for s in Status}:
        click.echo(f"patchq: 'status ID STATUS' is now 'mark ID STATUS'; running 'patchq mark {args[0]} {args[1]}'",
                   err=True)
        _mark(c, args[0], args[1])
        return
    if len(args) > 1:
        raise BadInput("usage: patchq status [STACK] (to change a patch's status: patchq mark ID STATUS)")
    from .report_loop import render_status
    from .wsstatus import workspace_status
    root = c.root()
    with workspace_lock(root, "status", shared=True):
        ws = load_workspace(root)
        report = workspace_status(ws, args[0] if args else None, only=only)
    c.emit(report, lambda: render_status(c.console, report))
