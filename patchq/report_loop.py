"""Text renderers of the edit loop's results (refresh, status, sync, setup verbs); --json prints the dataclasses."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console

from .editloop import RefreshResult
from .wsstatus import IN_SYNC, WorkspaceStatus

if TYPE_CHECKING:
    from .metadata import StackInfo, UpstreamInfo
    from .sync import SyncReport


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


def render_sync(console: Console, report: "SyncReport") -> None:
    verb = "would" if report.dry_run else ""
    for up in report.upstreams:
        if up.note:
            console.print(f"{report.stack} · {up.upstream}: skipped ({up.note})")
            continue
        console.print(f"[bold]{report.stack} · {up.upstream}[/bold] from {up.checkout}")
        for p in up.patches:
            console.print(f"  {p.action:<9} {p.patch_id}  ({p.commit[:10]} {p.title})")
        if up.reordered:
            console.print(f"  {verb + ' ' if verb else ''}reorder the queue: {', '.join(up.order)}")
        for patch_id in up.dropped:
            console.print(f"  dropped   {patch_id}: in the stack, not in the checkout (still in the queue; archive "
                          f"it with 'patchq mark {patch_id} negative-archived' or remove it from series.yaml)")
    if report.dry_run:
        console.print("dry run: nothing was written")
    elif not report.changed:
        console.print("the queues already hold what the checkouts hold")


def render_upstreams(console: Console, infos: "list[UpstreamInfo]") -> None:
    if not infos:
        console.print("no upstreams (add one with 'patchq upstream add NAME URL')")
    for info in infos:
        console.print(f"[bold]{info.name}[/bold] @ {info.pin}")
        console.print(f"  url: {info.url}")
        if info.archive:
            console.print(f"  archive: {info.archive}")
        if info.version:
            console.print(f"  version: {info.version}")
        console.print(f"  {info.patches} patch(es); stacks: {', '.join(info.stacks) or '-'}")


def render_stacks(console: Console, infos: "list[StackInfo]") -> None:
    if not infos:
        console.print("no stacks (add one with 'patchq stack add NAME --upstream U')")
    for info in infos:
        console.print(f"[bold]{info.name}[/bold]: {', '.join(info.upstreams)}  (include "
                      f"{', '.join(info.include)})")
        for up, count in info.patches.items():
            console.print(f"  {up}: {count} patch(es)" + (f", pinned at {info.pins[up]}" if up in info.pins else ""))
        if info.extra:
            console.print(f"  extra: {', '.join(info.extra)}")
        for key, value in info.profile.items():
            console.print(f"  profile: {key}={value}")
        if info.result:
            console.print("  result: " + ", ".join(f"{k}={v}" for k, v in info.result.items()))
        if info.description:
            console.print(f"  {info.description}")
