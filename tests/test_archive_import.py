"""Archives committed by streaming their members into `git fast-import`: the tree `git add` of the extracted folder
records, the same commit id, one pack and no loose objects, and every unsafe member refused before anything is
written."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from patchq.archive_import import commit_archive
from patchq.errors import BadInput
from patchq.git import Repo, objects_dir
from patchq.sources import commit_folder, extract_archive

MESSAGE = "pkg from archive sha256:test\n"


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def _file(name: str, data: bytes = b"x\n", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info, data


def _special(name: str, kind: bytes, link: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = 0o755
    return info, b""


def _release(tmp_path: Path) -> Path:
    members = [_special("pkg-1.0", tarfile.DIRTYPE), _file("pkg-1.0/setup.py", b"setup()\n"),
               _file("pkg-1.0/tools/run.sh", b"#!/bin/sh\necho\n", 0o755),
               _file("pkg-1.0/tools/group-x.sh", b"#!/bin/sh\n", 0o654),          # group may run it, owner not
               _file("pkg-1.0/pkg/__init__.py", b""),
               _file("pkg-1.0/pkg/model.py", b"".join(b"def f%d():\n    return %d\n" % (i, i) for i in range(50))),
               _special("pkg-1.0/pkg/alias.py", tarfile.SYMTYPE, "model.py"),
               _special("pkg-1.0/pkg/copy.py", tarfile.LNKTYPE, "pkg-1.0/pkg/model.py"),
               _file("pkg-1.0/odd name \"quoted\".txt", b"odd\n"),
               _file("pkg-1.0/setup.py", b"replaced\n"),                          # a later member wins
               _special("pkg-1.0/empty", tarfile.DIRTYPE)]
    return _tar(tmp_path / "pkg-1.0.tar.gz", members)


def test_the_same_commit_as_extracting_and_adding(tmp_path):
    tarball = _release(tmp_path)
    by_folder = Repo.init(tmp_path / "a.git", bare=True)
    old = commit_folder(by_folder, extract_archive(tarball, tmp_path / "x"), MESSAGE)
    streamed = Repo.init(tmp_path / "b.git", bare=True)
    new = commit_archive(streamed, tarball, MESSAGE, ref="refs/test/import")
    assert new == old
    assert streamed.read_blob(new, "setup.py") == b"replaced\n"
    assert streamed.read_blob(new, "pkg/copy.py") == b"".join(b"def f%d():\n    return %d\n" % (i, i)
                                                             for i in range(50))
    listing = streamed.out("ls-tree", "-r", new)
    assert "120000 blob" in next(ln for ln in listing.splitlines() if ln.endswith("pkg/alias.py"))
    assert "100755 blob" in next(ln for ln in listing.splitlines() if ln.endswith("tools/run.sh"))


def test_gunzipped_at_once_or_streamed_the_commit_is_the_same(tmp_path, monkeypatch):
    """A .tar.gz under IN_MEMORY is gunzipped in one call (twice as fast); one over it is streamed as before: the
    same members, the same commit, and a truncated archive is the same one-line refusal either way."""
    import patchq.archive_import as archive_import
    tarball = _release(tmp_path)
    in_memory = commit_archive(Repo.init(tmp_path / "a.git", bare=True), tarball, MESSAGE, ref="refs/test/import")
    monkeypatch.setattr(archive_import, "IN_MEMORY", 16)         # every archive is "too big": the stream path
    streamed = commit_archive(Repo.init(tmp_path / "b.git", bare=True), tarball, MESSAGE, ref="refs/test/import")
    assert in_memory == streamed
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(tarball.read_bytes()[:len(tarball.read_bytes()) // 2])
    for limit in (16, archive_import.MAX_TOTAL):
        monkeypatch.setattr(archive_import, "IN_MEMORY", limit)
        with pytest.raises(BadInput, match="corrupt or unreadable"):
            commit_archive(Repo.init(tmp_path / f"c{limit}.git", bare=True), cut, MESSAGE, ref="refs/test/import")


def test_a_release_becomes_one_pack_not_loose_objects(tmp_path):
    tarball = _tar(tmp_path / "pkg-1.0.tar.gz", [_file(f"pkg-1.0/m{i}.py", b"x = %d\n" % i) for i in range(150)])
    repo = Repo.init(tmp_path / "m.git", bare=True)
    commit = commit_archive(repo, tarball, MESSAGE, ref="refs/test/import")
    assert len(repo.ls_tree_paths(commit)) == 150
    loose = [p for p in objects_dir(repo.path).iterdir() if len(p.name) == 2]
    assert loose == [] and len(list((objects_dir(repo.path) / "pack").glob("*.pack"))) == 1


def test_subdir_and_zip(tmp_path):
    tarball = _tar(tmp_path / "wrap-2.0.tar.gz", [_file("wrap-2.0/vendor/lib/a.c", b"int a;\n"),
                                                   _file("wrap-2.0/vendor/lib/sub/b.c", b"int b;\n"),
                                                   _file("wrap-2.0/setup.py", b"x\n")])
    repo = Repo.init(tmp_path / "m.git", bare=True)
    commit = commit_archive(repo, tarball, MESSAGE, subdir="vendor/lib", ref="refs/test/import")
    assert sorted(repo.ls_tree_paths(commit)) == ["a.c", "sub/b.c"]
    with pytest.raises(BadInput, match="archive of 'pkg' has no folder 'vendor/nope'"):
        commit_archive(repo, tarball, MESSAGE, subdir="vendor/nope", name="pkg", ref="refs/test/import")
    zipped = tmp_path / "pkg-1.0.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("pkg-1.0/a.py", "a = 1\n")
        zf.writestr("pkg-1.0/b/c.py", "c = 2\n")
    old = commit_folder(Repo.init(tmp_path / "z.git", bare=True), extract_archive(zipped, tmp_path / "zx"), MESSAGE)
    assert commit_archive(repo, zipped, MESSAGE, ref="refs/test/import") == old


@pytest.mark.parametrize("members,why", [
    ([_file("pkg/ok"), _file("pkg/../../evil")], "outside the extraction folder"),
    ([_file("/abs/evil")], "outside the extraction folder"),
    ([_special("pkg/lnk", tarfile.SYMTYPE, "/etc"), _file("pkg/lnk/evil")], "outside the extraction folder"),
    ([_special("pkg/lnk", tarfile.SYMTYPE, "../../..")], "outside the extraction folder"),
    ([_special("pkg/a/lnk", tarfile.SYMTYPE, ".."), _file("pkg/a/lnk/evil")], "outside the extraction folder"),
    ([_special("pkg/hard", tarfile.LNKTYPE, "/etc/passwd")], "outside the extraction folder"),
    ([_special("pkg/hard", tarfile.LNKTYPE, "pkg/later"), _file("pkg/later")], "outside the extraction folder"),
    ([_special("pkg/dev", tarfile.CHRTYPE)], "device"),
    ([_special("pkg/fifo", tarfile.FIFOTYPE)], "device"),
])
def test_unsafe_members_are_refused_and_nothing_is_written(tmp_path, members, why):
    tarball = _tar(tmp_path / "bad.tar.gz", members)
    repo = Repo.init(tmp_path / "m.git", bare=True)
    before = sorted(p.relative_to(repo.path) for p in repo.path.rglob("*"))
    with pytest.raises(BadInput, match=why) as info:
        commit_archive(repo, tarball, MESSAGE, ref="refs/test/import")
    assert info.value.path == str(tarball)
    assert sorted(p.relative_to(repo.path) for p in repo.path.rglob("*")) == before


def test_a_link_that_stays_in_the_archive_but_leaves_the_tree_is_refused(tmp_path):
    """`pkg-1.0/lnk -> ..` stays inside the extraction folder, but the top folder becomes the tree root."""
    tarball = _tar(tmp_path / "pkg-1.0.tar.gz", [_file("pkg-1.0/a"), _special("pkg-1.0/lnk", tarfile.SYMTYPE, "..")])
    with pytest.raises(BadInput, match="outside the extraction folder"):
        commit_archive(Repo.init(tmp_path / "m.git", bare=True), tarball, MESSAGE, ref="refs/test/import")


def test_truncated_and_corrupt_archives_are_bad_input(tmp_path):
    good = _tar(tmp_path / "pkg-1.0.tar.gz", [_file("pkg-1.0/big", bytes(range(256)) * 256)])
    truncated = tmp_path / "cut.tar.gz"
    truncated.write_bytes(good.read_bytes()[:300])
    for archive in (truncated, tmp_path / "empty.tar.gz"):
        archive.touch()
        with pytest.raises(BadInput, match="corrupt or unreadable"):
            commit_archive(Repo.init(tmp_path / "m.git", bare=True), archive, MESSAGE, ref="refs/test/import")


def test_an_archive_only_stack_lands_in_a_new_folder_from_one_pack(lab, tmp_path):
    """The whole cold path through `apply --into`: archive streamed into the mirror, parallel checkout, clean."""
    from patchq.apply import apply_stack
    from patchq.sources import mirror_path
    from patchq.workspace import load_workspace
    files = {f"pkg/m{i}.py": b"def f():\n    return %d\n" % i for i in range(120)}
    tarball = _tar(tmp_path / "pkg-1.0.tar.gz", [_file(f"pkg-1.0/{k}", v) for k, v in files.items()])
    import hashlib
    sha = hashlib.sha256(tarball.read_bytes()).hexdigest()
    (lab.root / "queues" / "pkg").mkdir(parents=True)
    (lab.root / "queues" / "pkg" / "series.yaml").write_text("patches: []\n")
    (lab.root / "pins.lock").write_text(f"version: 1\nupstreams:\n  pkg:\n    url: {tmp_path / 'down.git'}\n"
                                        f"    pin: {'c' * 40}\n    archive:\n      url: {tarball}\n"
                                        f"      sha256: {sha}\nstacks:\n  s:\n    upstreams: [pkg]\n")
    ws = load_workspace(lab.root)
    report = apply_stack(ws, "s", into=tmp_path / "new")
    checkout = Repo(report.upstreams[0].checkout)
    assert all((checkout.path / k).read_bytes() == v for k, v in files.items())
    assert checkout.status_porcelain() == []
    assert not checkout.run("config", "--get", "checkout.workers", check=False).ok     # not left in its config
    mirror = objects_dir(mirror_path(ws.upstream("pkg")))
    assert [p for p in mirror.iterdir() if len(p.name) == 2] == []


def test_a_big_release_is_imported_in_parts_to_the_same_commit(tmp_path, monkeypatch):
    """Above PART_BYTES the blobs go to fast-import runs side by side and a last run writes the commit from the ids
    they report: the same commit id as one run and as extracting and adding."""
    import patchq.archive_import as archive_import
    members = [_file(f"pkg-1.0/data/f{i:03}.txt", b"".join(b"%d line %d of file %d\n" % (i * j, j, i)
                                                           for j in range(40 + i))) for i in range(60)]
    members += [_special("pkg-1.0/data/alias", tarfile.SYMTYPE, "f001.txt"),
                _file("pkg-1.0/bin/run", b"#!/bin/sh\n", 0o755), _file("pkg-1.0/empty.py", b"")]
    tarball = _tar(tmp_path / "pkg-1.0.tar.gz", members)
    whole = Repo.init(tmp_path / "one.git", bare=True)
    in_one_run = commit_archive(whole, tarball, MESSAGE, ref="refs/test/import")
    by_folder = commit_folder(Repo.init(tmp_path / "f.git", bare=True), extract_archive(tarball, tmp_path / "x"),
                              MESSAGE)
    monkeypatch.setattr(archive_import, "PART_BYTES", 4096)
    monkeypatch.setattr(archive_import, "usable_cores", lambda: 3)    # three parts on any machine
    trace = tmp_path / "git.log"
    monkeypatch.setenv("PATCHQ_TRACE_GIT", str(trace))
    repo = Repo.init(tmp_path / "parts.git", bare=True)
    in_parts = commit_archive(repo, tarball, MESSAGE, ref="refs/test/import")
    assert in_parts == in_one_run == by_folder
    assert repo.read_blob(in_parts, "data/f059.txt") == members[59][1]
    runs = [line for line in trace.read_text().splitlines() if " fast-import " in line]
    assert len(runs) == 4 and all("--depth=0" in line for line in runs)     # three parts, then the commit


def test_fast_import_keeps_its_heap_unless_the_user_set_malloc(monkeypatch):
    """glibc's heap trimming made fast-import fault on every blob (81,000 page faults for 4,375 small files): its
    runs get a trim threshold, but a user's own malloc setting is never overridden."""
    from patchq.git import _heap_kept
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    assert _heap_kept() == {"MALLOC_TRIM_THRESHOLD_": str(64 << 20)}
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=4096")
    assert _heap_kept() == {}
    monkeypatch.delenv("GLIBC_TUNABLES")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1")
    assert _heap_kept() == {}
