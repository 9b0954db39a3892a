"""A generated lab corpus: real git trees, real edits, and the shapes labs write them in (issue 12, Acceptance).

Every patch starts as a real `git diff` of a real edit made in a scratch clone (chains are cut from a tree that
already carries the earlier patch). It is then written the way labs write patches — context-only hunk headers,
miscounted headers, stripped blank lines, whitespace-mangled context, bundles cut in transit — and its expected
fate recorded beside it: how it must import (outcome, requirements, named repair) or why it must be refused.
Nothing is hand-typed: expectations are derived from what was generated.
"""

from __future__ import annotations

import base64
import gzip
import re
from dataclasses import dataclass, field
from pathlib import Path

from patchq.git import Repo, run_git

OPS = "".join(f"def op_{i}(x):\n    y = x\n    if DEBUG:\n        log(y)\n    z = y + 1\n    return z * {i}\n\n\n"
              for i in range(12))
MINIMAX = "".join(f"def block_{i}(x):\n    return x + {i}\n\n\n" for i in range(30))
CONFIG = "".join(f"class Config{i}:\n    name = 'c{i}'\n\n    size = {i}\n\n    def describe(self):\n"
                 f"        return self.name\n\n\n" for i in range(8))
XPU = "import torch\n\n\nclass ScalerXPU:\n    kernels = 'esimd'\n    use_ws = False\n\n    def name(self):\n" \
      "        return 'scaler'\n"
RUN_SH = "#!/bin/sh\nset -e\nMODEL=minimax\nTP=4\nvllm serve $MODEL --tp $TP\n"
TREES = {
    "vllm": {"vllm/model_executor/models/minimax_m2.py": MINIMAX, "vllm/attention/ops.py": OPS,
             "vllm/config.py": CONFIG, "vllm/envs.py": "environment_variables = {}\n", "README.md": "vllm\n"},
    "llm-scaler": {"vllm/platforms/xpu.py": XPU, "esimd/moe.py": MINIMAX.replace("block", "expert"),
                   "README.md": "scaler\n"},
    "lab": {"scripts/run.sh": RUN_SH, "scripts/env.sh": "export A=1\n"},
}
MM = "vllm/model_executor/models/minimax_m2.py"


@dataclass
class LabPatch:
    """One file of the lab folder and what must become of it."""

    name: str
    upstream: str
    data: bytes
    original: bytes = b""               # the real diff it was made from (what its import must reproduce)
    outcome: str = "clean"              # expected outcome at the pin (on top of its requirements)
    refused: str = ""                   # regex: it must be refused for this reason
    requires: tuple[str, ...] = ()      # file names of the patches it must require
    remark: str = ""                    # regex one of its remarks must match (the named repair)
    missing: int = 0                    # how many missing-context lines it must report (0: none)
    salvage: int = 0                    # a damaged bundle: complete file sections before the damage


@dataclass
class World:
    root: Path
    repos: dict[str, Repo] = field(default_factory=dict)
    pins: dict[str, str] = field(default_factory=dict)
    scratch: dict[str, Repo] = field(default_factory=dict)

    def make(self) -> None:
        for name, files in TREES.items():
            path = self.root / "src" / name
            repo = Repo.init(path)
            for rel, text in files.items():
                (path / rel).parent.mkdir(parents=True, exist_ok=True)
                (path / rel).write_text(text)
            repo.run("add", "-A")
            repo.run("commit", "-q", "-m", f"{name} base")
            self.repos[name] = repo
            self.pins[name] = repo.out("rev-parse", "HEAD")
            scratch = self.root / "scratch" / name
            run_git(["clone", "-q", str(path), str(scratch)])
            self.scratch[name] = Repo(scratch)

    def edit(self, upstream: str, edits: list[tuple[str, str, str]], *, base: str | None = None,
             unified: int = 3) -> tuple[bytes, str]:
        """A real diff of `edits` made on `base` (default the pin), and the commit holding the result."""
        repo = self.scratch[upstream]
        base = base or self.pins[upstream]
        repo.run("checkout", "-q", "--detach", base)
        for rel, old, new in edits:
            target = repo.path / rel
            if old == "" and not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(new)
                continue
            text = target.read_text()
            assert old in text, (old, rel)
            target.write_text(text.replace(old, new, 1))
        repo.run("add", "-A")
        diff = repo.run("diff", "--cached", "--no-color", "--no-ext-diff", f"-U{unified}", base).stdout
        repo.run("commit", "-q", "-m", "edit")
        return diff, repo.out("rev-parse", "HEAD")


