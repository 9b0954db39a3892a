"""Python source to a tree: versions of one file built from the statements they share, and a tree even when the
source does not parse.

The audit reads every version of a file a queue leaves; `parse_in_pieces` builds each from the top-level statements
of the versions before it (the section below says how). A lab patch often leaves a file mid-edit: then each logical
line is parsed on its own, and from the lines that still fail each env read (with the int()/.lower()/== around it)
is cut out and parsed alone, at its real line and column, so the read finder sees the same kinds of nodes either way.
"""

from __future__ import annotations

import ast
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

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


# ---- versions of one file, parsed statement by statement --------------------------------------------------------
#
# An audit parses every version of a file that a patch leaves (39 versions of one model file in the lab workspace);
# they share almost every top-level statement. The source is cut where a line starts at column 0 with code that can
# begin a statement, each piece is parsed alone (its statements remembered by their text), and the pieces' bodies
# put together are the module ast.parse gives: a cut inside a string, a bracket, a continued line or between a
# decorator and its function leaves a piece that does not parse, and that piece is joined to the next and tried
# again; `else`/`elif`/`except`/`finally` lines are never cut before. A file whose pieces still fail is parsed whole.

_PIECE_START = re.compile(r"^(?=[^\s#)\]}])(?!(?:else|elif|except|finally)\b)", re.M)
_TRIPLE_QUOTE = re.compile(r'"""|\'\'\'')
_MAX_JOINS = 8                     # pieces joined to one that does not parse before the file is parsed whole
_KEPT_BYTES = 2 << 20              # text of the remembered pieces (a tree is ~40x its text); oldest file goes first


@dataclass
class Piece:
    """Top-level statements parsed from one stretch of text, reused by every version where that text recurs."""

    statements: list[ast.stmt]
    first_line: int                # the line its statements carry now
    lined: list[ast.AST] | None = None   # its nodes that carry lines, found by the first move
    walked: object = None          # what a reader derived from the statements (python_names), kept with them


class _Memory(threading.local):
    """Remembered pieces by file, per thread: a piece's statements are moved in place when reused, so a tree is
    only ever rebuilt by the thread that is done with the last one."""

    def __init__(self) -> None:
        self.files: OrderedDict[str, dict[str, Piece]] = OrderedDict()
        self.bytes = 0

    def of(self, name: str) -> dict[str, Piece]:
        pieces = self.files.pop(name, None)
        self.files[name] = pieces if pieces is not None else {}
        while self.bytes > _KEPT_BYTES and len(self.files) > 1:
            _, dropped = self.files.popitem(last=False)
            self.bytes -= sum(len(text) for text in dropped)
        return self.files[name]

    def keep(self, pieces: dict[str, Piece], text: str, piece: Piece) -> None:
        pieces[text] = piece
        self.bytes += len(text)

    def forget(self) -> None:
        self.files.clear()
        self.bytes = 0


_memory = _Memory()


def forget_pieces() -> None:
    """Let the remembered trees go (this thread's): after a batch of analyses, so the memory and the cycle
    collector's walks over it end with the batch."""
    _memory.forget()


def parse_in_pieces(source: str, name: str) -> ast.Module | None:
    """The tree ast.parse gives for `source`, built from the pieces of earlier versions of file `name` where their
    text recurs; None when the source does not parse (then the caller decides, as for parse_python). A version
    mostly new is parsed whole (one parse is faster than many) and its statements remembered as pieces."""
    return parse_as_pieces(source, name)[0]


def parse_as_pieces(source: str, name: str) -> tuple[ast.Module | None, list[Piece]]:
    """parse_in_pieces, with the pieces whose statements make up the tree's body, in order (none when the tree
    was not built from pieces), so a reader can keep what it derives from a piece for the next version."""
    if "\r" in source or "\0" in source or source.startswith("\ufeff"):
        return parse_python(source), []    # line ends and bytes this cutting does not reason about
    cuts = _cuts(source)
    if len(cuts) < 3:
        return parse_python(source), []
    pieces = _memory.of(name)
    texts = [source[start:end] for start, end in zip(cuts, cuts[1:])]
    known = sum(len(text) for text in texts if text in pieces)
    if known * 2 < len(source):
        tree = parse_python(source)
        return tree, ([] if tree is None else _remember(source, cuts, tree.body, pieces))
    return _joined(source, cuts, texts, pieces)


