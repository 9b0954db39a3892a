"""`patchq trial`: apply a candidate beside its baseline, gate it, measure both sides alternately, and judge.

The steps a lab did by hand in shell scripts, in one place: the candidate (the stack plus `--with` patches) is
applied into its own checkout under `.patchq/trials/`, built where the stack's recipes say so, and its gates run
first; then the benchmark runs A, B, A, B ... (baseline, candidate) so that drift of the machine hits both sides,
or the baseline comes from the stack's recorded repeats. Every run is kept, failed and timed-out ones included, and
the verdict comes from the 95% interval of the difference (`stats.py`). This module measures and judges; writing
the results file and changing statuses is `results.py`'s job.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import stats
from .apply import apply_stack
from .benchspec import MetricMissing, MetricSpec, parse_metric, read_metric
from .build.builder import BuildKind, build_target
from .build.recipe import affected_targets
from .crashtest import TEST_KILL_ENV
from .errors import BadInput, EnvironmentFailure, NeedsYou
from .machine import load_average, machine_facts
from .model import ApplyReport, BenchSpec, GateSpec, PatchEntry
from .workspace import Workspace

OUTPUT_TAIL = 4000               # characters of a failed run's output kept in the results file
GATE_OUTPUT_TAIL = 64 * 1024     # a failing gate's output is what the person reads next: keep much more
KILL_GRACE = 3.0                 # seconds between SIGTERM and SIGKILL for a command that ran out of time
TRIALS_DIR = "trials"


@dataclass(frozen=True)
class Threshold:
    """`--min-effect` / `--max-loss`: an absolute amount in the metric's unit, or a percentage of the baseline."""

    amount: float
    percent: bool = False
    text: str = "0"

    @classmethod
    def parse(cls, text: str, option: str) -> Threshold:
        raw = text.strip()
        percent = raw.endswith("%")
        try:
            amount = float(raw[:-1] if percent else raw)
        except ValueError:
            raise BadInput(f"{option} {text!r} is not a number or a percentage like 2%") from None
        if amount < 0 or amount != amount:
            raise BadInput(f"{option} {text!r} must not be negative")
        return cls(amount, percent, raw)

    def absolute(self, baseline_mean: float | None) -> float:
        if not self.percent:
            return self.amount
        return abs(baseline_mean or 0.0) * self.amount / 100.0


@dataclass(frozen=True)
class TrialPlan:
    """What one trial does, resolved from pins.lock and the command line."""

    stack: str
    candidates: tuple[str, ...]          # `--with` refs, as given
    baseline: str                        # "stack" (re-measured) | "recorded"
    baseline_stack: str
    bench: BenchSpec
    gates: tuple[GateSpec, ...]
    min_effect: Threshold
    max_loss: Threshold
    method: str = "welch"                # "welch" | "bootstrap"
    verify: bool = False
    command: str = ""
    keep_checkouts: bool = False


@dataclass(frozen=True)
class CommandRun:
    """One run of a gate or benchmark command: how it ended and what it printed."""

    exit: int | None                     # None: killed after its timeout
    seconds: float
    stdout: str
    stderr: str

    @property
    def timed_out(self) -> bool:
        return self.exit is None

    def tail(self, limit: int) -> str:
        text = self.stdout + ("\n--- stderr ---\n" + self.stderr if self.stderr.strip() else "")
        return text if len(text) <= limit else "...\n" + text[-limit:]


@dataclass
class Side:
    """One side of a trial: which stack and extras, its checkout folder and the env patchq adds for it."""

    name: str                            # "baseline" | "candidate"
    stack: str
    extra: tuple[str, ...]
    folder: Path
    env: dict[str, str] = field(default_factory=dict)
    checkouts: dict[str, dict[str, str]] = field(default_factory=dict)
    builds: list[dict[str, Any]] = field(default_factory=list)


