"""rebase: generated upstream histories (tens to hundreds of commits), real conflicts resolved in the real work tree,
recorded resolutions replayed, skip, abort to the byte, breaking-commit bisection, and kill -9 at every named step."""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from conftest import result_of
from patchq.errors import NeedsYou
from patchq.git import Repo
from patchq.model import OutcomeKind, Status
from patchq.patchfile import read_patch_file
from patchq.rebase import (
    CRASH_ENV,
    RebasePaths,
    StepKind,
    continue_rebase,
    range_diff_path,
    skip_patch,
    start_rebase,
    workspace_rr_cache,
)
from patchq.workspace import load_workspace

MODEL = "".join(f"def layer_{i}(x):\n    return x * {i}\n\n\n" for i in range(60))


class History:
    """A bare upstream whose commits are written by `git fast-import`: hundreds of commits in a few milliseconds.

    Every commit's files are also kept here, so a patch against any commit is made as a real side commit and
    `git diff --full-index` of it (the same kind of diff a lab would record)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.repo = Repo.init(path, bare=True)
        self.files: dict[str, str] = {}
        self.log: list[str] = []                 # commit ids of main, oldest first
        self.snap: dict[str, dict[str, str]] = {}
        self.pending: list[tuple[str, dict[str, str | None], dict[str, str]]] = []
        self.tick = 0
        self.scratch = 0

    @property
    def tip(self) -> str:
        return self.log[-1]

    def add(self, message: str, changes: dict[str, str | None]) -> int:
        """Queue a commit; returns its position in `log` once flushed."""
        for path, text in changes.items():
            if text is None:
                self.files.pop(path, None)
            else:
                self.files[path] = text
        self.pending.append((message, changes, dict(self.files)))
        return len(self.log) + len(self.pending) - 1

    def edit(self, message: str, edits: list[tuple[str, str, str]]) -> int:
        changes: dict[str, str | None] = {}
        for path, old, new in edits:
            text = changes.get(path) or self.files[path]
            assert old in text, f"{old!r} not in {path}"
            changes[path] = text.replace(old, new, 1)
        return self.add(message, changes)

    def churn(self, count: int, label: str = "churn") -> None:
        for _ in range(count):
            k = len(self.log) + len(self.pending)
            name = f"churn/f{k % 8}.txt"
            self.add(f"{label} {k}", {name: self.files.get(name, "") + f"line {k}\n"})

    def flush(self) -> list[str]:
        shas = self._import([(m, c) for m, c, _ in self.pending], "refs/heads/main", self.log[-1] if self.log else None)
        for sha, (_, _, files) in zip(shas, self.pending):
            self.snap[sha] = files
        self.log.extend(shas)
        self.pending = []
        return shas

    def tag(self, name: str, sha: str) -> None:
        self.repo.run("update-ref", f"refs/tags/{name}", sha)

    def diff(self, base: str, edits: list[tuple[str, str, str]]) -> bytes:
        """A real git diff of `edits` made on `base`; old '' creates the file."""
        return self.repo.run("diff", "--full-index", "--binary", base, self.side(base, edits)).stdout

    def side(self, base: str, edits: list[tuple[str, str, str]]) -> str:
        """A commit off the main line: `edits` made on `base`."""
        files = dict(self.snap[base])
        changes: dict[str, str | None] = {}
        for path, old, new in edits:
            if old == "" and path not in files:
                files[path] = new
            else:
                assert old in files[path], f"{old!r} not in {path} at {base[:8]}"
                files[path] = files[path].replace(old, new, 1)
            changes[path] = files[path]
        self.scratch += 1
        side = self._import([("side", changes)], f"refs/scratch/{self.scratch}", base)[0]
        self.snap[side] = files
        return side

    def _import(self, commits, ref: str, parent: str | None) -> list[str]:
        out = []
        for mark, (message, changes) in enumerate(commits, 1):
            self.tick += 1
            when = f"{1_700_000_000 + self.tick * 60} +0000"
            msg = message.encode()
            out.append(f"commit {ref}\nmark :{mark}\nauthor Up <up@example.com> {when}\n"
                       f"committer Up <up@example.com> {when}\ndata {len(msg)}\n".encode() + msg + b"\n")
            if mark == 1 and parent:
                out.append(f"from {parent}\n".encode())
            for path, text in changes.items():
                if text is None:
                    out.append(f"D {path}\n".encode())
                else:
                    data = text.encode()
                    out.append(f"M 100644 inline {path}\ndata {len(data)}\n".encode() + data + b"\n")
            out.append(b"\n")
        with tempfile.TemporaryDirectory() as tmp:
            marks = os.path.join(tmp, "marks")
            self.repo.run("fast-import", "--quiet", f"--export-marks={marks}", input=b"".join(out))
            ids = dict(line.split() for line in open(marks).read().splitlines())
        return [ids[f":{n}"] for n in range(1, len(commits) + 1)]


@pytest.fixture
def cli(capsys, monkeypatch):
    """The real CLI entry point in this process (no interpreter start-up): exit code, stdout, stderr."""
    from conftest import CliResult
    from patchq.cli import main
    monkeypatch.setenv("COLUMNS", "200")

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exc:
            main(list(args))
        out, err = capsys.readouterr()
        return CliResult(exc.value.code, out, err)
    return run


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every workspace file (patchq's local .patchq/ state excluded)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] == ".patchq" or path.is_dir():
            continue
        out[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def folders(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_dir() and ".patchq" not in p.parts}


def queue_lab(lab, tmp_path, *, commits: int = 60, break_at: int | None = 30, offset_at: int = 10) -> History:
    """Three patches against a 60-function module; upstream inserts lines at `offset_at` and, at `break_at`,
    changes the line the second patch edits (a real conflict)."""
    h = History(tmp_path / "src" / "vllm")
    h.add("initial", {"vllm/model.py": MODEL, "README.md": "demo\n"})
    base = h.flush()[0]
    lab.upstream("vllm", h, base)
    lab.patch("vllm", "one", h.diff(base, [("vllm/model.py", "return x * 3\n", "return x * 3 + 1\n")]),
              flags=("VLLM_ONE",), result="+2 tok/s")
    lab.patch("vllm", "bad", h.diff(base, [("vllm/model.py", "return x * 25\n", "return x * 25 + 5\n")]))
    lab.patch("vllm", "three", h.diff(base, [("README.md", "demo\n", "demo three\n")]))
    lab.stack("s", ["vllm"])
    for k in range(1, commits + 1):
        if k == break_at:
            h.edit(f"upstream {k}: float layer 25", [("vllm/model.py", "return x * 25\n", "return x * 25.0\n")])
        elif k == offset_at:
            h.edit(f"upstream {k}: import math", [("vllm/model.py", "def layer_0", "import math\n\n\ndef layer_0")])
        else:
            h.churn(1)
    h.flush()
    return h


def resolve_layer_25(worktree: Path) -> None:
    """What a person does: replace the conflict block with both changes, then stage it."""
    target = worktree / "vllm/model.py"
    text = target.read_text()
    assert "<<<<<<<" in text and ">>>>>>>" in text
    text = re.sub(r"<<<<<<<[^\n]*\n.*?>>>>>>>[^\n]*\n", "    return x * 25.0 + 5\n", text, flags=re.S)
    target.write_text(text)
    Repo(worktree).run("add", "vllm/model.py")


def steps_by_id(report):
    return {s.patch_id: s.kind for s in report.steps}


# ---- clean rebase ----------------------------------------------------------------------------------------------------

def test_clean_rebase_regenerates_files_keeps_trailers_and_updates_pins(lab, tmp_path):
    h = queue_lab(lab, tmp_path, break_at=None)
    root = lab.save()
    lock = root / "pins.lock"
    lock.write_text(lock.read_text().replace("  vllm:\n", "  vllm:  # the lab's vLLM fork point\n", 1))
    before = {p.name: p.read_bytes() for p in (root / "queues/vllm").glob("*.patch")}
    report = start_rebase(root, "vllm@latest")
    assert report.state == "done" and report.direction == "forward" and report.commits_between == 60
    assert steps_by_id(report) == {"one": StepKind.APPLIED, "bad": StepKind.APPLIED, "three": StepKind.APPLIED}
    assert {s.patch_id: s.outcome.kind for s in report.steps}["one"] == OutcomeKind.OFFSET
    for name, old in before.items():
        new = (root / "queues/vllm" / name).read_bytes()
        old_patch, new_patch = read_patch_file(old, source=name), read_patch_file(new, source=name)
        assert new_patch.head == old_patch.head and new_patch.tail == old_patch.tail   # header + trailers as bytes
        assert "model.py" not in name or new_patch.diff != old_patch.diff
    old_one = read_patch_file(before["0001-one.patch"], source="one").files[0].hunks[0]
    new_one = read_patch_file((root / "queues/vllm/0001-one.patch").read_bytes(), source="one").files[0].hunks[0]
    assert new_one.old_start == old_one.old_start + 3 and new_one.lines == old_one.lines
    ws = load_workspace(root)
    assert ws.upstream("vllm").pin == h.tip
    assert "# the lab's vLLM fork point" in lock.read_text()
    assert ws.stack("s").trees["vllm"] == report.tree and report.verified is True
    assert Repo(h.path).tree_of(h.tip) != report.tree
    assert [c.change for c in report.queue_changes] == ["unchanged"] * 3
    kept = root / range_diff_path("vllm", report.old_pin, report.new_pin)
    assert kept.is_file() and re.search(r"^one: [0-9a-f]{12} = [0-9a-f]{12}$", kept.read_text(), re.M)
    assert not RebasePaths(root).dir.exists()
    from patchq.apply import apply_stack
    assert apply_stack(ws, "s", verify=True, check_only=False).upstreams[0].verified is True


# ---- conflicts, resolution, rerere -----------------------------------------------------------------------------------

def test_conflict_stops_with_markers_then_continue_finishes(lab, tmp_path, patchq):
    h = queue_lab(lab, tmp_path, break_at=30)
    root = lab.save()
    res = patchq("-w", str(root), "rebase", "--onto", "vllm@main", "--json")
    assert res.code == 1, res.err
    report = result_of(res.out)
    paths = RebasePaths(root)
    assert report["state"] == "stopped" and report["conflict"]["worktree"] == str(paths.worktree)
    assert report["conflict"]["files"] == ["vllm/model.py"]
    wt = Repo(paths.worktree)
    assert wt.unmerged_paths() == ["vllm/model.py"]
    assert "<<<<<<< ours\n    return x * 25.0\n=======\n    return x * 25 + 5\n>>>>>>> theirs" in (
        paths.worktree / "vllm/model.py").read_text()
    assert wt.out("rev-list", "--count", f"{h.tip}..HEAD") == "1"          # the last good rebased commit: 'one'
    assert (root / "queues/vllm/0002-bad.patch").read_bytes() == (lab.root / "queues/vllm/0002-bad.patch").read_bytes()
    # the breaking commit is exactly the one that changed layer 25, found within the promised checks
    found = next(b for b in report["breaking"] if b["patch_id"] == "bad")
    assert found["commit"] == h.log[30] and found["subject"] == "upstream 30: float layer 25"
    assert found["checks"] <= math.ceil(math.log2(60)) + 1
    resolve_layer_25(paths.worktree)
    done = patchq("-w", str(root), "rebase", "--continue")
    assert done.code == 0, done.err + done.out
    assert "resolved" in done.out and "upstream 30: float layer 25" in done.out
    text = (root / "queues/vllm/0002-bad.patch").read_text()
    assert "+    return x * 25.0 + 5\n" in text and "-    return x * 25.0\n" in text
    ws = load_workspace(root)
    assert ws.upstream("vllm").pin == h.tip
    rr = root / workspace_rr_cache("vllm")
    assert any((d / "postimage").is_file() for d in rr.iterdir())
    assert not paths.dir.exists()


def test_same_conflict_is_resolved_by_rerere_the_second_time(lab, tmp_path):
    queue_lab(lab, tmp_path, break_at=30)
    first = lab.save()
    second = tmp_path / "second"
    shutil.copytree(first, second)
    report = start_rebase(first, "vllm@latest")
    assert report.state == "stopped" and report.conflict.patch_id == "bad"
    resolve_layer_25(RebasePaths(first).worktree)
    done = continue_rebase(first)
    assert steps_by_id(done)["bad"] == StepKind.RESOLVED
    # another machine: the committed rr-cache arrives with the queue, the pins are still the old ones
    shutil.copytree(first / workspace_rr_cache("vllm"), second / workspace_rr_cache("vllm"))
    again = start_rebase(second, "vllm@latest")
    assert again.state == "done", again.conflict
    assert steps_by_id(again)["bad"] == StepKind.RERERE
    for name in ("0001-one.patch", "0002-bad.patch", "0003-three.patch", "pins.lock"):
        folder = "" if name == "pins.lock" else "queues/vllm/"
        assert (second / folder / name).read_bytes() == (first / folder / name).read_bytes()


def test_skip_one_conflict_then_resolve_the_next_in_the_same_work_tree(lab, tmp_path):
    h = queue_lab(lab, tmp_path, break_at=30)
    lab.patch("vllm", "bad2", h.diff(h.log[0], [("vllm/model.py", "return x * 45\n", "return x * 45 + 2\n")]))
    h.edit("upstream: layer 45 grows", [("vllm/model.py", "return x * 45\n", "return x * (45 + 0)\n")])
    h.flush()
    root = lab.save()
    old_bad = (root / "queues/vllm/0002-bad.patch").read_bytes()
    series = (root / "queues/vllm/series.yaml").read_bytes()
    assert start_rebase(root, "vllm@latest").conflict.patch_id == "bad"
    second = skip_patch(root)
    assert second.state == "stopped" and second.conflict.patch_id == "bad2"
    worktree = RebasePaths(root).worktree
    text = (worktree / "vllm/model.py").read_text()
    assert "return x * 25.0\n" in text and "return x * 25 + 5" not in text      # reset: the skipped patch is gone
    (worktree / "vllm/model.py").write_text(re.sub(r"<<<<<<<[^\n]*\n.*?>>>>>>>[^\n]*\n",
                                                   "    return x * (45 + 0) + 2\n", text, flags=re.S))
    Repo(worktree).run("add", "-A")
    done = continue_rebase(root)
    assert done.state == "done"
    assert steps_by_id(done) == {"one": StepKind.APPLIED, "bad": StepKind.SKIPPED, "three": StepKind.APPLIED,
                                 "bad2": StepKind.RESOLVED}
    kept = read_patch_file((root / "queues/vllm/0002-bad.patch").read_bytes(), source="bad")
    assert kept.diff == read_patch_file(old_bad, source="bad").diff       # kept in the queue, its change untouched
    assert (root / "queues/vllm/series.yaml").read_bytes() != series
    ws = load_workspace(root)
    bad = ws.queue("vllm").get("bad")
    assert bad.status == Status.PROMOTED and "skipped during the rebase" in bad.notes[-1]
    assert re.match(r"\d{4}-\d{2}-\d{2}: rebase onto vllm@latest", bad.notes[-1])   # the decision, dated
    assert ws.stack("s").exclude == ("vllm:bad",)                          # the stack no longer pulls it
    assert [e.id for e in ws.stack_entries(ws.stack("s"), "vllm")] == ["one", "three", "bad2"]
    assert "+    return x * (45 + 0) + 2\n" in (root / "queues/vllm/0004-bad2.patch").read_text()
    assert load_workspace(root).upstream("vllm").pin == h.tip
    assert {c.patch_id: c.change for c in done.queue_changes} == {"one": "unchanged", "bad": "dropped",
                                                                  "three": "unchanged", "bad2": "changed"}
    assert done.verified is True        # the skipped patch conflicts where it stood, so the files give the same tree


def test_abort_restores_every_file_byte_for_byte(lab, tmp_path, cli):
    queue_lab(lab, tmp_path, break_at=30)
    root = lab.save()
    before, dirs = snapshot(root), folders(root)
    assert cli("-w", str(root), "rebase", "--onto", "vllm@latest").code == 1
    res = cli("-w", str(root), "rebase", "--abort")
    assert res.code == 0, res.err
    assert snapshot(root) == before and folders(root) == dirs
    assert not RebasePaths(root).dir.exists()
    again = cli("-w", str(root), "rebase", "--abort")
    assert again.code == 2 and "no rebase in progress" in again.err


def test_continue_refuses_unresolved_markers_and_lists_files(lab, tmp_path, cli):
    queue_lab(lab, tmp_path, break_at=30)
    root = lab.save()
    assert cli("-w", str(root), "rebase", "--onto", "vllm@latest").code == 1
    res = cli("-w", str(root), "rebase", "--continue")
    assert res.code == 1 and "unmerged" in res.err and "vllm/model.py" in res.err
    Repo(RebasePaths(root).worktree).run("add", "vllm/model.py")     # staged, markers and all
    with pytest.raises(NeedsYou, match=r"conflict markers still staged in: vllm/model.py"):
        continue_rebase(root)
    resolve_layer_25(RebasePaths(root).worktree)
    assert continue_rebase(root).state == "done"


def test_second_rebase_is_refused_while_one_is_in_progress(lab, tmp_path, cli):
    queue_lab(lab, tmp_path, break_at=30)
    root = lab.save()
    assert cli("-w", str(root), "rebase", "--onto", "vllm@latest").code == 1
    for extra in ((), ("--dry-run",)):
        res = cli("-w", str(root), "rebase", "--onto", "vllm@latest", *extra)
        assert res.code == 2 and "already in progress" in res.err
        assert "--continue" in res.err and "--abort" in res.err


# ---- already upstream ------------------------------------------------------------------------------------------------

def test_already_upstream_by_patch_id_and_by_reverse(lab, tmp_path):
    h = History(tmp_path / "src" / "vllm")
    h.add("initial", {"vllm/model.py": MODEL, "README.md": "demo\n"})
    base = h.flush()[0]
    lab.upstream("vllm", h, base)
    lab.patch("vllm", "by-id", h.diff(base, [("vllm/model.py", "return x * 7\n", "return x * 7 + 1\n")]))
    lab.patch("vllm", "by-reverse", h.diff(base, [("vllm/model.py", "return x * 40\n", "return x * 40 + 1\n")]))
    lab.patch("vllm", "keep", h.diff(base, [("README.md", "demo\n", "demo keep\n")]))
    lab.stack("s", ["vllm"])
    h.churn(5)
    taken = h.edit("take by-id verbatim", [("vllm/model.py", "return x * 7\n", "return x * 7 + 1\n")])
    h.churn(5)
    h.edit("touch by-id's context", [("vllm/model.py", "def layer_8(x):", "def layer_8(x):  # hot")])
    h.churn(5)
    merged = h.add("a different change that includes by-reverse", {
        "vllm/model.py": h.files["vllm/model.py"].replace("return x * 40\n", "return x * 40 + 1\n"), "NOTES.md": "n\n"})
    h.churn(5)
    h.flush()
    root = lab.save()
    before = snapshot(root)
    report = start_rebase(root, "vllm@latest")
    assert report.state == "done"
    steps = {s.patch_id: s for s in report.steps}
    assert steps["by-id"].kind == StepKind.ALREADY_UPSTREAM and steps["by-id"].upstream_commit == h.log[taken]
    assert steps["by-reverse"].kind == StepKind.ALREADY_UPSTREAM and steps["by-reverse"].upstream_commit == ""
    assert steps["keep"].kind == StepKind.APPLIED
    breaking = {b.patch_id: b for b in report.breaking}
    assert breaking["by-reverse"].commit == h.log[merged]
    assert breaking["by-reverse"].kind == OutcomeKind.ALREADY_UPSTREAM
    assert breaking["by-id"].commit == h.log[taken]
    ws = load_workspace(root)
    for pid in ("by-id", "by-reverse"):    # left out with the reason recorded on the patch, never silently dropped
        assert any(line.startswith(f"vllm:{pid}: ") and "already upstream" in line for line in report.left_out)
        entry = ws.queue("vllm").get(pid)
        assert "already upstream" in entry.notes[-1] and "no longer applies it" in entry.notes[-1]
        name = f"queues/vllm/000{1 if pid == 'by-id' else 2}-{pid}.patch"
        assert snapshot(root)[name] != before[name]          # the note is mirrored in the trailers
    assert "take by-id verbatim" in ws.queue("vllm").get("by-id").notes[-1]
    assert [e.id for e in ws.queue("vllm").entries] == ["by-id", "by-reverse", "keep"]
    assert ws.stack("s").exclude == ("vllm:by-id", "vllm:by-reverse")
    assert {c.patch_id: c.change for c in report.queue_changes}["by-id"] == "dropped"


# ---- breaking commits ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("break_at,commits", [(1, 200), (137, 200), (200, 200), (3, 5)])
def test_breaking_commit_found_exactly_within_the_bound(lab, tmp_path, break_at, commits):
    h = queue_lab(lab, tmp_path, commits=commits, break_at=break_at, offset_at=commits + 1)
    root = lab.save()
    report = start_rebase(root, "vllm@latest", dry_run=True)
    found = {b.patch_id: b for b in report.breaking}["bad"]
    assert found.commit == h.log[break_at] and found.searched == commits
    assert found.kind == OutcomeKind.CONFLICT
    assert found.checks <= math.ceil(math.log2(commits)) + 1 == found.bound
    assert report.bisect_checks == found.checks and set({b.patch_id for b in report.breaking}) == {"bad"}


def test_breaking_commit_for_a_three_way_patch_with_a_stack_prefix(lab, tmp_path):
    """The check at each commit replays the earlier patches that touch the same file, not the patch alone."""
    h = History(tmp_path / "src" / "vllm")
    h.add("initial", {"vllm/model.py": MODEL, "README.md": "demo\n"})
    base = h.flush()[0]
    lab.upstream("vllm", h, base)
    first = [("vllm/model.py", "return x * 10\n", "return x * 10 - 1\n")]
    lab.patch("vllm", "first", h.diff(base, first))
    lab.patch("vllm", "second", h.diff(h.side(base, first), [("vllm/model.py", "return x * 11\n",
                                                              "return x * 11 + 7\n")]))
    lab.stack("s", ["vllm"])
    h.churn(40)
    bump = h.edit("comment above layer 12", [("vllm/model.py", "def layer_12(x):", "# twelve\ndef layer_12(x):")])
    h.churn(40)
    h.flush()
    root = lab.save()
    report = start_rebase(root, "vllm@latest", dry_run=True)
    assert {s.patch_id: s.outcome.kind for s in report.steps}["second"] == OutcomeKind.THREEWAY
    found = {b.patch_id: b for b in report.breaking}["second"]
    assert found.commit == h.log[bump] and found.kind == OutcomeKind.THREEWAY and found.checks <= 8


# ---- dry run, older refs, bad input ----------------------------------------------------------------------------------

def test_dry_run_touches_nothing(lab, tmp_path, cli):
    queue_lab(lab, tmp_path, break_at=30)
    root = lab.save()
    before, dirs = snapshot(root), folders(root)
    res = cli("-w", str(root), "rebase", "--onto", "vllm@latest", "--dry-run")
    assert res.code == 1 and "dry run" in res.out and "upstream 30: float layer 25" in res.out
    assert snapshot(root) == before and folders(root) == dirs and not (root / ".patchq").exists()
    as_json = cli("-w", str(root), "rebase", "--onto", "vllm@latest", "--dry-run", "--json")
    data = result_of(as_json.out)
    assert data["state"] == "dry-run" and [s["kind"] for s in data["steps"]] == ["applied", "conflict", "applied"]


def test_ref_older_than_the_pin_is_allowed_and_said(lab, tmp_path, cli):
    h = History(tmp_path / "src" / "vllm")
    h.add("initial", {"vllm/model.py": MODEL, "README.md": "demo\n"})
    h.churn(10)
    old_spot = h.edit("import math", [("vllm/model.py", "def layer_0", "import math\n\n\ndef layer_0")])
    h.churn(20)
    h.flush()
    h.tag("v0.1", h.log[old_spot])
    lab.upstream("vllm", h, h.tip)
    lab.patch("vllm", "one", h.diff(h.tip, [("vllm/model.py", "return x * 3\n", "return x * 3 + 1\n")]))
    lab.stack("s", ["vllm"])
    root = lab.save()
    res = cli("-w", str(root), "rebase", "--onto", "vllm@v0.1")
    assert res.code == 0, res.err
    assert "OLDER than the current pin" in res.out
    assert load_workspace(root).upstream("vllm").pin == h.log[old_spot]


def test_bad_input_exit_codes_and_close_names(lab, tmp_path, cli):
    h = queue_lab(lab, tmp_path, break_at=None, commits=5)
    h.tag("v0.11.0", h.tip)
    root = lab.save()
    unknown = cli("-w", str(root), "rebase", "--onto", "vlm@latest")
    assert unknown.code == 2 and "vllm" in unknown.err
    bad_ref = cli("-w", str(root), "rebase", "--onto", "vllm@v0.11.1")
    assert bad_ref.code == 2 and "v0.11.0" in bad_ref.err
    assert cli("-w", str(root), "rebase", "--onto", "vllm").code == 2
    assert cli("-w", str(root), "rebase", "--continue").code == 2
    assert cli("-w", str(root), "rebase").code == 2
    assert cli("-w", str(root), "rebase", "--onto", "vllm@latest", "nostack").code == 2
    assert not (root / ".patchq" / "rebase").exists()


# ---- side patches ----------------------------------------------------------------------------------------------------

def test_negative_and_diagnostic_patches_are_checked_without_blocking(lab, tmp_path):
    h = queue_lab(lab, tmp_path, break_at=None, commits=20)
    base = h.log[0]
    lab.patch("vllm", "probe", h.diff(base, [("README.md", "demo\n", "demo\nprobe\n")]), status=Status.DIAGNOSTIC,
              base="one")
    lab.patch("vllm", "tried", h.diff(base, [("vllm/model.py", "return x * 3\n", "return x * 3 * 2\n")]),
              status=Status.NEGATIVE_ARCHIVED)
    lab.patch("vllm", "moved", h.diff(base, [("vllm/model.py", "return x * 50\n", "return x * 50 + 1\n")]),
              status=Status.DIAGNOSTIC)
    lab.stacks["s"]["pins"] = {"vllm": base}            # a stack pin: the new pin goes there, not to the upstream
    root = lab.save()
    report = start_rebase(root, "vllm@latest")
    assert report.state == "done" and report.pin_written == "stacks.s.pins.vllm"
    verdicts = {s.patch_id: s.verdict for s in report.side}
    assert verdicts == {"probe": "still-applies", "tried": "broken", "moved": "needs-refresh"}
    ws = load_workspace(root)
    assert ws.stack("s").pins["vllm"] == h.tip and ws.upstream("vllm").pin == base
    assert [e.id for e in ws.queue("vllm").entries] == ["one", "bad", "three", "probe", "tried", "moved"]


# ---- crash recovery --------------------------------------------------------------------------------------------------

CLEAN_POINTS = ["started", "applied", "aside-written", "swap:committed", "swap:mid", "swap:done"]


def finish_both_ways(crashed: Path, cli, old: dict[str, str], new: dict[str, str]) -> None:
    """From the crashed workspace (copied, .patchq state and all): --continue gives the new state, --abort the old,
    byte for byte."""
    now = snapshot(crashed)
    assert all(now.get(k) in (old.get(k), new.get(k)) for k in {*now, *old, *new})   # each file old or new
    twin = crashed.parent / (crashed.name + "-twin")
    shutil.copytree(crashed, twin, symlinks=True)
    for ws, finish, expected in ((crashed, "--continue", new), (twin, "--abort", old)):
        res = cli("-w", str(ws), "rebase", finish)
        assert res.code == 0, res.err + res.out
        assert snapshot(ws) == expected, finish
        assert not RebasePaths(ws).dir.exists()


@pytest.mark.parametrize("point", CLEAN_POINTS)
def test_kill_9_during_a_clean_rebase_then_continue_or_abort(lab, tmp_path, patchq, cli, point):
    queue_lab(lab, tmp_path, break_at=None, commits=30)
    template = lab.save()
    old = snapshot(template)
    reference = tmp_path / "reference"
    shutil.copytree(template, reference)
    assert start_rebase(reference, "vllm@latest").state == "done"
    new = snapshot(reference)
    assert new != old
    ws = tmp_path / "crashed"
    shutil.copytree(template, ws)
    crashed = patchq("-w", str(ws), "rebase", "--onto", "vllm@latest", env={CRASH_ENV: point})
    assert crashed.code == -9, crashed.err
    assert snapshot(ws) in (old, new) or point == "swap:mid"
    finish_both_ways(ws, cli, old, new)


@pytest.mark.parametrize("point", ["conflict-worktree", "resolved-commit"])
def test_kill_9_around_a_conflict_then_continue_or_abort(lab, tmp_path, patchq, cli, point):
    queue_lab(lab, tmp_path, break_at=20, commits=30)
    template = lab.save()
    old = snapshot(template)
    reference = tmp_path / "reference"
    shutil.copytree(template, reference)
    assert start_rebase(reference, "vllm@latest").state == "stopped"
    resolve_layer_25(RebasePaths(reference).worktree)
    assert continue_rebase(reference).state == "done"
    new = snapshot(reference)
    ws = tmp_path / "crashed"
    shutil.copytree(template, ws)
    env = {CRASH_ENV: point}
    if point == "conflict-worktree":
        assert patchq("-w", str(ws), "rebase", "--onto", "vllm@latest", env=env).code == -9
        assert snapshot(ws) == old
        twin = tmp_path / "crashed-twin"
        shutil.copytree(ws, twin, symlinks=True)
        assert cli("-w", str(twin), "rebase", "--abort").code == 0 and snapshot(twin) == old
        assert cli("-w", str(ws), "rebase", "--continue").code == 1      # stops at the same conflict again
        resolve_layer_25(RebasePaths(ws).worktree)
        assert cli("-w", str(ws), "rebase", "--continue").code == 0 and snapshot(ws) == new
    else:
        assert start_rebase(ws, "vllm@latest").state == "stopped"
        resolve_layer_25(RebasePaths(ws).worktree)
        assert patchq("-w", str(ws), "rebase", "--continue", env=env).code == -9
        finish_both_ways(ws, cli, old, new)
