"""Python-only stacks without a compiler: a repacked upstream wheel, or an overlay onto an installed package.

`repack_wheel` swaps files inside the upstream's binary wheel and rewrites RECORD; unchanged entries are copied as
their compressed bytes, so a wheel with a gigabyte of CUDA kernels repacks at disk speed. `overlay_apply` does what
the lab did by hand to `site-packages/vllm`, with the checks a hand edit lacks: the installed version must be the
pinned one, only Python files may change, a journal and a backup are written before any file is touched, and every
touched file must compile. `overlay_revert` restores the files byte for byte (with their modes, mtimes and the
`__pycache__` entries next to them) and proves it by hash, also after an overlay that was interrupted.

Backup layout under `backup_root`: `journal.json` (state applying | applied | reverted, one entry per touched file
with its sha256, mode and mtime), `files/<path>` (original bytes), `pycache/<path>` (original .pyc files).
"""

from __future__ import annotations

import base64
import contextlib
import csv
import datetime
import email.parser
import glob
import hashlib
import io
import json
import os
import py_compile
import re
import shutil
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .crashtest import file_operation
from .digest import sha256_file
from .errors import BadInput, EnvironmentFailure, NeedsYou
from .git import GitError, Repo, apply_outside_repo
from .txn import atomic_write, publish

PYTHON_SUFFIXES = (".py", ".pyi")
JOURNAL_FORMAT = 1


# ---- a deterministic zip writer --------------------------------------------------------------------------------

_DOS_TIME, _DOS_DATE = 0, (1 << 5) | 1          # 1980-01-01 00:00:00, the zip format's epoch
_MADE_BY_UNIX = (3 << 8) | 20                    # so unzip and pip honour the permission bits
_REGULAR_FILE = 0o100644 << 16
_ZIP32_LIMIT = 0xFFFFFFFF


class _ZipWriter:
    """Writes entries in the order given, all stamped 1980-01-01, so equal inputs give byte-equal wheels."""

    def __init__(self, out: io.BufferedWriter) -> None:
        self.out = out
        self.central: list[bytes] = []

    def add_bytes(self, name: str, data: bytes, external_attr: int) -> None:
        packer = zlib.compressobj(6, zlib.DEFLATED, -15)
        compressed = packer.compress(data) + packer.flush()
        self.add_raw(name, zipfile.ZIP_DEFLATED, zlib.crc32(data), compressed, len(data), external_attr)

    def add_raw(self, name: str, method: int, crc: int, compressed: bytes, size: int, external_attr: int) -> None:
        offset = self.out.tell()
        if max(offset, len(compressed), size) >= _ZIP32_LIMIT:
            raise BadInput("the wheel is over 4 GiB; patchq's repack does not write zip64 archives")
        encoded = name.encode("utf-8")
        flags = 0 if name.isascii() else 0x800
        fields = (20, flags, method, _DOS_TIME, _DOS_DATE, crc, len(compressed), size, len(encoded))
        self.out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, *fields, 0) + encoded)
        self.out.write(compressed)
        self.central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, _MADE_BY_UNIX, *fields, 0, 0, 0, 0,
                                        external_attr, offset) + encoded)

    def finish(self) -> None:
        if len(self.central) >= 0xFFFF:
            raise BadInput("the wheel has over 65535 entries; patchq's repack does not write zip64 archives")
        start = self.out.tell()
        for entry in self.central:
            self.out.write(entry)
        size = self.out.tell() - start
        count = len(self.central)
        self.out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, size, start, 0))


def _raw_entry(handle: io.BufferedReader, info: zipfile.ZipInfo) -> bytes:
    """The compressed bytes of one entry exactly as stored, read past its local header."""
    handle.seek(info.header_offset)
    header = handle.read(30)
    if header[:4] != b"PK\x03\x04":
        raise BadInput(f"corrupt wheel: no local header for {info.filename}")
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    handle.seek(info.header_offset + 30 + name_len + extra_len)
    return handle.read(info.compress_size)


# ---- wheel repack ----------------------------------------------------------------------------------------------

