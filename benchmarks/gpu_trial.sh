#!/usr/bin/env bash
# Build the CUDA example (examples/cuda-poly) and run `patchq trial` on an NVIDIA GPU, end to end, printing
# everything: the machine, the toolchain, each trial's report, the results files, and the build logs.
#
#   benchmarks/gpu_trial.sh [WORKDIR]          on a machine with an NVIDIA GPU, nvidia-smi and nvcc
#   benchmarks/gpu_trial.sh --vendor DIR       on a machine that has patchq's dependencies: copy the pure-Python
#                                              ones (click, rich, ruamel.yaml and theirs) into DIR, to carry along
#
# Needs: bash, git, python3 (3.10 or newer) with click, rich and ruamel.yaml importable -- from the system, from
# $PYTHON, or from a folder made by --vendor and named in $PATCHQ_DEPS. Nothing is downloaded or installed.
# $CUDA_ARCH picks nvcc's -arch (default: sm_XY from nvidia-smi's compute capability, else 'native').
# Exit status: 0 when every trial ran, 3 when the machine lacks something (said on the last line), else the first
# failing command's.
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}

if [[ "${1:-}" == "--vendor" ]]; then
    dest=${2:?usage: gpu_trial.sh --vendor DIR}
    mkdir -p "$dest"
    site=$("$PY" -c 'import click, os; print(os.path.dirname(os.path.dirname(click.__file__)))') || exit 3
    for name in click rich markdown_it mdurl pygments ruamel typing_extensions.py; do
        if [[ -e "$site/$name" ]]; then
            cp -r "$site/$name" "$dest/" && echo "vendored $name"
        fi
    done
    find "$dest" -name __pycache__ -type d -prune -exec rm -rf {} +
    echo "carry $dest to the GPU machine and run: PATCHQ_DEPS=$dest benchmarks/gpu_trial.sh"
    exit 0
fi

say() { printf '\n==== %s\n' "$*"; }
need() { echo "gpu_trial.sh: $*" >&2; exit 3; }

say "machine"
date -u
uname -a
grep -m1 'model name' /proc/cpuinfo || true
command -v nvidia-smi >/dev/null || need "nvidia-smi not found: this script needs an NVIDIA GPU and its driver"
nvidia-smi || need "nvidia-smi failed"
nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv || true

say "toolchain"
if ! command -v nvcc >/dev/null; then
    for dir in /usr/local/cuda/bin /usr/local/cuda-*/bin; do
        [[ -x "$dir/nvcc" ]] && export PATH="$dir:$PATH" && break
    done
fi
command -v nvcc >/dev/null || need "nvcc not found (PATH, /usr/local/cuda/bin): install the CUDA toolkit"
nvcc --version
c++ --version | head -n 1 || echo "(no c++: the CPU half of the example will be skipped)"
git --version || need "git not found"
"$PY" --version || need "no $PY"
if [[ -z "${CUDA_ARCH:-}" ]]; then
    cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' .')
    if [[ "$cap" =~ ^[0-9]+$ ]]; then export CUDA_ARCH="sm_$cap"; else export CUDA_ARCH=native; fi
fi
echo "CUDA_ARCH=$CUDA_ARCH"

export PYTHONPATH="$repo${PATCHQ_DEPS:+:$(cd "$PATCHQ_DEPS" && pwd)}${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c 'import click, rich, ruamel.yaml' 2>/dev/null \
    || need "$PY cannot import click, rich and ruamel.yaml: set PYTHON to an interpreter that can, or PATCHQ_DEPS to a folder made by 'benchmarks/gpu_trial.sh --vendor DIR' on a machine that has them"
"$PY" -c 'import click, rich, ruamel.yaml; print("click", click.__version__, "| ruamel.yaml", ruamel.yaml.__version__)'

work=${1:-$(mktemp -d "${TMPDIR:-/tmp}/patchq-gpu-trial.XXXXXX")}
export PATCHQ_CACHE="$work/cache"
ws="$work/cuda-poly"
say "workspace $ws"
"$PY" "$repo/examples/cuda-poly/build_workspace.py" "$ws" || exit $?
cd "$ws" || exit 3
"$PY" -m patchq list

status=0
trial() {
    say "patchq trial $*"
    "$PY" -m patchq trial "$@"
    local rc=$?
    echo "(exit $rc)"
    [[ $rc -ne 0 && $status -eq 0 ]] && status=$rc
    return 0
}
trial poly-gpu --with horner
trial poly-gpu --with powf
if command -v c++ >/dev/null; then
    trial poly-cpu --with horner --repeats 3
    trial poly-cpu --with powf --repeats 3
fi

say "patchq results --plot"
"$PY" -m patchq results --plot
for file in results/*/*.json; do
    say "$file"
    cat "$file"
done
say "build logs"
for log in "$PATCHQ_CACHE"/builds/logs/*/*.log; do
    [[ -f "$log" ]] || continue
    echo "--- $log"
    cat "$log"
done
say "done: results and SVG plots in $ws/results (exit $status)"
exit $status
