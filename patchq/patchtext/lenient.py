"""The lenient reading of a diff, for import: what labs write, with every repair named.

Labs keep patches made by hand, by editors and by coding agents' apply-patch tools: hunk headers without line
ranges (`@@` alone or `@@ def foo():`), counts that do not match the body, blank context lines whose leading space
an editor stripped. This reader keeps each file section as written (paths not yet made repo-relative) with its
hunks' bodies, marks which hunk headers can be trusted and which hunks must be anchored in the target file, and
lists the repairs. Import writes the result back as a canonical git diff that the strict validator reads again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .lexer import BLANK, HUNK_HEADER, DiffText, HunkText, SectionText, lex
from .strict import unquote

EPOCH_STAMP = re.compile(rb"^(1970-01-01|1969-12-31|Thu Jan  1 00:00:00 1970|Wed Dec 31 \d\d:\d\d:\d\d 1969)")
PLAIN_STAMP = re.compile(rb"^(\S+)\s+(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d.*)$")
GIT_EXTENDED = (b"old mode ", b"new mode ", b"deleted file mode ", b"new file mode ", b"copy from ", b"copy to ",
                b"rename from ", b"rename to ", b"similarity index ", b"dissimilarity index ", b"index ")
JUNK_BETWEEN = re.compile(rb"^(diff (?!--git )\S.*|Index: .*|=+|Only in .*|Common subdirectories: .*|"
                          rb"Files .* are identical)$")


class Unreadable(Exception):
    """The text cannot be read as a diff even leniently; `reason` says why (with the line where there is one)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class LooseHunk:
    """One hunk as import reads it: the body normalised, the header trusted or to be anchored."""

    line: int                               # 1-based line of the `@@` header in the input
    ranges: tuple[int, int, int, int] | None  # as written (a hint when not trusted); None: a context-only header
    context: bytes                          # the function line after the ranges, or the text of `@@ text`
    body: tuple[bytes, ...]                 # ' ', '+', '-', '\\' lines; stripped blank lines given back their space
    body_lines: tuple[int, ...]             # 1-based input line of each body line
    trusted: bool                           # the header's ranges and counts are exact as written
    repairs: tuple[str, ...] = ()

    @property
    def old_count(self) -> int:
        return sum(1 for raw in self.body if raw[:1] in (b" ", b"-"))

    @property
    def new_count(self) -> int:
        return sum(1 for raw in self.body if raw[:1] in (b" ", b"+"))

    def pre_image(self) -> list[tuple[bytes, int]]:
        """Context and removed lines (text without the tag, input line): what must be found in the target file."""
        return [(raw[1:], line) for raw, line in zip(self.body, self.body_lines) if raw[:1] in (b" ", b"-")]

    def added(self) -> list[bytes]:
        return [raw[1:] for raw in self.body if raw[:1] == b"+"]


@dataclass(frozen=True)
class RawSection:
    """One file of a diff as written, paths not yet normalised (None for /dev/null)."""

    old: str | None
    new: str | None
    git: bool
    extended: tuple[bytes, ...]
    hunks: tuple[LooseHunk, ...]
    created: bool
    deleted: bool
    rename: bool
    copy: bool
    line: int

    @property
    def shown(self) -> str:
        return self.new or self.old or "?"


@dataclass(frozen=True)
class Scanned:
    head: tuple[bytes, ...]
    sections: tuple[RawSection, ...]
    between: tuple[bytes, ...]
    tail: tuple[bytes, ...]
    remarks: tuple[str, ...]

    @property
    def repairs(self) -> list[str]:
        """Every repair of every hunk, once each, in order."""
        return list(dict.fromkeys(r for s in self.sections for h in s.hunks for r in h.repairs))


def file_token(line: bytes, prefix: bytes) -> tuple[str | None, bytes]:
    """Path and timestamp of a `---`/`+++` line; None for /dev/null."""
    rest = line[len(prefix):]
    stamp = b""
    if rest.startswith(b'"'):
        m = re.match(rb'^("(?:[^"\\]|\\.)*")(?:\t(.*))?', rest)
        token = m.group(1) if m else rest
        stamp = (m.group(2) or b"") if m else b""
    elif b"\t" in rest:
        token, stamp = rest.split(b"\t", 1)
    else:
        m = PLAIN_STAMP.match(rest)
        token, stamp = (m.group(1), m.group(2)) if m else (rest.rstrip(), b"")
    path = unquote(token.strip() if not token.startswith(b'"') else token)
    return (None if path == "/dev/null" else path), stamp.strip()


