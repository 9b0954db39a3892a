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

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import re
import shutil
import signal
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Callable

from .apply import LoadedPatch, TinyIndex, classify_patch, load_patch, run_queue
from .errors import BadInput, NeedsYou
from .git import Repo, run_git
from .model import FULL_SHA, HunkProblem, Outcome, OutcomeKind, PatchEntry, Stack, Status
from .patchfile import commit_message, date_to_git, read_patch_file, touched_paths
from .sources import ensure_mirror, resolve_ref
from .workspace import (LOCK_NAME, SERIES_NAME, STATE_DIR, Workspace, load_workspace, set_lock_values,
                        workspace_lock, write_atomic)

STATE_VERSION = 1
CRASH_ENV = "PATCHQ_TEST_CRASH_AT"     # test hook: the named step at which the process kills itself
CRASH_POINTS = ("started", "applied", "conflict-worktree", "resolved-commit", "aside-written", "swap-committed",
                "mid-swap", "swapped")
CLEAN_KINDS = (OutcomeKind.CLEAN, OutcomeKind.OFFSET)
RERERE_REPLAYED = re.compile(r"^Resolved '(.+)' using previous resolution\.$", re.M)
MARKER_LINE = re.compile(rb"^\+(<{7}|>{7}|\|{7})( |$)", re.M)
RANGE_LINE = re.compile(r"^\s*(\d+|-):\s+([0-9a-f]+|-+)\s+([=!<>])\s+(\d+|-):\s+([0-9a-f]+|-+)\s?(.*)$")


