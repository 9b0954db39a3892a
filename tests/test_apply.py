"""apply: every outcome kind on real repositories, commits in the checkout, verify, and the refusals."""

from __future__ import annotations

import pytest

from patchq.apply import apply_stack, lock_stack
from patchq.errors import BadInput
from patchq.git import Repo
from patchq.model import OutcomeKind, Status


def kinds(report, upstream="vllm"):
    up = next(u for u in report.upstreams if u.upstream == upstream)
    return {o.patch_id: o.kind for o in up.outcomes}


def test_clean_patches_become_commits_in_order(lab, pyupstream):
    up, base = pyupstream
    lab.upstream("vllm", up, base)
    lab.patch("vllm", "one", up.diff(base, [("vllm/model.py", "return x * 3\n", "return x * 3 + 1\n")]))
    lab.patch("vllm", "two", up.diff(base, [("vllm/model.py", "return x * 30\n", "return x * 30 + 2\n")]))
    lab.stack("s", ["vllm"])
    report = apply_stack(lab.load(), "s")
    assert kinds(report) == {"one": OutcomeKind.CLEAN, "two": OutcomeKind.CLEAN}
    checkout = Repo(report.upstreams[0].checkout)
    subjects = checkout.out("log", "--format=%s", f"{base}..HEAD").splitlines()
    assert subjects == ["Patch two", "Patch one"]
    text = (checkout.path / "vllm/model.py").read_text()
    assert "return x * 3 + 1\n" in text and "return x * 30 + 2\n" in text
    assert checkout.status_porcelain() == []
    body = checkout.out("log", "-1", "--format=%B", "HEAD~1")
    assert "Patchq-Id: one" in body and "Patchq-Status: promoted" in body


def test_offset_when_upstream_inserted_lines_above(lab, pyupstream):
    up, base = pyupstream
    diff = up.diff(base, [("vllm/model.py", "return x * 20\n", "return x * 20 - 1\n")])
    up.edit("vllm/model.py", "def layer_0(x):", "import math\n\n\ndef layer_0(x):")
    pin = up.commit("import math")
    lab.upstream("vllm", up, pin)
    lab.patch("vllm", "p", diff)
    lab.stack("s", ["vllm"])
    report = apply_stack(lab.load(), "s", check_only=True)
    outcome = report.upstreams[0].outcomes[0]
    assert outcome.kind == OutcomeKind.OFFSET
    assert "(+3 lines)" in outcome.offsets[0]


def test_threeway_when_neighbouring_line_changed(lab, pyupstream):
    up, base = pyupstream
    diff = up.diff(base, [("vllm/model.py", "def layer_10(x):\n    return x * 10\n",
                           "def layer_10(x):\n    return x * 10 + 7\n")])
    up.edit("vllm/model.py", "def layer_11(x):", "# eleven\ndef layer_11(x):")
    pin = up.commit("comment near layer 10")
    lab.upstream("vllm", up, pin)
    lab.patch("vllm", "p", diff)
    lab.stack("s", ["vllm"])
    report = apply_stack(lab.load(), "s")
    assert kinds(report) == {"p": OutcomeKind.THREEWAY}
    text = (Repo(report.upstreams[0].checkout).path / "vllm/model.py").read_text()
    assert "return x * 10 + 7\n\n\n# eleven\n" in text


def test_conflict_names_file_and_hunk_and_stops(lab, pyupstream):
    up, base = pyupstream
    diff = up.diff(base, [("vllm/model.py", "return x * 5\n", "return x * 5 + 5\n"),
                          ("vllm/model.py", "return x * 25\n", "return x * 25 + 5\n")])
    after = up.diff(base, [("README.md", "demo\n", "demo!\n")])
    up.edit("vllm/model.py", "return x * 25\n", "return x * 25.0\n")
    pin = up.commit("upstream edits layer 25")
    lab.upstream("vllm", up, pin)
    lab.patch("vllm", "bad", diff)
    lab.patch("vllm", "later", after)
    lab.stack("s", ["vllm"])
    report = apply_stack(lab.load(), "s")
    outcomes = report.upstreams[0].outcomes
    assert [o.kind for o in outcomes] == [OutcomeKind.CONFLICT, OutcomeKind.NOT_REACHED]
    assert outcomes[0].files == ("vllm/model.py",)
    assert [(h.file, h.hunk) for h in outcomes[0].hunks] == [("vllm/model.py", 2)]
    assert not report.ok
    checkout = Repo(report.upstreams[0].checkout)
    assert checkout.head() == pin           # left at the last good patch: here, the pin itself
    assert checkout.status_porcelain() == []
    assert any("git am -3" in step for step in report.next_steps)


def test_keep_going_reports_every_patch(lab, pyupstream):
    up, base = pyupstream
    lab.upstream("vllm", up, base)
    lab.patch("vllm", "bad", up.diff(base, [("README.md", "demo\n", "x\n")]).replace(b"-demo", b"-nope"))
    lab.patch("vllm", "good", up.diff(base, [("vllm/model.py", "return x * 1\n", "return x\n")]))
    lab.stack("s", ["vllm"])
    report = apply_stack(lab.load(), "s", keep_going=True)
    assert kinds(report) == {"bad": OutcomeKind.CONFLICT, "good": OutcomeKind.CLEAN}


