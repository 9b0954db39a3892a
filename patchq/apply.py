"""Apply a stack: each upstream's queue run at its pin (`queuerun`), then the result materialised in a checkout.

What this module adds on top of the queue engine: the stack's patches per upstream (`requires:` checked before any
checkout), several upstreams in one report, patchq's checkouts guarded against work patchq did not write (saved
under `refs/patchq/saved/` with --force), `--into`, `--upto`, `--verify` against the recorded trees, and `lock`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .checkout import (
    SAVED_PREFIX,
    LocalWork,
    is_patchq_checkout,
    local_work,
    record_applied,
    save_local_work,
    start_local_commits,
)
from .errors import BadInput
from .git import Pending
from .model import ApplyReport, OutcomeKind, PatchEntry, Stack, UpstreamApply
from .queuerun import LoadedPatch, QueuePlan, QueueRun, load_patch, run_queue
from .sources import (
    LOST_MIRROR,
    MOVING_MARK,
    ensure_base,
    follow_mirror,
    prepare_checkout,
    start_dirty_check,
    workspace_ref,
)
from .workspace import STATE_DIR, Workspace, check_requires


def stack_patches(ws: Workspace, stack: Stack, upstream: str, extra: tuple[str, ...] = ()) -> list[LoadedPatch]:
    entries = ws.stack_entries(stack, upstream, extra)
    check_requires(ws, stack.name, upstream, entries)
    return [load_patch(ws, entry) for entry in entries]


def default_checkout_dir(ws: Workspace, stack: str, upstream: str) -> Path:
    return ws.root / STATE_DIR / "checkouts" / stack / upstream


def apply_stack(ws: Workspace, stack_name: str, *, into: Path | None = None, keep_going: bool = False,
                verify: bool = False, only: tuple[str, ...] = (), extra: tuple[str, ...] = (),
                check_only: bool = False, force: bool = False, upto: str | None = None) -> ApplyReport:
    """Regenerate a stack: for each upstream, its pinned base, the queue judged and committed, a checkout moved there.

    Every queue of the stack is judged before any checkout is touched, so a bad patch in the second upstream does
    not leave the first one half-done.
    """
    stack = ws.stack(stack_name)
    for name in only:
        if name not in stack.upstreams:
            raise BadInput(f"stack {stack_name!r} does not use upstream {name!r} (it uses: "
                           f"{', '.join(stack.upstreams)})")
    for ref in extra:
        ws.find_patch(ref)
    if into is not None and into.exists() and any(into.iterdir()):
        raise BadInput(f"--into {into} exists and is not empty; patchq never writes into a folder it did not make")
    upstreams = [u for u in stack.upstreams if not only or u in only]
    for name in upstreams:              # a patch without the patches it sits on: refused before any checkout
        check_requires(ws, stack_name, name, ws.stack_entries(stack, name, extra))
    upto_entry = _upto_entry(ws, stack, upstreams, upto, extra) if upto else None
    # patchq's own checkouts are checked for local edits and commits while the queues are judged in the mirrors
    dirty = {} if check_only or into is not None else {
        name: start_dirty_check(default_checkout_dir(ws, stack_name, name)) for name in upstreams}
    commits = {} if check_only or into is not None else {
        name: start_local_commits(default_checkout_dir(ws, stack_name, name)) for name in upstreams}
    try:
        plans: list[QueuePlan] = []
        for name in upstreams:
            upstream = ws.upstream(name)
            pin = ws.pin_for(stack, name)
            patches = stack_patches(ws, stack, name, extra)
            if upto_entry is not None and upto_entry.upstream == name:
                patches = patches[:next(i for i, lp in enumerate(patches) if lp.entry.id == upto_entry.id) + 1]
            base = ensure_base(upstream, pin, workspace=ws.root)
            ref = workspace_ref(ws.root, "stacks", stack_name, name)
            if not check_only:    # this workspace's ref, moved only under the exclusive lock held here: a lock file
                base.repo.drop_ref_lock(ref)      # on it is a killed run's (export moves it under a shared lock)
            run = run_queue(base.repo, base.commit, patches, keep_going=keep_going,
                            commit_ref=None if check_only else ref)
            plans.append((name, pin, base, run, patches))
        results = []
        steps: list[str] = []
        changed: dict[str, list[str]] = {}
        if not check_only and into is None:
            steps.extend(_guard_checkouts(ws, stack_name, plans, dirty, commits, force, changed))
        for name, pin, base, run, _ in plans:
            checkout = ""
            if base.note:
                steps.append(f"{name}: {base.note}")
            if not check_only:
                dest = (into / name) if into is not None else default_checkout_dir(ws, stack_name, name)
                made = prepare_checkout(base.repo, run.head, dest, reuse=into is None, force=force,
                                        branch=f"patchq/{stack_name}", dirty=dirty.pop(name, None),
                                        changed=changed.get(name))
                record_applied(dest, run.head, created=made.created)
                if into is not None:     # the folder borrows the mirror's objects: keep its commit reachable
                    digest = hashlib.sha256(str(dest).encode()).hexdigest()[:16]
                    into_ref = workspace_ref(ws.root, "into", digest)
                    base.repo.drop_ref_lock(into_ref)
                    base.repo.update_ref(into_ref, run.head)
                checkout = str(dest)
            recorded = stack.trees.get(name, "")
            verified = None
            if verify:
                verified = bool(recorded) and run.tree == recorded and not any(
                    o.kind == OutcomeKind.CONFLICT for o in run.outcomes)
            results.append(UpstreamApply(name, pin, checkout, tuple(run.outcomes), run.tree, run.head, verified,
                                         recorded, base.commit))
            steps.extend(_next_steps(ws, name, run, checkout))
        if verify and any(not r.recorded_tree for r in results):
            steps.append(f"no tree recorded for some upstreams; run 'patchq lock {stack_name}' after a clean apply")
    finally:
        for pending in (*dirty.values(), *commits.values()):
            if pending is not None:
                pending.cancel()
    return ApplyReport(stack_name, tuple(results), check_only, tuple(steps))


def _upto_entry(ws: Workspace, stack: Stack, upstreams: list[str], upto: str, extra: tuple[str, ...]) -> PatchEntry:
    """The patch `--upto` names, checked to be one the stack applies."""
    entry = ws.find_patch(upto)
    if entry.upstream not in upstreams or entry not in ws.stack_entries(stack, entry.upstream, extra):
        raise BadInput(f"--upto {upto}: stack {stack.name!r} does not apply patch {entry.ref} (see "
                       f"'patchq list --stack {stack.name}')")
    return entry


def _guard_checkouts(ws: Workspace, stack_name: str, plans: list[QueuePlan], dirty: dict[str, Pending | None],
                     commits: dict[str, Pending | None], force: bool, changed: dict[str, list[str]]) -> list[str]:
    """Before any checkout moves: refuse to lose local work, or with `force` save it under a ref first.

    Every upstream's checkout is looked at before the first one is touched. Returns the sentences that say where
    saved work went; fills `changed` with each checkout's dirty files for `prepare_checkout`.
    """
    found: list[LocalWork] = []
    for name, _pin, _base, _run, patches in plans:
        dest = default_checkout_dir(ws, stack_name, name)
        if not is_patchq_checkout(dest) or (dest / ".git" / MOVING_MARK).exists():
            continue
        mirror = follow_mirror(dest, _base.repo)         # PATCHQ_CACHE changed: repoint it before reading it
        if mirror != "same":
            for pending in (dirty.pop(name, None), commits.pop(name, None)):
                if pending is not None:
                    pending.cancel()                     # they read the old mirror
            if mirror == "lost":
                if not force:
                    raise BadInput(f"checkout {ws.rel(dest)} {LOST_MIRROR}")
                continue                                 # nothing readable to set aside: prepare_checkout remakes it
        work = local_work(dest, name, pending_status=dirty.pop(name, None), pending_log=commits.pop(name, None),
                          queue_diffs={lp.entry.id: lp.patch.diff for lp in patches})
        changed[name] = list(work.dirty)
        if not work.empty:
            found.append(work)
    if not found:
        return []
    if not force:
        lines = [f"{ws.rel(Path(w.checkout))} holds {w.describe()}" for w in found]
        raise BadInput("; ".join(lines) + "; apply would reset it, so nothing was changed",
                       hint=f"keep the work first: 'patchq sync {stack_name}' turns commits into patches, "
                            "'patchq refresh' folds uncommitted changes into the patch at HEAD, 'patchq new ID' "
                            "records them as a new patch; or rerun with --force to set it aside under "
                            f"{SAVED_PREFIX}/{stack_name}/ and regenerate")
    return [save_local_work(w, stack_name).sentence() for w in found]


def _next_steps(ws: Workspace, upstream: str, run: QueueRun, checkout: str) -> list[str]:
    steps = []
    for outcome in run.outcomes:
        if outcome.kind == OutcomeKind.CONFLICT:
            entry = ws.queue(upstream).get(outcome.patch_id)
            source = ws.rel(ws.patch_path(entry)) if entry else outcome.patch_id
            where = f"cd {checkout} && " if checkout else ""
            steps.append(f"{upstream}:{outcome.patch_id} conflicts. To resolve: '{where}git am -3 "
                         f"{ws.root / source}', fix the files and git add them, 'git am --continue'; then "
                         f"'patchq refresh {outcome.patch_id} --from {checkout or 'CHECKOUT'}' writes the new patch. "
                         "Or move the whole queue with 'patchq rebase'.")
        elif outcome.kind == OutcomeKind.ALREADY_UPSTREAM:
            steps.append(f"{upstream}:{outcome.patch_id} is already upstream: consider archiving it "
                         "(status negative-archived) or dropping it from the queue")
        elif outcome.kind == OutcomeKind.FUZZ:
            steps.append(f"{upstream}:{outcome.patch_id} applied only with reduced context: review it and refresh")
    return steps


def lock_stack(ws: Workspace, stack_name: str) -> dict[str, str]:
    """Apply a stack without a checkout and return the tree per upstream, for recording in pins.lock."""
    stack = ws.stack(stack_name)
    trees = {}
    for name in stack.upstreams:
        upstream = ws.upstream(name)
        pin = ws.pin_for(stack, name)
        base = ensure_base(upstream, pin, workspace=ws.root)
        run = run_queue(base.repo, base.commit, stack_patches(ws, stack, name),
                        commit_ref=workspace_ref(ws.root, "stacks", stack_name, name))
        bad = [o for o in run.outcomes if not o.kind.ok]
        if bad:
            from .errors import NeedsYou
            raise NeedsYou(f"cannot lock {stack_name!r}: {name}:{bad[0].patch_id} is {bad[0].kind.value} "
                           f"({bad[0].detail})")
        trees[name] = run.tree
    return trees
