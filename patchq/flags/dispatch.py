"""Which language a file is, and the one door to that language's reader.

A file's language comes from its name (and, for an extensionless script, its shebang); only then is that language's
module imported, so `patchq flags` over a queue that touches only Python never loads the C, shell or CMake lexers.
Each language module (python, c, shell, cmake, named as `language_of` names the language) exposes the same
interface, the way pre-commit's `languages/` do:

    LANGUAGE: str                                   # its name here
    def reads(path: str, text: str) -> list[Located]  # text has "\\n" line ends; order does not matter
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from pathlib import PurePosixPath

from .located import Located

LANGUAGES = ("python", "c", "shell", "cmake")

_PY_SUFFIXES = frozenset({".py", ".pyi"})
_C_SUFFIXES = frozenset({".c", ".cc", ".cpp", ".cxx", ".h", ".hh", ".hpp", ".cu", ".cuh", ".sycl", ".inl"})
_SHELL_SUFFIXES = frozenset({".sh", ".bash", ".zsh", ".env"})
_SHEBANG = re.compile(r"#!\s*(\S+)(?:[ \t]+([^\n]*))?")
_SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh"})

_readers: dict[str, Callable[[str, str], list[Located]]] = {}


def language_of(path: str, *, text: str | None = None) -> str | None:
    """"python" | "c" | "shell" | "cmake" | None. An extensionless file is a script only by its shebang, so it is
    recognised when its text is given."""
    name = PurePosixPath(path.replace("\\", "/")).name.lower()
    if name == "cmakelists.txt" or name.endswith(".cmake"):
        return "cmake"
    if name == ".env":
        return "shell"
    suffix = PurePosixPath(name).suffix
    if suffix in _PY_SUFFIXES:
        return "python"
    if suffix in _C_SUFFIXES:
        return "c"
    if suffix in _SHELL_SUFFIXES:
        return "shell"
    if not suffix and text is not None:
        return _language_of_shebang(text)
    return None


def analysis_kind(path: str, text: str) -> str | None:
    """What decides a file's reads besides its bytes: its language, and for shell whether it is a dotenv file.
    Two files with the same bytes and the same kind have the same reads (the path only labels them)."""
    language = language_of(path, text=text.replace("\r\n", "\n").replace("\r", "\n"))
    if language == "shell" and PurePosixPath(path.replace("\\", "/")).name.lower().endswith(".env"):
        return "shell-env"
    return language


def reader(language: str) -> Callable[[str, str], list[Located]]:
    """The `reads` function of one language's module, imported on first use."""
    found = _readers.get(language)
    if found is None:
        if language not in LANGUAGES:
            raise ValueError(f"no env-read extractor for language {language!r}")
        found = _readers[language] = importlib.import_module(f"{__package__}.{language}").reads
    return found


def find_all(path: str, text: str) -> list[Located]:
    """Every read of one file, in (line, column, name) order; [] for a file of no known language."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    language = language_of(path, text=text)
    if language is None:
        return []
    return sorted(reader(language)(path, text), key=lambda f: (f.read.line, f.column, f.read.name))


def _language_of_shebang(text: str) -> str | None:
    match = _SHEBANG.match(text)
    if match is None:
        return None
    program = match.group(1).rsplit("/", 1)[-1]
    if program == "env":
        words = [w for w in (match.group(2) or "").split() if not w.startswith("-")]
        program = words[0].rsplit("/", 1)[-1] if words else ""
    if program in _SHELLS:
        return "shell"
    if re.fullmatch(r"python[0-9.]*", program):
        return "python"
    return None