HEADER = re.compile(rb"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)$", re.M)


def context_only(diff: bytes, *, keep_function: bool = False) -> bytes:
    """Every hunk header without its line ranges: `@@` alone, or `@@ <function line>`."""
    def repl(m: re.Match) -> bytes:
        func = m.group(5).strip()
        return b"@@ " + func if keep_function and func else b"@@"
    return HEADER.sub(repl, diff)


def miscount(diff: bytes, hunk: int, d_old: int, d_new: int) -> bytes:
    """Hunk number `hunk` (0-based) with its counts changed by d_old/d_new: a hand-edited header."""
    found = list(HEADER.finditer(diff))
    m = found[hunk]
    old = int(m.group(2) or 1) + d_old
    new = int(m.group(4) or 1) + d_new
    header = b"@@ -%s,%d +%s,%d @@%s" % (m.group(1), old, m.group(3), new, m.group(5))
    return diff[:m.start()] + header + diff[m.end():]


def strip_blank_context(diff: bytes) -> bytes:
    return re.sub(rb"(?m)^ $", b"", diff)


def tabs_for_spaces(diff: bytes) -> bytes:
    """Context lines indented with a tab instead of four spaces (pasted through a chat window)."""
    return re.sub(rb"(?m)^ {5}", b" \t", diff)


def fabricate_context(diff: bytes) -> bytes:
    """Context and removed lines replaced by text no tree has: a patch against code nobody has."""
    out = []
    for n, line in enumerate(diff.split(b"\n")):
        if line[:1] in (b" ", b"-") and not line.startswith(b"--- ") and line.strip():
            line = line[:1] + b"    ghost_call_%d()" % n
        out.append(line)
    return b"\n".join(out)


def damaged_gz(diff: bytes, keep: float) -> bytes:
    raw = gzip.compress(diff, mtime=0)
    cut = raw[: int(len(raw) * keep)]
    encoded = base64.b64encode(cut)
    return b"\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76)) + b"\n"