def crash_point(name: str) -> None:
    """Die here exactly like `kill -9` when PATCHQ_TEST_CRASH_AT names this step (tests prove recovery with it)."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


# ---- results ---------------------------------------------------------------------------------------------------------

class StepKind(str, Enum):
    """What became of one patch of the stack on the new base."""

    APPLIED = "applied"                   # git applied it (the outcome says clean, offset, fuzz or 3-way)
    RESOLVED = "resolved"                 # you resolved a conflict in the resolution work tree
    RERERE = "resolved (rerere)"          # a recorded resolution replayed the same fix
    SKIPPED = "skipped"                   # --skip: kept in the queue, left out of the new stack
    ALREADY_UPSTREAM = "already-upstream"  # upstream has it: left out, proposed for archiving
    EMPTY = "empty"                       # nothing left to change on the new base: left out
    CONFLICT = "conflict"                 # the rebase stopped here
    PENDING = "pending"                   # not reached yet (the outcome is the prediction)

    @property
    def in_new_stack(self) -> bool:
        return self in (StepKind.APPLIED, StepKind.RESOLVED, StepKind.RERERE)


@dataclass(frozen=True)
class RebaseStep:
    patch_id: str
    kind: StepKind
    outcome: Outcome                      # how the original patch went on the new base
    commit: str = ""                      # its commit in the rebased stack
    detail: str = ""
    upstream_commit: str = ""             # already-upstream by patch-id: the upstream commit carrying it
    upstream_subject: str = ""


@dataclass(frozen=True)
class BreakingCommit:
    """The first upstream commit between the pins at which a patch stops applying cleanly."""

    patch_id: str
    commit: str
    subject: str
    kind: OutcomeKind                     # how the patch went at that commit
    checks: int                           # apply checks the bisection made
    bound: int                            # ceil(log2 K) + 1 for K commits
    searched: int                         # K: commits between the pins on the first-parent path
    undone: bool = False                  # moving back: undoing this commit breaks the patch
    detail: str = ""


@dataclass(frozen=True)
class QueueChange:
    """One patch in the before/after comparison, as `git range-diff` pairs them."""

    patch_id: str
    change: str                           # unchanged | changed | dropped | added
    old_commit: str = ""
    new_commit: str = ""


@dataclass(frozen=True)
class SideCheck:
    """A negative-archived or diagnostic patch tried alone on top of the rebased stack (at its base)."""

    patch_id: str
    status: Status
    verdict: str                          # still-applies | needs-refresh | broken | already-upstream
    outcome: Outcome
    base: str                             # the stack patch it sits on ("" = the top)


@dataclass(frozen=True)
class ConflictStop:
    patch_id: str
    source: str                           # the patch file, workspace-relative
    worktree: str
    files: tuple[str, ...]                # paths with conflict markers (unmerged)
    rejects: tuple[str, ...] = ()         # .rej files where no 3-way merge was possible
    rerere: tuple[str, ...] = ()          # paths a recorded resolution already fixed
    hunks: tuple[HunkProblem, ...] = ()


@dataclass(frozen=True)
class RebaseReport:
    upstream: str
    stack: str
    ref: str
    old_pin: str
    new_pin: str
    direction: str                        # forward | backward | diverged | same
    commits_between: int
    state: str                            # dry-run | stopped | done | aborted
    steps: tuple[RebaseStep, ...] = ()
    breaking: tuple[BreakingCommit, ...] = ()
    side: tuple[SideCheck, ...] = ()
    queue_changes: tuple[QueueChange, ...] = ()
    range_diff: str = ""
    range_diff_file: str = ""
    conflict: ConflictStop | None = None
    files_changed: tuple[str, ...] = ()
    pin_written: str = ""                 # where the new pin went in pins.lock
    tree: str = ""
    verified: bool | None = None          # the regenerated files reproduce the rebased tree
    apply_checks: int = 0                 # patch judgements in total (surveys, steps, bisection, side checks)
    bisect_checks: int = 0                # commits tested by the breaking-commit searches
    notes: tuple[str, ...] = ()
    next_steps: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.state in ("done", "aborted") or (
            self.state == "dry-run" and not any(s.kind == StepKind.CONFLICT for s in self.steps))


# ---- files on disk ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RebasePaths:
    root: Path

    @property
    def dir(self) -> Path:
        return self.root / STATE_DIR / "rebase"

    @property
    def state(self) -> Path:
        return self.dir / "state.json"

    @property
    def worktree(self) -> Path:
        return self.dir / "worktree"

    @property
    def rr_cache(self) -> Path:
        return self.dir / "rr-cache"

    @property
    def swap(self) -> Path:
        return self.dir / "swap"


def workspace_rr_cache(upstream: str) -> str:
    """Where recorded resolutions are kept in the workspace (committed with the queue, so other machines get them)."""
    return f"queues/{upstream}/rr-cache"


def range_diff_path(upstream: str, old: str, new: str) -> str:
    return f"queues/{upstream}/rebases/{old[:12]}-{new[:12]}.range-diff"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha(path: Path) -> str | None:
    try:
        return _sha256(path.read_bytes())
    except FileNotFoundError:
        return None


@dataclass
class RebaseState:
    """Everything a later `--continue`, `--skip` or `--abort` needs, saved atomically after every step."""

    upstream: str
    stack: str
    ref: str
    old_pin: str
    onto: str
    direction: str
    commits_between: int
    mirror: str
    refs: str                                             # refs/patchq/rebase/<workspace key>
    patches: list[dict[str, str]]                         # id and file, in stack order
    inputs: dict[str, str]                                # workspace file -> sha256 at the start
    matched: dict[str, list[str]]                         # patch id -> [upstream commit, subject] (patch-id)
    probe: list[dict[str, Any]]                           # outcomes on the new base, original patches
    old_commits: dict[str, str]
    old_head: str
    breaking: list[dict[str, Any]]
    notes: list[str]
    head: str
    next: int = 0
    phase: str = "applying"                               # applying | conflict | finishing | swapping
    steps: list[dict[str, Any]] = field(default_factory=list)
    conflict: dict[str, Any] | None = None
    counts: dict[str, int] = field(default_factory=lambda: {"judged": 0, "bisect": 0})
    swap: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, Any] = field(default_factory=dict)
    version: int = STATE_VERSION

    def save(self, paths: RebasePaths) -> None:
        write_atomic(paths.state, json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True).encode())

    @classmethod
    def load(cls, paths: RebasePaths) -> "RebaseState":
        try:
            data = json.loads(paths.state.read_bytes())
        except FileNotFoundError:
            raise BadInput("no rebase in progress (start one with 'patchq rebase --onto UPSTREAM@REF')") from None
        except ValueError as exc:
            raise BadInput(f"rebase state is not readable ({exc})", path=str(paths.state)) from None
        if data.get("version") != STATE_VERSION:
            raise BadInput(f"rebase state version {data.get('version')!r} is not this patchq's "
                           f"({STATE_VERSION}); finish or abort it with the patchq that started it",
                           path=str(paths.state))
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _outcome_to_dict(outcome: Outcome) -> dict[str, Any]:
    data = dataclasses.asdict(outcome)
    data["kind"] = outcome.kind.value
    return data


def _outcome_from_dict(data: dict[str, Any]) -> Outcome:
    return Outcome(data["patch_id"], data["upstream"], OutcomeKind(data["kind"]), tuple(data.get("files", ())),
                   tuple(HunkProblem(**h) for h in data.get("hunks", ())), data.get("detail", ""),
                   data.get("commit", ""), tuple(data.get("offsets", ())))


def _step_to_dict(step: RebaseStep) -> dict[str, Any]:
    data = dataclasses.asdict(step)
    data["kind"] = step.kind.value
    data["outcome"] = _outcome_to_dict(step.outcome)
    return data


def _step_from_dict(data: dict[str, Any]) -> RebaseStep:
    return RebaseStep(data["patch_id"], StepKind(data["kind"]), _outcome_from_dict(data["outcome"]),
                      data.get("commit", ""), data.get("detail", ""), data.get("upstream_commit", ""),
                      data.get("upstream_subject", ""))


def _breaking_from_dict(data: dict[str, Any]) -> BreakingCommit:
    return BreakingCommit(**{**data, "kind": OutcomeKind(data["kind"])})


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
        for line in repo.out("rev-list", "--first-parent", "--parents", f"{new}..{old}").splitlines():
            commit, *parents = line.split()
            if parents:
                walk.append((parents[0], commit))
        if not walk or walk[-1][0] != new:
            walk.append((new, new))
        return "backward", walk
    return "diverged", [(c, c) for c in repo.rev_list("--first-parent", "--reverse", f"{old}..{new}")]


def _upstream_patch_ids(repo: Repo, old: str, new: str, direction: str) -> dict[str, str]:
    """patch-id -> upstream commit for every non-merge commit the new base has and the old pin has not."""
    if direction not in ("forward", "diverged"):
        return {}
    log = repo.run("log", "-p", "--no-merges", "--no-color", "--no-ext-diff", "--full-index", "--binary",
                   "--no-renames", f"{old}..{new}").stdout
    if not log.strip():
        return {}
    found: dict[str, str] = {}
    for line in repo.run("patch-id", "--stable", input=log).out.splitlines():
        parts = line.split()
        if len(parts) == 2:
            found.setdefault(parts[0], parts[1])
    return found


def _patch_ids(repo: Repo, patches: list[LoadedPatch]) -> dict[str, str]:
    """Stable patch-id of every patch, in one `git patch-id` run (each diff under a made-up commit line)."""
    feed = b"".join(f"commit {index:040x}\n\n".encode() + p.patch.diff + (b"" if p.patch.diff.endswith(b"\n")
                                                                         else b"\n")
                    for index, p in enumerate(patches))
    if not feed:
        return {}
    out = {}
    for line in repo.run("patch-id", "--stable", input=feed).out.splitlines():
        pid, commit = line.split()
        out[patches[int(commit, 16)].entry.id] = pid
    return out


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


def judge_at(repo: Repo, commit: str, prefix: list[LoadedPatch], loaded: LoadedPatch) -> OutcomeKind:
    """How `loaded` goes at `commit` on top of `prefix`: one apply check in a tiny temporary index.

    The same ladder as `run_queue` (keep going past a prefix patch that fails), minus the commits and the symlink
    guard, which only matter when a tree is written out.
    """
    paths = list(dict.fromkeys(p for item in (*prefix, loaded) for p in touched_paths(item.patch.files)))
    index = TinyIndex(repo, commit, paths)
    try:
        for item in prefix:
            classify_patch(repo, index, item)
        return classify_patch(repo, index, loaded)[0].kind
    finally:
        index.close()


def check_bound(commits: int) -> int:
    return (math.ceil(math.log2(commits)) if commits > 1 else 0) + 1


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


def survey(repo: Repo, patches: list[LoadedPatch], old: str, new: str, direction: str,
           walk: list[tuple[str, str]], *, refs: str, keep_probe: bool) -> Survey:
    old_run = run_queue(repo, old, patches, keep_going=True, commit_ref=f"{refs}/old")
    probe = run_queue(repo, new, patches, keep_going=True, commit_ref=f"{refs}/probe" if keep_probe else None)
    judged = 2 * len(patches)
    upstream_ids = _upstream_patch_ids(repo, old, new, direction)
    matched: dict[str, list[str]] = {}
    if upstream_ids:
        for pid, patch_id in _patch_ids(repo, patches).items():
            if patch_id in upstream_ids:
                commit = upstream_ids[patch_id]
                matched[pid] = [commit, repo.subject(commit)]
    breaking: list[BreakingCommit] = []
    bisect = 0
    for index, loaded in enumerate(patches):
        before, after = old_run.outcomes[index], probe.outcomes[index]
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
        prefix = path_closure(patches, index)
        seen: dict[str, OutcomeKind] = {walk[-1][0]: after.kind}

        def applies_at(commit: str, prefix=prefix, loaded=loaded, seen=seen) -> bool:
            seen[commit] = judge_at(repo, commit, prefix, loaded)
            return seen[commit] in CLEAN_KINDS

        found, checks = find_breaking_commit(walk, applies_at)
        judged += checks * (len(prefix) + 1)
        bisect += checks
        state, blame = walk[found]
        breaking.append(BreakingCommit(pid, blame, repo.subject(blame), seen[state], checks,
                                       check_bound(len(walk)), len(walk), undone=direction == "backward"))
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
               base: str, head: str) -> list[SideCheck]:
    """Each side patch alone on the rebased stack at its `base` patch (the last commit at or before it)."""
    out = []
    for entry in entries:
        at = head
        if entry.base and entry.base in order:
            at = base
            for pid in order[: order.index(entry.base) + 1]:
                at = commits.get(pid, at)
        loaded = load_patch(ws, entry)
        outcome = run_queue(repo, at, [loaded], keep_going=True).outcomes[0]
        out.append(SideCheck(entry.id, entry.status, _verdict(outcome.kind), outcome, entry.base))
    return out


# ---- the resolution work tree ----------------------------------------------------------------------------------------

def _prepare_worktree(repo: Repo, paths: RebasePaths, head: str) -> Repo:
    """A work tree at `head` sharing the mirror's objects, with rerere on and its cache in the rebase folder."""
    paths.rr_cache.mkdir(parents=True, exist_ok=True)
    if (paths.worktree / ".git").is_dir():
        wt = Repo(paths.worktree)
        wt.run("rerere", "clear", check=False)
        wt.run("reset", "-q", "--hard", head)
        wt.run("clean", "-q", "-fdx")
        return wt
    shutil.rmtree(paths.worktree, ignore_errors=True)
    tmp = paths.dir / "worktree.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    run_git(["clone", "--quiet", "--shared", "--no-checkout", str(repo.path), str(tmp)])
    made = Repo(tmp)
    for key, value in (("rerere.enabled", "true"), ("gc.auto", "0"), ("core.autocrlf", "false"),
                       ("advice.detachedHead", "false")):
        made.config(key, value)
    # relative, so it points at the same folder from worktree.tmp and worktree, and survives moving the workspace
    (tmp / ".git" / "rr-cache").symlink_to(Path("..") / ".." / "rr-cache")
    made.run("checkout", "-q", "--detach", head)
    os.replace(tmp, paths.worktree)
    return Repo(paths.worktree)


