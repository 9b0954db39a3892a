"""The strict reading of a diff: every structural and safety rule a queue file (or import's canonical result) meets.

Patch files come from other people, so every file section and hunk header is checked, hunk line counts must add
up, and paths that could escape the tree (absolute, `..`, `.git/`, through a symlink the patch itself creates) are
refused with the line number. Structure comes from the shared lexer (`lexer.lex` with counts trusted, as
`git apply` does); this module only judges it, section by section in text order, so the first problem is reported.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import BadInput
from .lexer import BLANK, DiffText, HunkText, SectionText, lex

SETUID_MODES = {"104755", "102755", "106755", "104644", "106644"}
ALLOWED_MODES = ("100644", "100755", "120000", "160000", "040000")
BASE85 = re.compile(rb"^[0-9A-Za-z!#$%&()*+;<=>?@^_`{|}~-]+$")
ED_LINE = re.compile(rb"^\d+(,\d+)?[acd]\d+(,\d+)?$")
GIT_PATHS = re.compile(rb'^diff --git ("(?:[^"\\]|\\.)*"|\S+) ("(?:[^"\\]|\\.)*"|\S+)$')
INDEX_LINE = re.compile(rb"^index ([0-9a-f]+)\.\.([0-9a-f]+)(?: (\d+))?$")
Where = Callable[[int], int]


@dataclass(frozen=True)
class Hunk:
    old_start: int
    old_count: int
    new_start: int
    new_count: int
    header_line: int                 # 1-based line of the @@ header inside the diff text
    lines: tuple[bytes, ...]         # body lines including their ' ', '+', '-', '\\' prefix, without newline

    def added_lines(self) -> list[int]:
        """Post-image line numbers this hunk adds."""
        out, line = [], self.new_start
        for raw in self.lines:
            tag = raw[:1]
            if tag == b"+":
                out.append(line)
                line += 1
            elif tag == b" ":
                line += 1
        return out

    def removed_lines(self) -> list[int]:
        out, line = [], self.old_start
        for raw in self.lines:
            tag = raw[:1]
            if tag == b"-":
                out.append(line)
                line += 1
            elif tag == b" ":
                line += 1
        return out


@dataclass(frozen=True)
class FileDiff:
    """One file section of a diff. Paths are repo-relative (prefix stripped); None for /dev/null."""

    old_path: str | None
    new_path: str | None
    start_line: int                  # 1-based line where the section starts in the diff text
    end_line: int                    # exclusive
    hunks: tuple[Hunk, ...] = ()
    binary: bool = False
    old_mode: str = ""
    new_mode: str = ""
    rename: bool = False
    copy: bool = False
    old_blob: str = ""
    new_blob: str = ""

    @property
    def path(self) -> str:
        return self.new_path or self.old_path or ""

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(p for p in dict.fromkeys((self.old_path, self.new_path)) if p)

    @property
    def is_new(self) -> bool:
        return self.old_path is None

    @property
    def is_deleted(self) -> bool:
        return self.new_path is None


# ---- path tokens -------------------------------------------------------------------------------------------------

def unquote(raw: bytes) -> str:
    """git quotes unusual paths C-style: "a/sp\\303\\251cial"."""
    text = raw.decode("utf-8", "surrogateescape")
    if not (text.startswith('"') and text.endswith('"') and len(text) >= 2):
        return text
    body = text[1:-1].encode("latin-1", "backslashreplace")
    return body.decode("unicode_escape").encode("latin-1").decode("utf-8", "surrogateescape")


def strip_prefix(raw: str) -> str | None:
    """`a/x` -> `x`; /dev/null -> None; a name without a folder stays as it is."""
    if raw == "/dev/null":
        return None
    return raw.split("/", 1)[1] if "/" in raw else raw


def path_token(line: bytes, prefix: bytes) -> str:
    """The path of a `---`/`+++` line: quoted C-style, or up to a tab (diff -u puts a timestamp after it)."""
    rest = line[len(prefix):].rstrip(b"\r\n")
    if rest.startswith(b'"'):                 # git may add a tab after a quoted name with spaces
        quoted = re.match(rb'^"(?:[^"\\]|\\.)*"', rest)
        return unquote(quoted.group(0) if quoted else rest)
    if b"\t" in rest:
        rest = rest.split(b"\t", 1)[0]
    return unquote(rest.strip())


def check_safe_path(path: str, *, source: str, line: int) -> None:
    """Refuse paths that would write outside the tree or into git's own files."""
    if not path:
        raise BadInput("empty path in diff", path=source, line=line)
    if path.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", path):
        raise BadInput(f"absolute path {path!r} in diff (patches must use repo-relative paths)", path=source, line=line)
    parts = path.replace("\\", "/").split("/")
    if any(p == ".." for p in parts):
        raise BadInput(f"path {path!r} climbs out of the tree with '..'", path=source, line=line)
    if any(p.lower() == ".git" for p in parts):
        raise BadInput(f"path {path!r} points into git's own .git directory", path=source, line=line)
    if any(ord(c) < 32 for c in path):
        raise BadInput(f"path {path!r} contains control characters", path=source, line=line)


