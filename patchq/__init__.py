"""patchq: annotated patch queues against pinned upstreams, applied, rebased, audited and bundled."""

import sys as _sys

__version__ = "0.1.0"


def _is_program() -> bool:
    """Whether patchq is the program being run (`patchq ...` or `python -m patchq ...`), not a library."""
    argv = list(getattr(_sys, "orig_argv", ()))
    if len(argv) >= 2 and argv[1].rsplit("/", 1)[-1] == "patchq":
        return True
    return any(argv[i] == "-m" and argv[i + 1] == "patchq" for i in range(len(argv) - 1))


def _early_signal(signum: int, frame: object) -> None:
    """A signal before the command has started: nothing is written yet, so end at once and quietly."""
    import os
    os.write(2, b"interrupted: nothing was started\n")
    os._exit(128 + signum)


if _is_program():
    # First thing, with only the builtin _signal module: a Ctrl-C while the CLI's modules still import gives no
    # traceback. patchq.signals replaces this handler once the command runs.
    import _signal
    for _signum in (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP):
        if _signal.getsignal(_signum) is not _signal.SIG_IGN:
            _signal.signal(_signum, _early_signal)
