"""Ctrl-C, SIGTERM and SIGHUP end patchq the same way: a message, temporary files removed, exit 128+N.

Python's defaults differ per signal: SIGINT raises KeyboardInterrupt (a traceback when it lands while modules are
still being imported), SIGTERM and SIGHUP kill the process on the spot, leaking temporary folders and leaving a
running git without the SIGTERM it needs to remove its `index.lock`. patchq installs one handler for all three, as
early as it can (patchq/__init__.py, when the package is imported as the program):

- before the command has started (imports), a handler ends the process at once: nothing has been written;
- once it runs, the handler raises `Interrupted`, a KeyboardInterrupt, so every `finally` and context manager
  cleans up on the way out and the git runner stops its git gracefully;
- while a git process is being started (`deferred()`), the signal is held until the process object exists, so
  the runner can always stop the git it started.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """A handled signal: `signum` says which (the exit code is 128 + signum)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _handler(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


def started() -> None:
    """The command runs from here: a signal now unwinds it (cleanup, message, exit code) instead of ending it.

    Only when patchq is the program (patchq/__init__.py installed the early handler); called in-process, as
    tests do, patchq leaves the host's handlers alone.
    """
    from . import _is_program
    if not _is_program() or threading.current_thread() is not threading.main_thread():
        return
    for signum in HANDLED:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _handler)


def exit_code(exc: BaseException) -> int:
    return 128 + getattr(exc, "signum", signal.SIGINT)


def name_of(exc: BaseException) -> str:
    return signal.Signals(getattr(exc, "signum", signal.SIGINT)).name


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP while a child process is being started; deliver them once it is.

    A signal that lands inside `subprocess.Popen(...)` after the child was created would otherwise unwind before
    the caller holds the process object, and the child (git, holding `index.lock`) would run on unattended.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    saved: dict[int, Callable[[int, FrameType | None], Any] | int] = {}
    for signum in HANDLED:
        previous = signal.getsignal(signum)
        if previous is not None and previous is not signal.SIG_IGN:    # None: not set from Python, left alone
            saved[signum] = previous
            signal.signal(signum, lambda s, f: caught.append(s))
    try:
        yield
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)
        if caught:
            first = saved[caught[0]]
            if callable(first):
                first(caught[0], None)      # patchq's handler or Python's KeyboardInterrupt
            raise Interrupted(caught[0])       # the default action would kill us with the child still running
