"""Import a lab's patch folder into annotated queues: loose diffs, bundles, notes, quilt series and mbox files.

Labs keep patches the way they were made: `git diff` and `diff -u` output with absolute paths from a venv or /tmp,
base64-of-gzip bundles, markdown notes, names that carry the verdict and the date. Import turns each into a queue
entry: paths made repo-relative against the pinned trees, the upstream chosen by where the paths exist *and* where
the patch applies (vLLM and llm-scaler both have a top-level `vllm/`), a patch that spans two upstreams split in
two, status and date read from the name with the deciding rule recorded, duplicates and cumulative snapshots found.

Every input file ends up in the report — imported, linked note, notes-only, duplicate, or skipped with the reason —
and nothing reaches the workspace until the whole result has been staged and loaded back as a valid workspace.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import email.errors
import email.header
import email.utils
import fnmatch
import json
import os
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Iterable, Sequence

from .apply import LoadedPatch, TinyIndex, classify_patch, run_queue
from .bundle import (DEFAULT_LIMIT, Manifest, decode_b64, decode_gz_b64, gunzip_bounded, read_bundle, read_manifest,
                     sha256_hex)
from .crashtest import file_operation
from .errors import BadInput, PatchqError
from .git import Repo, run_git
from .model import PATCH_ID, Outcome, OutcomeKind, PatchEntry, Status
from .patchfile import PatchFile, entry_from_patch, read_patch_file, render_patch_file, touched_paths
from .sources import ensure_base
from .workspace import (LOCK_NAME, SERIES_NAME, STATE_DIR, Workspace, load_workspace, load_yaml, series_bytes,
                        workspace_lock, write_atomic)

# ---- words and shapes --------------------------------------------------------------------------------------------

VERDICT_WORDS: dict[str, Status] = {
    **{w: Status.NEGATIVE_ARCHIVED for w in ("negative", "rejected", "quality-fail", "neutral", "no-improvement",
                                             "no-uplift")},
    **{w: Status.DIAGNOSTIC for w in ("diagnostic", "timing", "trace", "probe", "screen", "debug", "logger")},
    **{w: Status.PROMOTED for w in ("promoted", "active", "current")},
}
TWO_WORD_VERDICTS = {("quality", "fail"): "quality-fail", ("no", "improvement"): "no-improvement",
                     ("no", "uplift"): "no-uplift"}
NEGATIVE_IN_PROSE = re.compile(r"(?<![\w-])(negative|rejected|quality[- ]fail(?:ed|s)?|neutral|no[- ]improvement|"
                               r"no[- ]uplift)(?![\w-])", re.IGNORECASE)
VERDICT_LINE = re.compile(r"^\s*(?:[-*]\s*)?(?:\*\*)?(verdict|status|outcome|decision)(?:\*\*)?\s*[:=]\s*(.+?)\s*$",
                          re.IGNORECASE | re.MULTILINE)
DEFAULT_RULE = "default: no verdict in the name or text; import never promotes by guess"
NAME_DATE = re.compile(r"(?<!\d)(20\d\d)[-_]?(\d\d)[-_]?(\d\d)(?!\d)")
PATCH_SUFFIXES = (".patch", ".diff", ".gz", ".b64", ".txt", ".mbox", ".mbx", ".eml", ".md", ".markdown")
NOTE_SUFFIXES = (".md", ".markdown")
MBOX_FROM = re.compile(rb"^From \S+ +(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|"
                       rb"Nov|Dec) +\d{1,2} \d\d:\d\d:\d\d \d{4}")
HUNK_HEADER = re.compile(rb"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
EPOCH_STAMP = re.compile(rb"^(1970-01-01|1969-12-31|Thu Jan  1 00:00:00 1970|Wed Dec 31 \d\d:\d\d:\d\d 1969)")
PLAIN_STAMP = re.compile(rb"^(\S+)\s+(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d.*)$")
GIT_EXTENDED = (b"old mode ", b"new mode ", b"deleted file mode ", b"new file mode ", b"copy from ", b"copy to ",
                b"rename from ", b"rename to ", b"similarity index ", b"dissimilarity index ", b"index ")
JUNK_BETWEEN = re.compile(rb"^(diff (?!--git )\S.*|Index: .*|=+|Only in .*|Common subdirectories: .*|"
                          rb"Files .* are identical)$")
QUILT_SERIES = "series"
RANK = {OutcomeKind.CLEAN: 4, OutcomeKind.OFFSET: 4, OutcomeKind.THREEWAY: 3, OutcomeKind.FUZZ: 3,
        OutcomeKind.ALREADY_UPSTREAM: 2, OutcomeKind.EMPTY: 1, OutcomeKind.CONFLICT: 0, OutcomeKind.NOT_REACHED: 0}
SAFETY = {Status.NEGATIVE_ARCHIVED: 0, Status.DIAGNOSTIC: 1, Status.PROMOTED: 2}
SYMLINK_ESCAPE = "unsafe path: it writes below"


# ---- what import reports -----------------------------------------------------------------------------------------

class ImportAction(str, Enum):
    IMPORTED = "imported"          # became a queue entry
    NOTE = "note"                  # a markdown note linked to an imported entry
    NOTES_ONLY = "notes-only"      # prose and code fences only: kept as a notes file, never a patch
    DUPLICATE = "duplicate"        # the same change (git patch-id) as another input or an existing entry
    SERIES = "series"              # a quilt series file; its patches have their own lines
    METADATA = "metadata"          # a patchq export's manifest or repro README: used to check a bundle, not imported
    SKIPPED = "skipped"            # not imported; `reason` says why


@dataclass(frozen=True)
class ImportItem:
    """What became of one input file (or one message of an mbox, or one part of a split patch)."""

    source: str
    action: ImportAction
    patch_id: str = ""
    upstream: str = ""
    status: str = ""
    status_rule: str = ""
    date: str = ""
    date_rule: str = ""
    file: str = ""                  # workspace-relative file written (or planned, on a dry run)
    outcome: str = ""               # how the patch applies at the upstream's pin
    reason: str = ""                # why skipped, what it duplicates, which entry a note belongs to
    remarks: tuple[str, ...] = ()   # what import changed or noticed: stripped prefixes, CRLF, splits, containment


@dataclass(frozen=True)
class ImportReport:
    items: tuple[ImportItem, ...]
    entries: tuple[PatchEntry, ...]     # the new series entries, in queue order
    written: tuple[str, ...]            # workspace-relative files written (planned on a dry run)
    warnings: tuple[str, ...]
    inputs: int                         # input files seen
    dry_run: bool
    accepted: bool                      # False: nothing was written (strict import with refusals)

    @property
    def ok(self) -> bool:
        return self.accepted and not any(i.action == ImportAction.SKIPPED for i in self.items)


@dataclass(frozen=True)
class MapRule:
    """One entry of a --map file: inputs matching `pattern` (glob on the path or file name, or an id) get these."""

    pattern: str
    status: Status | None = None
    upstream: str | None = None
    id: str | None = None
    line: int | None = None
    source: str = ""

    def describe(self) -> str:
        return f"map: {self.pattern!r} ({self.source}:{self.line})" if self.line else f"map: {self.pattern!r}"


def load_map(path: Path, ws: Workspace) -> tuple[MapRule, ...]:
    """Read a --map YAML file: `PATTERN: STATUS` or `PATTERN: {status: S, upstream: U, id: ID}` per line."""
    from ruamel.yaml.comments import CommentedMap
    doc = load_yaml(path, what="map file")
    if doc is None:
        return ()
    if not isinstance(doc, dict):
        raise BadInput("a map file is a mapping of glob or id to status/upstream/id", path=str(path), line=1)
    rules = []
    for pattern, value in doc.items():
        line = doc.lc.key(pattern)[0] + 1 if isinstance(doc, CommentedMap) else None
        if isinstance(value, str):
            value = {"status": value}
        if not isinstance(value, dict) or not value:
            raise BadInput(f"{pattern!r} must map to a status or to {{status:, upstream:, id:}}", path=str(path),
                           line=line)
        unknown = set(value) - {"status", "upstream", "id"}
        if unknown:
            raise BadInput(f"unknown key {sorted(unknown)[0]!r} for {pattern!r} (known: id, status, upstream)",
                           path=str(path), line=line)
        status = None
        if value.get("status") is not None:
            try:
                status = Status.parse(str(value["status"]))
            except ValueError as exc:
                raise BadInput(str(exc), path=str(path), line=line) from None
        upstream = str(value["upstream"]) if value.get("upstream") is not None else None
        if upstream is not None and upstream not in ws.upstreams:
            raise BadInput(f"unknown upstream {upstream!r} for {pattern!r} (known: {', '.join(ws.upstreams)})",
                           path=str(path), line=line)
        new_id = str(value["id"]) if value.get("id") is not None else None
        if new_id is not None and not PATCH_ID.match(new_id):
            raise BadInput(f"id {new_id!r} must be lower-case letters, digits, '.', '_' or '-'", path=str(path),
                           line=line)
        rules.append(MapRule(str(pattern), status, upstream, new_id, line, str(path)))
    return tuple(rules)


# ---- reading inputs ----------------------------------------------------------------------------------------------

class Refused(Exception):
    """One input (file, message or patch) cannot be imported; the reason goes into the report."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class InputFile:
    path: Path
    source: str                 # as shown in the report
    rel: str                    # relative to the folder given on the command line (what --map globs see)
    strip: int | None = None    # quilt -pN
    problem: str = ""           # a reason to skip it, known from the walk alone
    members: tuple["InputFile", ...] | None = None   # a quilt series file: its patches, in order
    problems: tuple[str, ...] = ()                    # a quilt series file: lines that name nothing usable


def _walk(paths: Sequence[Path]) -> list[InputFile]:
    """Every file under the given paths in a stable order, quilt folders recognised by their `series` file."""
    found: list[InputFile] = []
    for arg in paths:
        shown = str(arg)
        if arg.is_file():
            found.append(InputFile(arg, shown, arg.name))
        elif arg.is_dir():
            _walk_folder(arg, arg, shown, found, set())
        else:
            raise BadInput("no such file or folder", path=shown)
    return found