# ---- the validator -------------------------------------------------------------------------------------------------

def parse_diff(diff: bytes, *, source: str = "<diff>", line_offset: int = 0) -> tuple[FileDiff, ...]:
    """Parse a git-style or `diff -u` unified diff into file sections, validating structure and paths.

    `line_offset` is added to reported line numbers so errors point into the patch file, not the diff alone.
    """
    text = lex(diff, trust_counts=True)

    def where(idx: int) -> int:
        return idx + 1 + line_offset

    files: list[FileDiff] = []
    for number, section in enumerate(text.sections):
        _check_gap(text, number, source, where)
        files.append(_git_section(text, section, source, where) if section.git
                     else _plain_section(text, section, source, where))
    _check_gap(text, len(text.sections), source, where)
    _check_sections(files, source, where)
    return tuple(files)


def _check_gap(text: DiffText, number: int, source: str, where: Where) -> None:
    start, end = text.gaps[number]
    for idx in range(start, end):
        line = text.lines[idx]
        if line.startswith(b"@@ "):
            raise BadInput("hunk without a file header (no '---'/'+++' lines before it)", path=source,
                           line=where(idx))
        if line.startswith((b"*** ", b"***************")) or ED_LINE.match(line):
            raise BadInput("context or ed-style diffs are not accepted; use a unified diff (diff -u / git diff)",
                           path=source, line=where(idx))


def _mode(raw: bytes, source: str, line: int) -> str:
    """A file mode from a diff header: six octal digits (which modes are allowed is decided later)."""
    if not re.fullmatch(rb"[0-7]{6}", raw):
        raise BadInput(f"malformed file mode {raw[:20].decode('utf-8', 'replace')!r} in diff header",
                       path=source, line=line)
    return raw.decode()


