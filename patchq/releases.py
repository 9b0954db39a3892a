"""Release chains: an upstream's release archives imported as one linear history, one commit per release.

Where git hosting is out of reach (a lab that can only reach the package index), the releases stand in for the
upstream's history: each archive becomes a deterministic commit (fixed author, dates, message) whose parent is the
previous release's commit, in version order (`packaging.version`). A pin then names a release — by the commit it was
cut from, or by its chain commit — and `rebase` walks the chain like any first-parent history, so bisection works
at release granularity.

Archives that record the commit they were cut from (vLLM's sdists write `commit_id` into `_version.py`) are checked
against the pin: an archive of another commit is refused rather than silently used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from .errors import BadInput
from .git import Repo
from .model import FULL_SHA, ArchiveSource, Release, Upstream

RELEASE_KEYS = {"version", "sha256", "url", "pypi", "subdir", "commit"}
RECORDED_COMMIT = re.compile(rb"""^\s*(?:__commit_id__\s*=\s*)?commit_id\s*(?::[^=]*)?=\s*['"]g?([0-9a-f]{7,40})['"]""",
                             re.M)
LOCK = "pins.lock"


# ---- reading pins.lock ------------------------------------------------------------------------------------------

def parse_releases(node: Any, name: str, path: Path) -> tuple[Release, ...]:
    """The `releases:` list of an upstream in pins.lock, validated (one line per error, with its line number)."""
    from .workspace import _check_keys, _require_map, _str
    from .yamlio import line_of as _line
    items = node.get("releases") if isinstance(node, dict) else None
    if items is None:
        return ()
    if not isinstance(items, list):
        raise BadInput(f"releases of {name!r} must be a list", path=str(path), line=_line(node, "releases"))
    out: list[Release] = []
    seen: dict[Version, str] = {}
    for number, item in enumerate(items):
        line = _line(items, number) or _line(node, "releases")
        item = _require_map(item, f"release of {name!r}", path, line)
        _check_keys(item, RELEASE_KEYS, f"release of {name!r}", path)
        version = _str(item, "version", path)
        try:
            key = Version(version)
        except InvalidVersion:
            raise BadInput(f"release version {version!r} of {name!r} is not a version (PEP 440)", path=str(path),
                           line=_line(item, "version") or line) from None
        if key in seen:
            raise BadInput(f"release {version} of {name!r} is listed twice ({seen[key]} and {version})",
                           path=str(path), line=line)
        seen[key] = version
        sha = _str(item, "sha256", path)
        if not re.fullmatch(r"[0-9a-f]{64}", sha):
            raise BadInput(f"sha256 of release {version} of {name!r} must be 64 hex digits", path=str(path),
                           line=_line(item, "sha256") or line)
        if not (item.get("url") or item.get("pypi")):
            raise BadInput(f"release {version} of {name!r} needs 'url' (a local file) or 'pypi' (name==version)",
                           path=str(path), line=line)
        commit = _str(item, "commit", path)
        if commit and not FULL_SHA.match(commit):
            raise BadInput(f"commit {commit!r} of release {version} of {name!r} is not a full 40-hex id",
                           path=str(path), line=_line(item, "commit") or line)
        out.append(Release(version, ArchiveSource(sha256=sha, url=_str(item, "url", path) or None,
                                                  pypi=_str(item, "pypi", path) or None,
                                                  subdir=_str(item, "subdir", path) or None), commit))
    return tuple(sorted(out, key=lambda r: Version(r.version)))


def release_to_yaml(release: Release) -> dict[str, str]:
    data = {"version": release.version, "sha256": release.source.sha256}
    for key in ("url", "pypi", "subdir"):
        value = getattr(release.source, key)
        if value:
            data[key] = value
    if release.commit:
        data["commit"] = release.commit
    return data


# ---- the chain --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ChainLink:
    release: Release
    commit: str                   # the release's commit in the chain (parent: the previous release's)

    @property
    def pin(self) -> str:
        """What pins.lock records for this release: the commit it was cut from when known, else its chain commit."""
        return self.release.commit or self.commit


def find_release(upstream: Upstream, text: str) -> Release | None:
    """The release named `text` ("0.21.0", "v0.21.0"), compared as versions."""
    try:
        wanted = Version(text[1:] if text[:1] in "vV" else text)
    except InvalidVersion:
        return None
    return next((r for r in upstream.releases if Version(r.version) == wanted), None)


