"""Move a stack's queue for one upstream onto a new upstream commit: a state machine that survives kill -9.

`start_rebase` surveys first: the queue at the old pin (commits for the before view), the queue at the new base
(what will happen), upstream commits whose patch-id equals a patch (already upstream), and for every patch that no
longer applies cleanly a bisection over the first-parent history for the upstream commit that broke it. Then the
patches are re-applied in order with `apply.run_queue` inside the mirror, without a work tree. At the first
conflict a resolution work tree is made under `.patchq/rebase/worktree`, the patch is applied there with
`git apply --3way --index` (real conflict markers, git's recorded resolutions replayed), and the run stops with
its state in `.patchq/rebase/state.json`. `--continue`, `--skip` and `--abort` pick that state up from any shell.

Nothing in the workspace changes before the end. Then the new patch files, `pins.lock`, the range-diff and new
recorded resolutions are written aside with copies of the files they replace, the list of replacements is
committed into state.json in one atomic write, and only then are the files swapped in. A crash at any point leaves
state from which `--continue` finishes the swap or `--abort` puts every file back byte for byte.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from ..errors import BadInput, NeedsYou
from ..git import Repo
from ..model import Outcome, OutcomeKind, PatchEntry, Stack
from ..queuerun import LoadedPatch, load_patch, run_queue
from ..txn import Txn, workspace_txn
from ..workspace import SERIES_NAME, Workspace, load_workspace
from .bases import Bases, resolve_bases
from .finish import _cleanup, _delete_refs, _finish, _swap_out
from .moves import Moves, find_moves, retarget
from .state import (
    RebasePaths,
    RebaseReport,
    RebaseState,
    RebaseStep,
    StepKind,
    _archive_steps,
    _file_sha,
    _outcome_from_dict,
    _outcome_to_dict,
    _report,
    _step_to_dict,
    crash_point,
    workspace_rr_cache,
)
from .survey import (
    _path_between,
    _workspace_key,
    check_side,
    choose_stack,
    honest,
    parse_onto,
    side_entries,
    survey,
)
from .worktree import _commit_resolution, _open_conflict, _unresolved

# ---- starting --------------------------------------------------------------------------------------------------------

def _in_progress_error(paths: RebasePaths) -> BadInput:
    return BadInput("a rebase is already in progress; finish it with 'patchq rebase --continue' (after resolving "
                    "in the work tree), leave the stopped patch out with '--skip', or undo it all with '--abort'",
                    path=str(paths.state))


def _inputs(ws: Workspace, upstream: str, entries: list[PatchEntry]) -> dict[str, str]:
    files = [ws.lock_path, ws.queue_dir(upstream) / SERIES_NAME, *(ws.patch_path(e) for e in entries)]
    return {ws.rel(p): _file_sha(p) or "" for p in files}


def start_rebase(root: Path, onto: str, stack_name: str | None = None, *, dry_run: bool = False,
                 accept_fuzz: bool = False, archive_left_out: bool = False) -> RebaseReport:
    """Survey and start moving a stack's queue onto UPSTREAM@REF; stops at the first conflict it cannot resolve."""
    paths = RebasePaths(root)
    if paths.state.exists():
        raise _in_progress_error(paths)
    ws = load_workspace(root)
    name, ref = parse_onto(onto)
    upstream = ws.upstream(name)
    stack = choose_stack(ws, name, stack_name)
    old_pin = ws.pin_for(stack, name)
    bases = resolve_bases(upstream, old_pin, ref, root)
    repo, old, new = bases.repo, bases.old_base, bases.new_base
    entries = ws.stack_entries(stack, name)
    patches = [load_patch(ws, e) for e in entries]
    direction, walk = _path_between(repo, old, new)
    moves = find_moves(repo, old, new, patches)
    moved, followed = _retargeted(patches, moves)
    refs = f"refs/patchq/rebase/{_workspace_key(root)}"
    notes = (bases.notes + _direction_notes(repo, direction, ref, old, new, len(walk), bases.granularity)
             + _shared_notes(ws, stack, name) + [line for lines in followed.values() for line in lines])
    if dry_run:
        return _dry_run(ws, repo, stack, name, ref, old, new, direction, walk, patches, moved, moves, refs, notes,
                        bases)
    with workspace_txn(root, f"rebase --onto {onto}", load=False) as (_, t):
        if paths.state.exists():
            raise _in_progress_error(paths)
        shutil.rmtree(paths.dir, ignore_errors=True)    # what a finished or aborted run left if it was killed
        found = survey(repo, patches, moved, old, new, direction, walk, refs=refs, moves=moves,
                       patch_ids=bases.granularity == "commit")
        state = RebaseState(
            upstream=name, stack=stack.name, ref=ref, old_pin=old_pin, onto=new, direction=direction,
            commits_between=len(walk), mirror=str(repo.path), refs=refs,
            patches=[{"id": p.entry.id, "file": p.entry.file} for p in patches],
            inputs=_inputs(ws, name, [*entries, *side_entries(ws, stack, name)]), matched=found.matched,
            probe=[_outcome_to_dict(o) for o in found.probe], old_commits=found.old_commits, old_head=found.old_head,
            breaking=[{**dataclasses.asdict(b), "kind": b.kind.value} for b in found.breaking], notes=notes,
            head=new, counts={"judged": found.judged, "bisect": found.bisect}, new_pin=bases.new_pin,
            granularity=bases.granularity, moves=moves.to_dict(), accept_fuzz=accept_fuzz,
            archive_left_out=archive_left_out, releases=bases.releases, old_base=old)
        _seed_rr_cache(ws, name, paths)
        stop = _take_probe(state, patches, found.probe)
        state.save(paths)
        crash_point("started")
        return _advance(ws, repo, state, paths, patches, t, known_stop=stop)


