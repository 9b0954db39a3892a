"""One patch file: a `git format-patch` style header, a description, annotation trailers, then the diff.

The reader is strict because patch files come from other people: every file section and hunk header is checked,
hunk line counts must add up, and paths that could escape the tree (absolute, `..`, `.git/`, through a symlink the
patch itself creates) are refused with the patch file's line number. The writer produces files `git am` accepts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .errors import BadInput
from .model import PatchEntry, Status
from .patchtext import FileDiff, Hunk, check_safe_path, parse_diff, parse_mail_head

__all__ = ["FileDiff", "Hunk", "PatchFile", "check_safe_path", "parse_diff", "read_patch_file", "render_patch_file",
           "entry_from_patch", "touched_paths", "split_by_file", "single_hunk_diffs"]

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
    mail = parse_mail_head(head.decode("utf-8", "replace").split("\n"))
    body_lines = list(mail.body)
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
    subject = mail.subject
    if not mail.is_mail and not subject:
        first, _, rest = description.partition("\n")
        subject, description = first.strip(), rest.strip("\n")
    return mail.author, mail.date, subject, description, trailers


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
    import email.utils  # 5 ms of start-up (it loads socket): only where a date is formatted or read
    try:
        email.utils.parsedate_to_datetime(iso_or_rfc)
        return iso_or_rfc
    except (TypeError, ValueError):
        pass
    try:
        when = datetime.fromisoformat(iso_or_rfc[:-1] + "+00:00" if iso_or_rfc.endswith("Z") else iso_or_rfc)  # 3.10
    except ValueError:
        return EPOCH_DATE
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return email.utils.format_datetime(when)


def date_to_git(date_header: str) -> str:
    """'<epoch> <+zzzz>' for git from a Date: header; the epoch when it cannot be read."""
    import email.utils
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
