"""The fast tar reader against tarfile itself: on every archive it answers for, the same members (name, kind,
mode, size, link, bytes); on everything outside its subset, no answer, so tarfile reads it and says what is wrong.

Archives come from tarfile in its three formats, from GNU tar, from `git archive`, and from random trees."""

from __future__ import annotations

import io
import os
import random
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from patchq import tarscan
from patchq.archive_import import _tarfile_entries

NAMES = ["a.py", "dir/b.txt", "déjà/vu ünïcode.py", "x" * 99, "y" * 100, "z" * 101, "long/" * 40 + "deep.py",
         "p" * 150 + "/" + "q" * 90, "trailing space ", "empty"]


def _fit_ustar(root: Path) -> None:
    """ustar holds names of up to 155 + 100 bytes split at a slash, links of up to 100: tarfile and GNU tar refuse
    the rest, so those are taken out of the tree first."""
    shutil.rmtree(root / ("p" * 150))
    shutil.rmtree(root / "long")
    (root / ("l" * 120)).unlink()
    (root / ("z" * 101)).unlink()


def _tree(root: Path, rng: random.Random | None = None) -> None:
    for number, name in enumerate(NAMES):
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        size = [0, 1, 511, 512, 513, 4096, 10_000][number % 7] if rng is None else rng.randrange(0, 3000)
        target.write_bytes(bytes((i * 7 + number) % 256 for i in range(size)))
        if number % 3 == 0:
            target.chmod(0o755)
    (root / "empty-dir").mkdir()
    (root / "link").symlink_to("a.py")
    (root / ("l" * 120)).symlink_to("t" * 130)
    os.link(root / "a.py", root / "hard-a.py")


def _tarfile_view(raw: bytes) -> list[tarscan.Entry]:
    return list(_tarfile_entries(Path("test.tar"), raw))


def _tar_of(root: Path, fmt: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        tar.add(root, arcname="pkg-1.0")
    return buf.getvalue()


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_tarfile_archives_read_the_same(tmp_path, fmt):
    _tree(tmp_path / "t")
    if fmt == tarfile.USTAR_FORMAT:
        _fit_ustar(tmp_path / "t")
    raw = _tar_of(tmp_path / "t", fmt)
    scanned = tarscan.scan(raw)
    assert scanned is not None, "the common subset must be read without tarfile"
    assert scanned == _tarfile_view(raw)
    kinds = {entry.kind for entry in scanned}
    assert kinds == {"file", "dir", "symlink", "hardlink"}


@pytest.mark.parametrize("fmt", ["gnu", "posix", "ustar", "oldgnu"])
def test_gnu_tar_archives_read_the_same(tmp_path, fmt):
    if not shutil.which("tar"):
        pytest.skip("no tar program on this machine")
    _tree(tmp_path / "t")
    if fmt == "ustar":
        _fit_ustar(tmp_path / "t")
    raw = subprocess.run(["tar", f"--format={fmt}", "-cf", "-", "-C", str(tmp_path), "t"], check=True,
                         capture_output=True).stdout
    scanned = tarscan.scan(raw)
    assert scanned is not None
    assert scanned == _tarfile_view(raw)


def test_git_archive_with_its_global_header_reads_the_same(tmp_path):
    repo = tmp_path / "r"
    _tree(repo)
    env = dict(os.environ, GIT_AUTHOR_NAME="a", GIT_AUTHOR_EMAIL="a@b", GIT_COMMITTER_NAME="a",
               GIT_COMMITTER_EMAIL="a@b")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True, env=env)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "x"], check=True, env=env)
    raw = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", "--prefix=pkg-1.0/", "HEAD"],
                         check=True, capture_output=True).stdout
    assert raw[156:157] == b"g"           # git writes the commit id in a global pax header first
    scanned = tarscan.scan(raw)
    assert scanned is not None and scanned == _tarfile_view(raw)


def test_random_trees_read_the_same(tmp_path):
    rng = random.Random(20261126)
    for case in range(6):
        root = tmp_path / f"c{case}"
        _tree(root, rng)
        raw = _tar_of(root, rng.choice([tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]))
        assert tarscan.scan(raw) == _tarfile_view(raw)


