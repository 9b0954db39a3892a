"""Benchmark: `patchq rebase` of a 24-patch queue across 600 generated upstream commits, against `git rebase` of
the same 24 commits measured in the same run.

    python benchmarks/bench_rebase.py [--commits 600] [--rounds 5] [--compare-with DIR]

The upstream is written with one `git fast-import` run: a dozen 100-function modules, churn on other files in every
commit, lines inserted at the top of a module every 25 commits (offsets for every patch below), two commits that
edit a line next to a patch (3-way merges), and one that takes a patch verbatim (already upstream). The queue is a
real stack: each patch is the diff between consecutive commits of a side branch, two patches per module.

patchq does more than `git rebase` here: it also applies the queue at the old pin (for the before/after view),
bisects the history for every patch that stopped applying cleanly, pairs the before/after view by Patchq-Id and
records why a patch was left out; the ratio includes all of it. Mirror cloning is done before timing on both sides.
Rounds are interleaved (patchq in-process, git rebase, patchq as a whole process, and the `--compare-with` copy),
so load drift on a shared machine hits every side alike.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from patchq.git import Repo, run_git
from patchq.model import PatchEntry, Status
from patchq.patchfile import render_patch_file
from patchq.rebase import start_rebase
from patchq.sources import ensure_mirror
from patchq.workspace import dump_yaml, entry_to_yaml, load_workspace, new_lock_doc

MODULES = 12
FUNCTIONS = 100


def module_text(j: int) -> str:
    return "".join(f"def f_{j}_{i}(x):\n    return x + {i}\n\n\n" for i in range(FUNCTIONS))


class Writer:
    """Commits through one fast-import stream; keeps every commit's files to build the next ones."""

    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self.stream: list[bytes] = []
        self.marks = 0
        self.tick = 0

    def commit(self, ref: str, message: str, changes: dict[str, str], parent: str | None = None) -> int:
        self.marks += 1
        self.tick += 1
        when = f"{1_700_000_000 + self.tick * 60} +0000"
        msg = message.encode()
        self.stream.append(f"commit {ref}\nmark :{self.marks}\nauthor Up <up@example.com> {when}\n"
                           f"committer Up <up@example.com> {when}\ndata {len(msg)}\n".encode() + msg + b"\n")
        if parent:
            self.stream.append(f"from {parent}\n".encode())
        for path, text in changes.items():
            data = text.encode()
            self.stream.append(f"M 100644 inline {path}\ndata {len(data)}\n".encode() + data + b"\n")
        self.stream.append(b"\n")
        return self.marks

    def run(self) -> dict[int, str]:
        with tempfile.TemporaryDirectory() as tmp:
            marks = os.path.join(tmp, "marks")
            self.repo.run("fast-import", "--quiet", f"--export-marks={marks}", input=b"".join(self.stream))
            ids = dict(line.split() for line in open(marks).read().splitlines())
        self.stream = []
        return {int(k[1:]): v for k, v in ids.items()}


