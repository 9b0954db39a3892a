"""The test hooks, all of them: die like `kill -9` at a counted or named durable operation, or pause at a point.

tests/test_crash.py sets PATCHQ_TEST_KILL_AFTER_WRITES=N for N = 1, 2, ... until a command finishes, so every
rename, journal write and cache store that patchq makes is a kill point the tests have tried. PATCHQ_TEST_CRASH_AT
names one labelled point instead (`swap:committed`, `rebase:applied` ...), for tests that prove recovery from one
particular step. PATCHQ_TEST_PAUSE_AT holds a process at a named point for the two-process tests. Unset (always,
for users), each hook is one environment lookup.
"""

from __future__ import annotations

import os
import signal

TEST_KILL_ENV = "PATCHQ_TEST_KILL_AFTER_WRITES"
TEST_CRASH_ENV = "PATCHQ_TEST_CRASH_AT"
TEST_PAUSE_ENV = "PATCHQ_TEST_PAUSE_AT"      # "<point>:<folder>": stop at <point> until <folder>/go exists
_operations = [0]


def file_operation(label: str = "") -> None:
    """Mark one durable file operation (before or after a rename): the N-th one, or the one named, kills."""
    limit = os.environ.get(TEST_KILL_ENV)
    if limit:
        _operations[0] += 1
        if _operations[0] == int(limit):
            _die()
    if label:
        crash_point(label)


def crash_point(label: str) -> None:
    """A named step that is not itself a file operation (a git run, a saved state): killed only when named."""
    if os.environ.get(TEST_CRASH_ENV) == label:
        _die()


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def pause_point(name: str) -> None:
    """For the two-process tests: at the named point, say so (<folder>/reached) and wait for <folder>/go.

    This lets a test hold one command exactly where it has read the workspace, run another command to the end,
    then let the first go on — the interleaving that loses an update when a command reads before it locks.
    """
    spec = os.environ.get(TEST_PAUSE_ENV)
    if not spec or not spec.startswith(name + ":"):
        return
    import time
    from pathlib import Path
    folder = Path(spec[len(name) + 1:])
    (folder / "reached").write_text(f"{os.getpid()}\n")
    deadline = time.monotonic() + 60
    while not (folder / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