def is_base85_line(line: bytes) -> bool:
    """A binary patch data line: a length letter (A-Z 1-26, a-z 27-52), then 5 base85 characters per 4 bytes."""
    first = line[:1]
    if not first.isalpha() or not BASE85.match(line[1:]):
        return False
    size = first[0] - ord("A") + 1 if first.isupper() else first[0] - ord("a") + 27
    return len(line) - 1 == 5 * ((size + 3) // 4)


def _git_section(text: DiffText, section: SectionText, source: str, where: Where) -> FileDiff:
    lines = text.lines
    old_mode = new_mode = old_blob = new_blob = ""
    rename = copy = binary = is_new = is_deleted = False
    m = GIT_PATHS.match(lines[section.start].rstrip(b"\r"))
    git_a = git_b = None
    if m:                    # a/X b/Y, used when no ---/+++ follow (mode-only changes, binary, renames)
        git_a, git_b = strip_prefix(unquote(m.group(1))), strip_prefix(unquote(m.group(2)))
    for i in range(section.start + 1, section.header_end):
        ext = lines[i].rstrip(b"\r")
        if ext.startswith(b"new file mode "):
            is_new, new_mode = True, _mode(ext[14:], source, where(i))
        elif ext.startswith(b"deleted file mode "):
            is_deleted, old_mode = True, _mode(ext[18:], source, where(i))
        elif ext.startswith(b"old mode "):
            old_mode = _mode(ext[9:], source, where(i))
        elif ext.startswith(b"new mode "):
            new_mode = _mode(ext[9:], source, where(i))
        elif ext.startswith((b"rename from ", b"copy from ")):
            rename = ext.startswith(b"rename")
            copy = not rename
            git_a = unquote(ext.split(b" ", 2)[2])
        elif ext.startswith((b"rename to ", b"copy to ")):
            git_b = unquote(ext.split(b" ", 2)[2])
        elif ext.startswith(b"index "):
            m2 = INDEX_LINE.match(ext)
            if not m2:
                raise BadInput("malformed 'index' line in diff header", path=source, line=where(i))
            old_blob, new_blob = m2.group(1).decode(), m2.group(2).decode()
            if m2.group(3):
                new_mode = new_mode or m2.group(3).decode()
        elif ext.startswith((b"GIT binary patch", b"Binary files ")):
            binary = True
        elif ext.startswith((b"similarity index", b"dissimilarity index")) or ext == b"":
            pass
        elif binary and (re.match(rb"^(literal|delta) \d+$", ext) or is_base85_line(ext)):
            pass                # data lines of a binary patch
        elif binary:
            raise BadInput("corrupt binary patch data", path=source, line=where(i))
        else:
            raise BadInput(f"unexpected line in diff header: {ext[:60].decode('utf-8', 'replace')!r}",
                           path=source, line=where(i))
    hunks: tuple[Hunk, ...] = ()
    if section.lone_minus:
        raise BadInput("'---' line without a following '+++' line", path=source, line=where(section.minus or 0))
    if section.minus is not None:
        old_path = strip_prefix(path_token(lines[section.minus], b"--- "))
        new_path = strip_prefix(path_token(lines[section.minus + 1], b"+++ "))
        hunks = _hunks(text, section, source, where)
    else:
        old_path = None if is_new else git_a
        new_path = None if is_deleted else git_b
    if is_new:
        old_path = None
    if is_deleted:
        new_path = None
    if rename or copy:
        old_path, new_path = git_a, git_b
    return FileDiff(old_path, new_path, section.start + 1, section.end + 1, hunks, binary, old_mode, new_mode,
                    rename, copy, old_blob, new_blob)


def _plain_section(text: DiffText, section: SectionText, source: str, where: Where) -> FileDiff:
    a = path_token(text.lines[section.start], b"--- ")
    b = path_token(text.lines[section.start + 1], b"+++ ")
    hunks = _hunks(text, section, source, where)
    return FileDiff(None if a == "/dev/null" else a, None if b == "/dev/null" else b, section.start + 1,
                    section.end + 1, hunks)


def _hunks(text: DiffText, section: SectionText, source: str, where: Where) -> tuple[Hunk, ...]:
    return tuple(_hunk(text, hunk, source, where) for hunk in section.hunks)


def _hunk(text: DiffText, hunk: HunkText, source: str, where: Where) -> Hunk:
    lines = text.lines
    if hunk.ranges is None:
        raise BadInput(f"corrupt hunk header {lines[hunk.start][:60].decode('utf-8', 'replace')!r}",
                       path=source, line=where(hunk.start))
    old_start, old_count, new_start, new_count = hunk.ranges
    if not hunk.counted:
        raise BadInput(f"hunk header says -{old_count} +{new_count} lines but the hunk has "
                       f"-{hunk.seen[0]} +{hunk.seen[1]}", path=source, line=where(hunk.start))
    markers = _NewlineMarkers(source, where)
    body: list[bytes] = []
    for idx in range(hunk.start + 1, hunk.end):
        raw = lines[idx]
        markers.take(b" " if raw in BLANK else raw[:1], idx)
        body.append(b" " + raw if raw in BLANK else raw)
    n, i = len(lines), hunk.end
    if i < n and lines[i][:1] in (b"+", b"-") and not (
            lines[i].startswith(b"--- ") and i + 1 < n and lines[i + 1].startswith(b"+++ ")):
        raise BadInput(f"hunk header says -{old_count} +{new_count} lines but more diff lines follow it "
                       "(they would be silently dropped)", path=source, line=where(hunk.start))
    return Hunk(old_start, old_count, new_start, new_count, hunk.start + 1, tuple(body))


class _NewlineMarkers:
    """`\\ No newline at end of file` may only follow a diff line, once, and ends that side of the file."""

    def __init__(self, source: str, where: Where) -> None:
        self.source, self.where = source, where
        self.prev = b""
        self.old_ended = self.new_ended = False

    def take(self, tag: bytes, idx: int) -> None:
        if tag == b"\\":
            if self.prev not in (b" ", b"-", b"+"):
                raise BadInput("misplaced no-newline marker ('\\ No newline at end of file' must follow a diff line)",
                               path=self.source, line=self.where(idx))
            self.old_ended = self.old_ended or self.prev in (b" ", b"-")
            self.new_ended = self.new_ended or self.prev in (b" ", b"+")
        elif (tag in (b" ", b"-") and self.old_ended) or (tag in (b" ", b"+") and self.new_ended):
            raise BadInput("diff line after a no-newline marker (the file already ended there)",
                           path=self.source, line=self.where(idx))
        self.prev = tag


def _check_sections(files: list[FileDiff], source: str, where: Where) -> None:
    """Paths, modes, symlinks and duplicates across the sections: one pass, each path looked up by its folders."""
    seen: dict[str, int] = {}
    symlinks: set[str] = set()
    for section in files:
        line = section.start_line + where(0) - 1
        for p in (section.old_path, section.new_path):
            if p is not None:
                check_safe_path(p, source=source, line=line)
        for mode in (section.old_mode, section.new_mode):
            if mode and mode not in ALLOWED_MODES:
                raise BadInput(f"file mode {mode} of {section.path!r} is not allowed (setuid, setgid or unknown)",
                               path=source, line=line)
        target = section.path
        if symlinks:
            parts = target.split("/")
            for depth in range(1, len(parts)):
                link = "/".join(parts[:depth])
                if link in symlinks:
                    raise BadInput(f"{target!r} is written through the symlink {link!r} that this patch creates",
                                   path=source, line=line)
        if section.new_mode == "120000" and section.new_path:
            symlinks.add(section.new_path)
            _check_symlink_target(section, source, line)
        if target in seen and not section.rename:
            raise BadInput(f"{target!r} appears twice in one patch (first at line {seen[target]})",
                           path=source, line=line)
        seen[target] = line


def _check_symlink_target(section: FileDiff, source: str, line: int) -> None:
    """A symlink the patch creates must stay inside the tree."""
    depth = section.path.count("/")
    for hunk in section.hunks:
        for raw in hunk.lines:
            if raw.startswith(b"+"):
                target = raw[1:].decode("utf-8", "replace")
                climbs = sum(1 for part in target.split("/") if part == "..")
                if target.startswith("/") or climbs > depth:
                    raise BadInput(f"symlink {section.path!r} points outside the tree ({target!r})",
                                   path=source, line=line)
