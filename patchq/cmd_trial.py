"""`patchq trial` and `patchq results`: the commands; the work is in trial.py, results.py and svgplot.py."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .cmdbase import Context, cli, pass_ctx
from .errors import EXIT_NEEDS_YOU, BadInput
from .table import Table, Text

if TYPE_CHECKING:
    from .results import Recorded


def _json_flag(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    obj = ctx.find_object(Context)
    if value and obj is not None:
        obj.json = True
    return value


JSON_OPTION = click.option("--json", "json_local", is_flag=True, expose_value=False, callback=_json_flag,
                           help="Print the report as one JSON document.")


@cli.command()
@click.argument("stack_name", metavar="STACK")
@click.option("--with", "with_refs", multiple=True, metavar="STATUS:ID", help="The candidate: patches added to STACK.")
@click.option("--bench", "bench_cmd", metavar="CMD", help="Benchmark command (overrides the stack's bench.cmd).")
@click.option("--metric", metavar="SPEC", help="Regex with one group, or json:[FILE:]$.path (overrides bench.metric).")
@click.option("--gate", "gates", multiple=True, metavar="[NAME=]CMD", help="Gate command; replaces the stack's gates.")
@click.option("--repeats", type=click.IntRange(1, 10000), help="Measured runs per side (default: bench.repeats).")
@click.option("--warmup", type=click.IntRange(0, 10000), help="Unmeasured runs per side first (default: bench.warmup).")
@click.option("--timeout", type=click.FloatRange(min=0.001), help="Seconds one benchmark run may take.")
@click.option("--better", type=click.Choice(["higher", "lower"]), help="Which way the metric improves.")
@click.option("--baseline", metavar="STACK|recorded",
              help="Re-measure another stack as the baseline, or take the stack's recorded repeats.")
@click.option("--min-effect", default="0", show_default=True, metavar="X[%]",
              help="Promote only when the interval's low end is above this gain.")
@click.option("--max-loss", default="0", show_default=True, metavar="X[%]",
              help="Reject only when the interval's high end is below minus this.")
@click.option("--method", type=click.Choice(["welch", "bootstrap"]), default="welch", show_default=True,
              help="How the 95% interval is made.")
@click.option("--decide", is_flag=True, help="Act on the verdict: promote or archive the patch, update the stack.")
@click.option("--verify-result", "verify", is_flag=True, help="Re-measure STACK against its own recorded result.")
@click.option("--keep-checkouts", is_flag=True, help="Leave the trial's checkouts under .patchq/trials/.")
@JSON_OPTION
@pass_ctx
def trial(c: Context, stack_name: str, with_refs: tuple[str, ...], bench_cmd: str | None, metric: str | None,
          gates: tuple[str, ...], repeats: int | None, warmup: int | None, timeout: float | None, better: str | None,
          baseline: str | None, min_effect: str, max_loss: str, method: str, decide: bool, verify: bool,
          keep_checkouts: bool) -> None:
    """Apply a candidate beside STACK, run its gates, measure both sides alternately, and judge it."""
    from .results import record, recorded_baseline
    from .trial import resolve_plan, run_trial
    from .txn import pending
    root = c.root()
    finished = pending(root)                # a decision a killed trial committed: the transaction finishes it
    with c.txn(f"trial {stack_name}") as (ws, t):
        plan = resolve_plan(ws, stack_name, with_refs=with_refs, bench_cmd=bench_cmd, metric=metric, gate_cmds=gates,
                            repeats=repeats, warmup=warmup, timeout=timeout, better=better, baseline=baseline,
                            min_effect=min_effect, max_loss=max_loss, method=method, verify=verify,
                            command=shlex.join(["patchq", *sys.argv[1:]]), keep_checkouts=keep_checkouts)
        recorded = recorded_baseline(ws, stack_name) if plan.baseline == "recorded" else None
        progress: Callable[[str], None] = ((lambda line: None) if c.json or c.quiet
                                           else (lambda line: click.echo(f"  {line}", err=True)))
        if finished:
            progress("finished recording an interrupted trial first")
        doc = run_trial(ws, plan, recorded=recorded, progress=progress)
        saved = record(ws, t, doc, decide=decide)
    c.emit({"result": doc, "file": saved.results_file, "changed": saved.changed, "decided": saved.decided,
            "next_steps": saved.next_steps}, lambda: _render_trial(c, doc, saved))
    if doc["kind"] == "verify" and doc["verdict"] != "still":
        sys.exit(EXIT_NEEDS_YOU)


def _render_trial(c: Context, doc: dict[str, Any], saved: Recorded) -> None:
    console = c.console
    unit = doc["command"].get("unit") or ""
    for gate in doc.get("gates") or []:
        style = "green" if gate["status"] == "passed" else "red"
        console.print(f"gate [bold]{gate['name']}[/bold]: [{style}]{gate['status']}[/{style}] "
                      f"({gate['seconds']:.2f} s)")
        if gate["status"] != "passed":
            console.print(Text(gate["output"].rstrip()[-2000:], style="dim"))
    st = doc.get("statistics")
    if st:
        table = Table(title=f"{doc['stack']}: {', '.join(doc['candidate']) or doc['kind']}", title_justify="left")
        for column in ("side", "n", "mean", "sd", f"repeats{' (' + unit + ')' if unit else ''}"):
            table.add_column(column)
        for side in ("baseline", "candidate"):
            s = st[side]
            failed = st["failed_runs"].get(side, 0)
            table.add_row(side, f"{s['n']}" + (f" (+{failed} failed)" if failed else ""),
                          "" if s["mean"] is None else f"{s['mean']:.6g}", "" if s["sd"] is None else f"{s['sd']:.3g}",
                          " ".join(f"{v:.4g}" for v in s["values"]))
        console.print(table)
        console.print(f"baseline: {st['baseline_source']}")
        if st.get("gain"):
            g, d = st["gain"], st["difference"]
            rel = st.get("relative")
            pct = f" ({rel['value'] * 100:+.1f}%)" if rel else ""
            df = f", df {d['df']:.1f}" if d.get("df") else ""
            console.print(f"gain {g['value']:+.4g} {unit}{pct}, 95% interval [{g['low']:+.4g}, {g['high']:+.4g}] "
                          f"({d['method']}{df})")
    for run in doc.get("runs") or []:
        if run["status"] != "ok":
            console.print(f"[red]{run['phase']} {run['index']} {run['side']}: {run['status']}[/red] "
                          f"({run.get('error', '')})")
    from .svgplot import VERDICT_COLOUR  # svgplot's XML helper pulls in urllib: not at start-up
    colour = VERDICT_COLOUR.get(doc["verdict"], "white")
    console.print(f"[bold {colour}]{doc['verdict']}[/bold {colour}]: {doc['reason']}")
    if saved.decided:
        console.print(f"decided: {', '.join(saved.changed) or 'no status change'}")
    from .report import render_next  # each quoted command again on a line of its own
    render_next(console, saved.next_steps)


@cli.command()
@click.argument("target", metavar="[STACK|ID]", required=False)
@click.option("--plot", is_flag=True, help="Write an SVG picture of each listed trial beside its results file.")
@JSON_OPTION
@pass_ctx
def results(c: Context, target: str | None, plot: bool) -> None:
    """The trials recorded under results/: all, a stack's, a patch's, or one by its id."""
    from .results import select_results
    from .svgplot import render
    from .txn import atomic_write
    ws = c.ws()                    # finishes a decision a killed trial committed, unless a command runs now
    docs = select_results(ws, target)
    if target and not docs:
        raise BadInput(f"no trials recorded for {target!r} under results/")
    plots = []
    if plot:
        for doc in docs:
            path = ws.root / Path(doc["_path"]).with_suffix(".svg")
            atomic_write(path, render(doc).encode())
            plots.append(ws.rel(path))
    rows = [{"id": d.get("id", Path(d["_path"]).stem), "file": d["_path"], "stack": d["stack"], "kind": d["kind"],
             "candidate": d.get("candidate", []), "verdict": d.get("verdict"), "reason": d.get("reason"),
             "started": d.get("started"), "decided": d.get("decided", False),
             "gain": (d.get("statistics") or {}).get("gain"), "unit": d["command"].get("unit", "")} for d in docs]
    c.emit({"trials": rows, "plots": plots}, lambda: _render_results(c, rows, plots))


def _render_results(c: Context, rows: list[dict[str, Any]], plots: list[str]) -> None:
    from .svgplot import VERDICT_COLOUR
    if not rows:
        c.console.print("no trials recorded yet (results/ is empty); run 'patchq trial'")
        return
    table = Table(title="trials", title_justify="left")
    for column in ("date", "stack", "candidate", "verdict", "gain (95%)", "file"):
        table.add_column(column, overflow="fold")
    for row in rows:
        g = row["gain"]
        gain = f"{g['value']:+.4g} [{g['low']:+.4g}, {g['high']:+.4g}] {row['unit']}".strip() if g else ""
        verdict = row["verdict"] + (" (decided)" if row["decided"] else "")
        table.add_row((row["started"] or "")[:10], row["stack"], ", ".join(row["candidate"]) or row["kind"],
                      Text(verdict, style=VERDICT_COLOUR.get(row["verdict"], "")), gain, row["file"])
    c.console.print(table)
    for path in plots:
        c.console.print(f"plot: {path}")
