"""Fuzz properties shared by tests/test_fuzz.py (bounded, in CI) and benchmarks/fuzz_long.py (long runs).

Every property feeds one of patchq's readers of other people's files — the patch-file reader, the bundle decoder,
the YAML loaders (pins.lock, series.yaml), bundle manifests — with inputs hypothesis makes by mutating valid and
hostile seeds with diff- and YAML-shaped tokens, and asserts the only exception that can come out is patchq's own
`PatchqError` (which the CLI turns into one `error:` line). Anything else would reach the user as a traceback.
"""

from __future__ import annotations

import base64
import gzip
import json
import tempfile
from pathlib import Path

from hypothesis import strategies as st

from hostile.corpus import all_cases, patch_file
from patchq.errors import PatchqError

GOOD_DIFF = (b"diff --git a/pkg/mod.py b/pkg/mod.py\nindex 1111111..2222222 100644\n--- a/pkg/mod.py\n"
             b"+++ b/pkg/mod.py\n@@ -1,3 +1,4 @@\n line 1\n-line 2\n+line two\n+line 2b\n line 3\n"
             b"diff --git a/new.txt b/new.txt\nnew file mode 100644\nindex 0000000..3333333\n--- /dev/null\n"
             b"+++ b/new.txt\n@@ -0,0 +1 @@\n+hello\n\\ No newline at end of file\n")
PLAIN_DIFF = b"--- a/README.md\t2026-05-19\n+++ b/README.md\t2026-05-19\n@@ -1 +1,2 @@\n demo\n+more\n"
LOCK = (b"# the lab's pins\nversion: 1\nupstreams:\n  vllm:\n    url: https://example.com/vllm.git\n"
        b"    pin: " + b"a" * 40 + b"\n    archive:\n      sha256: " + b"b" * 64 + b"\n      pypi: vllm==0.20.1\n"
        b"stacks:\n  promoted:\n    upstreams: [vllm]\n    include: [promoted, diagnostic]\n"
        b"    extra: ['diagnostic:timing']\n    profile: {VLLM_X: '1'}\n"
        b"    result: {metric: tok/s, value: 89.5, lane: b70x4}\n    trees:\n      vllm: " + b"c" * 40 + b"\n")
SERIES = (b"patches:\n  - id: fast\n    file: 0001-fast.patch\n    status: promoted\n    flags: [VLLM_X]\n"
          b"    why: |\n      speeds up *decode*\n  - id: timing\n    file: 0002-timing.patch\n"
          b"    status: diagnostic\n    base: fast\n")

DIFF_TOKENS = [b"\n", b"\n+", b"\n-", b"\n ", b"@@ -1,3 +1,4 @@", b"@@ -0,0 +1 @@\n", b"diff --git a/x b/x\n",
               b"--- a/x\n+++ b/x\n", b"--- /dev/null\n", b"\\ No newline at end of file\n", b"GIT binary patch\n",
               b"literal 5\n", b"new file mode 120000\n", b"old mode 100644\nnew mode 104755\n", b"rename from ",
               b"copy to ", b"index 1111111..2222222 100644\n", b'"', b"\\", b"\r\n", b"\0", b"../", b"/", b".git/",
               b"\xff\xfe", b"-- \n", b"From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n",
               b"Binary files a/x and b/x differ\n", b"\t", b"1c1\n", b"***************\n"]
YAML_TOKENS = [b"\n", b": ", b"- ", b"  ", b"&a ", b"*a", b"!!python/name:os.system ", b"!x ", b"[", b"]", b"{", b"}",
               b"#", b'"', b"'", b"|\n", b">-\n", b"? ", b",", b"---\n", b"...\n", b"%YAML 1.1\n", b"\t", b"\0",
               b"\xff", b"~", b"null", b"true", b"1e999", b"0x1F", b"2026-05-19", b"<<: ", b"=", b"\\u0000",
               b"version: 1\n", b"upstreams:\n", b"stacks:\n", b"patches:\n", b"pin: ", b"file: ../x\n"]
JSON_TOKENS = [b"{", b"}", b"[", b"]", b'"', b":", b",", b"null", b"1e999", b"-", b"\\u0000", b"\\ud800", b"\xff",
               b'"files": {', b'"patches": [', b'"format_version": 1']