def git_header_paths(line: bytes) -> tuple[str | None, str | None]:
    rest = line[len(b"diff --git "):].rstrip()
    m = re.match(rb'^("(?:[^"\\]|\\.)*"|\S+) ("(?:[^"\\]|\\.)*"|\S+)$', rest)
    if m:
        return unquote(m.group(1)), unquote(m.group(2))
    for pos in [i for i in range(len(rest)) if rest[i:i + 1] == b" "]:
        a, b = rest[:pos], rest[pos + 1:]
        if a[2:] == b[2:]:
            return unquote(a), unquote(b)
    return None, None


def read_lenient(data: bytes) -> Scanned:
    """Prose before the diff, file sections (paths as written, hunks read leniently), prose between and after."""
    text = lex(data, trust_counts=False)
    lines = text.lines
    head: list[bytes] = []
    between: list[bytes] = []
    sections: list[RawSection] = []
    remarks: list[str] = []
    pending: list[bytes] = []
    for number, section in enumerate(text.sections):
        pending.extend(_gap(text, number))
        (between if sections else head).extend(pending)
        pending = []
        raw, after = _git(text, section) if section.git else (_plain(text, section), [])
        sections.append(raw)
        pending.extend(after)
    pending.extend(_gap(text, len(text.sections)))
    if not sections:
        raise Unreadable("not a diff: no 'diff --git' or '---'/'+++'/'@@' file sections found")
    tail = pending
    if b"-- " in tail:
        tail = tail[:tail.index(b"-- ")]        # a format-patch signature
    while head and JUNK_BETWEEN.match(head[-1]):
        head.pop()                              # `Index:`/`====`/`diff -u ...` lines that introduce the first file

    def prose_only(found: list[bytes], *, junk: bool) -> list[bytes]:
        kept = []
        for ln in found:
            if ln.startswith(b"Only in "):
                remarks.append(f"ignored '{ln.decode('utf-8', 'replace')}' (diff -r lists it; it is not a change)")
            elif not (junk and JUNK_BETWEEN.match(ln)):
                kept.append(ln)
        return kept

    del lines
    return Scanned(tuple(head), tuple(sections), tuple(prose_only(between, junk=True)),
                   tuple(prose_only(tail, junk=False)), tuple(remarks))


def _gap(text: DiffText, number: int) -> list[bytes]:
    start, end = text.gaps[number]
    out = text.lines[start:end]
    for idx in range(start, end):
        line = text.lines[idx]
        if line.startswith(b"Binary files ") and line.endswith(b" differ"):
            raise Unreadable(f"line {idx + 1}: binary diff ({line.decode('utf-8', 'replace')}): it carries no "
                             "content; import handles text patches only")
        if line.startswith(b"@@ ") and HUNK_HEADER.match(line):
            raise Unreadable(f"line {idx + 1}: hunk without a file header ('---'/'+++' lines)")
    return out


