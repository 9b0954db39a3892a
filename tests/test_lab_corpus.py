"""The generated lab corpus of issue 12: every shape imports, or is refused, exactly as specified, and applies.

The corpus (tests/labcorpus.py) is made once per module from real git trees. One import of the whole folder is
checked item by item against the expectations recorded when each file was generated; then the imported queues are
applied in order and must give exactly the trees the original, undamaged diffs give applied in the same order —
so every anchoring decision (sequential rule, line-number hint, whitespace fuzz, on top of requirements) is
checked against the truth, not against itself.
"""

from __future__ import annotations

import base64
import re
import zlib

import pytest

from conftest import result_of
from labcorpus import World, build_corpus
from patchq.importer import ImportAction, import_paths
from patchq.patchfile import read_patch_file
from patchq.workspace import load_workspace


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("labcorpus")
    world = World(root)
    world.make()
    patches = build_corpus(world)
    folder = root / "lab-patches"
    folder.mkdir()
    for patch in patches:
        (folder / patch.name).write_bytes(patch.data)
    ws = root / "ws"
    (ws / "queues").mkdir(parents=True)
    lock = "version: 1\nupstreams:\n" + "".join(
        f"  {name}:\n    url: {world.repos[name].path}\n    pin: {world.pins[name]}\n" for name in world.repos)
    (ws / "pins.lock").write_text(lock + "stacks: {}\n")
    report = import_paths(load_workspace(ws), [folder])
    return world, patches, folder, ws, report


def test_corpus_has_every_shape_and_enough_patches(corpus):
    _, patches, _, _, _ = corpus
    assert len(patches) >= 30
    names = " ".join(p.name for p in patches)
    for shape in ("ctx-one", "ctx-func", "ctx-several", "ops-sequential", "ops-ambiguous", "count-under",
                  "count-over", "count-into-next-hunk", "count-into-next-file", "stripped-blank", "mtp",
                  "m-unrelated", "ghost-context", "cut-gzip", "cut-base64"):
        assert shape in names, shape


def test_each_patch_imports_or_is_refused_as_specified(corpus):
    world, patches, folder, ws, report = corpus
    items = {i.source.rsplit("/", 1)[1]: i for i in report.items}
    assert len(items) == len(patches)
    ids = {name: item.patch_id for name, item in items.items()}
    for patch in patches:
        item = items[patch.name]
        if patch.refused:
            assert item.action == ImportAction.SKIPPED, (patch.name, item)
            assert re.search(patch.refused, item.reason), (patch.name, item.reason)
            continue
        assert item.action == ImportAction.IMPORTED, (patch.name, item.reason)
        assert (item.upstream, item.outcome) == (patch.upstream, patch.outcome), (patch.name, item)
        assert set(item.requires) == {ids[r] for r in patch.requires}, (patch.name, item.requires)
        if patch.remark:
            assert any(re.search(patch.remark, r) for r in item.remarks), (patch.name, item.remarks)
        assert len(item.missing_context) == patch.missing, (patch.name, item.missing_context)
    ghost = items["ghost-context.patch"]
    assert all(m.file == "vllm/model_executor/models/minimax_m2.py" and "ghost_call_" in m.text
               for m in ghost.missing_context)
    lines = (folder / "ghost-context.patch").read_bytes().split(b"\n")
    assert all(lines[m.line - 1][1:].decode() == m.text for m in ghost.missing_context)   # the patch's own line