def _corpus(kind: str) -> list[bytes]:
    return [c.data[0] for c in all_cases() if c.kind == kind]


def patch_seeds() -> list[bytes]:
    return [patch_file(GOOD_DIFF), GOOD_DIFF, PLAIN_DIFF, *_corpus("patch")[::3]]


def bundle_seeds() -> list[bytes]:
    good = base64.encodebytes(gzip.compress(patch_file(GOOD_DIFF), mtime=0))
    small = [d for d in _corpus("bundle") if len(d) < 20_000]
    return [good, base64.encodebytes(gzip.compress(PLAIN_DIFF, mtime=0)), *small]


def mutated(seeds: list[bytes], tokens: list[bytes]) -> st.SearchStrategy[bytes]:
    """A seed with a few random edits: byte flips, token insertions, deletions, duplicated or swapped slices."""

    @st.composite
    def build(draw) -> bytes:
        data = bytearray(draw(st.sampled_from(seeds)))
        for _ in range(draw(st.integers(0, 8))):
            pos = draw(st.integers(0, len(data)))
            op = draw(st.sampled_from(("flip", "insert", "insert", "delete", "duplicate", "truncate")))
            if op == "flip" and data:
                data[min(pos, len(data) - 1)] = draw(st.integers(0, 255))
            elif op == "insert":
                data[pos:pos] = draw(st.sampled_from(tokens) | st.binary(max_size=6))
            elif op == "delete":
                del data[pos:pos + draw(st.integers(1, 24))]
            elif op == "duplicate":
                data[pos:pos] = data[pos:pos + draw(st.integers(1, 80))]
            elif op == "truncate":
                del data[pos:]
        return bytes(data)

    return build() | st.binary(max_size=300)


# ---- the properties -----------------------------------------------------------------------------------------------

def only_patchq_errors(call) -> None:
    try:
        call()
    except PatchqError:
        pass


def patch_reader_property(data: bytes) -> None:
    from patchq.patchfile import read_patch_file
    only_patchq_errors(lambda: read_patch_file(data, source="fuzz.patch"))


def lenient_reader_property(data: bytes) -> None:
    """Import's lenient reading: a diff it cannot read is `Unreadable` (a per-file refusal), never a traceback."""
    from patchq.patchtext.lenient import Unreadable, read_lenient
    try:
        scanned = read_lenient(data)
    except Unreadable:
        return
    for section in scanned.sections:
        for hunk in section.hunks:
            assert len(hunk.body) == len(hunk.body_lines) and hunk.body
            assert all(raw[:1] in (b" ", b"+", b"-", b"\\") for raw in hunk.body)


def bundle_reader_property(data: bytes) -> None:
    from patchq.bundle import decode_gz_b64, parse_patch_stream

    def read() -> None:
        content = decode_gz_b64(data, source="fuzz.patch.gz.b64", limit=1 << 20)
        parse_patch_stream(content, source="fuzz.patch.gz.b64", encoded=True)
    only_patchq_errors(read)