def _local(source: ArchiveSource, workspace: Path | None) -> ArchiveSource:
    """Relative local archive paths in pins.lock are relative to the workspace."""
    if source.url and "://" not in source.url and workspace is not None and not Path(source.url).is_absolute():
        return dataclasses.replace(source, url=str(workspace / source.url))
    return source


def import_chain(upstream: Upstream, repo: Repo, workspace: Path | None, *, upto: str | None = None
                 ) -> list[ChainLink]:
    """Import the releases (all, or up to the version `upto`) as one linear history; cached under refs.

    Each release's commit depends on its archive and on every release before it (its parent), so the ref that
    caches it is keyed by the digest of the archives so far: the same chain gives the same ids on every machine.
    """
    from .sources import import_archive
    links: list[ChainLink] = []
    parent = ""
    digest = hashlib.sha256()
    for release in upstream.releases:
        digest.update(f"{release.source.sha256} {release.commit} {release.source.subdir or ''}\n".encode())
        ref = f"refs/patchq/chain/{upstream.name}/{digest.hexdigest()[:20]}"
        commit = repo.rev_parse(ref) or ""
        if not commit:
            single = dataclasses.replace(upstream, archive=_local(release.source, workspace), releases=())
            alone = import_archive(single, repo)              # the archive as a parentless commit (cached)
            message = (f"release {release.version} of {upstream.name}\n\narchive sha256:{release.source.sha256}\n\n"
                       f"Patchq-Release: {release.version}\n"
                       + (f"Patchq-Cut-From: {release.commit}\n" if release.commit else ""))
            commit = repo.commit_tree(repo.tree_of(alone), [parent] if parent else [], message,
                                      author="patchq archive <archive@patchq>", date="1970-01-01T00:00:00+0000")
            check_recorded_commit(repo, commit, release.commit, f"release {release.version} of {upstream.name!r}")
            repo.update_ref(ref, commit)
        links.append(ChainLink(release, commit))
        parent = commit
        if upto is not None and Version(release.version) == Version(upto):
            break
    return links


def release_base(upstream: Upstream, repo: Repo, pin: str, workspace: Path | None) -> tuple[str, str] | None:
    """The chain commit standing in for `pin` (a release's cut-from commit or its chain commit), and a note; None
    when the pin is no release of the chain."""
    for link in import_chain(upstream, repo, workspace):
        if pin in (link.release.commit, link.commit):
            return link.commit, (f"{upstream.url} is out of reach: using release {link.release.version} "
                                 f"(sha256 {link.release.source.sha256[:12]}) as commit {link.commit[:12]} for pin "
                                 f"{pin[:12]}")
    return None


def not_a_release(upstream: Upstream, pin: str) -> BadInput:
    known = ", ".join(r.version for r in upstream.releases)
    return BadInput(f"pin {pin[:12]} of {upstream.name!r} is no release of its chain ({known}) and {upstream.url} is "
                    f"out of reach; pin a release with 'patchq pin {upstream.name}@VERSION' (a release added or "
                    "removed before it changes the chain's ids)", path=LOCK)


# ---- the recorded commit ----------------------------------------------------------------------------------------

def recorded_commit(repo: Repo, commit: str) -> tuple[str, str] | None:
    """(path, abbreviated id) of the commit an archive says it was cut from (`_version.py`'s commit_id)."""
    candidates = [p for p in repo.ls_tree_paths(commit) if p.endswith("_version.py") and p.count("/") <= 2]
    for path, data in repo.read_blobs([f"{commit}:{p}" for p in sorted(candidates)]).items():
        m = RECORDED_COMMIT.search(data or b"")
        if m:
            return path.partition(":")[2], m.group(1).decode()
    return None


def check_recorded_commit(repo: Repo, commit: str, pin: str, what: str) -> None:
    """Refuse an archive whose recorded commit is not the pin (a stale archive for another release)."""
    if not pin:
        return
    found = recorded_commit(repo, commit)
    if found and not pin.startswith(found[1]):
        raise BadInput(f"{what} was cut from commit {found[1]} ({found[0]}), but the pin is {pin[:12]}: the archive "
                       "is stale or for another release; update its url/sha256 or the pin", path=LOCK)


# ---- the package index ------------------------------------------------------------------------------------------

def project_name(upstream: Upstream) -> str:
    """The package index project: from an existing `pypi:` requirement, else the upstream's name."""
    for source in [upstream.archive, *(r.source for r in upstream.releases)]:
        if source is not None and source.pypi:
            return re.sub(r"[-_.]+", "-", source.pypi.partition("==")[0].strip()).lower()
    return upstream.name