def local_version(version: str, label: str) -> str:
    """`0.20.1` + `pq.abc` -> `0.20.1+pq.abc`; a version that has a local part gets the label appended to it."""
    return f"{version}.{label}" if "+" in version else f"{version}+{label}"


def repack_wheel(wheel_path: str | Path, replacements: Mapping[str, bytes], out_dir: str | Path, *,
                 deletions: Iterable[str] = (), local_label: str | None = None) -> Path:
    """A copy of the wheel with files replaced, added or deleted and RECORD rewritten, in out_dir.

    Paths are archive paths (`vllm/model_executor/x.py`). Signatures (RECORD.jws/.p7s) are dropped: they would
    no longer match. With `local_label` (e.g. `pq.<tree12>`) the wheel gets a PEP 440 local version
    (`0.20.1+pq.<tree12>`) in its file name, dist-info folder and METADATA, so that pip sees it as a different
    build of the same release and installing it over the upstream wheel is not a silent no-op.
    """
    source = Path(wheel_path)
    removed = set(deletions)
    _check_archive_paths([*replacements, *removed])
    try:
        archive = zipfile.ZipFile(source)
    except (OSError, zipfile.BadZipFile) as exc:
        raise BadInput(f"not a readable wheel: {exc}", path=str(source)) from None
    with archive, source.open("rb") as raw:
        infos = archive.infolist()
        dist_info = _dist_info_dir(infos, source)
        record = f"{dist_info}/RECORD"
        _check_edits(infos, replacements, removed, record, source)
        known = _record_digests(archive.read(record)) if record in archive.NameToInfo else {}
        name = source.name
        renamed: dict[str, str] = {}
        if local_label:
            replacements, renamed, name, dist_info = _relabel(archive, infos, dict(replacements), dist_info,
                                                              source, local_label)
            known = {renamed.get(k, k): v for k, v in known.items()}
        dest = Path(out_dir) / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        try:
            with staging.open("wb") as out:
                _write_wheel(out, archive, raw, infos, replacements, removed, dist_info, known, renamed)
            publish(staging, dest)
        finally:
            staging.unlink(missing_ok=True)
    return dest


def _relabel(archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo], replacements: dict[str, bytes],
             dist_info: str, source: Path, label: str) -> tuple[dict[str, bytes], dict[str, str], str, str]:
    """New names for a local version: the dist-info folder, METADATA's Version, the wheel's file name."""
    if not re.fullmatch(r"[a-z0-9]+(\.[a-z0-9]+)*", label):
        raise BadInput(f"{label!r} is not a PEP 440 local version label")
    stem = dist_info[: -len(".dist-info")]
    dist, _, version = stem.rpartition("-")
    new_version = local_version(version, label)
    new_dist_info = f"{dist}-{new_version}.dist-info"
    renamed = {i.filename: new_dist_info + i.filename[len(dist_info):] for i in infos
               if i.filename.startswith(dist_info + "/")}
    metadata = f"{dist_info}/METADATA"
    text = replacements.pop(metadata, None) or archive.read(metadata)
    lines = text.decode("utf-8").split("\n")
    lines = [f"Version: {new_version}" if ln.startswith("Version:") else ln for ln in lines]
    out = {renamed.get(k, k): v for k, v in replacements.items()}
    out[f"{new_dist_info}/METADATA"] = "\n".join(lines).encode("utf-8")
    parts = source.name[: -len(".whl")].split("-")
    if len(parts) < 5 or parts[1] != version:
        raise BadInput(f"wheel file name does not carry version {version}", path=str(source))
    parts[1] = new_version
    return out, renamed, "-".join(parts) + ".whl", new_dist_info


