"""Symlinks in a result tree must stay inside it, however they got there.

A diff can create a symlink in many ways — a `+` line, a `GIT binary patch` with mode 120000, a rename or copy that
moves an allowed relative link to a shallower folder, a mode change — and a release archive can hold links too.
Checking each way in the diff text misses the next one, so this module checks the *result*: every symlink that the
result tree has and the base tree did not have (same path, same target) is resolved from its own folder, following
the other symlinks of the result tree the way the kernel would, and must end inside the tree.

Links the base already had are the upstream's own (a checkout of the pin has them anyway) and are not judged; a new
link that passes through one of them is judged with it.
"""

from __future__ import annotations

from collections import deque

from .errors import BadInput
from .git import Repo

LINK_MODE = "120000"
MAX_HOPS = 40                # the kernel's own limit on symlinks followed while resolving one path


def resolve_inside(link: str, links: dict[str, str]) -> str | None:
    """Why the symlink at `link` leaves the tree (or loops), or None when its target resolves inside.

    `links` maps every symlink of the tree to its target. Components that are not symlinks are taken as folders:
    if one is a file the kernel fails the lookup, which reads nothing outside.
    """
    target = links[link]
    if target.startswith("/"):
        return f"its target {target!r} is absolute"
    resolved: list[str] = link.split("/")[:-1]
    pending = deque(target.split("/"))
    hops = 0
    while pending:
        part = pending.popleft()
        if part in ("", "."):
            continue
        if part == "..":
            if not resolved:
                return f"its target {target!r} climbs out of the tree"
            resolved.pop()
            continue
        resolved.append(part)
        here = "/".join(resolved)
        if here in links:
            hops += 1
            if hops > MAX_HOPS:
                return f"its target {target!r} goes through more than {MAX_HOPS} symlinks"
            inner = links[here]
            if inner.startswith("/"):
                return f"its target {target!r} passes through {here!r}, a symlink to the absolute {inner!r}"
            resolved.pop()
            pending.extendleft(reversed(inner.split("/")))
    return None


def tree_links(repo: Repo, rev: str | None) -> dict[str, str]:
    """Every symlink of a tree (path -> target), read in two git processes; {} for no tree."""
    if rev is None:
        return {}
    blobs = {path: sha for mode, sha, path in repo.ls_tree_entries(rev) if mode == LINK_MODE}
    return _targets(repo, blobs)


def _targets(repo: Repo, blobs: dict[str, str]) -> dict[str, str]:
    data = repo.read_blobs(list(dict.fromkeys(blobs.values())))
    out = {}
    for path, sha in blobs.items():
        raw = data.get(sha)
        out[path] = (raw or b"").decode("utf-8", "surrogateescape")
    return out


def escaping_link(repo: Repo, base: str | None, changed: dict[str, tuple[str, str]]) -> tuple[str, str] | None:
    """(path, why) of a symlink that `changed` adds (path -> (mode, blob); mode '' for a deletion) and that leaves
    the tree, or None. `base` is the tree the changes apply to (None: an empty one). Costs nothing when no link is
    added or changed, which is every ordinary queue.
    """
    new = {path: sha for path, (mode, sha) in changed.items() if mode == LINK_MODE}
    if not new:
        return None
    links = tree_links(repo, base)
    before = dict(links)
    for path in changed:
        links.pop(path, None)
    links.update(_targets(repo, new))
    # every link of the result, not only the new ones: a new `a -> .` turns an old `b -> a/..` into an escape
    for path in sorted(links, key=lambda p: (p not in new, p)):
        why = resolve_inside(path, links)
        if why and not (before.get(path) == links[path] and resolve_inside(path, before)):
            return path, why         # (a link that already escaped at the base is the upstream's own)
    return None


def check_tree(repo: Repo, tree: str, *, source: str = "", what: str = "") -> None:
    """Every symlink of a whole tree (an archive's commit) must resolve inside it."""
    links = tree_links(repo, tree)
    for path in sorted(links):
        why = resolve_inside(path, links)
        if why:
            raise BadInput(f"{what or 'the tree'} has the symlink {path!r} pointing outside the tree: {why}",
                           path=source or None)
