"""Honest merges (issue 16): no reduced-context retry after a 3-way merge conflicted, fuzz stops a rebase for review
unless accepted, an empty side of the before/after view is said in a line, and a finished rebase needs no re-apply
check because its files are byte for byte its commits' diffs."""

from __future__ import annotations

from pathlib import Path

from patchq.apply import lock_stack
from patchq.model import OutcomeKind
from patchq.rebase import StepKind, continue_rebase, start_rebase
from patchq.workspace import load_workspace

LINES = "".join(f"line {i}\n" for i in range(30))


def duplicated_context(text: str) -> str:
    """Upstream edits the line next to the patch's and copies its surroundings further down: `git apply -3`
    conflicts, while one line of context finds the copy (the wrong place)."""
    return text.replace("line 14\n", "line 14 up\n", 1) + "line 14\nline 15\nline 16\n"


def setup(lab, make_upstream, *, strip_index: bool, upstream_edit) -> tuple[Path, str]:
    up = make_upstream("vllm")
    up.write("f.txt", LINES).write("g.txt", "g\n")
    base = up.commit("base")
    diff = up.diff(base, [("f.txt", "line 15\n", "line 15 patch\n")])
    if strip_index:
        diff = b"\n".join(ln for ln in diff.split(b"\n") if not ln.startswith(b"index ")) + b"\n"
    lab.upstream("vllm", up, base)
    lab.patch("vllm", "p", diff)
    lab.patch("vllm", "q", up.diff(base, [("g.txt", "g\n", "g q\n")]))
    lab.stack("s", ["vllm"])
    root = lab.save()
    (up.path / "f.txt").write_text(upstream_edit((up.path / "f.txt").read_text()))
    return root, up.commit("upstream edits")


def test_a_conflicted_three_way_merge_is_a_conflict_not_fuzz(lab, make_upstream):
    root, tip = setup(lab, make_upstream, strip_index=False, upstream_edit=duplicated_context)
    report = start_rebase(root, f"vllm@{tip}", "s", dry_run=True)
    outcome = {s.patch_id: s.outcome for s in report.steps}["p"]
    assert outcome.kind == OutcomeKind.CONFLICT and "3-way merge conflicts in f.txt" in outcome.detail
    stopped = start_rebase(root, f"vllm@{tip}", "s")
    assert stopped.state == "stopped" and stopped.conflict.files == ("f.txt",)
    text = (Path(stopped.conflict.worktree) / "f.txt").read_text()
    assert "<<<<<<<" in text and text.count("line 15 patch") == 1       # markers, and not applied at the copy


def test_fuzz_only_without_pre_image_blobs_and_a_rebase_stops_to_review_it(lab, make_upstream):
    def context_edits(text: str) -> str:
        return text.replace("line 13\n", "line 13 upstream\n").replace("line 17\n", "line 17 upstream\n")
    root, tip = setup(lab, make_upstream, strip_index=True, upstream_edit=context_edits)
    stopped = start_rebase(root, f"vllm@{tip}", "s")
    assert stopped.state == "stopped" and stopped.conflict.review == ("f.txt",)
    assert {s.patch_id: s.outcome.kind for s in stopped.steps}["p"] == OutcomeKind.FUZZ
    assert any("reduced context" in line and "f.txt" in line for line in stopped.next_steps)
    worktree = Path(stopped.conflict.worktree)
    assert "line 15 patch" in (worktree / "f.txt").read_text()          # applied there, staged, for review
    done = continue_rebase(root)
    assert done.state == "done" and {s.patch_id: s.kind for s in done.steps}["p"] == StepKind.RESOLVED


def test_accept_fuzz_takes_it_without_stopping(lab, make_upstream):
    def context_edits(text: str) -> str:
        return text.replace("line 13\n", "line 13 upstream\n").replace("line 17\n", "line 17 upstream\n")
    root, tip = setup(lab, make_upstream, strip_index=True, upstream_edit=context_edits)
    done = start_rebase(root, f"vllm@{tip}", "s", accept_fuzz=True)
    assert done.state == "done"
    step = {s.patch_id: s for s in done.steps}["p"]
    assert step.kind == StepKind.APPLIED and step.outcome.kind == OutcomeKind.FUZZ
    assert any("--accept-fuzz" in line for line in done.next_steps)


def test_finished_files_are_their_commits_diffs_so_nothing_is_re_applied(lab, make_upstream, patchq):
    root, tip = setup(lab, make_upstream, strip_index=False,
                      upstream_edit=lambda t: "top\n" + t.replace("line 15\n", "line 15 patch\n"))
    done = start_rebase(root, f"vllm@{tip}", "s")
    assert done.state == "done" and done.reapplied is False and done.verified is True
    assert {s.patch_id: s.kind for s in done.steps} == {"p": StepKind.ALREADY_UPSTREAM, "q": StepKind.APPLIED}
    ws = load_workspace(root)
    assert lock_stack(ws, "s")["vllm"] == ws.stack("s").trees["vllm"] == done.tree   # the files give that tree
    assert patchq("apply", "s", "--verify", cwd=root).code == 0


def test_an_empty_new_stack_writes_a_clear_line_not_gits_usage(lab, make_upstream):
    up = make_upstream("vllm")
    up.write("f.txt", LINES)
    base = up.commit("base")
    lab.upstream("vllm", up, base)
    lab.patch("vllm", "p", up.diff(base, [("f.txt", "line 15\n", "line 15 patch\n")]))
    lab.stack("s", ["vllm"])
    root = lab.save()
    tip = up.edit("f.txt", "line 15\n", "line 15 patch\n").commit("take it")
    done = start_rebase(root, f"vllm@{tip}", "s")
    assert done.state == "done"
    text = (root / done.range_diff_file).read_text()
    assert "the new stack is empty" in text and "usage" not in text.lower()
    assert [c.change for c in done.queue_changes] == ["dropped"]
