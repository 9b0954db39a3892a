"""`patchq demo`: a self-contained sample workspace, generated offline in about a second.

Two generated upstreams with history — `vllm` (a Python package laid out like vLLM, env-gated model code and a
small C extension) and `llama-cpp` (a small C project built with make) — and queues holding all three statuses.
The queues are real diffs made against real commits, chosen so that applying the stack shows the outcomes a lab
meets after upstream moves: clean, offset, 3-way, and a rejected experiment that no longer applies.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import BadInput
from .git import Repo, clone_bare, clone_shared
from .model import PatchEntry, Status
from .patchfile import render_patch_file
from .txn import atomic_write, publish
from .workspace import SERIES_NAME
from .yamlio import dump as dump_yaml

AUTHOR = "Inference Lab <lab@example.com>"
_DAY = 86400


def _commit(repo: Repo, message: str, when: int) -> str:
    stamp = f"{1_767_225_600 + when * _DAY} +0000"
    env = {"GIT_AUTHOR_NAME": "Upstream Dev", "GIT_AUTHOR_EMAIL": "dev@upstream.example",
           "GIT_COMMITTER_NAME": "Upstream Dev", "GIT_COMMITTER_EMAIL": "dev@upstream.example",
           "GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}
    return repo.commit_all(message, env)


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _edit(root: Path, rel: str, old: str, new: str) -> None:
    path = root / rel
    text = path.read_text()
    if old not in text:
        raise AssertionError(f"demo generator: {old!r} not in {rel}")
    path.write_text(text.replace(old, new, 1))


MINIMAX = '''"""MiniMax M2 model (demo stand-in for vllm/model_executor/models/minimax_m2.py)."""
import os

from vllm import envs


def rms_norm(x, eps=1e-6):
    mean = sum(v * v for v in x) / len(x)
    return [v / (mean + eps) ** 0.5 for v in x]


class MiniMaxM2Attention:
    def __init__(self, num_heads, head_dim):
        self.num_heads = num_heads
        self.head_dim = head_dim

    def qk_norm(self, q, k):
        q = rms_norm(q)
        k = rms_norm(k)
        return q, k

    def forward(self, q, k, v):
        q, k = self.qk_norm(q, k)
        scores = [a * b for a, b in zip(q, k)]
        return [s * w for s, w in zip(scores, v)]


class MiniMaxM2MoE:
    def __init__(self, num_experts, top_k):
        self.num_experts = num_experts
        self.top_k = top_k

    def route(self, logits):
        ranked = sorted(range(len(logits)), key=lambda i: -logits[i])
        return ranked[: self.top_k]

    def dispatch(self, tokens, logits):
        experts = self.route(logits)
        return {e: tokens for e in experts}


class MiniMaxM2DecoderLayer:
    def __init__(self):
        self.attn = MiniMaxM2Attention(num_heads=48, head_dim=128)
        self.moe = MiniMaxM2MoE(num_experts=256, top_k=8)

    def forward(self, hidden, logits):
        hidden = self.attn.forward(hidden, hidden, hidden)
        return self.moe.dispatch(hidden, logits)


def decode_step(layer, hidden, logits):
    return layer.forward(hidden, logits)
'''

ENVS = '''"""Environment variables read by vLLM (demo stand-in for vllm/envs.py)."""
import os

environment_variables = {
    "VLLM_TARGET_DEVICE": lambda: os.getenv("VLLM_TARGET_DEVICE", "cuda").lower(),
    "VLLM_USE_V1": lambda: bool(int(os.getenv("VLLM_USE_V1", "1"))),
}


def __getattr__(name):
    if name in environment_variables:
        return environment_variables[name]()
    raise AttributeError(name)
'''

COLLECTIVES = '''"""Collectives (demo stand-in for vllm/distributed/device_communicators)."""


def all_reduce(tensors):
    total = [0.0] * len(tensors[0])
    for t in tensors:
        for i, v in enumerate(t):
            total[i] += v
    return total


def all_gather(tensors):
    out = []
    for t in tensors:
        out.extend(t)
    return out


def reduce_scatter(tensors, world):
    reduced = all_reduce(tensors)
    size = len(reduced) // world
    return [reduced[i * size:(i + 1) * size] for i in range(world)]
'''

XPU_PLATFORM = '''"""XPU platform hooks (demo stand-in for vllm/platforms/xpu.py)."""
import os


def device_count():
    return int(os.environ.get("ZE_AFFINITY_COUNT", "1"))


def supports_fp8():
    return False
'''

CSRC = r'''/* Fused activation kernel (demo stand-in for csrc/activation_kernels.cu). */
#include <stddef.h>

float silu(float x) { return x / (1.0f + __builtin_expf(-x)); }

void silu_and_mul(float *out, const float *gate, const float *up, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        out[i] = silu(gate[i]) * up[i];
    }
}
'''

GGML_OPS = r'''/* CPU ops (demo stand-in for ggml/src/ggml-sycl/ggml-sycl.cpp). */
#include <stdlib.h>
#include <string.h>

static int ggml_sycl_opt_level(void) {
    return 2;
}

void ggml_vec_add(float *dst, const float *a, const float *b, int n) {
    for (int i = 0; i < n; ++i) {
        dst[i] = a[i] + b[i];
    }
}

void ggml_vec_mul(float *dst, const float *a, const float *b, int n) {
    for (int i = 0; i < n; ++i) {
        dst[i] = a[i] * b[i];
    }
}

int ggml_backend_opt_level(void) {
    return ggml_sycl_opt_level();
}
'''

MAKEFILE = "libggml.a: ggml/src/ops.o\n\tar rcs $@ $^\n\nggml/src/ops.o: ggml/src/ops.c\n\t$(CC) -O2 -c $< -o $@\n"


def _build_vllm(path: Path) -> tuple[str, str, str]:
    """vllm-like history; returns (patch base, pin, latest)."""
    repo = Repo.init(path)
    _write(path, "vllm/__init__.py", '__version__ = "0.20.1"\n')
    _write(path, "vllm/envs.py", ENVS)
    _write(path, "vllm/model_executor/__init__.py", "")
    _write(path, "vllm/model_executor/models/__init__.py", "")
    _write(path, "vllm/model_executor/models/minimax_m2.py", MINIMAX)
    _write(path, "vllm/distributed/__init__.py", "")
    _write(path, "vllm/distributed/collectives.py", COLLECTIVES)
    _write(path, "vllm/platforms/__init__.py", "")
    _write(path, "vllm/platforms/xpu.py", XPU_PLATFORM)
    _write(path, "csrc/activation.c", CSRC)
    # every subpackage is installed (not only the top one), so `patchq overlay` works on a pip install of the demo
    _write(path, "setup.py", "from setuptools import Extension, find_packages, setup\n\nsetup(name='vllm', "
           "version='0.20.1', packages=find_packages(include=['vllm', 'vllm.*']),\n"
           "      ext_modules=[Extension('vllm._C', ['csrc/activation.c'])])\n")
    _write(path, "README.md", "# vllm (demo upstream)\n")
    _write(path, ".gitignore", "*.so\nbuild/\n*.egg-info/\n__pycache__/\n")
    base = _commit(repo, "Initial import of the demo vLLM tree", 0)
    # upstream moves: lines inserted above the MoE code (patches touching it now apply at an offset) ...
    _edit(path, "vllm/model_executor/models/minimax_m2.py", "class MiniMaxM2MoE:",
          "MOE_ROUTING = \"topk\"\n\n\ndef expert_capacity(tokens, experts):\n    return max(1, tokens // experts)\n"
          "\n\nclass MiniMaxM2MoE:")
    _commit(repo, "[Model] MiniMax M2: expert capacity helper", 3)
    # ... and a line changed right next to the all-reduce loop (a patch there needs a 3-way merge)
    _edit(path, "vllm/distributed/collectives.py", "    total = [0.0] * len(tensors[0])\n",
          "    # accumulate in fp32\n    total = [0.0] * len(tensors[0])\n")
    _commit(repo, "[Distributed] document fp32 accumulation", 5)
    # ... and the decode step is rewritten (the rejected MTP experiment no longer applies)
    _edit(path, "vllm/model_executor/models/minimax_m2.py",
          "def decode_step(layer, hidden, logits):\n    return layer.forward(hidden, logits)\n",
          "def decode_step(layer, hidden, logits, *, cache=None):\n    out = layer.forward(hidden, logits)\n"
          "    if cache is not None:\n        cache.append(out)\n    return out\n")
    pin = _commit(repo, "[Core] decode step takes a KV cache", 8)
    _edit(path, "vllm/platforms/xpu.py", "def supports_fp8():\n    return False\n",
          "def supports_fp8():\n    return os.environ.get(\"VLLM_XPU_FP8\", \"0\") == \"1\"\n")
    latest = _commit(repo, "[XPU] fp8 behind VLLM_XPU_FP8", 12)
    return base, pin, latest


def _build_llama(path: Path) -> str:
    repo = Repo.init(path)
    _write(path, "ggml/src/ops.c", GGML_OPS)
    _write(path, "Makefile", MAKEFILE)
    _write(path, ".gitignore", "*.o\n*.a\n")
    _write(path, "CMakeLists.txt", "cmake_minimum_required(VERSION 3.14)\nproject(ggml C)\n"
           "add_library(ggml STATIC ggml/src/ops.c)\n")
    _write(path, "scripts/run-server.sh", "#!/bin/sh\nexec ./llama-server -m \"$MODEL\" -ngl 99\n")
    _commit(repo, "ggml: initial CPU ops", 1)
    _edit(path, "ggml/src/ops.c", "int ggml_backend_opt_level(void) {",
          "int ggml_backend_version(void) {\n    return 1;\n}\n\nint ggml_backend_opt_level(void) {")
    return _commit(repo, "ggml: backend version", 4)


TINYLLM_DECODE = '''"""A toy decoder: logits, greedy sampling, generation (demo stand-in for a model's decode loop)."""
import math

VOCAB = 512


def logits(state, step):
    return [((state * 31 + t * 17 + step) % 1009) / 1009.0 for t in range(VOCAB)]


def sample(scores):
    # softmax over the whole vocabulary, then the most likely token
    top = max(scores)
    weights = [math.exp(s - top) for s in scores]
    total = sum(weights)
    probs = [w / total for w in weights]
    return max(range(len(probs)), key=probs.__getitem__)


def generate(prompt, steps):
    state = sum(prompt) % 1009
    out = []
    for step in range(steps):
        token = sample(logits(state, step))
        out.append(token)
        state = (state * 7 + token) % 1009
    return out
'''

TINYLLM_BENCH = '''"""Decode throughput of the toy decoder: generated tokens per CPU second, best of 3 (prints output_tok_s)."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tinyllm.decode import generate  # noqa: E402

STEPS = int(os.environ.get("TINYLLM_STEPS", "40"))
best = None
for _ in range(3):
    start = time.process_time()
    generate([1, 2, 3], STEPS)
    spent = time.process_time() - start
    best = spent if best is None else min(best, spent)
print(f"output_tok_s: {STEPS / max(best, 1e-9):.1f}")
'''  # noqa: E501  (the toy benchmark's docstring, byte for byte)

TINYLLM_GOLDEN = '''"""Quality gate: the generated tokens hash exactly to the recorded golden hash."""
import hashlib
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
from tinyllm.decode import generate  # noqa: E402

tokens = generate([1, 2, 3], 40)
got = hashlib.sha256(",".join(map(str, tokens)).encode()).hexdigest()
want = open(os.path.join(here, "golden.sha256")).read().strip()
print(f"token hash {got[:16]} (golden {want[:16]}); first tokens {tokens[:8]}")
sys.exit(0 if got == want else 1)
'''


def _build_tinyllm(path: Path) -> str:
    import hashlib
    repo = Repo.init(path)
    _write(path, "tinyllm/__init__.py", "")
    _write(path, "tinyllm/decode.py", TINYLLM_DECODE)
    _write(path, "bench.py", TINYLLM_BENCH)
    _write(path, "golden.py", TINYLLM_GOLDEN)
    namespace: dict[str, Any] = {}
    exec(TINYLLM_DECODE, namespace)
    tokens = namespace["generate"]([1, 2, 3], 40)
    _write(path, "golden.sha256", hashlib.sha256(",".join(map(str, tokens)).encode()).hexdigest() + "\n")
    _write(path, ".gitignore", "__pycache__/\n")
    return _commit(repo, "tinyllm: toy decoder with a throughput bench and a token-hash gate", 2)


def _worktree_diffs(path: Path, changes: list[_Change]) -> dict[str, bytes]:
    """Each change's diff made in the upstream's own work tree at its HEAD, which is restored after each one.

    One git process per patch instead of a scratch clone per patch: the measured stack's upstream is new, so its
    patches are all cut against its only commit."""
    repo = Repo(path)
    diffs = {}
    for change in changes:
        originals = {rel: (path / rel).read_text() for rel, _, _ in change.edits}
        for rel, old, new in change.edits:
            _edit(path, rel, old, new)
        diffs[change.entry.id] = repo.worktree_diff("HEAD", binary=False)
        for rel, text in originals.items():
            _write(path, rel, text)
    return diffs


@dataclass(frozen=True)
class _Change:
    entry: PatchEntry
    edits: tuple[tuple[str, str, str], ...]    # (path, old, new); old "" with new text creates the file


def _diff_for(upstream_dir: Path, base: str, edits: tuple[tuple[str, str, str], ...]) -> bytes:
    with tempfile.TemporaryDirectory(prefix="patchq-demo-") as tmp:
        work = Path(tmp) / "w"
        repo = clone_shared(upstream_dir, work)
        repo.checkout(base)
        for rel, old, new in edits:
            if old == "" and not (work / rel).exists():
                _write(work, rel, new)
            else:
                _edit(work, rel, old, new)
        repo.add_all()
        return repo.staged_diff(base)


def _vllm_changes() -> list[tuple[str, _Change]]:
    """(base label, change): 'base' = the old commit the lab wrote it against, 'pin' = the current pin."""
    m = "vllm/model_executor/models/minimax_m2.py"
    fused = _Change(PatchEntry(
        id="minimax-fused-qk-norm", upstream="vllm", file="0001-minimax-fused-qk-norm.patch",
        status=Status.PROMOTED, title="MiniMax M2: fuse the Q and K RMSNorm into one pass",
        why="Q and K are normalised separately; one fused pass saves a kernel launch per layer on XPU.",
        flags=("VLLM_MINIMAX_FUSED_QK_NORM",), result="+3.2 output tok/s (85.8 -> 89.0)",
        baseline="pin with no patches, 4x Arc Pro B70, TP=4", date="2026-05-19", author=AUTHOR),
        ((m, "    def qk_norm(self, q, k):\n        q = rms_norm(q)\n        k = rms_norm(k)\n        return q, k\n",
          "    def qk_norm(self, q, k):\n"
          "        if os.environ.get(\"VLLM_MINIMAX_FUSED_QK_NORM\", \"0\") == \"1\":\n"
          "            both = rms_norm(q + k)\n"
          "            return both[: len(q)], both[len(q):]\n"
          "        q = rms_norm(q)\n        k = rms_norm(k)\n        return q, k\n"),))
    moe = _Change(PatchEntry(
        id="moe-ws-dispatch", upstream="vllm", file="0002-moe-ws-dispatch.patch", status=Status.PROMOTED,
        title="MoE: work-stealing expert dispatch from llm-scaler",
        why="Routes tokens through llm-scaler's work-stealing MoE kernel when enabled; written against an older "
            "pin, so it now applies at an offset.",
        flags=("VLLM_XPU_USE_LLM_SCALER_MOE_WS", "VLLM_MOE_WS_MAX_TOKENS"), result="+4.1 output tok/s",
        baseline="with minimax-fused-qk-norm", date="2026-05-21", author=AUTHOR),
        ((m, "    def dispatch(self, tokens, logits):\n        experts = self.route(logits)\n",
          "    def dispatch(self, tokens, logits):\n"
          "        if os.environ.get(\"VLLM_XPU_USE_LLM_SCALER_MOE_WS\", \"0\") == \"1\":\n"
          "            limit = int(os.environ.get(\"VLLM_MOE_WS_MAX_TOKENS\", \"4\"))\n"
          "            tokens = tokens[:limit] if len(tokens) > limit else tokens\n"
          "        experts = self.route(logits)\n"),))
    allreduce = _Change(PatchEntry(
        id="allreduce-bf16-accum", upstream="vllm", file="0003-allreduce-bf16-accum.patch", status=Status.PROMOTED,
        title="Collectives: bf16 all-reduce with chunked accumulation",
        why="Halves all-reduce traffic between the four cards. Upstream later edited the neighbouring line, so "
            "this now needs a 3-way merge.", flags=("VLLM_XPU_ALLREDUCE_BF16",),
        result="+1.7 output tok/s", date="2026-05-24", author=AUTHOR),
        (("vllm/distributed/collectives.py",
          "    for t in tensors:\n        for i, v in enumerate(t):\n            total[i] += v\n    return total\n",
          "    chunk = 2 if os.environ.get(\"VLLM_XPU_ALLREDUCE_BF16\") else 1\n"
          "    for t in tensors:\n        for i, v in enumerate(t):\n            total[i] += v * chunk / chunk\n"
          "    return total\n"),
         ("vllm/distributed/collectives.py",
          '"""Collectives (demo stand-in for vllm/distributed/device_communicators)."""\n',
          '"""Collectives (demo stand-in for vllm/distributed/device_communicators)."""\nimport os\n'),))
    mtp = _Change(PatchEntry(
        id="mtp-spec-decode", upstream="vllm", file="0004-mtp-spec-decode.patch",
        status=Status.NEGATIVE_ARCHIVED, title="MiniMax M2: multi-token-prediction speculative decode",
        why="Tried MTP drafts of 2 tokens. Acceptance was too low on this model; output quality gate failed.",
        flags=("VLLM_MINIMAX_MTP", "VLLM_MINIMAX_MTP_DRAFTS"), result="-2.4 output tok/s, quality-fail",
        baseline="promoted stack", date="2026-06-02", author=AUTHOR),
        ((m, "def decode_step(layer, hidden, logits):\n    return layer.forward(hidden, logits)\n",
          "def decode_step(layer, hidden, logits):\n"
          "    if os.getenv(\"VLLM_MINIMAX_MTP\"):\n"
          "        drafts = int(os.getenv(\"VLLM_MINIMAX_MTP_DRAFTS\", \"2\"))\n"
          "        return [layer.forward(hidden, logits) for _ in range(drafts)][-1]\n"
          "    return layer.forward(hidden, logits)\n"),))
    timing = _Change(PatchEntry(
        id="decode-timing", upstream="vllm", file="0005-decode-timing.patch", status=Status.DIAGNOSTIC,
        title="Diagnostic: per-layer decode timing", why="Prints per-layer wall time to find the slow layer.",
        flags=("VLLM_MINIMAX_DECODE_TIMING",), date="2026-06-03", author=AUTHOR),
        (("vllm/distributed/collectives.py", "def all_gather(tensors):\n",
          "def all_gather(tensors):\n    if os.environ.get(\"VLLM_MINIMAX_DECODE_TIMING\", \"0\") == \"1\":\n"
          "        print(\"all_gather\", len(tensors))\n"),))
    return [("base", fused), ("base", moe), ("base", allreduce), ("base", mtp), ("pin+", timing)]


def _llama_changes() -> list[_Change]:
    gate = _Change(PatchEntry(
        id="sycl-opt-level-env", upstream="llama-cpp", file="0001-sycl-opt-level-env.patch",
        status=Status.PROMOTED, title="ggml-sycl: let GGML_SYCL_OPT_LEVEL override the optimisation level",
        why="The default level mis-schedules on Arc Pro B70; level 1 is faster for decode.",
        flags=("GGML_SYCL_OPT_LEVEL",), result="+6% decode on llama.cpp", date="2026-05-12", author=AUTHOR),
        (("ggml/src/ops.c", "static int ggml_sycl_opt_level(void) {\n    return 2;\n}\n",
          "static int ggml_sycl_opt_level(void) {\n    const char *v = getenv(\"GGML_SYCL_OPT_LEVEL\");\n"
          "    return v != NULL ? atoi(v) : 2;\n}\n"),))
    probe = _Change(PatchEntry(
        id="server-env-probe", upstream="llama-cpp", file="0002-server-env-probe.patch", status=Status.DIAGNOSTIC,
        title="Diagnostic: log the offload setting the server starts with", why="Confirms the run recipe's env.",
        flags=("LLAMA_PROBE_NGL",), date="2026-05-13", author=AUTHOR),
        (("scripts/run-server.sh", "exec ./llama-server -m \"$MODEL\" -ngl 99\n",
          "echo \"ngl=${LLAMA_PROBE_NGL:-99}\" >&2\nexec ./llama-server -m \"$MODEL\" -ngl 99\n"),))
    return [gate, probe]


def _tinyllm_changes() -> list[_Change]:
    sampling = ("tinyllm/decode.py",
                "    # softmax over the whole vocabulary, then the most likely token\n    top = max(scores)\n"
                "    weights = [math.exp(s - top) for s in scores]\n    total = sum(weights)\n"
                "    probs = [w / total for w in weights]\n    return max(range(len(probs)), key=probs.__getitem__)\n")
    argmax = _Change(PatchEntry(
        id="argmax-sampling", upstream="tinyllm", file="0001-argmax-sampling.patch", status=Status.NEGATIVE_ARCHIVED,
        title="Greedy sampling: take the argmax of the logits, skip the softmax",
        why="Softmax is monotone, so greedy decoding picks the same token from the raw logits. Archived in May "
            "when the stack's sampler was still stochastic; worth a new trial now that it is greedy.",
        date="2026-05-20", author=AUTHOR),
        ((sampling[0], sampling[1], "    # greedy: softmax is monotone, so the largest logit is the most likely token\n"
          "    return max(range(len(scores)), key=scores.__getitem__)\n"),))
    truncated = _Change(PatchEntry(
        id="vocab-prefix-64", upstream="tinyllm", file="0002-vocab-prefix-64.patch", status=Status.NEGATIVE_ARCHIVED,
        title="Sample from the first 64 vocabulary entries only",
        why="A shortcut that is fast and wrong: the token-hash gate rejects it.", date="2026-05-22", author=AUTHOR),
        ((sampling[0], "    top = max(scores)\n", "    scores = scores[:64]\n    top = max(scores)\n"),))
    return [argmax, truncated]


LOCK_TEMPLATE = """\
# patchq sample workspace, made by 'patchq demo'.
# Upstreams are pinned to full commits; the stack says which queues it applies and how it was measured.
version: 1
upstreams:
  vllm:
    url: upstreams/vllm.git   # a local path, relative to this workspace
    pin: {vllm_pin}
    version: 0.20.1           # the package version this pin is, checked before an overlay
    description: vLLM-like Python package with a small C extension
  llama-cpp:
    url: upstreams/llama-cpp.git
    pin: {llama_pin}
    description: llama.cpp-like C project built with make
  tinyllm:
    url: upstreams/tinyllm.git
    pin: {tinyllm_pin}
    description: a toy pure-Python decoder whose speed the measured stack benchmarks
stacks:
  promoted-demo:
    description: the promoted MiniMax M2 stack (demo numbers)
    upstreams: [vllm, llama-cpp]
    include: [promoted]
    profile:
      VLLM_MINIMAX_FUSED_QK_NORM: "1"
      VLLM_XPU_USE_LLM_SCALER_MOE_WS: "1"
      VLLM_MOE_WS_MAX_TOKENS: "8"
      VLLM_XPU_ALLREDUCE_BF16: "1"
      GGML_SYCL_OPT_LEVEL: "1"
    result:
      metric: output_tok_s
      value: 89.0
      lane: 4x Arc Pro B70, TP=4, 1k in / 1k out
      date: "2026-05-24"
      gates: [gsm8k-200, needle-32k]
  measured-demo:
    description: the toy decoder, measured ('patchq trial measured-demo --with argmax-sampling')
    upstreams: [tinyllm]
    profile:
      TINYLLM_STEPS: "40"
    bench:
      cmd: "{{python}} -S bench.py"
      metric: "output_tok_s: ([0-9.]+)"
      repeats: 3
      warmup: 1
      timeout: 120
      unit: tok/s
      cwd: tinyllm
    gates:
      - name: token-hashes
        cmd: "{{python}} -S golden.py"
        timeout: 120
        cwd: tinyllm
"""

RECIPES = {
    "demo-vllm-ext.yaml": """\
# The demo vLLM's C extension: rebuilt only when csrc/ or setup.py change.
upstream: vllm
inputs: ["csrc/**", "setup.py"]
command: ["{python}", "setup.py", "-q", "build_ext", "--inplace"]
outputs: ["vllm/_C*.so"]
kind: extension
""",
    "demo-ggml-cpu.yaml": """\
# The demo llama.cpp's CPU library.
upstream: llama-cpp
inputs: ["ggml/**", "Makefile"]
command: ["make", "-s", "libggml.a"]
outputs: ["libggml.a"]
kind: cmake-target
""",
}


def build_demo(target: Path) -> Path:
    """Write the sample workspace into `target` (which must not exist or be empty)."""
    if target.exists() and any(target.iterdir()):
        raise BadInput(f"{target} exists and is not empty; choose a new folder for the demo")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        _build_into(staging)
        if target.exists():
            target.rmdir()
        if not publish(staging, target, durable=False):
            raise BadInput(f"{target} appeared while the demo was being written; choose a new folder")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _build_into(root: Path) -> None:
    sources = root / "upstreams-src"
    vllm_base, vllm_pin, _latest = _build_vllm(sources / "vllm")
    llama_pin = _build_llama(sources / "llama-cpp")
    tinyllm_pin = _build_tinyllm(sources / "tinyllm")
    tinyllm_diffs = _worktree_diffs(sources / "tinyllm", _tinyllm_changes())
    for name in ("vllm", "llama-cpp", "tinyllm"):
        clone_bare(sources / name, root / "upstreams" / f"{name}.git")
    shutil.rmtree(sources)
    for label, change in _vllm_changes():
        base = vllm_base if label == "base" else vllm_pin
        diff = _diff_for(root / "upstreams" / "vllm.git", base, change.edits)
        atomic_write(root / "queues" / "vllm" / change.entry.file, render_patch_file(change.entry, diff))
    for change in _llama_changes():
        diff = _diff_for(root / "upstreams" / "llama-cpp.git", llama_pin, change.edits)
        atomic_write(root / "queues" / "llama-cpp" / change.entry.file, render_patch_file(change.entry, diff))
    for change in _tinyllm_changes():
        atomic_write(root / "queues" / "tinyllm" / change.entry.file,
                     render_patch_file(change.entry, tinyllm_diffs[change.entry.id]))
    for upstream, changes in (("vllm", [c for _, c in _vllm_changes()]), ("llama-cpp", _llama_changes()),
                              ("tinyllm", _tinyllm_changes())):
        from ruamel.yaml.comments import CommentedMap, CommentedSeq

        from .workspace import entry_to_yaml
        doc = CommentedMap()
        doc.yaml_set_start_comment(f"patchq queue for upstream {upstream!r}: order is apply order")
        doc["patches"] = CommentedSeq([entry_to_yaml(c.entry) for c in changes])
        atomic_write(root / "queues" / upstream / SERIES_NAME, dump_yaml(doc))
    import sys
    lock = LOCK_TEMPLATE.format(vllm_pin=vllm_pin, llama_pin=llama_pin, tinyllm_pin=tinyllm_pin)
    atomic_write(root / "pins.lock", lock.replace("{python}", sys.executable).encode())
    for name, text in RECIPES.items():
        atomic_write(root / "kernels" / name, text.replace("{python}", sys.executable).encode())
    atomic_write(root / ".gitignore", b".patchq/\n")
    atomic_write(root / "README.md", DEMO_README.encode())


DEMO_README = """\
# patchq sample workspace

Made by `patchq demo`. Try:

    patchq list                              # the queues, with status, flags, results
    patchq apply promoted-demo               # regenerate the promoted stack from the pins
    patchq apply promoted-demo --with negative-archived:mtp-spec-decode --keep-going
    patchq flags promoted-demo               # which env flags the stack reads, checked against its profile
    patchq rebase --onto vllm@main --dry-run # what moving vLLM to its newest commit would do
    patchq export promoted-demo -u llama-cpp -o repro/   # a .patch.gz.b64 bundle for a reproduction folder
    patchq export promoted-demo -o repro/    # refused: allreduce-bf16-accum needs a 3-way merge, which plain
                                             # 'git apply' in a repro folder cannot do (rebase it first)
    patchq trial measured-demo --with argmax-sampling    # gate, then baseline/candidate alternately: promote
    patchq trial measured-demo --with vocab-prefix-64    # rejected: the token-hash gate fails
    patchq results --plot                    # the trials, with an SVG of each under results/
"""
