"""The one error type users see: a one-line cause, where it happened, and the exit code it maps to.

Exit codes (documented in README): 0 ok, 1 the patches need you (conflict, failed build, audit findings),
2 bad input (malformed files, unknown names, unsafe paths), 3 the environment failed (git missing, fetch failed,
workspace locked).
"""

from __future__ import annotations

import errno

EXIT_OK = 0
EXIT_NEEDS_YOU = 1
EXIT_BAD_INPUT = 2
EXIT_ENVIRONMENT = 3


class PatchqError(Exception):
    """A failure explained for a person: `path:line: message`, never a traceback."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 hint: str | None = None, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.line = line
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def where(self) -> str:
        if self.path is None:
            return ""
        return f"{self.path}:{self.line}: " if self.line else f"{self.path}: "

    def __str__(self) -> str:
        return f"{self.where()}{self.message}"


class BadInput(PatchqError):
    """The user's files or arguments are wrong; nothing was changed."""

    exit_code = EXIT_BAD_INPUT


class NeedsYou(PatchqError):
    """The operation stopped where a person has to decide (a conflict, a failed build)."""

    exit_code = EXIT_NEEDS_YOU


class EnvironmentFailure(PatchqError):
    """Something outside patchq failed: git is missing, a fetch failed, the workspace is locked."""

    exit_code = EXIT_ENVIRONMENT


OS_ERROR_ADVICE = {
    errno.ENOSPC: "no space left on device; free some space and run the command again",
    errno.EDQUOT: "disk quota exceeded; free some space and run the command again",
    errno.EFBIG: "file too large for this file system or process limit (ulimit -f)",
    errno.EROFS: "read-only file system; patchq needs to write here",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


def describe_os_error(exc: OSError) -> str:
    """One line for a refused file operation: the file, the cause, and what to do; nothing half-written stays."""
    cause = OS_ERROR_ADVICE.get(exc.errno or 0, exc.strerror or str(exc))
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{cause} (the workspace keeps its previous state)"
