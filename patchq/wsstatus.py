"""`patchq status`: where each stack's checkouts stand against the queues, and what to run next.

Read-only and offline: it looks at the checkouts `patchq apply` made and at the queue files, never fetches. Each
commit of a checkout is matched to its patch by the `Patchq-Id` trailer and compared with the queue file by git's
stable patch-id (the same change whatever its line numbers), in two git processes for the whole queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .apply import default_checkout_dir
from .checkout import LocalCommit, checkout_base, is_patchq_checkout, list_commits, operation_in_progress
from .git import Repo, patch_ids
from .model import PatchEntry
from .workspace import STATE_DIR, Workspace

# what a checkout commit is, compared with the queue
IN_SYNC = "in-sync"              # the queue file holds the same change
NEEDS_REFRESH = "needs-refresh"  # edited in the checkout (not by patchq): 'patchq refresh' / 'patchq sync'
STALE = "stale"                  # patchq wrote it, the queue file changed since: 'patchq apply'
NEW = "new"                      # no Patchq-Id, or one the queue does not have: 'patchq sync'


@dataclass(frozen=True)
class CheckoutPatch:
    """One commit of a checkout: the patch it is and how it compares with the queue file."""

    patch_id: str
    commit: str
    subject: str
    state: str


@dataclass(frozen=True)
class UpstreamStatus:
    upstream: str
    pin: str
    checkout: str                                  # '' when the stack was never applied here
    head: str = ""
    branch: str = ""
    on_pin: bool | None = None                     # the checkout sits on the stack's pin
    applied: tuple[CheckoutPatch, ...] = ()        # oldest first
    expected: tuple[str, ...] = ()                 # what the stack applies, in order
    missing: tuple[str, ...] = ()                  # expected, not in the checkout (e.g. after apply --upto)
    dirty: tuple[str, ...] = ()
    foreign: tuple[LocalCommit, ...] = ()          # commits patchq did not write that the queue does not hold
    in_progress: str = ""                          # 'git am', 'git rebase', ... stopped in the checkout
    tree: str = ""
    recorded_tree: str = ""
    tree_state: str = ""                           # matches | differs | not-recorded | '' (not comparable)
    actions: tuple[str, ...] = ()                  # commands that would bring things in line

    @property
    def clean(self) -> bool:
        return not self.actions


@dataclass(frozen=True)
class StackStatus:
    stack: str
    upstreams: tuple[UpstreamStatus, ...]


@dataclass(frozen=True)
class WorkspaceStatus:
    root: str
    stacks: tuple[StackStatus, ...]
    upstreams: dict[str, str]                      # name -> pin
    rebase: str = ""                               # a 'patchq rebase' waiting for --continue/--skip/--abort

    @property
    def clean(self) -> bool:
        return not self.rebase and all(u.clean for s in self.stacks for u in s.upstreams)


def workspace_status(ws: Workspace, stack: str | None = None, *, only: tuple[str, ...] = ()) -> WorkspaceStatus:
    names = [ws.stack(stack).name] if stack else sorted(ws.stacks)
    for name in only:
        ws.upstream(name)
    stacks = []
    for name in names:
        st = ws.stacks[name]
        ups = tuple(upstream_status(ws, name, up) for up in st.upstreams if not only or up in only)
        stacks.append(StackStatus(name, ups))
    rebase = ""
    state = ws.root / STATE_DIR / "rebase" / "state.json"
    if state.is_file():
        rebase = "a 'patchq rebase' is stopped: resolve and 'patchq rebase --continue', or --skip, or --abort"
    return WorkspaceStatus(str(ws.root), tuple(stacks), {n: u.pin for n, u in ws.upstreams.items()}, rebase)


def upstream_status(ws: Workspace, stack_name: str, upstream: str) -> UpstreamStatus:
    stack = ws.stack(stack_name)
    pin = ws.pin_for(stack, upstream)
    entries = ws.stack_entries(stack, upstream)
    expected = tuple(e.id for e in entries)
    path = default_checkout_dir(ws, stack_name, upstream)
    if not is_patchq_checkout(path):
        return UpstreamStatus(upstream, pin, "", expected=expected, missing=expected,
                              actions=(f"patchq apply {stack_name}",))
    repo = Repo(path)
    rel = ws.rel(path)
    head = repo.head() or ""
    branch = repo.branch_name()
    archive = ws.upstream(upstream).archive
    base = checkout_base(path, pin, archive.sha256 if archive else "")
    on_pin = bool(base)
    dirty = tuple(sorted(repo.status_porcelain()))
    busy = operation_in_progress(path)
    commits = list(reversed(list_commits(repo, "HEAD", "--not", base))) if on_pin else []
    queue = ws.queue(upstream)
    applied_at = _applied_time(path)
    ours = _commit_patch_ids(repo, base) if commits else {}
    theirs = _queue_patch_ids(ws, repo, [e for c in commits if (e := queue.get(c.patch_id)) is not None])
    applied = []
    foreign = []
    for c in commits:
        entry = queue.get(c.patch_id) if c.patch_id else None
        if entry is None:
            state = NEW
        elif ours.get(c.sha) and ours.get(c.sha) == theirs.get(entry.id):
            state = IN_SYNC
        elif c.by_patchq:           # patchq wrote it from the queue file (fuzz and 3-way change context lines):
            state = STALE if _newer(ws.patch_path(entry), applied_at) else IN_SYNC   # stale if the file changed since
        else:
            state = NEEDS_REFRESH
        applied.append(CheckoutPatch(c.patch_id, c.sha, c.subject, state))
        if not c.by_patchq and state != IN_SYNC:
            foreign.append(c)
    have = [a.patch_id for a in applied if a.patch_id in expected]
    missing = tuple(i for i in expected if i not in have)
    actions: list[str] = []
    if busy:
        actions.append(f"a '{busy}' is stopped in {rel}: finish it (e.g. git -C {rel} am --continue) or abort it")
    if not on_pin:
        actions.append(f"{rel} is not on the pin {pin[:12]} (pins.lock moved since it was applied): "
                       f"patchq apply {stack_name}")
    in_order = have == [i for i in expected if i in have]
    by_user = {c.sha for c in commits if not c.by_patchq}
    if any(a.state in (NEW, NEEDS_REFRESH) for a in applied) or (
            not in_order and any(a.commit in by_user for a in applied)):
        actions.append(f"patchq sync {stack_name} -u {upstream}   (records new, edited and reordered commits "
                       "in the queue)")
        if applied[-1].state == NEEDS_REFRESH and not dirty:
            actions.append(f"or only the patch at HEAD: patchq refresh {applied[-1].patch_id} --from {rel}")
    if any(a.state == STALE for a in applied) or (not in_order and not by_user):
        stale = [a.patch_id for a in applied if a.state == STALE]
        actions.append(f"patchq apply {stack_name}   (the queue changed since the checkout was made"
                       + (f": {', '.join(stale)}" if stale else ": order") + ")")
    if dirty:
        top = applied[-1].patch_id if applied and applied[-1].patch_id in expected else ""
        actions.append((f"patchq refresh {top}   (folds the uncommitted changes into {top}) or " if top else "")
                       + f"patchq new ID --from {rel}   (records them as a new patch)")
    tree = recorded = tree_state = ""
    if on_pin and not dirty and not missing and all(a.state == IN_SYNC for a in applied) \
            and [a.patch_id for a in applied] == [i for i in expected if i in have]:
        tree = repo.tree_of("HEAD")
        recorded = stack.trees.get(upstream, "")
        tree_state = "not-recorded" if not recorded else "matches" if recorded == tree else "differs"
        if tree_state == "differs":
            actions.append(f"patchq lock {stack_name}   (the tree recorded in pins.lock is stale, e.g. after "
                           "'patchq pin' or a queue change)")
    return UpstreamStatus(upstream, pin, str(path), head, branch, on_pin, tuple(applied), expected, missing, dirty,
                          tuple(foreign), busy, tree, recorded, tree_state, tuple(actions))


def _commit_patch_ids(repo: Repo, base: str) -> dict[str, str]:
    """commit -> stable patch-id, for every commit from `base` to HEAD, in two git processes."""
    return dict(repo.log_patch_ids("HEAD", "--not", base))


def _queue_patch_ids(ws: Workspace, repo: Repo, entries: Sequence[PatchEntry]) -> dict[str, str]:
    """patch id -> stable patch-id of its queue file's diff."""
    if not entries:
        return {}
    from .queuerun import load_patch
    ids = patch_ids([load_patch(ws, entry).patch.diff for entry in entries])
    return {entry.id: pid for entry, pid in zip(entries, ids) if pid}



def _applied_time(path: Path) -> float:
    """When patchq last moved the checkout (its refs/patchq/applied, else its HEAD file)."""
    for name in ("refs/patchq/applied", "HEAD"):
        try:
            return (path / ".git" / name).stat().st_mtime
        except OSError:
            continue
    return 0.0


def _newer(path: Path, than: float) -> bool:
    try:
        return path.stat().st_mtime > than
    except OSError:
        return True
