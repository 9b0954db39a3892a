"""Sources: mirrors fetched once and on demand, release archives as deterministic commits, unsafe archives refused."""

from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
from pathlib import Path

import pytest

from patchq.apply import apply_stack
from patchq.errors import BadInput, EnvironmentFailure
from patchq.git import Repo
from patchq.model import ArchiveSource, OutcomeKind, Upstream
from patchq.sources import ensure_mirror, extract_archive, import_archive, mirror_path


def test_mirror_is_made_once_and_reused(lab, pyupstream, tmp_path):
    up, base = pyupstream
    lab.upstream("vllm", up, base)
    lab.patch("vllm", "one", up.diff(base, [("vllm/model.py", "return x * 3\n", "return x * 3 + 1\n")]))
    lab.stack("s", ["vllm"])
    ws = lab.load()
    first = apply_stack(ws, "s", check_only=True)
    mirror = mirror_path(ws.upstream("vllm"))
    inode = mirror.stat().st_ino
    # with the upstream gone, only the cached mirror can serve the second run: it must not clone or fetch
    up.path.rename(tmp_path / "moved-away")
    second = apply_stack(ws, "s")
    assert mirror.stat().st_ino == inode
    assert [o.kind for o in first.upstreams[0].outcomes] == [o.kind for o in second.upstreams[0].outcomes] == [
        OutcomeKind.CLEAN]
    checkout = Repo(second.upstreams[0].checkout)
    git_inode = (checkout.path / ".git").stat().st_ino
    apply_stack(ws, "s")                                  # the checkout is reused too, not cloned again
    assert (checkout.path / ".git").stat().st_ino == git_inode


def test_a_pin_missing_from_the_mirror_is_fetched_after_upstream_grows(lab, pyupstream):
    up, base = pyupstream
    lab.upstream("vllm", up, base)
    lab.stack("s", ["vllm"])
    ws = lab.load()
    mirror = ensure_mirror(ws.upstream("vllm"), workspace=ws.root, need=(base,))
    up.edit("README.md", "demo\n", "demo 2\n")
    newer = up.commit("upstream grows")
    assert not mirror.has_commit(newer)
    lab.upstreams["vllm"] = (up, newer)
    lab.patch("vllm", "readme", up.diff(newer, [("README.md", "demo 2\n", "demo 3\n")]))
    report = apply_stack(lab.load(), "s")
    assert mirror.has_commit(newer)
    assert report.upstreams[0].outcomes[0].kind == OutcomeKind.CLEAN
    assert (Path(report.upstreams[0].checkout) / "README.md").read_text() == "demo 3\n"


def test_a_pin_the_upstream_does_not_have_is_bad_input(lab, pyupstream):
    up, base = pyupstream
    lab.upstream("vllm", up, "0123456789" * 4)
    lab.stack("s", ["vllm"])
    with pytest.raises(BadInput, match="commit 012345678901 of upstream 'vllm' is not in"):
        apply_stack(lab.load(), "s")


def test_an_unreachable_url_names_itself(tmp_path, monkeypatch):
    upstream = Upstream("vllm", str(tmp_path / "nowhere.git"), "a" * 40)
    with pytest.raises(EnvironmentFailure, match=str(tmp_path / "nowhere.git")):
        ensure_mirror(upstream, need=("a" * 40,))
    assert not mirror_path(upstream).exists()
    assert list(mirror_path(upstream).parent.iterdir()) == []          # no half-made mirror left behind


# ---- archives --------------------------------------------------------------------------------------------------

def make_tarball(path: Path, files: dict[str, bytes], *, top: str = "pkg-1.0", modes: dict[str, int] | None = None,
                 mtime: int = 1_700_000_000) -> str:
    """A release-like tarball; returns its sha256."""
    with tarfile.open(path, "w:gz") as tar:
        for rel, data in files.items():
            info = tarfile.TarInfo(f"{top}/{rel}")
            info.size = len(data)
            info.mode = (modes or {}).get(rel, 0o644)
            info.mtime = mtime
            tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