def _retargeted(patches: list[LoadedPatch], moves: Moves) -> tuple[list[LoadedPatch], dict[str, tuple[str, ...]]]:
    """Every patch with its renamed files followed, and the rename lines per patch."""
    moved, followed = [], {}
    for loaded in patches:
        item, lines = retarget(loaded, moves.renames)
        moved.append(item)
        if lines:
            followed[loaded.entry.id] = tuple(f"{loaded.entry.id}: {line}" for line in lines)
    return moved, followed


def _stops(outcome: Outcome, accept_fuzz: bool) -> bool:
    return outcome.kind == OutcomeKind.CONFLICT or (outcome.kind == OutcomeKind.FUZZ and not accept_fuzz)


def _take_probe(state: RebaseState, patches: list[LoadedPatch], probe: list[Outcome]) -> Outcome | None:
    """Place the patches the survey's run at the new base already applied, up to the first stop.

    That run judged the same patches in the same order on the same base and wrote the same deterministic commits,
    so applying them again would give the same ids: its prefix is taken as is (no second run). Returns the outcome
    the rebase stops at, when it stops within the probe.
    """
    moves = Moves.from_dict(state.moves)
    for index, (loaded, outcome) in enumerate(zip(patches, probe)):
        pid = loaded.entry.id
        if pid in state.matched:
            if outcome.kind.applied:
                return None                       # the probe applied it, the rebase leaves it out: recompute
            step = _matched_step(state, index)
        elif _stops(outcome, state.accept_fuzz):
            return outcome
        elif outcome.kind == OutcomeKind.NOT_REACHED:
            return None
        else:
            step = RebaseStep(pid, _kind_of(outcome.kind), outcome, commit=outcome.commit, detail=outcome.detail,
                              followed=_followed(loaded, moves))
        state.steps.append(_step_to_dict(step))
        state.next = index + 1
        if step.commit:
            state.head = step.commit
    return None


def _followed(loaded: LoadedPatch, moves: Moves) -> tuple[str, ...]:
    return retarget(loaded, moves.renames)[1] if moves.renames else ()


def _matched_step(state: RebaseState, index: int) -> RebaseStep:
    pid = state.patches[index]["id"]
    commit, subject = state.matched[pid]
    return RebaseStep(pid, StepKind.ALREADY_UPSTREAM, _outcome_from_dict(state.probe[index]), upstream_commit=commit,
                      upstream_subject=subject, detail="same patch-id as an upstream commit")


