"""The rebase's results, its files on disk, the state saved after every step (what --continue reads), the report."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from ..crashtest import (
    TEST_CRASH_ENV,
    crash_point as crash_point,  # re-exported: the rebase steps name their points
)
from ..errors import BadInput
from ..model import HunkProblem, Outcome, OutcomeKind, Status
from ..txn import atomic_write
from ..workspace import STATE_DIR

STATE_VERSION = 1
CRASH_ENV = TEST_CRASH_ENV     # the test hook's named steps (crashtest.py); the swap's are its transaction's labels
CRASH_POINTS = ("started", "applied", "conflict-worktree", "resolved-commit", "aside-written", "swap:committed",
                "swap:mid", "swap:done")
CLEAN_KINDS = (OutcomeKind.CLEAN, OutcomeKind.OFFSET)
RERERE_REPLAYED = re.compile(r"^Resolved '(.+)' using previous resolution\.$", re.M)
MARKER_LINE = re.compile(rb"^\+(<{7}|>{7}|\|{7})( |$)", re.M)
RANGE_LINE = re.compile(r"^\s*(\d+|-):\s+([0-9a-f]+|-+)\s+([=!<>])\s+(\d+|-):\s+([0-9a-f]+|-+)\s?(.*)$")


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
    followed: tuple[str, ...] = ()        # "followed rename a -> b (n% similar, in C)"
    decision: str = ""                    # left out: the note recorded on the patch at completion


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
    whole: tuple[str, ...] = ()           # "path: why" for files that failed whole (deleted upstream, missing)
    review: tuple[str, ...] = ()          # files applied only with reduced context: look, then --continue

    @property
    def todo(self) -> list[str]:
        """Every file that needs work, once each: conflicts, rejects, whole-file failures, fuzz to review."""
        out = [*self.files, *self.rejects, *(w.partition(": ")[0] for w in self.whole), *self.review]
        return list(dict.fromkeys(out))


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
    granularity: str = "commit"           # commit | release: what one bisection step is
    new_base: str = ""                    # the commit the queue went onto (a release's chain commit, or new_pin)
    left_out: tuple[str, ...] = ()        # the decision recorded on each patch the rebase left out
    reapplied: bool = False               # the files were applied again to check them (not byte-equal to commits)

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
    new_pin: str = ""                                     # what pins.lock records ("" = onto)
    granularity: str = "commit"
    moves: dict[str, Any] = field(default_factory=dict)   # moves.Moves.to_dict(): renames, deletions
    accept_fuzz: bool = False
    archive_left_out: bool = False
    releases: list[dict[str, str]] | None = None          # the release list to write (a release from the index)
    old_base: str = ""                                    # the commit the queue was at ("" = old_pin)

    def to_bytes(self) -> bytes:
        """The saved form. Every field already holds JSON data (plain dicts and lists), so the fields are read as
        they are: `dataclasses.asdict` deep-copied all of it first, ~15 ms per save on a 24-patch rebase."""
        return json.dumps({f.name: getattr(self, f.name) for f in dataclasses.fields(self)}, indent=1,
                          sort_keys=True).encode()

    def save(self, paths: RebasePaths) -> None:
        atomic_write(paths.state, self.to_bytes())

    @classmethod
    def load(cls, paths: RebasePaths) -> RebaseState:
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
                      data.get("upstream_subject", ""), tuple(data.get("followed", ())), data.get("decision", ""))


def _breaking_from_dict(data: dict[str, Any]) -> BreakingCommit:
    return BreakingCommit(**{**data, "kind": OutcomeKind(data["kind"])})



# ---- the report ------------------------------------------------------------------------------------------------------

def _conflict_from_dict(data: dict[str, Any]) -> ConflictStop:
    return ConflictStop(data["patch_id"], data["source"], data["worktree"], tuple(data["files"]),
                        tuple(data["rejects"]), tuple(data["rerere"]), tuple(HunkProblem(**h) for h in data["hunks"]),
                        tuple(data.get("whole", ())), tuple(data.get("review", ())))


def _report(state: RebaseState, label: str) -> RebaseReport:
    steps = [_step_from_dict(s) for s in state.steps]
    conflict = None
    if state.phase == "conflict" and state.conflict and label == "stopped":
        data = dict(state.conflict)
        outcome = _outcome_from_dict(data.pop("outcome"))
        conflict = _conflict_from_dict(data)
        steps.append(RebaseStep(conflict.patch_id, StepKind.CONFLICT, outcome, detail=outcome.detail,
                                followed=tuple(data.get("followed", ()))))
    for item in state.probe[len(steps):]:
        outcome = _outcome_from_dict(item)
        steps.append(RebaseStep(outcome.patch_id, StepKind.PENDING, outcome, detail="predicted: " + outcome.kind.value))
    final = state.final if label == "done" else {}
    side = tuple(SideCheck(s["patch_id"], Status(s["status"]), s["verdict"], _outcome_from_dict(s["outcome"]),
                           s["base"]) for s in final.get("side", ()))
    changes = tuple(QueueChange(**c) for c in final.get("changes", ()))
    next_steps = _archive_steps(state.upstream, steps, state.archive_left_out) if label == "stopped" else []
    if conflict is not None:
        where = ", ".join(conflict.todo) or "the files"
        verb = "review" if conflict.review and not (conflict.files or conflict.rejects or conflict.whole) else "fix"
        lines = [f"resolve {conflict.patch_id} in {conflict.worktree}: {verb} {where}, 'git add' them (delete the "
                 ".rej files once handled), then 'patchq rebase --continue' (or '--skip' to leave it out, '--abort' "
                 "to undo everything)"]
        lines += [f"{conflict.patch_id}: {w}" for w in conflict.whole]
        lines += [f"{conflict.patch_id}: {r} applied only with reduced context (no 3-way merge was possible): "
                  "check where its lines landed" for r in conflict.review]
        next_steps[:0] = lines
    if label == "done":
        for step in steps:
            if step.kind == StepKind.APPLIED and step.outcome.kind == OutcomeKind.FUZZ:
                next_steps.append(f"{state.upstream}:{step.patch_id} applied only with reduced context (accepted "
                                  "with --accept-fuzz): review its regenerated diff")
        for s in side:
            if s.verdict in ("needs-refresh", "broken"):
                next_steps.append(f"{state.upstream}:{s.patch_id} ({s.status.value}) is {s.verdict} on the new stack")
        if final.get("verified") is False:
            next_steps.append("the regenerated patch files do not reproduce the rebased tree exactly; "
                              "'patchq apply --check' shows where")
    return RebaseReport(
        state.upstream, state.stack, state.ref, state.old_pin, state.new_pin or state.onto, state.direction,
        state.commits_between, label, tuple(steps), tuple(_breaking_from_dict(b) for b in state.breaking), side,
        changes, final.get("range_diff", ""), final.get("range_diff_file", ""), conflict,
        tuple(final.get("files", ())), final.get("pin_written", ""), final.get("tree", ""), final.get("verified"),
        state.counts.get("judged", 0), state.counts.get("bisect", 0), tuple(state.notes), tuple(next_steps),
        state.granularity, state.onto, tuple(final.get("left_out", ())), bool(final.get("reapplied", False)))


LEFT_OUT = (StepKind.ALREADY_UPSTREAM, StepKind.EMPTY, StepKind.SKIPPED)


def _archive_steps(upstream: str, steps: list[RebaseStep], archive: bool = False) -> list[str]:
    """What finishing will do with the patches left out so far (a dry run or a stop shows it ahead)."""
    then = ("archives it (--archive-left-out)" if archive else
            "records why on it and takes it out of the stack (or pass --archive-left-out to archive it)")
    return [f"{upstream}:{s.patch_id} is left out ({s.kind.value}"
            + (f": {s.upstream_commit[:12]} {s.upstream_subject}" if s.upstream_commit else "")
            + f"); finishing the rebase {then}"
            for s in steps if s.kind in LEFT_OUT]