def _untracked(wt: Repo) -> list[str]:
    return [p for p in wt.run("ls-files", "-z", "--others", "--exclude-standard").out.split("\0") if p]


def _open_conflict(repo: Repo, paths: RebasePaths, head: str, loaded: LoadedPatch) -> tuple[Repo, ConflictStop]:
    """Apply the patch in the resolution work tree with a real 3-way merge; rerere replays what it knows."""
    wt = _prepare_worktree(repo, paths, head)
    res = wt.apply(loaded.patch.diff, index=True, threeway=True)
    replayed = sorted(set(RERERE_REPLAYED.findall(res.stderr)))
    rejects: list[str] = []
    if not res.ok and not wt.unmerged_paths() and not wt.status_porcelain():
        # no pre-image blobs for a 3-way merge: apply what applies, leave the rest as .rej files
        wt.run("apply", "--reject", "--whitespace=nowarn", "-", input=loaded.patch.diff, check=False)
        rejects = sorted(p for p in _untracked(wt) if p.endswith(".rej"))
    fixed = [p for p in replayed if p in wt.unmerged_paths() and not _has_markers(wt.path / p)]
    if fixed:
        wt.run("add", "--", *fixed)
    stop = ConflictStop(loaded.entry.id, loaded.source, str(paths.worktree), tuple(wt.unmerged_paths()),
                        tuple(rejects), tuple(replayed))
    return wt, stop