FILES = {"setup.py": b"from setuptools import setup\nsetup(name='pkg')\n",
         "pkg/__init__.py": b"",
         "pkg/model.py": b"".join(b"def f%d(x):\n    return x + %d\n\n" % (i, i) for i in range(20)),
         "tools/run.sh": b"#!/bin/sh\necho run\n"}


def archive_upstream(tmp_path: Path, sha: str, tarball: Path, *, subdir: str | None = None) -> Upstream:
    return Upstream("pkg", str(tmp_path / "no-git-hosting.git"), "f" * 40,
                    archive=ArchiveSource(sha256=sha, url=str(tarball), subdir=subdir))


def test_archive_commit_is_deterministic_across_caches(tmp_path, monkeypatch):
    tarball = tmp_path / "pkg-1.0.tar.gz"
    sha = make_tarball(tarball, FILES, modes={"tools/run.sh": 0o755})
    upstream = archive_upstream(tmp_path, sha, tarball)
    commits = []
    for cache in ("cache-a", "cache-b"):
        monkeypatch.setenv("PATCHQ_CACHE", str(tmp_path / cache))
        repo = Repo.init(tmp_path / cache / "m.git", bare=True)
        commits.append(import_archive(upstream, repo))
        assert import_archive(upstream, repo) == commits[-1]          # cached under a ref: same id again
        listing = repo.out("ls-tree", "-r", commits[-1])
        assert "100755 blob" in next(ln for ln in listing.splitlines() if ln.endswith("tools/run.sh"))
        assert repo.read_blob(commits[-1], "pkg/model.py") == FILES["pkg/model.py"]
        assert (tmp_path / cache / "archives" / sha / "pkg-1.0.tar.gz").is_file()
    assert commits[0] == commits[1]
    # the same files packed at another time (other mtimes) give the same tree; the commit names its archive
    other = tmp_path / "again" / "pkg-1.0.tar.gz"
    other.parent.mkdir()
    sha2 = make_tarball(other, FILES, modes={"tools/run.sh": 0o755}, mtime=1_800_000_000)
    monkeypatch.setenv("PATCHQ_CACHE", str(tmp_path / "cache-c"))
    repo = Repo.init(tmp_path / "cache-c" / "m.git", bare=True)
    again = import_archive(archive_upstream(tmp_path, sha2, other), repo)
    assert repo.tree_of(again) == Repo(tmp_path / "cache-a" / "m.git").tree_of(commits[0])
    assert sha2 in repo.out("log", "-1", "--format=%B", again)


def test_archive_subdir_becomes_the_root(tmp_path):
    tarball = tmp_path / "wrap-2.0.tar.gz"
    sha = make_tarball(tarball, {f"vendor/lib/{k}": v for k, v in FILES.items()}, top="wrap-2.0")
    repo = Repo.init(tmp_path / "m.git", bare=True)
    commit = import_archive(archive_upstream(tmp_path, sha, tarball, subdir="vendor/lib"), repo)
    assert sorted(repo.ls_tree_paths(commit)) == sorted(FILES)
    with pytest.raises(BadInput, match="has no folder 'vendor/nope'"):
        import_archive(archive_upstream(tmp_path, sha, tarball, subdir="vendor/nope"), Repo.init(tmp_path / "n.git",
                                                                                                bare=True))


def test_a_wrong_sha256_is_refused_and_nothing_is_cached(tmp_path):
    tarball = tmp_path / "pkg-1.0.tar.gz"
    real = make_tarball(tarball, FILES)
    wrong = "0" * 64
    repo = Repo.init(tmp_path / "m.git", bare=True)
    with pytest.raises(BadInput, match=f"has sha256 {real}, pins.lock says {wrong}"):
        import_archive(archive_upstream(tmp_path, wrong, tarball), repo)
    cached = Path(os.environ["PATCHQ_CACHE"]) / "archives" / wrong
    assert not cached.exists() or list(cached.iterdir()) == []
    assert repo.refs() == []


