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
    for build in report.builds:
        console.print(f"  build {getattr(build, 'target', '?')}: {getattr(build, 'kind', '?')}")
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
            ("contains", ", ".join(entry.contains)), ("author", entry.author), *extra.items()]
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