def _has_markers(path: Path) -> bool:
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        return False
    return re.search(rb"^(<{7}|>{7})( |$)", data, re.M) is not None


def _unresolved(wt: Repo, head: str) -> list[str]:
    """Why the work tree cannot be committed yet, one line per problem; empty when it can."""
    problems = []
    unmerged = wt.unmerged_paths()
    if unmerged:
        problems.append("unmerged (edit, then git add): " + ", ".join(unmerged))
    rejects = sorted(p for p in _untracked(wt) if p.endswith(".rej"))
    if rejects:
        problems.append("rejected hunks to apply by hand, then delete: " + ", ".join(rejects))
    staged = wt.run("diff", "--cached", "--no-color", "--no-ext-diff", head, "--").stdout
    marked: list[str] = []
    current = ""
    for line in staged.split(b"\n"):
        if line.startswith(b"+++ b/"):
            current = line[6:].decode("utf-8", "replace")
        elif MARKER_LINE.match(line + b"\n") and current not in marked:
            marked.append(current)
    if marked:
        problems.append("conflict markers still staged in: " + ", ".join(marked))
    unstaged = [p for p in wt.run("diff", "--name-only", "-z").out.split("\0") if p and p not in unmerged]
    if unstaged:
        problems.append("changed but not staged (git add them, or git checkout -- them): " + ", ".join(unstaged))
    return problems


def _commit_resolution(repo: Repo, wt: Repo, refs: str, head: str, loaded: LoadedPatch) -> str:
    """The resolution as the patch's commit on `head` (same message, author and date as run_queue writes), copied
    into the mirror. Returns "" when the resolution changes nothing."""
    wt.run("rerere", check=False)                       # record the resolution for next time
    tree = wt.write_tree()
    if tree == repo.tree_of(head):
        return ""
    author = loaded.patch.author or loaded.entry.author or "patchq <patchq@localhost>"
    commit = wt.commit_tree(tree, [head], commit_message(loaded.entry), author=author,
                            date="@" + date_to_git(loaded.patch.date))
    wt.run("update-ref", "refs/patchq/resolved", commit)
    repo.run("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", str(wt.path),
             f"+refs/patchq/resolved:{refs}/resolved")
    return commit


# ---- starting --------------------------------------------------------------------------------------------------------

def _in_progress_error(paths: RebasePaths) -> BadInput:
    return BadInput("a rebase is already in progress; finish it with 'patchq rebase --continue' (after resolving "
                    "in the work tree), leave the stopped patch out with '--skip', or undo it all with '--abort'",
                    path=str(paths.state))


def _inputs(ws: Workspace, upstream: str, entries: list[PatchEntry]) -> dict[str, str]:
    files = [ws.lock_path, ws.queue_dir(upstream) / SERIES_NAME, *(ws.patch_path(e) for e in entries)]
    return {ws.rel(p): _file_sha(p) or "" for p in files}


def start_rebase(root: Path, onto: str, stack_name: str | None = None, *, dry_run: bool = False) -> RebaseReport:
    """Survey and start moving a stack's queue onto UPSTREAM@REF; stops at the first conflict it cannot resolve."""
    paths = RebasePaths(root)
    if paths.state.exists():
        raise _in_progress_error(paths)
    ws = load_workspace(root)
    name, ref = parse_onto(onto)
    upstream = ws.upstream(name)
    stack = choose_stack(ws, name, stack_name)
    old = ws.pin_for(stack, name)
    repo = ensure_mirror(upstream, workspace=root, need=(old,))
    if not (FULL_SHA.match(ref) and repo.has_commit(ref)):
        repo = ensure_mirror(upstream, workspace=root, need=(old,), refresh=True)
    new = resolve_ref(repo, upstream, ref)
    entries = ws.stack_entries(stack, name)
    patches = [load_patch(ws, e) for e in entries]
    direction, walk = _path_between(repo, old, new)
    refs = f"refs/patchq/rebase/{_workspace_key(root)}"
    notes = _direction_notes(repo, direction, ref, old, new, len(walk)) + _shared_notes(ws, stack, name)
    if dry_run:
        return _dry_run(ws, repo, stack, name, ref, old, new, direction, walk, patches, refs, notes)
    with workspace_lock(root, f"rebase --onto {onto}"):
        if paths.state.exists():
            raise _in_progress_error(paths)
        shutil.rmtree(paths.dir, ignore_errors=True)    # what a finished or aborted run left if it was killed
        found = survey(repo, patches, old, new, direction, walk, refs=refs, keep_probe=False)
        state = RebaseState(
            upstream=name, stack=stack.name, ref=ref, old_pin=old, onto=new, direction=direction,
            commits_between=len(walk), mirror=str(repo.path), refs=refs,
            patches=[{"id": p.entry.id, "file": p.entry.file} for p in patches],
            inputs=_inputs(ws, name, [*entries, *side_entries(ws, stack, name)]), matched=found.matched,
            probe=[_outcome_to_dict(o) for o in found.probe], old_commits=found.old_commits, old_head=found.old_head,
            breaking=[{**dataclasses.asdict(b), "kind": b.kind.value} for b in found.breaking], notes=notes,
            head=new, counts={"judged": found.judged, "bisect": found.bisect})
        _seed_rr_cache(ws, name, paths)
        state.save(paths)
        crash_point("started")
        return _advance(ws, repo, state, paths, patches)


