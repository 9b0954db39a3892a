"""Env-flag extraction: every place a source file reads (or sets) an environment variable.

Lab patches gate nearly every change behind an environment variable that defaults to off, and `patchq flags` audits
them. Python is read with `ast`, so a docstring that merely mentions `os.environ.get("X")` is not a read; C/C++, shell
and CMake are read with small lexers that know where comments and literals are, so only code counts. Each read says
where it is, its default, how its value is compared, and whether that default turns the gated path on.

This package's door is here; `dispatch` picks the language by path and imports only that language's module
(`python`, `c`, `shell`, `cmake`, each with the same `reads(path, text)`), which share `located` (the found-read
type), `text` (lexer helpers) and `truth` (what counts as on).

Conventions worth knowing when reading the results:
- `default_on` describes the gated path, not the variable: `if not os.getenv("X"):` is on by default.
- A string used as a truth value counts as off when it is empty, "0", "false", "no" or "off" (the lab's intent),
  even where Python would call `"0"` true.
- `compared_to` joins the alternatives of a membership test with "|": `... in ("1", "true")` gives "1|true".
- A read whose name is computed at run time is reported with name "<dynamic>", never dropped.
"""

from __future__ import annotations

from dataclasses import replace

from ..model import FlagRead
from .dispatch import analysis_kind, find_all, language_of
from .located import DYNAMIC, Located
from .truth import default_on_from_fields

__all__ = ["DYNAMIC", "Located", "analysis_kind", "is_default_off", "language_of", "located_reads",
           "read_flag_reads", "reads_in_lines", "reads_touching"]


def read_flag_reads(path: str, text: str) -> list[FlagRead]:
    """All env reads in one file's text; language chosen from the path (and shebang). Never raises on bad source:
    Python that does not parse falls back to a careful line scanner and still reports what it can."""
    return [found.read for found in find_all(path, text)]


def reads_in_lines(path: str, text: str, lines: set[int], *, removed: bool = False) -> list[FlagRead]:
    """Only the reads whose expression touches one of the given 1-based lines: the lines a patch adds, or with
    removed=True the pre-image lines it removes (those reads are marked removed=True)."""
    wanted = [found.read for found in find_all(path, text) if found.touches(lines)]
    return [replace(read, removed=True) for read in wanted] if removed else wanted


def located_reads(path: str, text: str) -> list[Located]:
    """Every read of a file with the lines its expression spans (what `reads_in_lines` filters); cacheable by
    content and `analysis_kind`."""
    return find_all(path, text)


def reads_touching(located: list[Located], lines: set[int], *, path: str, removed: bool = False) -> list[FlagRead]:
    """`reads_in_lines` over reads located before (in this file's text, possibly under another path)."""
    wanted = [found.read for found in located if found.touches(lines)]
    return [replace(read, path=path, removed=removed) if read.path != path or removed else read for read in wanted]


def is_default_off(read: FlagRead) -> bool | None:
    """True when leaving the variable unset keeps the gated path off; None when that cannot be known.

    Uses the extractor's `default_on` when it worked one out, else judges the recorded default by the idiom, so a
    FlagRead built by hand (from a run profile, say) is judged the same way."""
    on = read.default_on if read.default_on is not None else default_on_from_fields(read)
    return None if on is None else not on