def _direction_notes(repo: Repo, direction: str, ref: str, old: str, new: str, count: int,
                     granularity: str = "commit") -> list[str]:
    steps = "releases" if granularity == "release" else "first-parent commits"
    if direction == "same":
        return [f"{ref} is the current pin {old[:12]}: the patch files are only regenerated"]
    if direction == "backward":
        return [f"{ref} ({new[:12]}) is OLDER than the current pin {old[:12]}: moving the queue back over "
                f"{count} {steps}"]
    if direction == "diverged":
        base = repo.merge_base(old, new)
        if base is None:
            raise BadInput(f"{ref} ({new[:12]}) and the current base {old[:12]} share no history (two archives of "
                           "one upstream are unrelated commits); list both releases under 'releases:' so they are "
                           "one chain", path="pins.lock")
        return [f"{ref} ({new[:12]}) is not a descendant of the current pin {old[:12]} (merge base {base[:12]}); "
                f"breaking commits are searched on the {count} first-parent commits of {new[:12]} the pin lacks"]
    return []


def _shared_notes(ws: Workspace, stack: Stack, upstream: str) -> list[str]:
    """Other stacks that share patch files or the default pin with the one being moved."""
    notes = []
    mine = {e.id for e in ws.stack_entries(stack, upstream)}
    uses_default = upstream not in stack.pins
    for other in ws.stacks.values():
        if other.name == stack.name or upstream not in other.upstreams:
            continue
        moves = uses_default and upstream not in other.pins
        shared = mine & {e.id for e in ws.stack_entries(other, upstream)}
        if moves:
            notes.append(f"stack {other.name!r} also uses {upstream}'s default pin and moves with it; check it "
                         f"with 'patchq apply {other.name} --check'")
        elif shared:
            notes.append(f"stack {other.name!r} applies {len(shared)} of these patch files at its own pin; check "
                         f"it after the rebase with 'patchq apply {other.name} --check'")
    return notes


def _dry_run(ws: Workspace, repo: Repo, stack: Stack, name: str, ref: str, old: str, new: str, direction: str,
             walk: list[tuple[str, str]], patches: list[LoadedPatch], moved: list[LoadedPatch], moves: Moves,
             refs: str, notes: list[str], bases: Bases) -> RebaseReport:
    """The whole report — outcomes, breaking commits, side patches — with nothing in the workspace touched."""
    try:
        found = survey(repo, patches, moved, old, new, direction, walk, refs=refs, moves=moves,
                       patch_ids=bases.granularity == "commit")
        order = [p.entry.id for p in patches]
        side = check_side(repo, ws, side_entries(ws, stack, name), order, found.probe_commits, new, found.probe_head,
                          moves)
    finally:
        _delete_refs(repo, refs)
    steps = []
    for loaded, outcome in zip(patches, found.probe):
        pid = loaded.entry.id
        if pid in found.matched:
            commit, subject = found.matched[pid]
            steps.append(RebaseStep(pid, StepKind.ALREADY_UPSTREAM, outcome, upstream_commit=commit,
                                    upstream_subject=subject, detail="same patch-id as an upstream commit"))
        else:
            steps.append(RebaseStep(pid, _kind_of(outcome.kind), outcome, detail=outcome.detail,
                                    followed=_followed(loaded, moves)))
    return RebaseReport(name, stack.name, ref, ws.pin_for(stack, name), bases.new_pin, direction, len(walk),
                        "dry-run", tuple(steps), tuple(found.breaking), tuple(side),
                        apply_checks=found.judged + len(side), bisect_checks=found.bisect, notes=tuple(notes),
                        next_steps=tuple(_archive_steps(name, steps)), granularity=bases.granularity, new_base=new)


def _kind_of(kind: OutcomeKind) -> StepKind:
    if kind.applied:
        return StepKind.APPLIED
    if kind == OutcomeKind.ALREADY_UPSTREAM:
        return StepKind.ALREADY_UPSTREAM
    if kind == OutcomeKind.EMPTY:
        return StepKind.EMPTY
    return StepKind.CONFLICT




def _seed_rr_cache(ws: Workspace, upstream: str, paths: RebasePaths) -> None:
    """Copy the workspace's recorded resolutions into the rebase's private cache (the workspace copy stays as is
    until the rebase completes, so --abort has nothing to undo there)."""
    source = ws.root / workspace_rr_cache(upstream)
    if source.is_dir():
        shutil.copytree(source, paths.rr_cache, dirs_exist_ok=True)
    else:
        paths.rr_cache.mkdir(parents=True, exist_ok=True)


# ---- advancing -------------------------------------------------------------------------------------------------------

def _mirror(state: RebaseState) -> Repo:
    repo = Repo(state.mirror)
    if not (repo.path / "HEAD").exists():
        raise BadInput(f"the upstream mirror {state.mirror} of this rebase is gone; 'patchq rebase --abort' "
                       "and start again")
    return repo


