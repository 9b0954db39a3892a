"""Two patchq processes on one workspace or one mirror cache never corrupt it.

A second writer gets a clear "in use by patchq pid N" error (exit 3); a lock left by a killed process is taken
over; processes racing for a stale lock never both get it; processes creating the same mirror at once all succeed
and leave one sound mirror.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from test_hostile import snapshot

HOLD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from patchq.txn import workspace_lock
    with workspace_lock(Path(sys.argv[1]), "apply s"):
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
""")
RACE = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from patchq.errors import EnvironmentFailure
    from patchq.txn import workspace_lock
    root, go = Path(sys.argv[1]), float(sys.argv[2])
    while time.time() < go:
        pass
    try:
        with workspace_lock(root, "race"):
            with open(root / "inside.log", "a") as fh:
                fh.write("enter\\n")
            time.sleep(0.2)
            with open(root / "inside.log", "a") as fh:
                fh.write("leave\\n")
        print("got")
    except EnvironmentFailure:
        print("refused")
""")
MIRROR = textwrap.dedent("""
    import sys, time
    from patchq.model import Upstream
    from patchq.sources import ensure_mirror
    go = float(sys.argv[2])
    while time.time() < go:
        pass
    repo = ensure_mirror(Upstream(name="up", url=sys.argv[1], pin="0" * 40))
    print(repo.path)
""")


def _workspace(lab, pyupstream):
    up, base = pyupstream
    diff = up.diff(base, [("vllm/model.py", "return x * 3", "return x * 33")])
    lab.upstream("vllm", up, base).patch("vllm", "triple", diff)
    lab.stack("s", ["vllm"])
    return lab.save()


def test_second_writer_is_told_who_holds_the_workspace(lab, pyupstream, patchq, tmp_path):
    root = _workspace(lab, pyupstream)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(root), "30"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = snapshot(root)
        scratch = pyupstream[0].path
        (scratch / "README.md").write_text("changed\n")
        for args in (["apply", "s"], ["new", "x", "-u", "vllm", "--from", str(scratch)],
                     ["mark", "triple", "diagnostic"]):
            result = patchq("-w", str(root), *args)
            assert result.code == 3, result.err
            assert f"in use by patchq pid {holder.pid} (apply s)" in result.err
            assert len(result.err.strip().splitlines()) == 1
        assert snapshot(root) == before
    finally:
        holder.kill()
        holder.wait()


def test_lock_of_a_killed_process_is_taken_over(lab, pyupstream, patchq):
    root = _workspace(lab, pyupstream)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(root), "30"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert (root / ".patchq" / "lock").read_text().startswith(f"{holder.pid} ")     # the stale file is still there
    result = patchq("-w", str(root), "apply", "s")
    assert result.code == 0, result.err
    assert not (root / ".patchq" / "lock").exists()


def test_racing_for_a_stale_lock_gives_it_to_one_process(tmp_path):
    """Six processes find the same stale lock at once; at no moment do two of them hold it (5 rounds)."""
    for round_ in range(5):
        root = tmp_path / f"r{round_}"
        (root / ".patchq").mkdir(parents=True)
        (root / ".patchq" / "lock").write_text("999999999 apply crashed\n")
        go = time.time() + 0.8
        procs = [subprocess.Popen([sys.executable, "-c", RACE, str(root), str(go)], stdout=subprocess.PIPE,
                                  text=True) for _ in range(6)]
        outs = [p.communicate(timeout=60)[0].strip() for p in procs]
        assert outs.count("got") >= 1 and set(outs) <= {"got", "refused"}
        depth = deepest = 0
        for line in (root / "inside.log").read_text().split():
            depth += 1 if line == "enter" else -1
            deepest = max(deepest, depth)
        assert deepest == 1


def test_two_applies_at_once_never_corrupt(lab, pyupstream, patchq):
    root = _workspace(lab, pyupstream)
    expected = None
    for _ in range(3):
        procs = [subprocess.Popen([sys.executable, "-m", "patchq", "-w", str(root), "apply", "s"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
        for code, err in results:
            assert code == 0 or (code == 3 and "in use by patchq pid" in err), err
        assert any(code == 0 for code, _ in results)
        final = patchq("-w", str(root), "apply", "s")
        assert final.code == 0, final.err
        checkout = root / ".patchq" / "checkouts" / "s" / "vllm"
        assert "return x * 33" in (checkout / "vllm" / "model.py").read_text()
        status = subprocess.run(["git", "status", "--porcelain"], cwd=checkout, capture_output=True, text=True)
        assert status.stdout == ""
        state = {k: v for k, v in snapshot(root).items() if "/.git/" not in k}
        expected = expected or state
        assert state == expected


def test_processes_creating_one_mirror_at_once_all_succeed(make_upstream, tmp_path):
    up = make_upstream("racy")
    up.write("a.txt", "a\n")
    sha = up.commit("one")
    go = time.time() + 1.0
    procs = [subprocess.Popen([sys.executable, "-c", MIRROR, str(up.path), str(go)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [(p.wait(timeout=120), p.stdout.read().strip(), p.stderr.read()) for p in procs]
    assert all(code == 0 for code, _, _ in results), results
    mirrors = {out for _, out, _ in results}
    assert len(mirrors) == 1
    mirror = Path(mirrors.pop())
    fsck = subprocess.run(["git", "fsck", "--strict"], cwd=mirror, capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stderr
    assert subprocess.run(["git", "cat-file", "-e", sha], cwd=mirror).returncode == 0
    leftovers = [p.name for p in mirror.parent.iterdir() if p != mirror]
    assert leftovers == []


READ_HOLD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from patchq.txn import workspace_lock
    with workspace_lock(Path(sys.argv[1]), "export s", shared=True):
        print("reading", flush=True)
        time.sleep(float(sys.argv[2]))
""")


