"""The edit loop in a checkout: which checkout and which patch a command means, and `refresh` from it.

quilt, StGit and gbp-pq users expect to edit where the patches are applied and then say "record this": the patch is
the one at HEAD (its `Patchq-Id` trailer says which), the checkout is the one `patchq apply` made (or the one the
command runs in), and uncommitted changes on top of the patch's own commit belong to that patch. Everything here
checks that HEAD really is the patch before writing, because a wrong guess overwrites someone's patch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .apply import default_checkout_dir
from .checkout import APPLIED_REF, is_patchq_checkout, list_commits, move_applied, operation_in_progress
from .errors import BadInput
from .git import Repo, toplevel
from .model import PatchEntry
from .queue import refresh_patch
from .txn import Txn
from .workspace import STATE_DIR, Workspace


@dataclass(frozen=True)
class CheckoutRef:
    """A checkout a command works in, and the stack and upstream patchq made it for ('' when not patchq's)."""

    path: Path
    stack: str = ""
    upstream: str = ""


@dataclass(frozen=True)
class RefreshResult:
    patch: PatchEntry
    checkout: str
    commit: str                      # the checkout's HEAD after the refresh
    changed: bool                    # the patch's diff is different now
    worktree: bool                   # uncommitted changes were folded into the patch (and into HEAD's commit)
    files: tuple[str, ...] = ()      # files of the uncommitted changes taken


def checkout_ref(ws: Workspace, path: Path) -> CheckoutRef:
    """Name a checkout: patchq's own ones live at .patchq/checkouts/<stack>/<upstream>."""
    path = path.resolve()
    try:
        rel = path.relative_to((ws.root / STATE_DIR / "checkouts").resolve())
    except ValueError:
        return CheckoutRef(path)
    parts = rel.parts
    if len(parts) == 2 and parts[0] in ws.stacks and parts[1] in ws.upstreams:
        return CheckoutRef(path, parts[0], parts[1])
    return CheckoutRef(path)


def here_checkout(ws: Workspace, cwd: Path | None = None) -> CheckoutRef | None:
    """The patchq checkout the current directory is in, if any (the workspace's own repository does not count)."""
    cwd = (cwd or Path(os.getcwd())).resolve()
    found = toplevel(cwd)
    if found is None:
        return None
    top = found.resolve()
    if top == ws.root.resolve() or not is_patchq_checkout(top):
        return None
    return checkout_ref(ws, top)


def stack_checkouts(ws: Workspace, upstream: str, stack: str | None = None) -> list[CheckoutRef]:
    """Existing patchq checkouts of `upstream` (of one stack, or of every stack using it)."""
    names = [stack] if stack else [s.name for s in ws.stacks.values() if upstream in s.upstreams]
    if stack:
        ws.stack(stack)
    out = []
    for name in names:
        path = default_checkout_dir(ws, name, upstream)
        if is_patchq_checkout(path):
            out.append(CheckoutRef(path, name, upstream))
    return out


def head_trailer(repo: Repo) -> tuple[str, str, str]:
    """(HEAD commit, its subject, its Patchq-Id trailer or '')."""
    commits = list_commits(repo, "-1", "HEAD")
    if not commits:
        raise BadInput(f"{repo.path} has no commits")
    return commits[0].sha, commits[0].subject, commits[0].patch_id


def resolve_target(ws: Workspace, patch_ref: str | None, from_dir: Path | None, stack: str | None,
                   cwd: Path | None = None) -> tuple[CheckoutRef, PatchEntry | None]:
    """The checkout a command means (--from, else the one we stand in, else the stack's own), and the patch named."""
    entry = None
    if patch_ref:
        entry = ws.find_patch(patch_ref) if ":" in patch_ref else None
    where: CheckoutRef | None
    if from_dir is not None:
        if not (from_dir / ".git").exists():
            raise BadInput(f"{from_dir} is not a git checkout (expected the folder 'patchq apply' made)")
        where = checkout_ref(ws, from_dir)
    else:
        where = here_checkout(ws, cwd)
        if where is None:
            candidates: list[CheckoutRef] = []
            if patch_ref:
                first = entry or _find_unique(ws, patch_ref)
                candidates = stack_checkouts(ws, first.upstream, stack)
            elif stack:
                for up in ws.stack(stack).upstreams:
                    candidates.extend(stack_checkouts(ws, up, stack))
            else:
                for up in ws.upstreams:
                    candidates.extend(stack_checkouts(ws, up))
            if patch_ref and len(candidates) > 1:       # prefer the checkout whose HEAD is the patch
                wanted = (entry or _find_unique(ws, patch_ref)).id
                at_head = [c for c in candidates if head_trailer(Repo(c.path))[2] == wanted]
                candidates = at_head or candidates
            if not candidates:
                raise BadInput("no checkout to work in: run 'patchq apply STACK' first, or say --from DIR")
            if len(candidates) > 1:
                raise BadInput("several checkouts could be meant (" + ", ".join(ws.rel(c.path) for c in candidates)
                               + "); say --stack STACK or --from DIR")
            where = candidates[0]
    if patch_ref and entry is None:
        if where.upstream and ws.queue(where.upstream).get(patch_ref):
            entry = ws.queue(where.upstream).get(patch_ref)
        else:
            entry = ws.find_patch(patch_ref)
    return where, entry


def _find_unique(ws: Workspace, patch_ref: str) -> PatchEntry:
    return ws.find_patch(patch_ref)


def refresh_from_checkout(ws: Workspace, t: Txn, patch_ref: str | None, *, from_dir: Path | None = None,
                          stack: str | None = None, force: bool = False, cwd: Path | None = None) -> RefreshResult:
    """Replace a patch's diff with what its commit at a checkout's HEAD (plus uncommitted changes) holds.

    HEAD's `Patchq-Id` trailer must name the patch (or names it when no ID is given); `force` takes a HEAD without
    that trailer or with another one. Uncommitted changes are folded in quilt-style: the patch becomes HEAD's parent
    to the work tree, and HEAD's commit is rewritten to match, so the checkout stays a faithful picture of the queue.
    """
    where, entry = resolve_target(ws, patch_ref, from_dir, stack, cwd)
    repo = Repo(where.path)
    busy = operation_in_progress(where.path)
    if busy:
        raise BadInput(f"a '{busy}' is stopped in {where.path}; finish it first (e.g. 'git am --continue' after "
                       "'git add' of the resolved files) or abort it", path=None)
    head, subject, trailer = head_trailer(repo)
    label = f"HEAD of {where.path} ({head[:10]} {subject!r})"
    if entry is None:
        if not trailer:
            raise BadInput(f"{label} carries no Patchq-Id trailer, so it names no patch",
                           hint="name the patch: 'patchq refresh ID', or turn new commits into patches with "
                                "'patchq sync STACK'")
        entry = (ws.queue(where.upstream).get(trailer) if where.upstream else None) or ws.find_patch(trailer)
    if where.upstream and entry.upstream != where.upstream:
        raise BadInput(f"{where.path} is a checkout of upstream {where.upstream!r}; patch {entry.ref} belongs to "
                       f"{entry.upstream!r}; nothing was written")
    if not force:
        if not trailer:
            raise BadInput(f"{label} carries no Patchq-Id trailer, so it may not be patch {entry.id!r}; nothing was "
                           "written", hint="check out the patch's commit, or pass --force to take HEAD as "
                                           f"{entry.id!r} anyway")
        if trailer != entry.id:
            raise BadInput(f"{label} is patch {trailer!r}, not {entry.id!r}; nothing was written",
                           hint=f"to refresh {trailer!r}: 'patchq refresh {trailer}'; to refresh {entry.id!r}, "
                                "check out its commit first (or pass --force to take HEAD as it anyway)")
    parents = repo.parents_of(head)
    if len(parents) != 1:
        raise BadInput(f"{label} has {len(parents)} parents; a patch is the change of a commit with one parent")
    dirty = sorted(repo.status_porcelain())
    old_diff = ws.patch_path(entry).read_bytes()
    if dirty:
        tree = repo.worktree_tree("HEAD")
        diff = repo.diff_trees(parents[0], tree)
    else:
        tree = ""
        diff = repo.commit_diff(head)
    refreshed = refresh_patch(ws, t, entry.ref, diff)
    changed = t.read(ws.patch_path(refreshed)) != old_diff
    t.commit()                 # the patch file is written before HEAD is amended to match it
    if dirty:
        head = _amend_head(repo, head, parents[0], tree)
    return RefreshResult(refreshed, str(where.path), head, changed, bool(dirty), tuple(dirty))


def _amend_head(repo: Repo, head: str, parent: str, tree: str) -> str:
    """HEAD's commit again with the work tree's content: same message, author and date; index follows, files stay."""
    fields = repo.log_records("-1", head, fields=("%an <%ae>", "%aI", "%B"))[0]
    author, date, message = fields[0], fields[1], fields[2]
    new = repo.commit_tree(tree, [parent], message.rstrip("\n") + "\n", author=author, date=date)
    repo.reset_mixed(new)
    if repo.rev_parse(APPLIED_REF) == head:
        move_applied(repo, new, "patchq refresh")
    return new
