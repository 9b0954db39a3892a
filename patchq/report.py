"""Render what the core returns: rich tables for people, one JSON document for machines.

The core never prints. Every command hands its result dataclass here; `to_json` turns any of them into plain
data, and the `render_*` functions draw the tables.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .model import ApplyReport, Finding, OutcomeKind, PatchEntry, Status

KIND_STYLE = {
    OutcomeKind.CLEAN: "green", OutcomeKind.OFFSET: "green", OutcomeKind.FUZZ: "yellow",
    OutcomeKind.THREEWAY: "yellow", OutcomeKind.ALREADY_UPSTREAM: "cyan", OutcomeKind.EMPTY: "cyan",
    OutcomeKind.CONFLICT: "bold red", OutcomeKind.NOT_REACHED: "dim",
}
STATUS_STYLE = {Status.PROMOTED: "green", Status.NEGATIVE_ARCHIVED: "red", Status.DIAGNOSTIC: "blue"}


def plain(value: Any) -> Any:
    """Dataclasses, enums, paths and tuples as JSON-ready data."""
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
    return json.dumps(plain(value), indent=2, sort_keys=False)


def short(sha: str) -> str:
    return sha[:12] if sha else ""


def render_apply(console: Console, report: ApplyReport) -> None:
    for up in report.upstreams:
        title = f"{report.stack} · {up.upstream} @ {short(up.pin)}"
        if up.checkout:
            title += f" → {up.checkout}"
        table = Table(title=title, title_justify="left", show_lines=False)
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
    for step in report.next_steps:
        console.print(f"[bold]next:[/bold] {step}")
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


def render_flag_audit(console: Console, audit) -> None:
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
        row = [summary.name, ", ".join(summary.patches), ", ".join(summary.defaults), ", ".join(summary.idioms),
               off[summary.default_off]]
        if audit.profile:
            row.append(summary.profile_value if summary.profile_value is not None else "")
        row.append(", ".join(f"{r.path}:{r.line}" for r in summary.reads[:3]) + (" …" if len(summary.reads) > 3 else ""))
        table.add_row(*row)
    console.print(table)
    for patch in audit.patches:
        found = ", ".join(patch.found) or "-"
        note = " [yellow](from hunks: does not apply)[/yellow]" if patch.approximate else ""
        console.print(f"  [dim]{patch.upstream}:[/dim]{patch.patch_id} [dim]({patch.status.value})[/dim] "
                      f"reads {found}; declares {', '.join(patch.declared) or '-'}{note}")
    render_findings(console, list(audit.findings), ok_text="no findings")


def render_export(console: Console, result) -> None:
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


def render_export_check(console: Console, report) -> None:
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


def render_rebase(console: Console, report) -> None:
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
            console.print(f"  [dim]{hunk.file}" + (f" hunk {hunk.hunk}" if hunk.hunk else "") + f": {hunk.reason}[/dim]")
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
    for step in report.next_steps:
        console.print(f"[bold]next:[/bold] {step}")


IMPORT_STYLE = {"imported": "green", "note": "cyan", "notes-only": "cyan", "duplicate": "yellow", "series": "dim",
                "metadata": "dim", "skipped": "bold red"}


def render_import(console: Console, report) -> None:
    """An importer.ImportReport: one row per input (or mbox message, or split part), then warnings and a summary."""
    table = Table(title="import" + (" (dry run: nothing written)" if report.dry_run else ""), title_justify="left")
    table.add_column("input", overflow="fold")
    table.add_column("became")
    table.add_column("patch", overflow="fold")
    table.add_column("status (rule)", overflow="fold")
    table.add_column("date", style="dim")
    table.add_column("at pin")
    table.add_column("detail", overflow="fold")
    for item in report.items:
        action = item.action.value
        patch = f"{item.upstream}:{item.patch_id}" if item.upstream and item.patch_id else (item.file or "")
        status = f"{item.status} [dim]({item.status_rule})[/dim]" if item.status else ""
        outcome = Text(item.outcome, style=KIND_STYLE.get(OutcomeKind(item.outcome), "")) if item.outcome else ""
        summary = []
        if item.requires:
            summary.append("needs " + ", ".join(f"{item.upstream}:{r}" for r in item.requires))
        if item.missing_context:
            n = len(item.missing_context)
            summary.append(f"{n}{'+' if n >= 5 else ''} context line{'s' if n > 1 else ''} found nowhere")
        detail = "\n".join(x for x in ("; ".join(summary), item.reason, *item.remarks) if x)
        table.add_row(item.source, Text(action, style=IMPORT_STYLE.get(action, "")), patch, status, item.date,
                      outcome, detail)
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



def render_build(console: Console, report) -> None:
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


def render_overlay(console: Console, result) -> None:
    inner = getattr(result, "result", result)
    console.print(f"{inner.action} {inner.package} {inner.version} in {inner.site_packages}")
    for label in ("modified", "created", "deleted"):
        paths = getattr(inner, label)
        if paths:
            console.print(f"  {label}: {', '.join(paths)}")
    if inner.action == "reverted":
        console.print("  [green]every file verified against its recorded hash[/green]" if inner.verified
                      else "  [red]verification failed[/red]")
    skipped = getattr(result, "skipped_native", ())
    if skipped:
        console.print(f"  [yellow]not overlaid (need a build): {', '.join(skipped)}[/yellow]")
    console.print(f"  backup: {inner.backup}")
