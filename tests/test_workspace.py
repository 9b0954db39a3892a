"""Workspace loading refuses malformed pins.lock and series.yaml with file and line; saving keeps comments and order."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from patchq.errors import BadInput, EnvironmentFailure
from patchq.model import Status
from patchq.txn import atomic_write, workspace_lock
from patchq.workspace import find_workspace, init_workspace, load_workspace, series_bytes, set_lock_values

SHA_A = "a" * 40
SHA_B = "b" * 40

LOCK = f"""\
# top comment: why these pins
version: 1
upstreams:
  vllm:
    url: /nowhere/vllm   # where it lives
    pin: {SHA_A}
    description: the engine
  llama-cpp:
    url: /nowhere/llama
    pin: {SHA_B}
stacks:
  fast:
    # the stack we ship
    upstreams: [vllm, llama-cpp]
    include: [promoted]
    profile:
      VLLM_X: "1"
"""

PATCH = """\
From: Lab <lab@example.com>
Subject: [PATCH] One

Patchq-Id: {id}
Patchq-Status: {status}
---

diff --git a/f.txt b/f.txt
--- a/f.txt
+++ b/f.txt
@@ -1 +1 @@
-a
+b
"""

SERIES = """\
# series comment
patches:
  - id: one          # first
    file: 0001-one.patch
    status: promoted
    title: One
  - id: two
    file: 0002-two.patch
    status: diagnostic
    title: Two