def _write_wheel(out: io.BufferedWriter, archive: zipfile.ZipFile, raw: io.BufferedReader,
                 infos: list[zipfile.ZipInfo], replacements: Mapping[str, bytes], removed: set[str],
                 dist_info: str, known: dict[str, tuple[str, int]], renamed: Mapping[str, str]) -> None:
    writer = _ZipWriter(out)
    rows: list[tuple[str, str, str]] = []
    by_name = {renamed.get(i.filename, i.filename): i for i in infos}
    for name in _entry_order(infos, replacements, removed, dist_info, renamed):
        info = by_name.get(name)
        if name in replacements:
            data = replacements[name]
            writer.add_bytes(name, data, info.external_attr if info and info.external_attr else _REGULAR_FILE)
            rows.append((name, _record_hash(data), str(len(data))))
            continue
        assert info is not None
        if info.flag_bits & 0x1:
            raise BadInput(f"encrypted entry {name} in the wheel")
        writer.add_raw(name, info.compress_type, info.CRC, _raw_entry(raw, info), info.file_size,
                       info.external_attr)
        if not name.endswith("/"):
            digest, size = known.get(name) or (_record_hash(archive.read(info)), info.file_size)
            rows.append((name, digest, str(size)))
    record_name = f"{dist_info}/RECORD"
    rows.append((record_name, "", ""))
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    writer.add_bytes(record_name, text.getvalue().encode("utf-8"), _REGULAR_FILE)
    writer.finish()


def _entry_order(infos: list[zipfile.ZipInfo], replacements: Mapping[str, bytes], removed: set[str],
                 dist_info: str, renamed: Mapping[str, str]) -> list[str]:
    """The wheel's own order, new files sorted after it, dist-info last (the wheel spec's advice), RECORD apart."""
    skip = removed | {f"{dist_info}/{n}" for n in ("RECORD", "RECORD.jws", "RECORD.p7s")}
    names = [renamed.get(i.filename, i.filename) for i in infos]
    existing = [n for n in names if n not in skip]
    added = sorted(set(replacements) - set(names))
    ordered = existing + added
    in_dist_info = [n for n in ordered if n.startswith(dist_info + "/")]
    return [n for n in ordered if not n.startswith(dist_info + "/")] + in_dist_info


def _dist_info_dir(infos: list[zipfile.ZipInfo], source: Path) -> str:
    roots = sorted({i.filename.split("/")[0] for i in infos if i.filename.split("/")[0].endswith(".dist-info")})
    if len(roots) != 1:
        raise BadInput(f"a wheel has exactly one .dist-info folder; found {len(roots) or 'none'}", path=str(source))
    return roots[0]


def _check_archive_paths(paths: Iterable[str]) -> None:
    for path in paths:
        parts = path.split("/")
        if not path or path.startswith("/") or "\\" in path or ".." in parts or "" in parts:
            raise BadInput(f"{path!r} is not a relative archive path")


def _check_edits(infos: list[zipfile.ZipInfo], replacements: Mapping[str, bytes], removed: set[str],
                 record: str, source: Path) -> None:
    names = {i.filename for i in infos}
    if record in replacements or record in removed:
        raise BadInput(f"{record} is written by patchq, not replaced", path=str(source))
    absent = sorted(removed - names)
    if absent:
        raise BadInput(f"cannot delete {absent[0]}: the wheel has no such file", path=str(source))
    clash = sorted(removed & set(replacements))
    if clash:
        raise BadInput(f"{clash[0]} is both replaced and deleted", path=str(source))


def _record_digests(record: bytes) -> dict[str, tuple[str, int]]:
    """sha256 digests the wheel already records, so unchanged entries need not be decompressed."""
    digests = {}
    for row in csv.reader(io.StringIO(record.decode("utf-8", "replace"))):
        if len(row) >= 3 and row[1].startswith("sha256=") and row[2].isdigit():
            digests[row[0]] = (row[1], int(row[2]))
    return digests


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


# ---- a stack's Python changes ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class PythonChanges:
    """What a patched tree changes in Python files, in the two forms overlay and repack need."""

    diff: bytes                                   # git diff of the Python files only, for overlay_apply
    replacements: dict[str, bytes] = field(default_factory=dict)   # new bytes of changed or added files
    deletions: tuple[str, ...] = ()
    other_paths: tuple[str, ...] = ()             # changed files that are not Python: they need a build


def is_python_path(path: str) -> bool:
    return path.endswith(PYTHON_SUFFIXES)


