"""build/: recipes, affected targets and the content-addressed build cache, with the real C compiler.

The upstream is a git repository made here: a package with a C extension built by setuptools (`csrc/native.c`),
a command-line tool built by make (`tools/cli.c`) and a pure-Python module. Patches are real diffs applied as
commits to a checkout at the pin, as a queue would. A recipe's command appends to a counter file, so "no build work"
is counted, not guessed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from patchq.build.builder import BuildKind, build_target
from patchq.build.cache import cache_key, last_good, list_inputs
from patchq.build.host import MachineMemory, missing_requirements, plan_jobs
from patchq.build.recipe import (
    Resources,
    affected_targets,
    load_recipe,
    load_recipes,
    require_inputs_at,
    targets_to_build,
    validate_recipe_at,
)
from patchq.build.runner import probe_toolchain
from patchq.errors import BadInput
from patchq.git import Repo, run_git

REPO_ROOT = Path(__file__).resolve().parents[1]

SETUP_PY = """\
from setuptools import Extension, setup

setup(name="fastdemo", version="1.0", packages=["fastdemo"],
      ext_modules=[Extension("fastdemo._native", ["csrc/native.c"])])
"""

NATIVE_C = """\
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define FACTOR 2

static PyObject *scale(PyObject *self, PyObject *args) {
    long x;
    if (!PyArg_ParseTuple(args, "l", &x)) return NULL;
    return PyLong_FromLong(x * FACTOR);
}

