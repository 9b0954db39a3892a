"""Rebase across release archives and outcomes a user can trust (issue 16): a chain of generated releases as real
.tar.gz files (no network), renames followed, deletions stopped, no fuzz after a failed merge, left-out patches
decided, range-diff by Patchq-Id; and a git upstream compared with a real `git rebase` of the same commits."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import re
import tarfile
import threading
from pathlib import Path

import pytest

from patchq.git import Repo, run_git
from patchq.model import OutcomeKind, Status
from patchq.rebase import StepKind, continue_rebase, skip_patch, start_rebase
from patchq.workspace import load_workspace

FAKE_CUT = [f"{n:x}" * 40 for n in range(1, 7)]        # the commit each release says it was cut from


def funcs(prefix: str, count: int) -> str:
    return "".join(f"def {prefix}_{i}(x):\n    return x + {i}\n\n\n" for i in range(count))


def release_trees() -> list[dict[str, str]]:
    """Six releases: 1 the base; 2 takes the back-port and edits next to the 3-way patch; 3 renames moved.py;
    4 deletes gone.py; 5 changes the line the conflicting patch changes; 6 only churn (for the index lookup)."""
    r1 = {"pkg/backport.py": funcs("bp", 20), "pkg/merge.py": funcs("mg", 20), "pkg/moved.py": funcs("mv", 20),
          "pkg/gone.py": funcs("gn", 20), "pkg/conflict.py": funcs("cf", 20), "README": "pkg\n"}
    r2 = dict(r1)
    r2["pkg/backport.py"] = r1["pkg/backport.py"].replace("return x + 5\n", "return x + 5  # fixed\n")
    r2["pkg/merge.py"] = r1["pkg/merge.py"].replace("def mg_8(x):", "def mg_8(x):  # upstream")
    r3 = dict(r2)
    r3["pkg/cpu/spec.py"] = r3.pop("pkg/moved.py").replace("def mv_19(x):", "def mv_19(x):  # moved")
    r4 = dict(r3)
    del r4["pkg/gone.py"]
    r5 = dict(r4)
    r5["pkg/conflict.py"] = r4["pkg/conflict.py"].replace("return x + 10\n", "return x + 10.0\n")
    r6 = dict(r5, README="pkg 6\n")
    out = []
    for number, tree in enumerate((r1, r2, r3, r4, r5, r6), 1):
        tree = dict(tree)
        tree["pkg/_version.py"] = (f"__version__ = version = '{number}.0'\n"
                                   f"__commit_id__ = commit_id = 'g{FAKE_CUT[number - 1][:9]}'\n")
        out.append(tree)
    return out


def make_sdist(folder: Path, version: str, files: dict[str, str]) -> tuple[Path, str]:
    """A real .tar.gz sdist with one top folder, members sorted, fixed mtimes."""
    path = folder / f"pkg-{version}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for rel in sorted(files):
            data = files[rel].encode()
            info = tarfile.TarInfo(f"pkg-{version}/{rel}")
            info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
            tar.addfile(info, io.BytesIO(data))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def releases_yaml(entries: list[tuple[str, Path, str, str]]) -> str:
    out = "    releases:\n"
    for version, path, sha, commit in entries:
        out += f"      - version: '{version}'\n        url: {path}\n        sha256: {sha}\n"
        if commit:
            out += f"        commit: {commit}\n"
    return out


def add_releases(root: Path, upstream: str, text: str) -> None:
    lock = root / "pins.lock"
    data = lock.read_text()
    anchor = re.search(rf"^  {upstream}:\n(?:    .*\n)*", data, re.M)
    assert anchor
    lock.write_text(data[:anchor.end()] + text + data[anchor.end():])


@pytest.fixture
def chain(lab, make_upstream, tmp_path):
    """A workspace whose upstream's git hosting does not exist; five releases as local .tar.gz files."""
    trees = release_trees()
    dev = make_upstream("dev")                    # only to make the lab's real diffs against release 1
    for rel, text in trees[0].items():
        dev.write(rel, text)
    base = dev.commit("release 1")
    archives = tmp_path / "archives"
    archives.mkdir()
    made = [make_sdist(archives, f"{n}.0", tree) for n, tree in enumerate(trees, 1)]
    from conftest import Upstream
    nowhere = Upstream.__new__(Upstream)
    nowhere.path = tmp_path / "hosting-out-of-reach"
    lab.upstream("pkg", nowhere, FAKE_CUT[0])
    lab.patch("pkg", "backport", dev.diff(base, [("pkg/backport.py", "return x + 5\n", "return x + 5  # fixed\n")]))
    lab.patch("pkg", "threeway", dev.diff(base, [("pkg/merge.py", "return x + 7\n", "return x + 7 + 1\n")]))
    lab.patch("pkg", "renamed", dev.diff(base, [("pkg/moved.py", "return x + 3\n", "return x + 3 + 3\n")]))
    lab.patch("pkg", "deleted", dev.diff(base, [("pkg/gone.py", "return x + 4\n", "return x + 4 + 4\n"),
                                                ("pkg/conflict.py", "return x + 2\n", "return x + 2 + 2\n")]))
    lab.patch("pkg", "conflicting", dev.diff(base, [("pkg/conflict.py", "return x + 10\n", "return x + 10 + 1\n")]))
    lab.stack("s", ["pkg"])
    root = lab.save()
    add_releases(root, "pkg", releases_yaml([(f"{n}.0", p, sha, FAKE_CUT[n - 1])
                                              for n, (p, sha) in enumerate(made[:5], 1)]))
    return root, made


