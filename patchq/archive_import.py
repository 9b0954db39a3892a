"""Release archives committed straight into a mirror: members streamed into `git fast-import`, nothing extracted.

Extracting an sdist to disk and running `git add` writes every file twice (the folder, then one loose object each)
and costs most of a cold start. Here each member is read from the archive in order and handed to `git fast-import`
(one run; for a big archive a few side by side and a last one for the commit), which writes packs. The commit is
made with fixed author, dates and message, so the same archive gives the same commit id, and the tree is the one
`git add -A` of the extracted folder would record.

Every member is judged before it is used, as extraction judged it: absolute paths, `..`, members below a symlink,
symlinks and hard links that leave the tree, devices, fifos and members over the size limit are refused with one line
naming the archive. Modes become git's: 100755 when the owner may execute, 120000 for symlinks, else 100644.
Members inside a `.git` folder are left out, as `git add` leaves them out.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import posixpath
import tarfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from . import tarscan
from .errors import BadInput, EnvironmentFailure
from .git import Repo
from .machine import usable_cores

MAX_MEMBER = 512 * 1024 * 1024
MAX_TOTAL = 2 * 1024 * 1024 * 1024    # held in memory while judged: a gzip bomb is refused, not swapped in
IN_MEMORY = 256 * 1024 * 1024         # a .tar.gz up to this size unpacked is gunzipped at once, not streamed
PART_BYTES = 8 * 1024 * 1024          # file content per side-by-side fast-import run (smaller: one run)
MAX_PARTS = 4
ARCHIVE_AUTHOR = "patchq archive <archive@patchq> 0 +0000"
TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar")
ZIP_SUFFIXES = (".zip", ".whl")


@dataclass(frozen=True)
class _Member:
    name: str                         # as written in the archive
    kind: str                         # "file" | "dir" | "symlink" | "hardlink"
    mode: int
    size: int
    link: str = ""


def commit_archive(repo: Repo, archive: Path, message: str, *, subdir: str | None = None, name: str = "",
                   ref: str = "refs/patchq/importing") -> str:
    """Commit the archive's files (below its single top folder, and below `subdir` when given) into `repo`; returns
    the commit id. `ref` is left pointing at it; the caller moves or deletes it. Nothing is written to the
    repository unless every member passed."""
    try:
        members = _read_all(archive)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError, NotImplementedError,
            OSError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise EnvironmentFailure(f"cannot read archive {archive}: {exc.strerror}") from None
        raise BadInput(f"corrupt or unreadable archive: {exc}".splitlines()[0], path=str(archive)) from None
    chosen = _choose([m for m, _ in members], archive, subdir, name)
    data = {m.name: d for m, d in members}
    return _fast_import(repo, {path: (m, data.get(m.name)) for path, m in chosen.items()}, message, ref)


def _fast_import(repo: Repo, tree: dict[str, tuple[_Member, bytes | None]], message: str, ref: str) -> str:
    """The archive's files as blobs, then one commit with fixed author and dates; returns its id.

    Up to PART_BYTES of content, one `git fast-import` run does both. Above it the blobs are split into parts of
    about equal size, imported side by side (one process and pack each: compressing is most of the work and a
    run uses one core), and a last small run writes the trees and the commit from the blob ids they report."""
    files: list[tuple[str, str, bytes]] = []
    for path in sorted(tree):
        member, content = tree[path]
        if member.kind == "symlink":
            files.append((path, "120000", member.link.encode("utf-8", "surrogateescape")))
        else:
            files.append((path, "100755" if member.mode & 0o100 else "100644", content or b""))
    total = sum(len(content) for _, _, content in files)
    parts = max(1, min(usable_cores(), MAX_PARTS, total // PART_BYTES))
    body = message.encode()
    commit = (f"commit {ref}\nmark :1\nauthor {ARCHIVE_AUTHOR}\ncommitter {ARCHIVE_AUTHOR}\n"
              f"data {len(body)}\n".encode() + body + b"\ndeleteall\n")
    if parts == 1:
        chunks = _blobs((mark, content) for mark, (_, _, content) in enumerate(files, 2))
        chunks.append(commit)
        chunks.extend(_entry(mode, f":{mark}", path) for mark, (path, mode, _) in enumerate(files, 2))
        chunks.append(b"\n")
        return repo.fast_import(b"".join(chunks), bulk=True)[1]
    shares: list[list[int]] = [[] for _ in range(parts)]
    loads = [0] * parts
    for number in sorted(range(len(files)), key=lambda n: -len(files[n][2])):    # biggest first, lightest part
        side = loads.index(min(loads))
        shares[side].append(number)
        loads[side] += len(files[number][2])
    streams = [b"".join(_blobs((number + 1, files[number][2]) for number in sorted(share))) for share in shares]
    ids: dict[int, str] = {}
    for marks in repo.fast_import_at_once(streams, bulk=True):
        ids.update(marks)
    chunks = [commit]
    chunks.extend(_entry(mode, ids[number + 1], path) for number, (path, mode, _) in enumerate(files))
    chunks.append(b"\n")
    return repo.fast_import(b"".join(chunks), bulk=True)[1]


def _blobs(numbered: Iterable[tuple[int, bytes]]) -> list[bytes]:
    """fast-import blob commands, the contents as pieces (joined once, not copied per file)."""
    chunks: list[bytes] = []
    for mark, content in numbered:
        chunks += (b"blob\nmark :%d\ndata %d\n" % (mark, len(content)), content, b"\n")
    return chunks


def _entry(mode: str, ref: str, path: str) -> bytes:
    return f"M {mode} {ref} {_quoted(path)}\n".encode("utf-8", "surrogateescape")


def _choose(members: list[_Member], archive: Path, subdir: str | None, upstream: str) -> dict[str, _Member]:
    """The members that become the tree, by their path in it; every member judged first."""
    by_name: dict[str, _Member] = {}
    for member in members:
        name = _checked_name(member.name, archive)
        if member.kind == "symlink":
            _check_inside(posixpath.join(posixpath.dirname(name), member.link), member.link, member.name, archive)
        elif member.kind == "hardlink":
            _checked_name(member.link, archive)
        if name:
            by_name[name] = member           # a later member of the same name replaces the earlier one
    links = {name for name, m in by_name.items() if m.kind == "symlink"}
    for name in by_name:
        parent = posixpath.dirname(name)
        while parent:
            if parent in links:
                raise BadInput(f"archive member {by_name[name].name!r} is below a symlink and would land outside "
                               "the extraction folder", path=str(archive))
            parent = posixpath.dirname(parent)
    tops = {name.split("/", 1)[0] for name in by_name}
    prefix = ""
    if len(tops) == 1:
        top = next(iter(tops))
        if by_name.get(top, _Member(top, "dir", 0, 0)).kind == "dir" and any("/" in n for n in by_name):
            prefix = top + "/"
    if subdir:
        clean = subdir.strip("/")
        for depth in range(1, clean.count("/") + 2):
            if prefix + "/".join(clean.split("/")[:depth]) in links:
                raise BadInput(f"archive subdir {subdir!r} leads out of the archive (through a symlink)",
                               path="pins.lock")
        prefix += clean + "/"
        if not any(n.startswith(prefix) for n in by_name):
            raise BadInput(f"archive of {upstream!r} has no folder {subdir!r}", path="pins.lock")
    chosen: dict[str, _Member] = {}
    for name, member in by_name.items():
        if not name.startswith(prefix) or member.kind == "dir":
            continue
        path = name[len(prefix):]
        if any(part.lower() == ".git" for part in path.split("/")):
            continue
        if member.kind == "symlink":
            _check_inside(posixpath.join(posixpath.dirname(path), member.link), member.link, member.name, archive)
        chosen[path] = member
    folders = {posixpath.dirname(p) for p in chosen}
    for folder in list(folders):
        while folder:
            if folder in chosen:
                raise BadInput(f"archive member {chosen[folder].name!r} is both a file and a folder",
                               path=str(archive))
            folder = posixpath.dirname(folder)
    return chosen


def _checked_name(name: str, archive: Path) -> str:
    """The member's path inside the archive, normalised; refused when it would leave the extraction folder."""
    norm = posixpath.normpath(name) if name not in ("", ".") else "."
    if name.startswith("/") or norm.startswith("../") or norm == ".." or "\0" in name:
        raise BadInput(f"archive member {name!r} would land outside the extraction folder", path=str(archive))
    return "" if norm == "." else norm


