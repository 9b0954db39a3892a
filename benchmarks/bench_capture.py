"""Benchmark: capture of an installed package of lab size, with and without --decompose, beside `apply --check`.

    python benchmarks/bench_capture.py [--files 3000] [--patches 20] [--rounds 3]

An upstream of FILES Python files under pkg/ (plus as many C files outside it), a queue of PATCHES patches each
changing one Python file, and an "installed" copy of pkg/ (a dist-info with a hashed RECORD beside it, __pycache__
in every folder) where the lab applied every queue patch and edited one more file by hand. Reported, best of N, in
one process: `capture --dry-run` (snapshot), `capture --decompose --dry-run`, and as the baseline the no-work-tree
check of the same stack by `apply_stack(check_only=True)`, which every capture run also performs once to verify.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from patchq.apply import apply_stack
from patchq.capture import capture
from patchq.workspace import load_workspace


def git(*args: str, cwd: Path, data: bytes | None = None) -> bytes:
    env = dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@x", GIT_COMMITTER_NAME="b",
               GIT_COMMITTER_EMAIL="b@x")
    return subprocess.run(["git", *args], cwd=cwd, input=data, check=True, capture_output=True, env=env).stdout


def module(n: int) -> str:
    return "".join(f"def f{n}_{i}(x):\n    return x * {i} + {n}\n\n\n" for i in range(30))


def build(root: Path, files: int, patches: int) -> tuple[Path, Path]:
    src = root / "src"
    for n in range(files):
        path = src / "pkg" / f"sub{n % 40}" / f"mod{n}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(module(n))
        (src / "csrc" / f"k{n}.c").parent.mkdir(parents=True, exist_ok=True)
        (src / "csrc" / f"k{n}.c").write_text(f"int k{n}(int x) {{ return x + {n}; }}\n")
    git("init", "-q", "-b", "main", cwd=src)
    git("add", "-A", cwd=src)
    git("commit", "-q", "-m", "pin", cwd=src)
    pin = git("rev-parse", "HEAD", cwd=src).decode().strip()
    ws = root / "ws"
    queue = ws / "queues" / "up"
    queue.mkdir(parents=True)
    series = ["patches:\n"]
    diffs = []
    for p in range(patches):
        n = p * (files // max(patches, 1))
        rel = f"pkg/sub{n % 40}/mod{n}.py"
        text = (src / rel).read_text()
        (src / rel).write_text(text.replace(f"return x * 7 + {n}\n", f"return x * 7 + {n} + 1  # patch {p}\n"))
        diff = git("diff", "--full-index", cwd=src)
        git("checkout", "-q", "--", rel, cwd=src)
        diffs.append(diff)
        name = f"{p + 1:04d}-p{p}.patch"
        (queue / name).write_bytes(b"From: Lab <lab@example.com>\nDate: Tue, 19 May 2026 10:00:00 +0000\n"
                                   b"Subject: [PATCH] p%d\n\n---\n" % p + diff)
        series.append(f"  - id: p{p}\n    file: {name}\n    status: promoted\n    title: p{p}\n")
    (queue / "series.yaml").write_text("".join(series))
    (ws / "pins.lock").write_text(f"version: 1\nupstreams:\n  up:\n    url: {src}\n    pin: {pin}\n"
                                  "stacks:\n  all:\n    upstreams: [up]\n    include: [promoted]\n")
    site = root / "venv" / "lib" / "python3.11" / "site-packages"
    shutil.copytree(src / "pkg", site / "pkg")
    record = []
    for path in sorted((site / "pkg").rglob("*.py")):
        digest = base64.urlsafe_b64encode(hashlib.sha256(path.read_bytes()).digest()).rstrip(b"=").decode()
        record.append(f"{path.relative_to(site).as_posix()},sha256={digest},{path.stat().st_size}\n")
        cache = path.parent / "__pycache__"
        cache.mkdir(exist_ok=True)
        (cache / f"{path.stem}.cpython-311.pyc").write_bytes(b"\0" * 64)
    info = site / "pkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n")
    (info / "RECORD").write_text("".join(record))
    for diff in diffs:
        git("apply", "-p2", "-", cwd=site / "pkg", data=diff)
    hand = site / "pkg" / "sub1" / "mod1.py"
    hand.write_text(hand.read_text().replace("return x * 3 + 1\n", "return x * 3 + 1  # by hand\n"))
    return ws, site / "pkg"


def best(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=3000)
    parser.add_argument("--patches", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-capture-") as tmp:
        os.environ["PATCHQ_CACHE"] = str(Path(tmp) / "cache")
        ws_root, package = build(Path(tmp), args.files, args.patches)
        ws = load_workspace(ws_root)
        report = capture(ws, None, "up", package, decompose=True, dry_run=True)
        assert len(report.attributed) == args.patches and report.residual_files == ("pkg/sub1/mod1.py",), report
        check = best(lambda: apply_stack(load_workspace(ws_root), "all", check_only=True), args.rounds)
        snap = best(lambda: capture(load_workspace(ws_root), "up", package, dry_run=True), args.rounds)
        deco = best(lambda: capture(load_workspace(ws_root), "up", package, decompose=True, dry_run=True),
                    args.rounds)
        print(f"{args.files} Python files installed ({report.ignored.get('__pycache__', 0)} in __pycache__), "
              f"{args.files * 2} in the pin's tree, {args.patches} queue patches, best of {args.rounds}:")
        print(f"  apply --check of the {args.patches}-patch stack (baseline): {check * 1000:7.0f} ms")
        print(f"  capture --dry-run (snapshot):                      {snap * 1000:7.0f} ms ({snap / check:.1f}x)")
        print(f"  capture --decompose --dry-run:                     {deco * 1000:7.0f} ms ({deco / check:.1f}x), "
              f"{len(report.attributed)} attributed, residual {report.residual_bytes} bytes")


if __name__ == "__main__":
    main()
