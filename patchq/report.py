"""Render what the core returns for people; `output.py` owns the JSON envelope for machines.

The core never prints. Every command hands its result dataclass here; the `render_*` functions draw it on the
plain console of `output.py` with `table.py`'s tables, which never cut an id, flag, path or command. Commands a
user is told to run are printed on lines of their own (`render_next`), so they can be pasted whole.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .model import ApplyReport, Finding, OutcomeKind, PatchEntry, Status
from .output import Console, plain, to_json
from .table import Table, Text

if TYPE_CHECKING:     # the command results, for the checker only: rendering must not import the engines
    from .audit import FlagAudit
    from .build.stack import BuildReport, OverlayReport
    from .export import ExportResult
    from .export_check import ExportCheck
    from .importer.items import ImportItem, ImportReport
    from .overlay import OverlayResult, OverlayStatus
    from .rebase.state import RebaseReport

__all__ = ["plain", "to_json"]   # kept here for callers that imported them from report

KIND_STYLE = {
    OutcomeKind.CLEAN: "green", OutcomeKind.OFFSET: "green", OutcomeKind.FUZZ: "yellow",
    OutcomeKind.THREEWAY: "yellow", OutcomeKind.ALREADY_UPSTREAM: "cyan", OutcomeKind.EMPTY: "cyan",
    OutcomeKind.CONFLICT: "bold red", OutcomeKind.NOT_REACHED: "dim",
}
STATUS_STYLE = {Status.PROMOTED: "green", Status.NEGATIVE_ARCHIVED: "red", Status.DIAGNOSTIC: "blue"}


def short(sha: str) -> str:
    return sha[:12] if sha else ""


_QUOTED_COMMAND = re.compile(r"'((?:patchq|git|cd|pip|python) [^']+)'")


def commands_in(text: str) -> list[str]:
    """The commands a piece of advice quotes ('patchq ...', 'git ...'), to print on lines of their own."""
    return [m.group(1) for m in _QUOTED_COMMAND.finditer(text)]


def render_next(console: Console, steps: Sequence[str]) -> None:
    """Each `next:` advice, then every command it names alone on an indented line (whole, ready to paste)."""
    for step in steps:
        console.print(f"[bold]next:[/bold] {step}")
        for command in commands_in(step):
            console.line(f"    {command}")


def render_apply(console: Console, report: ApplyReport) -> None:
    for up in report.upstreams:
        console.print(f"[bold]{report.stack} · {up.upstream} @ {short(up.pin)}[/bold]")
        if up.checkout:
            console.line(f"  checkout {up.checkout}")
        table = Table(show_lines=False)
        table.add_column("#", justify="right", style="dim")
        table.add_column("patch")
        table.add_column("outcome")
        table.add_column("commit", style="dim")
        table.add_column("detail", overflow="fold")
        for number, outcome in enumerate(up.outcomes, 1):
            detail = outcome.detail
            if outcome.offsets:
                detail = "; ".join(outcome.offsets) + (f"; {detail}" if detail else "")
            if outcome.hunks:
                detail = "\n".join(
                    f"{h.file}" + (f" hunk {h.hunk}" if h.hunk else "") + f": {h.reason}" for h in outcome.hunks)
            table.add_row(str(number), outcome.patch_id,
                          Text(outcome.kind.value, style=KIND_STYLE[outcome.kind]), short(outcome.commit), detail)
        console.print(table)
        counts: dict[str, int] = {}
        for outcome in up.outcomes:
            counts[outcome.kind.value] = counts.get(outcome.kind.value, 0) + 1
        summary = ", ".join(f"{n} {k}" for k, n in counts.items()) or "no patches"
        line = f"  {summary}; tree {short(up.tree)}" if up.tree else f"  {summary}"
        if up.verified is True:
            line += " [green]= recorded tree (bit-identical regeneration)[/green]"
        elif up.verified is False:
            line += (f" [red]≠ recorded tree {short(up.recorded_tree)}[/red]" if up.recorded_tree
                     else " [yellow](no recorded tree to verify against)[/yellow]")
        console.print(line)
    render_next(console, report.next_steps)
    if report.checked_only:
        console.print("[dim](checked only: no checkout was touched)[/dim]")


def render_entries(console: Console, entries: list[PatchEntry], *, title: str) -> None:
    table = Table(title=title, title_justify="left")
    table.add_column("upstream", style="dim")
    table.add_column("id")
    table.add_column("status")
    table.add_column("flags", overflow="fold")
    table.add_column("result", overflow="fold")
    table.add_column("date", style="dim")
    table.add_column("title", overflow="fold")
    for entry in entries:
        table.add_row(entry.upstream, entry.id, Text(entry.status.value, style=STATUS_STYLE[entry.status]),
                      ", ".join(entry.flags), entry.result, entry.date, entry.title)
    console.print(table)


def render_entry(console: Console, entry: PatchEntry, extra: dict[str, str]) -> None:
    console.print(f"[bold]{entry.ref}[/bold]  [{STATUS_STYLE[entry.status]}]{entry.status.value}[/]")
    console.print(f"  {entry.title}")
    rows = [("file", f"queues/{entry.upstream}/{entry.file}"), ("why", entry.why), ("flags", ", ".join(entry.flags)),
            ("result", entry.result), ("baseline", entry.baseline), ("date", entry.date), ("base", entry.base),
            ("notes", ", ".join(entry.notes)), ("supersedes", ", ".join(entry.supersedes)),
            ("contains", ", ".join(entry.contains)), ("requires", ", ".join(entry.requires)),
            ("salvaged", entry.salvaged), ("author", entry.author), *extra.items()]
    for key, value in rows:
        if value:
            console.print(f"  [dim]{key:>10}[/dim]  {value}")


def render_findings(console: Console, findings: list[Finding], *, ok_text: str) -> None:
    if not findings:
        console.print(f"[green]{ok_text}[/green]")
        return
    for finding in findings:
        where = finding.path + (f":{finding.line}" if finding.line else "")
        style = "red" if finding.severity == "error" else "yellow"
        console.print(f"[{style}]{finding.severity}[/{style}] {where + ': ' if where else ''}{finding.message} "
                      f"[dim]({finding.kind})[/dim]")


def render_flag_audit(console: Console, audit: FlagAudit) -> None:
    """Per flag: who reads it, defaults, how it is compared, the profile's value; then per patch; then findings."""
    table = Table(title=f"env flags · {audit.scope}", title_justify="left")
    table.add_column("flag")
    table.add_column("read by", overflow="fold")
    table.add_column("default")
    table.add_column("idiom", style="dim")
    table.add_column("off by default")
    if audit.profile:
        table.add_column("profile")
    table.add_column("where", style="dim", overflow="fold")
    for summary in audit.flags:
        off = {True: Text("yes", style="green"), False: Text("NO", style="bold red"), None: Text("?", style="yellow")}
        row: list[str | Text] = [summary.name, ", ".join(summary.patches), ", ".join(summary.defaults),
                                 ", ".join(summary.idioms), off[summary.default_off]]
        if audit.profile:
            row.append(summary.profile_value if summary.profile_value is not None else "")
        more = " …" if len(summary.reads) > 3 else ""
        row.append(", ".join(f"{r.path}:{r.line}" for r in summary.reads[:3]) + more)
        table.add_row(*row)
    console.print(table)
    for patch in audit.patches:
        found = ", ".join(patch.found) or "-"
        note = " [yellow](from hunks: does not apply)[/yellow]" if patch.approximate else ""
        console.print(f"  [dim]{patch.upstream}:[/dim]{patch.patch_id} [dim]({patch.status.value})[/dim] "
                      f"reads {found}; declares {', '.join(patch.declared) or '-'}{note}")
    render_findings(console, list(audit.findings), ok_text="no findings")