class Scratch:
    """One workspace folder reused by every example (hypothesis runs examples in one process, one at a time)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="patchq-fuzz-"))
        queue = self.root / "queues" / "vllm"
        queue.mkdir(parents=True)
        for name in ("0001-fast.patch", "0002-timing.patch"):
            (queue / name).write_bytes(patch_file(GOOD_DIFF))
        (self.root / "pins.lock").write_bytes(LOCK)
        (queue / "series.yaml").write_bytes(SERIES)


_SCRATCH: Scratch | None = None


def scratch() -> Scratch:
    global _SCRATCH
    if _SCRATCH is None:
        _SCRATCH = Scratch()
    return _SCRATCH


def lock_loader_property(data: bytes) -> None:
    from patchq.workspace import load_workspace
    ws = scratch()
    (ws.root / "pins.lock").write_bytes(data)
    (ws.root / "queues" / "vllm" / "series.yaml").write_bytes(SERIES)
    only_patchq_errors(lambda: load_workspace(ws.root))


def series_loader_property(data: bytes) -> None:
    from patchq.workspace import load_workspace
    ws = scratch()
    (ws.root / "pins.lock").write_bytes(LOCK)
    (ws.root / "queues" / "vllm" / "series.yaml").write_bytes(data)
    only_patchq_errors(lambda: load_workspace(ws.root))


def manifest_property(data: bytes) -> None:
    from patchq.bundle import read_manifest
    path = scratch().root / "fuzz.manifest.json"
    path.write_bytes(data)
    only_patchq_errors(lambda: read_manifest(path))


def manifest_seed() -> bytes:
    return json.dumps({
        "kind": "patchq-bundle-manifest", "format_version": 1, "format": "gz.b64", "stack": "promoted",
        "upstream": "vllm", "url": "https://example.com/vllm.git", "pin": "a" * 40, "base": "a" * 40,
        "result_tree": "c" * 40, "bundle": "promoted-vllm.patch.gz.b64", "content_sha256": "d" * 64,
        "files": {"promoted-vllm.patch.gz.b64": "e" * 64},
        "patches": [{"id": "fast", "status": "promoted", "flags": ["VLLM_X"], "title": "Fast",
                     "file": "0001-fast.patch", "sha256": "f" * 64}]}, indent=1).encode()


def same_document(fast, exact, where: str = "doc") -> None:
    """`fast` (fastyaml) is the document `exact` (ruamel round trip) in every way patchq can see: values, their
    types (str subclasses aside), key order, and the line and column of every node, key and item."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    if isinstance(exact, CommentedMap):
        assert isinstance(fast, CommentedMap), where
        assert list(fast) == list(exact), where
        assert (fast.lc.line, fast.lc.col) == (exact.lc.line, exact.lc.col), where
        assert fast.fa.flow_style() == exact.fa.flow_style(), where
        for key in exact:
            assert fast.lc.key(key) == exact.lc.key(key), f"{where}.{key}"
            if exact[key] is not None:    # where an empty value "is" differs (libyaml: after the colon); unused
                assert fast.lc.value(key) == exact.lc.value(key), f"{where}.{key}"
            same_document(fast[key], exact[key], f"{where}.{key}")
    elif isinstance(exact, CommentedSeq):
        assert isinstance(fast, CommentedSeq) and len(fast) == len(exact), where
        assert (fast.lc.line, fast.lc.col) == (exact.lc.line, exact.lc.col), where
        assert fast.fa.flow_style() == exact.fa.flow_style(), where
        for index, item in enumerate(exact):
            assert fast.lc.item(index) == exact.lc.item(index), f"{where}[{index}]"
            same_document(fast[index], item, f"{where}[{index}]")
    elif isinstance(exact, str):
        assert isinstance(fast, str) and str(fast) == str(exact), where
    else:
        assert type(fast) is type(exact) and fast == exact and str(fast) == str(exact), where


def yaml_fast_path_property(data: bytes) -> None:
    """The libyaml fast path answers only when it agrees with ruamel's loader, and never where ruamel refuses."""
    from patchq import fastyaml
    from patchq.yamlio import MAX_YAML_DEPTH, guarded_loader
    text = data.decode("utf-8", "replace")
    fast = fastyaml.load(text, max_depth=MAX_YAML_DEPTH)
    try:
        exact = guarded_loader("fuzz.yaml").load(text)
    except Exception as exc:        # what the exact loader refuses, the fast path must not accept
        assert fast is None, f"fast path accepted what ruamel refuses ({type(exc).__name__}: {exc})"
        return
    if fast is not None:
        same_document(fast, exact)


PROPERTIES = {
    "patch-reader": (patch_reader_property, lambda: mutated(patch_seeds(), DIFF_TOKENS)),
    "lenient-reader": (lenient_reader_property,
                       lambda: mutated(patch_seeds(), DIFF_TOKENS + [b"@@\n", b"@@ def f():\n"])),
    "bundle-reader": (bundle_reader_property, lambda: mutated(bundle_seeds(), DIFF_TOKENS + [b"=", b"A", b"\x1f\x8b"])),
    "pins.lock": (lock_loader_property, lambda: mutated([LOCK, *_corpus("lock")[:12]], YAML_TOKENS)),
    "series.yaml": (series_loader_property, lambda: mutated([SERIES, *_corpus("series")], YAML_TOKENS)),
    "manifest": (manifest_property, lambda: mutated([manifest_seed()], JSON_TOKENS)),
    "yaml-fast-path": (yaml_fast_path_property,
                       lambda: mutated([LOCK, SERIES, *_corpus("lock")[:12], *_corpus("series")], YAML_TOKENS)),
}