def git_apply_3way_conflicts(root: Path, patch_file: Path, tree: dict[str, str]) -> bool:
    """Whether `git apply -3` of the patch conflicts on a tree (the check the issue compares fuzz against)."""
    work = root.parent / "apply3"
    repo = Repo.init(work)
    for rel, text in tree.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text(text)
    repo.run("add", "-A")
    repo.run("commit", "-qm", "r")
    dev_objects = root.parent / "src" / "dev" / ".git" / "objects"
    (work / ".git/objects/info/alternates").write_text(f"{dev_objects}\n")
    res = repo.run("apply", "-3", str(patch_file), check=False)
    return not res.ok and bool(repo.unmerged_paths())


def test_release_chain_rebase_follows_renames_stops_deletions_and_records_decisions(chain, patchq):
    root, made = chain
    report = start_rebase(root, "pkg@5.0", "s")
    assert report.granularity == "release" and report.commits_between == 4
    assert any("release-level" in n for n in report.notes)
    steps = {s.patch_id: s for s in report.steps}
    assert steps["backport"].kind == StepKind.ALREADY_UPSTREAM
    assert steps["threeway"].kind == StepKind.APPLIED and steps["threeway"].outcome.kind == OutcomeKind.THREEWAY
    assert steps["renamed"].kind == StepKind.APPLIED
    assert len(steps["renamed"].followed) == 1
    assert re.fullmatch(r"followed rename pkg/moved\.py -> pkg/cpu/spec\.py \(9\d% similar, in [0-9a-f]{12} "
                        r"release 3\.0 of pkg\)", steps["renamed"].followed[0])
    # the deletion stops as a conflict naming the release, never `empty`; the other file of that patch is merged
    assert report.state == "stopped" and report.conflict.patch_id == "deleted"
    assert steps["deleted"].outcome.kind == OutcomeKind.CONFLICT
    assert "deleted upstream in" in steps["deleted"].outcome.detail and "release 4.0" in steps["deleted"].outcome.detail
    stop = report.conflict
    assert stop.whole and stop.whole[0].startswith("pkg/gone.py: deleted upstream in ")
    assert "pkg/gone.py" in stop.todo
    worktree = Path(stop.worktree)
    assert (worktree / "pkg/gone.py.rej").is_file()
    assert "return x + 2 + 2" in (worktree / "pkg/conflict.py").read_text()       # per-file: merged anyway
    assert any("pkg/gone.py" in line and "deleted upstream" in line for line in report.next_steps)
    # bisection names the release that broke each patch
    breaking = {b.patch_id: b for b in report.breaking}
    subject = {b.patch_id: b.subject for b in report.breaking}
    assert subject["backport"].startswith("release 2.0 of pkg")
    assert breaking["backport"].kind.value == "already-upstream"
    assert subject["threeway"].startswith("release 2.0 of pkg")
    assert subject["deleted"].startswith("release 4.0 of pkg") and breaking["deleted"].kind == OutcomeKind.CONFLICT
    assert subject["conflicting"].startswith("release 5.0 of pkg")
    assert "renamed" not in breaking
    # the deleted file's change is dropped deliberately: skip it; the real conflict stops with markers, not fuzz
    second = skip_patch(root)
    assert second.state == "stopped" and second.conflict.patch_id == "conflicting"
    conflicted = (worktree / "pkg/conflict.py").read_text()
    assert "<<<<<<<" in conflicted and second.conflict.files == ("pkg/conflict.py",)
    assert {s.patch_id: s.outcome.kind for s in second.steps}["conflicting"] == OutcomeKind.CONFLICT
    assert git_apply_3way_conflicts(root, root / "queues/pkg/0005-conflicting.patch", release_trees()[4])
    (worktree / "pkg/conflict.py").write_text(re.sub(r"<<<<<<<[^\n]*\n.*?>>>>>>>[^\n]*\n",
                                                     "    return x + 10.0 + 1\n", conflicted, flags=re.S))
    Repo(worktree).run("add", "pkg/conflict.py")
    done = continue_rebase(root)
    assert done.state == "done" and done.verified is True
    assert not [s for s in done.steps if s.outcome.kind == OutcomeKind.FUZZ]
    ws = load_workspace(root)
    assert ws.upstream("pkg").pin == FAKE_CUT[4]                     # the commit release 5.0 was cut from
    entries = {e.id: e for e in ws.queue("pkg").entries}
    for pid, why in (("backport", "already upstream"), ("deleted", "skipped")):
        assert why in entries[pid].notes[-1] and re.match(r"\d{4}-\d{2}-\d{2}: ", entries[pid].notes[-1])
    assert set(ws.stack("s").exclude) == {"pkg:backport", "pkg:deleted"}
    assert "b/pkg/cpu/spec.py" in (root / "queues/pkg/0003-renamed.patch").read_text()
    changes = {c.patch_id: c.change for c in done.queue_changes}
    assert changes["conflicting"] == "changed" and changes["renamed"] == "changed"
    assert changes["backport"] == "dropped" and changes["threeway"] == "changed"
    text = (root / done.range_diff_file).read_text()
    assert re.search(r"^conflicting: [0-9a-f]{12} ! [0-9a-f]{12}$", text, re.M) and "usage:" not in text
    verify = patchq("apply", "s", "--verify", cwd=root)
    assert verify.code == 0, verify.out + verify.err
    check = patchq("check", cwd=root)                    # releases: and exclude: are part of a valid workspace
    assert check.code == 0, check.out + check.err


