"""`patchq capture`: a live tree (hand-edited source tree or installed package) back into the queue as patches."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .cmdbase import STATUS_CHOICES, Context, cli, pass_ctx
from .output import Console
from .table import Table

if TYPE_CHECKING:
    from .capture import CaptureReport


@cli.command("capture")
@click.argument("upstream", metavar="UPSTREAM")
@click.option("--from", "source", required=True, type=click.Path(path_type=Path), metavar="PATH",
              help="A source tree of the upstream (git or not), or an installed package folder "
                   "such as .venv/lib/python3.12/site-packages/vllm.")
@click.option("--id", "patch_id", default="", help="Id of the new patch (default: live-<package>-<date>).")
@click.option("--status", "-s", type=STATUS_CHOICES, default="diagnostic", show_default=True,
              help="Status of the new patch (diagnostic keeps it out of status-selected stacks until you promote it).")
@click.option("--stack", "stack_name", default="", metavar="STACK",
              help="Create or update STACK so that 'patchq apply STACK' applies exactly the captured patches.")
@click.option("--decompose", is_flag=True,
              help="Attribute the change to queue patches; write only what none of them explains.")
@click.option("--dry-run", is_flag=True, help="The whole report, verification included; write nothing.")
@pass_ctx
def capture_cmd(c: Context, upstream: str, source: Path, patch_id: str, status: str, stack_name: str,
                decompose: bool, dry_run: bool) -> None:
    """Capture the live tree at PATH as a snapshot patch on UPSTREAM's pin (with --decompose: queue patches plus a
    residual), verified to reproduce every captured file before anything is written."""
    from .capture import capture
    from .model import Status
    with contextlib.ExitStack() as stack:
        if dry_run:
            ws, t = stack.enter_context(c.reading(f"capture {upstream} --dry-run")), None
        else:
            ws, t = stack.enter_context(c.txn(f"capture {upstream}"))
        report = capture(ws, t, upstream, source, patch_id=patch_id, status=Status.parse(status),
                         stack_name=stack_name, decompose=decompose, dry_run=dry_run)
    c.emit(report, lambda: render_capture(c.console, report))


def render_capture(console: Console, report: CaptureReport) -> None:
    where = report.repo_folder or "the repository root"
    what = f"{report.package} {report.version}".strip() or report.source
    console.print(f"[bold]capture[/bold] {what} ({report.kind}) → {report.upstream} @ {report.pin[:12]}, "
                  f"mapped onto {where}")
    table = Table(show_header=False, title_justify="left")
    table.add_column("what", style="dim")
    table.add_column("value", overflow="fold")
    table.add_row("files seen", f"{report.files_seen} ({report.unchanged} as at the pin)")
    table.add_row("captured", f"{len(report.captured)} ({len(report.changed)} changed, {len(report.new)} new)")
    ignored = ", ".join(f"{n} {k}" for k, n in report.ignored.items()) or "none"
    table.add_row("ignored", f"{sum(report.ignored.values())} ({ignored})")
    if report.missing:
        table.add_row("not in the folder", f"{len(report.missing)} files of the pin (reported, not deletions)")
    if report.attributed or report.not_attributed:
        table.add_row("attributed", ", ".join(a.patch for a in report.attributed) or "none")
    for skipped in report.not_attributed:
        table.add_row(f"  not {skipped.patch}", skipped.reason)
    if report.unseen:
        table.add_row("unseen", f"{len(report.unseen)} files the attributed patches change that the folder "
                                f"does not show: {', '.join(report.unseen[:5])}")
    table.add_row("residual", f"{len(report.residual_files)} files, +{report.residual_added} "
                              f"-{report.residual_removed} lines, {report.residual_bytes} bytes"
                  + (f" → {report.patch} ({report.patch_file})" if report.patch else ""))
    if report.stack:
        table.add_row("stack", report.stack)
    table.add_row("result tree", report.result_tree)
    table.add_row("written", "nothing (dry run)" if report.dry_run else ", ".join(report.written) or "nothing")
    console.print(table)
