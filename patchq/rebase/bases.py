"""Where a rebase starts and where it goes: the same base resolution as `apply`, releases as targets.

The old base is what `apply` would use for the pin (`sources.ensure_base`: the pin in the mirror, or the archive
or release commit standing in for it when git hosting is out of reach). The new base is a commit of the mirror, or
a release of the upstream's release chain (`releases.py`) — named by version or `latest` — which is also how a
queue moves when only the package index can be reached.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BadInput
from ..git import Repo
from ..model import FULL_SHA, Upstream
from ..releases import commit_in_mirror, import_chain, offline_target, releases_yaml
from ..sources import ensure_base, ensure_mirror, hosting_reachable


@dataclass
class Bases:
    repo: Repo
    old_base: str                 # the commit the queue is applied to now (the pin, or its stand-in)
    new_base: str                 # the commit it moves to
    new_pin: str                  # what pins.lock records afterwards
    granularity: str = "commit"   # commit | release: one step of the breaking-commit search
    releases: list[dict[str, str]] | None = None     # a release list to write (a release found on the index)
    notes: list[str] = field(default_factory=list)


def resolve_bases(upstream: Upstream, old_pin: str, ref: str, root: Path) -> Bases:
    if hosting_reachable(upstream, root):
        repo = ensure_mirror(upstream, workspace=root, need=(old_pin,))
        if not (FULL_SHA.match(ref) and repo.has_commit(ref)):
            repo = ensure_mirror(upstream, workspace=root, need=(old_pin,), refresh=True)
        new = commit_in_mirror(repo, upstream, ref)
        return Bases(repo, old_pin, new, new)
    base = ensure_base(upstream, old_pin, workspace=root)
    repo, old_base = base.repo, base.commit
    notes = [base.note] if base.note else []
    target = offline_target(upstream, repo, ref, root)
    if isinstance(target, str):
        return Bases(repo, old_base, target, target, notes=notes)
    chain = import_chain(target.upstream, repo, root)
    commits = {link.commit for link in chain}
    if old_base not in commits:
        # the old pin's stand-in is a single `archive:` import: the release with the same tree is the same code
        tree = repo.tree_of(old_base)
        same = next((link for link in chain if repo.tree_of(link.commit) == tree), None)
        if same is None:
            raise BadInput(f"the current base of {upstream.name!r} ({old_base[:12]}) is not a release of its chain, "
                           "so the two share no history; add the release the pin is cut from to 'releases:'",
                           path="pins.lock")
        notes.append(f"the archive for pin {old_pin[:12]} is release {same.release.version} of the chain")
        old_base = same.commit
    notes.append(f"release-level: the breaking-commit search steps from release to release of {upstream.name} "
                 f"(git hosting is out of reach, the releases stand in for its history)")
    if target.added:
        notes.append(f"release {target.link.release.version} was found on the package index (sha256 "
                     f"{target.link.release.source.sha256[:12]}) and is added to pins.lock")
    return Bases(repo, old_base, target.link.commit, target.link.pin, "release",
                 releases_yaml(target.upstream) if target.added else None, notes)
