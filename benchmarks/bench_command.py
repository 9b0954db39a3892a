"""Every row of issue 17's table, as the `patchq` command costs it, against its baseline in the same interleaved run.

    python benchmarks/bench_command.py [--rounds 5] [--rows apply,into,rebase,audit,cold,copy] [--compare DIR]
                                       [--json FILE] [--sdist FILE]

Rows (whole process unless it says in-process; each round runs every row's patchq and baseline one after the other,
so a machine that slows down slows both):

  apply        `patchq apply` onto its existing checkout (moved back to the pin outside the timed part) vs
               sequential `git apply` of the same 20 patch files in a work tree (4,200-file tree, bench_apply's)
  apply-check  `patchq apply --check` vs the same sequential `git apply`
  in-process   `apply_stack` of both, on a loaded workspace, vs the same baseline
  into         `patchq apply --into NEW` vs `git worktree add NEW` of the pin
  rebase       `patchq rebase --onto vllm@latest` (bench_rebase's 24 patches over 600 commits) vs `git rebase`
  audit        `patchq check` and `patchq flags` on a generated 218-patch workspace (benchmarks/lab_workspace.py),
               with the analysis cache warm and cold; in-process `audit_workspace` beside them
  cold         `patchq apply` from an empty cache with the sdist present vs tar + git init/add/commit + git apply
  cold-real    with --sdist FILE (a real release archive, e.g. vLLM's from PyPI): the same with an empty queue
  copy         experiments behind `--into`: copying a checkout (`cp -a --reflink=auto`), and a fresh clone's
               checkout with 1 and 2 parallel-checkout workers, each vs `git worktree add`

Medians with minima in brackets; ratios are of medians (of minima in brackets). `--compare DIR` also runs every
whole-process patchq command with DIR's patchq (another checkout, e.g. the commit before a change), interleaved,
for before/after figures from one run. PYTHONDONTWRITEBYTECODE is removed from the children's environment, so
they run from compiled bytecode as an installed patchq does.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import bench_apply  # noqa: E402
import bench_rebase  # noqa: E402
import lab_workspace  # noqa: E402
from patchq.apply import apply_stack  # noqa: E402
from patchq.audit import audit_workspace  # noqa: E402
from patchq.sources import mirror_path  # noqa: E402
from patchq.workspace import load_workspace  # noqa: E402

TARGETS = {"apply": "<= 1.5x", "apply-check": "<= 0.5x", "into": "<= 0.5x", "rebase": "<= 3x",
           "audit": "<= 2 s", "cold": "<= 1.2x"}


@dataclass
class Row:
    name: str
    what: str
    baseline_what: str
    patchq: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    before: list[float] = field(default_factory=list)      # --compare DIR's patchq, same command
    cpu: dict[str, list[float]] = field(default_factory=dict)   # side -> CPU seconds per round


def child_env(cache: Path, tree: Path = ROOT) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
    others = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and Path(p).resolve() != ROOT]
    env.update(PATCHQ_CACHE=str(cache), PYTHONPATH=os.pathsep.join([str(tree), *others]), COLUMNS="160")
    return env


def patchq_cmd(args: list[str], cwd: Path, cache: Path, tree: Path = ROOT, ok=(0,),
               extra_env: dict[str, str] | None = None) -> Callable[[], None]:
    def run() -> None:
        proc = subprocess.run([sys.executable, "-m", "patchq", *args], cwd=cwd,
                              env={**child_env(cache, tree), **(extra_env or {})},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if proc.returncode not in ok:
            raise SystemExit(f"patchq {' '.join(args)} exited {proc.returncode}: {proc.stderr.decode()[-2000:]}")
    return run


CPU: list[float] = []          # CPU seconds (this process and its children) of the last timed call


def _cpu() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn: Callable[[], object]) -> float:
    """Wall seconds of `fn`; its CPU seconds (user + system, children included) go to CPU[0]."""
    cpu = _cpu()
    started = time.perf_counter()
    fn()
    wall = time.perf_counter() - started
    CPU[:] = [_cpu() - cpu]
    return wall


def cli_timer(cmd: Callable[[], None], prepare: Callable[[], None] | None = None) -> Callable[[], float]:
    def run() -> float:
        if prepare:
            prepare()
        return timed(cmd)
    return run


# ---- setups ------------------------------------------------------------------------------------------------------

class ApplySetup:
    """bench_apply's 4,200-file tree and 20-patch queue; a work tree for `git apply`; patchq's warm checkout."""

    def __init__(self, tmp: Path, cache: Path) -> None:
        self.tmp, self.cache = tmp, cache
        self.upstream = tmp / "upstream"
        self.upstream.mkdir()
        self.base = bench_apply.build_upstream(self.upstream, 4200)
        self.ws = tmp / "ws"
        self.ws.mkdir()
        self.patches = bench_apply.make_queue(self.upstream, self.base, self.ws, 20)
        self.work = tmp / "work"
        bench_apply.git(tmp, "clone", "-q", str(self.upstream), str(self.work))
        os.environ["PATCHQ_CACHE"] = str(cache)
        patchq_cmd(["apply", "bench"], self.ws, cache)()            # mirror and checkout, untimed
        self.checkout = self.ws / ".patchq" / "checkouts" / "bench" / "vllm"
        self.into_count = 0

    def reset_work(self) -> None:
        bench_apply.git(self.work, "reset", "-q", "--hard", self.base)
        bench_apply.git(self.work, "clean", "-qfdx")

    def git_apply(self) -> None:
        for patch in self.patches:
            bench_apply.git(self.work, "apply", str(patch))

    def reset_checkout(self) -> None:
        bench_apply.git(self.checkout, "reset", "-q", "--hard", self.base)

    def fresh_into(self) -> Path:
        self.into_count += 1
        target = self.tmp / "into" / f"n{self.into_count}"
        shutil.rmtree(self.tmp / "into", ignore_errors=True)
        (self.tmp / "into").mkdir()
        return target

    def worktree_add(self) -> float:
        target = self.tmp / "wt-add"
        if target.exists():
            bench_apply.git(self.work, "worktree", "remove", "--force", str(target))
        bench_apply.git(self.work, "worktree", "prune")
        return timed(lambda: bench_apply.git(self.work, "worktree", "add", "-q", "--detach", str(target),
                                             self.base))


class ColdSetup:
    """The same tree as a release tarball: pins.lock names an unreachable git url and the tarball as archive."""

    def __init__(self, tmp: Path, apply: ApplySetup) -> None:
        import hashlib
        self.tmp = tmp
        self.sdist = tmp / "vllm-0.0.1.tar.gz"
        with tarfile.open(self.sdist, "w:gz") as tar:
            tar.add(apply.upstream, arcname="vllm-0.0.1", filter=lambda m: None if "/.git" in m.name or
                    m.name.endswith(".git") else m)
        self.sha = hashlib.sha256(self.sdist.read_bytes()).hexdigest()
        self.ws = tmp / "ws-cold"
        shutil.copytree(apply.ws, self.ws, ignore=shutil.ignore_patterns(".patchq"))
        lock = (self.ws / "pins.lock").read_text()
        lock = lock.replace(f"url: {apply.upstream}", f"url: {tmp / 'unreachable.git'}\n    archive:\n"
                            f"      url: {self.sdist}\n      sha256: {self.sha}")
        (self.ws / "pins.lock").write_text(lock)
        self.patches = apply.patches
        self.cache = tmp / "cold-cache"
        self.round = 0
        self.parts: dict[str, list[float]] = {}     # where the time of each side goes, per round

    def prepare(self) -> None:
        shutil.rmtree(self.cache, ignore_errors=True)
        shutil.rmtree(self.ws / ".patchq", ignore_errors=True)
        folder = self.cache / "archives" / self.sha
        folder.mkdir(parents=True)
        shutil.copy2(self.sdist, folder / self.sdist.name)
        os.sync()        # the last round's files written back now, not during this run's (either side's) writes

    def baseline(self) -> float:
        work = self.tmp / "cold-git"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        os.sync()
        marks: list[float] = []

        def run() -> None:
            marks.append(time.perf_counter())
            subprocess.run(["tar", "xzf", str(self.sdist), "--no-same-owner", "-C", str(work)], check=True)
            marks.append(time.perf_counter())
            tree = work / getattr(self, "top", "vllm-0.0.1")
            bench_apply.git(tree, "init", "-q")
            bench_apply.git(tree, "add", "-A")
            bench_apply.git(tree, "commit", "-q", "-m", "sdist")
            marks.append(time.perf_counter())
            for patch in self.patches:
                bench_apply.git(tree, "apply", str(patch))
            marks.append(time.perf_counter())
        took = timed(run)
        for name, (a, b) in zip(("tar x", "git init/add/commit", "20 git apply"), zip(marks, marks[1:])):
            self.parts.setdefault(f"baseline: {name}", []).append(b - a)
        return took

    def patchq(self) -> float:
        """The cold apply as a process, with its git processes traced to split the time into parts."""
        trace = self.tmp / "cold-trace.log"
        trace.unlink(missing_ok=True)
        self.prepare()
        took = timed(patchq_cmd(["apply", "bench"], self.ws, self.cache, extra_env={"PATCHQ_TRACE_GIT": str(trace)}))
        bulk: list[float] = []
        checkout = 0.0
        for line in trace.read_text().splitlines():      # "patchq git: 12.3ms exit=0 cwd=... git ARGS"
            ms = float(line.split()[2].removesuffix("ms")) / 1000
            if " fast-import " in line and "--depth=0" in line:
                bulk.append(ms)                           # the archive's runs (the queue's commits are not bulk)
            elif " checkout -q " in line:
                checkout += ms
        # one run, or parts side by side and then the commit's run: the longest part plus the last run
        archive = (max(bulk[:-1]) + bulk[-1]) if len(bulk) > 1 else sum(bulk)
        for name, value in (("patchq: git fast-import of the archive (parts: the longest part + the commit run)",
                             archive), ("patchq: git checkout", checkout),
                            ("patchq: the rest (start-up, reading the archive, the queue)",
                             took - archive - checkout)):
            self.parts.setdefault(name, []).append(value)
        return took


class RealColdSetup(ColdSetup):
    """A real release archive given with --sdist (e.g. a vLLM sdist from PyPI, cached by the caller): an empty queue,
    so the row is the archive's import and checkout against `tar x` + `git init/add/commit` of the same archive.
    Archives that record their commit (`_version.py`'s commit_id) get a pin that begins with it."""

    def __init__(self, tmp: Path, sdist: Path) -> None:
        import hashlib
        import re
        self.tmp = tmp
        self.sdist = sdist.resolve()
        self.sha = hashlib.sha256(self.sdist.read_bytes()).hexdigest()
        with tarfile.open(self.sdist) as tar:
            top = tar.getnames()[0].split("/")[0]
            version = next((m for m in tar.getmembers() if m.name.endswith("/_version.py")
                            and m.name.count("/") <= 3), None)
            text = tar.extractfile(version).read().decode() if version is not None else ""  # type: ignore[union-attr]
        found = re.search(r"commit_id\s*=\s*'g?([0-9a-f]{7,40})'", text)
        pin = (found.group(1) if found else "c").ljust(40, "0")
        self.top = top
        self.ws = tmp / "ws-real"
        (self.ws / "queues" / "vllm").mkdir(parents=True)
        (self.ws / "queues" / "vllm" / "series.yaml").write_text("patches: []\n")
        (self.ws / "pins.lock").write_text(
            f"version: 1\nupstreams:\n  vllm:\n    url: {tmp / 'unreachable.git'}\n    archive:\n"
            f"      url: {self.sdist}\n      sha256: {self.sha}\n    pin: {pin}\nstacks:\n  bench:\n"
            f"    upstreams: [vllm]\n")
        self.patches = []
        self.cache = tmp / "real-cache"
        self.round = 0
        self.parts = {}


class RebaseSetup:
    def __init__(self, tmp: Path, cache: Path) -> None:
        self.tmp, self.cache = tmp, cache
        self.upstream, self.template, self.base, self.tip, self.diffs = bench_rebase.build(tmp / "rb", 600, 24)
        os.environ["PATCHQ_CACHE"] = str(cache)
        from patchq.sources import ensure_mirror
        ensure_mirror(load_workspace(self.template).upstream("vllm"), workspace=self.template,
                      need=(self.base, self.tip))
        self.round = 0
        self.git_repo, self.git_queue, self.git_env = bench_rebase.git_rebase_setup(self.upstream, tmp / "rb-git",
                                                                                    self.base, self.diffs)

    def fresh_ws(self) -> Path:
        self.round += 1
        ws = self.tmp / f"rb-ws-{self.round}"
        shutil.copytree(self.template, ws)
        return ws

    def git_rebase(self) -> float:
        """`git rebase` of the same queue (as commits on a branch at the old pin) onto the new tip."""
        wall = bench_rebase.time_git_rebase(self.git_repo, self.git_queue, self.tip, self.git_env,
                                            len(self.diffs) - 1)
        CPU.clear()              # timed inside bench_rebase, around the rebase alone: no CPU figure
        return wall


# ---- the run -----------------------------------------------------------------------------------------------------

def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fmt(values: list[float]) -> str:
    if not values:
        return "—"
    m, lo = median(values), min(values)
    return f"{m * 1000:.0f} ms ({lo * 1000:.0f})" if m < 10 else f"{m:.2f} s ({lo:.2f})"


def ratio(row: Row) -> str:
    if not row.baseline:
        return "—"
    return f"{median(row.patchq) / median(row.baseline):.2f}× ({min(row.patchq) / min(row.baseline):.2f}×)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rows", default="apply,into,rebase,audit,cold")
    parser.add_argument("--compare", type=Path, help="another patchq checkout to time beside this one")
    parser.add_argument("--json", type=Path, help="write every measured time here")
    parser.add_argument("--keep", action="store_true", help="keep the generated folders (printed)")
    parser.add_argument("--sdist", type=Path, help="a real release archive (.tar.gz) for the cold-real row")
    args = parser.parse_args()
    wanted = set(args.rows.split(","))
    tmp = Path(tempfile.mkdtemp(prefix="patchq-bench-command-"))
    cache = tmp / "cache"
    before_tree = args.compare.resolve() if args.compare else None
    rows: list[Row] = []
    steps: list[tuple[Row, str, Callable[[], float]]] = []

    def add(row: Row, patchq: Callable[[], float], baseline: Callable[[], float] | None = None,
            before: Callable[[], float] | None = None) -> None:
        rows.append(row)
        steps.append((row, "patchq", patchq))
        if baseline is not None:
            steps.append((row, "baseline", baseline))
        if before is not None:
            steps.append((row, "before", before))

    try:
        started = time.perf_counter()
        setup = ApplySetup(tmp, cache) if wanted & {"apply", "into", "cold", "copy"} else None
        if setup and "apply" in wanted:
            git_apply = cli_timer(setup.git_apply, setup.reset_work)
            for name, extra, what in (("apply", [], "patchq apply (warm checkout)"),
                                      ("apply-check", ["--check"], "patchq apply --check")):
                cmd = ["apply", "bench", *extra]
                add(Row(name, what + ", whole process", "sequential git apply"),
                    cli_timer(patchq_cmd(cmd, setup.ws, cache), setup.reset_checkout), git_apply,
                    cli_timer(patchq_cmd(cmd, setup.ws, cache, before_tree), setup.reset_checkout)
                    if before_tree else None)
            add(Row("apply-in-process", "apply_stack (warm checkout), in-process", "sequential git apply"),
                cli_timer(lambda: apply_stack(load_workspace(setup.ws), "bench"), setup.reset_checkout), git_apply)
            add(Row("check-in-process", "apply_stack(check_only), in-process", "sequential git apply"),
                cli_timer(lambda: apply_stack(load_workspace(setup.ws), "bench", check_only=True)), git_apply)
        if setup and "into" in wanted:
            def into(tree: Path = ROOT) -> float:
                target = setup.fresh_into()
                return timed(patchq_cmd(["apply", "bench", "--into", str(target)], setup.ws, cache, tree))
            add(Row("into", "patchq apply --into NEW", "git worktree add"), into, setup.worktree_add,
                (lambda: into(before_tree)) if before_tree else None)
        if setup and "copy" in wanted:         # what a pristine-copy checkout could save on this file system
            def copy_tree() -> float:
                target = setup.fresh_into()
                return timed(lambda: subprocess.run(["cp", "-a", "--reflink=auto", str(setup.checkout), str(target)],
                                                    check=True))

            def clone_checkout(workers: int) -> Callable[[], float]:
                def run() -> float:
                    target = setup.fresh_into()
                    mirror = mirror_path(load_workspace(setup.ws).upstream("vllm"))
                    return timed(lambda: (bench_apply.git(setup.tmp, "clone", "-q", "--shared", "--no-checkout",
                                                          str(mirror), str(target)),
                                          bench_apply.git(target, "-c", f"checkout.workers={workers}", "checkout",
                                                          "-q", "--detach", setup.base)))
                return run
            add(Row("copy-cp", "experiment: cp -a --reflink=auto of a checkout", "git worktree add"), copy_tree,
                setup.worktree_add)
            add(Row("copy-workers1", "experiment: clone --shared + checkout, 1 worker", "git worktree add"),
                clone_checkout(1), setup.worktree_add)
            add(Row("copy-workers2", "experiment: clone --shared + checkout, 2 workers", "git worktree add"),
                clone_checkout(2), setup.worktree_add)
        if "rebase" in wanted:
            rb = RebaseSetup(tmp, cache)

            def rebase(tree: Path = ROOT) -> float:
                ws = rb.fresh_ws()
                return timed(patchq_cmd(["rebase", "--onto", "vllm@latest"], ws, cache, tree))
            add(Row("rebase", "patchq rebase (bench_rebase)", "git rebase"), rebase, rb.git_rebase,
                (lambda: rebase(before_tree)) if before_tree else None)
        if "audit" in wanted:
            lab_root = tmp / "lab"
            lab_ws = lab_workspace.make_lab_workspace(lab_root)
            patchq_cmd(["apply", "lab", "--check"], lab_ws, cache)()          # mirrors, untimed
            if before_tree:
                patchq_cmd(["apply", "lab", "--check"], lab_ws, cache, before_tree)()

            def analyses_of(tree: Path) -> Callable[[], None]:
                """Empties the analysis cache of one tree's extractor only (a folder per extractor version), so
                the empty-cache rows of two trees do not empty each other's cached rows."""
                version = subprocess.run([sys.executable, "-c", "import patchq.flagcache as f; print(f.VERSION)"],
                                         env=child_env(cache, tree), cwd=tree, capture_output=True, text=True,
                                         check=True).stdout.strip()      # cwd: `-c` puts it first on the path
                return lambda: shutil.rmtree(cache / "flags" / version, ignore_errors=True)
            drop_analyses = analyses_of(ROOT)
            for command in ("check", "flags"):
                add(Row(f"audit-{command}", f"patchq {command}, 218-patch workspace (analyses cached)", "—"),
                    cli_timer(patchq_cmd([command], lab_ws, cache)), None,
                    cli_timer(patchq_cmd([command], lab_ws, cache, before_tree)) if before_tree else None)
            add(Row("audit-in-process", "audit_workspace, in-process (analyses cached)", "—"),
                cli_timer(lambda: audit_workspace(load_workspace(lab_ws))))
            add(Row("audit-flags-cold", "patchq flags, 218-patch workspace, empty analysis cache", "—"),
                cli_timer(patchq_cmd(["flags"], lab_ws, cache), drop_analyses), None,
                cli_timer(patchq_cmd(["flags"], lab_ws, cache, before_tree), analyses_of(before_tree))
                if before_tree else None)
        cold = None
        if setup and "cold" in wanted:
            cold = ColdSetup(tmp, setup)
            add(Row("cold", "cold start from an empty cache (sdist present)", "tar + git init/add/commit + apply"),
                cold.patchq, cold.baseline,
                cli_timer(patchq_cmd(["apply", "bench"], cold.ws, cold.cache, before_tree), cold.prepare)
                if before_tree else None)
        real = None
        if args.sdist is not None:
            real = RealColdSetup(tmp, args.sdist)
            add(Row("cold-real", f"cold start from an empty cache, real sdist {args.sdist.name} (empty queue)",
                    "tar + git init/add/commit"),
                real.patchq, real.baseline,
                cli_timer(patchq_cmd(["apply", "bench"], real.ws, real.cache, before_tree), real.prepare)
                if before_tree else None)
        print(f"setup {time.perf_counter() - started:.1f} s; {args.rounds} interleaved rounds; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
        for number in range(args.rounds):
            for row, side, fn in steps:
                getattr(row, side).append(fn())
                row.cpu.setdefault(side, []).append(CPU[0] if CPU else float("nan"))
            print(f"round {number + 1}/{args.rounds} done", file=sys.stderr)
        print("| operation | patchq | baseline | ratio | target |" + (" before (--compare) |" if before_tree else ""))
        print("| --- | --- | --- | --- | --- |" + (" --- |" if before_tree else ""))
        for row in rows:
            target = TARGETS.get(row.name.split("-")[0] if row.name.startswith("audit") else row.name, "")
            line = (f"| {row.what} | {fmt(row.patchq)} | {row.baseline_what} {fmt(row.baseline)} | {ratio(row)} | "
                    f"{target} |")
            if before_tree:
                line += f" {fmt(row.before)} |"
            print(line)
        print("\nCPU seconds (user + system, children included; medians), which contention inflates far less:")
        for row in rows:
            parts = [f"{side} {median(row.cpu.get(side, [])):.2f}" for side in ("patchq", "baseline", "before")
                     if row.cpu.get(side)]
            cpu_ratio = ""
            if row.cpu.get("baseline"):
                cpu_ratio = f" (ratio {median(row.cpu['patchq']) / median(row.cpu['baseline']):.2f}×)"
            print(f"  {row.what}: {', '.join(parts)}{cpu_ratio}")
        for setup_of_row, label in ((cold, "cold start"), (real, "cold start, real sdist")):
            if setup_of_row is not None and setup_of_row.parts:
                print(f"\n{label}, where the time goes (medians; patchq's git parts from PATCHQ_TRACE_GIT):")
                for name, values in setup_of_row.parts.items():
                    print(f"  {name}: {median(values) * 1000:.0f} ms")
        print(f"\nload average after: {os.getloadavg()[0]:.1f}")
        if args.json:
            args.json.write_text(json.dumps({r.name: {"what": r.what, "patchq": r.patchq, "baseline": r.baseline,
                                                       "before": r.before, "cpu": r.cpu} for r in rows}, indent=1))
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