def python_changes_between(repo: Repo, old: str, new: str) -> PythonChanges:
    """The Python part of old..new (the pin and the patched head), and the paths left out because they are not."""
    changed = repo.changed_paths(old, new)
    python = [p for p in changed if is_python_path(p)]
    replacements, deletions = {}, []
    for path in python:
        blob = repo.read_blob(new, path)
        if blob is None:
            deletions.append(path)
        else:
            replacements[path] = blob
    diff = b""
    if python:
        diff = repo.diff_paths(old, new, python)
    return PythonChanges(diff, replacements, tuple(deletions),
                         tuple(p for p in changed if not is_python_path(p)))


# ---- the installed package -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class InstalledDistribution:
    name: str
    version: str
    dist_info: Path
    roots: tuple[str, ...]          # top-level folders and modules it installed Python files into


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def find_installed(site_packages: Path, package: str) -> InstalledDistribution:
    """The distribution named `package` in this folder, from its METADATA and RECORD."""
    found = []
    for dist_info in sorted(site_packages.glob("*.dist-info")):
        try:
            headers = email.parser.HeaderParser().parsestr(
                (dist_info / "METADATA").read_text(encoding="utf-8", errors="replace"))
        except OSError:
            continue
        if _normalize(headers.get("Name", "")) == _normalize(package):
            found.append(InstalledDistribution(headers["Name"], headers.get("Version", "").strip(), dist_info,
                                               _python_roots(dist_info)))
    if not found:
        raise BadInput(f"{package} is not installed in {site_packages} (no {package}-*.dist-info with its METADATA)")
    if len(found) > 1:
        listed = ", ".join(d.dist_info.name for d in found)
        raise BadInput(f"{package} is installed more than once in {site_packages}: {listed}")
    return found[0]


def _python_roots(dist_info: Path) -> tuple[str, ...]:
    roots = set()
    with contextlib.suppress(OSError):
        for row in csv.reader(io.StringIO((dist_info / "RECORD").read_text(encoding="utf-8", errors="replace"))):
            if row and is_python_path(row[0]) and not row[0].startswith(".."):
                roots.add(row[0].split("/")[0])
    return tuple(sorted(roots))


def version_matches(installed: str, pinned: str) -> bool:
    """PEP 440 `==` through `packaging`: 0.20 is 0.20.0, and a pin without a local label accepts any
    (0.11.0 ~ 0.11.0+xpu, 0.20.1 ~ 0.20.1+pq.<tree>). Versions PEP 440 cannot read compare as text."""
    from packaging.version import InvalidVersion, Version
    try:
        have, want = Version(installed.strip()), Version(pinned.strip())
    except InvalidVersion:
        have_t, want_t = installed.strip().lower(), pinned.strip().lower()
        return have_t == want_t or ("+" not in want_t and have_t.split("+")[0] == want_t)
    return have == want or (want.local is None and Version(have.public) == want)


# ---- overlay ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class OverlayResult:
    action: str                       # "applied" | "reverted"
    site_packages: str
    package: str
    version: str
    backup: str
    modified: tuple[str, ...] = ()
    created: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    compiled: tuple[str, ...] = ()    # files that passed the py_compile check
    verified: bool = False            # revert: every file's hash equals the one recorded before the overlay