def _walk_folder(root: Path, folder: Path, shown: str, found: list[InputFile], listed: set[Path]) -> None:
    def rel_of(p: Path) -> str:
        return p.relative_to(root).as_posix()

    def source_of(p: Path) -> str:
        return f"{shown.rstrip('/')}/{rel_of(p)}"

    series_file = folder / QUILT_SERIES
    quilt = series_file.is_file() and not series_file.is_symlink()
    if quilt:
        members, problems = _read_quilt_series(series_file, folder, rel_of, source_of)
        found.append(InputFile(series_file, source_of(series_file), rel_of(series_file), members=tuple(members),
                               problems=tuple(problems)))
        listed |= {m.path for m in members}
    for child in sorted(folder.iterdir(), key=lambda p: p.name):
        if (quilt and child == series_file) or child in listed:
            continue
        if child.name.startswith("."):
            found.append(InputFile(child, source_of(child) + ("/" if child.is_dir() else ""), rel_of(child),
                                   problem="hidden (names starting with '.' are not imported)"))
        elif child.is_symlink():
            found.append(InputFile(child, source_of(child), rel_of(child),
                                   problem="symlink (not followed: it could point outside the folder)"))
        elif child.is_dir():
            _walk_folder(root, child, shown, found, listed)
        elif child.is_file():
            problem = ""
            if quilt and not child.name.lower().endswith(NOTE_SUFFIXES):
                problem = f"in a quilt folder but not listed in {source_of(series_file)}"
            found.append(InputFile(child, source_of(child), rel_of(child), problem=problem))


def _read_quilt_series(series_file: Path, folder: Path, rel_of, source_of) -> tuple[list[InputFile], list[str]]:
    members: list[InputFile] = []
    problems: list[str] = []
    text = series_file.read_bytes()[:1 << 20].decode("utf-8", "replace")
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, *options = line.split()
        strip, bad = 1, ""
        it = iter(options)
        for opt in it:
            m = re.fullmatch(r"-p(\d+)", opt)
            if m:
                strip = int(m.group(1))
            elif opt == "-p":
                nxt = next(it, "")
                if nxt.isdigit():
                    strip = int(nxt)
                else:
                    bad = "-p without a number"
            elif opt == "-R":
                bad = "-R (reverse) is not supported by import; reverse the patch file instead"
            else:
                bad = f"unknown quilt option {opt!r}"
        target = folder / name
        if ".." in Path(name).parts or name.startswith("/"):
            problems.append(f"line {number}: {name!r} points outside the quilt folder")
            continue
        if target.is_symlink() or not target.is_file():
            problems.append(f"line {number}: lists {name}, which does not exist (or is a symlink)")
            continue
        members.append(InputFile(target, source_of(target), rel_of(target), strip=strip,
                                 problem=f"series line {number}: {bad}" if bad else ""))
    return members, problems


def _read_bytes(item: InputFile, limit: int) -> tuple[bytes, list[str], bool]:
    """The text of an input, decoded from a bundle when its name says so. Returns (data, remarks, is_bundle)."""
    name = item.path.name.lower()
    size = item.path.stat().st_size
    remarks: list[str] = []
    encoded = name.endswith(".b64")
    if size > (2 * limit + 4096 if encoded else limit):
        raise Refused(f"file is {size} bytes, over the size limit of {limit} bytes (--max-size)")
    data = item.path.read_bytes()
    try:
        if name.endswith(".gz.b64"):
            data = decode_gz_b64(data, source=item.source, limit=limit)
            remarks.append("decoded a base64 gzip bundle")
        elif encoded:
            data = decode_b64(data, source=item.source)
            if data[:2] == b"\x1f\x8b":
                data = gunzip_bounded(data, source=item.source, limit=limit)
                remarks.append("decoded a base64 gzip bundle")
            else:
                if len(data) > limit:
                    raise Refused(f"decodes to {len(data)} bytes, over the size limit of {limit} bytes")
                remarks.append("decoded a base64 bundle")
        elif name.endswith(".gz"):
            data = gunzip_bounded(data, source=item.source, limit=limit)
            remarks.append("decompressed gzip")
    except BadInput as exc:
        raise Refused(f"line {exc.line}: {exc.message}" if exc.line else exc.message) from None
    return data, remarks, encoded or name.endswith(".gz")


def _clean_text(data: bytes) -> tuple[bytes, list[str]]:
    """Refuse binary files and mixed line endings; repair a CRLF-only file and a missing final newline."""
    remarks: list[str] = []
    if b"\0" in data:
        raise Refused("binary file (NUL bytes), not a text patch")
    crlf = data.count(b"\r\n")
    if crlf:
        lf = data.count(b"\n")
        if crlf == lf:
            data = data.replace(b"\r\n", b"\n")
            remarks.append("CRLF line endings converted to LF (every line had them: transport damage, not content)")
        else:
            first = data.index(b"\r\n")
            mixed_line = data[:first].count(b"\n") + 1
            raise Refused(f"mixed CRLF and LF line endings (first CRLF on line {mixed_line}): cannot tell a CRLF "
                          "source file from transport damage; convert it yourself (dos2unix) if it is damage")
    if data and not data.endswith(b"\n"):
        data += b"\n"
        remarks.append("the file did not end with a newline; one was added")
    return data, remarks


def _split_mbox(data: bytes) -> list[tuple[int, bytes]] | None:
    """(first line, bytes) of each message when `data` is an mbox (git format-patch output is one); else None."""
    lines = data.split(b"\n")
    first = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    if first is None or not MBOX_FROM.match(lines[first]):
        return None
    starts = [i for i, ln in enumerate(lines) if MBOX_FROM.match(ln)
              and i + 1 < len(lines) and re.match(rb"^[A-Za-z][A-Za-z0-9-]*: ", lines[i + 1])]
    if not starts or starts[0] != first:
        return None
    out = []
    offsets = [0]
    for ln in lines:
        offsets.append(offsets[-1] + len(ln) + 1)
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(lines)
        chunk = data[offsets[start]:min(offsets[end], len(data))]
        out.append((start + 1, chunk))
    return out


# ---- scanning a diff ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RawSection:
    """One file of a diff as written, paths not yet normalised (None for /dev/null)."""

    old: str | None
    new: str | None
    git: bool
    extended: tuple[bytes, ...]
    hunks: tuple[bytes, ...]
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


def _unquote(token: bytes) -> str:
    text = token.decode("utf-8", "surrogateescape")
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        body = text[1:-1].encode("latin-1", "backslashreplace")
        return body.decode("unicode_escape").encode("latin-1").decode("utf-8", "surrogateescape")
    return text


def _file_token(line: bytes, prefix: bytes) -> tuple[str | None, bytes]:
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
    path = _unquote(token.strip() if not token.startswith(b'"') else token)
    return (None if path == "/dev/null" else path), stamp.strip()


def _git_header_paths(line: bytes) -> tuple[str | None, str | None]:
    rest = line[len(b"diff --git "):].rstrip()
    m = re.match(rb'^("(?:[^"\\]|\\.)*"|\S+) ("(?:[^"\\]|\\.)*"|\S+)$', rest)
    if m:
        return _unquote(m.group(1)), _unquote(m.group(2))
    for pos in [i for i in range(len(rest)) if rest[i:i + 1] == b" "]:
        a, b = rest[:pos], rest[pos + 1:]
        if a[2:] == b[2:]:
            return _unquote(a), _unquote(b)
    return None, None


def _scan_hunks(lines: list[bytes], i: int) -> tuple[int, list[bytes]]:
    out: list[bytes] = []
    n = len(lines)
    while i < n and lines[i].startswith(b"@@"):
        m = HUNK_HEADER.match(lines[i])
        if not m:
            raise Refused(f"line {i + 1}: corrupt hunk header {lines[i][:60].decode('utf-8', 'replace')!r}")
        old_count = int(m.group(2)) if m.group(2) is not None else 1
        new_count = int(m.group(4)) if m.group(4) is not None else 1
        header = i
        out.append(lines[i])
        i += 1
        old_seen = new_seen = 0
        while i < n and (old_seen < old_count or new_seen < new_count):
            raw = lines[i]
            tag = raw[:1]
            if tag == b" " or raw == b"":
                old_seen += 1
                new_seen += 1
                raw = raw or b" "
            elif tag == b"-":
                old_seen += 1
            elif tag == b"+":
                new_seen += 1
            elif tag != b"\\":
                break
            out.append(raw)
            i += 1
        if old_seen != old_count or new_seen != new_count:
            raise Refused(f"line {header + 1}: hunk header promises -{old_count} +{new_count} lines but the hunk has "
                          f"-{old_seen} +{new_seen} (a truncated or hand-edited patch)")
        while i < n and lines[i].startswith(b"\\"):
            out.append(lines[i])
            i += 1
    return i, out


