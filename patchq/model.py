"""The data model: frozen dataclasses for what a workspace holds and what operations report.

Nothing here reads files or runs git; `workspace.py` builds these from disk and the operations return them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum

FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
PATCH_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
UPSTREAM_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class Status(str, Enum):
    """Why a patch is in the queue: part of stacks, a rejected experiment kept for the record, or a probe."""

    PROMOTED = "promoted"
    NEGATIVE_ARCHIVED = "negative-archived"
    DIAGNOSTIC = "diagnostic"

    @classmethod
    def parse(cls, text: str) -> Status:
        for status in cls:
            if status.value == text:
                return status
        raise ValueError(f"unknown status {text!r} (expected one of: {', '.join(s.value for s in cls)})")


class OutcomeKind(str, Enum):
    """How one patch went onto its base, from best to worst."""

    CLEAN = "clean"                       # every hunk at its recorded position
    OFFSET = "offset"                     # exact context, found at moved lines
    FUZZ = "fuzz"                         # applied only with reduced context: review it
    THREEWAY = "3way"                     # merged through the pre-image blob ids recorded in the patch
    ALREADY_UPSTREAM = "already-upstream"  # the reverse applies: the base already has this change
    EMPTY = "empty"                       # the patch changes nothing
    CONFLICT = "conflict"                 # does not apply; files and hunks say where
    NOT_REACHED = "not-reached"           # an earlier patch stopped the queue

    @property
    def applied(self) -> bool:
        return self in (OutcomeKind.CLEAN, OutcomeKind.OFFSET, OutcomeKind.FUZZ, OutcomeKind.THREEWAY)

    @property
    def ok(self) -> bool:
        """Outcomes that do not stop a queue."""
        return self.applied or self in (OutcomeKind.EMPTY, OutcomeKind.ALREADY_UPSTREAM)


@dataclass(frozen=True)
class ArchiveSource:
    """A release archive standing in for git hosting: a PyPI sdist or a tarball, verified by sha256."""

    sha256: str
    url: str | None = None          # a tarball URL or a local path
    pypi: str | None = None         # "vllm==0.11.0": fetched with pip from the package registry
    subdir: str | None = None       # the folder inside the archive that is the repository root


@dataclass(frozen=True)
class Release:
    """One release of a release chain: its archive, and the upstream commit it was cut from when known."""

    version: str
    source: ArchiveSource
    commit: str = ""                # full 40-hex commit the release was cut from ("" = unknown)


@dataclass(frozen=True)
class Upstream:
    name: str
    url: str                        # git URL or local path of the repository
    pin: str                        # full 40-hex commit
    archive: ArchiveSource | None = None
    description: str = ""
    version: str = ""               # the package version the pin is (for overlay onto an installed package)
    releases: tuple[Release, ...] = ()   # release archives, imported as one linear history (see releases.py)


@dataclass(frozen=True)
class StackResult:
    """What a stack measured, so a regenerated stack can be compared with its record."""

    metric: str = ""
    value: float | None = None
    lane: str = ""
    date: str = ""
    gates: tuple[str, ...] = ()
    notes: str = ""
    record: str = ""                # results/<stack>/<file>.json: the trial whose repeats gave `value`


@dataclass(frozen=True)
class BenchSpec:
    """How a stack is measured (pins.lock `bench:`): a command, where its number is, how often (patchq/trial.py)."""

    cmd: str
    metric: str                     # a regex with one group, or json:[FILE:]PATH
    repeats: int = 5
    warmup: int = 1
    timeout: float = 600.0
    better: str = "higher"          # "higher" | "lower"
    unit: str = ""
    cwd: str = ""                   # folder inside the trial checkout (an upstream's name, say)
    build: tuple[str, ...] = ()     # kernels/ targets the command needs, built on both sides


@dataclass(frozen=True)
class GateSpec:
    """A quality gate run on the candidate before any measurement: exit 0 passes."""

    name: str
    cmd: str
    timeout: float = 600.0
    cwd: str = ""


@dataclass(frozen=True)
class Stack:
    name: str
    upstreams: tuple[str, ...]                      # in apply order
    pins: dict[str, str] = field(default_factory=dict)   # per-upstream pin overriding the upstream default
    include: tuple[Status, ...] = (Status.PROMOTED,)
    extra: tuple[str, ...] = ()                     # "upstream:patch-id" or "patch-id" of non-included patches
    profile: dict[str, str] = field(default_factory=dict)  # env the stack is benchmarked with
    result: StackResult | None = None
    trees: dict[str, str] = field(default_factory=dict)    # upstream -> tree id after a clean apply
    description: str = ""
    patches: tuple[str, ...] = ()                   # an explicit selection ("id" or "upstream:id") instead of include
    bench: BenchSpec | None = None
    gates: tuple[GateSpec, ...] = ()
    exclude: tuple[str, ...] = ()                   # "upstream:patch-id" a rebase left out: never applied here


@dataclass(frozen=True)
class PatchEntry:
    """One annotated patch of a queue: series.yaml metadata mirrored by trailers in the patch file."""

    id: str
    upstream: str
    file: str                       # file name inside queues/<upstream>/
    status: Status
    title: str
    why: str = ""
    flags: tuple[str, ...] = ()
    result: str = ""
    baseline: str = ""
    notes: tuple[str, ...] = ()
    date: str = ""
    base: str = ""                  # for non-promoted patches: the promoted patch it sits on ("" = top)
    supersedes: tuple[str, ...] = ()
    contains: tuple[str, ...] = ()
    author: str = ""                # "Name <email>" of the From: header
    requires: tuple[str, ...] = ()  # ids in the same queue this patch is cut on top of (they apply first)
    salvaged: str = ""              # what was lost when import salvaged it from a damaged bundle ("" = whole)

    @property
    def ref(self) -> str:
        return f"{self.upstream}:{self.id}"


@dataclass(frozen=True)
class Queue:
    upstream: str
    entries: tuple[PatchEntry, ...]

    def get(self, patch_id: str) -> PatchEntry | None:
        for entry in self.entries:
            if entry.id == patch_id:
                return entry
        return None


@dataclass(frozen=True)
class HunkProblem:
    """A hunk that did not apply: which file, which hunk (1-based within that file), where and why."""

    file: str
    hunk: int | None
    line: int | None
    reason: str


@dataclass(frozen=True)
class Outcome:
    patch_id: str
    upstream: str
    kind: OutcomeKind
    files: tuple[str, ...] = ()
    hunks: tuple[HunkProblem, ...] = ()
    detail: str = ""
    commit: str = ""                # commit made in the checkout for this patch
    offsets: tuple[str, ...] = ()   # "file: hunk 2 at +3 lines" for offset/fuzz


@dataclass(frozen=True)
class UpstreamApply:
    """The result of applying one upstream's queue: where, at which pin, each patch's outcome, the tree."""

    upstream: str
    pin: str
    checkout: str
    outcomes: tuple[Outcome, ...]
    tree: str = ""                  # tree id after the last applied patch
    head: str = ""
    verified: bool | None = None    # None: not asked; True/False: tree equals the recorded one
    recorded_tree: str = ""
    base: str = ""                  # the commit the queue went onto (the pin, or an archive commit for it)

    @property
    def stopped(self) -> bool:
        return any(o.kind == OutcomeKind.CONFLICT for o in self.outcomes)


@dataclass(frozen=True)
class ApplyReport:
    stack: str
    upstreams: tuple[UpstreamApply, ...]
    checked_only: bool = False
    next_steps: tuple[str, ...] = ()
    builds: tuple[object, ...] = ()  # never filled: the apply envelope carries the build report beside it

    @property
    def ok(self) -> bool:
        return all(o.kind.ok for u in self.upstreams for o in u.outcomes) and all(
            u.verified is not False for u in self.upstreams)


@dataclass(frozen=True)
class Finding:
    """A consistency or audit finding: what kind, where, and a sentence for a person."""

    kind: str
    message: str
    path: str = ""
    line: int | None = None
    severity: str = "error"         # "error" | "warning"


class FlagIdiom(str, Enum):
    """How a flag is compared where it is read; decides whether its default means "off"."""

    EQUALS = "equals"          # os.environ.get("X", "0") == "1"
    TRUTHY = "truthy"          # if os.getenv("X"): / std::getenv("X") != nullptr
    INT = "int"                # int(os.environ.get("X", "4"))
    FLOAT = "float"
    STRING = "string"          # value used as text
    PRESENCE = "presence"      # "X" in os.environ
    REGISTRY = "registry"      # vLLM envs.py entry
    SET = "set"                # shell `export X=...` / profile assignment
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class FlagRead:
    """One place that reads (or sets) an environment variable."""

    name: str                  # the variable name; "<dynamic>" when computed at run time
    path: str                  # repo-relative file
    line: int                  # 1-based line in the file's post-image (or pre-image for removed reads)
    language: str              # "python" | "c" | "shell" | "cmake"
    default: str | None = None  # default text as written ("0", "4"); None when there is none
    idiom: FlagIdiom = FlagIdiom.UNKNOWN
    compared_to: str | None = None  # the literal it is compared with ("1")
    default_on: bool | None = None  # True when the default enables the gated path
    dynamic: bool = False      # the name comes from a non-constant expression
    expression: str = ""       # the source text of the read, for the report
    removed: bool = False      # the read is in a line the patch removes