def render_export(console: Console, result: ExportResult) -> None:
    """Per upstream: the bundle, its pin and result tree, the patches in it, and which files were (re)written."""
    for bundle in result.bundles:
        console.print(f"[bold]{result.stack} · {bundle.upstream}[/bold] @ {short(bundle.base)} → "
                      f"{result.out_dir}/{bundle.bundle}  [dim]({result.format}, tree {short(bundle.tree)})[/dim]")
        if bundle.base_note:
            console.print(f"  [yellow]{bundle.base_note}[/yellow]")
        console.print(f"  {len(bundle.patches)} patches: {', '.join(bundle.patches)}")
        for item in bundle.files:
            style = "green" if item.action == "written" else "dim"
            console.print(f"  [{style}]{item.action:>9}[/{style}] {item.path}  [dim]sha256 {item.sha256[:16]}[/dim]")
    for upstream in result.skipped:
        console.print(f"[dim]{result.stack} · {upstream}: no patches, no bundle[/dim]")


def render_export_check(console: Console, report: ExportCheck) -> None:
    """One line per bundle (ok or not), then what is wrong with it."""
    for bundle in report.bundles:
        mark = "[green]ok[/green]" if bundle.ok else "[bold red]MISMATCH[/bold red]"
        console.print(f"{mark} {bundle.bundle} [dim]({bundle.stack} · {bundle.upstream}, {bundle.format})[/dim]")
        for finding in bundle.problems:
            style = "red" if finding.severity == "error" else "yellow"
            console.print(f"  [{style}]{finding.kind}[/{style}] {finding.message}")
    bad = sum(1 for b in report.bundles if not b.ok)
    console.print(f"{len(report.bundles)} bundle(s) checked in {report.out_dir}; "
                  + (f"[bold red]{bad} do not match the workspace[/bold red]" if bad else "[green]all match[/green]"))


