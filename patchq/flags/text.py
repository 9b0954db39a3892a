"""Small text helpers the lexers share: blanking what is not code, bracket and line ends, quotes, report form.

They live here rather than in one language module so that a file of one language never imports another's lexer.
"""

from __future__ import annotations

import re

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def squash(source: str) -> str:
    """One-line form of a read's source for reports."""
    return " ".join(source.split())


def unquote(word: str) -> str:
    if len(word) >= 2 and word[0] == word[-1] and word[0] in "\"'":
        return word[1:-1]
    return word


def with_quotes(text: str, start: int, end: int) -> tuple[int, int]:
    if start > 0 and end < len(text) and text[start - 1] == '"' and text[end] == '"':
        return start - 1, end + 1
    return start, end


def blank(out: list[str], start: int, end: int, *, keep_newlines: bool) -> None:
    for index in range(start, min(end, len(out))):
        if not (keep_newlines and out[index] == "\n"):
            out[index] = " "


def past_close(code: str, position: int, opener: str = "(", closer: str = ")") -> int:
    """Offset past the `closer` that closes an `opener` already open at `position`."""
    depth = 1
    pattern = re.compile(f"[{re.escape(opener)}{re.escape(closer)}]")
    for match in pattern.finditer(code, position):
        depth += 1 if match.group() == opener else -1
        if depth == 0:
            return match.end()
    return len(code)


def end_of_body(pattern: re.Pattern[str], text: str, start: int) -> int:
    """Where a literal's body that starts at `start` ends. The body patterns are repetitions (`(?:...)*`), which
    always match, if only the empty string."""
    match = pattern.match(text, start)
    if match is None:
        raise ValueError(f"body pattern {pattern.pattern!r} can match the empty string, so it must match")
    return match.end()


def end_of_line(code: str, index: int) -> int:
    end = code.find("\n", index)
    return len(code) if end < 0 else end