def overlay_apply(site_packages: str | Path, diff: bytes, *, package: str, expected_version: str,
                  strip: int = 1, backup_root: str | Path, marker: Mapping[str, Any] | None = None) -> OverlayResult:
    """Apply a Python-only diff onto an installed package, after a journal and backup that make it undoable.

    The dist-info is kept true: RECORD gets the new hashes and sizes of the files the overlay changed (so `pip`
    and RECORD checkers see the installed bytes), and `patchq.json` in it says what was overlaid (`marker`, plus
    the files and the backup). Both are in the journal, so a revert restores RECORD and removes the mark.
    """
    site, backup = Path(site_packages).resolve(), Path(backup_root).resolve()
    if not site.is_dir():
        raise BadInput(f"{site} is not a folder")
    if backup == site or site in backup.parents:
        raise BadInput(f"the backup folder {backup} must not be inside {site}")
    dist = find_installed(site, package)
    if not version_matches(dist.version, expected_version):
        raise BadInput(f"installed {dist.name} is {dist.version} but the stack is pinned to {expected_version}; "
                       f"refusing to overlay another version", path=str(dist.dist_info))
    _refuse_pending_overlay(backup)
    touched = _touched_paths(site, diff, strip)
    _refuse_unfit_paths(touched, dist)
    check = apply_outside_repo(site, diff, strip=strip, check_only=True)
    if not check.ok:
        first = next((ln for ln in check.stderr.splitlines() if ln.strip()), "git apply refused it")
        raise NeedsYou(f"the diff does not apply to the installed {dist.name} {dist.version}: {first}",
                       path=str(site))
    record_rel = (dist.dist_info / "RECORD").relative_to(site).as_posix()
    marker_rel = (dist.dist_info / MARKER_NAME).relative_to(site).as_posix()
    journal = _start_journal(site, backup, dist, touched, extra=(record_rel, marker_rel))
    try:
        _drop_pycache(site, touched)
        _apply_diff(site, diff, strip)
        compiled = _compile_check(site, touched)
        existed = {e["path"] for e in journal["files"] if e["existed"]} & set(touched)
        present = {p for p in touched if (site / p).is_file()}
        files = {"modified": sorted(existed & present), "created": sorted(present - existed),
                 "deleted": sorted(existed - present)}
        # the mark holds no time and no path: the same stack overlaid twice gives the same bytes (the journal
        # holds when and where the backup is)
        _mark_dist_info(site, dist, touched, {**(marker or {}), "package": dist.name, "version": dist.version,
                                              "files": files})
    except BaseException:
        with contextlib.suppress(Exception):
            _restore(site, backup, journal)
            _write_journal(backup, {**journal, "state": "reverted"})
        raise
    _write_journal(backup, {**journal, "state": "applied", "applied_at": _utc_now()})
    existed = {e["path"] for e in journal["files"] if e["existed"]} & set(touched)
    present = {p for p in touched if (site / p).is_file()}
    return OverlayResult("applied", str(site), dist.name, dist.version, str(backup),
                         modified=tuple(sorted(existed & present)), created=tuple(sorted(present - existed)),
                         deleted=tuple(sorted(existed - present)), compiled=compiled)


def overlay_revert(site_packages: str | Path, backup_root: str | Path) -> OverlayResult:
    """Put back every file the overlay touched, byte for byte, and prove it by hash (also after an interruption)."""
    site, backup = Path(site_packages).resolve(), Path(backup_root).resolve()
    journal = _read_journal(backup)
    if journal is None:
        raise BadInput(f"no overlay is recorded in {backup} (no journal.json)")
    if Path(journal["site_packages"]) != site:
        raise BadInput(f"the overlay recorded in {backup} is of {journal['site_packages']}, not {site}")
    if journal["state"] != "reverted":
        _restore(site, backup, journal)
    mismatched = _unrestored(site, backup, journal)
    if mismatched:
        raise EnvironmentFailure(f"revert left {len(mismatched)} file(s) different from before the overlay: "
                                 f"{', '.join(mismatched[:5])}", path=str(site))
    _write_journal(backup, {**journal, "state": "reverted", "reverted_at": _utc_now()})
    own = set(journal.get("own", ()))            # RECORD and the mark: restored too, but not the package's files
    files = [e for e in journal["files"] if e["path"] not in own]
    return OverlayResult("reverted", str(site), journal["package"], journal["version"], str(backup),
                         modified=tuple(e["path"] for e in files if e["existed"]),
                         deleted=tuple(e["path"] for e in files if not e["existed"]), verified=True)


MARKER_NAME = "patchq.json"
MARKER_FORMAT = 1


