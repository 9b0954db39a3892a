"""Focused tests of import's parts as they moved into `patchq/importer/`: path mapping, anchoring, the placer.

Path mapping and anchoring are pure (a tree listing, a file's text); the placer runs on real git upstreams.
"""

from __future__ import annotations

import pytest

from patchq.importer.anchor import FileIndex, anchor_sections, choose
from patchq.importer.inputs import InputFile, candidate
from patchq.importer.items import Refused
from patchq.importer.paths import UpstreamView, map_section, map_sections
from patchq.importer.placer import Placer
from patchq.model import OutcomeKind
from patchq.patchtext.lenient import RawSection, read_lenient

TREE = ["vllm/model_executor/models/minimax_m2.py", "vllm/platforms/xpu.py", "README.md", "logs"]


def view(files=TREE, links=("logs",)) -> UpstreamView:
    dirs = {""} | {"/".join(p.split("/")[:k]) for p in files for k in range(1, p.count("/") + 1)}
    return UpstreamView("up", None, "", frozenset(files), frozenset(dirs), frozenset(links))  # type: ignore[arg-type]


def section(old: str | None, new: str | None, **kw) -> RawSection:
    values = dict(git=False, extended=(), hunks=(), created=old is None, deleted=new is None, rename=False,
                  copy=False, line=1)
    values.update(kw)
    return RawSection(old, new, **values)   # type: ignore[arg-type]


@pytest.mark.parametrize("old, new, expected", [
    ("/tmp/vllm-0.20.1-orig/vllm/platforms/xpu.py",
     "/home/u/.venvs/v/lib/python3.12/site-packages/vllm/platforms/xpu.py", "vllm/platforms/xpu.py"),
    ("a/home/u/src/vllm/vllm/platforms/xpu.py", "b/home/u/src/vllm/vllm/platforms/xpu.py", "vllm/platforms/xpu.py"),
    ("README.md.orig", "README.md", "README.md"),                      # `diff -u x.orig x`: the one that exists
])
def test_written_paths_become_repo_relative(old, new, expected):
    mapped = map_section(section(old, new), view())
    assert mapped is not None and (mapped.old, mapped.new, mapped.strength) == (expected, expected, 3)


def test_created_files_follow_their_folder_or_their_siblings():
    assert map_section(section(None, "b/vllm/platforms/new.py"), view()).new == "vllm/platforms/new.py"
    lone = section(None, "/abs/nowhere/new.py")
    assert map_section(lone, view()) is None
    mapped = map_sections([section("/x/y/vllm/platforms/xpu.py", "/x/y/vllm/platforms/xpu.py"),
                           section(None, "/x/y/tools/new.py")], view())
    assert mapped[1] is not None and (mapped[1].new, mapped[1].strength) == ("tools/new.py", 1)


def test_quilt_strip_level_replaces_the_search():
    assert map_section(section("a/b/README.md", "a/b/README.md"), view(), strip=2).old == "README.md"
    assert map_section(section("a/b/README.md", "a/b/README.md"), view(), strip=1) is None


def test_symlink_folders_at_the_pin_are_known():
    assert view().symlink_above("logs/x") == "logs" and view().symlink_above("vllm/x") is None


FILE = b"".join(b"def op_%d(x):\n    if DEBUG:\n        log(x)\n    return x * %d\n\n" % (i, i) for i in range(4))


def test_file_index_finds_exact_and_whitespace_insensitive_matches():
    index = FileIndex(FILE)
    assert index.find([b"    if DEBUG:", b"        log(x)"], loose=False) == [1, 6, 11, 16]
    assert index.find([b"\tif DEBUG:", b"\t\tlog( x )"], loose=False) == []
    assert index.find([b"\tif DEBUG:", b"\t\tlog( x )"], loose=True) == [1, 6, 11, 16]


@pytest.mark.parametrize("found, after, hint, expected", [
    ([4], None, None, 4),                    # one place: there
    ([1, 6, 11], 7, None, 11),               # several: the first after the previous hunk
    ([1, 6, 11], None, 10, 11),              # no previous hunk: the header's line number decides
    ([1, 6, 11], 2, 10, 11),                 # both: the nearest to the line number after the previous hunk
    ([1, 6, 11], None, None, None),          # nothing decides: ambiguous
    ([1, 11], None, 6, None),                # equally near: ambiguous
])
def test_the_rules_for_several_matches(found, after, hint, expected):
    assert choose(found, after, hint) == expected


def _hunks(text: bytes) -> RawSection:
    return read_lenient(b"--- a/ops.py\n+++ b/ops.py\n" + text).sections[0]


def test_anchoring_applies_the_sequential_rule_and_refuses_what_nothing_decides():
    sec = _hunks(b"@@\n def op_1(x):\n-    if DEBUG:\n+    if DEBUG or TRACE:\n@@\n     if DEBUG:\n-        log(x)\n"
                 b"+        log(x, 1)\n")
    result = anchor_sections([sec], ["ops.py"], lambda p: FILE)
    assert [(h.old_start, h.new_start) for h in result.hunks[0]] == [(6, 6), (12, 12)]
    alone = _hunks(b"@@\n     if DEBUG:\n-        log(x)\n+        log(x, 1)\n")
    with pytest.raises(Refused, match="matches at lines 2, 7, 12, 17"):
        anchor_sections([alone], ["ops.py"], lambda p: FILE)
    nowhere = _hunks(b"@@\n def op_9(x):\n-    pass\n+    return 9\n")
    result = anchor_sections([nowhere], ["ops.py"], lambda p: FILE)
    assert result.unplaced and result.unplaced[0][1].line == 3


def test_placer_chooses_the_upstream_whose_file_holds_the_context(lab, make_upstream, tmp_path):
    first, second = make_upstream("first"), make_upstream("second")
    first.write("pkg/ops.py", FILE.decode())
    second.write("pkg/ops.py", FILE.decode().replace("log(x)", "trace(x)"))
    lab.upstream("first", first, first.commit("a")).upstream("second", second, second.commit("b"))
    ws = lab.load()
    path = tmp_path / "ctx.patch"
    path.write_bytes(b"--- a/pkg/ops.py\n+++ b/pkg/ops.py\n@@\n def op_2(x):\n     if DEBUG:\n-        log(x)\n"
                     b"+        log(x, 2)\n")
    cand = candidate(InputFile(path, "ctx.patch", "ctx.patch"), "ctx.patch", None, path.read_bytes(), [], False)
    placer = Placer(ws, ["first", "second"], [], [cand])
    try:
        (part,) = placer.place(cand, ["first", "second"])
    finally:
        placer.close()
    assert part.upstream == "first" and part.outcome.kind == OutcomeKind.CLEAN, (part.outcome, part.remarks)
    # placed at line 11, and given the file's own lines after it as context (git anchors a hunk with less context
    # after than before at the end of the file)
    assert part.diff.endswith(b"@@ -11,5 +11,5 @@\n def op_2(x):\n     if DEBUG:\n-        log(x)\n+        log(x, 2)\n"
                              b"     return x * 2\n \n")
    assert any("chosen by applying it" in r and "second: conflict" in r for r in part.remarks)
