"""Upstream sources: cached bare mirrors, release archives turned into commits, and cheap clean checkouts.

Mirrors live in a per-user cache (`$PATCHQ_CACHE`, else the platform's cache folder through platformdirs, which
honours `XDG_CACHE_HOME`: `~/.cache/patchq` on Linux) and are fetched once, then only when a pin is missing. A pin
the mirror holds needs no network at all; a missing one is fetched by its commit id alone, and an upstream with an
archive falls back to the archive when even that fails. Checkouts share the mirror's objects (`clone --shared`), and
a checkout patchq made before is reset and cleaned rather than cloned again — unless someone edited it, in which
case patchq refuses to touch it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import progress
from .crashtest import file_operation
from .errors import BadInput, EnvironmentFailure
from .git import GitError, Pending, Repo, clone_mirror, clone_shared, objects_dir, remote_reachable
from .machine import usable_cores
from .model import FULL_SHA, Upstream
from .treecheck import check_tree
from .txn import atomic_write, publish
from .workspace import check_archive_subdir

OWNER_MARK = "patchq-checkout"   # file inside a checkout's .git naming the mirror it came from
MOVING_MARK = "patchq-moving"      # present inside a checkout's .git only while patchq moves it to a new result
ARCHIVE_IDENT = {"GIT_AUTHOR_NAME": "patchq archive", "GIT_AUTHOR_EMAIL": "archive@patchq",
                 "GIT_COMMITTER_NAME": "patchq archive", "GIT_COMMITTER_EMAIL": "archive@patchq",
                 "GIT_AUTHOR_DATE": "1970-01-01T00:00:00+0000", "GIT_COMMITTER_DATE": "1970-01-01T00:00:00+0000"}
MAX_ARCHIVE_MEMBER = 512 * 1024 * 1024
DEFAULT_INDEX = "https://pypi.org/simple"


def cache_root() -> Path:
    """`$PATCHQ_CACHE` when set; else the user cache folder of this platform (platformdirs: XDG_CACHE_HOME, by default
    `~/.cache/patchq`, on Linux). An empty HOME is refused (it would put the cache at `/.cache`)."""
    env = os.environ.get("PATCHQ_CACHE", "").strip()
    if env:
        return Path(env).expanduser().absolute()
    if not os.environ.get("XDG_CACHE_HOME", "").strip() and "HOME" in os.environ and not os.environ["HOME"].strip():
        raise EnvironmentFailure("HOME is empty and PATCHQ_CACHE is not set: there is no place for the cache",
                                 hint="set HOME, or PATCHQ_CACHE to a folder for patchq's mirrors and builds")
    import platformdirs
    return Path(platformdirs.user_cache_dir("patchq", appauthor=False))


def mirror_path(upstream: Upstream, workspace: Path | None = None) -> Path:
    """The cache folder of an upstream's mirror, keyed by the url as resolved (a local path made absolute), so two
    workspaces that both say `url: upstreams/up.git` never share a mirror of two different repositories."""
    url = _resolve_url(upstream.url, workspace)
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    return cache_root() / "mirrors" / f"{upstream.name}-{digest}.git"


def _resolve_url(url: str, workspace: Path | None) -> str:
    """Relative local paths in pins.lock are relative to the workspace; local paths are made absolute."""
    if "://" in url or url.startswith(("git@", "file:")):
        return url
    path = Path(url).expanduser()
    if not path.is_absolute():
        path = (workspace if workspace is not None else Path.cwd()) / path
    return os.path.normpath(str(path.absolute()))


def workspace_ref(workspace: Path, *parts: str) -> str:
    """A ref in a shared mirror that belongs to one workspace: two workspaces with a stack of the same name must
    not move each other's refs (a gc would then drop the commits the other's checkouts stand on)."""
    key = hashlib.sha256(str(workspace.resolve()).encode()).hexdigest()[:12]
    return "/".join(("refs/patchq/ws", key, *parts))


@dataclass(frozen=True)
class Base:
    """The commit a queue is applied to: the pin itself, or the archive's commit standing in for it."""

    repo: Repo
    commit: str
    pin: str
    note: str = ""