def _check_inside(target: str, link: str, name: str, archive: Path) -> None:
    norm = posixpath.normpath(target)
    if link.startswith("/") or norm == ".." or norm.startswith("../"):
        raise BadInput(f"archive member {name!r} links to {link!r}, outside the extraction folder", path=str(archive))


def _quoted(path: str) -> str:
    if path.startswith('"') or "\n" in path or "\\" in path:
        return '"' + path.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return path


# ---- readers ----------------------------------------------------------------------------------------------------

def _read_all(path: Path) -> list[tuple[_Member, bytes | None]]:
    """Every member of the archive with the content of files and hard links, in one pass over the archive."""
    if path.name.endswith(TAR_SUFFIXES):
        return _read_tar(path)
    if path.name.endswith(ZIP_SUFFIXES):
        return _read_zip(path)
    raise BadInput("unknown archive type (expected .tar.gz, .tgz, .tar.bz2, .tar.xz or .zip)", path=str(path))


class _Inode:
    """A file as extraction leaves it on disk: hard links share one, and a later member of the same name writes
    through it (content and mode), so the tree matches what `git add` of the extracted folder records."""

    def __init__(self, data: bytes, mode: int) -> None:
        self.data, self.mode = data, mode


def _uncompressed(path: Path) -> bytes | None:
    """The whole tar, decompressed in one call, when it unpacks to at most IN_MEMORY (else None: it is streamed).
    tarfile's own decompressing stream reads in small pieces; the whole read took twice as long that way."""
    if path.name.endswith((".tar.gz", ".tgz")):
        return _read_limited(gzip.GzipFile(path, "rb"))
    if path.name.endswith(".tar.bz2"):
        return _read_limited(bz2.BZ2File(path, "rb"))
    if path.name.endswith(".tar.xz"):
        return _read_limited(lzma.LZMAFile(path, "rb"))
    if path.stat().st_size <= IN_MEMORY:
        return path.read_bytes()
    return None