def damaged_b64(diff: bytes, keep: float) -> bytes:
    encoded = base64.b64encode(gzip.compress(diff, mtime=0))
    cut = encoded[: int(len(encoded) * keep)]
    cut = cut[: len(cut) // 4 * 4 - 2]                # never a multiple of 4: truncated mid-quantum
    return b"\n".join(cut[i:i + 76] for i in range(0, len(cut), 76)) + b"\n"


def build_corpus(world: World) -> list[LabPatch]:
    """At least 30 lab files in every shape of issue 12, each with its expected fate."""
    out: list[LabPatch] = []

    def add(name: str, upstream: str, data: bytes, original: bytes, **expect) -> None:
        out.append(LabPatch(name, upstream, data, original, **expect))

    # context-only hunks: one per file, `@@ def ...` form, several per file
    for i in (1, 2, 3):
        diff, _ = world.edit("vllm", [(MM, f"return x + {i}\n", f"return x + {i} * 2\n")])
        add(f"ctx-one-{i}.patch", "vllm", context_only(diff), diff, remark=r"has no line numbers")
    for i in (4, 5):
        diff, _ = world.edit("vllm", [(MM, f"return x + {i}\n", f"return (x + {i})\n")])
        add(f"ctx-func-{i}.diff", "vllm", context_only(diff, keep_function=True), diff, remark=r"'@@ def block_")
    for first in (6, 12):
        diff, _ = world.edit("vllm", [(MM, f"return x + {k}\n", f"return x - {k}\n") for k in (first, first + 2,
                                                                                              first + 3)])
        add(f"ctx-several-{first}.patch", "vllm", context_only(diff), diff, remark=r"has no line numbers")
    # repeated context: the second hunk's context is in every op_*; the sequential rule puts it after the first
    diff, _ = world.edit("vllm", [("vllm/attention/ops.py", "return z * 5\n", "return z * 50\n"),
                                  ("vllm/attention/ops.py", "def op_6(x):\n    y = x\n    if DEBUG:\n        log(y)\n",
                                   "def op_6(x):\n    y = x\n    if DEBUG:\n        log(y, 'op6')\n")], unified=1)
    add("ops-sequential.patch", "vllm", context_only(diff), diff, remark=r"has no line numbers")
    # the same repeated context alone: nothing decides -> refused naming the candidate lines
    diff, _ = world.edit("vllm", [("vllm/attention/ops.py", "def op_7(x):\n    y = x\n    if DEBUG:\n        log(y)\n",
                                   "def op_7(x):\n    y = x\n    if DEBUG:\n        log(y, 'op7')\n")], unified=1)
    add("ops-ambiguous.patch", "vllm", context_only(diff), diff, refused=r"matches at lines 3, 11, 19")
    # a miscounted header in the repeated area: its written line number decides
    diff, _ = world.edit("vllm", [("vllm/attention/ops.py", "def op_9(x):\n    y = x\n    if DEBUG:\n        log(y)\n",
                                   "def op_9(x):\n    y = x\n    if DEBUG:\n        log(y, 'op9')\n")], unified=1)
    add("ops-hinted.patch", "vllm", miscount(diff, 0, 2, 2) + b"\nTested at tp4: fine.\n", diff, remark=r"recounted")
    # miscounted headers: under, over (before prose), overrunning into the next hunk and into the next file
    diff, _ = world.edit("vllm", [(MM, "return x + 20\n", "return x + 20\n    # tuned\n")])
    add("count-under.patch", "vllm", miscount(diff, 0, -1, -2), diff, remark=r"recounted")
    diff, _ = world.edit("vllm", [(MM, "return x + 21\n", "return x + 21 + 0\n")])
    add("count-over.patch", "vllm", miscount(diff, 0, 3, 3) + b"\nMeasured on B70: neutral.\n", diff,
        remark=r"recounted")
    diff, _ = world.edit("vllm", [(MM, f"return x + {k}\n", f"return x * {k}\n") for k in (22, 26)])
    add("count-into-next-hunk.patch", "vllm", miscount(diff, 0, 4, 4), diff, remark=r"recounted")
    diff, _ = world.edit("vllm", [(MM, "return x + 24\n", "return x ** 24\n"),
                                  ("vllm/envs.py", "environment_variables = {}\n",
                                   "environment_variables = {'VLLM_X': '0'}\n")])
    add("count-into-next-file.patch", "vllm", miscount(diff, 0, 6, 6), diff, remark=r"recounted")
    diff2, _ = world.edit("vllm", [(MM, "return x + 25\n", "return x // 25\n"), ("README.md", "vllm\n", "vllm lab\n")])
    plain = re.sub(rb"(?m)^(diff --git .*|index .*)\n", b"", diff2)       # `diff -u` style: no diff --git lines
    add("count-into-next-file-plain.diff", "vllm", miscount(plain, 0, 5, 5), diff2, remark=r"recounted")
    # blank context lines whose leading space an editor stripped
    for k in (1, 3):
        diff, _ = world.edit("vllm", [("vllm/config.py", f"    size = {k}\n", f"    size = {k * 10}\n")])
        assert re.search(rb"(?m)^ $", diff)
        add(f"stripped-blank-{k}.patch", "vllm", strip_blank_context(diff), diff, remark=r"blank context line")
    # context that differs only in whitespace: anchored ignoring it, outcome fuzz
    diff, _ = world.edit("vllm", [("vllm/config.py", "    size = 5\n", "    size = 55\n")])
    add("tabs-for-spaces.patch", "vllm", context_only(tabs_for_spaces(diff)), diff, outcome="fuzz",
        remark=r"ignoring whitespace")
    # chains: B needs lines A adds; B sorts before A and unrelated patches lie between them
    a_diff, a_commit = world.edit("vllm", [(MM, "return x + 10\n", "y = x + 10\n    return y * 2\n")])
    b_diff, b_commit = world.edit("vllm", [(MM, "    return y * 2\n", "    return y * 3\n")], base=a_commit)
    c_diff, _ = world.edit("vllm", [(MM, "    y = x + 10\n    return y * 3\n", "    y = x + 10\n    return y * 4\n")],
                           base=b_commit)
    add("z-mtp-base.patch", "vllm", a_diff, a_diff)
    add("b-mtp-step.patch", "vllm", b_diff, b_diff, requires=("z-mtp-base.patch",))
    add("a-mtp-last.patch", "vllm", context_only(c_diff), c_diff,
        requires=("b-mtp-step.patch", "z-mtp-base.patch"), remark=r"has no line numbers")
    for k in (27, 28):
        diff, _ = world.edit("vllm", [(MM, f"return x + {k}\n", f"return x + {k} + 1\n")])
        add(f"m-unrelated-{k}.patch", "vllm", diff, diff)
    e_diff, e_commit = world.edit("llm-scaler", [("vllm/platforms/xpu.py", "use_ws = False\n",
                                                  "use_ws = False\n    ws_chunks = 4\n")])
    f_diff, _ = world.edit("llm-scaler", [("vllm/platforms/xpu.py", "ws_chunks = 4\n", "ws_chunks = 8\n")],
                           base=e_commit)
    add("scaler-ws-2-tune.patch", "llm-scaler", context_only(f_diff, keep_function=True), f_diff,
        requires=("scaler-ws-1-add.patch",), remark=r"no line numbers")
    add("scaler-ws-1-add.patch", "llm-scaler", e_diff, e_diff)
    # context that exists nowhere: imported as a conflict with its missing context (first 5 lines)
    diff, _ = world.edit("vllm", [(MM, f"return x + {k}\n", f"return x + {k} + 1\n") for k in (17, 18, 19)])
    ghost = fabricate_context(diff)
    needed = [ln for ln in ghost.split(b"\n") if ln[:1] in (b" ", b"-") and not ln.startswith(b"--- ") and ln.strip()]
    assert len(needed) > 5
    add("ghost-context.patch", "vllm", ghost, b"", outcome="conflict", missing=5)
    # plain shapes that must keep working beside the repaired ones
    for name, rel, old, new in (("bench-tp2.patch", "scripts/run.sh", "TP=4\n", "TP=2\n"),
                                ("env-a2.patch", "scripts/env.sh", "A=1\n", "A=2\n")):
        diff, _ = world.edit("lab", [(rel, old, new)])
        add(name, "lab", diff, diff)
    diff, _ = world.edit("llm-scaler", [("esimd/moe.py", "return x + 3\n", "return x + 33\n")])
    add("esimd-probe.patch.gz.b64", "llm-scaler", base64.encodebytes(gzip.compress(diff, mtime=0)), diff)
    # damaged bundles: three files, cut in transit
    three, _ = world.edit("vllm", [(MM, "return x + 0\n", "return x + 0.5\n"),
                                   ("vllm/attention/ops.py", "return z * 0\n", "return z * 0.5\n"),
                                   ("vllm/config.py", "size = 0\n", "size = 0.5\n")])
    add("moe-cut-gzip.patch.gz.b64", "vllm", damaged_gz(three, 0.75), three, refused=r"truncated gzip", salvage=-1)
    add("moe-cut-base64.patch.gz.b64", "vllm", damaged_b64(three, 0.8), three, refused=r"truncated base64",
        salvage=-1)
    return out