def scan_diff(data: bytes) -> Scanned:
    """Split text into prose before the diff, file sections (paths as written), prose between and after them."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    n = len(lines)
    head: list[bytes] = []
    pending: list[bytes] = []
    between: list[bytes] = []
    sections: list[RawSection] = []
    remarks: list[str] = []
    i = 0
    while i < n:
        line = lines[i]
        if line.startswith(b"diff --git "):
            i, section = _scan_git_section(lines, i)
        elif (line.startswith(b"--- ") and i + 2 < n and lines[i + 1].startswith(b"+++ ")
              and lines[i + 2].startswith(b"@@")):
            i, section = _scan_plain_section(lines, i)
        elif line.startswith(b"Binary files ") and line.endswith(b" differ"):
            raise Refused(f"line {i + 1}: binary diff ({line.decode('utf-8', 'replace')}): it carries no content; "
                          "import handles text patches only")
        elif line.startswith(b"@@ ") and HUNK_HEADER.match(line):
            raise Refused(f"line {i + 1}: hunk without a file header ('---'/'+++' lines)")
        else:
            (pending if sections else head).append(line)
            i += 1
            continue
        if sections:
            between.extend(pending)
        pending = []
        sections.append(section)
    if not sections:
        raise Refused("not a diff: no 'diff --git' or '---'/'+++'/'@@' file sections found")
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

    return Scanned(tuple(head), tuple(sections), tuple(prose_only(between, junk=True)),
                   tuple(prose_only(tail, junk=False)), tuple(remarks))


def _scan_git_section(lines: list[bytes], i: int) -> tuple[int, RawSection]:
    start = i
    git_a, git_b = _git_header_paths(lines[i])
    i += 1
    n = len(lines)
    extended: list[bytes] = []
    created = deleted = rename = copy = False
    while i < n and lines[i].startswith(GIT_EXTENDED + (b"GIT binary patch", b"Binary files ")):
        ext = lines[i]
        if ext.startswith((b"GIT binary patch", b"Binary files ")):
            raise Refused(f"line {i + 1}: binary diff of {git_b or git_a}: import handles text patches only")
        if ext.startswith(b"new file mode "):
            created = True
        elif ext.startswith(b"deleted file mode "):
            deleted = True
        elif ext.startswith((b"rename from ", b"copy from ")):
            rename, copy = ext.startswith(b"rename"), ext.startswith(b"copy")
            git_a = _unquote(ext.split(b" ", 2)[2])
        elif ext.startswith((b"rename to ", b"copy to ")):
            git_b = _unquote(ext.split(b" ", 2)[2])
        extended.append(ext)
        i += 1
    old, new = git_a, git_b
    hunks: list[bytes] = []
    if i + 1 < n and lines[i].startswith(b"--- ") and lines[i + 1].startswith(b"+++ "):
        old, _ = _file_token(lines[i], b"--- ")
        new, _ = _file_token(lines[i + 1], b"+++ ")
        i, hunks = _scan_hunks(lines, i + 2)
        if rename or copy:
            old, new = git_a, git_b
    if created:
        old = None
    if deleted:
        new = None
    return i, RawSection(old, new, True, tuple(extended), tuple(hunks), created, deleted, rename, copy, start + 1)


def _scan_plain_section(lines: list[bytes], i: int) -> tuple[int, RawSection]:
    start = i
    old, old_stamp = _file_token(lines[i], b"--- ")
    new, new_stamp = _file_token(lines[i + 1], b"+++ ")
    i, hunks = _scan_hunks(lines, i + 2)
    headers = [h for h in hunks if h.startswith(b"@@")]
    first = HUNK_HEADER.match(headers[0]) if headers else None
    created = old is None or bool(len(headers) == 1 and first and first.group(1) == b"0" and first.group(2) == b"0"
                                  and EPOCH_STAMP.match(old_stamp))
    deleted = new is None or bool(len(headers) == 1 and first and first.group(3) == b"0"
                                  and first.group(4) == b"0" and EPOCH_STAMP.match(new_stamp))
    return i, RawSection(None if created else old, None if deleted else new, False, (), tuple(hunks), created,
                         deleted, False, False, start + 1)


# ---- headers, titles, descriptions -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Head:
    author: str = ""
    date: str = ""          # as written in a Date: header (RFC 2822), or converted from `git log` output
    subject: str = ""
    body: str = ""


def _decode_header(value: str) -> str:
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (email.errors.HeaderParseError, LookupError, UnicodeDecodeError, ValueError):
        return value


def parse_head(lines: Sequence[bytes]) -> Head:
    """Author, date, subject and description from the text before a diff: mail headers, `git log` or prose."""
    text = [ln.decode("utf-8", "replace") for ln in lines]
    i = 0
    if text and MBOX_FROM.match(lines[0]):
        i = 1
    if i < len(text) and re.match(r"^commit [0-9a-f]{7,40}\b", text[i]):
        return _parse_git_log(text[i + 1:])
    headers: dict[str, str] = {}
    j = i
    while j < len(text):
        m = re.match(r"^([A-Za-z][A-Za-z0-9-]*): ?(.*)$", text[j])
        if not m:
            break
        key, value = m.group(1).lower(), m.group(2)
        j += 1
        while j < len(text) and text[j][:1] in (" ", "\t") and text[j].strip():
            value += " " + text[j].strip()
            j += 1
        headers.setdefault(key, value)
    if not ({"from", "subject", "date"} & set(headers)):
        return Head(body="\n".join(text[i:]).strip("\n"))
    body = text[j:]
    if "---" in body:
        body = body[:body.index("---")]
    subject = re.sub(r"^\s*\[PATCH[^\]]*\]\s*", "", _decode_header(headers.get("subject", "")).strip())
    return Head(_decode_header(headers.get("from", "")).strip(), headers.get("date", "").strip(), subject,
                "\n".join(body).strip("\n"))


def _parse_git_log(text: list[str]) -> Head:
    author = date = ""
    j = 0
    while j < len(text) and text[j].strip():
        key, _, value = text[j].partition(":")
        if key == "Author":
            author = value.strip()
        elif key in ("Date", "AuthorDate"):
            date = _git_log_date(value.strip())
        j += 1
    message = [ln[4:] if ln.startswith("    ") else ln for ln in text[j:]]
    while message and not message[0].strip():
        message.pop(0)
    subject = message[0].strip() if message else ""
    return Head(author, date, subject, "\n".join(message[1:]).strip("\n"))


def _git_log_date(value: str) -> str:
    try:
        when = dt.datetime.strptime(value, "%a %b %d %H:%M:%S %Y %z")
    except ValueError:
        return value
    return email.utils.format_datetime(when)


def _prose(lines: Iterable[bytes]) -> str:
    return "\n".join(ln.decode("utf-8", "replace").rstrip() for ln in lines).strip("\n")


_UNSAFE_PROSE = re.compile(r"^(---$|diff --git |Index: |\+\+\+ |--- )")


def safe_description(text: str) -> str:
    """Quote (`> `) description lines a patch reader would take for a diff, the `---` separator or an mbox line."""
    return "\n".join(("> " + ln) if _UNSAFE_PROSE.match(ln) or MBOX_FROM.match(ln.encode()) else ln
                     for ln in text.strip().split("\n"))


def _strip_fences(text: str) -> str:
    return re.sub(r"(?ms)^\s*(```|~~~).*?^\s*\1[^\n]*$", "", text)


# ---- names: slug, status, date -----------------------------------------------------------------------------------

def stem_of(name: str) -> str:
    """A file name without the extensions patch files and notes carry (`x.patch.gz.b64` -> `x`)."""
    stem = name
    changed = True
    while changed:
        changed = False
        for suffix in PATCH_SUFFIXES:
            if stem.lower().endswith(suffix) and len(stem) > len(suffix):
                stem = stem[: -len(suffix)]
                changed = True
    return stem


def _tokens(stem: str) -> list[str]:
    return [t for t in re.split(r"[-_.\s]+", stem.lower()) if t]


def _verdicts(tokens: list[str]) -> list[tuple[int, str]]:
    """(position, verdict word) in `tokens`, two-word verdicts at the position of their second word."""
    found = []
    for pos, token in enumerate(tokens):
        if pos and (tokens[pos - 1], token) in TWO_WORD_VERDICTS:
            found.append((pos, TWO_WORD_VERDICTS[(tokens[pos - 1], token)]))
        elif token in VERDICT_WORDS:
            found.append((pos, token))
    return found


def _is_suffix_token(token: str) -> bool:
    return (token in VERDICT_WORDS or bool(re.fullmatch(r"\d+|v\d+|20\d{6}", token))
            or token in ("quality", "fail", "no", "improvement", "uplift"))


SLUG_DROPS = {w for w, st in VERDICT_WORDS.items() if st != Status.DIAGNOSTIC} | {
    "diagnostic", "experiment", "quality", "fail", "improvement", "uplift"}


def _is_slug_suffix(token: str) -> bool:
    """Verdicts and dates leave the id; descriptive probe words (timing, trace, ...) stay: they name the change."""
    return token in SLUG_DROPS or token == "no"


def status_from_name(stem: str) -> tuple[Status, str] | None:
    """The verdict a file name carries: the last verdict word wins; promotion words count only as a suffix."""
    tokens = _tokens(stem)
    suffix_start = len(tokens)
    while suffix_start > 0 and _is_suffix_token(tokens[suffix_start - 1]):
        suffix_start -= 1
    found = [(pos, word) for pos, word in _verdicts(tokens)
             if VERDICT_WORDS[word] != Status.PROMOTED or pos >= suffix_start]
    if not found:
        return None
    word = found[-1][1]
    return VERDICT_WORDS[word], f"name: {word!r} in {stem!r}"


def status_from_text(text: str) -> tuple[Status, str] | None:
    """An explicit `Verdict:`/`Status:` line, else a rejection word anywhere in the prose (never a promotion)."""
    prose = _strip_fences(text)
    for m in VERDICT_LINE.finditer(prose):
        found = _verdicts(_tokens(m.group(2)))
        if found:
            word = found[0][1]
            return VERDICT_WORDS[word], f"text: {m.group(0).strip()[:80]!r}"
    m = NEGATIVE_IN_PROSE.search(prose)
    if m:
        return Status.NEGATIVE_ARCHIVED, f"text: {m.group(1)!r} in the description"
    return None


def date_from_name(stem: str) -> str:
    for m in NAME_DATE.finditer(stem):
        try:
            return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3))).isoformat()
        except ValueError:
            continue
    return ""


def slug_of(text: str, *, from_name: bool = True) -> str:
    """An id from a file name (numbering, dates and verdict suffixes dropped) or from a subject line."""
    tokens = _tokens(NAME_DATE.sub("", text)) if from_name else \
        [t for t in re.split(r"[^a-z0-9]+", text.lower()) if t]
    if from_name:
        kept = list(tokens)
        while kept and _is_slug_suffix(kept[-1]):
            kept.pop()
        while kept and re.fullmatch(r"\d{1,4}|20\d{6}", kept[0]):
            kept.pop(0)
        tokens = kept or tokens
    slug = re.sub(r"[^a-z0-9._]+", "-", "-".join(tokens)).strip("-._")
    slug = re.sub(r"-{2,}", "-", slug)[:60].strip("-._")
    return slug if slug and PATCH_ID.match(slug) else "patch"


# ---- upstream trees and path normalisation ------------------------------------------------------------------------

@dataclass
class UpstreamView:
    """One pinned upstream as import sees it: its mirror, the base commit, and which paths exist there."""

    name: str
    repo: Repo
    commit: str
    files: frozenset[str]
    dirs: frozenset[str]
    symlinks: frozenset[str]

    def symlink_above(self, path: str) -> str | None:
        """A folder of `path` that is a symlink at the pin: writing below it would leave the tree."""
        parts = path.split("/")
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in self.symlinks:
                return "/".join(parts[:depth])
        return None


def _view(ws: Workspace, name: str) -> UpstreamView:
    base = ensure_base(ws.upstream(name), ws.upstream(name).pin, workspace=ws.root)
    files, links = set(), set()
    for record in base.repo.run("ls-tree", "-r", "-z", "--full-tree", base.commit).out.split("\0"):
        meta, _, path = record.partition("\t")
        if path:
            files.add(path)
            if meta.startswith("120000"):
                links.add(path)
    dirs = {""}
    for path in files:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            dirs.add("/".join(parts[:depth]))
    return UpstreamView(name, base.repo, base.commit, frozenset(files), frozenset(dirs), frozenset(links))


@dataclass(frozen=True)
class Mapped:
    old: str | None
    new: str | None
    strength: int        # 3: the file exists there; 2: a new file in an existing folder; 1: placed by convention
    dropped: int = 0     # leading components removed from the new side


def _comps(raw: str) -> list[str]:
    return [c for c in raw.split("/") if c not in ("", ".")]


def _join(comps: list[str]) -> str:
    return "/".join(comps)


def _strip_p(raw: str, n: int) -> str:
    """`patch -pN`: drop the first N slash-separated pieces (a leading '/' counts as one)."""
    return _join([c for c in raw.split("/")[n:] if c not in ("", ".")])


def _longest_existing(comps: list[str], exists) -> str | None:
    for k in range(len(comps)):
        rel = _join(comps[k:])
        if exists(rel):
            return rel
    return None


def _check_components(section: RawSection) -> None:
    for raw in (section.old, section.new):
        if raw is None:
            continue
        parts = raw.replace("\\", "/").split("/")
        if ".." in parts:
            raise Refused(f"unsafe path {raw!r} (climbs out of the tree with '..')")
        if any(p.lower() == ".git" for p in parts):
            raise Refused(f"unsafe path {raw!r} (points into git's own .git directory)")
        if any(ord(c) < 32 for c in raw):
            raise Refused(f"unsafe path {raw!r} (control characters)")


def map_section(section: RawSection, view: UpstreamView, *, strip: int | None = None,
                created_before: frozenset[str] = frozenset()) -> Mapped | None:
    """Repo-relative paths of one file section in `view`: the longest tail of the written path that exists there.

    Returns None when the section cannot be placed in this upstream, or when it creates a file whose folder exists
    nowhere (the caller then places it like its sibling sections, or by the a/ b/ convention).
    """
    def exists(path: str) -> bool:
        return path in view.files or path in created_before

    old_c = _comps(section.old) if section.old is not None else None
    new_c = _comps(section.new) if section.new is not None else None
    if strip is not None:
        old = _strip_p(section.old, strip) if section.old is not None else None
        new = _strip_p(section.new, strip) if section.new is not None else None
        if (old_c is not None and not old) or (new_c is not None and not new):
            return None
        if old is not None:
            return Mapped(old, new, 3, strip) if exists(old) else None
        parent = new.rpartition("/")[0]
        return Mapped(None, new, 2 if parent in view.dirs and parent else 1, strip)
    if old_c is not None and new_c is not None and not (section.rename or section.copy):
        tail = _common_tail(old_c, new_c)
        for k in range(len(tail)):
            rel = _join(tail[k:])
            if exists(rel):
                return Mapped(rel, rel, 3, len(new_c) - len(tail) + k)
        # `diff -u x.py.orig x.py`: the two names differ; like GNU patch, take the one that exists
        for comps in (new_c, old_c):
            rel = _longest_existing(comps, exists)
            if rel is not None:
                return Mapped(rel, rel, 3, len(new_c) - len(rel.split("/")))
        return None
    if old_c is not None:
        rel = _longest_existing(old_c, exists)
        if rel is None:
            return None
        k = len(old_c) - len(rel.split("/"))
        if new_c is None:
            return Mapped(rel, None, 3, k)
        new = _join(new_c[k:])
        return Mapped(rel, new, 3, k) if new else None
    assert new_c is not None
    for k in range(len(new_c)):
        rel = _join(new_c[k:])
        parent = rel.rpartition("/")[0]
        if parent and parent in view.dirs:
            return Mapped(None, rel, 2, k)
    return None


def _common_tail(a: list[str], b: list[str]) -> list[str]:
    n = 0
    while n < min(len(a), len(b)) and a[len(a) - 1 - n] == b[len(b) - 1 - n]:
        n += 1
    return a[len(a) - n:]


def map_sections(sections: Sequence[RawSection], view: UpstreamView, *, strip: int | None = None,
                 created_before: frozenset[str] = frozenset()) -> list[Mapped | None]:
    """Every section of a patch in one upstream; created files in unknown folders follow their siblings."""
    out = [map_section(s, view, strip=strip, created_before=created_before) for s in sections]
    drops = {m.dropped for m, s in zip(out, sections) if m is not None and s.new is not None}
    for index, (m, section) in enumerate(zip(out, sections)):
        if m is not None or not section.created or section.new is None:
            continue
        new_c = _comps(section.new)
        if len(drops) == 1:
            k = next(iter(drops))
        elif section.new.startswith("/") and not section.git:
            continue
        else:
            k = 1 if len(new_c) > 1 else 0
        if k < len(new_c):
            out[index] = Mapped(None, _join(new_c[k:]), 1, k)
    return out


def path_remarks(sections: Sequence[RawSection], mapped: Sequence[Mapped | None]) -> list[str]:
    """What normalisation did, for the report: the prefixes dropped from the written paths."""
    prefixes: list[str] = []
    for section, m in zip(sections, mapped):
        if m is None:
            continue
        for raw, rel in ((section.old, m.old), (section.new, m.new)):
            if raw is not None and rel is not None and raw.endswith(rel):
                prefix = raw[: len(raw) - len(rel)]
                if prefix not in ("", "a/", "b/") and prefix not in prefixes:
                    prefixes.append(prefix)
    if not prefixes:
        return []
    shown = ", ".join(repr(p) for p in prefixes[:4]) + (" …" if len(prefixes) > 4 else "")
    return [f"paths made repo-relative by dropping {shown}"]


def _quote(path: str) -> str:
    if not re.search(r'[\s"\\\x00-\x1f\x7f]', path):
        return path
    escaped = path.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t").replace("\n", "\\n")
    return f'"{escaped}"'


def canonical_diff(sections: Sequence[RawSection], mapped: Sequence[Mapped]) -> bytes:
    """A git-style diff with repo-relative `a/` `b/` paths: what `git apply` and `git am` read without options."""
    out: list[bytes] = []
    for section, m in zip(sections, mapped):
        a = m.old or m.new or ""
        b = m.new or m.old or ""
        out.append(f"diff --git {_quote('a/' + a)} {_quote('b/' + b)}".encode())
        if section.git:
            for ext in section.extended:
                if ext.startswith((b"rename from ", b"copy from ")) and m.old:
                    ext = ext.split(b" ", 2)[0] + b" from " + _quote(m.old).encode()
                elif ext.startswith((b"rename to ", b"copy to ")) and m.new:
                    ext = ext.split(b" ", 2)[0] + b" to " + _quote(m.new).encode()
                out.append(ext)
        elif section.created:
            out.append(b"new file mode 100644")
        elif section.deleted:
            out.append(b"deleted file mode 100644")
        if section.hunks:
            out.append(b"--- " + (_quote("a/" + m.old).encode() if m.old else b"/dev/null"))
            out.append(b"+++ " + (_quote("b/" + m.new).encode() if m.new else b"/dev/null"))
            out.extend(section.hunks)
    return b"\n".join(out) + b"\n"


# ---- candidates: one patch each, before it has an upstream --------------------------------------------------------

@dataclass
class Candidate:
    item: InputFile
    source: str                      # report name: the file, or `file#N` for the N-th mbox message
    message: int | None
    stem: str
    scanned: Scanned
    head: Head
    title: str
    description: str
    remarks: list[str]
    patchq: PatchFile | None = None  # a patchq message: imported byte for byte
    raw: bytes = b""
    group: int | None = None         # quilt series or mbox: members apply in order
    bundle: bool = False
    note: "NoteFile | None" = None
    hint: str = ""                   # the upstream a patchq export manifest names

    @property
    def strip(self) -> int | None:
        return 1 if self.patchq is not None else self.item.strip


@dataclass
class NoteFile:
    item: InputFile
    data: bytes
    stem: str
    order: tuple[int, int]
    linked: list[str] = field(default_factory=list)      # refs of the entries it belongs to
    dest: str = ""
    wanted_by: list[str] = field(default_factory=list)   # sources of the patches beside it


@dataclass
class Part:
    """A candidate (or one upstream's share of it) placed in an upstream, with its canonical diff judged there."""

    cand: Candidate
    upstream: str
    sections: tuple[int, ...]
    diff: bytes
    patch: PatchFile
    outcome: Outcome
    split: tuple[str, ...] = ()       # the upstreams of all parts when the candidate was split
    patch_id: str = ""                # git patch-id
    entry: PatchEntry | None = None
    data: bytes = b""
    status_rule: str = ""
    date_rule: str = ""
    remarks: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)