def _direction_notes(repo: Repo, direction: str, ref: str, old: str, new: str, count: int) -> list[str]:
    if direction == "same":
        return [f"{ref} is the current pin {old[:12]}: the patch files are only regenerated"]
    if direction == "backward":
        return [f"{ref} ({new[:12]}) is OLDER than the current pin {old[:12]}: moving the queue back over "
                f"{count} first-parent commits"]
    if direction == "diverged":
        base = repo.out("merge-base", old, new)
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
             walk: list[tuple[str, str]], patches: list[LoadedPatch], refs: str, notes: list[str]) -> RebaseReport:
    """The whole report — outcomes, breaking commits, side patches — with nothing in the workspace touched."""
    try:
        found = survey(repo, patches, old, new, direction, walk, refs=refs, keep_probe=True)
        order = [p.entry.id for p in patches]
        side = check_side(repo, ws, side_entries(ws, stack, name), order, found.probe_commits, new, found.probe_head)
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
            steps.append(RebaseStep(pid, _kind_of(outcome.kind), outcome, detail=outcome.detail))
    return RebaseReport(name, stack.name, ref, old, new, direction, len(walk), "dry-run", tuple(steps),
                        tuple(found.breaking), tuple(side), apply_checks=found.judged + len(side),
                        bisect_checks=found.bisect, notes=tuple(notes),
                        next_steps=tuple(_archive_steps(name, steps)))


def _kind_of(kind: OutcomeKind) -> StepKind:
    if kind.applied:
        return StepKind.APPLIED
    if kind == OutcomeKind.ALREADY_UPSTREAM:
        return StepKind.ALREADY_UPSTREAM
    if kind == OutcomeKind.EMPTY:
        return StepKind.EMPTY
    return StepKind.CONFLICT


def _archive_steps(upstream: str, steps: list[RebaseStep]) -> list[str]:
    return [f"{upstream}:{s.patch_id} is already upstream"
            + (f" ({s.upstream_commit[:12]} {s.upstream_subject})" if s.upstream_commit else "")
            + f": archive it with 'patchq status {upstream}:{s.patch_id} negative-archived'"
            for s in steps if s.kind in (StepKind.ALREADY_UPSTREAM, StepKind.EMPTY)]


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


def _advance(ws: Workspace, repo: Repo, state: RebaseState, paths: RebasePaths,
             patches: list[LoadedPatch]) -> RebaseReport:
    """Apply what applies, stop at a conflict rerere cannot settle, finish when every patch is placed."""
    while state.phase == "applying":
        todo = [(i, p) for i, p in enumerate(patches) if i >= state.next and p.entry.id not in state.matched]
        run = run_queue(repo, state.head, [p for _, p in todo], commit_ref=f"{state.refs}/new")
        crash_point("applied")
        outcomes = {p.entry.id: o for (_, p), o in zip(todo, run.outcomes)}
        stopped = None
        for index in range(state.next, len(patches)):
            pid = patches[index].entry.id
            if pid in state.matched:
                commit, subject = state.matched[pid]
                probe = _outcome_from_dict(state.probe[index])
                step = RebaseStep(pid, StepKind.ALREADY_UPSTREAM, probe, upstream_commit=commit,
                                  upstream_subject=subject, detail="same patch-id as an upstream commit")
            else:
                outcome = outcomes[pid]
                state.counts["judged"] += 1
                if outcome.kind == OutcomeKind.CONFLICT:
                    stopped = (index, outcome)
                    break
                step = RebaseStep(pid, _kind_of(outcome.kind), outcome, commit=outcome.commit, detail=outcome.detail)
            state.steps.append(_step_to_dict(step))
            state.next = index + 1
        state.head = run.head
        if stopped is None:
            state.phase = "finishing"
            state.save(paths)
            break
        index, outcome = stopped
        state.save(paths)
        loaded = patches[index]
        wt, stop = _open_conflict(repo, paths, state.head, loaded)
        crash_point("conflict-worktree")
        stop = dataclasses.replace(stop, hunks=outcome.hunks)
        if not stop.files and not stop.rejects and not _unresolved(wt, state.head):
            commit = _commit_resolution(repo, wt, state.refs, state.head, loaded)
            kind = StepKind.RERERE if stop.rerere else StepKind.APPLIED
            _place(state, loaded, outcome, kind, commit, "a recorded resolution was replayed" if stop.rerere else "")
            state.save(paths)
            continue
        state.phase = "conflict"
        state.conflict = {**dataclasses.asdict(stop), "outcome": _outcome_to_dict(outcome)}
        state.save(paths)
        return _report(state, "stopped")
    if state.phase == "finishing":
        _finish(ws, repo, state, paths, patches)
    if state.phase == "swapping":
        _swap_in(ws.root, paths, state)
        _cleanup(paths, state)
    return _report(state, "done")


