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