def build(root: Path, commits: int, patches: int) -> tuple[Path, Path, str, str, list[tuple[str, bytes]]]:
    """The upstream, the workspace, the old pin, the new tip, and the queue as (id, diff)."""
    upstream = Repo.init(root / "upstream.git", bare=True)
    files = {f"vllm/mod_{j}.py": module_text(j) for j in range(MODULES)}
    files["README.md"] = "upstream\n"
    w = Writer(upstream)
    base_mark = w.commit("refs/heads/main", "initial", dict(files))
    base = w.run()[base_mark]
    # the queue: a side branch, one commit per patch, two patches per module
    side = dict(files)
    targets = []
    marks = []
    for p in range(patches):
        j, i = p % MODULES, 10 + (p // MODULES) * 40
        path = f"vllm/mod_{j}.py"
        side[path] = side[path].replace(f"    return x + {i}\n", f"    return x + {i}  # tuned {p}\n    x = x * 1\n", 1)
        marks.append(w.commit("refs/heads/queue", f"patch {p}", {path: side[path]}, base if p == 0 else None))
        targets.append((path, i))
    ids = w.run()
    queue_commits = [base] + [ids[m] for m in marks]
    diffs = [(f"p{p:02d}", upstream.run("diff", "--full-index", "--binary", queue_commits[p],
                                        queue_commits[p + 1]).stdout) for p in range(patches)]
    # the upstream history
    threeway = {commits // 3: 3, (3 * commits) // 4: 17}
    verbatim = {commits // 2: 8}
    current = dict(files)
    first = True
    for k in range(1, commits + 1):
        changes = {}
        if k not in verbatim:       # the commit that takes a patch carries only that change: same patch-id
            churn = f"churn/c{k % 20}.txt"
            current[churn] = current.get(churn, "") + f"line {k}\n"
            changes[churn] = current[churn]
        if k % 25 == 0 and k not in verbatim:
            path = f"vllm/mod_{k % MODULES}.py"
            current[path] = f"# upstream note {k}\n# more\n" + current[path]
            changes[path] = current[path]
        if k in threeway:
            path, i = targets[threeway[k]]
            nxt = f"def f_{path[9:-3]}_{i + 1}(x):"
            current[path] = current[path].replace(nxt, nxt + "  # upstream", 1)
            changes[path] = current[path]
        if k in verbatim:
            p = verbatim[k]
            path, i = targets[p]
            current[path] = current[path].replace(f"    return x + {i}\n",
                                                  f"    return x + {i}  # tuned {p}\n    x = x * 1\n", 1)
            changes[path] = current[path]
        w.commit("refs/heads/main", f"upstream {k}", changes, base if first else None)
        first = False
    ids = w.run()
    tip = ids[max(ids)]
    ws = root / "ws"
    (ws / "queues" / "vllm").mkdir(parents=True)
    doc = new_lock_doc()
    doc["upstreams"]["vllm"] = {"url": str(upstream.path), "pin": base}
    doc["stacks"]["bench"] = {"upstreams": ["vllm"]}
    (ws / "pins.lock").write_bytes(dump_yaml(doc))
    entries = []
    for number, (pid, diff) in enumerate(diffs, 1):
        entry = PatchEntry(id=pid, upstream="vllm", file=f"{number:04d}-{pid}.patch", status=Status.PROMOTED,
                           title=f"Tune {pid}", author="Lab <lab@example.com>", date="2026-05-19",
                           flags=(f"VLLM_{pid.upper()}",))
        (ws / "queues" / "vllm" / entry.file).write_bytes(render_patch_file(entry, diff))
        entries.append(entry)
    (ws / "queues" / "vllm" / "series.yaml").write_bytes(dump_yaml({"patches": [entry_to_yaml(e) for e in entries]}))
    return upstream.path, ws, base, tip, diffs


def git_rebase_setup(upstream: Path, work: Path, base: str, diffs: list[tuple[str, bytes]]) -> tuple[Repo, str, dict]:
    """The same queue as commits on a branch at the old pin, in a clone (not timed)."""
    run_git(["clone", "--quiet", str(upstream), str(work)])
    repo = Repo(work)
    env = {"GIT_AUTHOR_DATE": "@1779148800 +0000", "GIT_COMMITTER_DATE": "@1779148800 +0000"}
    repo.run("checkout", "-q", "-B", "queue", base)
    for pid, diff in diffs:
        repo.run("apply", "--index", "-", input=diff)
        repo.run("commit", "-q", "-m", f"Tune {pid}", env=env)
    return repo, repo.out("rev-parse", "HEAD"), env


def time_git_rebase(repo: Repo, queue: str, tip: str, env: dict, expected: int) -> float:
    """One `git rebase` of the queue onto the new tip (whole process: git is a process either way)."""
    repo.run("checkout", "-q", "-B", "queue", queue)
    started = time.perf_counter()
    repo.run("rebase", "-q", tip, env=env)
    took = time.perf_counter() - started
    count = len(repo.rev_list(f"{tip}..HEAD"))
    assert count == expected, f"git rebase kept {count} commits"
    return took


def time_patchq_process(ws: Path, code: Path) -> float:
    """`python -m patchq rebase --onto vllm@latest` as a user runs it, with the patchq package found in `code`."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(code)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "patchq", "rebase", "--onto", "vllm@latest"], cwd=ws, env=env,
                          capture_output=True, text=True)
    took = time.perf_counter() - started
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return took


def count_git_processes(template: Path, ws: Path) -> int:
    """How many git processes one rebase starts (an extra, untimed round; counted where patchq starts them)."""
    import patchq.git as git_module
    counted = [0]
    real = git_module.subprocess.Popen

    class Counting(real):  # type: ignore[misc, valid-type]
        def __init__(self, args, *rest, **kwargs):
            if args and args[0] == "git":
                counted[0] += 1
            super().__init__(args, *rest, **kwargs)

    shutil.copytree(template, ws)
    git_module.subprocess.Popen = Counting
    try:
        start_rebase(ws, "vllm@latest")
    finally:
        git_module.subprocess.Popen = real
    return counted[0]


def _summary(label: str, times: list[float], git: list[float]) -> str:
    ratio = statistics.median(times) / statistics.median(git)
    best = min(times) / min(git)
    return (f"{label:<34} {statistics.median(times):.3f} s  (median of {len(times)}; "
            f"{ratio:.2f}x git rebase, best {best:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=600)
    parser.add_argument("--patches", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--compare-with", type=Path, metavar="DIR",
                        help="A folder holding another patchq package (e.g. a checkout of an older commit): its "
                             "whole-process rebase is timed in the same interleaved rounds.")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="patchq-bench-rebase-"))
    os.environ["PATCHQ_CACHE"] = str(tmp / "cache")
    here = Path(__file__).resolve().parent.parent
    try:
        started = time.perf_counter()
        upstream, template, base, tip, diffs = build(tmp, args.commits, args.patches)
        print(f"generated {args.commits} upstream commits and a {args.patches}-patch queue in "
              f"{time.perf_counter() - started:.2f} s")
        ensure_mirror(load_workspace(template).upstream("vllm"), workspace=template, need=(base, tip))
        git_repo, queue, env = git_rebase_setup(upstream, tmp / "git-work", base, diffs)
        times: dict[str, list[float]] = {"in-process": [], "process": [], "before": [], "git": []}
        report = None
        for number in range(args.rounds):       # interleaved: load drift on a shared machine hits every side
            ws = tmp / f"ws-{number}"
            shutil.copytree(template, ws)
            started = time.perf_counter()
            report = start_rebase(ws, "vllm@latest")
            times["in-process"].append(time.perf_counter() - started)
            assert report.state == "done", report.conflict
            times["git"].append(time_git_rebase(git_repo, queue, tip, env, len(diffs) - 1))
            ws = tmp / f"wp-{number}"
            shutil.copytree(template, ws)
            times["process"].append(time_patchq_process(ws, here))
            if args.compare_with:
                ws = tmp / f"wb-{number}"
                shutil.copytree(template, ws)
                times["before"].append(time_patchq_process(ws, args.compare_with.resolve()))
        print(f"git processes in one in-process rebase: {count_git_processes(template, tmp / 'ws-count')}")
        kinds: dict[str, int] = {}
        for step in report.steps:
            label = f"{step.kind.value}/{step.outcome.kind.value}"
            kinds[label] = kinds.get(label, 0) + 1
        print(f"patches: {', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}")
        for found in report.breaking:
            print(f"  breaking: {found.patch_id} at {found.commit[:12]} '{found.subject}' ({found.kind.value}); "
                  f"{found.checks} checks (bound {found.bound or '-'} for {found.searched} commits)")
        print(f"apply checks: {report.apply_checks} patch judgements in total, {report.bisect_checks} of them "
              f"bisection steps")
        git = times["git"]
        print(f"{'git rebase (whole process)':<34} {statistics.median(git):.3f} s  (median of {len(git)}: "
              f"{', '.join(f'{t:.3f}' for t in git)})")
        print(_summary("patchq rebase, in-process", times["in-process"], git))
        print(_summary("patchq rebase, whole process", times["process"], git))
        if times["before"]:
            print(_summary(f"--compare-with {args.compare_with}", times["before"], git))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
