"""Anchoring: where each hunk without trustworthy line numbers goes in the file it changes.

A context-only hunk (`@@`, `@@ def foo():`) or a recounted one is placed by searching its pre-image (context and
removed lines) in the target file — at the pin, or on top of the patches it requires:

1. exactly one place: there;
2. several: the first after the previous hunk of the same file; a line number in the header (a recounted hunk
   keeps its written one as a hint) decides among them, or decides alone for the first hunk of a file;
3. none: the same search ignoring whitespace — the hunk is then written with the file's own text and the patch's
   outcome is `fuzz`, with a remark naming the hunk;
4. still none: the hunk stays unplaced and the patch is imported as a conflict with its `missing_context`;
5. still ambiguous after these rules: refused, naming the candidate lines. Never a silent guess.

Trusted hunks (exact header, counts that match the body) are not moved: `git apply` judges them as written.
The file is indexed once (line -> positions), and each hunk is looked up by its rarest line, so anchoring costs
about the size of the file plus the size of the hunks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..patchtext.lenient import LooseHunk, RawSection
from .items import Refused


@dataclass(frozen=True)
class Placed:
    """A hunk with exact line numbers, ready to be written."""

    old_start: int
    new_start: int
    body: tuple[bytes, ...]
    context: bytes
    anchored: bool = False           # placed by searching its context (its header was not trusted)

    @property
    def old_count(self) -> int:
        return sum(1 for raw in self.body if raw[:1] in (b" ", b"-"))

    @property
    def new_count(self) -> int:
        return sum(1 for raw in self.body if raw[:1] in (b" ", b"+"))

    def lines(self) -> list[bytes]:
        def rng(start: int, count: int) -> str:
            return f"{start}" if count == 1 else f"{start},{count}"
        header = f"@@ -{rng(self.old_start, self.old_count)} +{rng(self.new_start, self.new_count)} @@".encode()
        if self.context:
            header += b" " + self.context
        return [header, *self.body]


@dataclass
class Anchoring:
    """The placed hunks of every section, and what anchoring found on the way."""

    hunks: list[list[Placed]] = field(default_factory=list)
    fuzz: list[str] = field(default_factory=list)          # hunks found only ignoring whitespace
    unplaced: list[tuple[int, LooseHunk]] = field(default_factory=list)   # (section index, hunk): found nowhere
    anchored: int = 0                                      # hunks placed by their context


class FileIndex:
    """The lines of one file, indexed by content (exact, and with whitespace removed) for anchoring."""

    def __init__(self, data: bytes) -> None:
        self.lines = data.split(b"\n")
        self.newline_at_end = not data or data.endswith(b"\n")
        if self.lines and self.lines[-1] == b"":
            self.lines.pop()
        self._exact: dict[bytes, list[int]] | None = None
        self._loose: dict[bytes, list[int]] | None = None
        self._loose_lines: list[bytes] = []

    def positions(self, loose: bool) -> dict[bytes, list[int]]:
        if not loose:
            if self._exact is None:
                self._exact = {}
                for pos, line in enumerate(self.lines):
                    self._exact.setdefault(line, []).append(pos)
            return self._exact
        if self._loose is None:
            self._loose_lines = [squash(line) for line in self.lines]
            self._loose = {}
            for pos, line in enumerate(self._loose_lines):
                self._loose.setdefault(line, []).append(pos)
        return self._loose

    def find(self, pre: Sequence[bytes], *, loose: bool) -> list[int]:
        """0-based positions where `pre` occurs as consecutive lines."""
        index = self.positions(loose)
        wanted = [squash(p) for p in pre] if loose else list(pre)
        lines = self._loose_lines if loose else self.lines
        rarest = min(range(len(wanted)), key=lambda k: len(index.get(wanted[k], ())))
        out = []
        for pos in index.get(wanted[rarest], ()):
            start = pos - rarest
            if start >= 0 and lines[start:start + len(wanted)] == wanted:
                out.append(start)
        return out


def squash(line: bytes) -> bytes:
    return b"".join(line.split())


def choose(found: list[int], after: int | None, hint: int | None) -> int | None:
    """The rule for several matches (0-based positions); None when the rules leave more than one."""
    if len(found) == 1:
        return found[0]
    pool = found
    if after is not None:
        later = [c for c in found if c >= after]
        if later and hint is None:
            return later[0]
        pool = later or found
    if hint is not None:
        ranked = sorted(pool, key=lambda c: abs(c - hint))
        if len(ranked) == 1 or abs(ranked[0] - hint) != abs(ranked[1] - hint):
            return ranked[0]
    return None


def anchor_sections(sections: Sequence[RawSection], paths: Sequence[str | None],
                    read: Callable[[str], bytes | None]) -> Anchoring:
    """Exact line numbers for every hunk of `sections` (their old paths in `paths`, read through `read`)."""
    result = Anchoring()
    for index, (section, path) in enumerate(zip(sections, paths)):
        result.hunks.append(_anchor_section(index, section, path, read, result))
    return result


def _anchor_section(index: int, section: RawSection, path: str | None, read: Callable[[str], bytes | None],
                    result: Anchoring) -> list[Placed]:
    placed: list[Placed] = []
    delta = 0               # new_start - old_start so far in this file
    after: int | None = None
    file: FileIndex | None = None
    needs = any(not h.trusted for h in section.hunks)
    if needs and path is not None and not section.created:
        data = read(path)
        file = FileIndex(data) if data is not None else None
    for number, hunk in enumerate(section.hunks, 1):
        pre = [text for text, _ in hunk.pre_image()]
        if hunk.trusted:
            assert hunk.ranges is not None
            start = hunk.ranges[0]
            body = hunk.body
        elif section.created or path is None or not pre:
            if pre and not section.created:
                raise Refused(f"{section.shown}: hunk {number} (line {hunk.line}) has context but the file is new")
            if not pre and not section.created and hunk.ranges is None:
                raise Refused(f"{section.shown}: hunk {number} (line {hunk.line}) adds lines without any context "
                              "or line number: nothing says where they go")
            start = hunk.ranges[0] if hunk.ranges is not None else 0
            body = hunk.body
        else:
            hint = hunk.ranges[0] - 1 if hunk.ranges is not None else None
            start, body = _find(section, number, hunk, pre, file, after, hint, result, index)
        old_count = sum(1 for raw in body if raw[:1] in (b" ", b"-"))
        new_count = sum(1 for raw in body if raw[:1] in (b" ", b"+"))
        if hunk.trusted:
            assert hunk.ranges is not None
            new_start = hunk.ranges[2]
        elif new_count == 0:
            new_start = max(start + delta - 1, 0)    # git's convention: the line before the removed ones
        elif old_count == 0:
            new_start = start + delta + 1            # inserted after line `start`
        else:
            new_start = start + delta
        found = not hunk.trusted and bool(pre) and (index, hunk) not in result.unplaced
        placed.append(Placed(start, new_start, body, hunk.context, found))
        delta += new_count - old_count
        after = start - 1 + old_count if old_count else start
    if file is not None:
        usable = file.lines if file.newline_at_end else file.lines[:-1]    # a last line without its newline
        placed = _balanced(placed, usable)
    return placed


def _balanced(placed: list[Placed], lines: list[bytes]) -> list[Placed]:
    """Anchored hunks given as much context after them as before (and before as after), taken from the file.

    git apply anchors a hunk with less context after than before at the end of the file; hand-written hunks
    often have context on one side only. The lines added are the file's own, never overlapping another hunk.
    """
    out = list(placed)
    for k, hunk in enumerate(out):
        if not hunk.anchored or not hunk.body or hunk.body[-1][:1] == b"\\":
            continue
        lead = next((i for i, raw in enumerate(hunk.body) if raw[:1] != b" "), len(hunk.body))
        trail = next((i for i, raw in enumerate(reversed(hunk.body)) if raw[:1] != b" "), len(hunk.body))
        end = hunk.old_start - 1 + hunk.old_count               # 0-based index after the hunk
        limit = out[k + 1].old_start - 1 if k + 1 < len(out) else len(lines)
        extra = [b" " + ln for ln in lines[end:min(limit, end + max(lead - trail, 0))]]
        begin = hunk.old_start - 1
        floor = out[k - 1].old_start - 1 + out[k - 1].old_count if k else 0
        take = min(max(trail - lead, 0), max(begin - floor, 0))
        before = [b" " + ln for ln in lines[begin - take:begin]]
        if extra or before:
            out[k] = Placed(hunk.old_start - len(before), hunk.new_start - len(before),
                            (*before, *hunk.body, *extra), hunk.context, True)
    return out


def _find(section: RawSection, number: int, hunk: LooseHunk, pre: list[bytes], file: FileIndex | None,
          after: int | None, hint: int | None, result: Anchoring, index: int) -> tuple[int, tuple[bytes, ...]]:
    where = f"{section.shown}: hunk {number} (line {hunk.line})"
    if file is not None:
        for loose in (False, True):
            found = file.find(pre, loose=loose)
            if not found:
                continue
            pos = choose(found, after, hint)
            if pos is None:
                shown = ", ".join(str(p + 1) for p in found[:8]) + (" …" if len(found) > 8 else "")
                raise Refused(f"{where}: its context matches at lines {shown} of {section.shown} and nothing "
                              "decides between them (no earlier hunk, no line number); add a line number or more "
                              "context")
            result.anchored += 1
            if not loose:
                return pos + 1, hunk.body
            result.fuzz.append(f"{where}: context found only ignoring whitespace, at line {pos + 1}; written "
                               "with the file's own text")
            return pos + 1, _with_file_text(hunk.body, file.lines, pos)
    result.unplaced.append((index, hunk))
    guess = hint + 1 if hint is not None else (after + 1 if after is not None else 1)
    return max(guess, 1), hunk.body


def _with_file_text(body: tuple[bytes, ...], lines: list[bytes], pos: int) -> tuple[bytes, ...]:
    """The hunk with its context and removed lines taken from the file (they differed only in whitespace)."""
    out = []
    for raw in body:
        if raw[:1] in (b" ", b"-"):
            out.append(raw[:1] + lines[pos])
            pos += 1
        else:
            out.append(raw)
    return tuple(out)


def apply_sections(data: bytes, hunks: Sequence[Placed]) -> bytes | None:
    """`data` with placed hunks applied where their pre-image is (searched near their line if moved);
    None when one does not fit. Used to see a file as it is on top of the patches a patch requires."""
    file = FileIndex(data)
    lines = list(file.lines)
    offset = 0
    for hunk in hunks:
        pre = [raw[1:] for raw in hunk.body if raw[:1] in (b" ", b"-")]
        post = [raw[1:] for raw in hunk.body if raw[:1] in (b" ", b"+")]
        at = max(hunk.old_start - 1, 0) + offset if pre else hunk.old_start + offset
        if lines[at:at + len(pre)] != pre:
            found = [p for p in range(len(lines) - len(pre) + 1) if lines[p:p + len(pre)] == pre] if pre else []
            if not found:
                return None
            at = min(found, key=lambda p: abs(p - at))
        lines[at:at + len(pre)] = post
        offset += len(post) - len(pre)
    return b"\n".join(lines) + b"\n" if lines else b""
