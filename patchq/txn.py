"""Durable writes: the workspace lock, one unit of work per command, one journal, one way to put a file in place.

`atomic_write` is the primitive: a temporary file beside the target, fsynced, renamed over it, the folder fsynced.
Files outside a workspace transaction (caches, exports, patchq's own scratch state) use it alone.

`workspace_txn(root, what)` is how a command changes a workspace. It takes the exclusive lock, finishes what a
killed command left, loads the workspace *under* the lock (a load before it loses another writer's update), and
yields `(ws, t)`. The command stages its changes on `t`; leaving the block commits them:

1. every staged file's bytes go to `.patchq/txn/<id>/` and are fsynced (an error or a kill here changes nothing:
   the staging is dropped at once, or swept by the next command);
2. the journal `.patchq/txn-journal.json` naming every operation is written atomically: the commit point;
3. the operations run, each one safe to repeat (a staged file renamed in, a file removed, a folder moved in);
4. the folders are fsynced and the journal removed.

A kill after 2 leaves the journal, and the next patchq command, writer or reader, rolls it forward before it
loads the workspace. Every durable step calls `crashtest.file_operation`, so each one is a kill point the crash
tests try. The lock is an `flock`: the kernel drops it with its process however that process dies, so a stale
lock is never mistaken for a live one (StGit's single `StackTransaction`, "succeed or fail cleanly", is the model).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .crashtest import file_operation
from .errors import BadInput, EnvironmentFailure

if TYPE_CHECKING:
    from .workspace import Workspace

STATE_DIR = ".patchq"
JOURNAL = "txn-journal.json"
STAGING = "txn"
JOURNAL_VERSION = 1


# ---- the primitive -------------------------------------------------------------------------------------------------

def atomic_write(path: Path, data: bytes, *, mode: int | None = None, durable: bool = True) -> None:
    """Write through a temporary file in the same folder, renamed into place: the old bytes or the new, never half.

    The file keeps an existing file's mode (else `mode`, else 0644). `durable=False` skips the fsyncs, for cache
    entries that are checked when read and made again when lost (the flag-analysis cache writes hundreds)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, _mode_for(path, mode))
        file_operation()
        os.replace(tmp, path)
        if durable:
            _fsync_dir(path.parent)
        file_operation()
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def publish(staging: Path, dest: Path, *, durable: bool = True) -> bool:
    """Rename a fully written folder (or file) into place, all or nothing: False when `dest` already exists
    (a concurrent twin stored the same thing first, or an empty folder made by someone else stands there).

    `durable` fsyncs every file first (the build cache: a kill must never leave a half-written object). Things
    patchq can make again and checks before use (mirrors, checkouts, resolution work trees) pass False: fsyncing
    a 5,000-file checkout would cost more than making it."""
    if durable:
        _fsync_tree(staging)
    file_operation()
    try:
        os.rename(staging, dest)
    except OSError:
        if dest.exists():
            return False
        raise
    _fsync_dir(dest.parent)
    file_operation()
    return True


def _mode_for(path: Path, mode: int | None) -> int:
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        return 0o644 if mode is None else mode


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass                                        # some file systems refuse fsync on a folder; rename stands
    finally:
        os.close(fd)


def _fsync_tree(top: Path) -> None:
    if top.is_file():
        with open(top, "rb") as fh:
            os.fsync(fh.fileno())
        return
    for folder, _, files in os.walk(top):
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                with open(path, "rb") as fh:
                    os.fsync(fh.fileno())
        _fsync_dir(Path(folder))


# ---- the transaction ------------------------------------------------------------------------------------------------

