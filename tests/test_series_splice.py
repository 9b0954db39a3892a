"""series.yaml rewrites that touch only the changed entries' lines give the same bytes as the whole-document
rewrite, and fall back to it wherever comments, blank lines or a hand-made layout could be lost."""

from __future__ import annotations

import dataclasses

import pytest

import patchq.workspace as workspace
from patchq.model import PatchEntry, Status
from patchq.patchfile import render_patch_file
from patchq.workspace import dump_yaml, entry_to_yaml, load_workspace, new_lock_doc, series_bytes

DIFF = b"diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n"


def _workspace(root, series_text: str | None = None):
    (root / "queues" / "vllm").mkdir(parents=True)
    doc = new_lock_doc()
    doc["upstreams"]["vllm"] = {"url": "https://example.invalid/vllm.git", "pin": "a" * 40}
    (root / "pins.lock").write_bytes(dump_yaml(doc))
    entries = [PatchEntry(id=f"p{n}", upstream="vllm", file=f"{n:04d}-p{n}.patch", status=Status.PROMOTED,
                          title=f"Tune {n}", author="Lab <lab@example.com>", date="2026-05-19",
                          flags=(f"VLLM_P{n}",), notes=("first note",) if n % 3 == 0 else ())
               for n in range(12)]
    for entry in entries:
        (root / "queues" / "vllm" / entry.file).write_bytes(render_patch_file(entry, DIFF))
    text = series_text or dump_yaml({"patches": [entry_to_yaml(e) for e in entries]}).decode()
    (root / "queues" / "vllm" / "series.yaml").write_text(text)
    return load_workspace(root)


def _edited(ws):
    entries = list(ws.queue("vllm").entries)
    entries[3] = dataclasses.replace(entries[3], notes=(*entries[3].notes, "2026-11-26: left out: already upstream"),
                                     status=Status.NEGATIVE_ARCHIVED)
    entries[7] = dataclasses.replace(entries[7], result="+3.1 % tok/s", title="Tune 7 better")
    entries[11] = dataclasses.replace(entries[11], flags=())
    return entries


def _whole_rewrite(ws, entries, monkeypatch) -> bytes:
    with monkeypatch.context() as m:
        m.setattr(workspace, "_series_spliced", lambda *args: None)
        return series_bytes(ws, "vllm", entries)


def test_changed_entries_only_give_the_whole_rewrites_bytes(tmp_path, monkeypatch):
    ws = _workspace(tmp_path)
    entries = _edited(ws)
    assert workspace._series_spliced(ws, "vllm", entries) is not None       # the fast path answered
    spliced = series_bytes(ws, "vllm", entries)
    assert spliced == _whole_rewrite(_workspace(tmp_path / "again"), entries, monkeypatch)
    (tmp_path / "queues" / "vllm" / "series.yaml").write_bytes(spliced)
    assert list(load_workspace(tmp_path).queue("vllm").entries) == entries


@pytest.mark.parametrize("change", ["comment", "blank", "spacing", "order"])
def test_anything_the_splice_could_lose_goes_through_the_whole_rewrite(tmp_path, change, monkeypatch):
    ws = _workspace(tmp_path)
    path = tmp_path / "queues" / "vllm" / "series.yaml"
    text = path.read_text()
    if change == "comment":
        text = text.replace("  - id: p3\n", "  - id: p3   # the one we keep arguing about\n")
    elif change == "blank":
        text = text.replace("  - id: p4\n", "\n  - id: p4\n")
    elif change == "spacing":
        text = text.replace("    title: Tune 7\n", "    title:     Tune 7\n")
    path.write_text(text)
    ws = load_workspace(tmp_path)
    entries = _edited(ws)
    if change == "order":
        entries = entries[1:] + entries[:1]
    assert workspace._series_spliced(ws, "vllm", entries) is None
    rewritten = series_bytes(ws, "vllm", entries).decode()
    if change == "comment":
        assert "# the one we keep arguing about" in rewritten
    path.write_text(rewritten)
    assert list(load_workspace(tmp_path).queue("vllm").entries) == entries


def test_a_block_list_the_entry_keeps_is_written_as_the_whole_rewrite_writes_it(tmp_path, monkeypatch):
    ws = _workspace(tmp_path)
    path = tmp_path / "queues" / "vllm" / "series.yaml"
    path.write_text(path.read_text().replace("    flags: [VLLM_P3]\n", "    flags:\n      - VLLM_P3\n"))
    ws = load_workspace(tmp_path)
    entries = _edited(ws)
    spliced = workspace._series_spliced(ws, "vllm", entries)
    assert spliced is not None and b"    flags:\n      - VLLM_P3\n" in spliced
    assert spliced == _whole_rewrite(ws, entries, monkeypatch)
