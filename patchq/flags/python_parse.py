"""Python source to a tree, even when it does not parse.

A lab patch often leaves a file mid-edit. Then each logical line is parsed on its own, and from the lines that still
fail each env read (with the int()/.lower()/== around it) is cut out and parsed alone, at its real line and column,
so the read finder sees the same kinds of nodes either way.
"""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Iterator

from .located import Lines
from .text import blank, end_of_body


def parse_python(source: str) -> ast.Module | None:
    """The tree of `source`, or None when it does not parse (its warnings are not the user's business)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ast.parse(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
            return None


_PY_LEXEME = re.compile(r"#|'''|\"\"\"|'|\"")
_PY_STRING_BODY = {
    "'''": re.compile(r"(?:[^'\\]|\\[\s\S]|'(?!''))*"), '"""': re.compile(r'(?:[^"\\]|\\[\s\S]|"(?!""))*'),
    "'": re.compile(r"(?:[^'\\\n]|\\[\s\S])*"), '"': re.compile(r'(?:[^"\\\n]|\\[\s\S])*')}
_PY_READ_START = re.compile(
    r"(?<![\w.])(?:[A-Za-z_]\w*\s*\.\s*)*(?:environ\s*(?:\.\s*(?:get|setdefault|pop)\s*(?=\()|(?=\[))|getenv\s*(?=\())")
_PY_PRESENCE = re.compile(r"(['\"])[^'\"\n]*\1\s+(?:not\s+)?in\s+(?:[A-Za-z_]\w*\s*\.\s*)*environ\b")
_PY_WRAPPER_BEFORE = re.compile(r"(?<![\w.])(?:int|float|bool|str)\s*\(\s*\Z")
_PY_METHOD_AFTER = re.compile(r"\s*\.\s*(?:lower|upper|strip|lstrip|rstrip|casefold)\s*\(\s*\)")
_PY_COMPARE_AFTER = re.compile(r"\s*(?:==|!=|>=|<=|>|<|not\s+in\b|in\b|is\s+not\b|is\b)\s*")
_CLOSING_PAREN = re.compile(r"\s*\)")
_BRACKET = re.compile(r"[()\[\]{}]")
_PY_HEADER = re.compile(r"(?:if|elif|while|for|with|def|class|try|except|else|finally|async)\b")


def salvage_python(text: str) -> ast.Module:
    """Broken Python: parse each logical line on its own, and cut reads out of the lines that still fail."""
    code = _python_code(text)
    lines = Lines(text)
    body: list[ast.stmt] = []
    for start, end in _python_units(code):
        if not code[start:end].strip():
            continue
        statements = _parse_unit(text[start:end], lines.of(start))
        if statements is None:
            statements = _read_snippets(text, code, start, end, lines)
        body.extend(statements)
    return ast.Module(body=body, type_ignores=[])


def _python_code(text: str) -> str:
    """The text with comments and string contents blanked (quotes kept), so only code is searched."""
    out = list(text)
    position = 0
    while True:
        match = _PY_LEXEME.search(text, position)
        if match is None:
            break
        if match.group() == "#":
            end = text.find("\n", match.start())
            end = len(text) if end < 0 else end
            blank(out, match.start(), end, keep_newlines=True)
            position = end
            continue
        quote = match.group()
        end = end_of_body(_PY_STRING_BODY[quote], text, match.end())
        closed = text.startswith(quote, end)
        blank(out, match.end(), end, keep_newlines=False)
        position = end + (len(quote) if closed else 0)
    return "".join(out)


def _python_units(code: str) -> Iterator[tuple[int, int]]:
    """Logical lines: a newline ends a statement unless brackets are open or the line ends with a backslash."""
    depth, start = 0, 0
    for match in re.finditer(r"[()\[\]{}\n]", code):
        char, index = match.group(), match.start()
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth = max(0, depth - 1)
        elif depth == 0 and not (index > 0 and code[index - 1] == "\\"):
            yield start, index
            start = index + 1
    yield start, len(code)