@dataclass
class Txn:
    """The changes a command stages on a workspace; nothing touches the workspace's files until `commit`.

    One operation per path (the last one staged wins), committed in the order first staged."""

    root: Path
    what: str
    label: str = "txn"
    _ops: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    _data: dict[str, bytes] = field(default_factory=dict, repr=False)

    def rel(self, path: Path | str) -> str:
        p = Path(path)
        full = p if p.is_absolute() else self.root / p
        try:
            return full.relative_to(self.root).as_posix()
        except ValueError:
            raise ValueError(f"{path} is outside the workspace {self.root}; use txn.atomic_write") from None

    def write(self, path: Path | str, data: bytes, *, create: bool = False) -> None:
        """Stage `path`'s new bytes. `create`: the file must not exist at commit (it is never overwritten)."""
        rel = self.rel(path)
        self._ops.pop(rel, None)
        self._ops[rel] = {"op": "write", "path": rel, "create": create}
        self._data[rel] = bytes(data)

    def remove(self, path: Path | str) -> None:
        rel = self.rel(path)
        self._ops.pop(rel, None)
        self._data.pop(rel, None)
        self._ops[rel] = {"op": "remove", "path": rel}

    def move(self, source: Path | str, dest: Path | str) -> None:
        """Move a file or folder the command prepared (inside the workspace) to `dest`, replacing what is there."""
        rel = self.rel(dest)
        self._ops.pop(rel, None)
        self._data.pop(rel, None)
        self._ops[rel] = {"op": "move", "path": rel, "source": self.rel(source)}

    def read(self, path: Path | str) -> bytes:
        """The bytes `path` will have once committed (staged, else on disk)."""
        rel = self.rel(path)
        if rel in self._data:
            return self._data[rel]
        if rel in self._ops and self._ops[rel]["op"] == "remove":
            raise FileNotFoundError(self.root / rel)
        return (self.root / rel).read_bytes()

    @property
    def staged(self) -> list[str]:
        return list(self._ops)

    def commit(self, label: str | None = None) -> None:
        """Commit what is staged so far (see the module docstring); the transaction is empty again afterwards.

        `label` names the crash points of this commit for PATCHQ_TEST_CRASH_AT (`<label>:committed`,
        `<label>:mid`, `<label>:done`)."""
        if not self._ops:
            return
        name = label or self.label
        state = self.root / STATE_DIR
        state.mkdir(exist_ok=True)
        stage_rel = f"{STAGING}/{secrets.token_hex(6)}"
        stage = state / stage_rel
        ops: list[dict[str, Any]] = []
        try:
            stage.mkdir(parents=True)
            for number, (rel, op) in enumerate(self._ops.items()):
                target = self.root / rel
                if op["op"] == "write":
                    if op["create"] and os.path.lexists(target):
                        raise BadInput(f"{rel} appeared meanwhile; patchq never overwrites it", path=rel)
                    staged = stage / str(number)
                    _write_synced(staged, self._data[rel], _mode_for(target, None))
                    file_operation()
                    ops.append({"op": "write", "path": rel, "staged": f"{stage_rel}/{number}"})
                elif op["op"] == "move":
                    ops.append({"op": "move", "path": rel, "source": op["source"], "trash": f"{stage_rel}/t{number}"})
                else:
                    ops.append({"op": "remove", "path": rel})
            _fsync_dir(stage)
            journal = {"version": JOURNAL_VERSION, "what": self.what, "staging": stage_rel, "ops": ops}
            atomic_write(state / JOURNAL, json.dumps(journal, indent=1).encode())   # the commit point
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)         # roll-back: the workspace was never touched
            raise
        self._ops.clear()
        self._data.clear()
        file_operation(f"{name}:committed")
        _roll_forward(self.root, journal, name)


def _write_synced(path: Path, data: bytes, mode: int) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(path, mode)


def _roll_forward(root: Path, journal: dict[str, Any], name: str = "recover") -> None:
    """Run a committed journal's operations (each safe to repeat), then drop the journal and the staging."""
    state = root / STATE_DIR
    touched: set[Path] = set()
    for number, op in enumerate(journal["ops"]):
        target = root / op["path"]
        if op["op"] == "write":
            staged = state / op["staged"]
            if staged.exists():                         # gone: this rename already happened
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staged, target)
                touched.add(target.parent)
                file_operation()
        elif op["op"] == "remove":
            if os.path.lexists(target):
                target.unlink()
                touched.add(target.parent)
                file_operation()
        elif op["op"] == "move":
            source = root / op["source"]
            if os.path.lexists(source):
                if os.path.lexists(target):
                    os.replace(target, state / op["trash"])
                    file_operation()
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(source, target)
                touched.add(target.parent)
                file_operation()
        if number == 0:
            file_operation(f"{name}:mid")
    for folder in touched:
        _fsync_dir(folder)
    file_operation(f"{name}:done")
    (state / JOURNAL).unlink()
    _fsync_dir(state)
    file_operation()
    shutil.rmtree(state / journal["staging"], ignore_errors=True)


def pending(root: Path) -> bool:
    """Whether a committed transaction waits to be finished (a command was killed while committing)."""
    return (root / STATE_DIR / JOURNAL).exists()


