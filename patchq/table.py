"""Plain text output without rich: markup, styled text, and tables that never cut a word.

Ids, flags, paths and commands must survive any terminal width and any pipe, so nothing here breaks inside a word:
cells wrap at spaces only, each column is at least as wide as its longest word, and when the columns cannot all fit
the table turns into one block per row (`name  value` lines). Piped output has no width limit at all. Colour is
ANSI escapes, only when asked for. This module imports nothing heavy: it is on every command's path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

_ANSI = {"bold": "1", "dim": "2", "italic": "3", "underline": "4", "red": "31", "green": "32", "yellow": "33",
         "blue": "34", "magenta": "35", "cyan": "36", "white": "37"}
_TAG = re.compile(r"(\\?)\[(/?)([a-z#][a-z0-9# ]*)?\]")
_WORD = re.compile(r"\S+|[^\S\n]+|\n")

Segment = tuple[str, str]          # (text, style words such as "bold red"; "" for none)


_HEX = re.compile(r"#[0-9a-fA-F]{6}")


def _is_style(words: str) -> bool:
    """Style words rich would accept here: names of _ANSI and `#rrggbb` colours (shown without a colour)."""
    parts = words.split()
    return bool(parts) and all(p in _ANSI or _HEX.fullmatch(p) for p in parts)


def parse_markup(text: str) -> list[Segment]:
    """rich-style `[bold red]...[/]` markup as segments; brackets that are not styles (`[STACK]`) stay text."""
    if "[" not in text:
        return [(text, "")]
    out: list[Segment] = []
    stack: list[str] = []
    pos = 0
    for m in _TAG.finditer(text):
        escaped, closing, words = m.group(1), m.group(2), m.group(3) or ""
        if escaped:
            out.append((text[pos:m.start()] + m.group(0)[1:], " ".join(stack)))
            pos = m.end()
            continue
        if closing and (not words or _is_style(words)):
            out.append((text[pos:m.start()], " ".join(stack)))
            if stack:
                stack.pop()
        elif not closing and _is_style(words):
            out.append((text[pos:m.start()], " ".join(stack)))
            stack.append(words)
        else:
            continue
        pos = m.end()
    out.append((text[pos:], " ".join(stack)))
    return [s for s in out if s[0]]


class Text:
    """A string with one style, never read as markup (for values that may hold brackets)."""

    def __init__(self, text: str = "", style: str = "") -> None:
        self.plain = str(text)
        self.style = style or ""

    def segments(self) -> list[Segment]:
        return [(self.plain, self.style)] if self.plain else []

    def __str__(self) -> str:
        return self.plain


Cell = str | Text | None


def segments_of(value: Cell) -> list[Segment]:
    if value is None:
        return []
    if isinstance(value, Text):
        return value.segments()
    return parse_markup(str(value))


def paint(segments: Iterable[Segment], color: bool) -> str:
    if not color:
        return "".join(t for t, _ in segments)
    parts = []
    for text, style in segments:
        codes = [_ANSI[w] for w in style.split() if w in _ANSI]
        parts.append(f"\x1b[{';'.join(codes)}m{text}\x1b[0m" if codes and text else text)
    return "".join(parts)


def wrap_segments(segments: Sequence[Segment], width: int | None) -> list[list[Segment]]:
    """Lines of at most `width` characters, broken at spaces and newlines only; a longer word gets its own line."""
    tokens: list[Segment] = []
    for text, style in segments:
        tokens.extend((m.group(0), style) for m in _WORD.finditer(text))
    lines: list[list[Segment]] = [[]]
    used = 0
    for text, style in tokens:
        if text == "\n":
            lines.append([])
            used = 0
            continue
        blank = not text.strip()
        if width is not None and used + len(text) > width and used > 0:
            if blank:
                continue              # the break eats the space
            lines.append([])
            used = 0
        if blank and used == 0 and len(lines) > 1 and width is not None:
            continue                  # no leading spaces on a wrapped line
        lines[-1].append((text, style))
        used += len(text)
    return lines


def _length(line: Sequence[Segment]) -> int:
    return sum(len(t) for t, _ in line)


def longest_word(segments: Sequence[Segment]) -> int:
    text = "".join(t for t, _ in segments)
    return max((len(w) for w in text.split()), default=0)


def natural_width(segments: Sequence[Segment]) -> int:
    text = "".join(t for t, _ in segments)
    return max((len(line) for line in text.split("\n")), default=0)


@dataclass
class Column:
    header: str
    justify: str = "left"
    style: str = ""


@dataclass
class Table:
    """A rich-like table (add_column / add_row) laid out by `render_table`."""

    title: str = ""
    title_justify: str = "left"
    show_lines: bool = False
    show_header: bool = True
    columns: list[Column] = field(default_factory=list)
    rows: list[list[Cell]] = field(default_factory=list)

    def __init__(self, title: str = "", title_justify: str = "left", show_lines: bool = False,
                 show_header: bool = True, **_: object) -> None:
        self.title, self.title_justify, self.show_lines = title or "", title_justify, show_lines
        self.show_header = show_header
        self.columns, self.rows = [], []

    def add_column(self, header: str, *, justify: str = "left", style: str | None = None, **_: object) -> None:
        self.columns.append(Column(header, justify, style or ""))

    def add_row(self, *cells: Cell) -> None:
        row = list(cells) + [None] * (len(self.columns) - len(cells))
        self.rows.append(row[:len(self.columns)])


GAP = 2


def _cell_segments(cell: Cell, column: Column) -> list[Segment]:
    segs = segments_of(cell)
    if column.style:
        segs = [(t, f"{column.style} {s}".strip()) for t, s in segs]
    return segs


def column_widths(table: Table, width: int | None) -> list[int] | None:
    """Widths that fit `width` without breaking any word, or None when only the vertical layout can."""
    cells = [[_cell_segments(c, col) for c, col in zip(row, table.columns)] for row in table.rows]
    shown = [col.header if table.show_header else "" for col in table.columns]
    minimum = [max([longest_word([(shown[i], "")])] + [longest_word(r[i]) for r in cells])
               for i, col in enumerate(table.columns)]
    natural = [max([len(shown[i])] + [natural_width(r[i]) for r in cells]) for i, col in enumerate(table.columns)]
    if width is None:
        return natural
    room = width - GAP * (len(table.columns) - 1)
    if sum(minimum) > room:
        return None
    widths = list(minimum)
    extra = room - sum(minimum)
    wanting = sorted(range(len(widths)), key=lambda i: natural[i] - minimum[i])
    for n, i in enumerate(wanting):
        give = min(natural[i] - minimum[i], extra // (len(wanting) - n))
        widths[i] += give
        extra -= give
    return widths


def render_table(table: Table, width: int | None, color: bool) -> list[str]:
    """The table as lines: columns when every word fits, else one `header  value` block per row."""
    out: list[str] = []
    if table.title:
        out.append(paint(parse_markup(table.title), color))
    if not table.columns:
        return out
    widths = column_widths(table, width)
    if widths is None:
        return out + _vertical(table, width, color)
    header = [[(col.header, "bold")] for col in table.columns]
    body = [[_cell_segments(c, col) for c, col in zip(r, table.columns)] for r in table.rows]
    for row in [*([header] if table.show_header else []), *body]:
        wrapped = [wrap_segments(cell, w) for cell, w in zip(row, widths)]
        height = max(len(w) for w in wrapped)
        for n in range(height):
            parts = []
            for i, (cell_lines, w) in enumerate(zip(wrapped, widths)):
                line = cell_lines[n] if n < len(cell_lines) else []
                pad = " " * max(0, w - _length(line))
                text = paint(line, color)
                last = i == len(widths) - 1
                if table.columns[i].justify == "right":
                    parts.append(pad + text)
                else:
                    parts.append(text if last else text + pad)
            out.append((" " * GAP).join(parts).rstrip())
    return out


def _vertical(table: Table, width: int | None, color: bool) -> list[str]:
    label = max(len(c.header) for c in table.columns)
    out: list[str] = []
    room = None if width is None else max(1, width - label - GAP)
    for number, row in enumerate(table.rows):
        if number:
            out.append("")
        for col, cell in zip(table.columns, row):
            segs = _cell_segments(cell, col)
            if not "".join(t for t, _ in segs).strip():
                continue
            lines = wrap_segments(segs, room)
            name = paint([(col.header.rjust(label), "dim")], color)
            out.append(f"{name}{' ' * GAP}{paint(lines[0], color)}".rstrip())
            out.extend((" " * (label + GAP) + paint(line, color)).rstrip() for line in lines[1:])
    return out