def release_from_index(upstream: Upstream, version: str) -> Release:
    """Look `version` up on the package index: its sdist and sha256 (downloaded and verified when imported)."""
    from .sources import index_sdists
    project = project_name(upstream)
    index, _, sdists = index_sdists(project, version)
    chosen = next((f for f in sdists if f.get("hashes", {}).get("sha256")), None)
    if chosen is None:
        raise BadInput(f"{upstream.name}@{version}: {index} lists no sdist of {project} {version} with a sha256")
    return Release(version, ArchiveSource(sha256=chosen["hashes"]["sha256"], pypi=f"{project}=={version}"))


def with_release(upstream: Upstream, release: Release) -> Upstream:
    """The upstream with one more release in its chain (version order kept)."""
    items = sorted([*upstream.releases, release], key=lambda r: Version(r.version))
    return dataclasses.replace(upstream, releases=tuple(items))


@dataclass(frozen=True)
class ReleaseTarget:
    """A release a command moves to: the commit to use, what pins.lock records, and a release list to write."""

    link: ChainLink
    upstream: Upstream            # with the release added when it came from the index
    added: bool


def resolve_release(upstream: Upstream, repo: Repo, ref: str, workspace: Path | None) -> ReleaseTarget | None:
    """A release named by version (from the chain, else looked up on the package index) or `latest`."""
    release: Release | None
    if ref == "latest" and upstream.releases:
        release = upstream.releases[-1]
    else:
        release = find_release(upstream, ref)
    added = False
    if release is None:
        try:
            Version(ref[1:] if ref[:1] in "vV" else ref)
        except InvalidVersion:
            return None
        release = release_from_index(upstream, ref[1:] if ref[:1] in "vV" else ref)
        upstream = with_release(upstream, release)
        added = True
    links = import_chain(upstream, repo, workspace, upto=release.version)
    return ReleaseTarget(links[-1], upstream, added)


def releases_yaml(upstream: Upstream) -> list[dict[str, str]]:
    return [release_to_yaml(r) for r in upstream.releases]


def commit_in_mirror(repo: Repo, upstream: Upstream, ref: str) -> str:
    """REF resolved in a mirror git hosting filled; a release version also works when its archive records a commit
    the mirror has. `pin` and `rebase` both move this way."""
    from .sources import resolve_ref
    try:
        return resolve_ref(repo, upstream, ref)
    except BadInput:
        release = find_release(upstream, ref)
        if release is None or not release.commit or not repo.has_commit(release.commit):
            raise
        return release.commit


def offline_target(upstream: Upstream, repo: Repo, ref: str, workspace: Path) -> ReleaseTarget | str:
    """Where REF points with git hosting out of reach: a release (from the chain, the package index, or `latest`),
    else a full commit id the mirror already holds (returned as it is); anything else is refused."""
    target = resolve_release(upstream, repo, ref, workspace)
    if target is not None:
        return target
    if FULL_SHA.match(ref) and repo.has_commit(ref):
        return ref
    known = ", ".join(r.version for r in upstream.releases) or "none yet"
    raise BadInput(f"{ref!r} is not a release of {upstream.name!r} and {upstream.url} is out of reach: name a "
                   f"release version (known: {known}; others are looked up on the package index)")


def pin_target(upstream: Upstream, ref: str, workspace: Path) -> tuple[str, str, list[dict[str, str]] | None]:
    """What `patchq pin UPSTREAM@REF` records: (full commit, a label, the release list to write or None).

    With git hosting in reach, REF is resolved in the mirror (a release version with a recorded commit also works).
    Out of reach, REF names a release: from the chain, or looked up on the package index, downloaded, verified
    by sha256 and added to the chain; the pin is the commit it was cut from, else its chain commit.
    """
    from .sources import ensure_mirror, hosting_reachable
    if hosting_reachable(upstream, workspace):
        mirror = ensure_mirror(upstream, workspace=workspace, refresh=True)
        sha = commit_in_mirror(mirror, upstream, ref)
        return sha, mirror.subject(sha), None
    mirror = ensure_mirror(upstream, workspace=workspace)
    target = offline_target(upstream, mirror, ref, workspace)
    if isinstance(target, str):
        return target, mirror.subject(target), None
    label = f"release {target.link.release.version} (chain commit {target.link.commit[:12]}" + (
        ", found on the package index and verified" if target.added else "") + ")"
    return target.link.pin, label, releases_yaml(target.upstream) if target.added else None
