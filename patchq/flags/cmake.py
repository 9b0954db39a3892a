"""CMake env reads: `$ENV{X}`, `DEFINED ENV{X}` and `set(ENV{X} ...)`, outside comments and bracket arguments."""

from __future__ import annotations

import re

from ..model import FlagIdiom, FlagRead
from .located import DYNAMIC, Lines, Located, located
from .text import ENV_NAME, blank, end_of_body, end_of_line, past_close, squash, unquote, with_quotes
from .truth import boolean_word

LANGUAGE = "cmake"

_CMAKE_LEXEME = re.compile(r"#\[(=*)\[|#|\[(=*)\[|\"")
_CMAKE_QUOTED = re.compile(r'(?:[^"\\]|\\[\s\S])*')
_CMAKE_COMPARE = r"STREQUAL|STRLESS|STRGREATER|STRLESS_EQUAL|STRGREATER_EQUAL|EQUAL|LESS|GREATER|LESS_EQUAL|" \
                 r"GREATER_EQUAL|MATCHES|VERSION_EQUAL|VERSION_LESS|VERSION_GREATER"


def reads(path: str, text: str) -> list[Located]:
    code = _mask_cmake(text)
    lines = Lines(text)
    found = [item for m in re.finditer(r"\$ENV\{", code) if (item := _cmake_expansion(path, text, code, lines, m))]
    found += [_cmake_defined(path, text, lines, m)
              for m in re.finditer(r"\b(NOT\s+)?DEFINED\s+ENV\{([A-Za-z_]\w*)\}", code)]
    found += [item for m in re.finditer(r"(?i)\bset\s*\(\s*ENV\{([^}\s]*)\}", code)
              if (item := _cmake_set(path, text, code, lines, m))]
    return found


def _mask_cmake(text: str) -> str:
    """Comments and bracket arguments blanked; quoted arguments kept, since `$ENV{X}` expands inside them."""
    out = list(text)
    position = 0
    while True:
        match = _CMAKE_LEXEME.search(text, position)
        if match is None:
            break
        lexeme = match.group()
        if lexeme == '"':
            position = end_of_body(_CMAKE_QUOTED, text, match.end()) + 1
            continue
        if lexeme == "#":
            end = end_of_line(text, match.start())
        else:
            equals = match.group(1) if match.group(1) is not None else match.group(2)
            close = text.find("]" + equals + "]", match.end())
            end = len(text) if close < 0 else close + len(equals) + 2
        blank(out, match.start(), end, keep_newlines=True)
        position = max(end, match.start() + 1)
    return "".join(out)


def _cmake_expansion(path: str, text: str, code: str, lines: Lines, match: re.Match[str]) -> Located | None:
    close = past_close(code, match.end(), "{", "}")
    inner = code[match.end():close - 1]
    name = inner if ENV_NAME.match(inner) else None
    start, end = with_quotes(text, match.start(), close)
    idiom, compared, on, outer_start, outer_end = _cmake_judge(code, start, end)
    read = FlagRead(name=name if name is not None else DYNAMIC, path=path, line=lines.of(match.start()),
                    language="cmake", idiom=idiom, compared_to=compared, default_on=on, dynamic=name is None,
                    expression=squash(text[outer_start:outer_end]))
    column = match.start() - lines.start(lines.of(match.start()))
    return located(read, lines.of(outer_start), lines.of(max(outer_start, outer_end - 1)), column)


def _cmake_judge(code: str, start: int, end: int) -> tuple[FlagIdiom, str | None, bool | None, int, int]:
    line_start = code.rfind("\n", 0, start) + 1
    before, after = code[line_start:start], code[end:end_of_line(code, end)]
    match = re.match(rf"\s+({_CMAKE_COMPARE})\s+(\"[^\"]*\"|[^\s)]+)", after)
    if match:
        return _cmake_compared(match.group(1), unquote(match.group(2)), start, end + match.end())
    match = re.search(rf"(\"[^\"]*\"|[^\s(]+)\s+({_CMAKE_COMPARE})\s+\Z", before)
    if match:
        return _cmake_compared(match.group(2), unquote(match.group(1)), line_start + match.start(), end)
    match = re.search(r"(?i)(?:\b(?:if|elseif|while)\s*\(|\b(?:AND|OR))\s*(NOT\s+)?\Z", before)
    closing = re.match(r"(?i)\s*(?:\)|AND\b|OR\b)", after)
    if match and closing:
        return FlagIdiom.TRUTHY, None, bool(match.group(1)), line_start + match.start(), end + closing.end()
    return FlagIdiom.STRING, None, None, start, end


def _cmake_compared(operation: str, literal: str, start: int, end: int
                    ) -> tuple[FlagIdiom, str | None, bool | None, int, int]:
    if operation.startswith("STR") or operation == "MATCHES" or operation.startswith("VERSION"):
        on = literal == "" if operation == "STREQUAL" else None
        return FlagIdiom.EQUALS, literal, on, start, end
    return FlagIdiom.INT, literal, None, start, end


def _cmake_defined(path: str, text: str, lines: Lines, match: re.Match[str]) -> Located:
    line = lines.of(match.start(2))
    read = FlagRead(name=match.group(2), path=path, line=line, language="cmake", idiom=FlagIdiom.PRESENCE,
                    default_on=bool(match.group(1)), expression=squash(text[match.start():match.end()]))
    return located(read, lines.of(match.start()), lines.of(match.end() - 1), match.start(2) - lines.start(line))


def _cmake_set(path: str, text: str, code: str, lines: Lines, match: re.Match[str]) -> Located | None:
    close = past_close(code, match.end())
    value = squash(text[match.end():close - 1])
    if not value:
        return None  # set(ENV{X}) with no value unsets X
    name = match.group(1) if ENV_NAME.match(match.group(1)) else None
    literal = unquote(value)
    name_at = match.start(1)
    read = FlagRead(name=name if name is not None else DYNAMIC, path=path, line=lines.of(name_at), language="cmake",
                    default=literal, idiom=FlagIdiom.SET,
                    default_on=boolean_word(literal) if "${" not in literal else None, dynamic=name is None,
                    expression=squash(text[match.start():close]))
    return located(read, lines.of(match.start()), lines.of(close - 1), name_at - lines.start(lines.of(name_at)))