def test_archive_left_out_marks_them_negative_archived_in_one_step(chain, patchq):
    root, _ = chain
    res = patchq("rebase", "--onto", "pkg@3.0", "s", "--archive-left-out", cwd=root)
    assert res.code == 0, res.out + res.err
    assert "release-level" in res.out and "which upstream release broke it" in res.out
    ws = load_workspace(root)
    backport = ws.queue("pkg").get("backport")
    assert backport.status == Status.NEGATIVE_ARCHIVED and "archived with --archive-left-out" in backport.notes[-1]
    assert ws.stack("s").exclude == ()
    assert "Patchq-Status: negative-archived" in (root / "queues/pkg/0001-backport.patch").read_text()
    verify = patchq("apply", "s", "--verify", cwd=root)
    assert verify.code == 0, verify.out + verify.err


def test_stale_archive_is_refused_against_the_pin(lab, tmp_path, patchq):
    trees = release_trees()
    path, sha = make_sdist(tmp_path, "2.0", trees[1])           # records FAKE_CUT[1]; the pin is FAKE_CUT[0]
    from conftest import Upstream
    nowhere = Upstream.__new__(Upstream)
    nowhere.path = tmp_path / "gone"
    lab.upstream("pkg", nowhere, FAKE_CUT[0])
    lab.stack("s", ["pkg"])
    root = lab.save()
    add_releases(root, "pkg", f"    archive:\n      url: {path}\n      sha256: {sha}\n")
    res = patchq("apply", "s", "--check", cwd=root)
    assert res.code == 2 and "stale" in res.err and FAKE_CUT[1][:9] in res.err, res.err
    assert len(res.err.strip().splitlines()) == 1