def ensure_base(upstream: Upstream, pin: str, *, workspace: Path | None = None) -> Base:
    """The mirror and the commit to apply on for `pin`.

    When git hosting cannot be reached and the upstream has an archive source (a release sdist), the archive's
    deterministic commit stands in for the pin, and the returned note says so.
    """
    if upstream.archive is None and not upstream.releases:
        return Base(ensure_mirror(upstream, workspace=workspace, need=(pin,)), pin, pin)
    url = _resolve_url(upstream.url, workspace)
    path = mirror_path(upstream)
    if (path / "HEAD").exists():
        repo = Repo(path)
        if repo.has_commit(pin):
            return Base(repo, pin, pin)          # the common case: no network at all
    else:
        repo = _empty_mirror(path)               # filled by the pin's own history, or by a release or the archive
    if _fetch_commits(upstream, url, repo, (pin,)) and repo.has_commit(pin):
        return Base(repo, pin, pin)
    try:
        _fetch(upstream, url, repo)              # a host that refuses fetches by id: the branches, if it answers
    except EnvironmentFailure:
        pass
    if repo.has_commit(pin):
        return Base(repo, pin, pin)
    if upstream.releases:
        from .releases import not_a_release, release_base
        found = release_base(upstream, repo, pin, workspace)
        if found:
            return Base(repo, found[0], pin, found[1])
        if upstream.archive is None:
            raise not_a_release(upstream, pin)
    archive = upstream.archive
    assert archive is not None      # no archive and no releases returned above; releases and no archive raised
    commit = import_archive(upstream, repo, workspace=workspace)
    from .releases import check_recorded_commit
    check_recorded_commit(repo, commit, pin, f"archive of {upstream.name!r} (sha256 {archive.sha256[:12]})")
    source = archive.pypi or archive.url
    return Base(repo, commit, pin, f"{upstream.url} is out of reach: using {source} (sha256 "
                                   f"{archive.sha256[:12]}) as commit {commit[:12]} for pin {pin[:12]}")


def ensure_mirror(upstream: Upstream, *, workspace: Path | None = None, need: tuple[str, ...] = (),
                  refresh: bool = False) -> Repo:
    """The cached bare mirror of `upstream`, holding every commit in `need` (fetched when missing)."""
    path = mirror_path(upstream, workspace)
    url = _resolve_url(upstream.url, workspace)
    if not (path / "HEAD").exists():
        _clone_mirror(upstream, url, path)
    repo = Repo(path)
    missing = [sha for sha in need if not repo.has_commit(sha)]
    if missing and not refresh:
        _fetch_commits(upstream, url, repo, tuple(missing))   # just those commits first: cheaper than a listing
        missing = [sha for sha in missing if not repo.has_commit(sha)]
    if refresh or missing:
        _fetch(upstream, url, repo)
        still = [sha for sha in missing if not repo.has_commit(sha)]
        if still:
            raise BadInput(f"commit {still[0][:12]} of upstream {upstream.name!r} is not in {url} "
                           "(was it force-pushed away, or is the pin a typo?)", path="pins.lock")
    return repo


def _empty_mirror(path: Path) -> Repo:
    """A bare mirror with no commits yet (an archive upstream's: the pin is fetched into it, or the archive)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        Repo.init(tmp / "m.git", bare=True)
        if not publish(tmp / "m.git", path, durable=False) and not (path / "HEAD").exists():
            raise EnvironmentFailure(f"cannot make the mirror: {path} is in the way")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Repo(path)


def _clone_mirror(upstream: Upstream, url: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        if (upstream.archive is not None or upstream.releases) and not _url_reachable(url):
            Repo.init(tmp / "m.git", bare=True)      # archive-only upstream: an empty mirror to import into
        else:
            try:
                with progress.current().step(f"cloning {upstream.name} from {url}"):
                    clone_mirror(url, tmp / "m.git", stderr_to=progress.current().git_stderr())
            except GitError as exc:
                raise EnvironmentFailure(f"cannot fetch upstream {upstream.name!r} from {url}: "
                                         f"{_git_cause(exc.stderr) or exc}",
                                         hint="check the url in pins.lock, or give the upstream an archive source"
                                         ) from None
        if not publish(tmp / "m.git", path, durable=False) and not (path / "HEAD").exists():
            raise EnvironmentFailure(f"cannot make the mirror: {path} is in the way")
        # (False with a HEAD there: another patchq process made the same mirror meanwhile; use its copy, drop ours)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _url_reachable(url: str) -> bool:
    if "://" not in url and not url.startswith("git@"):
        return Path(url.removeprefix("file:")).exists()
    return remote_reachable(url)


def hosting_reachable(upstream: Upstream, workspace: Path | None) -> bool:
    """Whether the upstream's git URL answers (a local path exists, or `git ls-remote` succeeds)."""
    return _url_reachable(_resolve_url(upstream.url, workspace))


