"""The git runner: an interrupted patchq must not leave git's lock files behind, and a stale lock is explained."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from patchq.errors import EnvironmentFailure
from patchq.git import GitError, Repo


def _held_add_repo(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A repository whose `git add` holds index.lock until the test lets it go: a clean filter that says it has
    started (git takes index.lock before it filters) and then waits for a release file (at most 10 minutes).

    No fixed sleep: on a loaded machine a filter that slept a few seconds could finish before the test had seen
    the lock, and the interrupt then came too late."""
    repo = Repo.init(tmp_path / "r")
    started, release = tmp_path / "filter-started", tmp_path / "filter-release"
    repo.run("config", "filter.slow.clean",
             f"touch '{started}'; n=0; while [ ! -e '{release}' ] && [ $n -lt 12000 ]; do sleep 0.05; n=$((n+1)); "
             "done; cat")
    (repo.path / ".gitattributes").write_text("*.txt filter=slow\n")
    (repo.path / "a.txt").write_text("a\n")
    return repo.path, started, release


def _wait_for(path: Path, timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return True
        time.sleep(0.01)
    return False


def test_ctrl_c_of_patchq_lets_git_remove_its_index_lock(tmp_path):
    """SIGINT reaches only patchq (as from `kill -INT` or a supervisor): git must still get to clean up."""
    root, started, release = _held_add_repo(tmp_path)
    script = textwrap.dedent(f"""
        import sys
        from patchq.git import Repo
        try:
            Repo({str(root)!r}).run("add", "a.txt")
        except KeyboardInterrupt:
            sys.exit(130)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    lock = root / ".git" / "index.lock"
    try:
        assert _wait_for(started), "git add never ran its clean filter"
        assert lock.exists(), "git add filters without holding index.lock"   # held until we release the filter
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=180)
    finally:
        release.write_text("")                  # the filter, orphaned or not, ends now
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert not lock.exists(), "the interrupted git left index.lock behind"
    assert Repo(root).run("status").ok          # the next git in that repository runs


def test_a_stale_index_lock_is_explained_with_what_to_do(tmp_path):
    repo = Repo.init(tmp_path / "r")
    (repo.path / "a.txt").write_text("a\n")
    lock = repo.path / ".git" / "index.lock"
    lock.write_text("")
    with pytest.raises(GitError) as caught:
        repo.run("add", "a.txt")
    message = str(caught.value)
    assert isinstance(caught.value, EnvironmentFailure)
    assert str(lock) in message and "delete that file" in message and "\n" not in message
    lock.unlink()
    repo.run("add", "a.txt")


def test_background_status_never_rewrites_the_index(tmp_path):
    """The dirty check runs beside other work and may be cancelled or killed; a status that saves refreshed stat
    data takes index.lock to do so, so patchq's status must not write the index at all."""
    repo = Repo.init(tmp_path / "r")
    (repo.path / "a.txt").write_text("a\n")
    repo.run("add", "a.txt")
    repo.run("commit", "-qm", "a")
    os.utime(repo.path / "a.txt", (1, 1))     # stale stat data: a plain `git status` would rewrite the index
    index = repo.path / ".git" / "index"
    before = (index.stat().st_ino, index.stat().st_mtime_ns, index.read_bytes())
    assert Repo.parse_status(repo.start_status().result().out) == []
    assert repo.status_porcelain() == []
    assert (index.stat().st_ino, index.stat().st_mtime_ns, index.read_bytes()) == before


# ---- the one door: no other module speaks git ------------------------------------------------------------------

PATCHQ = Path(__file__).resolve().parent.parent / "patchq"


def test_no_module_but_git_py_runs_git():
    """Every git call goes through a named operation of git.py: no raw runner, no `repo.run(...)` elsewhere."""
    import re
    raw = re.compile(r"\brun_git\(|(?<!subprocess)\.run\(\s*\*?\[?\"|\.out\(\s*\"|\bPending\("
                     r"|\bsubprocess\.\w+\(\s*\[\s*\"git\"")
    offenders = []
    for path in sorted(PATCHQ.rglob("*.py")):
        rel = path.relative_to(PATCHQ).as_posix()
        if rel == "git.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if raw.search(line):
                offenders.append(f"{rel}:{number}: {line.strip()}")
    assert offenders == []


def _git_env_seen(repo: Repo) -> dict[str, str]:
    """The environment a git process that patchq starts really has (a shell alias prints it)."""
    out = repo.run("-c", "alias.showenv=!env -0", "showenv").stdout.decode("utf-8", "replace")
    return dict(item.split("=", 1) for item in out.split("\0") if "=" in item)


def test_the_environment_is_an_allowlist_for_git_variables(tmp_path, monkeypatch):
    repo = Repo.init(tmp_path / "r")
    monkeypatch.setenv("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    monkeypatch.setenv("GIT_TERMINAL_PROMPT", "1")
    monkeypatch.setenv("GIT_TRACE", "1")                   # would write into the stderr patchq parses
    monkeypatch.setenv("GIT_INDEX_VERSION", "4")           # patchq reads its indexes itself (version 2)
    monkeypatch.setenv("GIT_OBJECT_DIRECTORY", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("GIT_SOMETHING_NEW", "x")           # unknown GIT_* variables are dropped too
    monkeypatch.setenv("PATCHQ_TEST_PLAIN", "kept")        # other variables pass (credential helpers read them)
    seen = _git_env_seen(repo)
    assert seen["GIT_SSH_COMMAND"] == "ssh -o BatchMode=yes"
    assert seen["GIT_TERMINAL_PROMPT"] == "0" and seen["LC_ALL"] == "C"
    assert seen["PATCHQ_TEST_PLAIN"] == "kept"
    for dropped in ("GIT_TRACE", "GIT_INDEX_VERSION", "GIT_OBJECT_DIRECTORY", "GIT_SOMETHING_NEW"):
        assert dropped not in seen, dropped


def test_git_dir_index_and_work_tree_of_the_caller_cannot_redirect_patchq(tmp_path, monkeypatch):
    ours = Repo.init(tmp_path / "ours")
    (ours.path / "a.txt").write_text("ours\n")
    ours.run("add", "a.txt")
    ours.run("commit", "-qm", "ours")
    theirs = Repo.init(tmp_path / "theirs")
    (theirs.path / "b.txt").write_text("theirs\n")
    theirs.run("add", "b.txt")
    theirs.run("commit", "-qm", "theirs")
    want_head, other_head = ours.head(), theirs.head()
    index = ours.path / ".git" / "index"
    index_before = index.read_bytes()
    monkeypatch.setenv("GIT_DIR", str(theirs.path / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(theirs.path))
    monkeypatch.setenv("GIT_INDEX_FILE", str(tmp_path / "stray-index"))
    monkeypatch.setenv("GIT_COMMON_DIR", str(theirs.path / ".git"))
    (ours.path / "new.txt").write_text("new\n")
    assert ours.head() == want_head != other_head
    assert ours.status_porcelain() == ["new.txt"]
    tree = ours.worktree_tree("HEAD")
    assert sorted(p for _, _, p in ours.ls_tree_entries(tree)) == ["a.txt", "new.txt"]
    assert b"+new" in ours.diff_trees("HEAD", tree)
    assert not (tmp_path / "stray-index").exists() and index.read_bytes() == index_before


def test_user_diff_settings_never_reach_a_patch(tmp_path, monkeypatch):
    """A test HOME whose git config asks for no prefixes, mnemonic prefixes, another algorithm, an external diff,
    colour and an order file: every diff door still prints `diff --git a/X b/X` plain text."""
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "order").write_text("z.txt\n")
    (home / ".gitconfig").write_text(
        "[diff]\n\tnoprefix = true\n\tmnemonicPrefix = true\n\talgorithm = histogram\n\texternal = false\n"
        f"\torderFile = {tmp_path / 'order'}\n\tsrcPrefix = x/\n[color]\n\tui = always\n\tdiff = always\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("GIT_CONFIG_GLOBAL", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    repo = Repo.init(tmp_path / "r")
    for name in ("a.txt", "z.txt"):
        (repo.path / name).write_text("one\n")
    repo.run("add", "-A")
    repo.run("commit", "-qm", "base")
    base = repo.head()
    for name in ("a.txt", "z.txt"):
        (repo.path / name).write_text("two\n")
    tree = repo.worktree_tree(base)
    repo.run("commit", "-qam", "change")
    head = repo.head()
    (repo.path / "a.txt").write_text("three\n")
    outputs = {"diff_trees": repo.diff_trees(base, tree), "commit_diff": repo.commit_diff(head),
               "worktree_diff": repo.worktree_diff(head), "log_patches": repo.log_patches(f"{base}..{head}")}
    repo.run("add", "a.txt")
    outputs["staged_diff"] = repo.staged_diff(head)
    for name, text in outputs.items():
        assert b"\x1b[" not in text, name
        headers = [ln for ln in text.splitlines() if ln.startswith(b"diff --git ")]
        assert headers and headers[0] == b"diff --git a/a.txt b/a.txt", (name, text)
        assert b"--- a/a.txt\n+++ b/a.txt\n" in text, name


def test_patch_ids_of_a_log_match_those_of_the_diffs(tmp_path):
    repo = Repo.init(tmp_path / "r")
    (repo.path / "f.txt").write_text("1\n")
    repo.run("add", "-A")
    repo.run("commit", "-qm", "one")
    base = repo.head()
    (repo.path / "f.txt").write_text("2\n")
    repo.run("commit", "-qam", "two")
    head = repo.head()
    from patchq.git import patch_ids
    assert repo.log_patch_ids(f"{base}..{head}") == [(head, patch_ids([repo.commit_diff(head)])[0])]
    assert patch_ids([b"", repo.commit_diff(head)])[0] is None


# ---- PATCHQ_TRACE_GIT -----------------------------------------------------------------------------------------

def test_trace_to_stderr_names_argv_folder_exit_code_and_time(tmp_path, monkeypatch, capsys):
    repo = Repo.init(tmp_path / "r")
    monkeypatch.setenv("PATCHQ_TRACE_GIT", "1")
    assert repo.head() is None                      # a failing call is traced too
    repo.has_commit("0" * 40)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("patchq git: ")]
    assert len(lines) == 2, lines
    assert "rev-parse --verify" in lines[0] and f"cwd={repo.path}" in lines[0]
    assert " exit=1 " in lines[0] and " exit=128 " in lines[1] and "cat-file -e" in lines[1]
    import re
    assert all(re.match(r"patchq git: \d+\.\dms exit=-?\d+ cwd=\S+ git ", ln) for ln in lines)


def test_trace_to_a_file_when_the_value_is_a_path(tmp_path, monkeypatch, capsys):
    log = tmp_path / "git.log"
    repo = Repo.init(tmp_path / "r")
    monkeypatch.setenv("PATCHQ_TRACE_GIT", str(log))
    repo.start_status().result()
    with repo.object_reader() as reader:
        reader.read("HEAD:nothing")
    text = log.read_text()
    assert "exit=0" in text and " status --porcelain=v1" in text and "cat-file --batch" in text
    assert "patchq git:" not in capsys.readouterr().err
    monkeypatch.setenv("PATCHQ_TRACE_GIT", "0")
    repo.head()
    assert log.read_text() == text                   # 0 switches it off


def test_an_unwritable_trace_file_is_said_once_and_the_trace_goes_to_stderr(tmp_path, monkeypatch, capsys):
    repo = Repo.init(tmp_path / "r")
    where = tmp_path / "no-such-folder" / "git.log"
    monkeypatch.setenv("PATCHQ_TRACE_GIT", str(where))
    repo.head()
    repo.head()
    err = capsys.readouterr().err
    assert err.count(f"cannot write the PATCHQ_TRACE_GIT file {where}") == 1
    assert len([ln for ln in err.splitlines() if ln.startswith("patchq git: ")]) == 2
    assert not where.parent.exists()


# ---- the git version ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, want", [
    ("git version 2.39.5\n", (2, 39, 5)),
    ("git version 2.45.1.windows.1", (2, 45, 1)),
    ("git version 2.40.0.rc1", (2, 40, 0)),
    ("git version 2.39.3 (Apple Git-146)", (2, 39, 3)),
    ("git version 3.0", (3, 0, 0)),
    ("hub version 2.14.2", None),
    ("", None),
])
def test_git_version_parsing(text, want):
    from patchq.git import parse_git_version
    assert parse_git_version(text) == want


def test_a_git_below_the_minimum_is_one_line_and_exit_3(tmp_path, patchq):
    from patchq.git import MIN_GIT
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "git").write_text("#!/bin/sh\necho 'git version 2.20.1'\n")
    (fake / "git").chmod(0o755)
    res = patchq("demo", str(tmp_path / "demo"), env={"PATH": f"{fake}:{os.environ['PATH']}"})
    assert res.code == 3, res
    lines = [ln for ln in res.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "2.20.1" in lines[0] and f">= {MIN_GIT[0]}.{MIN_GIT[1]}" in lines[0], lines
    ok = patchq("demo", str(tmp_path / "demo2"))
    assert ok.code == 0, ok.err
