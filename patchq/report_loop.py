"""Text renderers of the edit loop's results (refresh, status, sync, setup verbs); --json prints the dataclasses."""

from __future__ import annotations

from rich.console import Console

from .editloop import RefreshResult
from .wsstatus import IN_SYNC, WorkspaceStatus


def render_refresh(console: Console, result: RefreshResult) -> None:
    what = "refreshed" if result.changed else "unchanged"
    console.print(f"{what} {result.patch.ref} from {result.checkout} (HEAD {result.commit[:12]})")
    if result.worktree:
        console.print(f"  took the uncommitted changes of {len(result.files)} file(s) and folded them into HEAD's "
                      f"commit: {', '.join(result.files)}")


def render_status(console: Console, report: WorkspaceStatus) -> None:
    if report.rebase:
        console.print(report.rebase)
    if not report.stacks:
        console.print("no stacks defined (add one with 'patchq stack add NAME --upstream U')")
    for stack in report.stacks:
        for up in stack.upstreams:
            console.print(f"[bold]{stack.stack} · {up.upstream}[/bold] @ {up.pin[:12]}")
            if not up.checkout:
                console.print("  not applied yet")
            else:
                console.print(f"  checkout: {up.checkout}")
                where = f"{up.head[:12]}" + (f" on {up.branch}" if up.branch else " (detached)")
                console.print(f"  HEAD {where}" + ("" if up.on_pin else "  — not on the pin"))
                done = [a for a in up.applied]
                console.print(f"  applied {sum(1 for a in done if a.patch_id in up.expected)} of "
                              f"{len(up.expected)} patches" + (f"; not applied: {', '.join(up.missing)}"
                                                               if up.missing else ""))
                for a in done:
                    mark = "" if a.state == IN_SYNC else f"  [{a.state}]"
                    console.print(f"    {a.commit[:10]} {a.patch_id or '(no Patchq-Id)'}: {a.subject}{mark}")
                if up.dirty:
                    console.print(f"  uncommitted: {', '.join(up.dirty)}")
                if up.foreign:
                    console.print("  commits patchq did not write: " + ", ".join(c.label for c in up.foreign))
                if up.in_progress:
                    console.print(f"  stopped: {up.in_progress}")
                if up.tree_state:
                    console.print(f"  tree {up.tree[:12]}: {up.tree_state}"
                                  + (f" (pins.lock records {up.recorded_tree[:12]})" if up.tree_state == "differs"
                                     else ""))
            for action in up.actions:
                console.print(f"  next: {action}")
    if report.clean:
        console.print("everything is in step with the queues")