def _remember(source: str, cuts: list[int], body: list[ast.stmt], pieces: dict[str, Piece]) -> list[Piece]:
    """A whole tree kept as pieces: the statements between two cuts where a statement starts (decorators
    included), with the text from one such cut to the next: the text that parsed alone gives those statements.
    Returns every piece of the body (one whose text is remembered already is not kept again)."""
    if not body:
        return []
    starts: dict[int, int] = {}
    for number, statement in enumerate(body):
        decorators = getattr(statement, "decorator_list", ())
        starts.setdefault(min([statement.lineno, *(d.lineno for d in decorators)]), number)
    bounds = [(0, 1, 0)]                    # (offset, line, first statement)
    line = 1
    for previous, cut in zip(cuts, cuts[1:-1]):
        line += source.count("\n", previous, cut)
        begins = starts.get(line)
        if begins is not None and begins > bounds[-1][2]:
            bounds.append((cut, line, begins))
    bounds.append((len(source), line, len(body)))
    made = []
    for (start, first_line, first), (end, _, stop) in zip(bounds, bounds[1:]):
        text = source[start:end]
        piece = Piece(body[first:stop], first_line)
        if text not in pieces:
            _memory.keep(pieces, text, piece)
        made.append(piece)
    return made


def _joined(source: str, cuts: list[int], texts: list[str], pieces: dict[str, Piece]
            ) -> tuple[ast.Module | None, list[Piece]]:
    body: list[ast.stmt] = []
    made: list[Piece] = []
    used: set[int] = set()
    line = 1
    index = 0
    while index < len(texts):
        for joined in range(1, _MAX_JOINS + 2):
            end = min(index + joined, len(texts))
            text = texts[index] if end == index + 1 else source[cuts[index]:cuts[end]]
            piece = _piece(text, line, used, pieces)
            if piece is not None or end == len(texts):
                break
        if piece is None:
            return parse_python(source), []
        body.extend(piece.statements)
        made.append(piece)
        line += text.count("\n")
        index = end
    return ast.Module(body=body, type_ignores=[]), made


def _cuts(source: str) -> list[int]:
    """Where pieces start (0 first, the end last). A line after a decorator, or inside what looks like a
    triple-quoted string, is not a cut: it would only give a piece that fails and is joined again."""
    strings: list[tuple[int, int]] = []
    opened: tuple[str, int] | None = None
    for match in _TRIPLE_QUOTE.finditer(source):
        if opened is None:
            opened = (match.group(), match.start())
        elif match.group() == opened[0]:
            strings.append((opened[1], match.end()))
            opened = None
    cuts = [0]
    previous = 0
    spans = iter(strings)
    span = next(spans, None)
    for match in _PIECE_START.finditer(source):
        at = match.start()
        while span is not None and span[1] <= at:
            span = next(spans, None)
        decorated = source.startswith("@", previous)
        previous = at
        if at == 0 or decorated or (span is not None and span[0] < at):
            continue
        cuts.append(at)
    cuts.append(len(source))
    return cuts


def _piece(text: str, line: int, used: set[int], pieces: dict[str, Piece]) -> Piece | None:
    """One piece's statements at `line`: remembered ones moved there, else parsed (None: it does not parse)."""
    piece = pieces.get(text)
    if piece is not None and id(piece) not in used:
        used.add(id(piece))
        if piece.first_line != line:
            _move(piece, line - piece.first_line)
            piece.first_line = line
        return piece
    tree = parse_python("\n" * (line - 1) + text)       # parsed at its real lines
    if tree is None:
        return None
    fresh = Piece(tree.body, line)
    if piece is None:                  # a second copy of a remembered text in one version stays unremembered
        _memory.keep(pieces, text, fresh)
        used.add(id(fresh))
    return fresh


def _move(piece: Piece, by: int) -> None:
    """Every line number in the piece's statements moved by `by`. The first move finds the nodes that carry lines
    (ast.increment_lineno's walk, in a third of its time: fields that never hold a node are not visited, nor the
    shared operator and context objects); later moves of the same piece only add."""
    lined = piece.lined
    if lined is None:
        lined = piece.lined = _lined_nodes(piece.statements)
    for node in lined:
        node.lineno += by                            # type: ignore[attr-defined]
        node.end_lineno += by                        # type: ignore[attr-defined]


def _lined_nodes(statements: list[ast.stmt]) -> list[ast.AST]:
    table = _MOVE_TABLE
    found: list[ast.AST] = []
    stack: list[ast.AST] = list(statements)
    pop, push, keep = stack.pop, stack.append, found.append
    while stack:
        node = pop()
        kind = type(node)
        entry = table.get(kind)
        if entry is None:
            entry = table[kind] = ("lineno" in kind._attributes,
                                   () if kind in (ast.Constant, ast.MatchSingleton)
                                   else tuple(name for name in kind._fields if name not in _NO_NODES))
        lined, names = entry
        if lined:
            keep(node)
        for name in names:
            value = getattr(node, name, None)
            if isinstance(value, ast.AST):
                push(value)
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, ast.AST):
                        push(item)
    return found


_MOVE_TABLE: dict[type[ast.AST], tuple[bool, tuple[str, ...]]] = {}
_NO_NODES = frozenset({"ctx", "op", "ops", "id", "attr", "arg", "module", "level", "conversion", "is_async",
                       "simple", "type_comment", "kind", "name", "tag"})


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