def _fetch_commits(upstream: Upstream, url: str, repo: Repo, commits: tuple[str, ...]) -> bool:
    """Fetch exactly these commits (and their history) by id: no branch listing. False when it did not work."""
    if "://" not in url and not url.startswith("git@") and not Path(url.removeprefix("file:")).exists():
        return False                              # a local path that is not there: nothing to ask
    with progress.current().step(f"fetching {', '.join(c[:12] for c in commits)} of {upstream.name} from {url}"):
        return repo.fetch_commits(url, commits, stderr_to=progress.current().git_stderr())


def _fetch(upstream: Upstream, url: str, repo: Repo) -> None:
    if (upstream.archive is not None or upstream.releases) and not _url_reachable(url):
        return
    with progress.current().step(f"fetching {upstream.name} from {url}"):
        res = repo.fetch_mirror(url, stderr_to=progress.current().git_stderr())
    if not res.ok:
        raise EnvironmentFailure(f"cannot fetch upstream {upstream.name!r} from {url}: "
                                 f"{_git_cause(res.stderr) or 'no message'}")


def _git_cause(stderr: str) -> str:
    """The line of a failed fetch that says why: git's first `fatal:`/`error:` line, not its closing advice
    ("Please make sure you have the correct access rights and the repository exists.")."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for line in lines:
        if line.startswith(("fatal: ", "error: ")):
            return line.split(": ", 1)[1]
    return lines[0] if lines else ""


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

def archive_file(upstream: Upstream, *, workspace: Path | None = None) -> Path:
    """The archive downloaded (once) into the cache and verified by sha256; a relative local `url` is relative to
    the workspace, like the upstream's own url."""
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
            _download_sdist(archive.pypi, archive.sha256, tmp)
        elif archive.url and "://" not in archive.url:
            src = Path(_resolve_url(archive.url, workspace))
            if not src.exists():
                raise BadInput(f"archive {archive.url} of upstream {upstream.name!r} does not exist", path="pins.lock")
            if not src.is_file():
                raise BadInput(f"archive {archive.url} of upstream {upstream.name!r} is not a regular file",
                               path="pins.lock")
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
        if not publish(files[0], final) and _sha256(final) != archive.sha256:
            raise EnvironmentFailure(f"archive of {upstream.name!r}: {final} is in the way")
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _download_sdist(requirement: str, sha256: str, dest: Path) -> None:
    """Fetch the sdist of `name==version` whose sha256 is the pinned one, from the package index.

    `pip download` cannot be used: it runs the sdist's build backend to read its metadata (vLLM's setup.py imports
    torch), which fails, and would execute code before the archive is verified. The index's JSON listing (PEP 691)
    names every file with its sha256, so the pinned file is picked by hash and nothing from it runs.
    """
    import urllib.parse
    import urllib.request
    index, listing_url, sdists = _sdists(requirement)
    chosen = next((f for f in sdists if f.get("hashes", {}).get("sha256") == sha256), None)
    if chosen is None:
        found = ", ".join(f"{f['filename']} sha256 {f.get('hashes', {}).get('sha256', '?')}" for f in sdists)
        raise BadInput(f"no sdist of {requirement} on {index} has sha256 {sha256}"
                       + (f" (the index has: {found})" if found else " (the index lists no sdist of that version)"),
                       path="pins.lock")
    url = urllib.parse.urljoin(listing_url, chosen["url"])
    target = dest / Path(urllib.parse.urlparse(url).path).name
    try:
        with urllib.request.urlopen(url, timeout=120) as response, open(target, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or chosen.get("size") or None
            with progress.current().transfer(f"downloading {target.name}", total) as bar:
                for block in iter(lambda: response.read(1 << 16), b""):
                    out.write(block)
                    bar.advance(len(block))
    except OSError as exc:
        raise EnvironmentFailure(f"cannot download {url}: {exc}") from None


def _sdists(requirement: str) -> tuple[str, str, list[dict[str, Any]]]:
    """(index, listing URL, the sdist files of `name==version`) from the package index's JSON listing."""
    name, sep, version = requirement.partition("==")
    if not sep or not name.strip() or not version.strip():
        raise BadInput(f"archive pypi {requirement!r} must be 'name==version'", path="pins.lock")
    project = re.sub(r"[-_.]+", "-", name.strip()).lower()
    index = (os.environ.get("PATCHQ_INDEX_URL") or os.environ.get("PIP_INDEX_URL") or DEFAULT_INDEX).rstrip("/")
    listing_url = f"{index}/{project}/"
    import urllib.request
    request = urllib.request.Request(listing_url, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            listing = json.load(response)
    except (OSError, ValueError) as exc:
        raise EnvironmentFailure(f"cannot read the package index at {listing_url}: {exc}") from None
    return index, listing_url, [f for f in listing.get("files", [])
                                if _is_sdist_of(f.get("filename", ""), project, version.strip())]


def index_sdists(project: str, version: str) -> tuple[str, str, list[dict[str, Any]]]:
    """The package index's sdist files of one version: (index, listing url, files) (release chains use it)."""
    return _sdists(f"{project}=={version}")


def pypi_sdist_sha256(requirement: str) -> str:
    """The sha256 of the one sdist of `name==version` the package index lists (for 'patchq upstream add --pypi')."""
    index, _, sdists = _sdists(requirement)
    hashes: list[str] = sorted({f.get("hashes", {}).get("sha256", "") for f in sdists} - {""})
    if len(hashes) != 1:
        raise BadInput(f"{index} lists {len(hashes)} sdists of {requirement} with a sha256; say which with --sha256")
    return hashes[0]


def _is_sdist_of(filename: str, project: str, version: str) -> bool:
    for ext in (".tar.gz", ".zip"):
        if filename.endswith(ext):
            dist, _, found = filename[: -len(ext)].rpartition("-")
            return found == version and re.sub(r"[-_.]+", "-", dist).lower() == project
    return False


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def import_archive(upstream: Upstream, repo: Repo, *, workspace: Path | None = None) -> str:
    """Turn the archive into one commit with fixed author, dates and message: the same archive, the same id.

    The commit's symlinks are judged against the folder that becomes the tree root (after `subdir`), not against
    the extraction folder: `pkg-1.0/lnk -> ..` stays inside the latter but leaves the former.
    """
    archive = upstream.archive
    assert archive is not None
    ref = f"refs/patchq/archive/{archive.sha256[:16]}"
    existing = repo.rev_parse(ref)
    if existing:
        return existing
    path = archive_file(upstream, workspace=workspace)
    if archive.subdir:
        check_archive_subdir(archive.subdir, upstream.name)
    # streamed into fast-import packs (no extraction, no loose objects); the same tree `commit_folder` records
    importing = f"refs/patchq/importing/{os.getpid()}"
    try:
        from .archive_import import commit_archive  # tarfile, zipfile, lzma: only for archive upstreams
        sha = commit_archive(repo, path, f"{upstream.name} from archive sha256:{archive.sha256}\n",
                             subdir=archive.subdir, name=upstream.name, ref=importing)
    finally:
        repo.delete_ref(importing)
    check_tree(repo, sha, source=str(path), what=f"the archive of {upstream.name!r}")
    repo.update_ref(ref, sha)
    return sha


def commit_folder(repo: Repo, folder: Path, message: str) -> str:
    """Commit a plain folder's files into `repo` deterministically (no work tree of the repo is used)."""
    return repo.commit_folder(folder, message, ARCHIVE_IDENT)


def extract_archive(path: Path, dest: Path) -> Path:
    """Extract a tarball or zip safely (no absolute paths, `..`, links out, devices); returns the single top folder."""
    import lzma
    import tarfile
    import zipfile
    import zlib
    dest.mkdir(parents=True)
    try:
        with progress.current().step(f"extracting {path.name}"):
            _extract_members(path, dest)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError, NotImplementedError) as exc:
        raise BadInput(f"corrupt or unreadable archive: {exc}".splitlines()[0], path=str(path)) from None
    entries = list(dest.iterdir())
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest


def _extract_members(path: Path, dest: Path) -> None:
    import tarfile
    import zipfile
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
                if info.file_size > MAX_ARCHIVE_MEMBER:
                    raise BadInput(f"archive member {info.filename!r} is too large", path=str(path))
            zf.extractall(dest)
    else:
        raise BadInput("unknown archive type (expected .tar.gz, .tgz, .tar.bz2, .tar.xz or .zip)", path=str(path))


def _check_member(member: str, archive: Path) -> None:
    norm = os.path.normpath(member)
    if member.startswith("/") or norm.startswith("..") or "/../" in f"/{norm}/":
        raise BadInput(f"archive member {member!r} would land outside the extraction folder", path=str(archive))


# ---- checkouts whose mirror moved ---------------------------------------------------------------------------

def follow_mirror(dest: Path, mirror: Repo) -> str:
    """Point a patchq checkout at the mirror it should now share objects with: "same" (nothing to do), "moved"
    (repointed: git processes started before read the old one) or "lost" (its commit is in no mirror now).

    Checkouts borrow the mirror's objects (`clone --shared`). When the mirror moves — PATCHQ_CACHE changed, the
    cache was cleared — the checkout is repointed at the current mirror, keeping the old one second while it
    exists. patchq's commits are deterministic, so the new mirror usually holds the checkout's commit again.
    """
    git_dir = dest / ".git"
    mark = git_dir / OWNER_MARK
    recorded = mark.read_text(errors="replace").strip()
    moved = recorded != str(mirror.path)
    if moved:
        objects = [str(objects_dir(mirror.path))]
        old = Path(recorded) / "objects"
        if recorded and old.is_dir():
            objects.append(str(old))
        alternates = git_dir / "objects" / "info" / "alternates"
        alternates.parent.mkdir(parents=True, exist_ok=True)
        # not fsynced: git does not fsync the checkout it sits beside either (core.fsync is off by default)
        atomic_write(alternates, ("\n".join(objects) + "\n").encode(), durable=False)
        atomic_write(mark, (str(mirror.path) + "\n").encode(), durable=False)
    repo = Repo(dest)
    head = repo.rev_parse("HEAD")
    if head is None or not repo.has_tree(head):
        return "lost"
    return "moved" if moved else "same"


LOST_MIRROR = ("stood on a mirror that is gone (was PATCHQ_CACHE changed?) and its commit is not in the new one, so "
               "its changes cannot be told; pass --force to make it anew")


# ---- interrupted moves ----------------------------------------------------------------------------------------

def _marker_commits(moving: Path) -> list[str]:
    """The commits a move marker names (the checkout's commit before the move and the one it moved to)."""
    out = []
    for line in moving.read_text(errors="replace").splitlines()[1:]:
        word, _, sha = line.partition(" ")
        if word in ("from", "to") and FULL_SHA.match(sha.strip()):
            out.append(sha.strip())
    return out


def _check_interrupted_move(repo: Repo, moving: Path) -> None:
    """After a kill during a move, every file must be as one of the two commits has it (or on its way there).

    The marker is no licence to discard: edits made in the checkout since the kill match neither commit, and the
    next apply refuses them as it refuses any uncommitted change. Files git was writing when it died — missing, or
    holding the first bytes of the version it was writing — are patchq's own and are finished.
    """
    commits = [c for c in _marker_commits(moving) if repo.has_commit(c)] or [c for c in [repo.head()] if c]
    if not commits:
        raise BadInput(f"checkout {repo.path} was left half-moved by a killed run and its marker names no commit; "
                       "pass --force to discard it")
    differs: list[set[str]] = []
    with tempfile.TemporaryDirectory(prefix="patchq-moved-") as tmp:
        env = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
        index = repo.path / ".git" / "index"
        if index.is_file():
            shutil.copyfile(index, env["GIT_INDEX_FILE"])     # its stat data spares hashing unchanged files
        else:
            repo.read_tree(commits[0], env)
        repo.add_all(env)
        current = dict(repo.index_blobs(env))
        for commit in commits:
            differs.append(set(repo.index_changed_paths(commit, env)))
    suspect = set.intersection(*differs) if differs else set()
    edited = [p for p in sorted(suspect) if not _in_transit(repo, commits[-1], p, current.get(p))]
    if edited:
        raise BadInput(f"checkout {repo.path} was left half-moved by a killed run, and {', '.join(edited[:3])}"
                       f"{', ...' if len(edited) > 3 else ''} match neither the commit it left nor the one it was "
                       "moving to (edited since?); save them, or pass --force to discard")


def _in_transit(repo: Repo, target: str, path: str, blob: str | None) -> bool:
    """A file git was writing when killed: missing, or a prefix of the version it was moving to."""
    if blob is None:
        return True
    want = repo.read_blob(target, path)
    have = repo.read_blobs([blob]).get(blob)
    return want is not None and have is not None and want.startswith(have)


# ---- checkouts --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Checkout:
    repo: Repo
    created: bool


def checkout_workers() -> int:
    """Processes for git's parallel checkout of a fresh work tree: the cores this process may use, at most 8."""
    return max(1, min(8, usable_cores()))


def start_dirty_check(dest: Path) -> Pending | None:
    """Start `git status` of a reusable patchq checkout early, so it runs while the queue is judged elsewhere."""
    mark = dest / ".git" / OWNER_MARK
    if mark.is_file() and not (dest / ".git" / MOVING_MARK).exists():
        mirror = Path(mark.read_text(errors="replace").strip())
        if (mirror / "HEAD").is_file():          # else the mirror moved: prepare_checkout repoints it first
            return Repo(dest).start_status()
    return None


def prepare_checkout(mirror: Repo, commit: str, dest: Path, *, reuse: bool, force: bool = False,
                     branch: str | None = None, dirty: Pending | None = None,
                     changed: list[str] | None = None) -> Checkout:
    """A work tree at `commit` (on `branch` when given) in `dest`.

    A clean checkout patchq made before is moved in place — one `git checkout`, which rewrites only the files that
    differ. Anything else is created fresh beside `dest` and renamed into place; a folder patchq did not make, or
    one with uncommitted changes, is never overwritten.
    """
    mark = dest / ".git" / OWNER_MARK
    if reuse and dest.parent.is_dir():   # patchq's own folder: half-made checkouts of killed runs go (lock is held)
        for stale in dest.parent.glob(f".{dest.name}.*"):
            shutil.rmtree(stale, ignore_errors=True)
    if dest.exists() and any(dest.iterdir()) and reuse and mark.is_file() and follow_mirror(dest, mirror) == "lost":
        if not force:
            raise BadInput(f"checkout {dest} {LOST_MIRROR}")
        if dirty is not None:
            dirty.cancel()
            dirty = None
        shutil.rmtree(dest)                      # --force: the user gave up its uncommitted changes
    if dest.exists() and any(dest.iterdir()):
        if not (reuse and mark.is_file()):
            raise BadInput(f"{dest} exists and is not empty; patchq never overwrites a folder it did not make "
                           "(choose a new --into folder)")
        repo = Repo(dest)
        moving = dest / ".git" / MOVING_MARK
        interrupted = moving.is_file()      # a run died while moving it between the two commits its marker names
        if interrupted:
            for stale in (dest / ".git").rglob("*.lock"):
                stale.unlink(missing_ok=True)
            if not force:
                _check_interrupted_move(repo, moving)
        # Ignored files (build outputs) are kept: they are not the user's edits, and they let builds be incremental.
        if changed is not None and not interrupted:      # already looked at by the caller
            if dirty is not None:
                dirty.cancel()
        elif dirty is not None and not interrupted:
            changed = Repo.parse_status(dirty.result().out)     # started before the queue was judged
        else:
            if dirty is not None:
                dirty.cancel()
            changed = repo.status_porcelain()
        if changed and not force and not interrupted:
            raise BadInput(f"checkout {dest} has uncommitted changes ({', '.join(changed[:3])}"
                           f"{', ...' if len(changed) > 3 else ''}); "
                           "record them with 'patchq refresh' or 'patchq new ID', "
                           "or pass --force to set them aside and regenerate")
        if not interrupted:     # a recovery keeps the first marker: the tree is still between those two commits
            old_head = repo.head() or ""
            atomic_write(moving, f"{os.getpid()}\nfrom {old_head}\nto {repo.rev_parse(commit) or commit}\n".encode(),
                         durable=False)       # as durable as the git checkout it guards (git does not fsync it)
        file_operation()
        repo.checkout(commit, branch=branch, force=True)
        file_operation()
        if changed:
            repo.clean()
            file_operation()
        moving.unlink()
        return Checkout(repo, created=False)
    if dirty is not None:
        dirty.cancel()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        repo = clone_shared(mirror.path, tmp / "c")
        file_operation()
        repo.config("core.untrackedCache", "true")
        # a fresh checkout writes every file: git's parallel checkout spreads that over the cores (one-time setting,
        # not stored in the checkout's config)
        repo.checkout(commit, branch=branch, workers=checkout_workers())
        file_operation()
        (tmp / "c" / ".git" / OWNER_MARK).write_text(str(mirror.path) + "\n")
        if dest.exists():
            dest.rmdir()
        if not publish(tmp / "c", dest, durable=False):
            raise EnvironmentFailure(f"cannot make the checkout: {dest} appeared meanwhile")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Checkout(Repo(dest), created=True)
