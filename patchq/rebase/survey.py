"""Choosing what to move, and the survey: before, after, patch-ids, breaking-commit bisection, side patches."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInput
from ..git import ObjectReader, Repo, patch_ids as diff_patch_ids
from ..gitindex import TempIndex, write_index_file
from ..model import Outcome, OutcomeKind, PatchEntry, Stack, Status
from ..patchfile import touched_paths
from ..queuerun import LoadedPatch, TinyIndex, classify_patch, load_patch, run_queue
from ..splice import Unsure, git_would_apply
from ..workspace import LOCK_NAME, Workspace
from .moves import Moves, Rename, deleted_in, retarget
from .state import CLEAN_KINDS, BreakingCommit, SideCheck

# ---- choosing what to move -------------------------------------------------------------------------------------------

def parse_onto(spec: str) -> tuple[str, str]:
    name, sep, ref = spec.partition("@")
    if not sep or not name or not ref:
        raise BadInput(f"--onto expects UPSTREAM@REF (for example vllm@latest or vllm@v0.11.0), got {spec!r}")
    return name, ref


def choose_stack(ws: Workspace, upstream: str, name: str | None) -> Stack:
    """The stack to move: the one named, the only one using the upstream, or (none) the queue's promoted patches."""
    if name:
        stack = ws.stack(name)
        if upstream not in stack.upstreams:
            raise BadInput(f"stack {name!r} does not use upstream {upstream!r} (it uses: "
                           f"{', '.join(stack.upstreams)})", path=LOCK_NAME)
        return stack
    users = [s.name for s in ws.stacks.values() if upstream in s.upstreams]
    if len(users) == 1:
        return ws.stacks[users[0]]
    if users:
        raise BadInput(f"several stacks use {upstream!r} ({', '.join(users)}); name one: "
                       f"patchq rebase --onto {upstream}@REF STACK")
    return Stack(name="", upstreams=(upstream,))


def _workspace_key(root: Path) -> str:
    return hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]


def _path_between(repo: Repo, old: str, new: str) -> tuple[str, list[tuple[str, str]]]:
    """Direction and the first-parent walk from the old pin to the new base: (commit to test, commit to blame).

    Forward, each step applies one upstream commit. Backward (REF older than the pin), each step undoes one, and
    the state after undoing commit C is C's first parent.
    """
    if old == new:
        return "same", []
    if repo.is_ancestor(old, new):
        return "forward", [(c, c) for c in repo.rev_list("--first-parent", "--reverse", f"{old}..{new}")]
    if repo.is_ancestor(new, old):
        walk = []
        for line in repo.rev_list("--first-parent", "--parents", f"{new}..{old}"):
            commit, *parents = line.split()
            if parents:
                walk.append((parents[0], commit))
        if not walk or walk[-1][0] != new:
            walk.append((new, new))
        return "backward", walk
    return "diverged", [(c, c) for c in repo.rev_list("--first-parent", "--reverse", f"{old}..{new}")]


PATH_LIMIT_BYTES = 32 * 1024     # beyond this much path text, every commit is read rather than a long command line


def _upstream_patch_ids(repo: Repo, old: str, new: str, direction: str, patches: list[LoadedPatch]
                        ) -> dict[str, str]:
    """patch-id -> upstream commit for every non-merge commit the new base has and the old pin has not that could
    carry one of the patches.

    Two diffs share a stable patch-id only if they change the same files, so a commit that touches none of the
    queue's paths cannot match: git reads only the commits that touch them (with their whole diffs, so the ids
    are the commits' own), unless the paths are too many for one command line.
    """
    if direction not in ("forward", "diverged"):
        return {}
    paths = sorted({p for loaded in patches for p in touched_paths(loaded.patch.files)})
    touching = paths if paths and sum(len(p) + 1 for p in paths) <= PATH_LIMIT_BYTES else []
    found: dict[str, str] = {}
    for commit, pid in repo.log_patch_ids(f"{old}..{new}", no_merges=True, touching=touching):
        found.setdefault(pid, commit)
    return found


def _patch_ids(repo: Repo, patches: list[LoadedPatch]) -> dict[str, str]:
    """Stable patch-id of every patch, in one `git patch-id` run (each diff under a made-up commit line)."""
    ids = diff_patch_ids([p.patch.diff for p in patches])
    return {p.entry.id: pid for p, pid in zip(patches, ids) if pid}


# ---- the breaking-commit search --------------------------------------------------------------------------------------