def _place(state: RebaseState, loaded: LoadedPatch, outcome: Outcome, kind: StepKind, commit: str,
           detail: str) -> None:
    """Record a conflicted patch as settled (resolved, replayed, skipped or emptied) and move past it."""
    if kind != StepKind.SKIPPED and not commit:
        kind, detail = StepKind.EMPTY, "the resolution changes nothing on the new base"
    state.steps.append(_step_to_dict(RebaseStep(loaded.entry.id, kind, outcome, commit=commit, detail=detail)))
    if commit:
        state.head = commit
    state.next += 1
    state.phase = "applying"
    state.conflict = None


def continue_rebase(root: Path) -> RebaseReport:
    """Take the staged resolution of the stopped patch and go on; or finish an interrupted completion."""
    paths = RebasePaths(root)
    with workspace_lock(root, "rebase --continue"):
        state = RebaseState.load(paths)
        if state.phase == "swapping":
            _swap_in(root, paths, state)
            _cleanup(paths, state)
            return _report(state, "done")
        ws = load_workspace(root)
        patches = _load_patches(ws, state)
        repo = _mirror(state)
        if state.phase == "conflict":
            loaded = patches[state.next]
            outcome = _outcome_from_dict(state.conflict["outcome"])
            if not (paths.worktree / ".git").is_dir():
                return _reopen(repo, state, paths, loaded, outcome)
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
        return _advance(ws, repo, state, paths, patches)


def _reopen(repo: Repo, state: RebaseState, paths: RebasePaths, loaded: LoadedPatch,
            outcome: Outcome) -> RebaseReport:
    """The resolution work tree is gone (deleted, or the machine changed): make it again and stop there."""
    wt, stop = _open_conflict(repo, paths, state.head, loaded)
    del wt
    state.conflict = {**dataclasses.asdict(dataclasses.replace(stop, hunks=outcome.hunks)),
                      "outcome": _outcome_to_dict(outcome)}
    state.save(paths)
    state.notes = [*state.notes, f"the resolution work tree was missing; it was made again at {paths.worktree}"]
    return _report(state, "stopped")


def skip_patch(root: Path) -> RebaseReport:
    """Leave the stopped patch out of the new stack (its file stays in the queue, unchanged) and go on."""
    paths = RebasePaths(root)
    with workspace_lock(root, "rebase --skip"):
        state = RebaseState.load(paths)
        if state.phase != "conflict":
            raise BadInput(f"the rebase is not stopped at a conflict (it is {state.phase}); use --continue")
        ws = load_workspace(root)
        patches = _load_patches(ws, state)
        repo = _mirror(state)
        loaded = patches[state.next]
        if (paths.worktree / ".git").is_dir():
            Repo(paths.worktree).run("rerere", "clear", check=False)
        _place(state, loaded, _outcome_from_dict(state.conflict["outcome"]), StepKind.SKIPPED, "",
               "skipped with --skip: kept in the queue unchanged, left out of the new stack")
        state.save(paths)
        return _advance(ws, repo, state, paths, patches)


def abort_rebase(root: Path) -> RebaseReport:
    """Put everything back as it was before the rebase started, whatever step it was interrupted at."""
    paths = RebasePaths(root)
    with workspace_lock(root, "rebase --abort"):
        state = RebaseState.load(paths)
        _swap_out(root, paths, state)
        report = _report(state, "aborted")
        _cleanup(paths, state)
        return report


def rebase_in_progress(root: Path) -> bool:
    return RebasePaths(root).state.exists()


# ---- completing ------------------------------------------------------------------------------------------------------