def _stopped_outcome(state: RebaseState, paths: RebasePaths) -> Outcome:
    """The outcome of the patch the rebase stopped at; a state that stopped without one is refused, not a crash."""
    if state.conflict is None:
        raise BadInput("the rebase state says it stopped at a conflict but records none; 'patchq rebase --abort' "
                       "and start again", path=str(paths.state))
    return _outcome_from_dict(state.conflict["outcome"])


def _load_patches(ws: Workspace, state: RebaseState) -> list[LoadedPatch]:
    _check_inputs(ws, state)
    queue = ws.queue(state.upstream)
    out = []
    for item in state.patches:
        entry = queue.get(item["id"])
        if entry is None:
            raise BadInput(f"patch {item['id']!r} left queue {state.upstream!r} during the rebase; restore it or "
                           "'patchq rebase --abort'")
        out.append(load_patch(ws, entry))
    return out


def _check_inputs(ws: Workspace, state: RebaseState) -> None:
    for rel, sha in state.inputs.items():
        if (_file_sha(ws.root / rel) or "") != sha:
            raise BadInput(f"{rel} changed since the rebase started; put it back or 'patchq rebase --abort' and "
                           "start again", path=rel)


def _advance(ws: Workspace, repo: Repo, state: RebaseState, paths: RebasePaths, patches: list[LoadedPatch],
             t: Txn, *, known_stop: Outcome | None = None) -> RebaseReport:
    """Apply what applies, stop at a conflict rerere cannot settle (or at a fuzz result, unless accepted), finish
    when every patch is placed. `known_stop`: the survey already judged the next patch on this very head."""
    moves = Moves.from_dict(state.moves)
    moved = _retargeted(patches, moves)[0]
    while state.phase == "applying":
        stopped = None
        if known_stop is not None:
            stopped, known_stop = (state.next, known_stop), None
        else:
            todo = [(i, p) for i, p in enumerate(moved) if i >= state.next and p.entry.id not in state.matched]
            run = run_queue(repo, state.head, [p for _, p in todo], commit_ref=f"{state.refs}/new")
            crash_point("applied")
            outcomes = {p.entry.id: honest(o, p, moves) for (_, p), o in zip(todo, run.outcomes)}
            for index in range(state.next, len(patches)):
                pid = patches[index].entry.id
                if pid in state.matched:
                    step = _matched_step(state, index)
                else:
                    outcome = outcomes[pid]
                    state.counts["judged"] += 1
                    if _stops(outcome, state.accept_fuzz):
                        stopped = (index, outcome)
                        break
                    step = RebaseStep(pid, _kind_of(outcome.kind), outcome, commit=outcome.commit,
                                      detail=outcome.detail, followed=_followed(patches[index], moves))
                state.steps.append(_step_to_dict(step))
                state.next = index + 1
                if step.commit:
                    state.head = step.commit
        if stopped is None:
            state.phase = "finishing"
            state.save(paths)
            break
        index, outcome = stopped
        state.save(paths)
        loaded = moved[index]
        wt, stop = _open_conflict(repo, paths, state.head, loaded, deleted=moves.deleted,
                                  fuzz=outcome.kind == OutcomeKind.FUZZ)
        crash_point("conflict-worktree")
        stop = dataclasses.replace(stop, hunks=outcome.hunks)
        if not stop.todo and not _unresolved(wt, state.head):
            commit = _commit_resolution(repo, wt, state.refs, state.head, loaded)
            kind = StepKind.RERERE if stop.rerere else StepKind.APPLIED
            _place(state, loaded, outcome, kind, commit, "a recorded resolution was replayed" if stop.rerere else
                   "merged file by file in the resolution work tree", automatic=True)
            state.save(paths)
            continue
        state.phase = "conflict"
        state.conflict = {**dataclasses.asdict(stop), "outcome": _outcome_to_dict(outcome),
                          "followed": list(_followed(patches[index], moves))}
        state.save(paths)
        return _report(state, "stopped")
    if state.phase == "finishing":
        _finish(ws, repo, state, paths, patches, t)
    if state.phase == "swapping":
        _cleanup(paths, state)
    return _report(state, "done")