def path_closure(patches: list[LoadedPatch], index: int) -> list[LoadedPatch]:
    """The earlier patches that can change how patch `index` applies: those touching its paths, transitively.

    A patch that touches none of these paths never changes them, so leaving it out gives the same judgement.
    """
    paths = set(touched_paths(patches[index].patch.files))
    chosen = []
    for loaded in reversed(patches[:index]):
        mine = set(touched_paths(loaded.patch.files))
        if mine & paths:
            chosen.append(loaded)
            paths |= mine
    return list(reversed(chosen))


def find_breaking_commit(walk: list[tuple[str, str]], applies_at: Callable[[str], bool]) -> tuple[int, int]:
    """Index into `walk` of the first state at which `applies_at` fails, and how many checks that took.

    The patch applies before the walk (at the old pin) and fails at its end (the new base), both already known, so
    a binary search needs at most ceil(log2 K) checks for K states.
    """
    low, high, checks = -1, len(walk) - 1, 0
    while high - low > 1:
        mid = (low + high) // 2
        checks += 1
        if applies_at(walk[mid][0]):
            low = mid
        else:
            high = mid
    return high, checks


class SharedIndex(TinyIndex):
    """One temporary index file for every bisection check, rewritten in Python for each commit tested.

    The entries come from a long-lived `git cat-file --batch` (trees read once per commit and folder), so moving
    to the next commit costs no git process; only the `git apply` checks themselves run git.
    """

    def __init__(self, repo: Repo, reader: ObjectReader) -> None:     # no git run here
        TempIndex.__init__(self, "patchq-bisect-")
        self.repo = repo
        self.reader = reader

    def load(self, commit: str, paths: list[str]) -> None:
        write_index_file(self.file, self.reader.entries(commit, paths))


def variant_at(reader: ObjectReader, commit: str, loaded: LoadedPatch, renames: dict[str, Rename]) -> LoadedPatch:
    """The patch as it applies at `commit`: its renamed files followed where the old path is gone there."""
    if not renames:
        return loaded
    gone = {}
    for section in loaded.patch.files:
        src = section.old_path
        if src in renames and not reader.entries(commit, [src]):
            gone[src] = renames[src]
    return retarget(loaded, gone)[0] if gone else loaded


def judge_at(repo: Repo, commit: str, prefix: list[LoadedPatch], loaded: LoadedPatch, *,
             index: SharedIndex | None = None, renames: dict[str, Rename] | None = None,
             quick: bool = False) -> OutcomeKind:
    """How `loaded` goes at `commit` on top of `prefix`: apply checks in a tiny temporary index.

    The same ladder as `run_queue` (keep going past a prefix patch that fails), minus the commits and the symlink
    guard, which only matter when a tree is written out. With a shared index (bisection), the index file and the
    object reader are reused from one commit to the next.
    """
    if index is None:
        paths = list(dict.fromkeys(p for item in (*prefix, loaded) for p in touched_paths(item.patch.files)))
        tiny = TinyIndex(repo, commit, paths)
        try:
            for item in prefix:
                classify_patch(repo, tiny, item)
            return classify_patch(repo, tiny, loaded)[0].kind
        finally:
            tiny.close()
    items = [variant_at(index.reader, commit, item, renames or {}) for item in (*prefix, loaded)]
    index.load(commit, list(dict.fromkeys(p for item in items for p in touched_paths(item.patch.files))))
    for item in items[:-1]:
        classify_patch(repo, index, item)
    if quick:
        # a bisection step only asks "does it apply as is": one `git apply --check`, not the whole ladder
        ok = repo.apply(items[-1].patch.diff, cached=True, check=True, env=index.env).ok
        return OutcomeKind.CLEAN if ok else OutcomeKind.CONFLICT
    return classify_patch(repo, index, items[-1])[0].kind


def check_bound(commits: int) -> int:
    return (math.ceil(math.log2(commits)) if commits > 1 else 0) + 1