def _candidate(item: InputFile, source: str, message: int | None, data: bytes, remarks: list[str],
               bundle: bool) -> Candidate:
    scanned = scan_diff(data)
    head = parse_head(scanned.head)
    patchq = None
    if b"\nPatchq-Id: " in b"\n".join(scanned.head):
        try:
            patchq = read_patch_file(data, source=source)
        except BadInput as exc:
            raise Refused(f"patchq patch that does not read back: {exc.message}"
                          + (f" (line {exc.line})" if exc.line else "")) from None
    stem = stem_of(item.path.name)
    title = head.subject
    body = head.body
    tail = _prose(scanned.tail)
    between = _prose(scanned.between)
    if not title:                # the first line of the prose before the diff; prose after it is description only
        lines = body.split("\n")
        first = next((k for k, ln in enumerate(lines) if ln.strip()), None)
        if first is not None:
            title = re.sub(r"^[#*>\-\s]+", "", lines[first]).strip().rstrip(":")
            body = "\n".join(lines[first + 1:]).strip("\n")
    if not title:
        title = stem
    description = "\n\n".join(p for p in (body.strip("\n"), between, tail) if p.strip())
    if bundle and patchq is None and message is None:
        remarks = remarks + ["foreign bundle (no patchq trailers): its diff is imported as one patch"]
    elif bundle and patchq is not None:
        remarks = remarks + ["patchq bundle message: imported byte for byte"]
    return Candidate(item, source, message, stem, scanned, head, title[:200], description,
                     list(remarks) + list(scanned.remarks), patchq=patchq, raw=data if patchq is not None else b"",
                     bundle=bundle)


# ---- choosing the upstream -----------------------------------------------------------------------------------------