REBASE_STEP_STYLE = {"applied": "green", "resolved": "green", "resolved (rerere)": "green", "skipped": "yellow",
                     "already-upstream": "cyan", "empty": "cyan", "conflict": "bold red", "pending": "dim"}
SIDE_STYLE = {"still-applies": "green", "needs-refresh": "yellow", "broken": "red", "already-upstream": "cyan"}
RANGE_DIFF_LINES = 200


def render_rebase(console: Console, report: RebaseReport) -> None:
    """A rebase.RebaseReport: per-patch results, breaking commits, the stop, side patches, before/after."""
    label = {"dry-run": "rebase (dry run: nothing was changed)", "stopped": "rebase stopped",
             "done": "rebase done", "aborted": "rebase aborted: everything is as before"}[report.state]
    console.print(f"[bold]{label}[/bold] · {report.stack or 'promoted queue'} · {report.upstream}: "
                  f"{short(report.old_pin)} → {short(report.new_pin)} ({report.ref}; {report.direction}, "
                  f"{report.commits_between} {'releases' if report.granularity == 'release' else 'commits'})")
    for note in report.notes:
        console.print(f"  [yellow]note:[/yellow] {note}")
    if report.state == "aborted":
        return
    table = Table(title_justify="left", show_lines=False)
    for name, style in (("#", "dim"), ("patch", ""), ("result", ""), ("git said", ""), ("commit", "dim"),
                        ("detail", "")):
        table.add_column(name, style=style or None, justify="right" if name == "#" else "left",
                         overflow="fold" if name == "detail" else "ellipsis")
    for number, step in enumerate(report.steps, 1):
        detail = step.detail
        if step.upstream_commit:
            detail = f"upstream {short(step.upstream_commit)} {step.upstream_subject}"
        elif step.outcome.offsets:
            detail = "; ".join(step.outcome.offsets)
        if step.followed:
            detail = "; ".join([*step.followed, detail] if detail else step.followed)
        table.add_row(str(number), step.patch_id, Text(step.kind.value, style=REBASE_STEP_STYLE[step.kind.value]),
                      Text(step.outcome.kind.value, style=KIND_STYLE[step.outcome.kind]), short(step.commit), detail)
    console.print(table)
    if report.breaking:
        console.print("[bold]which upstream release broke it[/bold] (release-level bisection: one step per release)"
                      if report.granularity == "release" else
                      "[bold]which upstream commit broke it[/bold] (first-parent bisection, no work tree)")
        for found in report.breaking:
            if not found.commit:
                console.print(f"  {found.patch_id}: {found.detail}")
                continue
            verb = "undoing" if found.undone else "at"
            checks = (f"{found.checks} checks ≤ {found.bound} for {found.searched} commits" if found.bound
                      else found.detail)
            console.print(f"  {found.patch_id}: {verb} [bold]{short(found.commit)}[/bold] {found.subject} "
                          f"→ {found.kind.value}  [dim]({checks})[/dim]")
    if report.conflict is not None:
        stop = report.conflict
        console.print(f"[bold red]conflict[/bold red] in {stop.patch_id} ({stop.source}); resolution work tree: "
                      f"[bold]{stop.worktree}[/bold]")
        for path in stop.files:
            console.print(f"  conflict markers: {path}")
        for path in stop.rejects:
            console.print(f"  rejected hunks (no 3-way merge possible): {path}")
        for line in stop.whole:
            console.print(f"  [red]failed as a whole:[/red] {line}")
        for path in stop.review:
            console.print(f"  [yellow]applied only with reduced context, review:[/yellow] {path}")
        for path in stop.rerere:
            console.print(f"  [green]resolved from a recorded resolution:[/green] {path}")
        for hunk in stop.hunks:
            which = f" hunk {hunk.hunk}" if hunk.hunk else ""
            console.print(f"  [dim]{hunk.file}{which}: {hunk.reason}[/dim]")
    if report.side:
        console.print("[bold]negative-archived and diagnostic patches on the new stack[/bold]")
        for check in report.side:
            at = f" on {check.base}" if check.base else " on top"
            console.print(f"  {check.patch_id} [dim]({check.status.value}{at})[/dim]: "
                          f"[{SIDE_STYLE[check.verdict]}]{check.verdict}[/] [dim]({check.outcome.kind.value})[/dim]")
    if report.queue_changes:
        counts: dict[str, int] = {}
        for change in report.queue_changes:
            counts[change.change] = counts.get(change.change, 0) + 1
        console.print("[bold]before/after[/bold] (paired by Patchq-Id): "
                      + ", ".join(f"{n} {k}" for k, n in counts.items()))
        for change in report.queue_changes:
            console.print(f"  {change.change:>9}  {change.patch_id}")
    if report.range_diff:
        lines = report.range_diff.splitlines()
        for line in lines[:RANGE_DIFF_LINES]:
            console.print(Text(line, style="dim"))
        if len(lines) > RANGE_DIFF_LINES:
            console.print(f"[dim]... {len(lines) - RANGE_DIFF_LINES} more lines in {report.range_diff_file}[/dim]")
    for line in report.left_out:
        console.print(f"  [yellow]left out:[/yellow] {line}")
    if report.state == "done":
        console.print(f"  wrote {len(report.files_changed)} file(s); new pin in {report.pin_written}; "
                      f"before/after kept in {report.range_diff_file}")
        if report.tree:
            mark = ("[green]regenerated files reproduce it[/green]" if report.verified
                    else "[yellow]regenerated files do not reproduce it exactly[/yellow]")
            console.print(f"  result tree {short(report.tree)}: {mark}")
    console.print(f"  [dim]{report.apply_checks} patch apply checks, {report.bisect_checks} of them bisection "
                  f"steps[/dim]")
    render_next(console, report.next_steps)


