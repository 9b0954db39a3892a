"""Build the CUDA trial example as a patchq workspace: `python examples/cuda-poly/build_workspace.py DIR`.

The upstream is `upstream/poly.cu` (one CUDA kernel, also compiled for the CPU) committed into a local git
repository; its queue holds two real patches to the evaluation function — Horner's rule (faster) and the C
library's powf (slower) — and the workspace has two measured stacks: `poly-gpu` (built by nvcc, benchmarked on the
GPU) and `poly-cpu` (the same source built by the C++ compiler). Nothing is downloaded.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))          # the patchq checkout this example ships in

from patchq.demo import _commit, _diff_for  # noqa: E402
from patchq.git import Repo, run_git  # noqa: E402
from patchq.model import PatchEntry, Status  # noqa: E402
from patchq.patchfile import render_patch_file  # noqa: E402
from patchq.txn import atomic_write  # noqa: E402
from patchq.workspace import SERIES_NAME, dump_yaml, entry_to_yaml  # noqa: E402

AUTHOR = "Kernel Lab <lab@example.com>"
NAIVE = """    float sum = 0.0f;
    for (int k = 0; k <= deg; ++k) {
        float p = 1.0f;
        for (int j = 0; j < k; ++j) p *= x;
        sum += c[k] * p;
    }
    return sum;
"""
HORNER = """    float sum = c[deg];
    for (int k = deg - 1; k >= 0; --k) sum = sum * x + c[k];    // Horner: one multiply-add a term
    return sum;
"""
POWF = """    float sum = 0.0f;
    for (int k = 0; k <= deg; ++k) sum += c[k] * powf(x, (float)k);   // the library's power function
    return sum;
"""

PATCHES = [
    (PatchEntry(id="horner", upstream="poly", file="0001-horner.patch", status=Status.NEGATIVE_ARCHIVED,
                title="poly: evaluate with Horner's rule",
                why="One multiply-add per term instead of recomputing every power from scratch (k multiplies for "
                    "term k). Candidate: promote it if the trial says so.", date="2026-06-01", author=AUTHOR),
     NAIVE, HORNER),
    (PatchEntry(id="powf", upstream="poly", file="0002-powf.patch", status=Status.NEGATIVE_ARCHIVED,
                title="poly: use powf for the powers",
                why="Reads better than the hand-written loop, but the library's accurate powf costs far more than "
                    "a few multiplies. Candidate: the trial should reject it.", date="2026-06-02", author=AUTHOR),
     NAIVE, POWF),
]

RECIPES = {
    "poly-cuda.yaml": """\
# The kernel for the GPU. CUDA_ARCH picks the target (default: the GPU of the building machine, nvcc's 'native').
upstream: poly
description: poly.cu compiled by nvcc
inputs: [poly.cu]
command: |
  mkdir -p build
  nvcc -O3 -arch="${CUDA_ARCH:-native}" poly.cu -o build/poly_cuda
outputs: [build/poly_cuda]
toolchain:
  nvcc: nvcc --version | tail -n 1
  arch: echo "${CUDA_ARCH:-native}"
requires: [cuda, "tool:nvidia-smi"]
build_by_default: false
""",
    "poly-cpu.yaml": """\
# The same source for the CPU: the evaluation code is shared, the kernel launch is replaced by a loop.
upstream: poly
description: poly.cu compiled by the C++ compiler
inputs: [poly.cu]
command: |
  mkdir -p build
  c++ -O2 -x c++ poly.cu -o build/poly_cpu
outputs: [build/poly_cpu]
toolchain:
  cxx: c++ --version | head -n 1
build_by_default: false
""",
}

LOCK = """\
# patchq example: a CUDA kernel, two candidate patches, and trials that measure them (docs/trial.md).
version: 1
upstreams:
  poly:
    url: upstreams/poly.git
    pin: {pin}
    description: one CUDA kernel (also built for the CPU)
stacks:
  # Degree 32 on the GPU keeps the naive kernel compute-bound (an H100 streams the 16M points faster than it does
  # ~560 multiplies each); degree 8 on the CPU, where the naive loop is short enough that a library powf per
  # term costs more than it (measured on a Xeon: 40 Melem/s naive, 15 with powf, 240 with Horner).
  poly-gpu:
    description: the kernel on the GPU, built by nvcc
    upstreams: [poly]
    bench:
      cmd: ./build/poly_cuda --deg 32 --reps 20
      metric: "melem_s: ([0-9.]+)"
      repeats: 5
      warmup: 1
      timeout: 120
      unit: Melem/s
      cwd: poly
      build: [poly-cuda]
    gates:
      - {{name: accuracy, cmd: ./build/poly_cuda --check --deg 32, timeout: 120, cwd: poly}}
  poly-cpu:
    description: the same source on the CPU, built by the C++ compiler
    upstreams: [poly]
    bench:
      cmd: ./build/poly_cpu --deg 8 --reps 5
      metric: "melem_s: ([0-9.]+)"
      repeats: 5
      warmup: 1
      timeout: 120
      unit: Melem/s
      cwd: poly
      build: [poly-cpu]
    gates:
      - {{name: accuracy, cmd: ./build/poly_cpu --check --deg 8, timeout: 120, cwd: poly}}
"""


def build(target: Path) -> Path:
    """Write the example workspace into `target` (new or empty)."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    if target.exists() and any(target.iterdir()):
        raise SystemExit(f"{target} exists and is not empty")
    source = target / "upstreams-src" / "poly"
    repo = Repo.init(source)
    for name in ("poly.cu", "README.md", ".gitignore"):
        (source / name).write_bytes((HERE / "upstream" / name).read_bytes())
    pin = _commit(repo, "poly: a polynomial kernel for the GPU and the CPU", 0)
    run_git(["clone", "-q", "--bare", str(source), str(target / "upstreams" / "poly.git")])
    import shutil
    shutil.rmtree(target / "upstreams-src")
    for entry, old, new in PATCHES:
        diff = _diff_for(target / "upstreams" / "poly.git", pin, (("poly.cu", old, new),))
        atomic_write(target / "queues" / "poly" / entry.file, render_patch_file(entry, diff))
    doc = CommentedMap()
    doc.yaml_set_start_comment("patchq queue for upstream 'poly': order is apply order")
    doc["patches"] = CommentedSeq([entry_to_yaml(entry) for entry, _, _ in PATCHES])
    atomic_write(target / "queues" / "poly" / SERIES_NAME, dump_yaml(doc))
    atomic_write(target / "pins.lock", LOCK.format(pin=pin).encode())
    for name, text in RECIPES.items():
        atomic_write(target / "kernels" / name, text.encode())
    atomic_write(target / ".gitignore", b".patchq/\n")
    return target


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python examples/cuda-poly/build_workspace.py DIR")
    print(build(Path(sys.argv[1]).resolve()))