class Placer:
    """Decides where candidates go, judging each placement with apply's own classifier at the pin."""

    def __init__(self, ws: Workspace, names: Sequence[str], warnings: list[str],
                 candidates: Sequence[Candidate] = ()) -> None:
        self.ws = ws
        self.names = list(names)
        self.views: dict[str, UpstreamView | None] = {}
        self.warnings = warnings
        self.candidates = list(candidates)
        self.maps: dict[tuple[int, str], list[Mapped | None]] = {}
        self.indexes: dict[str, tuple[TinyIndex, set[str]]] = {}

    def close(self) -> None:
        for index, _ in self.indexes.values():
            index.close()
        self.indexes.clear()

    def mapping(self, cand: Candidate, name: str) -> list[Mapped | None]:
        key = (id(cand), name)
        if key not in self.maps:
            view = self.view(name)
            assert view is not None
            self.maps[key] = map_sections(cand.scanned.sections, view, strip=cand.strip)
        return self.maps[key]

    def judge_one(self, name: str, cand: Candidate, patch: PatchFile) -> Outcome:
        """One patch alone at the pin, in a tiny index shared by every candidate (one `git apply` per check)."""
        view = self.view(name)
        assert view is not None
        touched = touched_paths(patch.files)
        for path in touched:
            link = view.symlink_above(path)
            if link:
                return Outcome("candidate", name, OutcomeKind.CONFLICT,
                               detail=f"{SYMLINK_ESCAPE} {link!r}, which is a symlink at the pin of {name}")
        if name not in self.indexes:
            paths: set[str] = set()
            for other in self.candidates:
                for m in self.mapping(other, name):
                    if m is not None:
                        paths.update(p for p in (m.old, m.new) if p)
            self.indexes[name] = (TinyIndex(view.repo, view.commit, sorted(paths)), paths)
        index, indexed = self.indexes[name]
        if not set(touched) <= indexed:
            return self.judge(name, [_loaded(cand, patch)])[0]
        before = index.snapshot()
        try:
            outcome, _ = classify_patch(view.repo, index, _loaded(cand, patch))
        finally:
            index.restore(before)
        return outcome

    def view(self, name: str) -> UpstreamView | None:
        if name not in self.views:
            try:
                self.views[name] = _view(self.ws, name)
            except PatchqError as exc:
                self.views[name] = None
                self.warnings.append(f"upstream {name!r} is not available, so nothing was placed there: {exc}")
        return self.views[name]

    def judge(self, name: str, loaded: list[LoadedPatch]) -> list[Outcome]:
        view = self.view(name)
        assert view is not None
        try:
            return run_queue(view.repo, view.commit, loaded, keep_going=True).outcomes
        except BadInput as exc:
            return [Outcome(lp.entry.id, name, OutcomeKind.CONFLICT, detail=exc.message) for lp in loaded]

    def build(self, cand: Candidate, name: str, indexes: Sequence[int], mapped: Sequence[Mapped]
              ) -> tuple[bytes, PatchFile]:
        sections = [cand.scanned.sections[i] for i in indexes]
        if cand.patchq is not None:
            return cand.patchq.diff, cand.patchq
        diff = canonical_diff(sections, [mapped[i] for i in indexes])
        try:
            return diff, read_patch_file(diff, source=cand.source)
        except BadInput as exc:
            raise Refused(exc.message) from None

    def place(self, cand: Candidate, allowed: Sequence[str]) -> list[Part]:
        """Parts of one candidate: one upstream when one holds every file, else one part per upstream."""
        for section in cand.scanned.sections:
            _check_components(section)
        maps: dict[str, list[Mapped | None]] = {}
        for name in allowed:
            if self.view(name) is not None:
                maps[name] = self.mapping(cand, name)
        if not maps:
            raise Refused("no pinned upstream is available to place it in")
        per_section: list[set[str]] = []
        for index, section in enumerate(cand.scanned.sections):
            strengths = {n: m[index].strength for n, m in maps.items() if m[index] is not None}
            if not strengths:
                where = f"upstream {allowed[0]!r}" if len(allowed) == 1 else \
                    f"any pinned upstream ({', '.join(maps)})"
                raise Refused(f"{section.shown} (line {section.line}) was not found in {where}")
            best = max(strengths.values())
            per_section.append({n for n, s in strengths.items() if s == best})
        everywhere = set.intersection(*per_section)
        every = list(range(len(cand.scanned.sections)))
        if everywhere:
            ordered = [n for n in maps if n in everywhere]
            judged = {}
            for name in ordered:
                diff, patch = self.build(cand, name, every, maps[name])
                judged[name] = (diff, patch, self.judge_one(name, cand, patch))
            chosen = _best(judged, lambda v: RANK[v[2].kind])
            if chosen is None:
                kinds = ", ".join(f"{n}: {v[2].kind.value}" for n, v in judged.items())
                raise Refused(f"ambiguous upstream: its paths exist in {', '.join(ordered)} and it fits them "
                              f"equally ({kinds}); say which with --upstream or --map")
            diff, patch, outcome = judged[chosen]
            _refuse_escape(outcome)
            remarks = path_remarks(cand.scanned.sections, maps[chosen])
            if len(ordered) > 1:
                others = ", ".join(f"{n}: {judged[n][2].kind.value}" for n in ordered if n != chosen)
                remarks.append(f"upstream {chosen} chosen by applying it at each candidate pin ({others})")
            return [Part(cand, chosen, tuple(every), diff, patch, outcome, remarks=remarks)]
        if cand.patchq is not None:
            raise Refused("its files belong to different upstreams; a patchq patch is imported whole or not at all")
        return self._split(cand, maps, per_section)

    def _split(self, cand: Candidate, maps: dict[str, list[Mapped | None]], per_section: list[set[str]]
               ) -> list[Part]:
        fixed = {i: next(iter(c)) for i, c in enumerate(per_section) if len(c) == 1}
        assigned = dict(fixed)
        for index, names in enumerate(per_section):
            if index in assigned:
                continue
            judged = {}
            for name in [n for n in maps if n in names]:
                _, patch = self.build(cand, name, [index], maps[name])
                judged[name] = self.judge_one(name, cand, patch)
            chosen = _best(judged, lambda o: RANK[o.kind])
            if chosen is None:
                preferred = [n for n in judged if n in set(fixed.values())
                             and RANK[judged[n].kind] == max(RANK[o.kind] for o in judged.values())]
                chosen = preferred[0] if len(preferred) == 1 else None
            if chosen is None:
                raise Refused(f"ambiguous upstream for {cand.scanned.sections[index].shown}: it exists in "
                              f"{', '.join(judged)} and fits them equally; say which with --upstream or --map")
            assigned[index] = chosen
        order: list[str] = []
        for index in sorted(assigned):
            if assigned[index] not in order:
                order.append(assigned[index])
        parts = []
        for name in order:
            indexes = tuple(i for i in sorted(assigned) if assigned[i] == name)
            diff, patch = self.build(cand, name, indexes, maps[name])
            outcome = self.judge_one(name, cand, patch)
            _refuse_escape(outcome)
            files = ", ".join(maps[name][i].new or maps[name][i].old or "?" for i in indexes)
            remarks = [f"split: the {name} part holds {files}",
                       *path_remarks([cand.scanned.sections[i] for i in indexes], [maps[name][i] for i in indexes])]
            parts.append(Part(cand, name, indexes, diff, patch, outcome, split=tuple(order), remarks=remarks))
        return parts

    def place_group(self, members: list[Candidate], allowed: Sequence[str]) -> list[Part] | None:
        """A quilt series or mbox applies in order: one upstream for all of it, judged as a sequence."""
        for cand in members:
            for section in cand.scanned.sections:
                _check_components(section)
        judged = {}
        for name in allowed:
            view = self.view(name)
            if view is None:
                continue
            created: set[str] = set()
            built = []
            strength = 0
            for cand in members:
                mapped = map_sections(cand.scanned.sections, view, strip=cand.strip,
                                      created_before=frozenset(created))
                if any(m is None for m in mapped):
                    break
                strength += sum(m.strength for m in mapped if m is not None)
                created |= {m.new for m, s in zip(mapped, cand.scanned.sections) if s.created and m and m.new}
                try:
                    every = list(range(len(cand.scanned.sections)))
                    built.append((*self.build(cand, name, every, mapped), mapped))   # type: ignore[arg-type]
                except Refused:
                    break
            else:
                loaded = [_loaded(c, b[1], f"m{n}") for n, (c, b) in enumerate(zip(members, built))]
                outcomes = self.judge(name, loaded)
                judged[name] = (built, outcomes, strength)
        if not judged:
            return None
        chosen = _best(judged, lambda v: (sum(RANK[o.kind] >= 2 for o in v[1]), sum(RANK[o.kind] for o in v[1]),
                                          v[2]))
        if chosen is None:
            raise Refused(f"ambiguous upstream for the whole series: it fits {', '.join(judged)} equally; "
                          "say which with --upstream or --map")
        built, outcomes, _ = judged[chosen]
        parts = []
        for cand, (diff, patch, mapped), outcome in zip(members, built, outcomes):
            remarks = ["judged in series order", *path_remarks(cand.scanned.sections, mapped)]
            if len(judged) > 1:
                remarks.append(f"series placed in {chosen} (also fits: {', '.join(n for n in judged if n != chosen)})")
            every = tuple(range(len(cand.scanned.sections)))
            parts.append(Part(cand, chosen, every, diff, patch, outcome, remarks=remarks))
        return parts


def _refuse_escape(outcome: Outcome) -> None:
    if outcome.kind == OutcomeKind.CONFLICT and outcome.detail.startswith(SYMLINK_ESCAPE):
        raise Refused(outcome.detail)


def _best(judged: dict, key) -> str | None:
    """The single best-scoring name, or None on a tie at the top."""
    if not judged:
        return None
    scores = {name: key(value) for name, value in judged.items()}
    top = max(scores.values())
    winners = [name for name, score in scores.items() if score == top]
    return winners[0] if len(winners) == 1 else None


def _loaded(cand: Candidate, patch: PatchFile, pid: str = "candidate") -> LoadedPatch:
    entry = PatchEntry(id=pid, upstream="", file="", status=Status.NEGATIVE_ARCHIVED, title=cand.title)
    return LoadedPatch(entry, patch, cand.source)


# ---- duplicates and containment --------------------------------------------------------------------------------------

def patch_ids(diffs: Sequence[bytes]) -> list[str | None]:
    """`git patch-id --stable` of many diffs in one git process."""
    if not diffs:
        return []
    chunks = []
    for n, diff in enumerate(diffs):
        chunks.append(f"From {n + 1:040x} Mon Sep 17 00:00:00 2001\n\n".encode() + diff)
    out = run_git(["patch-id", "--stable"], input=b"".join(chunks)).out
    found = {}
    for line in out.splitlines():
        pid, _, commit = line.partition(" ")
        found[int(commit, 16) - 1] = pid
    return [found.get(n) for n in range(len(diffs))]


def change_items(patch: PatchFile) -> Counter:
    """A patch's line changes anchored at the pre-image line where each change block starts.

    Two snapshots made against the same base describe the same edit with the same items, so one patch is contained
    in another when its items are a sub-multiset of the other's — even when their hunks were merged differently.
    """
    items: Counter = Counter()
    for section in patch.files:
        path = section.path
        for hunk in section.hunks:
            old_line = hunk.old_start
            block = None
            for raw in hunk.lines:
                tag = raw[:1]
                if tag == b" ":
                    old_line += 1
                    block = None
                elif tag == b"-":
                    block = old_line if block is None else block
                    items[("-", path, old_line, raw[1:])] += 1
                    old_line += 1
                elif tag == b"+":
                    block = old_line if block is None else block
                    items[("+", path, block, raw[1:])] += 1
    return items


def _contains(big: Counter, small: Counter) -> bool:
    return bool(small) and big != small and all(big[key] >= count for key, count in small.items())


# ---- the import --------------------------------------------------------------------------------------------------