def _place(state: RebaseState, loaded: LoadedPatch, outcome: Outcome, kind: StepKind, commit: str,
           detail: str, *, automatic: bool = False) -> None:
    """Record a conflicted patch as settled (resolved, replayed, skipped or emptied) and move past it."""
    if kind != StepKind.SKIPPED and not commit:
        kind, detail = StepKind.EMPTY, ("every file merged cleanly and nothing changes: the whole change is already "
                                        "on the new base" if automatic else
                                        "your resolution changes nothing on the new base")
    state.steps.append(_step_to_dict(RebaseStep(loaded.entry.id, kind, outcome, commit=commit, detail=detail)))
    if commit:
        state.head = commit
    state.next += 1
    state.phase = "applying"
    state.conflict = None


def continue_rebase(root: Path) -> RebaseReport:
    """Take the staged resolution of the stopped patch and go on; or finish an interrupted completion."""
    paths = RebasePaths(root)
    with workspace_txn(root, "rebase --continue", load=False) as (_, t):   # a committed swap is rolled forward
        state = RebaseState.load(paths)
        if state.phase == "swapping":
            _cleanup(paths, state)
            return _report(state, "done")
        ws = load_workspace(root)
        patches = _load_patches(ws, state)
        repo = _mirror(state)
        if state.phase == "conflict":
            loaded = patches[state.next]
            outcome = _stopped_outcome(state, paths)
            if not (paths.worktree / ".git").is_dir():
                return _reopen(repo, state, paths, _moved_one(state, loaded), outcome)
            wt = Repo(paths.worktree)
            problems = _unresolved(wt, state.head)
            if problems:
                raise NeedsYou(f"{loaded.entry.id} is not resolved in {paths.worktree}: " + "; ".join(problems),
                               path=loaded.source, hint="or leave it out with 'patchq rebase --skip', or undo "
                                                        "everything with 'patchq rebase --abort'")
            commit = _commit_resolution(repo, wt, state.refs, state.head, loaded)
            crash_point("resolved-commit")
            _place(state, loaded, outcome, StepKind.RESOLVED, commit, "resolved by hand")
            state.save(paths)
        return _advance(ws, repo, state, paths, patches, t)


def _moved_one(state: RebaseState, loaded: LoadedPatch) -> LoadedPatch:
    return retarget(loaded, Moves.from_dict(state.moves).renames)[0]


def _reopen(repo: Repo, state: RebaseState, paths: RebasePaths, loaded: LoadedPatch,
            outcome: Outcome) -> RebaseReport:
    """The resolution work tree is gone (deleted, or the machine changed): make it again and stop there."""
    wt, stop = _open_conflict(repo, paths, state.head, loaded, deleted=Moves.from_dict(state.moves).deleted,
                              fuzz=outcome.kind == OutcomeKind.FUZZ)
    del wt
    state.conflict = {**dataclasses.asdict(dataclasses.replace(stop, hunks=outcome.hunks)),
                      "outcome": _outcome_to_dict(outcome)}
    state.save(paths)
    state.notes = [*state.notes, f"the resolution work tree was missing; it was made again at {paths.worktree}"]
    return _report(state, "stopped")


def skip_patch(root: Path) -> RebaseReport:
    """Leave the stopped patch out of the new stack (its file stays in the queue, unchanged) and go on."""
    paths = RebasePaths(root)
    with workspace_txn(root, "rebase --skip", load=False) as (_, t):
        state = RebaseState.load(paths)
        if state.phase != "conflict":
            raise BadInput(f"the rebase is not stopped at a conflict (it is {state.phase}); use --continue")
        ws = load_workspace(root)
        patches = _load_patches(ws, state)
        repo = _mirror(state)
        loaded = patches[state.next]
        if (paths.worktree / ".git").is_dir():
            Repo(paths.worktree).rerere_clear()
        _place(state, loaded, _stopped_outcome(state, paths), StepKind.SKIPPED, "",
               "skipped with --skip: kept in the queue unchanged, left out of the new stack")
        state.save(paths)
        return _advance(ws, repo, state, paths, patches, t)


def abort_rebase(root: Path) -> RebaseReport:
    """Put everything back as it was before the rebase started, whatever step it was interrupted at."""
    paths = RebasePaths(root)
    with workspace_txn(root, "rebase --abort", load=False) as (_, t):
        state = RebaseState.load(paths)
        _swap_out(root, paths, state, t)
        report = _report(state, "aborted")
        _cleanup(paths, state)
        return report


def rebase_in_progress(root: Path) -> bool:
    return RebasePaths(root).state.exists()


