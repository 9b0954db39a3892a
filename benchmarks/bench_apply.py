"""How fast `patchq apply` regenerates a stack, against the tools a lab uses today, measured in the same run.

    python benchmarks/bench_apply.py [--files 4200] [--patches 20] [--repeat 5] [--profile]

A generated upstream of `--files` files (a vLLM-sized tree) and a queue of `--patches` patches written like a lab's:
several patches edit the same model file, some touch three or four files, one adds a file. Timed, best of
`--repeat`:

  git apply    each patch file applied in order with `git apply` in a work tree (the lab's loop today)
  git am       the whole queue with one `git am` (commits included)
  quilt        `quilt push -a` of the same patches, when quilt is installed
  patchq check `apply_stack(..., check_only=True)`: every patch judged, no work tree touched
  patchq apply `apply_stack(...)` onto the checkout it made before: judged, committed, checkout moved

The patchq rows time the core on a loaded workspace; two more rows show what reading pins.lock and series.yaml
(round-trip YAML) adds, as the CLI pays it on every run.

The work trees are reset between rounds outside the timed part. Targets (issue 3): patchq apply <= 1.5x git apply,
patchq check <= 0.5x git apply. `--profile` runs patchq apply once more and prints the git processes it started
with their total time per subcommand.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from patchq import git as patchq_git
from patchq.apply import apply_stack
from patchq.model import PatchEntry, Status
from patchq.patchfile import render_patch_file
from patchq.workspace import load_workspace

ENV = dict(os.environ, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@localhost", GIT_COMMITTER_NAME="bench",
           GIT_COMMITTER_EMAIL="bench@localhost", GIT_AUTHOR_DATE="1700000000 +0000",
           GIT_COMMITTER_DATE="1700000000 +0000", LC_ALL="C")


def git(cwd: Path, *args: str, input: bytes | None = None) -> bytes:
    return subprocess.run(["git", *args], cwd=cwd, input=input, capture_output=True, check=True, env=ENV).stdout


def module(name: str, functions: int) -> str:
    body = [f'"""{name}: generated module."""\nimport os\n\n']
    for i in range(functions):
        body.append(f"def {name}_fn_{i}(x, y=None):\n    total = x * {i}\n    if y is not None:\n"
                    f"        total += y\n    return total\n\n\n")
    return "".join(body)


def build_upstream(root: Path, files: int) -> str:
    """A tree shaped like vLLM: packages of modules, a few big model files, csrc, docs; one commit."""
    git(root, "init", "-q", "-b", "main")
    written = 0
    big = ["vllm/model_executor/models/minimax_m2.py", "vllm/model_executor/models/llama.py",
           "vllm/distributed/parallel_state.py", "vllm/platforms/xpu.py", "vllm/envs.py"]
    for rel in big:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(module(Path(rel).stem, 120))
        written += 1
    d = 0
    while written < files:
        folder = root / ("vllm" if d % 3 else "csrc") / f"pkg_{d:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        for f in range(min(25, files - written)):
            suffix = ".py" if d % 3 else ".cpp"
            (folder / f"mod_{f:02d}{suffix}").write_text(module(f"m{d}_{f}", 6))
            written += 1
        d += 1
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "upstream tree")
    return git(root, "rev-parse", "HEAD").decode().strip()


def queue_edits(count: int) -> list[list[tuple[str, str, str]]]:
    """Per patch, (path, old, new) edits; applied in order on top of each other."""
    model = "vllm/model_executor/models/minimax_m2.py"
    out: list[list[tuple[str, str, str]]] = []
    for n in range(count):
        flag = f"VLLM_BENCH_FLAG_{n}"
        gate = f'    if os.environ.get("{flag}", "0") == "1":\n        total += {n}\n'
        edits = [(model, f"    total = x * {n * 5}\n", f"    total = x * {n * 5}\n{gate}")]   # same file, often
        if n % 3 == 0:                                                       # multi-file patches
            edits.append(("vllm/distributed/parallel_state.py", f"    total = x * {n}\n",
                          f"    total = x * {n}\n{gate}"))
            edits.append((f"vllm/pkg_{(n % 40) + 1:03d}/mod_03.py", "    total = x * 2\n",
                          f"    total = x * 2\n{gate}"))
        if n % 4 == 1:
            edits.append(("vllm/platforms/xpu.py", f"    total = x * {n * 2}\n", f"    total = x * {n * 2}\n{gate}"))
            edits.append(("vllm/envs.py", f"    total = x * {n}\n", f"    total = x * {n}\n{gate}"))
        if n % 7 == 5:
            edits.append((f"vllm/lab/probe_{n}.py", "", f'FLAG = "{flag}"\n'))
        out.append(edits)
    return out


def make_queue(upstream: Path, base: str, ws: Path, count: int) -> list[Path]:
    """Patch files made by git in a scratch clone, each on top of the previous one; a patchq workspace around them."""
    scratch = ws.parent / "scratch"
    git(ws.parent, "clone", "-q", str(upstream), str(scratch))
    queue = ws / "queues" / "vllm"
    queue.mkdir(parents=True)
    series = ["patches:"]
    files = []
    for n, edits in enumerate(queue_edits(count), 1):
        for rel, old, new in edits:
            path = scratch / rel
            if old == "":
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(new)
                continue
            text = path.read_text()
            assert old in text, (rel, old)
            path.write_text(text.replace(old, new, 1))
        git(scratch, "add", "-A")
        diff = git(scratch, "diff", "--cached", "--full-index")
        git(scratch, "commit", "-q", "-m", f"patch {n}")
        entry = PatchEntry(id=f"bench-{n:02d}", upstream="vllm", file=f"{n:04d}-bench-{n:02d}.patch",
                           status=Status.PROMOTED, title=f"Bench patch {n}", flags=(f"VLLM_BENCH_FLAG_{n - 1}",),
                           date="2026-05-19", author="Lab <lab@example.com>")
        path = queue / entry.file
        path.write_bytes(render_patch_file(entry, diff))
        files.append(path)
        series += [f"  - id: {entry.id}", f"    file: {entry.file}", "    status: promoted",
                   f"    title: {entry.title}", f"    flags: [{entry.flags[0]}]", f"    date: '{entry.date}'",
                   f"    author: {entry.author}"]
    (queue / "series.yaml").write_text("\n".join(series) + "\n")
    (ws / "pins.lock").write_text(f"version: 1\nupstreams:\n  vllm:\n    url: {upstream}\n    pin: {base}\n"
                                  f"stacks:\n  bench:\n    upstreams: [vllm]\n")
    shutil.rmtree(scratch)
    return files


def best_of(repeat: int, prepare, timed) -> float:
    times = []
    for _ in range(repeat):
        prepare()
        start = time.perf_counter()
        timed()
        times.append(time.perf_counter() - start)
    return min(times)


def profile_patchq(ws: Path) -> None:
    """Run patchq apply once with every git process timed by subcommand."""
    stats: dict[str, list[float]] = collections.defaultdict(list)
    original = patchq_git.run_git

    def timed_run_git(args, **kwargs):
        start = time.perf_counter()
        try:
            return original(args, **kwargs)
        finally:
            name = next((a for a in args if not a.startswith("-")), "?")
            if name == "apply":
                name += " " + " ".join(a for a in args[1:] if a.startswith("--") and a not in ("--whitespace=nowarn",))
            stats[name].append(time.perf_counter() - start)

    patchq_git.run_git = timed_run_git
    try:
        start = time.perf_counter()
        apply_stack(load_workspace(ws), "bench")
        total = time.perf_counter() - start
    finally:
        patchq_git.run_git = original
    spent = sum(sum(v) for v in stats.values())
    print(f"\nprofile of one patchq apply: {total * 1000:.0f} ms total, {sum(len(v) for v in stats.values())} git "
          f"processes taking {spent * 1000:.0f} ms, {(total - spent) * 1000:.0f} ms in Python")
    for name, values in sorted(stats.items(), key=lambda kv: -sum(kv[1])):
        each = sum(values) / len(values) * 1000
        print(f"  git {name:<34} x{len(values):<3} {sum(values) * 1000:7.1f} ms  ({each:.1f} ms each)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=4200)
    parser.add_argument("--patches", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="patchq-bench-") as tmp_name:
        tmp = Path(tmp_name)
        os.environ["PATCHQ_CACHE"] = str(tmp / "cache")
        upstream = tmp / "upstream"
        upstream.mkdir()
        t0 = time.perf_counter()
        base = build_upstream(upstream, args.files)
        ws = tmp / "ws"
        ws.mkdir()
        patches = make_queue(upstream, base, ws, args.patches)
        tree_files = len(git(upstream, "ls-files").splitlines())
        print(f"tree: {tree_files} files; queue: {len(patches)} patches "
              f"({sum(1 for e in queue_edits(args.patches) if len(e) > 1)} multi-file, "
              f"{sum(1 for e in queue_edits(args.patches) for p, _, _ in e if p.endswith('minimax_m2.py'))} "
              f"touching the same model file); setup {time.perf_counter() - t0:.1f} s; best of {args.repeat}\n")

        work = tmp / "work"
        git(tmp, "clone", "-q", str(upstream), str(work))

        def reset() -> None:
            git(work, "reset", "-q", "--hard", base)
            git(work, "clean", "-qfdx")

        def git_apply() -> None:
            for patch in patches:
                git(work, "apply", str(patch))

        def git_am() -> None:
            git(work, "am", "-q", *map(str, patches))

        results: dict[str, float] = {}
        results["git apply (sequential)"] = best_of(args.repeat, reset, git_apply)
        results["git am"] = best_of(args.repeat, reset, git_am)

        quilt = shutil.which("quilt")
        if quilt:
            qwork = tmp / "quilt"
            git(tmp, "clone", "-q", str(upstream), str(qwork))
            (qwork / "patches").mkdir()
            for patch in patches:
                shutil.copy(patch, qwork / "patches" / patch.name)
            (qwork / "patches" / "series").write_text("".join(f"{p.name}\n" for p in patches))
            qenv = dict(ENV, QUILT_PATCHES="patches", QUILTRC="/dev/null")

            def quilt_reset() -> None:
                subprocess.run([quilt, "pop", "-a", "-q"], cwd=qwork, env=qenv, capture_output=True)
                shutil.rmtree(qwork / ".pc", ignore_errors=True)
                git(qwork, "checkout", "-q", "-f", base)
                git(qwork, "clean", "-qfdx", "-e", "patches")

            def quilt_push() -> None:
                subprocess.run([quilt, "push", "-a", "-q"], cwd=qwork, env=qenv, capture_output=True, check=True)

            results["quilt push -a"] = best_of(args.repeat, quilt_reset, quilt_push)

        # patchq: one untimed run makes the mirror and the checkout it reuses afterwards
        warm = apply_stack(load_workspace(ws), "bench")
        assert all(o.kind.value == "clean" for o in warm.upstreams[0].outcomes), warm
        loaded = load_workspace(ws)
        results["patchq check (no work tree)"] = best_of(
            args.repeat, lambda: None, lambda: apply_stack(loaded, "bench", check_only=True))
        results["patchq apply (reused checkout)"] = best_of(
            args.repeat, lambda: None, lambda: apply_stack(loaded, "bench"))
        results["  the same, loading the workspace"] = best_of(
            args.repeat, lambda: None, lambda: apply_stack(load_workspace(ws), "bench"))
        results["  loading the workspace alone"] = best_of(args.repeat, lambda: None, lambda: load_workspace(ws))

        reference = results["git apply (sequential)"]
        for name, seconds in results.items():
            print(f"  {name:<32} {seconds * 1000:8.1f} ms   {seconds / reference:5.2f}x git apply   "
                  f"{seconds / results['git am']:5.2f}x git am")
        if not quilt:
            print("  quilt push -a                    not measured: quilt is not installed (apt-get install quilt)")
        apply_ratio = results["patchq apply (reused checkout)"] / reference
        check_ratio = results["patchq check (no work tree)"] / reference
        print(f"\ntargets: patchq apply <= 1.5x git apply: {apply_ratio:.2f}x "
              f"{'met' if apply_ratio <= 1.5 else 'MISSED'}; patchq check <= 0.5x git apply: {check_ratio:.2f}x "
              f"{'met' if check_ratio <= 0.5 else 'MISSED'}")
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"machine: {os.cpu_count()} cpus, load average {load:.1f} at the end of the run")
        if args.profile or apply_ratio > 1.5:
            profile_patchq(ws)


if __name__ == "__main__":
    main()
