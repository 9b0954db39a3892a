"""Benchmark: reading a lab-sized workspace (200 annotated patches), with the libyaml fast path and without it.

    python benchmarks/bench_load.py [--patches 200] [--rounds 5]

Every patchq command reads pins.lock and every series.yaml first, so this is the floor under `list`, `show`,
`check`, `flags`, `apply` and `export`. The series entries carry what labs write: title, why (a paragraph),
flags, measured result, baseline, notes, date. Reported: the series.yaml load by ruamel's round trip and by the
fast path, `load_workspace` as patchq runs it, and a whole `patchq list` process, best of N each.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from patchq import fastyaml
from patchq.workspace import MAX_YAML_DEPTH, _guarded_yaml, load_workspace

PIN = "0123456789abcdef0123456789abcdef01234567"


def make_workspace(root: Path, count: int) -> Path:
    queue = root / "queues" / "vllm"
    queue.mkdir(parents=True)
    (root / "pins.lock").write_text(
        "# pins of the lab\nversion: 1\nupstreams:\n  vllm:\n    url: https://example.invalid/vllm.git\n"
        f"    pin: {PIN}\nstacks:\n  promoted:\n    upstreams: [vllm]\n    include: [promoted]\n"
        "    profile: {VLLM_X_0: '1', VLLM_X_1: '1'}\n    result: {metric: output tok/s, value: 89.0, lane: b70x4}\n")
    lines = ["# the lab's vLLM queue\npatches:\n"]
    statuses = ("promoted", "negative-archived", "diagnostic")
    for n in range(count):
        pid = f"change-{n:03d}"
        name = f"{n + 1:04d}-{pid}.patch"
        (queue / name).write_text(f"From {PIN} Mon Sep 17 00:00:00 2001\nFrom: Lab <lab@example.com>\n"
                                  f"Date: Tue, 19 May 2026 10:00:00 +0000\nSubject: [PATCH] change {n}\n\n"
                                  f"Patchq-Id: {pid}\n---\n")
        lines.append(
            f"  - id: {pid}\n    file: {name}\n    status: {statuses[n % 3]}\n"
            f"    title: 'MoE: change number {n} of the dispatch path'\n"
            f"    why: >-\n      Routes tokens through the work-stealing kernel when VLLM_X_{n} is set; measured on\n"
            f"      four B70 cards at TP=4 with the promoted profile, see the notes for the sweep.\n"
            f"    flags: [VLLM_X_{n}, VLLM_SHARED_FLAG]\n    result: +{n % 7}.{n % 10} output tok/s\n"
            f"    baseline: pin with the promoted stack\n    notes: [sweep-{n}.md]\n"
            f"    date: '2026-05-{1 + n % 28:02d}'\n")
    (queue / "series.yaml").write_text("".join(lines))
    return root


def best(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patches", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = make_workspace(Path(tmp) / "ws", args.patches)
        series = root / "queues" / "vllm" / "series.yaml"
        text = series.read_text()
        assert fastyaml.load(text, max_depth=MAX_YAML_DEPTH) is not None, "the benchmark file left the fast path"
        exact = best(lambda: _guarded_yaml(series).load(text), args.rounds)
        fast = best(lambda: fastyaml.load(text, max_depth=MAX_YAML_DEPTH), args.rounds)
        whole = best(lambda: load_workspace(root), args.rounds)
        env = dict(os.environ, COLUMNS="160")
        listing = best(lambda: subprocess.run([sys.executable, "-m", "patchq", "-w", str(root), "list"], env=env,
                                              check=True, stdout=subprocess.DEVNULL), args.rounds)
        print(f"series.yaml with {args.patches} patches ({len(text):,} bytes), best of {args.rounds}:")
        print(f"  ruamel round-trip load: {exact * 1000:7.1f} ms")
        print(f"  fast path (libyaml):    {fast * 1000:7.1f} ms   ({exact / fast:.1f}x faster)")
        print(f"  load_workspace:         {whole * 1000:7.1f} ms")
        print(f"  patchq list (process):  {listing * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