class _Index(http.server.BaseHTTPRequestHandler):
    files: dict[str, tuple[str, bytes]] = {}

    def do_GET(self) -> None:        # the name http.server calls
        found = self.files.get(self.path)
        if found is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", found[0])
        self.send_header("Content-Length", str(len(found[1])))
        self.end_headers()
        self.wfile.write(found[1])

    def log_message(self, *args) -> None:
        pass


def test_pin_looks_a_release_up_on_a_local_package_index(chain, patchq):
    root, made = chain
    path, sha = made[5]
    listing = {"files": [{"filename": path.name, "url": f"../../files/{path.name}", "hashes": {"sha256": sha}}]}
    _Index.files = {"/simple/pkg/": ("application/vnd.pypi.simple.v1+json", json.dumps(listing).encode()),
                    f"/files/{path.name}": ("application/gzip", path.read_bytes())}
    server = http.server.HTTPServer(("127.0.0.1", 0), _Index)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env = {"PATCHQ_INDEX_URL": f"http://127.0.0.1:{server.server_port}/simple"}
        res = patchq("--json", "pin", "pkg@6.0", cwd=root, env=env)
    finally:
        server.shutdown()
        server.server_close()
    assert res.code == 0, res.out + res.err
    data = json.loads(res.out)["result"]
    assert data["release_added"] is True
    ws = load_workspace(root)
    added = [r for r in ws.upstream("pkg").releases if r.version == "6.0"]
    assert added and added[0].source.sha256 == sha and added[0].source.pypi == "pkg==6.0"
    assert ws.upstream("pkg").pin == data["pin"] and data["pin"] not in FAKE_CUT    # its chain commit
    repo = Repo(next((Path(__import__("os").environ["PATCHQ_CACHE"]) / "mirrors").iterdir()))
    assert repo.subject(data["pin"]).startswith("release 6.0 of pkg")
    assert repo.out("rev-list", "--count", data["pin"]) == "6"                 # one linear history, in order


def test_two_rebases_give_the_same_chain_commits(chain):
    root, _ = chain
    first = start_rebase(root, "pkg@3.0", "s", dry_run=True)
    again = start_rebase(root, "pkg@3.0", "s", dry_run=True)
    assert first.new_base == again.new_base and first.granularity == "release"
    assert [b.commit for b in first.breaking] == [b.commit for b in again.breaking]


# ---- a git upstream with a rename and a deletion, against real `git rebase` -------------------------------------

