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