def test_readers_share_the_workspace_and_writers_wait_for_them(lab, pyupstream, patchq, tmp_path):
    """Exports read together; a writer is refused while one reads; a reader is refused while a writer writes."""
    root = _workspace(lab, pyupstream)
    reader = subprocess.Popen([sys.executable, "-c", READ_HOLD, str(root), "30"], stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "reading"
        second = patchq("-w", str(root), "export", "s", "-o", str(tmp_path / "out"))
        assert second.code == 0, second.err                              # two readers at once
        writer = patchq("-w", str(root), "mark", "triple", "diagnostic")
        assert writer.code == 3 and "workspace is in use by another patchq process" in writer.err, writer.err
    finally:
        reader.kill()
        reader.wait()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(root), "30"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        refused = patchq("-w", str(root), "export", "s", "-o", str(tmp_path / "out2"))
        assert refused.code == 3 and f"in use by patchq pid {holder.pid} (apply s)" in refused.err, refused.err
        assert not (tmp_path / "out2").exists()
    finally:
        holder.kill()
        holder.wait()
    after = patchq("-w", str(root), "mark", "triple", "diagnostic")       # both holders gone: the writer goes
    assert after.code == 0, after.err



UNNAMED = textwrap.dedent("""
    import fcntl, os, sys, time
    path, then = sys.argv[1], sys.argv[2]
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)                       # locked, nobody named yet: a writer's first moment
    print("locked", flush=True)
    time.sleep(0.02)
    if then == "name":
        os.pwrite(fd, f"{os.getpid()} apply s\\n".encode(), 0)
        time.sleep(30)
    else:
        os.unlink(path)                                  # a writer finishing: the file goes, the lock is free
        os.close(fd)
""")


def test_a_writer_caught_before_it_names_itself_is_still_named_or_waited_for(tmp_path):
    """The moment between a writer's flock and the pid it writes: the refused command names it once it has, and a
    holder that finishes in that moment leaves the lock to the next command instead of a refusal."""
    import pytest

    from patchq.errors import EnvironmentFailure
    from patchq.txn import workspace_lock
    lock = tmp_path / ".patchq" / "lock"
    lock.parent.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", UNNAMED, str(lock), "name"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(EnvironmentFailure, match=f"in use by patchq pid {holder.pid} \\(apply s\\)"):
            with workspace_lock(tmp_path, "mark"):
                pass
    finally:
        holder.kill()
        holder.wait()
    lock.unlink()                                        # what the killed holder named
    finishing = subprocess.Popen([sys.executable, "-c", UNNAMED, str(lock), "finish"], stdout=subprocess.PIPE,
                                 text=True)
    try:
        assert finishing.stdout.readline().strip() == "locked"
        with workspace_lock(tmp_path, "mark"):
            assert lock.read_text().startswith(f"{os.getpid()} mark")
    finally:
        finishing.wait(timeout=30)