def test_already_upstream_and_empty(lab, pyupstream):
    up, base = pyupstream
    diff = up.diff(base, [("vllm/model.py", "return x * 7\n", "return x * 7 + 1\n")])
    up.edit("vllm/model.py", "return x * 7\n", "return x * 7 + 1\n")
    pin = up.commit("upstream took the fix")
    lab.upstream("vllm", up, pin)
    lab.patch("vllm", "taken", diff)
    lab.stack("s", ["vllm"])
    report = apply_stack(lab.load(), "s")
    assert kinds(report) == {"taken": OutcomeKind.ALREADY_UPSTREAM}
    assert report.ok
    assert any("already upstream" in s for s in report.next_steps)


def test_fuzz_when_only_reduced_context_matches(lab, make_upstream):
    up = make_upstream("vllm")
    up.write("f.txt", "".join(f"line {i}\n" for i in range(30)))
    base = up.commit("base")
    diff = up.diff(base, [("f.txt", "line 15\n", "line 15 changed\n")])
    # change two context lines on each side without any blob the 3-way merge could use
    up.edit("f.txt", "line 13\n", "line 13 upstream\n").edit("f.txt", "line 17\n", "line 17 upstream\n")
    pin = up.commit("context edits")
    stripped = b"\n".join(ln for ln in diff.split(b"\n") if not ln.startswith(b"index ")) + b"\n"
    lab.upstream("vllm", up, pin)
    lab.patch("vllm", "fz", stripped)
    lab.stack("s", ["vllm"])
    report = apply_stack(lab.load(), "s")
    assert kinds(report) == {"fz": OutcomeKind.FUZZ}
    assert "line 15 changed" in (Repo(report.upstreams[0].checkout).path / "f.txt").read_text()


def test_same_queue_gives_same_commits_and_verify_passes(lab, pyupstream, tmp_path):
    up, base = pyupstream
    lab.upstream("vllm", up, base)
    lab.patch("vllm", "one", up.diff(base, [("vllm/model.py", "return x * 3\n", "return x * 3 + 1\n")]))
    lab.stack("s", ["vllm"])
    ws = lab.load()
    first = apply_stack(ws, "s", into=tmp_path / "a")
    second = apply_stack(ws, "s", into=tmp_path / "b")
    assert first.upstreams[0].head == second.upstreams[0].head
    trees = lock_stack(ws, "s")
    assert trees["vllm"] == first.upstreams[0].tree
    lab.stacks["s"]["trees"] = trees
    verified = apply_stack(lab.load(), "s", verify=True)
    assert verified.upstreams[0].verified is True


def test_verify_fails_when_tree_differs(lab, pyupstream):
    up, base = pyupstream
    lab.upstream("vllm", up, base)
    lab.patch("vllm", "one", up.diff(base, [("vllm/model.py", "return x * 3\n", "return x * 3 + 1\n")]))
    lab.stack("s", ["vllm"], trees={"vllm": "0" * 40})
    report = apply_stack(lab.load(), "s", verify=True)
    assert report.upstreams[0].verified is False
    assert not report.ok


def test_with_adds_a_diagnostic_on_top(lab, pyupstream):
    up, base = pyupstream
    lab.upstream("vllm", up, base)
    lab.patch("vllm", "one", up.diff(base, [("vllm/model.py", "return x * 3\n", "return x * 3 + 1\n")]))
    lab.patch("vllm", "probe", up.diff(base, [("README.md", "demo\n", "demo probe\n")]), status=Status.DIAGNOSTIC)
    lab.stack("s", ["vllm"])
    ws = lab.load()
    assert list(kinds(apply_stack(ws, "s", check_only=True))) == ["one"]
    assert list(kinds(apply_stack(ws, "s", check_only=True, extra=("diagnostic:probe",)))) == ["one", "probe"]


def test_into_existing_folder_is_refused(lab, pyupstream, tmp_path):
    up, base = pyupstream
    lab.upstream("vllm", up, base)
    lab.stack("s", ["vllm"])
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(BadInput, match="not empty"):
        apply_stack(lab.load(), "s", into=target)
    assert (target / "keep.txt").read_text() == "mine"


def test_dirty_patchq_checkout_is_refused_then_forced(lab, pyupstream):
    up, base = pyupstream
    lab.upstream("vllm", up, base)
    lab.patch("vllm", "one", up.diff(base, [("vllm/model.py", "return x * 3\n", "return x * 3 + 1\n")]))
    lab.stack("s", ["vllm"])
    ws = lab.load()
    report = apply_stack(ws, "s")
    checkout = Repo(report.upstreams[0].checkout)
    (checkout.path / "README.md").write_text("my edit\n")
    with pytest.raises(BadInput, match="uncommitted changes"):
        apply_stack(ws, "s")
    assert (checkout.path / "README.md").read_text() == "my edit\n"
    apply_stack(ws, "s", force=True)
    assert (checkout.path / "README.md").read_text() == "demo\n"


def test_patch_writing_through_a_symlink_at_the_base_is_refused(lab, make_upstream):
    up = make_upstream("vllm")
    up.write("real/a.txt", "a\n")
    (up.path / "link").symlink_to("/tmp")
    base = up.commit("with a symlink")
    lab.upstream("vllm", up, base)
    diff = (b"diff --git a/link/evil.txt b/link/evil.txt\nnew file mode 100644\n--- /dev/null\n"
            b"+++ b/link/evil.txt\n@@ -0,0 +1 @@\n+pwned\n")
    lab.patch("vllm", "evil", diff)
    lab.stack("s", ["vllm"])
    with pytest.raises(BadInput, match="symlink"):
        apply_stack(lab.load(), "s")