def resolve_plan(ws: Workspace, stack_name: str, *, with_refs: tuple[str, ...] = (), bench_cmd: str | None = None,
                 metric: str | None = None, gate_cmds: tuple[str, ...] = (), repeats: int | None = None,
                 warmup: int | None = None, timeout: float | None = None, better: str | None = None,
                 baseline: str | None = None, min_effect: str = "0", max_loss: str = "0", method: str = "welch",
                 verify: bool = False, command: str = "", keep_checkouts: bool = False) -> TrialPlan:
    """Merge the stack's `bench:`/`gates:` with the command line's overrides and check that a trial can run."""
    stack = ws.stack(stack_name)
    for ref in with_refs:
        entry = ws.find_patch(ref)
        if entry.upstream not in stack.upstreams:
            raise BadInput(f"{entry.ref} is a patch of {entry.upstream!r}, which stack {stack_name!r} does not use")
    bench = stack.bench
    if bench_cmd is not None or metric is not None:
        if bench is None and (bench_cmd is None or metric is None):
            raise BadInput(f"stack {stack_name!r} has no bench in pins.lock: give both --bench CMD and --metric SPEC",
                           path=str(ws.lock_path))
        bench = replace(bench or BenchSpec(cmd="", metric=""), cmd=bench_cmd or (bench.cmd if bench else ""),
                        metric=metric or (bench.metric if bench else ""))
    if bench is None:
        raise BadInput(f"stack {stack_name!r} has no bench: add 'bench: {{cmd, metric}}' to it in pins.lock or pass "
                       "--bench CMD --metric SPEC", path=str(ws.lock_path))
    try:
        parse_metric(bench.metric)
    except ValueError as exc:
        raise BadInput(f"--metric: {exc}") from None
    if repeats is not None:
        bench = replace(bench, repeats=repeats)
    if warmup is not None:
        bench = replace(bench, warmup=warmup)
    if timeout is not None:
        bench = replace(bench, timeout=timeout)
    if better is not None:
        bench = replace(bench, better=better)
    gates = stack.gates
    if gate_cmds:
        gates = tuple(_cli_gate(text, number, bench.timeout, bench.cwd) for number, text in enumerate(gate_cmds, 1))
    if verify:
        if with_refs:
            raise BadInput("--verify-result re-measures the stack itself; leave out --with")
        if stack.result is None or stack.result.value is None and not stack.result.record:
            raise BadInput(f"stack {stack_name!r} has no recorded result to verify (result.value or result.record)",
                           path=str(ws.lock_path))
        kind, other = "recorded", stack_name
    elif baseline in (None, "", stack_name):
        kind, other = "stack", stack_name
    elif baseline == "recorded":
        if stack.result is None or (stack.result.value is None and not stack.result.record):
            raise BadInput(f"--baseline recorded: stack {stack_name!r} has no recorded result", path=str(ws.lock_path))
        kind, other = "recorded", stack_name
    else:
        ws.stack(baseline)
        kind, other = "stack", baseline
    if not with_refs and not verify and other == stack_name:
        raise BadInput("nothing to try: name a candidate with --with STATUS:ID, compare with --baseline OTHER_STACK, "
                       "or re-measure the stack with --verify-result")
    if method not in ("welch", "bootstrap"):
        raise BadInput(f"unknown --method {method!r} (welch or bootstrap)")
    return TrialPlan(stack=stack_name, candidates=with_refs, baseline=kind, baseline_stack=other, bench=bench,
                     gates=gates, min_effect=Threshold.parse(min_effect, "--min-effect"),
                     max_loss=Threshold.parse(max_loss, "--max-loss"), method=method, verify=verify,
                     command=command, keep_checkouts=keep_checkouts)


_NAMED_GATE = re.compile(r"^([a-z0-9][a-z0-9._-]{0,63})=(.+)$", re.DOTALL)


def _cli_gate(text: str, number: int, timeout: float, cwd: str) -> GateSpec:
    """`--gate name=CMD` names the gate (lower-case name, so `FOO=1 cmd` stays a command); else gate-N.

    A gate from the command line runs where the bench runs."""
    match = _NAMED_GATE.match(text)
    if match:
        return GateSpec(name=match.group(1), cmd=match.group(2), timeout=timeout, cwd=cwd)
    return GateSpec(name=f"gate-{number}", cmd=text, timeout=timeout, cwd=cwd)


# ---- running commands ----------------------------------------------------------------------------------------------