def recover(root: Path) -> bool:
    """Finish a committed transaction a kill interrupted and sweep uncommitted staging. Hold the exclusive lock.

    True when there was a transaction to finish."""
    state = root / STATE_DIR
    path = state / JOURNAL
    done = False
    if path.exists():
        try:
            journal = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(journal, dict) or journal.get("version") != JOURNAL_VERSION or "ops" not in journal:
                raise ValueError("not a patchq transaction journal")
        except (OSError, ValueError) as exc:
            raise BadInput(f"unreadable journal of an interrupted command ({exc}); inspect and remove it",
                           path=str(path)) from None
        _roll_forward(root, journal)
        done = True
    staging = state / STAGING
    if staging.is_dir():
        shutil.rmtree(staging, ignore_errors=True)        # never committed: the workspace never saw these bytes
    return done


def settle(root: Path) -> None:
    """For a reader: finish an interrupted commit first if one is pending and nobody holds the workspace."""
    if not pending(root):
        return
    with contextlib.suppress(EnvironmentFailure, OSError), workspace_lock(root, "finishing an interrupted command"):
        recover(root)


def _load(root: Path) -> Workspace:
    from .crashtest import pause_point
    from .workspace import load_workspace
    ws = load_workspace(root)
    pause_point("loaded")
    return ws


@contextlib.contextmanager
def workspace_txn(root: Path, what: str, *, load: bool = True, label: str = "txn"
                  ) -> Iterator[tuple[Workspace, Txn]]:
    """Lock, recover, load, stage, commit: the one way a command changes a workspace (see the module docstring).

    An exception inside the block commits nothing; what `t.commit()` committed earlier in it stays. `load=False`
    (yields None for the workspace) is for the rebase, whose steps load the workspace themselves when they need it:
    --abort must work on a workspace that no longer loads."""
    with workspace_lock(root, what):
        recover(root)
        t = Txn(root, what, label)
        yield (_load(root) if load else None), t  # type: ignore[misc]
        t.commit()


@contextlib.contextmanager
def workspace_read(root: Path, what: str) -> Iterator[Workspace]:
    """The workspace loaded under the shared lock: for commands that read it consistently and write nothing."""
    settle(root)
    with workspace_lock(root, what, shared=True):
        yield _load(root)


def load_unlocked(root: Path) -> Workspace:
    """The workspace read without the lock (listings): an interrupted commit is finished first when possible."""
    settle(root)
    return _load(root)


# ---- the workspace lock: one patchq writer at a time ---------------------------------------------------------------

@contextlib.contextmanager
def workspace_lock(root: Path, operation: str, *, shared: bool = False) -> Iterator[None]:
    """Lock the workspace: exclusive for commands that write it, shared for those that only read it consistently.

    The lock is an `flock` on `.patchq/lock`. A writer names its pid in the file for the error message and
    removes the file when done. A reader on a workspace it cannot write (read-only file system) reads unlocked:
    nobody can change that workspace under it. Commands take it through `workspace_txn` / `workspace_read`.
    """
    state = root / STATE_DIR
    path = state / "lock"
    if state.is_symlink():
        raise BadInput(f"{STATE_DIR} is a symlink; patchq writes there, so it must be a real folder of the workspace",
                       path=str(state))
    try:
        state.mkdir(parents=True, exist_ok=True)
        fd = _locked(path, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
    except OSError as exc:
        if shared and exc.errno in (errno.EROFS, errno.EACCES):
            yield
            return
        raise
    try:
        os.ftruncate(fd, 0)           # a reader clears what a killed writer left; a writer names itself
        if not shared:
            os.pwrite(fd, f"{os.getpid()} {operation}\n".encode(), 0)
        yield
    finally:
        if not shared:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        os.close(fd)


def _locked(path: Path, mode: int) -> int:
    """An fd of the current lock file holding `mode`, or the error naming who holds it the other way.

    A holder that names nobody is looked at again for a moment before the error: a writer names itself right after
    it takes the lock, and one that has just finished removes the file, which makes the lock free to take."""
    unnamed = 0
    for _ in range(100):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = _lock_holder(path)
            if holder is None and unnamed < _UNNAMED_RETRIES:
                unnamed += 1
                time.sleep(0.01)
                continue
            who = f"patchq pid {holder[0]} ({holder[1]})" if holder else "another patchq process"
            raise EnvironmentFailure(f"workspace is in use by {who}; wait for it or stop it", path=str(path)) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)      # the holder we waited on removed the file meanwhile: lock the new one
    raise EnvironmentFailure("could not take the workspace lock", path=str(path))


_UNNAMED_RETRIES = 20         # 10 ms apart: a lock held by a reader (which names nobody) is refused after ~0.2 s


def _lock_holder(path: Path) -> tuple[int, str] | None:
    try:
        pid, _, op = path.read_text().strip().partition(" ")
        return int(pid), op
    except (OSError, ValueError):
        return None
