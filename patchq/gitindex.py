"""patchq's temporary git index files, read and written in Python: no git process runs here.

The queue engine judges patches in small throw-away indexes (`GIT_INDEX_FILE`); loading and reading their few
entries directly saves one git process per patch on the hot path. git itself reads these files through
`git.Repo` methods that take the `env` a `TempIndex` gives.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from .errors import EnvironmentFailure


def read_index_entries(index_file: str | Path) -> dict[str, tuple[str, str, int]]:
    """path -> (mode, blob id, stage) read straight from an index file (version 2 or 3).

    patchq's temporary indexes are written with GIT_INDEX_VERSION=2 (and the caller's GIT_INDEX_VERSION never
    reaches git, see git.py), so version 4's prefix compression never has to be read here.
    """
    data = Path(index_file).read_bytes()
    if data[:4] != b"DIRC":
        raise EnvironmentFailure(f"{index_file} is not a git index")
    version = int.from_bytes(data[4:8], "big")
    if version not in (2, 3):
        raise EnvironmentFailure(f"index version {version} is not readable here")
    count = int.from_bytes(data[8:12], "big")
    pos = 12
    out: dict[str, tuple[str, str, int]] = {}
    for _ in range(count):
        mode = int.from_bytes(data[pos + 24:pos + 28], "big")
        sha = data[pos + 40:pos + 60].hex()
        flags = int.from_bytes(data[pos + 60:pos + 62], "big")
        header = 62
        if version == 3 and flags & 0x4000:
            header += 2
        name_start = pos + header
        name_end = data.index(b"\0", name_start)
        name = data[name_start:name_end].decode("utf-8", "surrogateescape")
        stage = (flags >> 12) & 0x3
        entry_len = header + (name_end - name_start)
        pos += (entry_len + 8) & ~7
        key = name if stage == 0 else f"{name}\0{stage}"
        out[key] = (f"{mode:06o}", sha, stage)
    return out


def write_index_file(path: str | Path, entries: list[tuple[str, str, str]]) -> None:
    """Write a version-2 index of (mode, blob id, path) entries at stage 0, stat data zero.

    For patchq's temporary indexes only (`git apply --cached` reads modes and blob ids, never stat data): loading
    a few paths this way costs no git process, where `ls-tree` + `update-index` cost two.
    """
    body = bytearray(b"DIRC" + (2).to_bytes(4, "big") + len(entries).to_bytes(4, "big"))
    for mode, sha, name in sorted(entries, key=lambda e: e[2].encode("utf-8", "surrogateescape")):
        raw = name.encode("utf-8", "surrogateescape")
        entry = bytes(24) + int(mode, 8).to_bytes(4, "big") + bytes(12) + bytes.fromhex(sha) + \
            min(len(raw), 0xFFF).to_bytes(2, "big") + raw
        body += entry + bytes(((len(entry) + 8) & ~7) - len(entry))
    body += hashlib.sha1(body).digest()
    with open(path, "wb") as fh:
        fh.write(body)


class TempIndex:
    """An index file in its own temporary folder, with byte snapshots to undo a failed attempt.

    `env` is what git needs to use it. The queue pass (apply's TinyIndex) and audit's second copy share this."""

    def __init__(self, prefix: str = "patchq-index-", data: bytes | None = None) -> None:
        self.dir = tempfile.mkdtemp(prefix=prefix)
        self.file = os.path.join(self.dir, "index")
        self.env = {"GIT_INDEX_FILE": self.file, "GIT_INDEX_VERSION": "2"}
        if data is not None:
            self.restore(data)

    def snapshot(self) -> bytes:
        with open(self.file, "rb") as fh:
            return fh.read()

    def restore(self, data: bytes) -> None:
        with open(self.file, "wb") as fh:
            fh.write(data)

    def entries(self) -> dict[str, tuple[str, str, int]]:
        return read_index_entries(self.file)

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
