"""Tar members read straight from an archive's bytes in memory: the common subset, parsed the way `tarfile` does.

`tarfile` builds a TarInfo per member through a dozen small field parsers, and for the pax headers that
setuptools and `git archive` write, a regular-expression pass per record and a second header per member: for a
4,400-member sdist that was most of the 0.3-0.4 s a cold start spent reading the archive. This reader takes the
same fields from the same offsets with the same rules (ustar prefix, v7 directories, GNU long names and links, pax
`path`/`linkpath`/`size`, the checksum in both its signed and unsigned forms), and nothing else.

It only answers when it is sure. Anything outside that subset returns None and the caller reads the archive with
`tarfile`, which then also says what is wrong: sparse files, base-256 numbers, devices, fifos, unknown member
types, a pax `hdrcharset`, a global header that renames or resizes members, chained extension headers, a bad
checksum, a header or member cut short.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

BLOCK = 512
_REGULAR = (b"0", b"\0", b"7")
_KINDS = {b"1": "hardlink", b"2": "symlink", b"5": "dir"}
_PAX_RECORD = re.compile(rb"(\d+) ([^=]+)=")
_ENCODING = sys.getfilesystemencoding()     # tarfile's default encoding for header fields
_SHIFTING = {"path", "linkpath", "size", "hdrcharset"}   # global pax keys that would change every later member
# The numeric fields (mode, uid, gid, size, mtime, checksum at 100-156; the device numbers at 329-345) as tarfile,
# GNU tar and `git archive` write them: fixed-width octal closed by a NUL, devices octal or all NULs. A header of
# that shape is read with one match; any other shape goes through _number field by field, as before.
_CANONICAL = re.compile(rb"([0-7]{7})\0[0-7]{7}\0[0-7]{7}\0([0-7]{11})\0[0-7]{11}\0([0-7]{6})\0 ")
_CANONICAL_DEVICES = re.compile(rb"(?:[0-7]{7}\0|\0{8}){2}")
# A pax header holding one `mtime` record, as Python's tarfile writes for every member: read with one match.
_MTIME_ONLY = re.compile(rb"(\d+) mtime=([0-9.]*)\n")


@dataclass(frozen=True)
class Entry:
    """One member as tarfile reports it: its name and link as stored, its kind, mode and size, and a file's bytes."""

    name: str
    kind: str                 # "file" | "dir" | "symlink" | "hardlink"
    mode: int
    size: int
    linkname: str
    data: bytes | None        # files only


class _Unsure(Exception):
    """Outside the subset read here: tarfile decides."""


def scan(raw: bytes) -> list[Entry] | None:
    """Every member of an uncompressed tar held in `raw`, or None where `tarfile` has to read it."""
    try:
        return list(_entries(raw))
    except _Unsure:
        return None


def _text(field: bytes) -> str:
    end = field.find(b"\0")
    return (field if end < 0 else field[:end]).decode(_ENCODING, "surrogateescape")


def _number(field: bytes) -> int:
    if field[:1] in (b"\x80", b"\xff"):
        raise _Unsure("base-256 number")
    end = field.find(b"\0")
    try:
        text = (field if end < 0 else field[:end]).decode("ascii")
        value = int(text.strip() or "0", 8)
    except ValueError:
        raise _Unsure("not an octal number") from None
    if value < 0:          # int() reads "-600"; a negative size would walk the reader backwards
        raise _Unsure("a negative number")
    return value


def _checksum_ok(header: bytes, stored: int) -> bool:
    unsigned = 256 + sum(header) - sum(header[148:156])
    if stored == unsigned:
        return True
    signed = unsigned - 256 * sum(1 for byte in (*header[:148], *header[156:]) if byte > 127)
    return stored == signed


def _numbers(header: bytes) -> tuple[int, int, int]:
    """Mode, size and stored checksum; every numeric field read, as tarfile refuses a member whose numbers do not."""
    plain = _CANONICAL.match(header, 100, 156)
    if plain is not None and _CANONICAL_DEVICES.match(header, 329, 345) is not None:
        return int(plain.group(1), 8), int(plain.group(2), 8), int(plain.group(3), 8)
    for start, end in ((108, 116), (116, 124), (136, 148), (329, 337), (337, 345)):
        _number(header[start:end])
    return _number(header[100:108]), _number(header[124:136]), _number(header[148:156])