def _read_limited(packed: gzip.GzipFile | bz2.BZ2File | lzma.LZMAFile) -> bytes | None:
    with packed:
        raw = packed.read(IN_MEMORY + 1)
    return raw if len(raw) <= IN_MEMORY else None


def _read_tar(path: Path) -> list[tuple[_Member, bytes | None]]:
    """Every member: read by `tarscan` from the bytes in memory where it can, by tarfile otherwise (a stream:
    the archive is decompressed once either way)."""
    raw = _uncompressed(path)
    entries = tarscan.scan(raw) if raw is not None else None
    return _as_members(entries if entries is not None else _tarfile_entries(path, raw), path)


def _tarfile_entries(path: Path, raw: bytes | None) -> Iterator[tarscan.Entry]:
    """The members as tarfile reads them; devices, fifos and oversized members are refused before any is read."""
    source = tarfile.open(fileobj=io.BytesIO(raw), mode="r|") if raw is not None else tarfile.open(path, "r|*")
    with source as tar:
        for info in tar:
            if info.isdev() or info.isfifo() or info.size > MAX_MEMBER:
                _checked_name(info.name, path)
                raise BadInput(f"archive member {info.name!r} is a device or too large", path=str(path))
            if info.isdir():
                kind = "dir"
            elif info.issym():
                kind = "symlink"
            elif info.islnk():
                kind = "hardlink"
            elif info.isreg():
                kind = "file"
            else:
                raise BadInput(f"archive member {info.name!r} is a device or too large", path=str(path))
            data: bytes | None = None
            if kind == "file":
                handle = tar.extractfile(info)
                data = handle.read() if handle is not None else b""
                if len(data) != info.size:
                    raise BadInput(f"corrupt or unreadable archive: member {info.name!r} is truncated",
                                   path=str(path))
            yield tarscan.Entry(info.name, kind, info.mode, info.size, info.linkname, data)


def _as_members(entries: Iterable[tarscan.Entry], path: Path) -> list[tuple[_Member, bytes | None]]:
    """Members as extraction leaves them: hard links share a file, a later member of a name writes through it."""
    kept: list[tuple[tarscan.Entry, _Inode | None]] = []
    inodes: dict[str, _Inode] = {}
    total = 0
    for entry in entries:
        if entry.size > MAX_MEMBER:
            _checked_name(entry.name, path)
            raise BadInput(f"archive member {entry.name!r} is a device or too large", path=str(path))
        name = posixpath.normpath(entry.name)
        inode: _Inode | None = None
        if entry.kind == "symlink":
            inodes.pop(name, None)
        elif entry.kind == "hardlink":
            _checked_name(entry.linkname, path)
            inode = inodes.get(posixpath.normpath(entry.linkname))
            if inode is None:
                raise BadInput(f"archive member {entry.name!r} links to {entry.linkname!r}, which is not a file "
                               "earlier in the archive (outside the extraction folder)", path=str(path))
            inode.mode = entry.mode
            inodes[name] = inode
        elif entry.kind == "file":
            data = entry.data or b""
            total += len(data)
            if total > MAX_TOTAL:
                raise BadInput(f"archive is over {MAX_TOTAL >> 30} GiB unpacked: too large to import", path=str(path))
            inode = inodes.get(name)
            if inode is None:
                inode = inodes[name] = _Inode(data, entry.mode)
            else:
                inode.data, inode.mode = data, entry.mode
        kept.append((entry, inode))
    return [(_Member(entry.name, entry.kind, inode.mode if inode else entry.mode, entry.size, entry.linkname),
             inode.data if inode else None) for entry, inode in kept]


def _read_zip(path: Path) -> list[tuple[_Member, bytes | None]]:
    """Zip members are files or folders (extraction never made symlinks of them, nor kept their modes)."""
    out: list[tuple[_Member, bytes | None]] = []
    total = 0
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            _checked_name(info.filename, path)
            if info.file_size > MAX_MEMBER:
                raise BadInput(f"archive member {info.filename!r} is too large", path=str(path))
            total += info.file_size
            if total > MAX_TOTAL:
                raise BadInput(f"archive is over {MAX_TOTAL >> 30} GiB unpacked: too large to import", path=str(path))
        for info in zf.infolist():
            if info.is_dir():
                out.append((_Member(info.filename, "dir", 0o755, 0), None))
            else:
                out.append((_Member(info.filename, "file", 0o644, info.file_size), zf.read(info)))
    return out
