"""How long the two fast paths of a stack regeneration take: the no-op rebuild and the Python-only wheel.

    python benchmarks/bench_build.py [--input-files 1500] [--wheel-py-files 2500] [--blob-mb 200] [--repeat 5]

No-op rebuild: a generated upstream with a C extension (setuptools, the real compiler) whose recipe reads
`--input-files` extra headers (vLLM's csrc/ holds about that many files); after the first build, `build_target`
is timed with nothing changed, so what is measured is probing the toolchain, hashing every input and the lookup.

Python-only wheel: a synthetic vLLM-sized wheel (`--wheel-py-files` modules and a `--blob-mb` binary standing in
for the compiled kernels) has five modules replaced by `repack_wheel`. `--compare-naive` also times re-zipping
the whole wheel with zipfile (decompress and recompress every entry), the approach the raw copy avoids.
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
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from patchq.build.builder import BuildKind, build_target
from patchq.build.recipe import load_recipe
from patchq.overlay import repack_wheel

NATIVE_C = """\
#define PY_SSIZE_T_CLEAN
#include <Python.h>
static PyObject *scale(PyObject *self, PyObject *args) {
    long x;
    if (!PyArg_ParseTuple(args, "l", &x)) return NULL;
    return PyLong_FromLong(x * 2);
}
static PyMethodDef methods[] = {{"scale", scale, METH_VARARGS, ""}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", NULL, -1, methods};
PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
"""

RECIPE = """\
upstream: bench
inputs: [csrc/, setup.py]
command: python setup.py -q build_ext --inplace --force
outputs: [{kind: extension, path: "bench/_native*.so"}]
toolchain:
  cc: cc --version | sed -n 1p
  python: python -c 'import sys; print(sys.version.split()[0])'
"""


def make_upstream(root: Path, input_files: int) -> Path:
    src = root / "upstream"
    (src / "csrc" / "include").mkdir(parents=True)
    (src / "bench").mkdir()
    (src / "bench" / "__init__.py").write_text("")
    (src / "csrc" / "native.c").write_text(NATIVE_C)
    (src / "setup.py").write_text('from setuptools import Extension, setup\n'
                                  'setup(name="bench", version="1.0", packages=["bench"],\n'
                                  '      ext_modules=[Extension("bench._native", ["csrc/native.c"])])\n')
    filler = "".join(f"static const int k{i} = {i};\n" for i in range(200))
    for index in range(input_files):
        (src / "csrc" / "include" / f"gen_{index:05d}.h").write_text(f"/* {index} */\n{filler}")
    (src / ".gitignore").write_text("build/\n*.so\n")
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    subprocess.run([*git, "init", "-q", str(src)], check=True)
    subprocess.run([*git, "-C", str(src), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(src), "commit", "-q", "-m", "bench"], check=True)
    return src


def time_noop_rebuild(root: Path, input_files: int, repeat: int) -> tuple[float, list[float]]:
    src = make_upstream(root, input_files)
    (root / "kernels").mkdir()
    (root / "kernels" / "bench-native.yaml").write_text(RECIPE)
    recipe = load_recipe(root / "kernels" / "bench-native.yaml")
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    first = build_target(recipe, src, root / "cache", env=env)
    if first.kind != BuildKind.BUILT:
        raise SystemExit(f"first build did not build: {first.kind.value} {first.why}\n" + "\n".join(first.log_tail))
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        outcome = build_target(recipe, src, root / "cache", env=env)
        timings.append(time.perf_counter() - started)
        assert outcome.kind == BuildKind.CACHED, outcome
    return first.seconds, timings


def make_wheel(root: Path, py_files: int, blob_mb: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    wheel = root / "vllm-0.0.0-cp311-cp311-linux_x86_64.whl"
    module = "".join(f"def layer_{i}(x):\n    return x * {i}\n\n\n" for i in range(120))
    record = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for index in range(py_files):
            name = f"vllm/pkg_{index // 100:03d}/module_{index:05d}.py"
            zf.writestr(name, module)
            record.append(f"{name},,")
        info = zipfile.ZipInfo("vllm/_C.abi3.so")   # random bytes: the compiled kernels' stand-in
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, os.urandom(1 << 20) * blob_mb, compresslevel=1)
        record.append("vllm/_C.abi3.so,,")
        zf.writestr("vllm-0.0.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: vllm\nVersion: 0.0.0\n")
        zf.writestr("vllm-0.0.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: false\n"
                                                  "Tag: cp311-cp311-linux_x86_64\n")
        zf.writestr("vllm-0.0.0.dist-info/RECORD", "\n".join(record) + "\nvllm-0.0.0.dist-info/RECORD,,\n")
    return wheel


def time_repack(root: Path, py_files: int, blob_mb: int, repeat: int) -> tuple[int, list[float], Path]:
    wheel = make_wheel(root, py_files, blob_mb)
    replacements = {f"vllm/pkg_000/module_{i:05d}.py": b"def layer_0(x):\n    return x\n" for i in range(5)}
    # First repack pays to hash the entries the synthetic RECORD left without digests; real wheels record them.
    seeded = repack_wheel(wheel, {}, root / "seeded")
    timings = []
    for attempt in range(repeat):
        started = time.perf_counter()
        repack_wheel(seeded, replacements, root / f"out{attempt}")
        timings.append(time.perf_counter() - started)
        shutil.rmtree(root / f"out{attempt}")
    return wheel.stat().st_size, timings, seeded


def time_naive_rezip(wheel: Path, out: Path) -> float:
    started = time.perf_counter()
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    return time.perf_counter() - started


def describe(timings: list[float]) -> str:
    return (f"median {statistics.median(timings):.3f} s (min {min(timings):.3f}, max {max(timings):.3f}, "
            f"{len(timings)} runs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input-files", type=int, default=1500)
    parser.add_argument("--wheel-py-files", type=int, default=2500)
    parser.add_argument("--blob-mb", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--compare-naive", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="patchq-bench-") as scratch:
        root = Path(scratch)
        first, noop = time_noop_rebuild(root / "build", args.input_files, args.repeat)
        print(f"first build (C extension, {args.input_files + 2} input files): {first:.3f} s")
        print(f"no-op rebuild: {describe(noop)}")
        size, repack, seeded = time_repack(root / "wheel", args.wheel_py_files, args.blob_mb, args.repeat)
        print(f"python-only wheel repack ({size / 2**20:.0f} MiB wheel, {args.wheel_py_files} modules, "
              f"{args.blob_mb} MiB binary, 5 modules replaced): {describe(repack)}")
        if args.compare_naive:
            print(f"naive re-zip of the same wheel with zipfile: {time_naive_rezip(seeded, root / 'naive.whl'):.3f} s")


if __name__ == "__main__":
    main()