def run_command(cmd: str, cwd: Path, env: dict[str, str], timeout: float) -> CommandRun:
    """bash -c CMD in its own process group; past `timeout` the whole group gets SIGTERM, then SIGKILL."""
    started = time.monotonic()
    proc = subprocess.Popen(["bash", "-c", cmd], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        _stop_group(proc)
        out, err = proc.communicate()
        code = None
    except BaseException:                 # Ctrl-C: the benchmark must not outlive the trial
        _stop_group(proc)
        raise
    return CommandRun(code, time.monotonic() - started, out.decode("utf-8", "replace"),
                      err.decode("utf-8", "replace"))


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, KILL_GRACE), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


# ---- the sides: checkouts, builds, environments --------------------------------------------------------------------

def _env_name(upstream: str) -> str:
    return "PATCHQ_CHECKOUT_" + re.sub(r"[^A-Z0-9]", "_", upstream.upper())


def side_env(ws: Workspace, side: Side, candidates: list[PatchEntry]) -> dict[str, str]:
    """What patchq sets for a side: the stack's profile, the candidate's flags (on), and where the checkouts are."""
    stack = ws.stack(side.stack)
    env = dict(stack.profile)
    for entry in candidates:
        for flag in entry.flags:
            env.setdefault(flag, "1")
    env["PATCHQ_SIDE"] = side.name
    env["PATCHQ_CHECKOUT"] = str(side.folder)
    for upstream in stack.upstreams:
        env[_env_name(upstream)] = str(side.folder / upstream)
    return env


def prepare_side(ws: Workspace, side: Side, *, targets: set[str], required: tuple[str, ...],
                 recipes: dict[str, Any]) -> tuple[ApplyReport, list[str]]:
    """Apply the side's stack into its own folder and build what it needs; returns the report and failed targets."""
    report = apply_stack(ws, side.stack, into=side.folder, extra=side.extra)
    if not report.ok:
        bad = next(o for u in report.upstreams for o in u.outcomes if not o.kind.ok)
        raise NeedsYou(f"the {side.name} ({side.stack}{' + ' + ', '.join(side.extra) if side.extra else ''}) does "
                       f"not apply: {bad.upstream}:{bad.patch_id} is {bad.kind.value}"
                       + (f" ({bad.detail})" if bad.detail else ""),
                       hint=f"see 'patchq apply {side.stack}" + "".join(f" --with {r}" for r in side.extra) + "'")
    for up in report.upstreams:
        side.checkouts[up.upstream] = {"pin": up.pin, "head": up.head, "tree": up.tree,
                                       "patches": ",".join(o.patch_id for o in up.outcomes if o.kind.applied)}
    for up in report.upstreams:
        if up.head and up.base and up.head != up.base:
            from .git import Repo
            changed = Repo(up.checkout).changed_paths(up.base, up.head)
            targets |= {t for t in affected_targets(recipes, up.upstream, changed) if recipes[t].build_by_default}
    failed = []
    from .build.stack import build_cache_dir
    for target in sorted(targets):
        recipe = recipes.get(target)
        if recipe is None:
            raise BadInput(f"bench build target {target!r} has no recipe in kernels/ "
                           f"(recipes: {', '.join(sorted(recipes)) or 'none'})")
        if recipe.upstream not in side.checkouts:
            continue
        outcome = build_target(recipe, side.folder / recipe.upstream, build_cache_dir())
        side.builds.append({"target": target, "kind": outcome.kind.value, "key": outcome.key, "why": outcome.why,
                            "log": outcome.log, "log_tail": list(outcome.log_tail),
                            "seconds": round(outcome.seconds, 3)})
        if outcome.kind == BuildKind.SKIPPED_UNAVAILABLE and target in required:
            raise EnvironmentFailure(f"the bench needs target {target!r}, which this machine cannot build: "
                                     f"{outcome.why}", path=recipe.path)
        if outcome.failed:
            failed.append(target)
        elif outcome.outputs:
            _restore_outputs(outcome.key, outcome.outputs, side.folder / recipe.upstream)
    return report, failed


def _restore_outputs(key: str, outputs: tuple[str, ...], checkout: Path) -> None:
    """A cached build's outputs live in the cache: copy them into the checkout, where the bench looks for them."""
    for output in outputs:
        path = Path(output)
        parts = path.parts
        if key not in parts:
            continue
        rel = Path(*parts[parts.index(key) + 1:])
        target = checkout / rel
        if target.exists() or not path.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            shutil.copytree(path, target, symlinks=True)
        else:
            shutil.copy2(path, target)