def _finish(ws: Workspace, repo: Repo, state: RebaseState, paths: RebasePaths, patches: list[LoadedPatch]) -> None:
    """Compute every new file, write them aside with copies of what they replace, then commit the swap list."""
    shutil.rmtree(paths.swap, ignore_errors=True)
    steps = [_step_from_dict(s) for s in state.steps]
    files: dict[str, bytes] = {}
    regenerated: list[LoadedPatch] = []
    diffs = commit_diffs(repo, state.onto, state.head)
    for loaded, step in zip(patches, steps):
        path = ws.patch_path(loaded.entry)
        data = path.read_bytes()
        if step.commit:
            data = loaded.patch.with_diff(diffs[step.commit])
            if data != path.read_bytes():
                files[ws.rel(path)] = data
        regenerated.append(LoadedPatch(loaded.entry, read_patch_file(data, source=loaded.source), loaded.source))
    head_tree = repo.tree_of(state.head)
    if all(step.commit for step in steps):
        # every regenerated diff is its commit's own diff, applied in the same order on the same base: the
        # files reproduce the rebased tree by construction
        tree, verified = head_tree, True
    else:
        verify = run_queue(repo, state.onto, regenerated, keep_going=True, commit_ref=f"{state.refs}/verify")
        state.counts["judged"] += len(regenerated)
        tree, verified = verify.tree, verify.tree == head_tree
    text, changes = _range_diff(repo, state, patches, steps)
    rd_rel = range_diff_path(state.upstream, state.old_pin, state.onto)
    files[rd_rel] = text.encode()
    files.update(_new_resolutions(ws, state.upstream, paths))
    stack = ws.stacks.get(state.stack)
    if stack is not None and state.upstream in stack.pins:
        lock = set_lock_values(ws, stack_pins={stack.name: {state.upstream: state.onto}},
                               trees={stack.name: {state.upstream: tree}})
        where = f"stacks.{stack.name}.pins.{state.upstream}"
    elif stack is not None:
        lock = set_lock_values(ws, pins={state.upstream: state.onto},
                               trees={stack.name: {state.upstream: tree}})
        where = f"upstreams.{state.upstream}.pin"
    else:
        lock = set_lock_values(ws, pins={state.upstream: state.onto})
        where = f"upstreams.{state.upstream}.pin"
    files[LOCK_NAME] = lock
    order = [p.entry.id for p in patches]
    commits = {s.patch_id: s.commit for s in steps if s.commit}
    side = check_side(repo, ws, side_entries(ws, stack or Stack("", (state.upstream,)), state.upstream), order,
                      commits, state.onto, state.head)
    state.counts["judged"] += len(side)
    state.final = {
        "range_diff": text, "range_diff_file": rd_rel, "pin_written": where, "tree": tree,
        "verified": verified, "changes": [dataclasses.asdict(c) for c in changes],
        "side": [{**dataclasses.asdict(s), "status": s.status.value, "outcome": _outcome_to_dict(s.outcome)}
                 for s in side],
        "files": sorted(files),
    }
    swap_dir = paths.swap
    entries = []
    for number, (rel, data) in enumerate(sorted(files.items())):
        target = ws.root / rel
        aside = swap_dir / "new" / str(number)
        write_atomic(aside, data)
        old_sha = _file_sha(target)
        if old_sha is not None:
            write_atomic(swap_dir / "old" / str(number), target.read_bytes())
        made = []
        parent = Path(rel).parent
        while str(parent) not in ("", ".") and not (ws.root / parent).exists():
            made.append(str(parent))
            parent = parent.parent
        entries.append({"path": rel, "new": str(aside.relative_to(paths.dir)), "new_sha": _sha256(data),
                        "old": f"swap/old/{number}" if old_sha else "", "old_sha": old_sha, "made_dirs": made})
    crash_point("aside-written")
    state.swap = entries
    state.phase = "swapping"
    state.save(paths)                                    # the commit point: from here on, --continue rolls forward
    crash_point("swap-committed")


def commit_diffs(repo: Repo, base: str, head: str) -> dict[str, bytes]:
    """The diff each commit of base..head introduces (as `git diff --full-index --binary` writes it), in one
    `git log` run. Diff bodies never start a line with 'commit ', so the split is unambiguous."""
    text = repo.run("log", "-p", "--first-parent", "--no-color", "--no-ext-diff", "--full-index", "--binary",
                    "--no-renames", "--src-prefix=a/", "--dst-prefix=b/", "--format=commit %H%n",
                    f"{base}..{head}").stdout
    out: dict[str, bytes] = {}
    for chunk in re.split(rb"(?m)^commit (?=[0-9a-f]{40}\n)", text)[1:]:
        sha, _, body = chunk.partition(b"\n")
        body = body.lstrip(b"\n")
        out[sha.decode()] = body
    return out


def _swap_in(root: Path, paths: RebasePaths, state: RebaseState) -> None:
    for number, entry in enumerate(state.swap):
        target = root / entry["path"]
        _drop_temp_files(target)
        if _file_sha(target) != entry["new_sha"]:
            write_atomic(target, (paths.dir / entry["new"]).read_bytes())
        if number == 0:
            crash_point("mid-swap")
    crash_point("swapped")


def _swap_out(root: Path, paths: RebasePaths, state: RebaseState) -> None:
    """Undo a swap, finished or not: every file back to its old bytes, files and folders it created removed."""
    for entry in reversed(state.swap):
        target = root / entry["path"]
        _drop_temp_files(target)
        if entry["old_sha"] is None:
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
            for folder in entry["made_dirs"]:
                with contextlib.suppress(OSError):
                    (root / folder).rmdir()
        elif _file_sha(target) != entry["old_sha"]:
            write_atomic(target, (paths.dir / entry["old"]).read_bytes())


