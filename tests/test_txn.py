"""The workspace transaction: staged writes land together, a kill after the commit point is rolled forward by the
next command, an error or a kill before it changes nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from patchq.crashtest import TEST_CRASH_ENV, TEST_KILL_ENV
from patchq.errors import BadInput
from patchq.model import Status
from patchq.txn import JOURNAL, Txn, pending, publish, workspace_txn
from patchq.workspace import load_workspace

STAGE_TWO = textwrap.dedent("""
    import sys
    from pathlib import Path
    from patchq.txn import workspace_txn
    root = Path(sys.argv[1])
    with workspace_txn(root, "two files", load=False) as (_, t):
        t.write(root / "a.txt", b"new a\\n")
        t.write(root / "sub" / "b.txt", b"new b\\n")
        t.remove(root / "gone.txt")
""")


def _root(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir(parents=True)
    (root / "a.txt").write_text("old a\n")
    (root / "gone.txt").write_text("old\n")
    return root


def _files(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*")
            if p.is_file() and ".patchq" not in p.parts}


OLD = {"a.txt": "old a\n", "gone.txt": "old\n"}
NEW = {"a.txt": "new a\n", "sub/b.txt": "new b\n"}


def _run(root: Path, env: dict[str, str]) -> int:
    return subprocess.run([sys.executable, "-c", STAGE_TWO, str(root)], env=dict(os.environ, **env)).returncode


@pytest.mark.parametrize("label", ["txn:committed", "txn:mid", "txn:done"])
def test_a_kill_after_the_commit_point_is_rolled_forward_by_the_next_transaction(tmp_path, label):
    root = _root(tmp_path)
    assert _run(root, {TEST_CRASH_ENV: label}) == -signal.SIGKILL
    assert pending(root)                                     # the journal outlived the process
    assert all(_files(root).get(k) in (OLD.get(k), NEW.get(k)) for k in {*OLD, *NEW})
    with workspace_txn(root, "next", load=False):
        pass
    assert _files(root) == NEW
    assert not pending(root) and not (root / ".patchq" / "txn").exists()


def test_every_counted_kill_leaves_old_or_rolls_forward_to_new(tmp_path):
    outcomes = []
    for n in range(1, 40):
        root = _root(tmp_path / str(n))
        code = _run(root, {TEST_KILL_ENV: str(n)})
        if code == 0:
            assert _files(root) == NEW
            break
        assert code == -signal.SIGKILL
        before = "committed" if pending(root) else ("old" if _files(root) == OLD else "new")
        with workspace_txn(root, "next", load=False):
            pass
        after = _files(root)
        assert after in (OLD, NEW), f"kill point {n} left a mix"
        assert (before == "old") == (after == OLD)            # only a kill before the commit point keeps the old
        assert not (root / ".patchq" / "txn").exists()        # uncommitted staging is swept
        outcomes.append(before)
    else:
        pytest.fail("the transaction never finished")
    assert outcomes[0] == "old" and "committed" in outcomes and len(outcomes) >= 6, outcomes


def test_an_error_in_the_block_writes_nothing(tmp_path):
    root = _root(tmp_path)
    with pytest.raises(RuntimeError):
        with workspace_txn(root, "fails", load=False) as (_, t):
            t.write(root / "a.txt", b"new a\n")
            raise RuntimeError("stop")
    assert _files(root) == OLD
    assert not pending(root) and not (root / ".patchq" / "txn").exists()


def test_create_never_overwrites_a_file_that_appeared(tmp_path):
    root = _root(tmp_path)
    t = Txn(root, "create")
    t.write(root / "new.txt", b"mine\n", create=True)
    t.write(root / "a.txt", b"new a\n")
    (root / "new.txt").write_text("someone else's\n")
    with pytest.raises(BadInput, match="never overwrites"):
        t.commit()
    assert (root / "new.txt").read_text() == "someone else's\n" and (root / "a.txt").read_text() == "old a\n"


def test_read_sees_what_is_staged(tmp_path):
    root = _root(tmp_path)
    t = Txn(root, "read")
    t.write("a.txt", b"staged\n")
    t.remove("gone.txt")
    assert t.read(root / "a.txt") == b"staged\n"
    with pytest.raises(FileNotFoundError):
        t.read("gone.txt")
    with pytest.raises(ValueError, match="outside the workspace"):
        t.write(tmp_path / "elsewhere.txt", b"x")


def test_publish_moves_a_folder_in_once(tmp_path):
    staging, dest = tmp_path / ".tmp-1", tmp_path / "objects" / "key"
    dest.parent.mkdir()
    (staging / "lib").mkdir(parents=True)
    (staging / "lib" / "x.so").write_bytes(b"\x7fELF")
    assert publish(staging, dest) is True and (dest / "lib" / "x.so").read_bytes() == b"\x7fELF"
    twin = tmp_path / ".tmp-2"
    twin.mkdir()
    (twin / "other").write_text("x")
    assert publish(twin, dest) is False                       # a concurrent twin got there first
    assert not (dest / "other").exists()


def test_a_killed_mark_is_finished_by_the_next_reader(lab, pyupstream, patchq):
    """`patchq mark` killed between its two files: `patchq list` (a reader) rolls the commit forward first, so
    the patch file and series.yaml agree and `patchq check` finds no trailer mismatch."""
    up, base = pyupstream
    lab.upstream("vllm", up, base)
    lab.patch("vllm", "a", up.diff(base, [("vllm/model.py", "return x * 3\n", "return x * 3 + 1\n")]))
    lab.stack("s", ["vllm"])
    root = lab.save()
    killed = patchq("-w", str(root), "mark", "a", "diagnostic", env={TEST_CRASH_ENV: "txn:mid"})
    assert killed.code == -signal.SIGKILL
    assert (root / ".patchq" / JOURNAL).exists()
    listed = patchq("-w", str(root), "list")
    assert listed.code == 0, listed.err
    assert not (root / ".patchq" / JOURNAL).exists()
    assert load_workspace(root).find_patch("a").status == Status.DIAGNOSTIC
    assert "Patchq-Status: diagnostic" in (root / "queues" / "vllm" / "0001-a.patch").read_text()
    check = patchq("-w", str(root), "check")
    assert "trailer-mismatch" not in check.out + check.err


def test_txn_is_the_one_module_that_renames_files_into_place():
    """Durable files reach the disk through txn (atomic_write / publish / a workspace transaction): a rename into
    place anywhere else would be a second writer with its own idea of fsync and crash points."""
    import re
    package = Path(__file__).resolve().parent.parent / "patchq"
    rename = re.compile(r"\bos\.(replace|rename)\(")
    # export moves an old repro folder aside (not a write) before txn.publish puts the new one in place
    allowed = {("export.py", 'os.replace(folder, old / "x")')}
    offenders = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).as_posix()
        if rel == "txn.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if rename.search(line) and (rel, line.strip()) not in allowed:
                offenders.append(f"{rel}:{number}: {line.strip()}")
    assert offenders == []