def import_paths(ws: Workspace, paths: Sequence[Path | str], *, upstream: str | None = None,
                 status: Status | str | None = None, mapping: Path | str | Sequence[MapRule] | None = None,
                 dry_run: bool = False, limit: int = DEFAULT_LIMIT, strict: bool = False) -> ImportReport:
    """Import lab patch folders and files into the workspace's queues; see docs/import.md.

    Everything is decided and staged first; the workspace is written only when the staged result loads back as a
    valid workspace (and, with `strict`, when no input was refused). `dry_run` decides and validates, writes nothing.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise BadInput("nothing to import: give one or more files or folders")
    if upstream is not None:
        ws.upstream(upstream)
    forced_status = Status.parse(status) if isinstance(status, str) else status
    if mapping is None:
        rules: tuple[MapRule, ...] = ()
    elif isinstance(mapping, (str, Path)):
        rules = load_map(Path(mapping), ws)
    else:
        rules = tuple(mapping)
    inputs = _walk(paths)
    if dry_run:
        return _run(ws, inputs, upstream, forced_status, rules, limit, dry_run=True, strict=strict)
    with workspace_lock(ws.root, "import"):
        recover_interrupted_import(ws.root)
        fresh = load_workspace(ws.root)
        return _run(fresh, inputs, upstream, forced_status, rules, limit, dry_run=False, strict=strict)


Order = tuple[int, ...]


@dataclass
class _State:
    items: list[tuple[Order, ImportItem]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def add(self, order: Order, item: ImportItem) -> None:
        self.items.append((order, item))


@dataclass
class _Read:
    singles: list[tuple[Order, Candidate]] = field(default_factory=list)
    groups: dict[int, list[tuple[Order, Candidate]]] = field(default_factory=dict)
    notes: list[NoteFile] = field(default_factory=list)
    count: int = 0
    next_group: int = 0
    manifests: dict[Path, tuple[Path, Manifest]] = field(default_factory=dict)   # bundle path -> its manifest
    metadata: dict[Path, str] = field(default_factory=dict)                      # export files that are not patches
    ordered_folders: set[Path] = field(default_factory=set)   # patchq folders whose patch files apply in order
    folder_groups: dict[Path, int] = field(default_factory=dict)
    broken_manifests: dict[Path, str] = field(default_factory=dict)   # folder/label of an invalid manifest -> why


def _find_manifests(inputs: list[InputFile], read: _Read) -> None:
    """patchq export manifests among the inputs: they name the upstream and the checksums of their bundle."""
    for item in inputs:
        if item.path.name == SERIES_NAME and not item.problem and _is_patchq_series(item.path):
            read.metadata[item.path] = "series.yaml of a patchq queue: its folder's patch files are applied in order"
            read.ordered_folders.add(item.path.parent)
            continue
        if not item.path.name.endswith(".manifest.json") or item.problem:
            continue
        try:
            manifest = read_manifest(item.path)
        except BadInput as exc:      # its bundle must not be imported unchecked: refuse the files it would cover
            label = item.path.name[: -len(".manifest.json")]
            read.broken_manifests[item.path.parent / label] = f"{item.path.name} is invalid ({exc.message})"
            continue
        except OSError:
            continue
        read.manifests[item.path.parent / manifest.bundle] = (item.path, manifest)
        if manifest.format == "patch":
            read.ordered_folders.add(item.path.parent / manifest.bundle)
        read.metadata[item.path] = f"manifest of the patchq bundle {manifest.bundle}: used to check it and place it " \
                                   f"in {manifest.upstream}"
        readme = item.path.parent / f"{manifest.label}.repro.md"
        read.metadata[readme] = f"repro instructions of the patchq bundle {manifest.bundle} (not a note)"


def _is_patchq_series(path: Path) -> bool:
    try:
        doc = load_yaml(path, what=SERIES_NAME)
    except (BadInput, OSError):
        return False
    return isinstance(doc, dict) and isinstance(doc.get("patches"), list)


def _check_against_manifest(item: InputFile, read: _Read, limit: int) -> tuple[str, list[str]]:
    """The upstream a manifest names for this input, after checking the input against the manifest."""
    for label, why in read.broken_manifests.items():
        if item.path == label.parent / f"{label.name}.manifest.json":
            raise Refused(f"manifest {why.partition(' is ')[2]}: the bundle it describes is not imported")
        if item.path.parent == label.parent and item.path.name.startswith(label.name + ".") \
                or item.path.parent == label or label in item.path.parents:
            raise Refused(f"its manifest {why}: not imported unchecked")
    found = read.manifests.get(item.path) or read.manifests.get(item.path.parent)
    if found is None:
        return "", []
    manifest_path, manifest = found
    if item.path == manifest_path.parent / manifest.bundle:
        try:
            read_bundle(item.path, limit=limit, manifest=manifest)
        except BadInput as exc:
            raise Refused(f"does not match its manifest {manifest_path.name}: {exc.message}") from None
    else:
        expected = manifest.files.get(f"{manifest.bundle}/{item.path.name}")
        if expected is not None and sha256_hex(item.path.read_bytes()) != expected:
            raise Refused(f"does not match the checksum in its manifest {manifest_path.name}")
    return manifest.upstream, [f"checked against {manifest_path.name}"]


def _rules_for(rules: Sequence[MapRule], item: InputFile, source: str, ids: Sequence[str]) -> list[MapRule]:
    out = []
    for rule in rules:
        names = (item.rel, item.path.name, source, *ids)
        if any(fnmatch.fnmatchcase(n, rule.pattern) for n in names):
            out.append(rule)
    return out


def _read_all(inputs: list[InputFile], limit: int, state: _State) -> _Read:
    read = _Read()
    _find_manifests(inputs, read)
    counter = 0
    for item in inputs:
        counter += 1
        read.count += 1
        if item.path in read.metadata and item.members is None:
            state.add((counter, 0), ImportItem(item.source, ImportAction.METADATA, reason=read.metadata[item.path]))
            continue
        if item.members is not None:
            state.add((counter, 0), ImportItem(item.source, ImportAction.SERIES,
                                               reason=f"quilt series of {len(item.members)} patch(es)",
                                               remarks=item.problems))
            read.next_group += 1
            group = read.next_group
            for member in item.members:
                counter += 1
                read.count += 1
                _read_one(member, counter, group, limit, state, read)
            continue
        _read_one(item, counter, None, limit, state, read)
    return read


def _read_one(item: InputFile, counter: int, group: int | None, limit: int, state: _State, read: _Read) -> None:
    order = (counter, 0)
    if item.problem:
        state.add(order, ImportItem(item.source, ImportAction.SKIPPED, reason=item.problem))
        return
    try:
        if item.path.name.lower().endswith(NOTE_SUFFIXES):
            if item.path.stat().st_size > limit:
                raise Refused(f"file is over the size limit of {limit} bytes (--max-size)")
            read.notes.append(NoteFile(item, item.path.read_bytes(), stem_of(item.path.name), order))
            return
        hint, checked = _check_against_manifest(item, read, limit)
        data, remarks, bundle = _read_bytes(item, limit)
        remarks = checked + remarks
        data, more = _clean_text(data)
        messages = _split_mbox(data)
    except Refused as exc:
        state.add(order, ImportItem(item.source, ImportAction.SKIPPED, reason=exc.reason))
        return
    except OSError as exc:
        state.add(order, ImportItem(item.source, ImportAction.SKIPPED, reason=f"cannot read it: {exc.strerror}"))
        return
    if messages is None:
        messages = [(1, data)]
        many = False
    else:
        many = len(messages) > 1
    if group is None and item.path.parent in read.ordered_folders:
        if item.path.parent not in read.folder_groups:          # a patchq folder of patch files: in order
            read.next_group += 1
            read.folder_groups[item.path.parent] = read.next_group
        group = read.folder_groups[item.path.parent]
    if many and group is None:
        read.next_group += 1
        group = read.next_group
    for number, (_, chunk) in enumerate(messages, 1):
        source = f"{item.source}#{number}" if many else item.source
        sub = (counter, number - 1)
        try:
            cand = _candidate(item, source, number if many else None, chunk, remarks + more, bundle)
        except Refused as exc:
            reason = exc.reason
            if many and reason.startswith("not a diff"):
                reason = "a message without a diff (a cover letter?): nothing to import"
            state.add(sub, ImportItem(source, ImportAction.SKIPPED, reason=reason))
            continue
        cand.group = group
        cand.hint = hint
        if group is None:
            read.singles.append((sub, cand))
        else:
            read.groups.setdefault(group, []).append((sub, cand))


def _run(ws: Workspace, inputs: list[InputFile], upstream: str | None, forced_status: Status | None,
         rules: tuple[MapRule, ...], limit: int, *, dry_run: bool, strict: bool) -> ImportReport:
    state = _State()
    read = _read_all(inputs, limit, state)
    by_stem = {(n.item.path.parent, n.stem): n for n in read.notes}
    for _, cand in [*read.singles, *(m for ms in read.groups.values() for m in ms)]:
        if cand.patchq is None:
            cand.note = by_stem.get((cand.item.path.parent, cand.stem))
            if cand.note is not None:
                cand.note.wanted_by.append(cand.source)

    names = [upstream] if upstream else list(ws.upstreams)
    for _, cand in [*read.singles, *(m for ms in read.groups.values() for m in ms)]:
        if cand.hint and not upstream:
            if cand.hint in ws.upstreams:
                cand.remarks.append(f"upstream {cand.hint} named by the bundle's manifest")
            else:
                cand.remarks.append(f"the manifest names upstream {cand.hint!r}, which this workspace does not "
                                    "have: placed by its paths")
                cand.hint = ""
    everyone = [c for _, c in read.singles] + [c for ms in read.groups.values() for _, c in ms]
    placer = Placer(ws, names, state.warnings, everyone)
    try:
        placed = _place_all(placer, read, names, rules, state)
    finally:
        placer.close()
    plan = _annotate(ws, placed, rules, forced_status, state)
    _plan_notes(ws, read.notes, plan, state)

    accepted = not (strict and any(i.action == ImportAction.SKIPPED for _, i in state.items))
    written: tuple[str, ...] = ()
    if not accepted:
        state.warnings.append("strict import: some inputs were refused, so nothing was written")
    elif plan.files or plan.series:
        _stage_and_write(ws, plan, dry_run=dry_run)
        written = tuple([*plan.files, *(f"queues/{u}/{SERIES_NAME}" for u in plan.series)])
    items = tuple(item for _, item in sorted(state.items, key=lambda oi: oi[0]))
    entries = tuple(e for u in plan.series for e in plan.new_entries[u])
    return ImportReport(items, entries, written, tuple(state.warnings), read.count, dry_run, accepted)


def _place_all(placer: Placer, read: _Read, names: list[str], rules: Sequence[MapRule], state: _State
               ) -> list[tuple[Order, Part]]:
    placed: list[tuple[Order, Part]] = []

    def allowed_for(cand: Candidate) -> list[str]:
        for rule in reversed(_rules_for(rules, cand.item, cand.source, ())):
            if rule.upstream:
                return [rule.upstream]
        if cand.hint and len(names) > 1:
            return [cand.hint]
        return names

    def place_one(order: Order, cand: Candidate) -> None:
        try:
            placed.extend((order, part) for part in placer.place(cand, allowed_for(cand)))
        except Refused as exc:
            state.add(order, ImportItem(cand.source, ImportAction.SKIPPED, reason=exc.reason,
                                        remarks=tuple(cand.remarks)))

    singles = list(read.singles)
    for key in sorted(read.groups):
        members = read.groups[key]
        if len(members) == 1:
            singles.append(members[0])
            continue
        cands = [c for _, c in members]
        allowed = {tuple(allowed_for(c)) for c in cands}
        parts = None
        if len(allowed) == 1:
            try:
                parts = placer.place_group(cands, list(next(iter(allowed))))
            except Refused as exc:
                for order, cand in members:
                    state.add(order, ImportItem(cand.source, ImportAction.SKIPPED, reason=exc.reason))
                continue
        if parts is None:
            for order, cand in members:
                cand.remarks.append("no single upstream holds the whole series: placed one patch at a time")
                place_one(order, cand)
        else:
            placed.extend((order, part) for (order, _), part in zip(members, parts))
    for order, cand in sorted(singles, key=lambda oc: oc[0]):
        place_one(order, cand)
    placed.sort(key=lambda op: op[0])
    return placed


@dataclass
class Plan:
    files: dict[str, bytes] = field(default_factory=dict)              # workspace-relative path -> bytes (new)
    series: dict[str, list[PatchEntry]] = field(default_factory=dict)  # upstream -> full new entry list
    new_entries: dict[str, list[PatchEntry]] = field(default_factory=dict)


def _unique_file(files: dict[str, bytes], wanted: str, root: Path) -> str:
    stem, dot, ext = wanted.rpartition(".")
    candidate, n = wanted, 1
    while candidate in files or (root / candidate).exists():
        n += 1
        candidate = f"{stem}-{n}{dot}{ext}"
    return candidate


def _status_of(part: Part, rules: Sequence[MapRule], forced: Status | None, slug: str) -> tuple[Status, str]:
    cand = part.cand
    if forced is not None:
        return forced, "--status"
    for rule in reversed(_rules_for(rules, cand.item, cand.source, (slug,))):
        if rule.status is not None:
            return rule.status, rule.describe()
    if cand.patchq is not None:
        value = cand.patchq.trailer("Patchq-Status")
        if value:
            with contextlib.suppress(ValueError):
                return Status.parse(value), "trailer: Patchq-Status"
    found = status_from_name(cand.stem)
    if found is None and cand.message is not None and cand.head.subject:
        by_subject = status_from_name(cand.head.subject)       # an mbox message's subject is its name
        if by_subject is not None:
            found = (by_subject[0], "subject" + by_subject[1][len("name"):])
    if found is None:
        text = f"{cand.title}\n\n{cand.description}"
        if cand.note is not None:
            text += "\n\n" + cand.note.data.decode("utf-8", "replace")
        found = status_from_text(text)
    return found if found is not None else (Status.NEGATIVE_ARCHIVED, DEFAULT_RULE)


def _flags_of(patch: PatchFile, remarks: list[str]) -> tuple[str, ...]:
    """Env flags the added lines read, from the flags module when it is installed (hunks only: no checkout)."""
    try:
        from .flags import reads_in_lines
    except ImportError:
        return ()
    names: set[str] = set()
    for section in patch.files:
        if not section.new_path:
            continue
        for hunk in section.hunks:
            fragment, added = [], set()
            for raw in hunk.lines:
                if raw[:1] in (b" ", b"+"):
                    fragment.append(raw[1:].decode("utf-8", "replace"))
                    if raw[:1] == b"+":
                        added.add(len(fragment))
            if not added:
                continue
            try:
                reads = reads_in_lines(section.new_path, "\n".join(fragment) + "\n", added)
            except Exception as exc:  # an extractor bug must not stop an import; the report says so
                remarks.append(f"env flags of {section.new_path} could not be read ({type(exc).__name__})")
                continue
            names.update(r.name for r in reads if not r.dynamic and not r.removed)
    return tuple(sorted(names))


def _annotate(ws: Workspace, placed: list[tuple[Order, Part]], rules: Sequence[MapRule], forced: Status | None,
              state: _State) -> Plan:
    """Duplicates, ids, statuses, containment and the final entries and patch bytes of every placed part."""
    plan = Plan()
    by_upstream: dict[str, list[tuple[Order, Part]]] = {}
    for order, part in placed:
        by_upstream.setdefault(part.upstream, []).append((order, part))
    existing_of: dict[str, list[tuple[PatchEntry, PatchFile]]] = {}
    kept_of: dict[str, list[tuple[Order, Part]]] = {}
    for name, parts in by_upstream.items():
        existing_of[name] = _existing_patches(ws, name)
        kept_of[name] = _dedupe_and_name(ws, name, parts, existing_of[name], rules, forced, state)
    all_kept = [p for kept in kept_of.values() for _, p in kept]
    for name, kept in kept_of.items():
        contains = _containment(name, kept, existing_of[name], state)
        existing = list(ws.queue(name).entries)
        numbers = [int(m.group(1)) for e in existing if (m := re.match(r"^(\d{4})-", e.file))]
        number = max(numbers) if numbers else 0
        new_entries = []
        for order, part in kept:
            number += 1
            part.entry = _final_entry(ws, part, contains[id(part)], kept, all_kept, number)
            new_entries.append(part.entry)
            path = f"queues/{name}/{part.entry.file}"
            plan.files[path] = part.data
            entry = part.entry
            rank = part.split.index(name) if part.split else 0
            state.add(order + (rank,), ImportItem(
                part.cand.source, ImportAction.IMPORTED, patch_id=entry.id, upstream=name, status=entry.status.value,
                status_rule=part.status_rule, date=entry.date, date_rule=part.date_rule, file=path,
                outcome=part.outcome.kind.value, reason=part.outcome.detail if not part.outcome.kind.ok else "",
                remarks=tuple(part.cand.remarks + part.remarks)))
        if new_entries:
            plan.series[name] = existing + new_entries
            plan.new_entries[name] = new_entries
    return plan


def _existing_patches(ws: Workspace, name: str) -> list[tuple[PatchEntry, PatchFile]]:
    out = []
    for entry in ws.queue(name).entries:
        path = ws.patch_path(entry)
        with contextlib.suppress(OSError, BadInput):
            out.append((entry, read_patch_file(path.read_bytes(), source=ws.rel(path))))
    return out


def _dedupe_and_name(ws: Workspace, name: str, parts: list[tuple[Order, Part]],
                     existing: list[tuple[PatchEntry, PatchFile]], rules: Sequence[MapRule], forced: Status | None,
                     state: _State) -> list[tuple[Order, Part]]:
    """Drop duplicates (same git patch-id as an existing entry or an earlier input); give the rest ids and statuses."""
    ids = patch_ids([p.diff for _, p in parts] + [pf.diff for _, pf in existing])
    for (_, part), pid in zip(parts, ids):
        part.patch_id = pid or ""
    existing_by_pid = {pid: e for (e, _), pid in zip(existing, ids[len(parts):]) if pid}
    used_ids = {e.id for e in ws.queue(name).entries}
    first_of: dict[str, Part] = {}
    kept: list[tuple[Order, Part]] = []
    dups: list[tuple[Order, Part, Part]] = []
    for order, part in parts:
        cand = part.cand
        remarks = tuple(cand.remarks + part.remarks)
        if part.patch_id and part.patch_id in existing_by_pid:
            twin = existing_by_pid[part.patch_id]
            state.add(order, ImportItem(cand.source, ImportAction.DUPLICATE, patch_id=twin.id, upstream=name,
                                        reason=f"same change (git patch-id) as the existing {name}:{twin.id}",
                                        remarks=remarks))
            continue
        if part.patch_id and part.patch_id in first_of:
            dups.append((order, part, first_of[part.patch_id]))
            continue
        if part.patch_id:
            first_of[part.patch_id] = part
        if cand.patchq is not None:
            base_id = cand.patchq.trailer("Patchq-Id") or slug_of(cand.stem)
        elif cand.message is not None:
            base_id = slug_of(cand.head.subject or cand.title, from_name=False)
        else:
            base_id = slug_of(cand.stem)
        new_id = base_id
        for rule in reversed(_rules_for(rules, cand.item, cand.source, (base_id,))):
            if rule.id:
                new_id = rule.id
                break
        if part.split:
            new_id = f"{new_id}-{part.upstream}"[:100]
        if cand.patchq is not None and new_id in used_ids:
            state.add(order, ImportItem(cand.source, ImportAction.SKIPPED, patch_id=new_id, upstream=name,
                                        reason=f"id {new_id!r} is already used in queue {name} by a different "
                                               "patch; give it a new id with --map", remarks=remarks))
            first_of.pop(part.patch_id, None)
            continue
        unique, n = new_id, 1
        while unique in used_ids:
            n += 1
            unique = f"{new_id}-{n}"
        if unique != new_id:
            part.remarks.append(f"id {new_id!r} was taken: using {unique!r}")
        used_ids.add(unique)
        status, part.status_rule = _status_of(part, rules, forced, base_id)
        date, part.date_rule = _date_of(part.cand)
        part.entry = PatchEntry(id=unique, upstream=name, file="", status=status, title=part.cand.title, date=date)
        kept.append((order, part))
    for order, part, first in dups:
        if first.entry is None:
            continue
        first.duplicates.append(part.cand.source)
        status, rule = _status_of(part, rules, forced, first.entry.id)
        if rule != DEFAULT_RULE and SAFETY[status] < SAFETY[first.entry.status]:
            first.remarks.append(f"the duplicate {part.cand.source} says {status.value} ({rule}): kept the safer "
                                 "status")
            first.entry = replace(first.entry, status=status)
            first.status_rule = rule
        state.add(order, ImportItem(part.cand.source, ImportAction.DUPLICATE, patch_id=first.entry.id,
                                    upstream=name, reason=f"same change (git patch-id) as {first.cand.source}, "
                                                          f"imported as {name}:{first.entry.id}",
                                    remarks=tuple(part.cand.remarks + part.remarks)))
    return kept


def _containment(name: str, kept: list[tuple[Order, Part]], existing: list[tuple[PatchEntry, PatchFile]],
                 state: _State) -> dict[int, list[str]]:
    """`contains` per imported part: the imported or existing patches whose every line change it also makes."""
    items = {id(p): change_items(p.patch) for _, p in kept}
    existing_items = [(e, change_items(pf)) for e, pf in existing]
    out: dict[int, list[str]] = {id(p): [] for _, p in kept}
    for _, big in kept:
        if big.cand.patchq is not None:
            continue                     # a patchq patch keeps its own annotation, byte for byte
        mine = items[id(big)]
        inner = [s for _, s in kept if s is not big and _contains(mine, items[id(s)])]
        direct = [s for s in inner if not any(o is not s and _contains(items[id(o)], items[id(s)]) for o in inner)]
        old = [e for e, its in existing_items if _contains(mine, its)]
        out[id(big)] = [s.entry.id for s in direct] + [e.id for e in old]
        for small in [s.entry for s in inner] + old:
            big.remarks.append(f"contains {small.id} (a cumulative snapshot)")
            if small.status == Status.PROMOTED and big.entry.status != Status.PROMOTED:
                state.warnings.append(f"{name}:{big.entry.id} is {big.entry.status.value} and contains the promoted "
                                      f"{small.id}: never apply it on top of {small.id} (it replaces it)")
    for _, small in kept:
        for entry, its in existing_items:
            if _contains(its, items[id(small)]):
                state.warnings.append(f"the existing {name}:{entry.id} already contains the imported "
                                      f"{small.entry.id} ({small.cand.source})")
    return out


def _final_entry(ws: Workspace, part: Part, contains: list[str], kept: list[tuple[Order, Part]],
                 all_kept: list[Part], number: int) -> PatchEntry:
    cand = part.cand
    entry = part.entry
    assert entry is not None
    file = f"{number:04d}-{entry.id}.patch"
    if cand.patchq is not None:
        data = cand.raw
        imported = entry_from_patch(cand.patchq, upstream=part.upstream, file=file, source=cand.source)
        if imported.status != entry.status:
            data = _set_trailer(data, "Patchq-Status", entry.status.value)
            part.remarks.append(f"Patchq-Status trailer rewritten to {entry.status.value}")
        if imported.id != entry.id:
            data = _set_trailer(data, "Patchq-Id", entry.id)
            part.remarks.append(f"Patchq-Id trailer rewritten to {entry.id}")
        part.data = data
        return entry_from_patch(read_patch_file(data, source=cand.source), upstream=part.upstream, file=file,
                                source=cand.source)
    date = entry.date
    footer = [f"Imported from {cand.source}."]
    if part.duplicates:
        footer.append(f"The same change was also in: {', '.join(part.duplicates)}.")
    notes: list[str] = []
    if cand.note is not None:
        if not cand.note.dest:
            cand.note.dest = _unique_file({}, f"queues/{part.upstream}/notes/{entry.id}.md", ws.root)
        notes.append(cand.note.dest)
        cand.note.linked.append(f"{part.upstream}:{entry.id}")
    if part.split:
        others = [f"{p.upstream}:{p.entry.id}" for p in all_kept if p.cand is cand and p is not part and p.entry]
        footer.append(f"Split from {cand.source} (one part per upstream); the other part: {', '.join(others)}.")
        notes.extend(others)
    supersedes = [p.entry.id for _, p in kept if p.entry is not None and p.entry.id in contains
                  and p.entry.status == entry.status and _iso(p.entry.date) and _iso(date) > _iso(p.entry.date)]
    why = "\n\n".join(p for p in (cand.description, " ".join(footer)) if p)
    flags = _flags_of(part.patch, part.remarks)
    entry = replace(entry, file=file, why=safe_description(why), flags=flags, date=date, notes=tuple(notes),
                    contains=tuple(contains), supersedes=tuple(supersedes), author=cand.head.author)
    data = render_patch_file(entry, part.diff)
    reread = read_patch_file(data, source=file)
    check = entry_from_patch(reread, upstream=part.upstream, file=file, source=file)
    if check.id != entry.id or check.status != entry.status:
        raise BadInput(f"import would write a patch file that does not read back ({cand.source})", path=file)
    part.data = data
    return entry


def _date_of(cand: Candidate) -> tuple[str, str]:
    """(date, rule): a patchq trailer, an mbox message's Date: header (verbatim), else a date in the file name."""
    if cand.patchq is not None:
        value = cand.patchq.trailer("Patchq-Date") or ""
        return value, "trailer: Patchq-Date" if value else ""
    date = date_from_name(cand.stem)
    if cand.head.date and (cand.message is not None or not date):
        return cand.head.date, "Date: header"
    return date, f"name: {cand.stem!r}" if date else ""


