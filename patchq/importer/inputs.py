"""Inputs and decoding: walking folders and quilt series, decoding bundles, reading each text into candidates."""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BadInput
from ..patchfile import PatchFile, read_patch_file
from ..patchtext import parse_mail_head
from ..patchtext.lenient import Scanned, Unreadable, read_lenient
from ..patchtext.mail import MBOX_FROM
from .items import Refused
from .naming import NOTE_SUFFIXES, stem_of

QUILT_SERIES = "series"


@dataclass(frozen=True)
class InputFile:
    path: Path
    source: str                 # as shown in the report
    rel: str                    # relative to the folder given on the command line (what --map globs see)
    strip: int | None = None    # quilt -pN
    problem: str = ""           # a reason to skip it, known from the walk alone
    members: tuple[InputFile, ...] | None = None   # a quilt series file: its patches, in order
    problems: tuple[str, ...] = ()                    # a quilt series file: lines that name nothing usable


def walk(paths: Sequence[Path]) -> list[InputFile]:
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


def _read_quilt_series(series_file: Path, folder: Path, rel_of: Callable[[Path], str], source_of: Callable[[Path], str]
                       ) -> tuple[list[InputFile], list[str]]:
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


# ---- headers, titles, descriptions -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Head:
    author: str = ""
    date: str = ""          # as written in a Date: header (RFC 2822), or converted from `git log` output
    subject: str = ""
    body: str = ""


def parse_head(lines: Sequence[bytes]) -> Head:
    """Author, date, subject and description from the text before a diff: mail headers, `git log` or prose."""
    text = [ln.decode("utf-8", "replace") for ln in lines]
    start = 1 if text and MBOX_FROM.match(lines[0]) else 0
    if start < len(text) and re.match(r"^commit [0-9a-f]{7,40}\b", text[start]):
        return _parse_git_log(text[start + 1:])
    mail = parse_mail_head(text)
    if not mail.is_mail:
        return Head(body="\n".join(mail.body).strip("\n"))
    body = list(mail.body)
    if "---" in body:
        body = body[:body.index("---")]
    return Head(mail.author, mail.date, mail.subject, "\n".join(body).strip("\n"))


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
    note: NoteFile | None = None
    hint: str = ""                   # the upstream a patchq export manifest names
    salvaged: str = ""               # what was lost, when it was salvaged from a damaged bundle

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



def candidate(item: InputFile, source: str, message: int | None, data: bytes, remarks: list[str],
               bundle: bool) -> Candidate:
    try:
        scanned = read_lenient(data)
    except Unreadable as exc:
        raise Refused(exc.reason) from None
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
                     list(remarks) + list(scanned.remarks) + scanned.repairs, patchq=patchq,
                     raw=data if patchq is not None else b"", bundle=bundle)


