"""`patchq demo`: the embedded sample workspace is built offline and its report shows the outcomes a lab meets."""

from __future__ import annotations

from conftest import result_of
from patchq.check import check_workspace
from patchq.git import Repo
from patchq.model import Status
from patchq.workspace import load_workspace


def test_demo_builds_offline_and_reports_clean_3way_and_conflict(tmp_path, patchq):
    target = tmp_path / "demo"
    res = patchq("--json", "demo", str(target), env={"GIT_ALLOW_PROTOCOL": "file"})
    assert res.code == 0, res.err
    report = result_of(res.out)
    report = report.get("apply", report)           # the demo may also report the builds it ran
    kinds = {o["patch_id"]: o["kind"] for up in report["upstreams"] for o in up["outcomes"]}
    assert {"clean", "offset", "3way", "conflict"} <= set(kinds.values())
    assert kinds["allreduce-bf16-accum"] == "3way"
    assert kinds["mtp-spec-decode"] == "conflict"            # the rejected experiment no longer applies
    conflict = next(o for up in report["upstreams"] for o in up["outcomes"] if o["kind"] == "conflict")
    assert conflict["hunks"] and conflict["hunks"][0]["file"].endswith("minimax_m2.py")
    assert any("git am -3" in step for step in report["next_steps"])

    ws = load_workspace(target)
    statuses = {e.status for q in ws.queues.values() for e in q.entries}
    assert statuses == set(Status)
    assert [f for f in check_workspace(ws, flags=False) if f.severity == "error"] == []
    for up in report["upstreams"]:
        checkout = Repo(up["checkout"])
        assert checkout.status_porcelain() == []
        assert checkout.tree_of("HEAD") == up["tree"]
    # the upstreams are local to the workspace: nothing was fetched from anywhere else
    assert all(not u.url.startswith(("http", "git@")) for u in ws.upstreams.values())

    human = patchq("--workspace", str(target), "list")
    assert human.code == 0 and "mtp-spec-decode" in human.out


def test_demo_refuses_a_non_empty_folder(tmp_path, patchq):
    target = tmp_path / "busy"
    target.mkdir()
    (target / "mine.txt").write_text("keep")
    res = patchq("demo", str(target))
    assert res.code == 2 and "not empty" in res.err
    assert [p.name for p in target.iterdir()] == ["mine.txt"]