def _drop_temp_files(target: Path) -> None:
    """Remove what a write_atomic of `target` killed before its rename left beside it (`.NAME.*.tmp`)."""
    if target.parent.is_dir():
        for leftover in target.parent.glob(f".{target.name}.*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def _cleanup(paths: RebasePaths, state: RebaseState) -> None:
    """Forget the rebase once the workspace is final (all new, or all old again).

    state.json goes first: without it nothing is in progress, and whatever a crash leaves behind here (folders,
    refs in the mirror) is removed by the next rebase before it starts.
    """
    with contextlib.suppress(FileNotFoundError):
        paths.state.unlink()
    with contextlib.suppress(Exception):
        _delete_refs(Repo(state.mirror), state.refs)
    shutil.rmtree(paths.dir, ignore_errors=True)


def _delete_refs(repo: Repo, prefix: str) -> None:
    refs = repo.run("for-each-ref", "--format=%(refname)", prefix + "/", check=False).out.split()
    if refs:
        repo.run("update-ref", "--stdin", input="".join(f"delete {r}\n" for r in refs))


def _new_resolutions(ws: Workspace, upstream: str, paths: RebasePaths) -> dict[str, bytes]:
    """Recorded resolutions (rr-cache entries with a postimage) the workspace does not have yet."""
    out: dict[str, bytes] = {}
    if not paths.rr_cache.is_dir():
        return out
    target = workspace_rr_cache(upstream)
    for entry in sorted(paths.rr_cache.iterdir()):
        if not entry.is_dir() or not any(f.name.startswith("postimage") for f in entry.iterdir()):
            continue
        for item in sorted(entry.iterdir()):
            if item.is_file() and item.name.startswith(("preimage", "postimage")):
                rel = f"{target}/{entry.name}/{item.name}"
                data = item.read_bytes()
                if (_file_sha(ws.root / rel) or "") != _sha256(data):
                    out[rel] = data
    return out


def _range_diff(repo: Repo, state: RebaseState, patches: list[LoadedPatch],
                steps: list[RebaseStep]) -> tuple[str, list[QueueChange]]:
    """`git range-diff` of old pin..old stack against new base..new stack, and what it says per patch."""
    old_order = [p.entry.id for p in patches if p.entry.id in state.old_commits]
    new_order = [s.patch_id for s in steps if s.commit]
    header = (f"# patchq rebase of {state.stack or 'the promoted queue'} on {state.upstream}: "
              f"{state.old_pin} -> {state.onto} ({state.ref})\n"
              f"# git range-diff {state.old_pin[:12]}..{state.old_head[:12]} {state.onto[:12]}..{state.head[:12]}\n")
    res = repo.run("range-diff", "--no-color", f"{state.old_pin}..{state.old_head}", f"{state.onto}..{state.head}",
                   check=False)
    text = res.out if res.ok else f"(git range-diff failed: {res.stderr.strip()})\n"
    changes: list[QueueChange] = []
    for line in text.splitlines():
        m = RANGE_LINE.match(line)
        if not m:
            continue
        left, sign, right = m.group(1), m.group(3), m.group(4)
        old_id = old_order[int(left) - 1] if left != "-" and int(left) <= len(old_order) else ""
        new_id = new_order[int(right) - 1] if right != "-" and int(right) <= len(new_order) else ""
        change = {"=": "unchanged", "!": "changed", "<": "dropped", ">": "added"}[sign]
        pid = old_id or new_id
        changes.append(QueueChange(pid, change, state.old_commits.get(old_id, ""),
                                   next((s.commit for s in steps if s.patch_id == new_id), "")))
    return header + text, changes


# ---- the report ------------------------------------------------------------------------------------------------------

def _report(state: RebaseState, label: str) -> RebaseReport:
    steps = [_step_from_dict(s) for s in state.steps]
    conflict = None
    if state.phase == "conflict" and state.conflict and label == "stopped":
        data = dict(state.conflict)
        outcome = _outcome_from_dict(data.pop("outcome"))
        conflict = ConflictStop(data["patch_id"], data["source"], data["worktree"], tuple(data["files"]),
                                tuple(data["rejects"]), tuple(data["rerere"]),
                                tuple(HunkProblem(**h) for h in data["hunks"]))
        steps.append(RebaseStep(conflict.patch_id, StepKind.CONFLICT, outcome, detail=outcome.detail))
    for item in state.probe[len(steps):]:
        outcome = _outcome_from_dict(item)
        steps.append(RebaseStep(outcome.patch_id, StepKind.PENDING, outcome, detail="predicted: " + outcome.kind.value))
    final = state.final if label == "done" else {}
    side = tuple(SideCheck(s["patch_id"], Status(s["status"]), s["verdict"], _outcome_from_dict(s["outcome"]),
                           s["base"]) for s in final.get("side", ()))
    changes = tuple(QueueChange(**c) for c in final.get("changes", ()))
    next_steps = _archive_steps(state.upstream, steps) if label in ("done", "stopped") else []
    if conflict is not None:
        where = ", ".join(conflict.files or conflict.rejects) or "the files"
        next_steps.insert(0, f"resolve {conflict.patch_id} in {conflict.worktree}: fix {where}, 'git add' them, then "
                             "'patchq rebase --continue' (or '--skip' to leave it out, '--abort' to undo everything)")
    if label == "done":
        for step in steps:
            if step.kind == StepKind.APPLIED and step.outcome.kind == OutcomeKind.FUZZ:
                next_steps.append(f"{state.upstream}:{step.patch_id} applied only with reduced context: review its "
                                  "regenerated diff")
        for s in side:
            if s.verdict in ("needs-refresh", "broken"):
                next_steps.append(f"{state.upstream}:{s.patch_id} ({s.status.value}) is {s.verdict} on the new stack")
        if final.get("verified") is False:
            next_steps.append("the regenerated patch files do not reproduce the rebased tree exactly (skipped or "
                              "already-upstream patches remain in the queue); 'patchq apply --check' shows where")
    return RebaseReport(
        state.upstream, state.stack, state.ref, state.old_pin, state.onto, state.direction, state.commits_between,
        label, tuple(steps), tuple(_breaking_from_dict(b) for b in state.breaking), side, changes,
        final.get("range_diff", ""), final.get("range_diff_file", ""), conflict, tuple(final.get("files", ())),
        final.get("pin_written", ""), final.get("tree", ""), final.get("verified"),
        state.counts.get("judged", 0), state.counts.get("bisect", 0), tuple(state.notes), tuple(next_steps))
