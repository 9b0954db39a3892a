"""Benchmark: reading a patch of 16k symlinks and 16k files (what `git diff` prints), strictly, and how it grows.

    python benchmarks/bench_parse.py [--count 16000] [--baseline-rev adfd56c | --baseline-file old_patchfile.py]

The strict reader (`patchtext.parse_diff`, the one every queue file goes through) once compared every path with
every symlink created before it in the same patch: quadratic, about a minute for this patch. Reported: seconds for
the full patch, for 1/4 and 1/2 of it (so the growth is visible), `git apply --check --cached` of the same text
in an empty index where git is available, and, with a baseline, the old reader on the same text (only the smaller
sizes unless `--baseline-full`).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from patchq.patchtext import parse_diff  # noqa: E402


def new_file(path: str, content: bytes, link: bool) -> bytes:
    """One section as `git diff --cached` prints a new file or symlink (tests/test_patchtext.py checks this)."""
    blob = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()[:7]
    mode = b"120000" if link else b"100644"
    body = b"+" + content.rstrip(b"\n") + b"\n" + (b"\\ No newline at end of file\n" if link else b"")
    return (b"diff --git a/%s b/%s\nnew file mode %s\nindex 0000000..%s\n--- /dev/null\n+++ b/%s\n@@ -0,0 +1 @@\n"
            % (path.encode(), path.encode(), mode, blob.encode(), path.encode())) + body


def links_and_files(count: int) -> bytes:
    links = [new_file(f"d/{i // 500:02d}/l{i:05d}", f"../../f/{i:05d}".encode(), True) for i in range(count)]
    files = [new_file(f"f/{i:05d}", f"{i}\n".encode(), False) for i in range(count)]
    return b"".join(links + files)


def baseline(rev: str | None, file: str | None):
    """The old reader's parse_diff, loaded from a file or from `git show REV:patchq/patchfile.py`."""
    if file:
        source = Path(file).read_text()
    elif rev:
        source = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:patchq/patchfile.py"], check=True,
                                capture_output=True, text=True).stdout
    else:
        return None
    spec = importlib.util.spec_from_loader("patchq._baseline_patchfile", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "patchq"
    sys.modules[spec.name] = module              # dataclasses look their module up while the class is made
    exec(compile(source, "baseline_patchfile.py", "exec"), module.__dict__)
    return module.parse_diff


def timed(fn, data: bytes) -> float:
    started = time.perf_counter()
    fn(data)
    return time.perf_counter() - started


def git_apply_check(data: bytes) -> float | None:
    if shutil.which("git") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["git", "init", "-q", tmp], check=True)
        env = dict(os.environ, GIT_INDEX_FILE=os.path.join(tmp, "index"))
        started = time.perf_counter()
        proc = subprocess.run(["git", "-C", tmp, "apply", "--check", "--cached", "-"], input=data, env=env,
                              capture_output=True)
        elapsed = time.perf_counter() - started
        return elapsed if proc.returncode == 0 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=16000, help="symlinks (and as many files)")
    parser.add_argument("--baseline-rev", help="git revision whose patchq/patchfile.py is the old reader")
    parser.add_argument("--baseline-file", help="a copy of the old patchq/patchfile.py")
    parser.add_argument("--baseline-full", action="store_true", help="also run the old reader on the full patch")
    args = parser.parse_args()
    old = baseline(args.baseline_rev, args.baseline_file)
    for part in (4, 2, 1):
        count = args.count // part
        data = links_and_files(count)
        line = f"{2 * count:6d} sections, {len(data) / 1e6:4.1f} MB: patchtext {timed(parse_diff, data):6.2f} s"
        if old is not None and (part > 1 or args.baseline_full):
            line += f", old reader {timed(old, data):7.2f} s"
        git = git_apply_check(data) if part == 1 else None
        if git is not None:
            line += f", git apply --check {git:.2f} s"
        print(line, flush=True)


if __name__ == "__main__":
    main()