def _tar_with(path: Path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        ok = tarfile.TarInfo("pkg/ok.txt")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"ok"))
        tar.addfile(member, io.BytesIO(data) if data else None)
    return path


def _member(name: str, *, kind: bytes = tarfile.REGTYPE, link: str = "", size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = size
    return info


@pytest.mark.parametrize("member,why", [
    (_member("/etc/evil", size=1), "outside the extraction folder"),
    (_member("pkg/../../evil", size=1), "outside the extraction folder"),
    (_member("pkg/link", kind=tarfile.SYMTYPE, link="../../etc/passwd"), "outside the extraction folder"),
    (_member("pkg/abs", kind=tarfile.SYMTYPE, link="/etc/passwd"), "outside the extraction folder"),
    (_member("pkg/hard", kind=tarfile.LNKTYPE, link="../../etc/passwd"), "outside the extraction folder"),
    (_member("pkg/dev", kind=tarfile.CHRTYPE), "device"),
])
def test_unsafe_tar_members_are_refused(tmp_path, member, why):
    tarball = _tar_with(tmp_path / "bad.tar.gz", member, b"x" if member.size else b"")
    dest = tmp_path / "x"
    with pytest.raises(BadInput, match=why) as info:
        extract_archive(tarball, dest)
    assert info.value.path == str(tarball)
    assert not (tmp_path / "evil").exists()
    assert list(dest.rglob("*")) == []                     # refused before anything was written


def test_an_archive_only_upstream_applies_on_the_archive_commit_and_says_so(lab, tmp_path):
    tarball = tmp_path / "pkg-1.0.tar.gz"
    sha = make_tarball(tarball, FILES, modes={"tools/run.sh": 0o755})
    # the lab's patch, made against the released files
    work = Repo.init(tmp_path / "release")
    for rel, data in FILES.items():
        (work.path / rel).parent.mkdir(parents=True, exist_ok=True)
        (work.path / rel).write_bytes(data)
    work.run("add", "-A")
    work.run("commit", "-q", "-m", "release files")
    model = work.path / "pkg/model.py"
    model.write_bytes(FILES["pkg/model.py"].replace(b"return x + 7\n",
                                                    b"return x + 7 if os.environ.get(\"PKG_F7\", \"0\") != \"1\" "
                                                    b"else x\n"))
    diff = work.run("diff", "--full-index").stdout
    lab.root.joinpath("pins.lock").write_text(f"""\
version: 1
upstreams:
  pkg:
    url: {tmp_path / 'git-hosting-is-down.git'}
    pin: {'c' * 40}
    archive:
      url: {tarball}
      sha256: {sha}
stacks:
  s:
    upstreams: [pkg]
""")
    lab.queues["pkg"] = []
    lab.upstreams.clear()
    entry = lab.patch("pkg", "f7-flag", diff)
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    from patchq.workspace import dump_yaml, entry_to_yaml, load_workspace
    series = CommentedMap()
    series["patches"] = CommentedSeq([entry_to_yaml(entry)])
    (lab.root / "queues/pkg/series.yaml").write_bytes(dump_yaml(series))
    report = apply_stack(load_workspace(lab.root), "s")
    (up,) = report.upstreams
    assert [o.kind for o in up.outcomes] == [OutcomeKind.CLEAN]
    assert up.pin == "c" * 40
    note = next(step for step in report.next_steps if step.startswith("pkg: "))
    assert "out of reach" in note and str(tarball) in note and sha[:12] in note
    checkout = Repo(up.checkout)
    assert (checkout.path / "pkg/model.py").read_bytes() == model.read_bytes()
    assert checkout.subject("HEAD~1").startswith("pkg from archive sha256:")
    assert checkout.status_porcelain() == []


def test_a_checkout_left_half_moved_by_a_killed_run_is_finished_by_the_next(lab, pyupstream):
    up, base = pyupstream
    lab.upstream("vllm", up, base)
    lab.patch("vllm", "one", up.diff(base, [("vllm/model.py", "return x * 3\n", "return x * 3 + 1\n")]))
    lab.stack("s", ["vllm"])
    ws = lab.load()
    checkout = Path(apply_stack(ws, "s").upstreams[0].checkout)
    # what a run killed inside `git checkout` leaves: its marker, git's lock, a file half rewritten
    (checkout / ".git" / "patchq-moving").write_text("12345\n")
    (checkout / ".git" / "index.lock").write_text("")
    whole = (checkout / "vllm/model.py").read_bytes()
    (checkout / "vllm/model.py").write_bytes(whole[:7])          # git died while writing it
    (checkout / "README.md").unlink()                             # ... or before writing this one
    report = apply_stack(ws, "s")
    assert Repo(checkout).status_porcelain() == []
    assert Repo(checkout).tree_of("HEAD") == report.upstreams[0].tree
    assert not (checkout / ".git" / "patchq-moving").exists() and not (checkout / ".git" / "index.lock").exists()
    # without patchq's marker a lock may be someone's live git: it is left alone and the run stops (exit 3)
    (checkout / ".git" / "index.lock").write_text("")
    with pytest.raises(EnvironmentFailure, match="index.lock"):
        apply_stack(ws, "s")
    assert (checkout / ".git" / "index.lock").exists()


def _git_commands(trace: Path) -> list[str]:
    """The git subcommands patchq ran, from a PATCHQ_TRACE_GIT file (`ls-remote`, `fetch`, ...)."""
    import shlex
    if not trace.exists():
        return []
    found = []
    for line in trace.read_text().splitlines():
        words = iter(shlex.split(line.partition(" git ")[2]))
        for word in words:
            if word in ("-c", "--git-dir"):
                next(words)
            elif not word.startswith("-"):
                found.append(word)
                break
    return found


def test_an_archive_upstream_asks_the_network_nothing_once_the_pin_is_in_the_mirror(lab, pyupstream, tmp_path,
                                                                                    patchq):
    """No `git ls-remote` probe before apply/check: a pin the mirror lacks is fetched by its id alone; a pin it
    has needs no git network command at all."""
    up, base = pyupstream
    tarball = tmp_path / "pkg-1.0.tar.gz"
    sha = make_tarball(tarball, FILES)
    lab.upstream("vllm", up, base)
    lab.patch("vllm", "one", up.diff(base, [("vllm/model.py", "return x * 3\n", "return x * 3 + 1\n")]))
    lab.stack("s", ["vllm"])
    root = lab.save()
    lock = (root / "pins.lock").read_text().replace(f"url: {up.path}", f"url: file://{up.path}")
    lock = lock.replace(f"pin: {base}", f"pin: {base}\n    archive:\n      url: {tarball}\n      sha256: {sha}")
    (root / "pins.lock").write_text(lock)
    first, again = tmp_path / "first.trace", tmp_path / "again.trace"
    res = patchq("apply", "s", "--check", cwd=root, env={"PATCHQ_TRACE_GIT": str(first)})
    assert res.code == 0, res.err
    ran = _git_commands(first)
    assert "ls-remote" not in ran and ran.count("fetch") == 1            # one targeted fetch of the pin
    assert re.search(rf"git (--git-dir \S+ )?fetch .*{base}", first.read_text())
    assert "out of reach" not in res.out                                 # the pin itself, not the archive
    res = patchq("apply", "s", "--check", cwd=root, env={"PATCHQ_TRACE_GIT": str(again)})
    assert res.code == 0, res.err
    assert not {"ls-remote", "fetch", "clone"} & set(_git_commands(again))