IMPORT_STYLE = {"imported": "green", "note": "cyan", "notes-only": "cyan", "duplicate": "yellow", "series": "dim",
                "metadata": "dim", "skipped": "bold red"}


def _relative_source(source: str, given: Sequence[Path]) -> str:
    """An input's name relative to the folder given on the command line (the folder itself is said once)."""
    for folder in given:
        prefix = str(folder).rstrip("/") + "/"
        if source.startswith(prefix) and len(given) == 1:
            return source[len(prefix):]
    return source


def _needs_summary(item: ImportItem) -> str:
    """What an imported patch sits on and which of its context lines were found nowhere, in one line."""
    summary = []
    if item.requires:
        summary.append("needs " + ", ".join(f"{item.upstream}:{r}" for r in item.requires))
    if item.missing_context:
        n = len(item.missing_context)
        summary.append(f"{n}{'+' if n >= 5 else ''} context line{'s' if n > 1 else ''} found nowhere")
    return "; ".join(summary)


def render_import(console: Console, report: ImportReport, given: Sequence[Path] = (), verbose: int = 0) -> None:
    """An importer.ImportReport: one row per input file (an mbox's messages and a split patch's parts folded into
    their file's row), names relative to the folder given; what import changed in each patch only with -v."""
    folders = [p for p in given if p.is_dir()]
    if len(folders) == 1 and len(given) == 1:
        console.print("[bold]import[/bold]" + (" (dry run: nothing written)" if report.dry_run else "") + " from")
        console.line(f"  {folders[0]}")
    elif report.dry_run:
        console.print("[bold]import[/bold] (dry run: nothing written)")
    groups: dict[str, list[ImportItem]] = {}
    for item in report.items:
        groups.setdefault(item.source.split("#", 1)[0], []).append(item)
    table = Table()
    table.add_column("input")
    table.add_column("became")
    table.add_column("patch")
    table.add_column("status")
    table.add_column("at pin")
    table.add_column("detail")
    for source, items in groups.items():
        actions: dict[str, int] = {}
        for item in items:
            actions[item.action.value] = actions.get(item.action.value, 0) + 1
        became = ", ".join(a if n == 1 else f"{n} {a}" for a, n in actions.items())
        style = IMPORT_STYLE.get(items[0].action.value, "") if len(actions) == 1 else ""
        patches = ", ".join(f"{i.upstream}:{i.patch_id}" if i.upstream and i.patch_id else (i.file or "")
                            for i in items if i.patch_id or i.file)
        statuses = ", ".join(dict.fromkeys(i.status for i in items if i.status))
        outcomes = ", ".join(dict.fromkeys(i.outcome for i in items if i.outcome))
        details = [d for i in items for d in (_needs_summary(i), i.reason) if d]
        if verbose:
            details += [r for i in items for r in i.remarks]
        table.add_row(_relative_source(source, folders), Text(became, style=style), patches, statuses, outcomes,
                      "; ".join(dict.fromkeys(details)))
    console.print(table)
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    counts: dict[str, int] = {}
    for item in report.items:
        counts[item.action.value] = counts.get(item.action.value, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in counts.items()) or "nothing"
    verb = "would write" if report.dry_run else "wrote"
    written = f"; {verb} {len(report.written)} file(s)" if report.accepted else "; nothing written"
    console.print(f"{report.inputs} input file(s): {summary}{written}")
    remarks = sum(len(i.remarks) for i in report.items)
    if remarks and not verbose:
        console.print(f"[dim]({remarks} remark(s) on what import adjusted: -v shows them)[/dim]")