def _pax(data: bytes) -> dict[str, str]:
    """The records of a pax header (`<length> <key>=<value>` and a newline each, up to the block's padding), read
    as tarfile reads them: UTF-8, undecodable bytes kept as surrogates. A record that is not exactly that shape is
    left to tarfile (whose own reading of it has changed between Python releases)."""
    records: dict[str, str] = {}
    pos = 0
    end = len(data.rstrip(b"\0"))
    only_mtime = _MTIME_ONLY.fullmatch(data, 0, end)
    if only_mtime is not None and int(only_mtime.group(1)) == end:
        return {"mtime": only_mtime.group(2).decode("ascii")}
    while pos < end:
        match = _PAX_RECORD.match(data, pos)
        if match is None:
            raise _Unsure("not a pax record")
        length = int(match.group(1))
        stop = pos + length
        if length == 0 or stop > len(data) or data[stop - 1:stop] != b"\n" or stop <= match.end():
            raise _Unsure("not a pax record")
        key = match.group(2).decode("utf-8", "surrogateescape")
        records[key] = data[match.end():stop - 1].decode("utf-8", "surrogateescape")
        pos = stop
    if "hdrcharset" in records or any(key.startswith("GNU.sparse") for key in records):
        raise _Unsure("pax header tarfile reads specially")
    return records


def _entries(raw: bytes):  # type: ignore[no-untyped-def]     # a generator of Entry
    offset = 0
    long_name: str | None = None
    long_link: str | None = None
    pax: dict[str, str] | None = None
    while True:
        header = raw[offset:offset + BLOCK]
        if not header or header.count(0) == BLOCK:
            if long_name is not None or long_link is not None or pax is not None or offset == 0:
                raise _Unsure("an empty archive, or an extension header with no member after it")
            return
        if len(header) < BLOCK:
            raise _Unsure("short header")
        mode, size, stored = _numbers(header)
        if not _checksum_ok(header, stored):
            raise _Unsure("bad checksum")
        kind_byte = header[156:157]
        data_at = offset + BLOCK
        blocks = -(-size // BLOCK) * BLOCK
        if kind_byte in (b"x", b"g", b"L", b"K"):
            if data_at + blocks > len(raw):
                raise _Unsure("extension header cut short")
            data = raw[data_at:data_at + blocks]      # as tarfile reads it: with the block's padding
            offset = data_at + blocks
            if kind_byte == b"g":
                if _SHIFTING & set(_pax(data)) or pax is not None or long_name is not None or long_link is not None:
                    raise _Unsure("global header tarfile applies to later members")
            elif kind_byte == b"x":
                if pax is not None or long_name is not None or long_link is not None:
                    raise _Unsure("chained extension headers")
                pax = _pax(data)
            elif kind_byte == b"L":
                if long_name is not None or pax is not None:
                    raise _Unsure("chained extension headers")
                long_name = _text(data)
            else:
                if long_link is not None or pax is not None:
                    raise _Unsure("chained extension headers")
                long_link = _text(data)
            continue
        name = _text(header[0:100])
        linkname = _text(header[157:257])
        prefix = _text(header[345:500])
        if kind_byte == b"\0" and name.endswith("/"):
            kind_byte = b"5"                  # the old v7 way to write a folder
        if kind_byte in _REGULAR:
            kind = "file"
        elif kind_byte in _KINDS:
            kind = _KINDS[kind_byte]
        else:
            raise _Unsure("a member type read only by tarfile")
        if kind == "dir":
            name = name.rstrip("/")
        if prefix:
            name = prefix + "/" + name
        if kind == "dir":
            name = name.rstrip("/")
        if long_link is not None:
            linkname = long_link
        if long_name is not None:
            name = long_name.removesuffix("/") if kind == "dir" else long_name
        if pax is not None:
            if "path" in pax:
                name = pax["path"].rstrip("/")
            if "linkpath" in pax:
                linkname = pax["linkpath"]
            if "size" in pax:
                try:
                    size = int(pax["size"])
                except ValueError:
                    size = 0
                if size < 0:
                    raise _Unsure("a negative size")
                blocks = -(-size // BLOCK) * BLOCK
        content: bytes | None = None
        if kind == "file":
            if data_at + size > len(raw) or size < 0:
                raise _Unsure("member cut short")
            content = raw[data_at:data_at + size]
            offset = data_at + blocks
        else:
            offset = data_at
        long_name = long_link = None
        pax = None
        yield Entry(name, kind, mode, size, linkname, content)