static PyMethodDef methods[] = {{"scale", scale, METH_VARARGS, "x * FACTOR"}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", NULL, -1, methods};
PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
"""

CLI_C = """\
#include <stdio.h>
int main(void) { printf("cli v1\\n"); return 0; }
"""

MAKEFILE = "bin/cli: tools/cli.c\n\tmkdir -p bin\n\t$(CC) -O1 -o $@ tools/cli.c\n"

NATIVE_RECIPE = """\
upstream: fastdemo
description: the C extension, built in place by setuptools
inputs: [csrc/, setup.py]
command: |
  echo native >> "$BUILD_COUNTER"
  python setup.py -q build_ext --inplace --force   # patchq decides when to build; setuptools compares whole seconds
outputs:
  - {kind: extension, path: "fastdemo/_native*.so"}
toolchain:
  cc: cc --version | sed -n 1p
  torch: echo "torch ${FAKE_TORCH_VERSION:-2.5.0} cxx11abi 1"
resources: {jobs: 2, mem_per_job_gb: 1}
"""

CLI_RECIPE = """\
upstream: fastdemo
inputs: [tools/, Makefile]
command: |
  echo cli >> "$BUILD_COUNTER"
  make -s
outputs:
  - {kind: cmake-target, path: bin/cli}
toolchain:
  cc: cc --version | sed -n 1p
"""


@pytest.fixture
def fastdemo(make_upstream):
    up = make_upstream("fastdemo")
    up.write("setup.py", SETUP_PY).write("csrc/native.c", NATIVE_C).write("tools/cli.c", CLI_C)
    up.write("Makefile", MAKEFILE).write("fastdemo/__init__.py", "")
    up.write("fastdemo/pure.py", "def double(x):\n    return 2 * x\n")
    up.write(".gitignore", "build/\n*.so\nbin/\n__pycache__/\n")
    return up, up.commit("fastdemo 1.0")


@pytest.fixture
def recipes(tmp_path):
    folder = tmp_path / "kernels"
    folder.mkdir()
    (folder / "native.yaml").write_text(NATIVE_RECIPE)
    (folder / "cli.yaml").write_text(CLI_RECIPE)
    return load_recipes(folder)


@pytest.fixture
def bench(tmp_path, fastdemo, recipes):
    """A checkout of the upstream at its pin, a cache, a counter and the environment builds run with."""
    up, pin = fastdemo
    checkout = tmp_path / "checkout"
    run_git(["clone", "-q", str(up.path), str(checkout)])
    counter = tmp_path / "counter"
    counter.write_text("")
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
               BUILD_COUNTER=str(counter))
    return Bench(up, pin, Repo(checkout), recipes, tmp_path / "cache", counter, env)


class Bench:
    def __init__(self, upstream, pin, checkout, recipes, cache, counter, env):
        self.upstream, self.pin, self.checkout, self.recipes = upstream, pin, checkout, recipes
        self.cache, self.counter, self.env = cache, counter, env

    def apply_patch(self, edits, message="patch"):
        """One queue entry: a real diff against the pin, applied and committed in the checkout."""
        diff = self.upstream.diff(self.pin, edits)
        assert self.checkout.apply(diff, index=True).ok
        self.checkout.run("commit", "-q", "-m", message)

    def build(self, target, **kw):
        kw.setdefault("env", self.env)
        return build_target(self.recipes[target], self.checkout.path, self.cache, **kw)

    def builds_run(self):
        return self.counter.read_text().split()

    def logs(self, target):
        return sorted((self.cache / "logs" / target).glob("*.log"))


def call_native(so_path: str, x: int) -> int:
    code = ("import importlib.util, sys\n"
            "spec = importlib.util.spec_from_file_location('fastdemo._native', sys.argv[1])\n"
            "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
            "print(module.scale(int(sys.argv[2])))\n")
    out = subprocess.run([sys.executable, "-c", code, so_path, str(x)], capture_output=True, text=True, check=True)
    return int(out.stdout)


# ---- builds ----------------------------------------------------------------------------------------------------

def test_first_build_builds_then_nothing_changed_does_no_work(bench):
    native, cli = bench.build("native"), bench.build("cli")
    assert (native.kind, cli.kind) == (BuildKind.BUILT, BuildKind.BUILT)
    assert call_native(native.outputs[0], 21) == 42
    assert subprocess.run([cli.outputs[0]], capture_output=True, text=True).stdout == "cli v1\n"
    assert native.jobs == 2 and Path(native.log).is_file()
    assert all(str(bench.cache / "objects" / native.key) in p for p in native.outputs)

    started = time.monotonic()
    again = [bench.build("native"), bench.build("cli")]
    elapsed = time.monotonic() - started
    assert [o.kind for o in again] == [BuildKind.CACHED, BuildKind.CACHED]
    assert again[0].outputs == native.outputs and again[0].key == native.key
    assert bench.builds_run() == ["native", "cli"]             # the commands ran once each, never again
    assert len(bench.logs("native")) == len(bench.logs("cli")) == 1
    assert elapsed < 2.0


def test_a_patch_rebuilds_only_the_target_it_feeds(bench):
    first_native, first_cli = bench.build("native"), bench.build("cli")
    bench.apply_patch([("csrc/native.c", "#define FACTOR 2", "#define FACTOR 3")], "triple")
    changed = bench.checkout.changed_paths(bench.pin, "HEAD")
    affected = affected_targets(bench.recipes, "fastdemo", changed)
    assert affected == {"native": ("csrc/native.c",)}
    assert targets_to_build(bench.recipes, affected) == ("native",)

    native, cli = bench.build("native"), bench.build("cli")
    assert (native.kind, cli.kind) == (BuildKind.BUILT, BuildKind.CACHED)
    assert native.key != first_native.key and cli.key == first_cli.key
    assert call_native(native.outputs[0], 21) == 63
    assert call_native(first_native.outputs[0], 21) == 42       # the old object is still in the cache
    assert bench.builds_run() == ["native", "cli", "native"]


def test_python_only_change_affects_no_native_target(bench):
    bench.apply_patch([("fastdemo/pure.py", "2 * x", "x + x")])
    changed = bench.checkout.changed_paths(bench.pin, "HEAD")
    assert changed == ["fastdemo/pure.py"]
    assert affected_targets(bench.recipes, "fastdemo", changed) == {}
    assert affected_targets(bench.recipes, "another-upstream", ["csrc/native.c"]) == {}


def test_failing_build_reports_the_log_and_keeps_the_previous_output(bench):
    good = bench.build("native")
    bench.apply_patch([("csrc/native.c", "return PyLong_FromLong(x * FACTOR);", "return PyLong_FromLong(x *;")])
    failed = bench.build("native")
    assert failed.kind == BuildKind.FAILED and failed.failed
    assert failed.why == "exit 1"
    assert Path(failed.log).is_file() and failed.log != good.log
    assert any("error" in line for line in failed.log_tail)
    assert failed.previous_key == good.key and failed.previous_outputs == good.outputs
    assert call_native(failed.previous_outputs[0], 5) == 10
    assert not (bench.cache / "objects" / failed.key).exists()
    assert last_good(bench.cache, "native").key == good.key


def test_toolchain_change_invalidates_exactly_the_dependent_outputs(bench):
    native, cli = bench.build("native"), bench.build("cli")
    upgraded = dict(bench.env, FAKE_TORCH_VERSION="2.6.0")
    assert probe_toolchain(bench.recipes["native"], upgraded)["torch"] == "torch 2.6.0 cxx11abi 1"
    native2 = bench.build("native", env=upgraded)
    cli2 = bench.build("cli", env=upgraded)
    assert (native2.kind, cli2.kind) == (BuildKind.BUILT, BuildKind.CACHED)
    assert native2.key != native.key and cli2.key == cli.key
    assert bench.build("native").kind == BuildKind.CACHED       # the old toolchain's output is still there


def test_killed_build_leaves_no_partial_object(bench, tmp_path):
    recipe_path = tmp_path / "kernels" / "killer.yaml"
    recipe_path.write_text("upstream: fastdemo\ninputs: [tools/]\n"
                           "command: mkdir -p out && echo partial > out/blob && kill -9 $$\n"
                           "outputs: [out/blob]\n")
    outcome = build_target(load_recipe(recipe_path), bench.checkout.path, bench.cache, env=bench.env)
    assert outcome.kind == BuildKind.FAILED
    assert outcome.why.startswith("killed by SIGKILL")
    assert list((bench.cache / "objects").iterdir()) == []
    assert last_good(bench.cache, "killer") is None and outcome.previous_key == ""


def test_missing_output_is_a_failure_not_an_empty_object(bench, tmp_path):
    recipe_path = tmp_path / "kernels" / "lazy.yaml"
    recipe_path.write_text("upstream: fastdemo\ninputs: [tools/]\ncommand: 'true'\n"
                           "outputs: [{kind: wheel, path: 'dist/*.whl'}]\n")
    outcome = build_target(load_recipe(recipe_path), bench.checkout.path, bench.cache, env=bench.env)
    assert outcome.kind == BuildKind.FAILED and outcome.why == "no output matches dist/*.whl"
    assert list((bench.cache / "objects").iterdir()) == []


def test_dry_run_says_what_would_build_without_building(bench):
    dry = bench.build("cli", dry_run=True)
    assert dry.kind == BuildKind.WOULD_BUILD and not dry.log and dry.jobs >= 1
    assert dry.key == "" and dry.facts == {}          # no toolchain command ran: the key is not known yet
    assert bench.builds_run() == [] and not (bench.cache / "logs" / "cli").exists()
    built = bench.build("cli")
    again = bench.build("cli", dry_run=True)          # keyed with the facts the build recorded
    assert again.kind == BuildKind.CACHED and again.key == built.key
    bench.apply_patch([("tools/cli.c", "cli v1", "cli v2")])
    assert bench.build("cli", dry_run=True).kind == BuildKind.WOULD_BUILD


def test_dry_run_runs_no_recipe_command(bench, tmp_path):
    """Issue 13: `apply --no-build` and `build --dry-run` ran the recipe's toolchain and setup commands."""
    ran = tmp_path / "ran"
    setup = tmp_path / "setup.sh"
    setup.write_text(f"echo setup >> {ran}\n")
    recipe_path = tmp_path / "kernels" / "probe.yaml"
    recipe_path.write_text(f"upstream: fastdemo\ninputs: [tools/]\ncommand: 'true'\noutputs: [x]\n"
                           f"setup: {setup}\ntoolchain: {{cc: 'echo fact >> {ran}'}}\n")
    dry = build_target(load_recipe(recipe_path), bench.checkout.path, bench.cache, dry_run=True, env=bench.env)
    assert dry.kind == BuildKind.WOULD_BUILD
    assert not ran.exists()


def test_launcher_prefixes_the_compiler(bench, tmp_path):
    tools = tmp_path / "tools-bin"
    tools.mkdir()
    launcher = tools / "fakecache"
    launcher.write_text('#!/bin/sh\necho "$*" >> "$LAUNCH_LOG"\nexec "$@"\n')
    launcher.chmod(0o755)
    env = dict(bench.env, PATH=f"{tools}{os.pathsep}{bench.env['PATH']}", LAUNCH_LOG=str(tmp_path / "launches"))
    outcome = bench.build("cli", launcher="fakecache", env=env)
    assert outcome.kind == BuildKind.BUILT and outcome.launcher == "fakecache"
    assert (tmp_path / "launches").read_text().startswith("cc -O1 -o bin/cli tools/cli.c")
    assert "CMAKE_C_COMPILER_LAUNCHER=fakecache" in Path(outcome.log).read_text()

    bench.apply_patch([("tools/cli.c", "cli v1", "cli v2")])
    without = bench.build("cli", launcher="no-such-cache")
    assert without.kind == BuildKind.BUILT and without.launcher == ""
    assert "launcher no-such-cache not found on PATH; building without it" in without.notes


def test_setup_script_is_sourced_quietly_with_its_own_arguments(bench, tmp_path):
    script = tmp_path / "vars.sh"
    script.write_text('echo "oneAPI banner"\nexport TOOLKIT_ROOT="/opt/fake $*"\n')
    recipe_path = tmp_path / "kernels" / "sourced.yaml"
    recipe_path.write_text(f"upstream: fastdemo\ninputs: [tools/]\nsetup: {script}\nsetup_args: [--force]\n"
                           "command: mkdir -p out && echo \"$TOOLKIT_ROOT\" > out/root.txt\n"
                           "outputs: [out/root.txt]\ntoolchain: {root: 'echo $TOOLKIT_ROOT'}\n")
    outcome = build_target(load_recipe(recipe_path), bench.checkout.path, bench.cache, env=bench.env)
    assert outcome.kind == BuildKind.BUILT
    assert Path(outcome.outputs[0]).read_text() == "/opt/fake --force\n"
    assert outcome.facts == {"root": "/opt/fake --force"}
    assert "oneAPI banner" not in Path(outcome.log).read_text()


def test_unavailable_toolkit_or_hardware_is_skipped_with_the_reason(bench, tmp_path):
    folder = tmp_path / "kernels"
    (folder / "xpu.yaml").write_text("upstream: fastdemo\ninputs: [csrc/]\nsetup: /nonexistent/2025.3/oneapi-vars.sh\n"
                                     "requires: [oneapi]\ncommand: icpx --version\noutputs: [x]\n")
    (folder / "tool.yaml").write_text("upstream: fastdemo\ninputs: [csrc/]\nrequires: ['tool:no-such-compiler-9']\n"
                                      "command: 'true'\noutputs: [x]\n")
    xpu = build_target(load_recipe(folder / "xpu.yaml"), bench.checkout.path, bench.cache, env=bench.env)
    assert xpu.kind == BuildKind.SKIPPED_UNAVAILABLE
    assert "setup script /nonexistent/2025.3/oneapi-vars.sh not found" in xpu.why
    tool = build_target(load_recipe(folder / "tool.yaml"), bench.checkout.path, bench.cache, env=bench.env)
    assert tool.kind == BuildKind.SKIPPED_UNAVAILABLE and tool.why == "no-such-compiler-9 not found on PATH"
    assert bench.builds_run() == []


def test_failing_fact_command_is_recorded_not_raised(bench, tmp_path):
    recipe_path = tmp_path / "kernels" / "facts.yaml"
    recipe_path.write_text("upstream: fastdemo\ninputs: [tools/]\ncommand: 'true'\noutputs: [x]\n"
                           "toolchain:\n  torch: python -c 'import no_such_torch_module'\n  ok: echo fine\n")
    facts = probe_toolchain(load_recipe(recipe_path), bench.env)
    assert facts["ok"] == "fine"
    assert facts["torch"].startswith("error (exit 1): ModuleNotFoundError")


def test_cache_key_covers_inputs_recipe_and_facts_only(bench, tmp_path):
    recipe = bench.recipes["native"]
    root = bench.checkout.path
    assert list_inputs(recipe, root) == ["csrc/native.c", "setup.py"]
    key = cache_key(recipe, root, {"cc": "gcc 12"})
    (root / "fastdemo" / "pure.py").write_text("changed\n")
    (root / "build").mkdir()
    (root / "build" / "junk.o").write_text("ignored by git, never an input\n")
    assert cache_key(recipe, root, {"cc": "gcc 12"}) == key
    assert cache_key(recipe, root, {"cc": "gcc 13"}) != key
    (root / "csrc" / "native.c").write_text(NATIVE_C + "\n")
    assert cache_key(recipe, root, {"cc": "gcc 12"}) != key


# ---- resources -------------------------------------------------------------------------------------------------

def test_job_count_follows_memory_and_missing_swap_is_said():
    memory = MachineMemory(available_gb=22.5, swap_total_gb=0.0)
    heavy = Resources(jobs=8, mem_per_job_gb=16, swap_gb=128)
    plan = plan_jobs(heavy, None, cpu_count=32, memory=memory)
    assert plan.jobs == 1
    assert any("reduced to 1" in n for n in plan.notes)
    assert any("128 GB of swap" in n for n in plan.notes)
    assert plan_jobs(Resources(jobs=4, mem_per_job_gb=2), None, cpu_count=2, memory=memory).jobs == 4
    assert plan_jobs(Resources(), None, cpu_count=3, memory=memory) .jobs == 3
    assert plan_jobs(Resources(mem_per_job_gb=100), 6, cpu_count=2, memory=memory).jobs == 1


# ---- recipe files ----------------------------------------------------------------------------------------------

def test_unknown_key_is_named_with_its_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("upstream: vllm\ninputs: [csrc/]\ncomand: make\ncommand: make\noutputs: [x]\n")
    with pytest.raises(BadInput) as err:
        load_recipe(path)
    assert err.value.path == str(path) and err.value.line == 3
    assert "comand: unknown key (did you mean 'command'?)" in str(err.value)


def test_wrong_types_and_bad_globs_are_named_with_their_line(tmp_path):
    cases = {
        "upstream: vllm\ninputs: [csrc/]\ncommand: make\noutputs: [x]\nresources:\n  jobs: many\n":
            (6, "resources.jobs: expected a whole number"),
        "upstream: vllm\ninputs:\n  - csrc/\n  - ../outside/**\ncommand: make\noutputs: [x]\n":
            (4, "inputs[1]: '../outside/**': '..' would leave the upstream"),
        "upstream: vllm\ninputs: [csrc/]\ncommand: make\noutputs:\n  - {kind: tarball, path: x}\n":
            (5, "outputs[0].kind: unknown output kind 'tarball'"),
        "upstream: vllm\ninputs: [csrc/]\ncommand: make\noutputs: [x]\nrequires: [gpu-magic]\n":
            (5, "requires[0]: unknown requirement 'gpu-magic'"),
        "upstream: vllm\ninputs: [csrc/]\ncommand: make\noutputs: ['**/*.so']\n":
            (4, "outputs[0].path: '**/*.so': an output must start with a folder or file name"),
        "upstream: 7\ninputs: [csrc/]\ncommand: make\noutputs: [x]\n":
            (1, "upstream: expected a string, got a number"),
        "upstream: vllm\ninputs: [csrc/]\ncommand: make\noutputs: [x]\nenv: {USE_X: true}\n":
            (5, "env.USE_X: expected a string or number, got a boolean"),
        "upstream: vllm\ninputs: [csrc/\ncommand: make\n": (None, "invalid YAML"),
    }
    for index, (text, (line, message)) in enumerate(cases.items()):
        path = tmp_path / f"case{index}.yaml"
        path.write_text(text)
        with pytest.raises(BadInput) as err:
            load_recipe(path)
        assert message in str(err.value), text
        if line is not None:
            assert err.value.line == line, text


def test_glob_matching_nothing_at_the_pin_is_reported(fastdemo, tmp_path):
    up, pin = fastdemo
    path = tmp_path / "stale.yaml"
    path.write_text("upstream: fastdemo\ninputs:\n  - csrc/\n  - kernels/sycl/**/*.cpp\ncommand: make\n"
                    "outputs: [x]\n")
    recipe = load_recipe(path)
    assert validate_recipe_at(recipe, up.repo, pin) == ["kernels/sycl/**/*.cpp"]
    with pytest.raises(BadInput) as err:
        require_inputs_at(recipe, up.repo, pin)
    assert err.value.path == str(path) and err.value.line == 4
    assert "inputs: 'kernels/sycl/**/*.cpp' matches nothing in fastdemo at" in str(err.value)


def test_shipped_recipes_load_and_route_changes_to_the_right_targets():
    recipes = load_recipes(REPO_ROOT / "kernels")
    assert set(recipes) == {"vllm-csrc-cuda", "vllm-csrc-cpu", "vllm-python-only", "vllm-xpu-kernels",
                            "llm-scaler-esimd", "llama-cpp-cpu", "llama-cpp-sycl", "llama-cpp-cuda"}
    xpu = recipes["vllm-xpu-kernels"]
    assert "2025.3" in xpu.setup and not xpu.setup.endswith("/setvars.sh") and "oneapi" in xpu.requires
    assert xpu.resources.swap_gb and xpu.resources.swap_gb >= 120
    assert recipes["vllm-python-only"].env.get("VLLM_USE_PRECOMPILED") == "1"
    assert recipes["vllm-csrc-cpu"].env.get("VLLM_TARGET_DEVICE") == "cpu"

    def routed(upstream, path):
        return set(affected_targets(recipes, upstream, [path]))

    assert routed("vllm", "vllm/model_executor/models/minimax_m2.py") == {"vllm-python-only"}
    assert routed("vllm", "csrc/activation_kernels.cu") == {"vllm-csrc-cuda"}
    assert routed("vllm", "csrc/cpu/activation.cpp") == {"vllm-csrc-cpu"}
    assert routed("vllm", "csrc/core/registration.h") == {"vllm-csrc-cuda", "vllm-csrc-cpu"}
    assert routed("vllm", "setup.py") == {"vllm-csrc-cuda", "vllm-csrc-cpu", "vllm-python-only"}
    assert routed("llama-cpp", "ggml/src/ggml-sycl/ggml-sycl.cpp") == {"llama-cpp-sycl"}
    assert routed("llama-cpp", "ggml/src/ggml-cuda/mmq.cu") == {"llama-cpp-cuda"}
    assert routed("llama-cpp", "src/llama-model.cpp") == {"llama-cpp-cpu", "llama-cpp-sycl", "llama-cpp-cuda"}
    assert routed("llm-scaler", "vllm/custom-esimd-kernels-vllm/csrc/moe.cpp") == {"llm-scaler-esimd"}
    assert routed("vllm-xpu-kernels", "csrc/xpu/attention.cpp") == {"vllm-xpu-kernels"}
    unavailable = missing_requirements(xpu, {"PATH": "/nonexistent"})
    assert unavailable and "not found" in unavailable[0]


# ---- a CUDA target, with the real nvcc where the machine has one ---------------------------------------------------

SCALE_CU = """\
#define FACTOR 7

__global__ void scale(int *x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] *= FACTOR;
}
"""

CUDA_RECIPE = """\
upstream: cudademo
description: one CUDA kernel compiled by nvcc to PTX and to an object (no GPU needed to compile)
inputs: [kernels/]
command: |
  echo cuda >> "$BUILD_COUNTER"
  mkdir -p build
  nvcc -ptx kernels/scale.cu -o build/scale.ptx
  nvcc -c kernels/scale.cu -o build/scale.o
outputs:
  - {kind: extension, path: build/scale.ptx}
  - {kind: extension, path: build/scale.o}
toolchain:
  nvcc: nvcc --version | sed -n '$p'
requires: [cuda]
"""


@pytest.mark.skipif(not (shutil.which("nvcc") or Path("/usr/local/cuda/bin/nvcc").is_file()),
                    reason="no CUDA compiler (nvcc) on this machine")
def test_cuda_kernel_is_compiled_by_nvcc_and_rebuilt_only_when_its_source_changes(make_upstream, tmp_path):
    up = make_upstream("cudademo")
    up.write("kernels/scale.cu", SCALE_CU).write("cudademo/__init__.py", "SCALE = 7\n")
    pin = up.commit("cudademo 1.0")
    checkout = tmp_path / "checkout"
    run_git(["clone", "-q", str(up.path), str(checkout)])
    counter = tmp_path / "counter"
    counter.write_text("")
    cuda_bin = os.path.dirname(shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc")
    env = dict(os.environ, PATH=cuda_bin + os.pathsep + os.environ["PATH"], BUILD_COUNTER=str(counter))
    (tmp_path / "kernels").mkdir()
    (tmp_path / "kernels" / "cuda.yaml").write_text(CUDA_RECIPE)
    recipe = load_recipe(tmp_path / "kernels" / "cuda.yaml")
    assert missing_requirements(recipe, env) == ()

    first = build_target(recipe, checkout, tmp_path / "cache", env=env)
    assert first.kind == BuildKind.BUILT, first.log_tail
    assert first.facts["nvcc"].startswith("Build cuda_")
    ptx = Path(first.outputs[0]).read_text()
    assert ".entry _Z5scalePii" in ptx and re.search(r"mul\.lo\.s32\s+%r\d+, %r\d+, 7;", ptx)
    assert Path(first.outputs[1]).stat().st_size > 0
    assert build_target(recipe, checkout, tmp_path / "cache", env=env).kind == BuildKind.CACHED

    repo = Repo(checkout)                       # a Python-only patch: not an input, no nvcc run
    (checkout / "cudademo" / "__init__.py").write_text("SCALE = 9\n")
    repo.run("commit", "-qam", "python only")
    assert affected_targets({"cuda": recipe}, "cudademo", repo.changed_paths(pin, "HEAD")) == {}
    assert build_target(recipe, checkout, tmp_path / "cache", env=env).kind == BuildKind.CACHED

    (checkout / "kernels" / "scale.cu").write_text(SCALE_CU.replace("FACTOR 7", "FACTOR 9"))
    repo.run("commit", "-qam", "scale by 9")
    assert affected_targets({"cuda": recipe}, "cudademo", repo.changed_paths(pin, "HEAD")) == \
        {"cuda": ("kernels/scale.cu",)}
    second = build_target(recipe, checkout, tmp_path / "cache", env=env)
    assert second.kind == BuildKind.BUILT and second.key != first.key
    assert re.search(r"mul\.lo\.s32\s+%r\d+, %r\d+, 9;", Path(second.outputs[0]).read_text())
    assert Path(first.outputs[0]).read_text() == ptx        # the earlier build is still in the cache
    assert counter.read_text().split() == ["cuda", "cuda"]
