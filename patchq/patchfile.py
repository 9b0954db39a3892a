"""One patch file: a `git format-patch` style header, a description, annotation trailers, then the diff.

The reader is strict because patch files come from other people: every file section and hunk header is checked,
hunk line counts must add up, and paths that could escape the tree (absolute, `..`, `.git/`, through a symlink the
patch itself creates) are refused with the patch file's line number. The writer produces files `git am` accepts.
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

from .errors import BadInput
from .model import PatchEntry, Status

TRAILER_PREFIX = "Patchq-"
# Trailer name -> PatchEntry field, in the order they are written.
TRAILERS: tuple[tuple[str, str], ...] = (
    ("Patchq-Id", "id"),
    ("Patchq-Status", "status"),
    ("Patchq-Flags", "flags"),
    ("Patchq-Result", "result"),
    ("Patchq-Baseline", "baseline"),
    ("Patchq-Date", "date"),
    ("Patchq-Base", "base"),
    ("Patchq-Notes", "notes"),
    ("Patchq-Supersedes", "supersedes"),
    ("Patchq-Contains", "contains"),
    ("Patchq-Requires", "requires"),
    ("Patchq-Salvaged", "salvaged"),
)
LIST_FIELDS = {"flags", "notes", "supersedes", "contains", "requires"}
DEFAULT_AUTHOR = "patchq <patchq@localhost>"
EPOCH_DATE = "Thu, 1 Jan 1970 00:00:00 +0000"
HUNK_HEADER = re.compile(rb"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
SETUID_MODES = {"104755", "102755", "106755", "104644", "106644"}


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


@dataclass(frozen=True)
class PatchFile:
    """A parsed patch file. `head` and `tail` are kept byte-for-byte so a refresh can replace only the diff."""

    author: str
    date: str
    subject: str
    description: str
    trailers: tuple[tuple[str, str], ...]
    head: bytes
    diff: bytes
    tail: bytes
    files: tuple[FileDiff, ...]
    diff_line_offset: int            # lines before the diff starts, for patch-file line numbers

    def trailer(self, name: str) -> str | None:
        for key, value in self.trailers:
            if key.lower() == name.lower():
                return value
        return None

    def with_diff(self, diff: bytes) -> bytes:
        """The same file with a new diff: header, description, trailers and signature untouched."""
        if diff and not diff.endswith(b"\n"):
            diff += b"\n"
        return self.head + diff + self.tail


# ---- diff parsing ---------------------------------------------------------------------------------------------

def _strip_prefix(raw: str, *, prefix_expected: bool) -> str | None:
    if raw == "/dev/null":
        return None
    if prefix_expected:
        if "/" not in raw:
            return raw
        return raw.split("/", 1)[1]
    return raw


def _unquote(raw: bytes) -> str:
    """git quotes unusual paths C-style: "a/sp\\303\\251cial"."""
    text = raw.decode("utf-8", "surrogateescape")
    if not (text.startswith('"') and text.endswith('"') and len(text) >= 2):
        return text
    body = text[1:-1].encode("latin-1", "backslashreplace")
    return body.decode("unicode_escape").encode("latin-1").decode("utf-8", "surrogateescape")


def _path_token(line: bytes, prefix: bytes) -> str:
    rest = line[len(prefix):].rstrip(b"\r\n")
    if rest.startswith(b'"'):                 # git may add a tab after a quoted name with spaces
        quoted = re.match(rb'^"(?:[^"\\]|\\.)*"', rest)
        return _unquote(quoted.group(0) if quoted else rest)
    if b"\t" in rest:
        rest = rest.split(b"\t", 1)[0]          # diff -u puts a timestamp after a tab
    return _unquote(rest.strip())


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


def parse_diff(diff: bytes, *, source: str = "<diff>", line_offset: int = 0) -> tuple[FileDiff, ...]:
    """Parse a git-style or `diff -u` unified diff into file sections, validating structure and paths.

    `line_offset` is added to reported line numbers so errors point into the patch file, not the diff alone.
    """
    lines = diff.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    files: list[FileDiff] = []
    i, n = 0, len(lines)

    def where(idx: int) -> int:
        return idx + 1 + line_offset

    while i < n:
        line = lines[i]
        if line.startswith(b"diff --git "):
            i, section = _parse_git_section(lines, i, source, where)
            files.append(section)
        elif line.startswith(b"--- ") and i + 1 < n and lines[i + 1].startswith(b"+++ "):
            i, section = _parse_plain_section(lines, i, source, where)
            files.append(section)
        elif line.startswith(b"@@ "):
            raise BadInput("hunk without a file header (no '---'/'+++' lines before it)", path=source, line=where(i))
        elif line.startswith((b"*** ", b"***************")) or re.match(rb"^\d+(,\d+)?[acd]\d+(,\d+)?$", line):
            raise BadInput("context or ed-style diffs are not accepted; use a unified diff (diff -u / git diff)",
                           path=source, line=where(i))
        else:
            i += 1
    _check_sections(files, source, where)
    return tuple(files)


def _mode(raw: bytes, source: str, line: int) -> str:
    """A file mode from a diff header: six octal digits (which modes are allowed is decided later)."""
    if not re.fullmatch(rb"[0-7]{6}", raw):
        raise BadInput(f"malformed file mode {raw[:20].decode('utf-8', 'replace')!r} in diff header",
                       path=source, line=line)
    return raw.decode()


def _parse_git_section(lines: list[bytes], i: int, source: str, where) -> tuple[int, FileDiff]:
    start = i
    header = lines[i]
    old_path = new_path = None
    old_mode = new_mode = old_blob = new_blob = ""
    rename = copy = binary = False
    is_new = is_deleted = False
    # a/X b/Y from the diff --git line, used when no ---/+++ follow (mode-only changes, binary, renames)
    m = re.match(rb'^diff --git ("(?:[^"\\]|\\.)*"|\S+) ("(?:[^"\\]|\\.)*"|\S+)$', header.rstrip(b"\r"))
    git_a = git_b = None
    if m:
        git_a = _strip_prefix(_unquote(m.group(1)), prefix_expected=True)
        git_b = _strip_prefix(_unquote(m.group(2)), prefix_expected=True)
    i += 1
    n = len(lines)
    while i < n and not lines[i].startswith((b"diff --git ", b"@@ ", b"--- ")):
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
            git_a = _unquote(ext.split(b" ", 2)[2])
        elif ext.startswith((b"rename to ", b"copy to ")):
            git_b = _unquote(ext.split(b" ", 2)[2])
        elif ext.startswith(b"index "):
            m2 = re.match(rb"^index ([0-9a-f]+)\.\.([0-9a-f]+)(?: (\d+))?$", ext)
            if not m2:
                raise BadInput("malformed 'index' line in diff header", path=source, line=where(i))
            old_blob, new_blob = m2.group(1).decode(), m2.group(2).decode()
            if m2.group(3):
                new_mode = new_mode or m2.group(3).decode()
        elif ext.startswith((b"GIT binary patch", b"Binary files ")):
            binary = True
        elif ext.startswith((b"similarity index", b"dissimilarity index")) or ext == b"":
            pass
        elif binary and re.match(rb"^(literal|delta) \d+$", ext):
            pass
        elif binary and _is_base85_line(ext):
            pass  # data lines of a binary patch
        elif binary:
            raise BadInput("corrupt binary patch data", path=source, line=where(i))
        else:
            raise BadInput(f"unexpected line in diff header: {ext[:60].decode('utf-8', 'replace')!r}",
                           path=source, line=where(i))
        i += 1
    hunks: tuple[Hunk, ...] = ()
    if i < n and lines[i].startswith(b"--- "):
        if i + 1 >= n or not lines[i + 1].startswith(b"+++ "):
            raise BadInput("'---' line without a following '+++' line", path=source, line=where(i))
        a = _path_token(lines[i], b"--- ")
        b = _path_token(lines[i + 1], b"+++ ")
        old_path = _strip_prefix(a, prefix_expected=True)
        new_path = _strip_prefix(b, prefix_expected=True)
        i += 2
        i, hunks = _parse_hunks(lines, i, source, where)
    else:
        old_path = None if is_new else git_a
        new_path = None if is_deleted else git_b
    if is_new:
        old_path = None
    if is_deleted:
        new_path = None
    if rename or copy:
        old_path, new_path = git_a, git_b
    section = FileDiff(old_path, new_path, start + 1, i + 1, hunks, binary, old_mode, new_mode, rename, copy,
                       old_blob, new_blob)
    return i, section


BASE85 = re.compile(rb"^[0-9A-Za-z!#$%&()*+;<=>?@^_`{|}~-]+$")


def _is_base85_line(line: bytes) -> bool:
    """A binary patch data line: a length letter (A-Z 1-26, a-z 27-52), then 5 base85 characters per 4 bytes."""
    first = line[:1]
    if not first.isalpha() or not BASE85.match(line[1:]):
        return False
    size = first[0] - ord("A") + 1 if first.isupper() else first[0] - ord("a") + 27
    return len(line) - 1 == 5 * ((size + 3) // 4)


def _parse_plain_section(lines: list[bytes], i: int, source: str, where) -> tuple[int, FileDiff]:
    start = i
    a = _path_token(lines[i], b"--- ")
    b = _path_token(lines[i + 1], b"+++ ")
    i += 2
    i, hunks = _parse_hunks(lines, i, source, where)
    old_path = None if a == "/dev/null" else a
    new_path = None if b == "/dev/null" else b
    return i, FileDiff(old_path, new_path, start + 1, i + 1, hunks)


def _parse_hunks(lines: list[bytes], i: int, source: str, where) -> tuple[int, tuple[Hunk, ...]]:
    hunks: list[Hunk] = []
    n = len(lines)
    while i < n and lines[i].startswith(b"@@"):
        m = HUNK_HEADER.match(lines[i])
        if not m:
            raise BadInput(f"corrupt hunk header {lines[i][:60].decode('utf-8', 'replace')!r}",
                           path=source, line=where(i))
        old_start, new_start = int(m.group(1)), int(m.group(3))
        old_count = int(m.group(2)) if m.group(2) is not None else 1
        new_count = int(m.group(4)) if m.group(4) is not None else 1
        header_idx = i
        i += 1
        body: list[bytes] = []
        old_seen = new_seen = 0
        ended = _NewlineMarkers(source, where)
        while i < n and (old_seen < old_count or new_seen < new_count):
            raw = lines[i]
            tag = raw[:1]
            if tag == b" " or (raw in (b"", b"\r")):
                old_seen += 1
                new_seen += 1
            elif tag == b"-":
                old_seen += 1
            elif tag == b"+":
                new_seen += 1
            elif tag != b"\\":
                break
            ended.take(b" " if raw in (b"", b"\r") else tag, i)
            body.append(raw if raw not in (b"", b"\r") else b" " + raw)
            i += 1
        if old_seen != old_count or new_seen != new_count:
            raise BadInput(f"hunk header says -{old_count} +{new_count} lines but the hunk has "
                           f"-{old_seen} +{new_seen}", path=source, line=where(header_idx))
        while i < n and lines[i].startswith(b"\\"):
            ended.take(b"\\", i)
            body.append(lines[i])
            i += 1
        if i < n and lines[i][:1] in (b"+", b"-") and not (
                lines[i].startswith(b"--- ") and i + 1 < n and lines[i + 1].startswith(b"+++ ")):
            raise BadInput(f"hunk header says -{old_count} +{new_count} lines but more diff lines follow it "
                           "(they would be silently dropped)", path=source, line=where(header_idx))
        hunks.append(Hunk(old_start, old_count, new_start, new_count, header_idx + 1, tuple(body)))
    return i, tuple(hunks)


class _NewlineMarkers:
    """`\\ No newline at end of file` may only follow a diff line, once, and ends that side of the file."""

    def __init__(self, source: str, where) -> None:
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


def _check_sections(files: list[FileDiff], source: str, where) -> None:
    seen: dict[str, int] = {}
    symlinks: set[str] = set()
    for section in files:
        line = section.start_line
        for p in (section.old_path, section.new_path):
            if p is not None:
                check_safe_path(p, source=source, line=line + where(0) - 1)
        for mode in (section.old_mode, section.new_mode):
            if mode and mode not in ("100644", "100755", "120000", "160000", "040000"):
                raise BadInput(f"file mode {mode} of {section.path!r} is not allowed (setuid, setgid or unknown)",
                               path=source, line=line + where(0) - 1)
        target = section.path
        for link in symlinks:
            if target.startswith(link + "/"):
                raise BadInput(f"{target!r} is written through the symlink {link!r} that this patch creates",
                               path=source, line=line + where(0) - 1)
        if section.new_mode == "120000" and section.new_path:
            symlinks.add(section.new_path)
            _check_symlink_target(section, source, line + where(0) - 1)
        key = section.path
        if key in seen and not section.rename:
            raise BadInput(f"{key!r} appears twice in one patch (first at line {seen[key]})",
                           path=source, line=line + where(0) - 1)
        seen[key] = line + where(0) - 1


def _check_symlink_target(section: FileDiff, source: str, line: int) -> None:
    """A symlink the patch creates must stay inside the tree."""
    added = [h for h in section.hunks for raw in h.lines if raw.startswith(b"+")]
    for hunk in section.hunks:
        for raw in hunk.lines:
            if raw.startswith(b"+"):
                target = raw[1:].decode("utf-8", "replace")
                depth = section.path.count("/")
                climbs = 0
                for part in target.split("/"):
                    if part == "..":
                        climbs += 1
                if target.startswith("/") or climbs > depth:
                    raise BadInput(f"symlink {section.path!r} points outside the tree ({target!r})",
                                   path=source, line=line)
    del added


# ---- patch files ----------------------------------------------------------------------------------------------

def _find_diff_start(lines: list[bytes]) -> int | None:
    for idx, line in enumerate(lines):
        if line.startswith(b"diff --git "):
            return idx
        if line.startswith(b"--- ") and idx + 1 < len(lines) and lines[idx + 1].startswith(b"+++ "):
            return idx
        if line.startswith(b"Index: ") and idx + 1 < len(lines) and lines[idx + 1].startswith(b"===="):
            return idx
    return None


def _find_diff_end(lines: list[bytes], start: int) -> int:
    """The diff ends where a `-- ` signature starts (format-patch), or at the end of the file."""
    for idx in range(len(lines) - 1, start, -1):
        if lines[idx] == b"-- ":
            return idx
    return len(lines)


def read_patch_file(data: bytes, *, source: str) -> PatchFile:
    """Parse a patch file written by patchq, git format-patch, or a bare `git diff`."""
    if b"\0" in data[:8192] and b"GIT binary patch" not in data:
        raise BadInput("file is binary, not a patch", path=source)
    if b"\r\n" in data:
        raise BadInput("CRLF line endings: convert the patch to LF (dos2unix) before using it", path=source,
                       line=data[: data.index(b"\r\n")].count(b"\n") + 1)
    lines = data.split(b"\n")
    start = _find_diff_start(lines)
    if start is None:
        raise BadInput("no diff found (expected 'diff --git' or '---'/'+++' lines)", path=source)
    end = _find_diff_end(lines, start)
    head = b"\n".join(lines[:start]) + (b"\n" if start else b"")
    diff = b"\n".join(lines[start:end])
    if end < len(lines):
        diff += b"\n"
        tail = b"\n".join(lines[end:])
    else:
        tail = b""
    files = parse_diff(diff, source=source, line_offset=start)
    empty_binary = re.search(rb"^Binary files .* differ\r?$", diff, re.M)
    if empty_binary:
        raise BadInput("binary change without its content ('Binary files ... differ'); make the patch with "
                       "'git diff --binary'", path=source, line=start + diff[:empty_binary.start()].count(b"\n") + 1)
    author, date, subject, description, trailers = _parse_head(head, source)
    return PatchFile(author, date, subject, description, tuple(trailers), head, diff, tail, files, start)


def _parse_head(head: bytes, source: str) -> tuple[str, str, str, str, list[tuple[str, str]]]:
    text = head.decode("utf-8", "replace")
    lines = text.split("\n")
    author = date = subject = ""
    idx = 0
    if lines and lines[0].startswith("From ") and re.match(r"^From [0-9a-f]{40} ", lines[0]):
        idx = 1
    # RFC 2822-ish headers until the first blank line
    headers_seen = False
    while idx < len(lines):
        line = lines[idx]
        m = re.match(r"^(From|Date|Subject): ?(.*)$", line)
        if not m:
            break
        headers_seen = True
        key, value = m.group(1), m.group(2)
        idx += 1
        while idx < len(lines) and lines[idx].startswith((" ", "\t")) and lines[idx].strip():
            value += " " + lines[idx].strip()
            idx += 1
        if key == "From":
            author = value.strip()
        elif key == "Date":
            date = value.strip()
        else:
            subject = re.sub(r"^\[PATCH[^\]]*\]\s*", "", value.strip())
    body_lines = lines[idx:]
    if not headers_seen:
        body_lines = lines
    # the message ends at the '---' separator before the diffstat
    if "---" in body_lines:
        body_lines = body_lines[: body_lines.index("---")]
    body = "\n".join(body_lines).strip("\n")
    trailers: list[tuple[str, str]] = []
    paragraphs = body.split("\n\n")
    if paragraphs and all(re.match(r"^[A-Za-z][A-Za-z0-9-]*: ", ln) for ln in paragraphs[-1].split("\n") if ln):
        last = paragraphs[-1]
        if any(ln.startswith(TRAILER_PREFIX) for ln in last.split("\n")):
            for ln in last.split("\n"):
                if not ln:
                    continue
                key, _, value = ln.partition(": ")
                trailers.append((key, value.strip()))
            paragraphs = paragraphs[:-1]
    description = "\n\n".join(paragraphs).strip("\n")
    if not headers_seen and not subject:
        first, _, rest = description.partition("\n")
        subject, description = first.strip(), rest.strip("\n")
    return author, date, subject, description, trailers


def entry_from_patch(patch: PatchFile, *, upstream: str, file: str, source: str) -> PatchEntry:
    """The annotation a patch file carries in its trailers, as a PatchEntry."""
    values: dict[str, object] = {}
    for name, attr in TRAILERS:
        raw = patch.trailer(name)
        if raw is None:
            continue
        if attr in LIST_FIELDS:
            values[attr] = tuple(v.strip() for v in raw.split(",") if v.strip())
        else:
            values[attr] = raw
    if "id" not in values:
        raise BadInput("patch has no Patchq-Id trailer", path=source)
    try:
        status = Status.parse(str(values.pop("status", "promoted")))
    except ValueError as exc:
        raise BadInput(str(exc), path=source) from None
    return PatchEntry(upstream=upstream, file=file, status=status, title=patch.subject, why=patch.description,
                      author=patch.author, **values)  # type: ignore[arg-type]


def format_date(iso_or_rfc: str) -> str:
    """A Date: header value from '2026-05-19', an RFC 2822 date or nothing (the epoch, for stable ids)."""
    if not iso_or_rfc:
        return EPOCH_DATE
    try:
        email.utils.parsedate_to_datetime(iso_or_rfc)
        return iso_or_rfc
    except (TypeError, ValueError):
        pass
    try:
        when = datetime.fromisoformat(iso_or_rfc)
    except ValueError:
        return EPOCH_DATE
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return email.utils.format_datetime(when)


def date_to_git(date_header: str) -> str:
    """'<epoch> <+zzzz>' for git from a Date: header; the epoch when it cannot be read."""
    try:
        when = email.utils.parsedate_to_datetime(date_header)
    except (TypeError, ValueError):
        return "0 +0000"
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    offset = when.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset else 0
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return f"{int(when.timestamp())} {sign}{minutes // 60:02d}{minutes % 60:02d}"


def trailer_lines(entry: PatchEntry) -> list[str]:
    out = []
    for name, attr in TRAILERS:
        value = getattr(entry, attr)
        if attr == "status":
            value = entry.status.value
        if attr in LIST_FIELDS:
            value = ", ".join(value)
        if value:
            out.append(f"{name}: {str(value).replace(chr(10), ' ')}")
    return out


def commit_message(entry: PatchEntry) -> str:
    """Subject, description and trailers: what a commit made from this patch says."""
    parts = [entry.title or entry.id]
    if entry.why.strip():
        parts.append(entry.why.strip())
    parts.append("\n".join(trailer_lines(entry)))
    return "\n\n".join(parts) + "\n"


def render_patch_file(entry: PatchEntry, diff: bytes) -> bytes:
    """A complete patch file for `entry` with `diff`, in the layout `git am` reads."""
    author = entry.author or DEFAULT_AUTHOR
    subject = (entry.title or entry.id).replace("\n", " ")
    head = (f"From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
            f"From: {author}\n"
            f"Date: {format_date(entry.date)}\n"
            f"Subject: [PATCH] {subject}\n\n")
    body = []
    if entry.why.strip():
        body.append(entry.why.strip() + "\n\n")
    body.append("\n".join(trailer_lines(entry)) + "\n")
    body.append("---\n\n")
    if diff and not diff.endswith(b"\n"):
        diff += b"\n"
    return (head + "".join(body)).encode() + diff + b"-- \npatchq\n"


def refresh_entry(patch_entry: PatchEntry, **changes) -> PatchEntry:
    return replace(patch_entry, **changes)


@dataclass
class DiffStats:
    files: int = 0
    added: int = 0
    removed: int = 0
    paths: list[str] = field(default_factory=list)


def diff_stats(files: tuple[FileDiff, ...]) -> DiffStats:
    stats = DiffStats(files=len(files))
    for section in files:
        stats.paths.append(section.path)
        for hunk in section.hunks:
            stats.added += sum(1 for ln in hunk.lines if ln.startswith(b"+"))
            stats.removed += sum(1 for ln in hunk.lines if ln.startswith(b"-"))
    return stats


def touched_paths(files: tuple[FileDiff, ...]) -> list[str]:
    """Every path a diff reads or writes, old and new names of renames included."""
    out: dict[str, None] = {}
    for section in files:
        for p in section.paths:
            out[p] = None
    return list(out)


def split_by_file(diff: bytes, files: tuple[FileDiff, ...]) -> dict[str, bytes]:
    """The diff text of each file section, keyed by path."""
    lines = diff.split(b"\n")
    out = {}
    for section in files:
        chunk = b"\n".join(lines[section.start_line - 1: section.end_line - 1])
        out[section.path] = chunk + b"\n"
    return out


def single_hunk_diffs(diff: bytes, section: FileDiff) -> list[tuple[int, Hunk, bytes]]:
    """Each hunk of one file section as a diff of its own: to find exactly which hunks no longer apply."""
    lines = diff.split(b"\n")
    first_hunk = section.hunks[0].header_line if section.hunks else section.end_line
    header = b"\n".join(lines[section.start_line - 1: first_hunk - 1]) + b"\n"
    out = []
    for number, hunk in enumerate(section.hunks, 1):
        body = b"\n".join(lines[hunk.header_line - 1: hunk.header_line + len(hunk.lines)]) + b"\n"
        out.append((number, hunk, header + body))
    return out