def predict_at(reader: ObjectReader, commit: str, items: list[LoadedPatch], blobs: dict[str, bytes]) -> bool | None:
    """Whether the last of `items` applies as is at `commit` on top of the others, predicted in Python from the
    commit's files by git's own placement rules; None where git has to say (a binary, renamed, copied or
    mode-changing section, a symlink, a prefix patch that does not apply as is and would go down git's ladder)."""
    files: dict[str, bytes | None] = {}

    def content(path: str) -> bytes | None:
        if path not in files:
            found = reader.entries(commit, [path])
            if not found:
                files[path] = None
            else:
                mode, sha, _ = found[0]
                if mode not in ("100644", "100755"):
                    raise Unsure(f"{path} is not a regular file")
                if sha not in blobs:
                    data = reader.read(sha)
                    if data is None:
                        raise Unsure(f"{path} cannot be read")
                    blobs[sha] = data
                files[path] = blobs[sha]
        return files[path]

    try:
        for number, item in enumerate(items):
            staged: dict[str, bytes | None] = {}
            applies = True
            for section in item.patch.files:
                if (section.binary or section.rename or section.copy or "120000" in (section.old_mode, section.new_mode)
                        or (section.old_mode and section.new_mode and section.old_mode != section.new_mode)
                        or (not section.hunks and not section.is_new and not section.is_deleted)):
                    raise Unsure("a section only git can judge")
                path = section.path
                old = staged[path] if path in staged else content(path)
                if section.is_new != (old is None):
                    applies = False                # a new file that exists, a changed one that does not
                    break
                new = git_would_apply(old or b"", section.hunks)
                if new is None or (section.is_deleted and new):
                    applies = False
                    break
                staged[path] = None if section.is_deleted else new
            if not applies:
                if number == len(items) - 1:
                    return False
                raise Unsure("a patch below it does not apply as is")
            files.update(staged)
        return True
    except Unsure:
        return None


def _bisect(repo: Repo, index: SharedIndex, walk: list[tuple[str, str]], prefix: list[LoadedPatch],
            loaded: LoadedPatch, at_end: OutcomeKind, renames: dict[str, Rename], blobs: dict[str, bytes]
            ) -> tuple[int, int, OutcomeKind]:
    """The first state of `walk` where the patch stops applying as is, how many steps the search took, and what
    the patch does there (judged by git through the whole ladder).

    The search is guided by `predict_at` where it can answer, so most steps start no git process; git then
    confirms the answer at the two states around it (applies just before, does not at it). If git disagrees, the
    search runs again with git judging every step, as it does wherever the prediction is unsure.
    """
    last = walk[-1][0]
    seen: dict[str, OutcomeKind] = {last: at_end}
    by_git = {last}

    def git_says(commit: str) -> bool:
        seen[commit] = judge_at(repo, commit, prefix, loaded, index=index, renames=renames, quick=True)
        by_git.add(commit)
        return seen[commit] in CLEAN_KINDS

    def guided(commit: str) -> bool:
        items = [variant_at(index.reader, commit, item, renames) for item in (*prefix, loaded)]
        guess = predict_at(index.reader, commit, items, blobs)
        if guess is None:
            return git_says(commit)
        seen[commit] = OutcomeKind.CLEAN if guess else OutcomeKind.CONFLICT
        return guess

    def settle(search: Callable[[str], bool]) -> tuple[int, int, OutcomeKind]:
        found, checks = find_breaking_commit(walk, search)
        state = walk[found][0]
        kind = at_end if state == last else judge_at(repo, state, prefix, loaded, index=index, renames=renames)
        return found, checks, kind

    found, checks, kind = settle(guided)
    before = walk[found - 1][0] if found > 0 else ""
    confirmed = kind not in CLEAN_KINDS and (
        not before or (seen[before] in CLEAN_KINDS if before in by_git else git_says(before)))
    if not confirmed:                    # the prediction misled the search: git judges every step
        seen.clear()
        seen[last] = at_end
        found, checks, kind = settle(git_says)
    return found, checks, kind


# ---- the survey: before, after, patch-ids, bisection -----------------------------------------------------------------

@dataclass
class Survey:
    old_outcomes: list[Outcome]
    old_commits: dict[str, str]
    old_head: str
    probe: list[Outcome]
    probe_commits: dict[str, str]
    probe_head: str
    matched: dict[str, list[str]]
    breaking: list[BreakingCommit]
    judged: int
    bisect: int


def honest(outcome: Outcome, moved: LoadedPatch, moves: Moves) -> Outcome:
    """A patch that changes a file upstream deleted is a conflict naming the deletion, whatever git said."""
    lines = deleted_in(moved, moves.deleted)
    if not lines or outcome.kind.applied:
        return outcome
    return Outcome(outcome.patch_id, outcome.upstream, OutcomeKind.CONFLICT, outcome.files, outcome.hunks,
                   "; ".join(lines), outcome.commit, outcome.offsets)