def _mark_dist_info(site: Path, dist: InstalledDistribution, touched: list[str], marker: Mapping[str, Any]) -> None:
    """Write patchq.json into the dist-info, then RECORD with the overlaid files' (and the mark's) hashes."""
    mark = dist.dist_info / MARKER_NAME
    data = (json.dumps({"format": MARKER_FORMAT, "tool": "patchq", **marker}, indent=2, sort_keys=True) + "\n"
            ).encode("utf-8")
    _replace_bytes(mark, data)
    record = dist.dist_info / "RECORD"
    try:
        rows = [r for r in csv.reader(io.StringIO(record.read_text(encoding="utf-8"))) if r]
    except FileNotFoundError:
        rows = []
    stale_pyc = {rel for rel in _recorded_pycache(rows, touched) if not (site / rel).exists()}
    changed = {rel: site / rel for rel in [*touched, mark.relative_to(site).as_posix()]}
    out, seen = [], set()
    for row in rows:
        path = row[0]
        if path in stale_pyc:
            continue
        if path in changed:
            seen.add(path)
            target = changed[path]
            if not target.is_file():
                continue                                  # deleted by the overlay
            content = target.read_bytes()
            row = [path, _record_hash(content), str(len(content))]
        out.append(row)
    for path, target in changed.items():
        if path not in seen and target.is_file():
            content = target.read_bytes()
            out.append([path, _record_hash(content), str(len(content))])
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(out)
    _replace_bytes(record, text.getvalue().encode("utf-8"))


def _recorded_pycache(rows: list[list[str]], touched: list[str]) -> set[str]:
    """RECORD rows of the compiled copies of touched modules (dropped by the overlay, so no longer installed)."""
    wanted = set()
    for rel in touched:
        module = Path(rel)
        prefix = (module.parent / "__pycache__" / f"{module.stem}.").as_posix()
        wanted |= {r[0] for r in rows if r[0].startswith(prefix) and r[0].endswith(".pyc")}
    return wanted


def _replace_bytes(target: Path, data: bytes) -> None:
    atomic_write(target, data)


@dataclass(frozen=True)
class OverlayStatus:
    """What `overlay --status` says about one installed package."""

    site_packages: str
    package: str
    version: str
    dist_info: str
    overlaid: bool
    mark: dict[str, Any] = field(default_factory=dict)   # the dist-info's patchq.json, when overlaid
    journal_state: str = ""                              # applying | applied | reverted | "" (no journal)
    drifted: tuple[str, ...] = ()                        # overlaid files whose bytes no longer match RECORD
    applied_at: str = ""                                 # from the journal of this workspace's backup

    @property
    def ok(self) -> bool:
        return not self.drifted and self.journal_state != "applying"


