"""A lab-sized patchq workspace, generated: the input of the flag-audit and command benchmarks.

    python benchmarks/lab_workspace.py DIR [--files 3000] [--patches 218]

Two upstreams with real git history: `vllm` (Python packages, shell launch scripts, a few big model and env
files) and `kernels` (C++ sources and headers). The queues are written the way a lab writes them: most patches gate
a change behind an env flag (`os.environ.get`, `os.getenv`, `envs.X`, `getenv()` in C++, `${X:-0}` in shell), many
edit the same big files, some touch three or four files, some add a file. About two thirds are promoted and apply in
order; the rest are rejected experiments and diagnostics made against the pin, so some of them apply on top of the
promoted stack with an offset and some conflict there. Everything is deterministic for the same arguments.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from patchq.model import PatchEntry, Status
from patchq.patchfile import render_patch_file

ENV = dict(os.environ, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@localhost", GIT_COMMITTER_NAME="bench",
           GIT_COMMITTER_EMAIL="bench@localhost", GIT_AUTHOR_DATE="1700000000 +0000",
           GIT_COMMITTER_DATE="1700000000 +0000", LC_ALL="C", GIT_CONFIG_NOSYSTEM="1")
for _leak in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
    ENV.pop(_leak, None)


def git(cwd: Path, *args: str, input: bytes | None = None) -> bytes:
    return subprocess.run(["git", *args], cwd=cwd, input=input, capture_output=True, check=True, env=ENV).stdout


def py_module(name: str, functions: int) -> str:
    body = [f'"""{name}: generated module."""\nimport os\n\nfrom vllm import envs\n\n'
            f'_LEVEL = int(os.environ.get("VLLM_{name.upper()}_LEVEL", "0"))\n\n\n']
    for i in range(functions):
        body.append(f"def {name}_fn_{i}(x, y=None):\n    total = x * {i}\n    if y is not None:\n"
                    f"        total += y\n    return total\n\n\n")
    return "".join(body)


def cpp_source(name: str, functions: int) -> str:
    body = [f"// {name}: generated kernel source\n#include <cstdlib>\n#include <cstring>\n\nnamespace kern {{\n\n"]
    for i in range(functions):
        body.append(f"int {name}_fn_{i}(int x, int y) {{\n    int total = x * {i};\n    if (y > 0) {{\n"
                    f"        total += y;\n    }}\n    return total;\n}}\n\n")
    body.append("}  // namespace kern\n")
    return "".join(body)


def shell_script(name: str, steps: int) -> str:
    body = [f"#!/usr/bin/env bash\n# {name}: generated launch script\nset -euo pipefail\n\n"]
    for i in range(steps):
        body.append(f"step_{i}() {{\n    local n={i}\n    echo \"step {i} of {name}\"\n}}\n\n")
    return "".join(body)


BIG_PY = ["vllm/model_executor/models/minimax_m2.py", "vllm/model_executor/models/llama.py",
          "vllm/distributed/parallel_state.py", "vllm/platforms/xpu.py", "vllm/envs.py",
          "vllm/model_executor/layers/fused_moe/layer.py"]
SCRIPTS = ["scripts/serve_b70.sh", "scripts/bench_tp4.sh", "scripts/env_xpu.sh"]
BIG_CPP = ["csrc/xpu/esimd_moe.cpp", "csrc/xpu/gemv.cpp", "csrc/xpu/norm.cpp", "include/kern/dispatch.h"]


def build_vllm(root: Path, files: int) -> str:
    git(root, "init", "-q", "-b", "main")
    for rel in BIG_PY:
        _write(root / rel, py_module(Path(rel).stem, 160))
    for rel in SCRIPTS:
        _write(root / rel, shell_script(Path(rel).stem, 60))
    written = len(BIG_PY) + len(SCRIPTS)
    d = 0
    while written < files:
        for f in range(min(25, files - written)):
            _write(root / "vllm" / f"pkg_{d:03d}" / f"mod_{f:02d}.py", py_module(f"m{d}_{f}", 12))
            written += 1
        d += 1
    return _commit_all(root)


def build_kernels(root: Path, files: int) -> str:
    git(root, "init", "-q", "-b", "main")
    for rel in BIG_CPP:
        _write(root / rel, cpp_source(Path(rel).stem, 150))
    written = len(BIG_CPP)
    d = 0
    while written < files:
        for f in range(min(20, files - written)):
            _write(root / "csrc" / f"unit_{d:03d}" / f"k_{f:02d}.cpp", cpp_source(f"k{d}_{f}", 10))
            written += 1
        d += 1
    return _commit_all(root)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _commit_all(root: Path) -> str:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "upstream tree")
    return git(root, "rev-parse", "HEAD").decode().strip()


@dataclass
class Planned:
    upstream: str
    status: Status
    flag: str
    edits: list[tuple[str, str, str]]        # (path, old text or "" for a new file, new text)


def _py_gate(flag: str, n: int, style: int) -> str:
    if style == 0:
        return f'    if os.environ.get("{flag}", "0") == "1":\n        total += {n}\n'
    if style == 1:
        return f'    if os.getenv("{flag}"):\n        total -= {n}\n'
    return f'    if int(os.environ.get("{flag}", "0")):\n        total *= {n % 5 + 1}\n'


def plan_vllm(count: int, rng: random.Random) -> list[Planned]:
    out = []
    for n in range(count):
        status = Status.PROMOTED if n % 3 != 2 else (Status.NEGATIVE_ARCHIVED if n % 6 == 2 else Status.DIAGNOSTIC)
        flag = f"VLLM_LAB_FLAG_{n}"
        big = BIG_PY[n % len(BIG_PY)] if status == Status.PROMOTED else BIG_PY[(n // 3) % len(BIG_PY)]
        fn = (n * 7) % 160 if status == Status.PROMOTED else (n * 7 + 3) % 160
        if status != Status.PROMOTED and n % 4 == 1:      # an experiment where promoted patch n-1 edits: conflicts
            big, fn = BIG_PY[(n - 1) % len(BIG_PY)], ((n - 1) * 7) % 160
        edits = [(big, f"    total = x * {fn}\n", f"    total = x * {fn}\n{_py_gate(flag, n, n % 3)}")]
        if n % 4 == 1:
            pkg = f"vllm/pkg_{rng.randrange(60):03d}/mod_{rng.randrange(25):02d}.py"
            edits.append((pkg, "    total = x * 2\n", f"    total = x * 2\n{_py_gate(flag, n, 0)}"))
        if n % 5 == 3:
            script = SCRIPTS[n % len(SCRIPTS)]
            step = (n * 3) % 60
            edits.append((script, f"    local n={step}\n",
                          f"    local n={step}\n    if [ \"${{{flag}:-0}}\" = \"1\" ]; then echo gated; fi\n"))
        if n % 9 == 4:
            edits.append((f"vllm/lab/probe_{n}.py", "", f'import os\n\nPROBE = os.environ.get("{flag}", "")\n'))
        out.append(Planned("vllm", status, flag, edits))
    return out


def plan_kernels(count: int) -> list[Planned]:
    out = []
    for n in range(count):
        status = Status.PROMOTED if n % 3 != 2 else Status.NEGATIVE_ARCHIVED
        flag = f"KERN_LAB_FLAG_{n}"
        src = BIG_CPP[n % 3]
        fn = (n * 5) % 150 if status == Status.PROMOTED else (n * 5 + 2) % 150
        gate = (f"    if (const char* v = std::getenv(\"{flag}\"); v && std::strcmp(v, \"1\") == 0) {{\n"
                f"        total += {n};\n    }}\n")
        edits = [(src, f"    int total = x * {fn};\n", f"    int total = x * {fn};\n{gate}")]
        if n % 4 == 0:
            edits.append(("include/kern/dispatch.h", f"    int total = x * {n % 150};\n",
                          f"    int total = x * {n % 150};\n{gate}"))
        out.append(Planned("kernels", status, flag, edits))
    return out


def write_queue(upstream_dir: Path, base: str, ws: Path, name: str, planned: list[Planned]) -> None:
    """Promoted patches each on top of the previous ones; the others against the pin (as experiments are made)."""
    scratch = ws.parent / f"scratch-{name}"
    git(ws.parent, "clone", "-q", str(upstream_dir), str(scratch))
    queue = ws / "queues" / name
    queue.mkdir(parents=True)
    series = ["patches:"]
    stack_head = base
    for n, plan in enumerate(planned, 1):
        on_stack = plan.status == Status.PROMOTED
        git(scratch, "checkout", "-q", "-f", stack_head if on_stack else base)
        for rel, old, new in plan.edits:
            path = scratch / rel
            if old == "":
                _write(path, new)
                continue
            text = path.read_text()
            assert old in text, (rel, old)
            path.write_text(text.replace(old, new, 1))
        git(scratch, "add", "-A")
        diff = git(scratch, "diff", "--cached", "--full-index", "--no-color", "--no-ext-diff", "--src-prefix=a/",
                   "--dst-prefix=b/")
        git(scratch, "commit", "-q", "-m", f"patch {n}")
        if on_stack:
            stack_head = git(scratch, "rev-parse", "HEAD").decode().strip()
        pid = f"{name}-{n:03d}"
        entry = PatchEntry(id=pid, upstream=name, file=f"{n:04d}-{pid}.patch", status=plan.status,
                           title=f"Lab change {n} of {name}", flags=(plan.flag,), date="2026-05-19",
                           author="Lab <lab@example.com>")
        (queue / entry.file).write_bytes(render_patch_file(entry, diff))
        series += [f"  - id: {pid}", f"    file: {entry.file}", f"    status: {plan.status.value}",
                   f"    title: {entry.title}", f"    flags: [{plan.flag}]", f"    date: '{entry.date}'",
                   f"    author: {entry.author}"]
    (queue / "series.yaml").write_text("\n".join(series) + "\n")
    shutil.rmtree(scratch)


def make_lab_workspace(root: Path, *, files: int = 3000, patches: int = 218) -> Path:
    """Build upstreams and the workspace under `root`; returns the workspace folder (`root/ws`)."""
    rng = random.Random(17)
    vllm_dir, kern_dir, ws = root / "up-vllm", root / "up-kernels", root / "ws"
    for d in (vllm_dir, kern_dir, ws):
        d.mkdir(parents=True)
    n_kern = max(1, patches * 2 // 9)
    n_vllm = patches - n_kern
    vllm_base = build_vllm(vllm_dir, files * 3 // 4)
    kern_base = build_kernels(kern_dir, files - files * 3 // 4)
    vllm_plan = plan_vllm(n_vllm, rng)
    kern_plan = plan_kernels(n_kern)
    write_queue(vllm_dir, vllm_base, ws, "vllm", vllm_plan)
    write_queue(kern_dir, kern_base, ws, "kernels", kern_plan)
    profile = {p.flag: "1" for p in (vllm_plan + kern_plan)[:40] if p.status == Status.PROMOTED}
    profile_yaml = "".join(f"      {k}: '1'\n" for k in sorted(profile))
    (ws / "pins.lock").write_text(
        f"version: 1\nupstreams:\n  vllm:\n    url: {vllm_dir}\n    pin: {vllm_base}\n"
        f"  kernels:\n    url: {kern_dir}\n    pin: {kern_base}\n"
        f"stacks:\n  lab:\n    upstreams: [vllm, kernels]\n    include: [promoted]\n    profile:\n{profile_yaml}")
    return ws


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--files", type=int, default=3000)
    parser.add_argument("--patches", type=int, default=218)
    args = parser.parse_args()
    ws = make_lab_workspace(args.dir, files=args.files, patches=args.patches)
    print(ws)


if __name__ == "__main__":
    main()
