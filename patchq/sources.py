"""Upstream sources: cached bare mirrors, release archives turned into commits, and cheap clean checkouts.

Mirrors live in a per-user cache (`$PATCHQ_CACHE`, default `~/.cache/patchq`) and are fetched once, then only when a
pin is missing. Checkouts share the mirror's objects (`clone --shared`), and a checkout patchq made before is reset
and cleaned rather than cloned again — unless someone edited it, in which case patchq refuses to touch it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .errors import BadInput, EnvironmentFailure
from .git import GitError, Repo, run_git
from .model import FULL_SHA, ArchiveSource, Upstream

OWNER_MARK = "patchq-checkout"   # file inside a checkout's .git naming the mirror it came from
ARCHIVE_IDENT = {"GIT_AUTHOR_NAME": "patchq archive", "GIT_AUTHOR_EMAIL": "archive@patchq",
                 "GIT_COMMITTER_NAME": "patchq archive", "GIT_COMMITTER_EMAIL": "archive@patchq",
                 "GIT_AUTHOR_DATE": "1970-01-01T00:00:00+0000", "GIT_COMMITTER_DATE": "1970-01-01T00:00:00+0000"}
MAX_ARCHIVE_MEMBER = 512 * 1024 * 1024


def cache_root() -> Path:
    env = os.environ.get("PATCHQ_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "patchq"


def mirror_path(upstream: Upstream) -> Path:
    digest = hashlib.sha256(upstream.url.encode()).hexdigest()[:12]
    return cache_root() / "mirrors" / f"{upstream.name}-{digest}.git"


def _resolve_url(url: str, workspace: Path | None) -> str:
    """Relative local paths in pins.lock are relative to the workspace."""
    if "://" in url or url.startswith(("git@", "file:")) or workspace is None:
        return url
    path = Path(url).expanduser()
    if not path.is_absolute():
        path = workspace / path
    return str(path)


def ensure_mirror(upstream: Upstream, *, workspace: Path | None = None, need: tuple[str, ...] = (),
                  refresh: bool = False) -> Repo:
    """The cached bare mirror of `upstream`, holding every commit in `need` (fetched or built when missing)."""
    path = mirror_path(upstream)
    url = _resolve_url(upstream.url, workspace)
    if not (path / "HEAD").exists():
        _clone_mirror(upstream, url, path)
    repo = Repo(path)
    missing = [sha for sha in need if not repo.has_commit(sha)]
    if upstream.archive is not None and missing:
        archive_commit = import_archive(upstream, repo)
        missing = [sha for sha in missing if sha != archive_commit]
    if refresh or missing:
        _fetch(upstream, url, repo)
        still = [sha for sha in missing if not repo.has_commit(sha)]
        if still:
            raise BadInput(f"commit {still[0][:12]} of upstream {upstream.name!r} is not in {url} "
                           "(was it force-pushed away, or is the pin a typo?)", path="pins.lock")
    return repo


def _clone_mirror(upstream: Upstream, url: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        if upstream.archive is not None and not _url_reachable(url):
            Repo.init(tmp / "m.git", bare=True)      # archive-only upstream: an empty mirror to import into
        else:
            try:
                run_git(["clone", "--mirror", "--quiet", url, str(tmp / "m.git")])
            except GitError as exc:
                raise EnvironmentFailure(f"cannot fetch upstream {upstream.name!r} from {url}: "
                                         f"{exc.stderr.strip().splitlines()[-1] if exc.stderr.strip() else exc}",
                                         hint="check the url in pins.lock, or give the upstream an archive source"
                                         ) from None
        os.replace(tmp / "m.git", path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _url_reachable(url: str) -> bool:
    if "://" not in url and not url.startswith("git@"):
        return Path(url.removeprefix("file:")).exists()
    return run_git(["ls-remote", "--heads", url], check=False).ok


def _fetch(upstream: Upstream, url: str, repo: Repo) -> None:
    if upstream.archive is not None and not _url_reachable(url):
        return
    res = repo.run("fetch", "--quiet", "--prune", url, "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*",
                   check=False)
    if not res.ok:
        raise EnvironmentFailure(f"cannot fetch upstream {upstream.name!r} from {url}: "
                                 f"{res.stderr.strip().splitlines()[-1] if res.stderr.strip() else 'no message'}")


def resolve_ref(repo: Repo, upstream: Upstream, ref: str) -> str:
    """A full commit id for a full or short SHA, tag, branch or `latest` (the default branch's tip)."""
    if FULL_SHA.match(ref) and repo.has_commit(ref):
        return ref
    if ref == "latest":
        ref = "HEAD"
    for candidate in (ref, f"refs/tags/{ref}", f"refs/heads/{ref}", f"refs/remotes/origin/{ref}"):
        sha = repo.rev_parse(candidate)
        if sha:
            return sha
    names = repo.refs("refs/heads") + repo.refs("refs/tags")
    import difflib
    near = difflib.get_close_matches(ref, names, n=4, cutoff=0.4)
    hint = f" (close: {', '.join(near)})" if near else ""
    raise BadInput(f"{ref!r} names no commit, tag or branch of upstream {upstream.name!r}{hint}")


# ---- archives ---------------------------------------------------------------------------------------------------

def archive_file(upstream: Upstream) -> Path:
    """The archive downloaded (once) into the cache and verified by sha256."""
    archive = upstream.archive
    assert archive is not None
    folder = cache_root() / "archives" / archive.sha256
    folder.mkdir(parents=True, exist_ok=True)
    existing = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if existing and _sha256(existing[0]) == archive.sha256:
        return existing[0]
    tmp = Path(tempfile.mkdtemp(prefix=".dl.", dir=folder))
    try:
        if archive.pypi:
            _pip_download_sdist(archive.pypi, tmp)
        elif archive.url and "://" not in archive.url:
            src = Path(archive.url).expanduser()
            if not src.exists():
                raise BadInput(f"archive {archive.url} of upstream {upstream.name!r} does not exist", path="pins.lock")
            shutil.copy2(src, tmp / src.name)
        else:
            raise EnvironmentFailure(f"archive of {upstream.name!r}: only PyPI sdists and local files can be fetched "
                                     "here; download the tarball into the cache yourself")
        files = [p for p in tmp.iterdir() if p.is_file()]
        if len(files) != 1:
            raise EnvironmentFailure(f"archive download for {upstream.name!r} produced {len(files)} files")
        got = _sha256(files[0])
        if got != archive.sha256:
            raise BadInput(f"archive of {upstream.name!r} has sha256 {got}, pins.lock says {archive.sha256}",
                           path="pins.lock")
        final = folder / files[0].name
        os.replace(files[0], final)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _pip_download_sdist(requirement: str, dest: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                           "--no-build-isolation", "-d", str(dest), requirement], capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise EnvironmentFailure(f"pip could not download the sdist {requirement}: {last}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def import_archive(upstream: Upstream, repo: Repo) -> str:
    """Turn the archive into one commit with fixed author, dates and message: the same archive, the same id."""
    archive = upstream.archive
    assert archive is not None
    ref = f"refs/patchq/archive/{archive.sha256[:16]}"
    existing = repo.rev_parse(ref)
    if existing:
        return existing
    path = archive_file(upstream)
    with tempfile.TemporaryDirectory(prefix="patchq-archive-") as tmp:
        root = extract_archive(path, Path(tmp) / "x")
        if archive.subdir:
            root = root / archive.subdir
            if not root.is_dir():
                raise BadInput(f"archive of {upstream.name!r} has no folder {archive.subdir!r}", path="pins.lock")
        sha = commit_folder(repo, root, f"{upstream.name} from archive sha256:{archive.sha256}\n")
    repo.run("update-ref", ref, sha)
    return sha


def commit_folder(repo: Repo, folder: Path, message: str) -> str:
    """Commit a plain folder's files into `repo` deterministically (no work tree of the repo is used)."""
    with tempfile.TemporaryDirectory(prefix="patchq-idx-") as tmp:
        env = {"GIT_INDEX_FILE": os.path.join(tmp, "index"), "GIT_WORK_TREE": str(folder), **ARCHIVE_IDENT}
        run_git(["--git-dir", str(repo.path), "add", "-A", "-f", "."], cwd=folder, env=env)
        tree = run_git(["--git-dir", str(repo.path), "write-tree"], cwd=folder, env=env).out.strip()
        return run_git(["--git-dir", str(repo.path), "commit-tree", tree], cwd=folder, env=env,
                       input=message.encode()).out.strip()


def extract_archive(path: Path, dest: Path) -> Path:
    """Extract a tarball or zip safely (no absolute paths, `..`, links out, devices); returns the single top folder."""
    dest.mkdir(parents=True)
    name = path.name
    if name.endswith((".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar")):
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                _check_member(member.name, path)
                if member.issym() or member.islnk():
                    _check_member(os.path.normpath(os.path.join(os.path.dirname(member.name), member.linkname)), path)
                if member.isdev() or member.size > MAX_ARCHIVE_MEMBER:
                    raise BadInput(f"archive member {member.name!r} is a device or too large", path=str(path))
            tar.extractall(dest, filter="data") if hasattr(tarfile, "data_filter") else tar.extractall(dest)
    elif name.endswith((".zip", ".whl")):
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                _check_member(info.filename, path)
            zf.extractall(dest)
    else:
        raise BadInput("unknown archive type (expected .tar.gz, .tgz, .tar.bz2, .tar.xz or .zip)", path=str(path))
    entries = list(dest.iterdir())
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest


def _check_member(member: str, archive: Path) -> None:
    norm = os.path.normpath(member)
    if member.startswith("/") or norm.startswith("..") or "/../" in f"/{norm}/":
        raise BadInput(f"archive member {member!r} would land outside the extraction folder", path=str(archive))


# ---- checkouts --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Checkout:
    repo: Repo
    created: bool


def prepare_checkout(mirror: Repo, pin: str, dest: Path, *, reuse: bool, force: bool = False) -> Checkout:
    """A work tree at `pin` in `dest`: reuse a clean patchq checkout, else create one (never overwrite others)."""
    mark = dest / ".git" / OWNER_MARK
    if dest.exists() and any(dest.iterdir()):
        if not (reuse and mark.is_file()):
            raise BadInput(f"{dest} exists and is not empty; patchq never overwrites a folder it did not make "
                           "(choose a new --into folder)")
        repo = Repo(dest)
        dirty = repo.status_porcelain()
        if dirty and not force:
            raise BadInput(f"checkout {dest} has uncommitted changes ({', '.join(dirty[:3])}"
                           f"{', ...' if len(dirty) > 3 else ''}); commit or save them, or pass --force to discard")
        repo.run("checkout", "-q", "-f", "--detach", pin)
        repo.run("clean", "-q", "-fdx")
        return Checkout(repo, created=False)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        run_git(["clone", "--quiet", "--shared", "--no-checkout", str(mirror.path), str(tmp / "c")])
        repo = Repo(tmp / "c")
        repo.run("checkout", "-q", "--detach", pin)
        (tmp / "c" / ".git" / OWNER_MARK).write_text(str(mirror.path) + "\n")
        if dest.exists():
            dest.rmdir()
        os.replace(tmp / "c", dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Checkout(Repo(dest), created=True)