def _plan_notes(ws: Workspace, notes: list[NoteFile], plan: Plan, state: _State) -> None:
    """Linked notes are copied beside their patch's queue; the others are kept as notes-only files."""
    for note in notes:
        if note.linked:
            plan.files[note.dest] = note.data
            state.add(note.order, ImportItem(note.item.source, ImportAction.NOTE, file=note.dest,
                                             reason=f"linked to {', '.join(note.linked)}"))
            continue
        text = note.data.decode("utf-8", "replace")
        guess = status_from_name(note.stem) or status_from_text(text)
        dest = _unique_file(plan.files, f"notes/{slug_of(note.stem)}.md", ws.root)
        plan.files[dest] = note.data
        remarks = []
        if re.search(r"(?m)^(diff --git |@@ -\d)", _strip_fences(text)):
            remarks.append("holds diff text outside code fences; a note is never imported as a patch "
                           "(rename it .patch to import it)")
        reason = "prose and code fences: kept as a note, never a patch"
        if note.wanted_by:
            reason = f"its patch {note.wanted_by[0]} was not imported (see its line): kept as a note"
        state.add(note.order, ImportItem(note.item.source, ImportAction.NOTES_ONLY, file=dest,
                                         status=guess[0].value if guess else "", status_rule=guess[1] if guess else "",
                                         date=date_from_name(note.stem), reason=reason, remarks=tuple(remarks)))