def _member(name: str, **fields: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def _archive(*members: tuple[tarfile.TarInfo, bytes], fmt: int = tarfile.PAX_FORMAT, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, **kwargs) as tar:  # type: ignore[call-overload]
        for info, data in members:
            info.size = len(data) if info.isreg() else info.size
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def test_what_only_tarfile_reads_gets_no_answer():
    good = _archive((_member("pkg/a.py"), b"print(1)\n"))
    assert tarscan.scan(good) is not None
    device = _archive((_member("pkg/dev", type=tarfile.CHRTYPE, devmajor=1, devminor=3), b""))
    fifo = _archive((_member("pkg/fifo", type=tarfile.FIFOTYPE), b""))
    global_path = _archive((_member("pkg/a.py"), b"x"), pax_headers={"path": "elsewhere"})
    binary_name = _archive((_member("pkg/\udcff.py"), b"x"))            # written with hdrcharset=BINARY
    bad_sum = bytearray(good)
    bad_sum[0] ^= 1
    cut = good[:512 + 3]
    base256 = bytearray(good)
    base256[124:136] = b"\x80" + bytes(10) + b"\x09"
    for raw in (device, fifo, global_path, binary_name, bytes(bad_sum), cut, bytes(base256), b"", bytes(1024)):
        assert tarscan.scan(raw) is None


def test_pax_sizes_and_names_win_as_in_tarfile():
    long_name = "pkg/" + "n" * 200 + ".py"
    raw = _archive((_member(long_name), b"a" * 700), (_member("pkg/link", type=tarfile.SYMTYPE,
                                                             linkname="t" * 150), b""))
    scanned = tarscan.scan(raw)
    assert scanned is not None and scanned == _tarfile_view(raw)
    assert scanned[0].name == long_name and scanned[0].data == b"a" * 700 and scanned[1].linkname == "t" * 150


def test_damaged_archives_get_tarfiles_answer_or_none(tmp_path):
    """Bytes flipped anywhere in real archives: where the fast reader still answers, tarfile reads exactly that."""
    _tree(tmp_path / "t")
    sources = [_tar_of(tmp_path / "t", tarfile.PAX_FORMAT), _tar_of(tmp_path / "t", tarfile.GNU_FORMAT)]
    rng = random.Random(5)
    answered = 0
    for case in range(400):
        raw = bytearray(rng.choice(sources))
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(raw)) if rng.random() < 0.5 else rng.randrange(0, len(raw), 512) + rng.randrange(512)
            raw[min(at, len(raw) - 1)] = rng.randrange(256)
        scanned = tarscan.scan(bytes(raw))
        if scanned is None:
            continue
        answered += 1
        try:
            expected = _tarfile_view(bytes(raw))
        except Exception as exc:
            raise AssertionError(f"case {case}: tarfile refused what the fast reader read: {exc}") from None
        assert scanned == expected, f"case {case}"
    assert answered > 40             # damage inside file contents leaves the archive readable


def test_a_negative_size_is_left_to_tarfile_and_never_walks_back():
    """int() reads '-1130' in an octal field: as an extension header's size it would move the reader back onto the
    same header forever. A global pax header (as `git archive` writes first), a GNU long name, and a member."""
    global_first = _archive((_member("pkg/a.py"), b"x" * 10), pax_headers={"comment": "0" * 40})
    long_first = _archive((_member("pkg/" + "n" * 120 + ".py"), b"x" * 10), fmt=tarfile.GNU_FORMAT)
    assert global_first[156:157] == b"g" and long_first[156:157] == b"L"
    for raw, at in ((global_first, 0), (long_first, 0), (long_first, 1024)):
        broken = bytearray(raw)
        broken[at + 124:at + 136] = b"-0001130\0\0\0\0"
        broken[at + 148:at + 156] = b"        "
        broken[at + 148:at + 156] = b"%06o\0 " % sum(broken[at:at + 512])
        assert tarscan.scan(bytes(broken)) is None


@pytest.mark.parametrize("fields", [
    {100: b"  644 \0 ", 124: b"      1750 \0", 329: b"        ", 337: b"        "},     # spaces, as old writers pad
    {100: b"0644\0xyz", 108: b"\0" * 8, 136: b"1\0" + b"9" * 10, 329: b"0000001\0"},   # stops at the first NUL
    {100: b"00000644", 124: b"00000001750\0"},                                       # no closing NUL
])
def test_hand_padded_numbers_read_as_tarfile_reads_them(fields):
    """The common header shape is read with one match; every other way of writing the numbers goes field by field
    and gives what tarfile gives: the mode and size read, the member still answered for."""
    raw = bytearray(_archive((_member("pkg/a.py", mode=0o644, mtime=1_700_000_000), b"y" * 1000),
                             fmt=tarfile.USTAR_FORMAT))
    for at, value in fields.items():
        raw[at:at + len(value)] = value
    raw[148:156] = b"        "
    raw[148:156] = b"%06o\0 " % sum(raw[:512])
    scanned = tarscan.scan(bytes(raw))
    assert scanned is not None and scanned == _tarfile_view(bytes(raw))
    assert scanned[0].mode == 0o644 and scanned[0].data == b"y" * 1000


def test_a_pax_header_of_mtime_alone_and_one_with_more_read_alike():
    """Python's tarfile writes a pax header with only `mtime` before every member: read with one match, the
    same as the record-by-record reading of a header that also carries a path."""
    plain = _archive((_member("pkg/a.py", mtime=1_700_000_000.25), b"x"))
    with_path = _archive((_member("pkg/" + "p" * 120, mtime=1_700_000_000.25), b"x"))
    assert b"mtime=1700000000.25\n" in plain[512:1024] and b" path=" in with_path[512:1024]
    for raw in (plain, with_path):
        scanned = tarscan.scan(raw)
        assert scanned is not None and scanned == _tarfile_view(raw)
    assert tarscan._pax(plain[512:1024]) == {"mtime": "1700000000.25"}
    wrong_length = plain[512:1024].replace(b"23 mtime=", b"24 mtime=", 1)
    assert wrong_length != plain[512:1024]
    with pytest.raises(tarscan._Unsure):
        tarscan._pax(wrong_length)