def survey(repo: Repo, patches: list[LoadedPatch], moved: list[LoadedPatch], old: str, new: str, direction: str,
           walk: list[tuple[str, str]], *, refs: str, moves: Moves, patch_ids: bool = True) -> Survey:
    """The queue at the old base (the before view), at the new base (kept: its commits are the rebase's own as
    far as they go), patch-id matches, and the breaking commit of every patch that stopped applying cleanly."""
    old_run = run_queue(repo, old, patches, keep_going=True, commit_ref=f"{refs}/old")
    probe = run_queue(repo, new, moved, keep_going=True, commit_ref=f"{refs}/probe")
    probe.outcomes = [honest(o, m, moves) for o, m in zip(probe.outcomes, moved)]
    judged = 2 * len(patches)
    upstream_ids = _upstream_patch_ids(repo, old, new, direction, patches) if patch_ids else {}
    matched: dict[str, list[str]] = {}
    if upstream_ids:
        for pid, patch_id in _patch_ids(repo, patches).items():
            if patch_id in upstream_ids:
                commit = upstream_ids[patch_id]
                matched[pid] = [commit, repo.subject(commit)]
    breaking: list[BreakingCommit] = []
    bisect = 0
    blobs: dict[str, bytes] = {}
    reader: ObjectReader | None = None
    index: SharedIndex | None = None
    renames = moves.renames if direction == "forward" else {}
    try:
        for position, loaded in enumerate(patches):
            before, after = old_run.outcomes[position], probe.outcomes[position]
            pid = loaded.entry.id
            if pid in matched:
                commit, subject = matched[pid]
                breaking.append(BreakingCommit(pid, commit, subject, OutcomeKind.ALREADY_UPSTREAM, 0, 0, len(walk),
                                               detail="same patch-id as this upstream commit"))
                continue
            if after.kind in CLEAN_KINDS or after.kind == OutcomeKind.EMPTY or not walk:
                continue
            if before.kind not in CLEAN_KINDS:
                breaking.append(BreakingCommit(pid, "", "", before.kind, 0, check_bound(len(walk)), len(walk),
                                               detail=f"not clean at the old pin either ({before.kind.value})"))
                continue
            if index is None:
                reader = repo.object_reader()
                index = SharedIndex(repo, reader)
            prefix = path_closure(patches, position)
            found, checks, kind = _bisect(repo, index, walk, prefix, loaded, after.kind, renames, blobs)
            judged += checks * (len(prefix) + 1)
            bisect += checks
            state, blame = walk[found]
            detail = after.detail if (state == walk[-1][0] and deleted_in(moved[position], moves.deleted)) else ""
            if detail:
                kind = OutcomeKind.CONFLICT
            breaking.append(BreakingCommit(pid, blame, repo.subject(blame), kind, checks,
                                           check_bound(len(walk)), len(walk), undone=direction == "backward",
                                           detail=detail))
    finally:
        if index is not None:
            index.close()
        if reader is not None:
            reader.close()
    return Survey(old_run.outcomes, old_run.commits, old_run.head, probe.outcomes, probe.commits, probe.head,
                  matched, breaking, judged, bisect)


# ---- side patches ----------------------------------------------------------------------------------------------------

def _verdict(kind: OutcomeKind) -> str:
    if kind == OutcomeKind.CLEAN:
        return "still-applies"
    if kind in (OutcomeKind.OFFSET, OutcomeKind.FUZZ, OutcomeKind.THREEWAY):
        return "needs-refresh"
    if kind in (OutcomeKind.ALREADY_UPSTREAM, OutcomeKind.EMPTY):
        return "already-upstream"
    return "broken"


def side_entries(ws: Workspace, stack: Stack, upstream: str) -> list[PatchEntry]:
    """Negative-archived and diagnostic patches of the upstream that the stack does not apply."""
    in_stack = {e.id for e in ws.stack_entries(stack, upstream)}
    return [e for e in ws.queue(upstream).entries
            if e.status in (Status.NEGATIVE_ARCHIVED, Status.DIAGNOSTIC) and e.id not in in_stack]


def check_side(repo: Repo, ws: Workspace, entries: list[PatchEntry], order: list[str], commits: dict[str, str],
               base: str, head: str, moves: Moves | None = None) -> list[SideCheck]:
    """Each side patch alone on the rebased stack at its `base` patch (the last commit at or before it)."""
    out = []
    for entry in entries:
        at = head
        if entry.base and entry.base in order:
            at = base
            for pid in order[: order.index(entry.base) + 1]:
                at = commits.get(pid, at)
        loaded = retarget(load_patch(ws, entry), moves.renames)[0] if moves else load_patch(ws, entry)
        outcome = run_queue(repo, at, [loaded], keep_going=True).outcomes[0]
        out.append(SideCheck(entry.id, entry.status, _verdict(outcome.kind), outcome, entry.base))
    return out


