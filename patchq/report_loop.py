"""Text renderers of the edit loop's results (refresh, status, sync, setup verbs); --json prints the dataclasses."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .editloop import RefreshResult
from .output import Console
from .wsstatus import IN_SYNC, WorkspaceStatus

if TYPE_CHECKING:
    from .metadata import StackInfo, UpstreamInfo
    from .sync import SyncReport


def _out(console: Console, text: str) -> None:
    """One line, never wrapped or styled: ids, paths and commands must stay whole and pasteable."""
    console.print(text, soft_wrap=True, markup=False, highlight=False)


def render_refresh(console: Console, result: RefreshResult) -> None:
    what = "refreshed" if result.changed else "unchanged"
    _out(console, f"{what} {result.patch.ref} from {result.checkout} (HEAD {result.commit[:12]})")
    if result.worktree:
        _out(console, f"  took the uncommitted changes of {len(result.files)} file(s) and folded them into HEAD's "
                      f"commit: {', '.join(result.files)}")


def render_status(console: Console, report: WorkspaceStatus) -> None:
    if report.rebase:
        _out(console, report.rebase)
    if not report.stacks:
        _out(console, "no stacks defined (add one with 'patchq stack add NAME --upstream U')")
    for stack in report.stacks:
        for up in stack.upstreams:
            _out(console, f"{stack.stack} · {up.upstream} @ {up.pin[:12]}")
            if not up.checkout:
                _out(console, "  not applied yet")
            else:
                _out(console, f"  checkout: {up.checkout}")
                where = f"{up.head[:12]}" + (f" on {up.branch}" if up.branch else " (detached)")
                _out(console, f"  HEAD {where}" + ("" if up.on_pin else "  — not on the pin"))
                done = [a for a in up.applied]
                _out(console, f"  applied {sum(1 for a in done if a.patch_id in up.expected)} of "
                              f"{len(up.expected)} patches" + (f"; not applied: {', '.join(up.missing)}"
                                                               if up.missing else ""))
                for a in done:
                    mark = "" if a.state == IN_SYNC else f"  [{a.state}]"
                    _out(console, f"    {a.commit[:10]} {a.patch_id or '(no Patchq-Id)'}: {a.subject}{mark}")
                if up.dirty:
                    _out(console, f"  uncommitted: {', '.join(up.dirty)}")
                if up.foreign:
                    _out(console, "  commits patchq did not write: " + ", ".join(c.label for c in up.foreign))
                if up.in_progress:
                    _out(console, f"  stopped: {up.in_progress}")
                if up.tree_state:
                    _out(console, f"  tree {up.tree[:12]}: {up.tree_state}"
                                  + (f" (pins.lock records {up.recorded_tree[:12]})" if up.tree_state == "differs"
                                     else ""))
            for action in up.actions:
                _out(console, f"  next: {action}")
    if report.clean:
        _out(console, "everything is in step with the queues")


def render_sync(console: Console, report: SyncReport) -> None:
    verb = "would" if report.dry_run else ""
    for up in report.upstreams:
        if up.note:
            _out(console, f"{report.stack} · {up.upstream}: skipped ({up.note})")
            continue
        _out(console, f"{report.stack} · {up.upstream} from {up.checkout}")
        for p in up.patches:
            _out(console, f"  {p.action:<9} {p.patch_id}  ({p.commit[:10]} {p.title})")
        if up.reordered:
            _out(console, f"  {verb + ' ' if verb else ''}reorder the queue: {', '.join(up.order)}")
        for patch_id in up.dropped:
            _out(console, f"  dropped   {patch_id}: in the stack, not in the checkout (still in the queue; archive "
                          f"it with 'patchq mark {patch_id} negative-archived' or remove it from series.yaml)")
    if report.dry_run:
        _out(console, "dry run: nothing was written")
    elif not report.changed:
        _out(console, "the queues already hold what the checkouts hold")


def render_upstreams(console: Console, infos: list[UpstreamInfo]) -> None:
    if not infos:
        _out(console, "no upstreams (add one with 'patchq upstream add NAME URL')")
    for info in infos:
        _out(console, f"{info.name} @ {info.pin}")
        _out(console, f"  url: {info.url}")
        if info.archive:
            _out(console, f"  archive: {info.archive}")
        if info.version:
            _out(console, f"  version: {info.version}")
        _out(console, f"  {info.patches} patch(es); stacks: {', '.join(info.stacks) or '-'}")


def render_stacks(console: Console, infos: list[StackInfo]) -> None:
    if not infos:
        _out(console, "no stacks (add one with 'patchq stack add NAME --upstream U')")
    for info in infos:
        chosen = "listed patches" if info.listed else f"include {', '.join(info.include)}"
        _out(console, f"{info.name}: {', '.join(info.upstreams)}  ({chosen})")
        for up, count in info.patches.items():
            _out(console, f"  {up}: {count} patch(es)" + (f", pinned at {info.pins[up]}" if up in info.pins else ""))
        if info.listed:
            _out(console, f"  patches: {', '.join(info.listed)}")
        if info.extra:
            _out(console, f"  extra: {', '.join(info.extra)}")
        if info.exclude:
            _out(console, f"  exclude: {', '.join(info.exclude)}")
        for key, value in info.profile.items():
            _out(console, f"  profile: {key}={value}")
        if info.result:
            _out(console, "  result: " + ", ".join(f"{k}={v}" for k, v in info.result.items()))
        if info.description:
            _out(console, f"  {info.description}")
