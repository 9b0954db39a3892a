"""The crash-safety test hook: die exactly like `kill -9` at the N-th durable file operation of a command.

tests/test_crash.py sets PATCHQ_TEST_KILL_AFTER_WRITES=N for N = 1, 2, ... until a command finishes, so every
rename, journal write and cache store that patchq makes is a kill point the tests have tried. Unset (always, for
users), the hook is one environment lookup.
"""

from __future__ import annotations

import os
import signal

TEST_KILL_ENV = "PATCHQ_TEST_KILL_AFTER_WRITES"
_operations = [0]


def file_operation() -> None:
    """Mark one durable file operation (before or after a rename); the N-th one kills the process under test."""
    limit = os.environ.get(TEST_KILL_ENV)
    if limit:
        _operations[0] += 1
        if _operations[0] == int(limit):
            os.kill(os.getpid(), signal.SIGKILL)


TEST_PAUSE_ENV = "PATCHQ_TEST_PAUSE_AT"      # "<point>:<folder>": stop at <point> until <folder>/go exists


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