def overlay_status(site_packages: str | Path, package: str, backup_root: str | Path | None = None) -> OverlayStatus:
    """Is `package` overlaid here, by what, and do the overlaid files still match the hashes RECORD holds."""
    site = Path(site_packages).resolve()
    dist = find_installed(site, package)
    mark_path = dist.dist_info / MARKER_NAME
    mark: dict[str, Any] = {}
    if mark_path.is_file():
        try:
            mark = json.loads(mark_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BadInput(f"unreadable overlay mark: {exc}", path=str(mark_path)) from None
    journal = _read_journal(Path(backup_root)) if backup_root is not None else None
    recorded = _record_digests((dist.dist_info / "RECORD").read_bytes()) if (dist.dist_info / "RECORD").is_file() \
        else {}
    files = mark.get("files", {})
    drifted = []
    for rel in [*files.get("modified", ()), *files.get("created", ())]:
        target = site / rel
        if not target.is_file() or recorded.get(rel, ("", 0))[0] != _record_hash(target.read_bytes()):
            drifted.append(rel)
    return OverlayStatus(str(site), dist.name, dist.version, dist.dist_info.name, bool(mark), mark,
                         journal.get("state", "") if journal else "", tuple(drifted),
                         journal.get("applied_at", "") if journal else "")


def site_packages_of(python: str | Path) -> Path:
    """The site-packages folder (purelib) of another interpreter, as that interpreter reports it."""
    import subprocess
    try:
        proc = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BadInput(f"cannot run {python}: {exc}") from None
    folder = proc.stdout.strip()
    if proc.returncode != 0 or not folder:
        raise BadInput(f"{python} did not report its site-packages (exit {proc.returncode})")
    path = Path(folder)
    if not path.is_dir():
        raise BadInput(f"{python} reports site-packages {path}, which does not exist")
    return path


def _refuse_pending_overlay(backup: Path) -> None:
    journal = _read_journal(backup)
    if journal is not None and journal.get("state") in ("applying", "applied"):
        interrupted = journal["state"] == "applying"
        raise NeedsYou(("an interrupted overlay" if interrupted else "an overlay") + f" of {journal['package']} "
                       f"is recorded here; revert it first (patchq overlay --revert)",
                       path=str(backup / "journal.json"))


def _touched_paths(site: Path, diff: bytes, strip: int) -> list[str]:
    """Every path the diff creates, changes, deletes or renames, as git apply reads them (`--numstat -z`)."""
    try:
        out = apply_outside_repo(site, diff, strip=strip, numstat=True).out
    except GitError as exc:
        first = next((ln for ln in exc.stderr.splitlines() if ln.strip()), "unreadable diff")
        raise BadInput(f"the overlay diff cannot be read: {first}") from None
    tokens, paths, index = out.split("\0"), [], 0
    while index < len(tokens):
        token = tokens[index]
        if not token:
            index += 1
            continue
        path = token.split("\t", 2)[2]
        if path:
            paths.append(path)
            index += 1
        else:                                   # a rename: old and new paths follow as their own fields
            paths.extend(t for t in tokens[index + 1:index + 3] if t)
            index += 3
    if not paths:
        raise BadInput("the overlay diff changes no file")
    return sorted(set(paths))


def _refuse_unfit_paths(touched: list[str], dist: InstalledDistribution) -> None:
    native = [p for p in touched if not is_python_path(p)]
    if native:
        raise BadInput(f"an overlay carries Python changes only; {', '.join(native[:5])} "
                       f"need{'s' if len(native) == 1 else ''} a build (patchq build)")
    foreign = [p for p in touched if p.split("/")[0] not in dist.roots]
    if foreign:
        raise BadInput(f"{', '.join(foreign[:5])} {'is' if len(foreign) == 1 else 'are'} not part of the installed "
                       f"{dist.name} (it installs {', '.join(dist.roots) or 'no Python files'})")


def _start_journal(site: Path, backup: Path, dist: InstalledDistribution, touched: list[str],
                   extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """Copy what the overlay will change into the backup, then write the journal: only then is the site touched.

    `extra` are files patchq itself rewrites (RECORD, the patchq.json mark): backed up and restored the same way."""
    for previous in ("files", "pycache"):           # only what an earlier, reverted overlay left: the folder
        shutil.rmtree(backup / previous, ignore_errors=True)   # may hold other things of the caller's
    (backup / "journal.json").unlink(missing_ok=True)
    (backup / "files").mkdir(parents=True)
    files = [_back_up(site / rel, backup / "files" / rel, rel) for rel in [*touched, *extra]]
    pycache = [_back_up(site / rel, backup / "pycache" / rel, rel) for rel in _pycache_of(site, touched)]
    journal = {"format": JOURNAL_FORMAT, "state": "applying", "site_packages": str(site), "package": dist.name,
               "version": dist.version, "started_at": _utc_now(), "files": files, "pycache": pycache,
               "created_dirs": _missing_dirs(site, touched), "own": list(extra)}
    _write_journal(backup, journal)
    return journal


def _back_up(original: Path, copy: Path, rel: str) -> dict[str, Any]:
    if not original.is_file():
        return {"path": rel, "existed": False}
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(original, copy)
    info = original.stat()
    return {"path": rel, "existed": True, "sha256": _sha256(copy), "mode": info.st_mode & 0o7777,
            "mtime_ns": info.st_mtime_ns}


def _pycache_of(site: Path, touched: list[str]) -> list[str]:
    """The compiled copies next to touched modules: stale after the overlay, part of the tree to restore."""
    found = []
    for rel in touched:
        module = Path(rel)
        for pyc in (site / module.parent / "__pycache__").glob(f"{module.stem}.*.pyc"):
            found.append(pyc.relative_to(site).as_posix())
    return sorted(set(found))


def _missing_dirs(site: Path, touched: list[str]) -> list[str]:
    """The outermost folders the overlay will create, removed again on revert."""
    missing = set()
    for rel in touched:
        parent = Path(rel).parent
        outermost = None
        while parent != Path(".") and not (site / parent).exists():
            outermost = parent
            parent = parent.parent
        if outermost is not None:
            missing.add(outermost.as_posix())
    return sorted(missing)


def _drop_pycache(site: Path, touched: list[str]) -> None:
    for rel in _pycache_of(site, touched):
        (site / rel).unlink(missing_ok=True)


def _apply_diff(site: Path, diff: bytes, strip: int) -> None:
    file_operation()
    apply_outside_repo(site, diff, strip=strip)


def _compile_check(site: Path, touched: list[str]) -> tuple[str, ...]:
    """py_compile every touched module that exists after the overlay, writing the .pyc outside site-packages."""
    compiled = []
    with tempfile.TemporaryDirectory(prefix="patchq-pycheck-") as scratch:
        for index, rel in enumerate(p for p in touched if p.endswith(".py") and (site / p).is_file()):
            try:
                py_compile.compile(str(site / rel), cfile=os.path.join(scratch, f"{index}.pyc"), dfile=rel,
                                   doraise=True)
            except py_compile.PyCompileError as exc:
                error = exc.exc_value
                line = getattr(error, "lineno", None)
                reason = getattr(error, "msg", None) or str(error)
                raise NeedsYou(f"does not compile after the overlay ({reason}); the overlay was reverted",
                               path=rel, line=line) from None
            compiled.append(rel)
    return tuple(compiled)


def _restore(site: Path, backup: Path, journal: Mapping[str, Any]) -> None:
    for entry in journal["files"]:
        target = site / entry["path"]
        if target.parent.is_dir():                  # what an atomic_write of RECORD or the mark cut short left
            for stale in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
                stale.unlink(missing_ok=True)
        _restore_entry(target, backup / "files" / entry["path"], entry)
    recorded = {e["path"] for e in journal["pycache"]}
    touched = [e["path"] for e in journal["files"]]
    for rel in _pycache_of(site, touched):
        if rel not in recorded:
            (site / rel).unlink(missing_ok=True)
    for entry in journal["pycache"]:
        _restore_entry(site / entry["path"], backup / "pycache" / entry["path"], entry)
    for rel in journal["created_dirs"]:
        shutil.rmtree(site / rel, ignore_errors=True)


def _restore_entry(target: Path, copy: Path, entry: Mapping[str, Any]) -> None:
    if not entry["existed"]:
        target.unlink(missing_ok=True)
        return
    if target.is_file() and _sha256(target) == entry["sha256"]:
        os.chmod(target, entry["mode"])
        os.utime(target, ns=(entry["mtime_ns"], entry["mtime_ns"]))
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.patchq-restore")
    shutil.copyfile(copy, staging)
    os.chmod(staging, entry["mode"])
    os.utime(staging, ns=(entry["mtime_ns"], entry["mtime_ns"]))
    publish(staging, target)


def _unrestored(site: Path, backup: Path, journal: Mapping[str, Any]) -> list[str]:
    """Files whose bytes differ from what the journal recorded before the overlay."""
    wrong = []
    for entry in [*journal["files"], *journal["pycache"]]:
        target = site / entry["path"]
        if entry["existed"]:
            if not target.is_file() or _sha256(target) != entry["sha256"]:
                wrong.append(entry["path"])
        elif target.exists():
            wrong.append(entry["path"])
    return wrong


def _read_journal(backup: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((backup / "journal.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise BadInput(f"unreadable overlay journal: {exc}", path=str(backup / "journal.json")) from None
    if not isinstance(data, dict) or data.get("format") != JOURNAL_FORMAT:
        raise BadInput("not an overlay journal patchq wrote", path=str(backup / "journal.json"))
    return data


def _write_journal(backup: Path, journal: Mapping[str, Any]) -> None:
    atomic_write(backup / "journal.json", (json.dumps(journal, indent=2, sort_keys=True) + "\n").encode())


def _sha256(path: Path) -> str:
    return sha256_file(path)


def _utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