def render_build(console: Console, report: BuildReport) -> None:
    """Affected targets per patch and per stack, then one line per build."""
    for item in report.per_patch:
        if item.targets:
            console.print(f"  [dim]{item.upstream}:[/dim]{item.patch_id} feeds {', '.join(item.targets)}")
    if not report.affected and not report.builds:
        console.print("[dim]no native target is affected: nothing to build[/dim]")
        return
    for target, paths in report.affected.items():
        more = f" (+{len(paths) - 3} more)" if len(paths) > 3 else ""
        console.print(f"  target [bold]{target}[/bold] is affected by {', '.join(paths[:3])}{more}")
    style = {"cached": "green", "built": "green", "failed": "bold red", "skipped-unavailable": "yellow",
             "would-build": "cyan"}
    for outcome in report.builds:
        kind = outcome.kind.value
        line = f"  build {outcome.target}: [{style.get(kind, 'white')}]{kind}[/]"
        if outcome.seconds:
            line += f" in {outcome.seconds:.1f}s"
        if outcome.why:
            line += f" — {outcome.why}"
        console.print(line)
        for note in outcome.notes:
            console.print(f"    [dim]{note}[/dim]")
        if outcome.failed:
            for tail in outcome.log_tail:
                console.print(f"    [dim]{tail}[/dim]")
            console.print(f"    log: {outcome.log}")
            if outcome.previous_key:
                console.print(f"    previous good output kept: {', '.join(outcome.previous_outputs)}")


def render_overlay(console: Console, result: OverlayResult | OverlayReport) -> None:
    """What an overlay or its revert changed in site-packages, and where the backup is."""
    from .overlay import OverlayResult  # loaded already: it made the result
    inner = result if isinstance(result, OverlayResult) else result.result
    console.print(f"{inner.action} {inner.package} {inner.version} in")
    console.line(f"  {inner.site_packages}")
    for label, paths in (("modified", inner.modified), ("created", inner.created), ("deleted", inner.deleted)):
        if paths:
            console.print(f"  {label}:")
            for path in paths:
                console.line(f"    {path}")
    if inner.action == "applied":
        console.print("  [dim]RECORD updated; marked in the dist-info's patchq.json[/dim]")
    if inner.action == "reverted":
        console.print("  [green]every file verified against its recorded hash[/green]" if inner.verified
                      else "  [red]verification failed[/red]")
    skipped = () if isinstance(result, OverlayResult) else result.skipped_native
    if skipped:
        console.print(f"  [yellow]not overlaid (need a build): {', '.join(skipped)}[/yellow]")
    console.print("  backup:")
    console.line(f"    {inner.backup}")


def render_overlay_status(console: Console, state: OverlayStatus) -> None:
    """overlay.OverlayStatus: overlaid or not, by what, and whether RECORD still matches the files."""
    console.print(f"[bold]{state.package} {state.version}[/bold] in")
    console.line(f"  {state.site_packages}")
    if not state.overlaid:
        console.print("  not overlaid by patchq" + (f" (last overlay: {state.journal_state})"
                                                     if state.journal_state else ""))
        return
    mark = state.mark
    console.print(f"  overlaid with stack [bold]{mark.get('stack', '?')}[/bold] ({mark.get('upstream', '?')})"
                  + (f" at {state.applied_at}" if state.applied_at else ""))
    if mark.get("tree"):
        console.print(f"  result tree {short(mark['tree'])}, pin {short(mark.get('pin', ''))}")
    for label, paths in mark.get("files", {}).items():
        if paths:
            console.print(f"  {label}:")
            for path in paths:
                console.line(f"    {path}")
    if state.drifted:
        console.print("  [red]changed since the overlay (RECORD no longer matches):[/red]")
        for path in state.drifted:
            console.line(f"    {path}")
    else:
        console.print("  [green]every overlaid file matches its RECORD hash[/green]")
    console.print(f"  mark: {state.dist_info}/patchq.json")
