"""sync (gbp pq export), edit, and the setup verbs (upstream add/list, stack add/set/list), through the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from patchq.git import Repo
from test_cli import apply_report, as_json, ok, run, user_files, ws  # noqa: F401  (ws is a fixture)
from test_loop import applied, edit as edit_file

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_sync_refreshes_adds_reorders_and_reports_dropped(ws, patchq):
    checkout = applied(patchq, ws)
    repo = Repo(checkout)
    one_patch = ws.root / "queues/vllm/0001-one.patch"
    head_of_one = one_patch.read_bytes()[:one_patch.read_bytes().index(b"diff --git")]
    # reorder: two first, then one edited, then a new commit by someone else; drop nothing yet
    repo.run("rebase", "-q", "--onto", "HEAD~2", "HEAD~1", "HEAD")           # only 'two' on the pin
    two = repo.head()
    repo.run("cherry-pick", repo.out("rev-parse", "refs/patchq/applied~1"))   # 'one' on top
    edit_file(checkout / "vllm/model.py", "return x * 3 + 1\n", "return x * 3 + 11\n")
    repo.run("commit", "-q", "-a", "--amend", "--no-edit")
    edit_file(checkout / "vllm/model.py", "return x * 15\n", "return x * 15 + 15\n")
    repo.run("commit", "-q", "-a", "-m", "Layer 15: add fifteen\n\nMeasured on B70.",
             env={"GIT_AUTHOR_NAME": "Grace", "GIT_AUTHOR_EMAIL": "grace@lab.example",
                  "GIT_AUTHOR_DATE": "2026-06-01T10:00:00+00:00"})
    dry = as_json(run(patchq, ws, "--json", "sync", "s", "--dry-run"))
    assert dry["dry_run"] and user_files(ws.root)["queues/vllm/series.yaml"] == \
        (ws.root / "queues/vllm/series.yaml").read_bytes()
    report = as_json(run(patchq, ws, "--json", "sync", "s"))
    up = report["upstreams"][0]
    assert [(p["patch_id"], p["action"]) for p in up["patches"]] == [
        ("two", "unchanged"), ("one", "refreshed"), ("layer-15-add-fifteen", "added")]
    assert up["reordered"] and up["dropped"] == []
    assert up["order"] == ["two", "one", "layer-15-add-fifteen", "probe", "nope"]
    data = one_patch.read_bytes()
    assert data.startswith(head_of_one) and b"+    return x * 3 + 11" in data
    added = (ws.root / "queues/vllm/0005-layer-15-add-fifteen.patch").read_text()
    assert "From: Grace <grace@lab.example>" in added and "Subject: [PATCH] Layer 15: add fifteen" in added
    assert "Measured on B70." in added and "Patchq-Date: 2026-06-01" in added
    assert ok(run(patchq, ws, "check")).code == 0
    assert two != repo.head()
    expected = (checkout / "vllm/model.py").read_text()
    again = applied(patchq, ws)                      # the queue regenerates the same files, nothing refused
    assert (again / "vllm/model.py").read_text() == expected
    status = as_json(run(patchq, ws, "--json", "status"))["stacks"][0]["upstreams"][0]
    assert status["actions"] == [] and [a["state"] for a in status["applied"]] == ["in-sync"] * 3
    repo.run("reset", "-q", "--hard", "HEAD~1")      # drop the new patch's commit
    dropped = as_json(run(patchq, ws, "--json", "sync", "s"))["upstreams"][0]
    assert dropped["dropped"] == ["layer-15-add-fifteen"] and not dropped["reordered"]


def test_sync_refuses_uncommitted_changes_and_writes_nothing(ws, patchq):
    checkout = applied(patchq, ws)
    (checkout / "README.md").write_text("local\n")
    before = user_files(ws.root)
    res = run(patchq, ws, "sync", "s")
    assert res.code == 2 and "uncommitted changes (README.md)" in res.err
    assert user_files(ws.root) == before


def test_edit_changes_series_and_trailers_keeping_every_other_byte(ws, patchq):
    path = ws.root / "queues/vllm/0002-two.patch"
    old = path.read_bytes()
    edited = as_json(run(patchq, ws, "--json", "edit", "two", "--title", "Layer 30 plus two", "--flag",
                         "VLLM_TWO,VLLM_TWO_B", "--result", "+1 tok/s", "--why", "Because it is faster."))
    assert edited["title"] == "Layer 30 plus two" and edited["flags"] == ["VLLM_TWO", "VLLM_TWO_B"]
    new = path.read_bytes()
    assert new[new.index(b"diff --git"):] == old[old.index(b"diff --git"):]
    old_lines, new_lines = old.decode().splitlines(), new.decode().splitlines()
    assert old_lines[:3] == new_lines[:3]                         # From line, From:, Date: untouched
    assert "Subject: [PATCH] Layer 30 plus two" in new_lines
    assert "Patchq-Flags: VLLM_TWO, VLLM_TWO_B" in new_lines and "Patchq-Result: +1 tok/s" in new_lines
    assert "Because it is faster." in new_lines
    assert ok(run(patchq, ws, "check")).code == 0                 # series and trailers agree
    bad = run(patchq, ws, "edit", "two", "--base", "missing")
    assert bad.code == 2 and "no patch of that id" in bad.err
    assert path.read_bytes() == new


def test_upstream_and_stack_verbs_build_a_workspace_from_nothing(tmp_path, patchq, pyupstream):
    up, base = pyupstream
    root = tmp_path / "fresh"
    ok(patchq("init", str(root)))
    added = as_json(patchq("-w", str(root), "--json", "upstream", "add", "vllm", str(up.path), "--pin",
                           base[:8], "--description", "the engine"))
    assert added["pin"] == base
    dup = patchq("-w", str(root), "upstream", "add", "vllm", str(up.path))
    assert dup.code == 2 and "already exists" in dup.err
    listed = as_json(patchq("-w", str(root), "--json", "upstream", "list"))
    assert [(u["name"], u["pin"], u["url"]) for u in listed] == [("vllm", base, str(up.path))]
    made = as_json(patchq("-w", str(root), "--json", "stack", "add", "fast", "-u", "vllm", "--profile",
                          "VLLM_ONE=1", "--metric", "output_tok_s", "--value", "89"))
    assert made["upstreams"] == ["vllm"] and made["profile"] == {"VLLM_ONE": "1"}
    lock = root / "pins.lock"
    lock.write_text(lock.read_text().replace("  fast:\n", "  # the stack we ship\n  fast:\n"))
    changed = as_json(patchq("-w", str(root), "--json", "stack", "set", "fast", "--include", "promoted",
                             "--include", "diagnostic", "--profile", "VLLM_ONE=", "--lane", "4x B70"))
    assert changed["include"] == ["promoted", "diagnostic"] and changed["profile"] == {}
    assert changed["result"] == {"metric": "output_tok_s", "value": 89.0, "lane": "4x B70"}
    assert "# the stack we ship" in lock.read_text()
    before = lock.read_bytes()
    bad = patchq("-w", str(root), "stack", "set", "fast", "-u", "nosuch")
    assert bad.code == 2 and "unknown upstream 'nosuch'" in bad.err and lock.read_bytes() == before
    stacks = as_json(patchq("-w", str(root), "--json", "stack", "list"))
    assert [s["name"] for s in stacks] == ["fast"] and stacks[0]["patches"] == {"vllm": 0}
    report = apply_report(as_json(patchq("-w", str(root), "--json", "apply", "fast")))
    checkout = Path(report["upstreams"][0]["checkout"])
    assert (checkout / "vllm/model.py").exists()


def test_export_then_import_into_an_empty_workspace_recreates_upstream_and_stack(ws, patchq, tmp_path):
    out = tmp_path / "repro"
    ok(run(patchq, ws, "export", "s", "-o", str(out)))
    manifest = __import__("json").loads((out / "s-vllm.manifest.json").read_text())
    fresh = tmp_path / "fresh"
    ok(patchq("init", str(fresh)))
    lock_before = (fresh / "pins.lock").read_bytes()
    dry = as_json(patchq("-w", str(fresh), "--json", "import", "--dry-run", str(out)))
    assert any("would have upstream vllm" in w for w in dry["warnings"]) and [e["id"] for e in dry["entries"]] == [
        "one", "two"]
    assert (fresh / "pins.lock").read_bytes() == lock_before
    report = as_json(patchq("-w", str(fresh), "--json", "import", str(out)))
    assert any("added upstream vllm" in w for w in report["warnings"])
    assert any("added stack s (vllm; include promoted)" in w for w in report["warnings"])
    assert [e["id"] for e in as_json(patchq("-w", str(fresh), "--json", "list"))] == ["one", "two"]
    stacks = as_json(patchq("-w", str(fresh), "--json", "stack", "list"))
    assert [(s["name"], s["upstreams"]) for s in stacks] == [("s", ["vllm"])]
    applied_doc = apply_report(as_json(patchq("-w", str(fresh), "--json", "apply", "s")))
    assert applied_doc["upstreams"][0]["tree"] == manifest["result_tree"]
    again = as_json(patchq("-w", str(fresh), "--json", "import", str(out)))       # nothing new the second time
    assert not any("added" in w for w in again["warnings"])


def test_stack_set_refuses_status_selection_on_a_stack_that_lists_its_patches(ws, patchq):
    lock = ws.root / "pins.lock"
    lock.write_text(lock.read_text().replace("  s:\n", "  s:\n    patches: [one]\n", 1))
    assert "patches: [one]" in lock.read_text()
    before = lock.read_bytes()
    res = run(patchq, ws, "stack", "set", "s", "--include", "diagnostic")
    assert res.code == 2 and "lists its patches explicitly" in res.err
    assert lock.read_bytes() == before


def test_upstream_and_stack_add_work_in_a_workspace_that_has_patches(ws, patchq, pyupstream):
    up, base = pyupstream
    added = as_json(run(patchq, ws, "--json", "upstream", "add", "other", str(up.path), "--pin", base))
    assert added["pin"] == base
    made = as_json(run(patchq, ws, "--json", "stack", "add", "both", "-u", "vllm", "-u", "other"))
    assert made["upstreams"] == ["vllm", "other"]
    assert "other:" in (ws.root / "pins.lock").read_text()




def test_import_update_replaces_the_diff_of_an_existing_patch(ws, patchq, tmp_path):
    path = ws.root / "queues/vllm/0002-two.patch"
    old = path.read_bytes()
    start = old.index(b"diff --git")
    edited = old[start:old.index(b"-- \npatchq\n")].replace(b"+    return x * 30 + 2\n", b"+    return x * 30 + 22\n")
    incoming = tmp_path / "lab"
    incoming.mkdir()
    (incoming / "two.patch").write_bytes(edited)
    refused = as_json(run(patchq, ws, "--json", "import", "--dry-run", str(incoming)))
    assert [i["patch_id"] for i in refused["items"]] != ["two"]                    # without --update: not two
    done = as_json(run(patchq, ws, "--json", "import", "--update", str(incoming)))
    assert [(i["action"], i["patch_id"]) for i in done["items"]] == [("updated", "two")]
    new = path.read_bytes()
    assert new[:start] == old[:start] and b"+    return x * 30 + 22\n" in new and new.endswith(b"-- \npatchq\n")
    assert [e["id"] for e in as_json(run(patchq, ws, "--json", "list", "-u", "vllm"))] == [
        "one", "two", "probe", "nope"]
    assert ok(run(patchq, ws, "check")).code == 0