def test_git_upstream_rename_and_delete_compared_with_git_rebase(lab, make_upstream, tmp_path, patchq):
    up = make_upstream("vllm")
    for name in ("a", "d", "c", "e"):
        up.write(f"vllm/{name}.py", funcs(name, 20))
    base = up.commit("base")
    lab.upstream("vllm", up, base)
    edits = {"p-rename": ("vllm/a.py", "return x + 3\n", "return x + 3 + 3\n"),
             "p-delete": ("vllm/d.py", "return x + 4\n", "return x + 4 + 4\n"),
             "p-conflict": ("vllm/c.py", "return x + 10\n", "return x + 10 + 1\n"),
             "p-clean": ("vllm/e.py", "return x + 6\n", "return x + 6 + 6\n")}
    for pid, edit in edits.items():
        lab.patch("vllm", pid, up.diff(base, [edit]), title=pid)
    lab.stack("s", ["vllm"])
    root = lab.save()
    text = (up.path / "vllm/a.py").read_text().replace("def a_19(x):", "def a_19(x):  # moved")
    (up.path / "vllm/a.py").unlink()
    up.write("vllm/cpu/spec.py", text)
    up.commit("move a.py to cpu/spec.py")
    up.remove("vllm/d.py").commit("delete d.py")
    up.edit("vllm/c.py", "return x + 10\n", "return x + 10.0\n").commit("float c_10")
    tip = up.edit("vllm/e.py", "def e_0(x):", "def e_0(x):  # touched").commit("touch e")
    # git rebase of the same four commits: where does it stop, what does it carry?
    work = tmp_path / "git-work"
    run_git(["clone", "-q", str(up.path), str(work)])
    git = Repo(work)
    git.run("checkout", "-q", "-B", "queue", base)
    for pid in edits:
        git.run("am", "-q", "--keep-cr", str(root / "queues/vllm" / next(
            f.name for f in (root / "queues/vllm").iterdir() if f.name.endswith(f"-{pid}.patch"))))
    git_stops = []
    res = git.run("rebase", tip, check=False, env={"GIT_EDITOR": "true"})
    while not res.ok:
        git_stops.append(git.subject("REBASE_HEAD"))
        res = git.run("rebase", "--skip", check=False, env={"GIT_EDITOR": "true"})
    git_carried = {git.subject(c) for c in git.rev_list(f"{tip}..HEAD")}
    # patchq on the same commits, skipping where it stops (as git rebase --skip did)
    report = start_rebase(root, "vllm@latest", "s")
    patchq_stops = []
    while report.state == "stopped":
        patchq_stops.append(report.conflict.patch_id)
        report = skip_patch(root)
    carried = {s.patch_id for s in report.steps if s.kind.in_new_stack}
    assert set(git_stops) <= set(patchq_stops), (git_stops, patchq_stops)
    assert git_carried <= carried, (git_carried, carried)
    assert set(git_stops) == {"p-delete", "p-conflict"} and git_carried == {"p-rename", "p-clean"}
    # both carried the renamed file's change to the new path
    assert "return x + 3 + 3" in git.read_blob("HEAD", "vllm/cpu/spec.py").decode()
    assert "+++ b/vllm/cpu/spec.py" in (root / "queues/vllm/0001-p-rename.patch").read_text()
    verify = patchq("apply", "s", "--verify", cwd=root)
    assert verify.code == 0, verify.out + verify.err


def test_an_archive_backed_pin_rebases_onto_a_release(lab, make_upstream, tmp_path, patchq):
    """Finding 1: the pin's `archive:` stand-in (what `apply` uses) is where the rebase starts, not the mirror."""
    trees = release_trees()
    dev = make_upstream("dev")
    for rel, text in trees[0].items():
        dev.write(rel, text)
    base = dev.commit("release 1")
    made = [make_sdist(tmp_path, f"{n}.0", tree) for n, tree in enumerate(trees[:3], 1)]
    from conftest import Upstream
    nowhere = Upstream.__new__(Upstream)
    nowhere.path = tmp_path / "hosting-out-of-reach"
    lab.upstream("pkg", nowhere, FAKE_CUT[0])
    lab.patch("pkg", "threeway", dev.diff(base, [("pkg/merge.py", "return x + 7\n", "return x + 7 + 1\n")]))
    lab.stack("s", ["pkg"])
    root = lab.save()
    add_releases(root, "pkg", f"    archive:\n      url: {made[0][0]}\n      sha256: {made[0][1]}\n"
                 + releases_yaml([(f"{n}.0", p, sha, FAKE_CUT[n - 1] if n > 1 else "")
                                  for n, (p, sha) in enumerate(made, 1)]))
    assert patchq("apply", "s", "--check", cwd=root).code == 0
    res = patchq("rebase", "--onto", "pkg@3.0", "s", cwd=root)
    assert res.code == 0, res.out + res.err
    assert "is not in" not in res.err and "is release 1.0 of the chain" in res.out
    assert load_workspace(root).upstream("pkg").pin == FAKE_CUT[2]
    assert patchq("apply", "s", "--verify", cwd=root).code == 0