def _git(text: DiffText, section: SectionText) -> tuple[RawSection, list[bytes]]:
    lines = text.lines
    git_a, git_b = git_header_paths(lines[section.start])
    extended: list[bytes] = []
    created = deleted = rename = copy = False
    after: list[bytes] = []
    for idx in range(section.start + 1, section.header_end):
        ext = lines[idx]
        if ext.startswith((b"GIT binary patch", b"Binary files ")):
            raise Unreadable(f"line {idx + 1}: binary diff of {git_b or git_a}: import handles text patches only")
        if after or not ext.startswith(GIT_EXTENDED):
            if section.minus is not None and ext not in BLANK:
                raise Unreadable(f"line {idx + 1}: unexpected line in the header of {git_b or git_a}: "
                                 f"{ext[:60].decode('utf-8', 'replace')!r}")
            after.append(ext)               # prose after a header-only section (`git log -p` of a mode change)
            continue
        if ext.startswith(b"new file mode "):
            created = True
        elif ext.startswith(b"deleted file mode "):
            deleted = True
        elif ext.startswith((b"rename from ", b"copy from ")):
            rename, copy = ext.startswith(b"rename"), ext.startswith(b"copy")
            git_a = unquote(ext.split(b" ", 2)[2])
        elif ext.startswith((b"rename to ", b"copy to ")):
            git_b = unquote(ext.split(b" ", 2)[2])
        extended.append(ext)
    old, new = git_a, git_b
    hunks: tuple[LooseHunk, ...] = ()
    if section.minus is not None and not section.lone_minus:
        old, _ = file_token(lines[section.minus], b"--- ")
        new, _ = file_token(lines[section.minus + 1], b"+++ ")
        hunks = tuple(_hunk(text, h) for h in section.hunks)
        if rename or copy:
            old, new = git_a, git_b
    if section.lone_minus:
        after.extend(lines[section.minus: section.end])
    if created:
        old = None
    if deleted:
        new = None
    return RawSection(old, new, True, tuple(extended), hunks, created, deleted, rename, copy,
                      section.start + 1), after


def _plain(text: DiffText, section: SectionText) -> RawSection:
    lines = text.lines
    old, old_stamp = file_token(lines[section.start], b"--- ")
    new, new_stamp = file_token(lines[section.start + 1], b"+++ ")
    hunks = tuple(_hunk(text, h) for h in section.hunks)
    single = hunks[0].ranges if len(hunks) == 1 else None      # a lone hunk's ranges: @@ -0,0 / +0,0 @@ stamps
    created = old is None or bool(single and single[0] == 0 and single[1] == 0 and EPOCH_STAMP.match(old_stamp))
    deleted = new is None or bool(single and single[2] == 0 and single[3] == 0 and EPOCH_STAMP.match(new_stamp))
    return RawSection(None if created else old, None if deleted else new, False, (), hunks, created, deleted,
                      False, False, section.start + 1)


def _hunk(text: DiffText, hunk: HunkText) -> LooseHunk:
    lines = text.lines
    where = hunk.start + 1
    header = lines[hunk.start]
    if hunk.corrupt:
        raise Unreadable(f"line {where}: corrupt hunk header {header[:60].decode('utf-8', 'replace')!r}")
    if hunk.cut_off:
        old, new = hunk.ranges[1], hunk.ranges[3]     # type: ignore[index]
        raise Unreadable(f"line {where}: hunk header promises -{old} +{new} lines but the text ends after "
                         f"-{hunk.seen[0]} +{hunk.seen[1]} (a truncated or hand-edited patch; if only the header is "
                         "wrong, fix its counts)")
    body, numbers, repairs = [], [], []
    blanks = 0
    for idx in range(hunk.start + 1, hunk.end):
        raw = lines[idx]
        if raw in BLANK:
            blanks += 1
            raw = b" " + raw
        body.append(raw)
        numbers.append(idx + 1)
    if not any(raw[:1] in (b"+", b"-") for raw in body):
        raise Unreadable(f"line {where}: hunk changes nothing (no '+' or '-' lines)")
    if hunk.context_only:
        shown = f"'@@ {hunk.context.decode('utf-8', 'replace')}'" if hunk.context else "'@@'"
        repairs.append(f"line {where}: hunk header {shown} has no line numbers; anchored by its context")
    elif hunk.recounted:
        assert hunk.ranges is not None
        fixed = LooseHunk(where, hunk.ranges, hunk.context, tuple(body), tuple(numbers), False)
        repairs.append(f"line {where}: hunk header said -{hunk.ranges[1]} +{hunk.ranges[3]} lines; the body has "
                       f"-{fixed.old_count} +{fixed.new_count} (recounted, as git apply --recount does)")
    if blanks:
        repairs.append(f"line {where}: {blanks} blank context line(s) without their leading space (an editor "
                       "stripped it): given back")
    trusted = hunk.ranges is not None and not hunk.recounted
    return LooseHunk(where, hunk.ranges, hunk.context, tuple(body), tuple(numbers), trusted, tuple(repairs))