def _iso(date: str) -> str:
    if re.fullmatch(r"\d{4}-\d\d-\d\d", date or ""):
        return date
    try:
        return email.utils.parsedate_to_datetime(date).date().isoformat()
    except (TypeError, ValueError):
        return ""


def _set_trailer(data: bytes, name: str, value: str) -> bytes:
    """Replace one trailer line in a patch file's header, leaving every other byte alone."""
    pattern = re.compile(rb"^" + re.escape(name.encode()) + rb": .*$", re.MULTILINE)
    head_end = data.find(b"\n---\n")
    head, rest = (data[:head_end], data[head_end:]) if head_end >= 0 else (data, b"")
    return pattern.sub(f"{name}: {value}".encode(), head, count=1) + rest


# ---- staging and writing -----------------------------------------------------------------------------------------

def _stage_and_write(ws: Workspace, plan: Plan, *, dry_run: bool) -> None:
    """Stage the result beside the workspace's own files, load it back as a workspace, then move it in.

    New files never replace existing ones; series.yaml files are replaced last. If anything fails while moving,
    the files already moved are removed and the old series files restored, so the workspace is as it was.
    """
    series_data = {name: series_bytes(ws, name, entries) for name, entries in plan.series.items()}
    for rel in plan.files:
        if (ws.root / rel).exists():
            raise BadInput(f"{rel} already exists; import never overwrites a file", path=rel)
    parent = None if dry_run else ws.root / STATE_DIR
    if parent is not None:
        parent.mkdir(exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix="patchq-import-", dir=parent))
    try:
        _link_or_copy(ws.root / LOCK_NAME, stage / LOCK_NAME)
        for name in ws.upstreams:
            folder = ws.queue_dir(name)
            if folder.is_dir():
                for child in folder.iterdir():
                    if child.is_file():
                        _link_or_copy(child, stage / "queues" / name / child.name)
        staged: dict[str, Path] = {}
        for rel, data in plan.files.items():
            target = stage / "new" / rel
            write_atomic(target, data)
            staged[rel] = target
            if rel.startswith("queues/") and rel.count("/") == 2:
                _link_or_copy(target, stage / rel)
        staged_series = {}
        for name, data in series_data.items():
            target = stage / "new-series" / name / SERIES_NAME
            write_atomic(target, data)
            staged_series[name] = target
            view = stage / "queues" / name / SERIES_NAME
            with contextlib.suppress(FileNotFoundError):
                view.unlink()
            _link_or_copy(target, view)
        try:
            load_workspace(stage)
        except BadInput as exc:
            raise BadInput(f"the imported queues would not load: {exc.message}",
                           path=_unstage(exc.path, stage), line=exc.line) from None
        if dry_run:
            return
        _move_in(ws, staged, staged_series)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _unstage(path: str | None, stage: Path) -> str | None:
    if path and path.startswith(str(stage)):
        return os.path.relpath(path, stage)
    return path


def _link_or_copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


IMPORT_JOURNAL = "import-journal.json"


def _move_in(ws: Workspace, staged: dict[str, Path], staged_series: dict[str, Path]) -> None:
    """Move the staged files in, under a journal that lets a later import undo a move a kill interrupted.

    The journal (in `.patchq/`) names every file about to be created, every folder about to be made and the old
    bytes of every series.yaml about to be replaced; it is removed once all moves are done. Until then the import
    is not committed: an error here undoes it at once, and `kill -9` leaves the journal for the next import.
    """
    made_dirs: list[str] = []
    for rel in staged:
        for parent in reversed(Path(rel).parents):
            if str(parent) not in (".", "") and not (ws.root / parent).exists() and str(parent) not in made_dirs:
                made_dirs.append(str(parent))
    old_series = {}
    for name in staged_series:
        target = ws.queue_dir(name) / SERIES_NAME
        old_series[str(target.relative_to(ws.root))] = (
            base64.b64encode(target.read_bytes()).decode() if target.exists() else None)
    journal = {"created": sorted(staged), "made_dirs": made_dirs, "old_series": old_series}
    journal_path = ws.root / STATE_DIR / IMPORT_JOURNAL
    write_atomic(journal_path, json.dumps(journal, indent=1, sort_keys=True).encode())
    try:
        for rel, source in staged.items():
            target = ws.root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                raise BadInput(f"{rel} appeared while importing; import never overwrites a file", path=rel)
            os.replace(source, target)
            file_operation()
        for name, source in staged_series.items():
            os.replace(source, ws.queue_dir(name) / SERIES_NAME)
            file_operation()
    except BaseException:
        _undo_import(ws.root, journal)
        raise
    journal_path.unlink()                      # the commit point: the import is complete


def _undo_import(root: Path, journal: dict) -> None:
    for rel, data in journal["old_series"].items():
        if data is None:
            with contextlib.suppress(FileNotFoundError):
                (root / rel).unlink()
        elif (root / rel).read_bytes() != base64.b64decode(data):
            write_atomic(root / rel, base64.b64decode(data))
    for rel in journal["created"]:
        with contextlib.suppress(FileNotFoundError):
            (root / rel).unlink()
    for rel in reversed(journal["made_dirs"]):
        with contextlib.suppress(OSError):
            (root / rel).rmdir()
    with contextlib.suppress(FileNotFoundError):
        (root / STATE_DIR / IMPORT_JOURNAL).unlink()


def recover_interrupted_import(root: Path) -> bool:
    """Undo an import that was killed while moving its files in: the workspace goes back to before it."""
    path = root / STATE_DIR / IMPORT_JOURNAL
    try:
        journal = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(journal, dict) or not {"created", "made_dirs", "old_series"} <= set(journal):
            raise ValueError("not an import journal")
    except FileNotFoundError:
        return False
    except (OSError, ValueError) as exc:
        raise BadInput(f"unreadable journal of an interrupted import ({exc}); inspect and remove it",
                       path=str(path)) from None
    _undo_import(root, journal)
    return True