def _parse_unit(source: str, line: int) -> list[ast.stmt] | None:
    """One logical line as statements at their real lines and columns, or None when it does not parse alone."""
    stripped = source.lstrip(" \t")
    indent = source[:len(source) - len(stripped)]
    if stripped.startswith("elif") and re.match(r"elif\b", stripped):
        source = indent + "if  " + stripped[4:]
    if _PY_HEADER.match(stripped) and source.rstrip().endswith(":"):
        source += "\n" + indent + " pass"
    elif stripped.startswith("@"):
        source += "\n" + indent + "def _(): pass"
    wrapped = "if 1:\n" + source if indent else source
    tree = parse_python(wrapped)
    if tree is None or not tree.body:
        return None
    statements = tree.body[0].body if indent and isinstance(tree.body[0], ast.If) else tree.body
    for statement in statements:
        ast.increment_lineno(statement, line - 2 if indent else line - 1)
    return statements


def _read_snippets(text: str, code: str, start: int, end: int, lines: Lines) -> list[ast.stmt]:
    """Cut each env read (with its int()/.lower()/== context) out of a line that does not parse, and parse that."""
    statements = []
    spans = [_widen_read(code, m.start(), m.end(), start, end)
             for m in _PY_READ_START.finditer(code, start, end)]
    spans += [(m.start(), m.end(), m.start(), m.end()) for m in _PY_PRESENCE.finditer(code, start, end)]
    for wide_start, wide_end, core_start, core_end in spans:
        if core_end <= core_start:
            continue
        parsed = _parse_snippet(text, wide_start, wide_end, lines)
        if parsed is None and (wide_start, wide_end) != (core_start, core_end):
            parsed = _parse_snippet(text, core_start, core_end, lines)
        if parsed is not None:
            statements.append(parsed)
    return statements


def _widen_read(code: str, start: int, opener: int, lo: int, hi: int) -> tuple[int, int, int, int]:
    """(wide start, wide end, core start, core end): the read plus the int()/.lower()/== around it."""
    close = _balanced_end(code, opener, hi)
    if close is None:
        return start, start, start, start
    wide_start, wide_end = start, close
    while True:
        before = _PY_WRAPPER_BEFORE.search(code, lo, wide_start)
        after = _CLOSING_PAREN.match(code, wide_end, hi)
        if before is None or after is None:
            break
        wide_start, wide_end = before.start(), after.end()
    while (method := _PY_METHOD_AFTER.match(code, wide_end, hi)) is not None:
        wide_end = method.end()
    compare = _PY_COMPARE_AFTER.match(code, wide_end, hi)
    if compare is not None:
        operand_end = _operand_end(code, compare.end(), hi)
        if operand_end is not None:
            wide_end = operand_end
    return wide_start, wide_end, start, close


def _balanced_end(code: str, opener: int, hi: int) -> int | None:
    """Index just past the bracket that closes the one at `opener` (string contents are already blanked)."""
    depth = 0
    for match in _BRACKET.finditer(code, opener, hi):
        depth += 1 if match.group() in "([{" else -1
        if depth == 0:
            return match.end()
    return None


def _operand_end(code: str, index: int, hi: int) -> int | None:
    """End of a literal operand after a comparison: a string, a number, None, or a bracketed collection."""
    match = re.compile(r"""[rRbBuU]?(['"])[ ]*\1|-?\d+(?:\.\d+)?|None\b|True\b|False\b""").match(code, index, hi)
    if match is not None:
        return match.end()
    if index < hi and code[index] in "([{":
        return _balanced_end(code, index, hi)
    return None


def _parse_snippet(text: str, start: int, end: int, lines: Lines) -> ast.stmt | None:
    """Parse text[start:end] alone, keeping the line and byte column it has in the file."""
    line = lines.of(start)
    prefix = text[lines.start(line):start]
    column = len(prefix.encode("utf-8"))
    snippet = text[start:end]
    source = snippet if column == 0 else "(" + " " * (column - 1) + snippet + ")"
    tree = parse_python(source)
    if tree is None or len(tree.body) != 1 or not isinstance(tree.body[0], ast.Expr):
        return None
    ast.increment_lineno(tree.body[0], line - 1)
    return tree.body[0]