# ---- judging -------------------------------------------------------------------------------------------------------

def judge(interval: stats.Interval | None, *, better: str, min_effect: float, max_loss: float,
          candidate_failures: int, candidate_runs: int) -> tuple[str, str]:
    """promote / reject / neutral, and why, from the interval of candidate − baseline."""
    if candidate_failures:
        return "reject", f"{candidate_failures} of {candidate_runs} candidate runs failed or timed out"
    if interval is None:
        return "neutral", "fewer than two good runs on a side: no interval, so no decision (never promote on one run)"
    low, high = (interval.low, interval.high) if better == "higher" else (-interval.high, -interval.low)
    if low > min_effect:
        return "promote", f"the whole 95% interval of the gain [{low:+.4g}, {high:+.4g}] is above {min_effect:.4g}"
    if high < -max_loss:
        edge = f"-{max_loss:.4g}" if max_loss else "0"
        return "reject", f"the whole 95% interval of the gain [{low:+.4g}, {high:+.4g}] is below {edge}"
    return "neutral", f"the 95% interval of the gain [{low:+.4g}, {high:+.4g}] holds no decision " \
                      f"(promote needs its low end above {min_effect:.4g})"


def gain_interval(interval: stats.Interval, better: str) -> tuple[float, float, float]:
    """(gain, low, high) in the 'better' direction: positive is an improvement whichever way the metric points."""
    if better == "higher":
        return interval.value, interval.low, interval.high
    return -interval.value, -interval.high, -interval.low


# ---- the trial -----------------------------------------------------------------------------------------------------