def test_damaged_bundles_say_how_many_sections_decode_before_the_damage(corpus):
    _, patches, _, _, report = corpus
    items = {i.source.rsplit("/", 1)[1]: i for i in report.items}
    for patch in (p for p in patches if p.salvage):
        raw = base64.b64decode(re.sub(rb"\s+", b"", patch.data)[: len(re.sub(rb"\s+", b"", patch.data)) // 4 * 4])
        text = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw)
        headers = [ln for ln in text.split(b"\n")[:-1] if ln.startswith(b"diff --git ")]
        expected = max(len(headers) - 1, 0)        # a section is complete when the next one has begun
        assert f"{expected} complete file section(s) decode before the damage" in items[patch.name].reason


def test_imported_queues_apply_and_give_the_trees_of_the_original_diffs(corpus):
    world, patches, _, ws_root, report = corpus
    ws = load_workspace(ws_root)
    by_id = {i.patch_id: p for i in report.items for p in patches if i.source.endswith("/" + p.name)}
    for name, queue in ws.queues.items():
        repo = world.repos[name]
        tree = repo.out("rev-parse", f"{world.pins[name]}^{{tree}}")
        entries = [e for e in queue.entries if by_id[e.id].outcome != "conflict"]
        assert entries, name
        with repo.temp_index(tree) as mine, repo.temp_index(tree) as truth:
            for entry in entries:
                data = ws.patch_path(entry).read_bytes()
                diff = read_patch_file(data, source=entry.file).diff
                res = repo.apply(diff, cached=True, env=mine)
                assert res.ok, (entry.id, res.stderr)
                assert repo.apply(by_id[entry.id].original, cached=True, env=truth).ok, entry.id
            assert repo.write_tree(env=mine) == repo.write_tree(env=truth), name


def test_requirements_come_first_in_the_queue(corpus):
    _, _, _, ws_root, _ = corpus
    queue = load_workspace(ws_root).queue("vllm")
    order = [e.id for e in queue.entries]
    for entry in queue.entries:
        for need in entry.requires:
            assert order.index(need) < order.index(entry.id), (entry.id, need)
    assert queue.get("a-mtp-last").requires == ("b-mtp-step", "z-mtp-base")
    assert order.index("z-mtp-base") < order.index("b-mtp-step") < order.index("a-mtp-last")


def test_json_and_table_show_requirements_and_missing_context(corpus, patchq, tmp_path):
    world, _, folder, ws_root, _ = corpus
    fresh = tmp_path / "fresh"
    (fresh / "queues").mkdir(parents=True)
    (fresh / "pins.lock").write_bytes((ws_root / "pins.lock").read_bytes())
    files = [str(folder / n) for n in ("a-mtp-last.patch", "b-mtp-step.patch", "z-mtp-base.patch",
                                       "ghost-context.patch", "bench-tp2.patch")]
    doc = result_of(patchq("-w", str(fresh), "--json", "import", *files, "--dry-run").out)
    assert all("requires" in i and "missing_context" in i for i in doc["items"])
    last = next(i for i in doc["items"] if i["source"].endswith("a-mtp-last.patch"))
    assert last["requires"] == ["b-mtp-step", "z-mtp-base"]
    ghost = next(i for i in doc["items"] if i["source"].endswith("ghost-context.patch"))
    assert [set(m) for m in ghost["missing_context"]] == [{"file", "line", "text"}] * 5
    table = patchq("-w", str(fresh), "import", *files, "--dry-run").out
    assert "needs vllm:b-mtp-step, vllm:z-mtp-base" in " ".join(table.split())
    assert re.search(r"\d+\+? context lines? found nowhere", " ".join(table.split()))


def test_salvage_imports_the_complete_sections_as_a_diagnostic_patch_that_cannot_be_promoted(corpus, patchq):
    world, patches, folder, ws_root, _ = corpus
    res = patchq("-w", str(ws_root), "--json", "import", str(folder / "moe-cut-gzip.patch.gz.b64"), "--salvage",
                 "--status", "promoted")
    doc = result_of(res.out)
    (item,) = doc["items"]
    assert item["action"] == "imported" and item["status"] == "diagnostic", item
    assert any("salvaged from a damaged bundle" in r for r in item["remarks"])
    entry = load_workspace(ws_root).queue("vllm").get(item["patch_id"])
    assert entry.salvaged and "lost" in entry.salvaged
    res = patchq("-w", str(ws_root), "mark", item["patch_id"], "promoted")
    assert res.code == 2 and "never be promoted" in res.err


def test_requirements_are_found_among_existing_queue_entries(corpus, tmp_path):
    _, _, folder, ws_root, _ = corpus
    fresh = tmp_path / "existing"
    (fresh / "queues").mkdir(parents=True)
    (fresh / "pins.lock").write_bytes((ws_root / "pins.lock").read_bytes())
    first = import_paths(load_workspace(fresh), [folder / "z-mtp-base.patch"])
    assert [i.outcome for i in first.items] == ["clean"]
    second = import_paths(load_workspace(fresh), [folder / "b-mtp-step.patch"])
    (item,) = second.items
    assert (item.action, item.outcome, item.requires) == (ImportAction.IMPORTED, "clean", ("z-mtp-base",))
    assert any("alone at the pin: conflict" in r for r in item.remarks)
    queue = load_workspace(fresh).queue("vllm")
    assert [e.id for e in queue.entries] == ["z-mtp-base", "b-mtp-step"]
    assert queue.get("b-mtp-step").requires == ("z-mtp-base",)
