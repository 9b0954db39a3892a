"""One lexer for unified diffs: file sections and hunks as written, and the text around them.

It never raises and never judges: the strict validator (`strict.py`) and the lenient reader (`lenient.py`) decide
what the structure means. The one choice it takes is how far a hunk's body reaches:

* `trust_counts=True` (queue files): as far as the header's line counts say, like `git apply`;
* `trust_counts=False` (import): the counts when the body bears them out, else every hunk-shaped line up to the next
  hunk, the next file or the prose after it (`git apply --recount`), with the hunk marked `recounted`.

Each line is looked at a bounded number of times, so lexing is linear in the size of the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HUNK_HEADER = re.compile(rb"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@ ?(.*)$")
BLANK = (b"", b"\r")


@dataclass(frozen=True)
class HunkText:
    """One hunk as written: `lines[start]` is its `@@` line, the body runs to `end` (exclusive)."""

    start: int
    end: int
    ranges: tuple[int, int, int, int] | None   # (old start, old count, new start, new count); None: no ranges
    context: bytes                              # what follows the ranges (a function line), or the bare `@@ text`
    counted: bool                               # the header's counts were met by the body
    seen: tuple[int, int]                       # old and new lines found while following the counts
    recounted: bool = False                     # lenient: the counts were wrong, the body was taken as written
    cut_off: bool = False                       # the text ended while the header still promised lines

    @property
    def context_only(self) -> bool:
        """`@@` alone, or `@@ text` (a function or class line) without line ranges."""
        return self.ranges is None and not self.corrupt

    @property
    def corrupt(self) -> bool:
        return self.ranges is None and self.context[:1] in (b"-", b"@")


@dataclass(frozen=True)
class SectionText:
    """One file section: `diff --git` and its header lines (or a bare `---`/`+++` pair), then its hunks."""

    start: int
    end: int
    git: bool
    header_end: int                  # extended header lines are lines[start + 1 : header_end] (git sections)
    minus: int | None                # index of the `---` line; its `+++` line follows it
    lone_minus: bool                 # a `---` line without `+++` after it (strict refuses it)
    hunks: tuple[HunkText, ...]


@dataclass(frozen=True)
class DiffText:
    """Lines, sections, and the gaps between them: gaps[k] is the text before sections[k]; gaps[-1] the rest."""

    lines: list[bytes]
    sections: tuple[SectionText, ...]
    gaps: tuple[tuple[int, int], ...]


def split_lines(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def _hunk_shaped(line: bytes) -> bool:
    return line[:1] in (b" ", b"+", b"-", b"\\") or line in BLANK


def _pair_at(lines: list[bytes], i: int) -> bool:
    return lines[i].startswith(b"--- ") and i + 1 < len(lines) and lines[i + 1].startswith(b"+++ ")


def lex(data: bytes | list[bytes], *, trust_counts: bool = True) -> DiffText:
    """Cut a diff (or a mail around one) into sections and gaps; see the module docstring for hunk extents."""
    lines = split_lines(data) if isinstance(data, bytes) else data
    n = len(lines)
    sections: list[SectionText] = []
    gaps: list[tuple[int, int]] = []
    gap_start = i = 0
    while i < n:
        line = lines[i]
        if line.startswith(b"diff --git "):
            gaps.append((gap_start, i))
            section = _git_section(lines, i, trust_counts)
        elif _pair_at(lines, i) and (trust_counts or (i + 2 < n and lines[i + 2].startswith(b"@@"))):
            gaps.append((gap_start, i))
            hunks, end = _hunks(lines, i + 2, trust_counts)
            section = SectionText(i, end, False, i, i, False, hunks)
        else:
            i += 1
            continue
        sections.append(section)
        i = gap_start = section.end
    gaps.append((gap_start, n))
    return DiffText(lines, tuple(sections), tuple(gaps))


def _git_section(lines: list[bytes], start: int, trust: bool) -> SectionText:
    n = len(lines)
    i = start + 1
    while i < n and not (lines[i].startswith((b"diff --git ", b"@@ ", b"--- ")) or lines[i] == b"@@"):
        i += 1
    header_end = i
    if i < n and lines[i].startswith(b"--- "):
        if not (i + 1 < n and lines[i + 1].startswith(b"+++ ")):
            return SectionText(start, i, True, header_end, i, True, ())
        hunks, end = _hunks(lines, i + 2, trust)
        return SectionText(start, end, True, header_end, i, False, hunks)
    return SectionText(start, i, True, header_end, None, False, ())


def _hunks(lines: list[bytes], i: int, trust: bool) -> tuple[tuple[HunkText, ...], int]:
    out = []
    while i < len(lines) and lines[i].startswith(b"@@"):
        hunk = _hunk(lines, i, trust)
        out.append(hunk)
        i = hunk.end
    return tuple(out), i


def _hunk(lines: list[bytes], i: int, trust: bool) -> HunkText:
    n = len(lines)
    header = lines[i]
    m = HUNK_HEADER.match(header)
    body = i + 1
    ranges = None
    context = header[2:].strip()
    counted, seen, k, cut_off = False, (0, 0), body, False
    if m:
        want_old = int(m.group(2)) if m.group(2) is not None else 1
        want_new = int(m.group(4)) if m.group(4) is not None else 1
        ranges = (int(m.group(1)), want_old, int(m.group(3)), want_new)
        context = m.group(5)
        old = new = 0
        while k < n and (old < want_old or new < want_new):
            raw = lines[k]
            tag = raw[:1]
            if tag == b" " or raw in BLANK:
                old += 1
                new += 1
            elif tag == b"-":
                old += 1
            elif tag == b"+":
                new += 1
            elif tag != b"\\":
                break
            k += 1
        counted, seen = (old == want_old and new == want_new), (old, new)
        cut_off = not counted and k >= n
        while k < n and lines[k].startswith(b"\\"):
            k += 1
    if trust:
        return HunkText(i, k, ranges, context, counted, seen)
    run = _run_end(lines, body)
    if counted and k <= run and not any(lines[x][:1] in (b"+", b"-") for x in range(k, run)):
        return HunkText(i, k, ranges, context, counted, seen)
    end = run
    if not (run < n and lines[run].startswith(b"@@")):
        while end > body and lines[end - 1] in BLANK:
            end -= 1                # blank lines before prose or the next file separate; they are not context
    return HunkText(i, end, ranges, context, counted, seen, recounted=bool(m), cut_off=cut_off)


def _run_end(lines: list[bytes], i: int) -> int:
    """Where hunk-shaped lines stop: the next `@@`, the next file, a `-- ` signature or a line of prose."""
    n = len(lines)
    while i < n:
        line = lines[i]
        if line.startswith((b"@@", b"diff --git ")) or _pair_at(lines, i):
            break
        if line == b"-- " and (i + 1 >= n or not _hunk_shaped(lines[i + 1])):
            break
        if not _hunk_shaped(line):
            break
        i += 1
    return i