def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def run_trial(ws: Workspace, plan: TrialPlan, *, recorded: dict[str, Any] | None = None,
              progress: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """Run the trial and return its results document (not yet written anywhere)."""
    from .build.stack import workspace_recipes
    spec = parse_metric(plan.bench.metric)
    recipes = workspace_recipes(ws)
    started = _now()
    trials = ws.state_dir / TRIALS_DIR
    if trials.exists():                  # left by a killed trial: we hold the workspace lock, so nobody uses them
        shutil.rmtree(trials, ignore_errors=True)
    folder = trials / f"{datetime.datetime.now(datetime.timezone.utc):%Y%m%dT%H%M%S}-{os.getpid()}"
    folder.mkdir(parents=True)
    candidates = [ws.find_patch(ref) for ref in plan.candidates]
    doc: dict[str, Any] = {
        "patchq_results": 1,
        "kind": "verify" if plan.verify else "trial",
        "stack": plan.stack,
        "candidate": [e.ref for e in candidates],
        "baseline": {"kind": plan.baseline, "stack": plan.baseline_stack},
        "started": started,
        "command": {"patchq": plan.command, "bench": plan.bench.cmd, "metric": plan.bench.metric,
                    "better": plan.bench.better, "unit": plan.bench.unit, "repeats": plan.bench.repeats,
                    "warmup": plan.bench.warmup, "timeout": plan.bench.timeout, "cwd": plan.bench.cwd,
                    "order": "alternate A,B" if plan.baseline == "stack" else "candidate only",
                    "method": plan.method, "min_effect": plan.min_effect.text, "max_loss": plan.max_loss.text,
                    "gates": [{"name": g.name, "cmd": g.cmd, "timeout": g.timeout, "cwd": g.cwd} for g in plan.gates]},
        "machine": machine_facts(),
    }
    try:
        cand = Side("candidate", plan.stack, plan.candidates, folder / "candidate")
        base = Side("baseline", plan.baseline_stack, (), folder / "baseline") if plan.baseline == "stack" else None
        cand.env = side_env(ws, cand, candidates)
        if base is not None:
            base.env = side_env(ws, base, [])
        progress(f"applying the candidate into {ws.rel(cand.folder)}")
        targets = set(plan.bench.build)
        _, failed = prepare_side(ws, cand, targets=targets, required=plan.bench.build, recipes=recipes)
        doc["env"] = {"candidate": _recorded_env(cand.env)}
        doc["checkouts"] = {"candidate": cand.checkouts}
        doc["builds"] = {"candidate": cand.builds}
        doc["gates"] = []
        doc["runs"] = []
        if failed:
            return _finish(doc, "reject", f"gate build:{failed[0]} failed (the candidate does not build)", started)
        for gate in plan.gates:
            progress(f"gate {gate.name}: {gate.cmd}")
            result = run_command(gate.cmd, _cwd(cand, gate.cwd), _child_env(cand.env), gate.timeout)
            passed = result.exit == 0
            doc["gates"].append({"name": gate.name, "cmd": gate.cmd, "exit": result.exit,
                                 "status": "passed" if passed else ("timeout" if result.timed_out else "failed"),
                                 "seconds": round(result.seconds, 3),
                                 "output": result.tail(2000 if passed else GATE_OUTPUT_TAIL)})
            if not passed:
                why = "timed out" if result.timed_out else f"exit {result.exit}"
                return _finish(doc, "reject", f"gate {gate.name} failed ({why})", started)
        if base is not None:
            progress(f"applying the baseline into {ws.rel(base.folder)}")
            _, failed = prepare_side(ws, base, targets=targets, required=plan.bench.build, recipes=recipes)
            doc["env"]["baseline"] = _recorded_env(base.env)
            doc["checkouts"]["baseline"] = base.checkouts
            doc["builds"]["baseline"] = base.builds
            if failed:
                raise NeedsYou(f"the baseline ({base.stack}) does not build: target {failed[0]} failed; see "
                               f"{base.builds[-1]['log']}")
        doc["load_average_before"] = load_average()
        order = [s for s in (base, cand) if s is not None]
        for phase, count in (("warmup", plan.bench.warmup), ("measure", plan.bench.repeats)):
            for index in range(1, count + 1):
                for side in order:
                    doc["runs"].append(_bench_run(plan, spec, side, phase, index, progress))
        doc["load_average_after"] = load_average()
        doc["statistics"], verdict, reason = _statistics(plan, doc["runs"], recorded)
        return _finish(doc, verdict, reason, started)
    finally:
        if not plan.keep_checkouts:
            shutil.rmtree(folder, ignore_errors=True)
            if trials.exists() and not any(trials.iterdir()):
                trials.rmdir()


def _recorded_env(env: dict[str, str]) -> dict[str, str]:
    """The variables patchq set for a side (the caller's own environment is not recorded: it may hold secrets)."""
    return {k: v for k, v in env.items() if not k.startswith("PATCHQ_CHECKOUT")}


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.pop(TEST_KILL_ENV, None)
    env.update(extra)
    return env


def _cwd(side: Side, rel: str) -> Path:
    folder = side.folder / rel if rel else side.folder
    if not folder.is_dir():
        raise BadInput(f"the command's folder {rel!r} is not in the {side.name} checkout (its folders: "
                       f"{', '.join(sorted(p.name for p in side.folder.iterdir()))})")
    return folder


def _bench_run(plan: TrialPlan, spec: MetricSpec, side: Side, phase: str, index: int,
               progress: Callable[[str], None]) -> dict[str, Any]:
    env = _child_env({**side.env, "PATCHQ_RUN": f"{phase}-{index}"})
    cwd = _cwd(side, plan.bench.cwd)
    result = run_command(plan.bench.cmd, cwd, env, plan.bench.timeout)
    run: dict[str, Any] = {"side": side.name, "phase": phase, "index": index, "exit": result.exit,
                           "seconds": round(result.seconds, 4), "value": None}
    if result.timed_out:
        run.update(status="timeout", error=f"killed after {plan.bench.timeout:g} s")
    elif result.exit != 0:
        run.update(status="failed", error=f"exit {result.exit}")
    else:
        try:
            run.update(status="ok", value=read_metric(spec, result.stdout, result.stderr, cwd))
        except MetricMissing as exc:
            run.update(status="no-metric", error=str(exc))
    if run["status"] != "ok":
        run["output"] = result.tail(OUTPUT_TAIL)
    shown = f"{run['value']:.6g}" if run["value"] is not None else run["status"] + f" ({run.get('error')})"
    progress(f"{phase} {index} {side.name}: {shown}")
    return run


def _statistics(plan: TrialPlan, runs: list[dict[str, Any]], recorded: dict[str, Any] | None
                ) -> tuple[dict[str, Any], str, str]:
    measured = [r for r in runs if r["phase"] == "measure"]
    cand_runs = [r for r in measured if r["side"] == "candidate"]
    cand = stats.summarize([r["value"] for r in cand_runs if r["status"] == "ok"])
    failures = sum(1 for r in cand_runs if r["status"] != "ok")
    base_failures = sum(1 for r in measured if r["side"] == "baseline" and r["status"] != "ok")
    interval: stats.Interval | None
    if plan.baseline == "stack":
        base = stats.summarize([r["value"] for r in measured if r["side"] == "baseline" and r["status"] == "ok"])
        interval = stats.difference(base, cand, plan.method)
        source = f"stack {plan.baseline_stack}, re-measured in this run (A,B alternating)"
    else:
        assert recorded is not None
        if recorded.get("values") and len(recorded["values"]) >= 2:
            base = stats.summarize(recorded["values"])
            interval = stats.difference(base, cand, plan.method)
            source = f"recorded repeats of stack {plan.stack} ({recorded['source']})"
        else:
            base = stats.Summary(1, recorded["value"], None, (recorded["value"],))
            interval = stats.one_sample_interval(cand, recorded["value"]) if cand.n >= 2 else None
            source = f"recorded value {recorded['value']:g} of stack {plan.stack} (no repeats recorded)"
    min_effect = plan.min_effect.absolute(base.mean)
    max_loss = plan.max_loss.absolute(base.mean)
    if plan.verify:
        verdict, reason = _verify_verdict(interval, cand, base, plan, min_effect, failures)
    else:
        verdict, reason = judge(interval, better=plan.bench.better, min_effect=min_effect, max_loss=max_loss,
                                candidate_failures=failures, candidate_runs=len(cand_runs))
    out: dict[str, Any] = {
        "baseline": _side_stats(base), "candidate": _side_stats(cand), "baseline_source": source,
        "failed_runs": {"baseline": base_failures, "candidate": failures},
        "min_effect": min_effect, "max_loss": max_loss, "difference": None, "gain": None, "relative": None,
    }
    if interval is not None:
        gain, low, high = gain_interval(interval, plan.bench.better)
        out["difference"] = {"value": interval.value, "low": interval.low, "high": interval.high,
                             "method": interval.method, "df": interval.df, "confidence": interval.confidence,
                             "note": interval.note}
        out["gain"] = {"value": gain, "low": low, "high": high}
        if base.mean:
            out["relative"] = {"value": gain / abs(base.mean), "low": low / abs(base.mean),
                               "high": high / abs(base.mean)}
    if cand.n >= 2 and cand.sd is not None:
        ci = stats.t_quantile(0.975, cand.n - 1) * cand.sd / cand.n ** 0.5
        out["candidate"]["ci95_half_width"] = ci
    return out, verdict, reason


def _verify_verdict(interval: stats.Interval | None, cand: stats.Summary, base: stats.Summary, plan: TrialPlan,
                    tolerance: float, failures: int) -> tuple[str, str]:
    unit = f" {plan.bench.unit}" if plan.bench.unit else ""
    if failures:
        return "differs", f"{failures} runs failed or timed out"
    if interval is None or cand.mean is None or cand.sd is None:
        return "differs", "fewer than two good runs: nothing to compare"
    half = stats.t_quantile(0.975, cand.n - 1) * cand.sd / cand.n ** 0.5
    now = f"{cand.mean:.4g} ± {half:.2g}{unit}"
    was = f"{base.mean:.4g}{unit}" if base.mean is not None else "nothing"
    if interval.low <= tolerance and interval.high >= -tolerance:
        return "still", f"regenerated and still {now} (recorded {was})"
    return "differs", f"regenerated, but now {now} against the recorded {was} " \
                      f"(difference {interval.value:+.4g}, 95% interval [{interval.low:+.4g}, {interval.high:+.4g}])"


def _side_stats(summary: stats.Summary) -> dict[str, Any]:
    return {"n": summary.n, "mean": summary.mean, "sd": summary.sd, "values": list(summary.values)}


def _finish(doc: dict[str, Any], verdict: str, reason: str, started: str) -> dict[str, Any]:
    doc["verdict"] = verdict
    doc["reason"] = reason
    doc["finished"] = _now()
    doc.setdefault("statistics", None)
    return doc