"""


def make_ws(root: Path, *, lock: str = LOCK, series: str = SERIES) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pins.lock").write_text(lock)
    queue = root / "queues" / "vllm"
    queue.mkdir(parents=True, exist_ok=True)
    (queue / "series.yaml").write_text(series)
    (queue / "0001-one.patch").write_text(PATCH.format(id="one", status="promoted"))
    (queue / "0002-two.patch").write_text(PATCH.format(id="two", status="diagnostic"))
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".patchq" not in p.parts}


def refused(root: Path, match: str, *, path_end: str, line: int | None) -> BadInput:
    before = snapshot(root)
    with pytest.raises(BadInput, match=match) as info:
        load_workspace(root)
    assert info.value.path.endswith(path_end)
    assert info.value.line == line
    assert "\n" not in str(info.value)
    assert snapshot(root) == before
    return info.value


def test_valid_workspace_loads(tmp_path):
    ws = load_workspace(make_ws(tmp_path / "ws"))
    assert ws.upstream("vllm").pin == SHA_A
    assert [e.id for e in ws.queue("vllm").entries] == ["one", "two"]
    assert ws.queue("vllm").get("two").status is Status.DIAGNOSTIC
    assert ws.stack("fast").profile == {"VLLM_X": "1"}


def test_yaml_syntax_error_in_pins_lock_names_the_line(tmp_path):
    root = make_ws(tmp_path / "ws", lock=LOCK.replace("    pin: " + SHA_B, "    pin: [" + SHA_B))
    refused(root, "invalid YAML", path_end="pins.lock", line=11)   # where the parser finds the open bracket
    # a mapping value error points at its line
    root2 = make_ws(tmp_path / "ws2", lock=LOCK.replace("description: the engine", "description: a: b: c"))
    refused(root2, "invalid YAML", path_end="pins.lock", line=7)


def test_yaml_syntax_error_in_series_names_the_line(tmp_path):
    root = make_ws(tmp_path / "ws", series=SERIES.replace("    title: Two\n", "    title: Two\n  - id: [\n"))
    with pytest.raises(BadInput, match="invalid YAML") as info:
        load_workspace(root)
    assert info.value.path.endswith("queues/vllm/series.yaml")
    assert info.value.line is not None and info.value.line >= 11


def test_unknown_status_names_the_line(tmp_path):
    root = make_ws(tmp_path / "ws", series=SERIES.replace("status: diagnostic", "status: rejected"))
    refused(root, "unknown status 'rejected'", path_end="series.yaml", line=9)


def test_unknown_status_in_a_stack_include(tmp_path):
    root = make_ws(tmp_path / "ws", lock=LOCK.replace("include: [promoted]", "include: [promoted, golden]"))
    refused(root, "unknown status 'golden'", path_end="pins.lock", line=15)


def test_duplicate_ids_name_both_lines(tmp_path):
    root = make_ws(tmp_path / "ws", series=SERIES.replace("id: two", "id: one"))
    err = refused(root, "duplicate patch id 'one'", path_end="series.yaml", line=7)
    assert "first at line 3" in err.message


def test_missing_patch_file_names_the_line(tmp_path):
    root = make_ws(tmp_path / "ws")
    (root / "queues/vllm/0002-two.patch").unlink()
    refused(root, "0002-two.patch of 'two' does not exist", path_end="series.yaml", line=8)


def test_patch_file_outside_the_queue_folder_is_refused(tmp_path):
    root = make_ws(tmp_path / "ws", series=SERIES.replace("file: 0002-two.patch", "file: ../../pins.lock"))
    refused(root, "plain file name", path_end="series.yaml", line=8)


@pytest.mark.parametrize("where,text,line", [
    ("lock", LOCK.replace("    description: the engine", "    descripton: the engine"), 7),
    ("lock", LOCK.replace("version: 1", "version: 1\nextras: {}"), 3),
    ("lock", LOCK.replace("    include: [promoted]", "    includes: [promoted]"), 15),
    ("series", SERIES.replace("    title: One", "    titel: One"), 6),
    ("series", "patches: []\nqueue: vllm\n", 2),
])
def test_unknown_keys_are_named_with_their_line(tmp_path, where, text, line):
    root = make_ws(tmp_path / "ws", **({"lock": text} if where == "lock" else {"series": text}))
    err = refused(root, "unknown key", path_end="pins.lock" if where == "lock" else "series.yaml", line=line)
    assert "known:" in err.message


@pytest.mark.parametrize("pin", ["a1b2c3d", "v0.11.0", "main", "A" * 40, "a" * 39])
def test_a_pin_that_is_not_a_full_sha_is_refused(tmp_path, pin):
    root = make_ws(tmp_path / "ws", lock=LOCK.replace(f"pin: {SHA_A}", f"pin: {pin}"))
    err = refused(root, "not a full 40-hex commit id", path_end="pins.lock", line=6)
    assert "patchq pin" in err.message


def test_a_short_stack_pin_is_refused(tmp_path):
    root = make_ws(tmp_path / "ws", lock=LOCK + "    pins:\n      vllm: abc123\n")
    refused(root, "not a full 40-hex", path_end="pins.lock", line=19)


@pytest.mark.parametrize("snippet,what,line", [
    ("    description: !!python/object:os.system ls", "tags", 7),
    ("    description: &desc the engine", "anchors", 7),
])
def test_yaml_tags_and_anchors_are_refused(tmp_path, snippet, what, line):
    root = make_ws(tmp_path / "ws", lock=LOCK.replace("    description: the engine", snippet))
    refused(root, what, path_end="pins.lock", line=line)


def test_alias_in_series_is_refused(tmp_path):
    text = SERIES.replace("    title: Two", "    title: *t")
    root = make_ws(tmp_path / "ws", series=text)
    refused(root, "anchors and aliases", path_end="series.yaml", line=10)


def test_a_stack_naming_an_unknown_upstream_is_refused(tmp_path):
    root = make_ws(tmp_path / "ws", lock=LOCK.replace("upstreams: [vllm, llama-cpp]", "upstreams: [vllm, llamacpp]"))
    err = refused(root, "unknown upstream 'llamacpp'", path_end="pins.lock", line=14)
    assert "did you mean: llama-cpp" in err.message


def test_a_queue_folder_without_its_upstream_is_refused(tmp_path):
    root = make_ws(tmp_path / "ws")
    (root / "queues" / "ghost").mkdir()
    (root / "queues" / "ghost" / "series.yaml").write_text("patches: []\n")
    refused(root, "no upstream of that name", path_end="ghost/series.yaml", line=None)


def test_find_workspace_walks_up_and_says_what_to_do(tmp_path):
    root = make_ws(tmp_path / "ws")
    deep = root / "queues" / "vllm"
    assert find_workspace(deep) == root.resolve()
    with pytest.raises(BadInput, match="patchq init"):
        find_workspace(tmp_path)


def test_init_makes_a_loadable_workspace_and_refuses_twice(tmp_path):
    lock = init_workspace(tmp_path / "new")
    ws = load_workspace(tmp_path / "new")
    assert ws.upstreams == {} and ws.stacks == {}
    assert ".patchq/" in (tmp_path / "new" / ".gitignore").read_text()
    before = lock.read_bytes()
    with pytest.raises(BadInput, match="already exists"):
        init_workspace(tmp_path / "new")
    assert lock.read_bytes() == before


# ---- round-trip saving ------------------------------------------------------------------------------------------

def test_set_lock_values_keeps_comments_and_key_order(tmp_path):
    root = make_ws(tmp_path / "ws")
    ws = load_workspace(root)
    tree = "c" * 40
    text = set_lock_values(ws, pins={"vllm": "d" * 40}, trees={"fast": {"vllm": tree}}).decode()
    assert text.startswith("# top comment: why these pins\n")
    assert "url: /nowhere/vllm   # where it lives\n" in text
    assert "    # the stack we ship\n" in text
    assert f"pin: {'d' * 40}" in text and f"pin: {SHA_B}" in text
    keys = re.findall(r"^  (\S+):", text, re.M)
    assert keys == ["vllm", "llama-cpp", "fast"]
    assert re.findall(r"^    (\w+):", text, re.M)[:3] == ["url", "pin", "description"]
    # the only lines that changed are the pin and the added trees
    old_lines, new_lines = LOCK.splitlines(), text.splitlines()
    changed = [ln for ln in new_lines if ln not in old_lines]
    assert changed == [f"    pin: {'d' * 40}", "    trees:", f"      vllm: {tree}"]
    atomic_write(root / "pins.lock", text.encode())
    assert load_workspace(root).stack("fast").trees == {"vllm": tree}


def test_series_bytes_keeps_comments_and_order(tmp_path):
    from dataclasses import replace
    root = make_ws(tmp_path / "ws")
    ws = load_workspace(root)
    one, two = ws.queue("vllm").entries
    text = series_bytes(ws, "vllm", [one, replace(two, status=Status.NEGATIVE_ARCHIVED)]).decode()
    assert text.startswith("# series comment\n")
    assert "  - id: one          # first\n" in text
    assert text.index("id: one") < text.index("id: two")
    assert "status: negative-archived" in text
    assert [ln for ln in text.splitlines() if ln not in SERIES.splitlines()] == ["    status: negative-archived"]


def test_atomic_write_leaves_no_temporary_file_and_keeps_mode(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    target.chmod(0o600)
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


# ---- the workspace lock -------------------------------------------------------------------------------------------

def test_workspace_lock_refuses_a_live_holder_and_takes_over_a_dead_one(tmp_path):
    root = make_ws(tmp_path / "ws")
    with workspace_lock(root, "first"):
        with pytest.raises(EnvironmentFailure, match="in use by patchq pid"):
            with workspace_lock(root, "second"):
                pass
    assert not (root / ".patchq" / "lock").exists()
    (root / ".patchq" / "lock").write_text("999999999 apply crashed\n")   # a pid that cannot be alive
    with workspace_lock(root, "after crash"):
        assert "after crash" in (root / ".patchq" / "lock").read_text()
    assert not (root / ".patchq" / "lock").exists()


# ---- a sample of the refusals through the real CLI ------------------------------------------------------------------

@pytest.mark.parametrize("edit,expect", [
    (lambda r: (r / "pins.lock").write_text(LOCK.replace(f"pin: {SHA_A}", "pin: a1b2c3d")),
     r"^error: \S*pins\.lock:6: pin 'a1b2c3d' of upstream 'vllm' is not a full 40-hex commit id"),
    (lambda r: (r / "queues/vllm/series.yaml").write_text(SERIES.replace("status: diagnostic", "status: meh")),
     r"^error: \S*queues/vllm/series\.yaml:9: unknown status 'meh'"),
    (lambda r: (r / "queues/vllm/series.yaml").write_text(SERIES.replace("id: two", "id: one")),
     r"^error: \S*series\.yaml:7: duplicate patch id 'one'"),
    (lambda r: (r / "pins.lock").write_text(LOCK.replace("description: the engine", "description: a: b: c")),
     r"^error: \S*pins\.lock:7: invalid YAML"),
])
def test_cli_reports_bad_input_as_one_line_with_exit_2(tmp_path, patchq, edit, expect):
    root = make_ws(tmp_path / "ws")
    edit(root)
    before = snapshot(root)
    for args in (["list"], ["check"], ["apply", "fast"]):
        res = patchq("--workspace", str(root), *args)
        assert res.code == 2, (args, res.err)
        assert re.match(expect, res.err), res.err
        assert len(res.err.strip().splitlines()) == 1, res.err
        assert "Traceback" not in res.err
    assert snapshot(root) == before
