"""What import reports: one item per input file (or mbox message, or split part), and the whole report."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from ..model import PatchEntry


class Refused(Exception):
    """One input (file, message or patch) cannot be imported; the reason goes into the report."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ImportAction(str, Enum):
    IMPORTED = "imported"          # became a queue entry
    NOTE = "note"                  # a markdown note linked to an imported entry
    NOTES_ONLY = "notes-only"      # prose and code fences only: kept as a notes file, never a patch
    DUPLICATE = "duplicate"        # the same change (git patch-id) as another input or an existing entry
    SERIES = "series"              # a quilt series file; its patches have their own lines
    METADATA = "metadata"          # a patchq export's manifest or repro README: used to check a bundle, not imported
    SKIPPED = "skipped"            # not imported; `reason` says why
    UPDATED = "updated"            # replaced the diff of the existing patch of its id (import --update)




@dataclass(frozen=True)
class MissingLine:
    """A pre-image line of a patch found neither at the pin nor in any other patch's post-image."""

    file: str                       # repo-relative path
    line: int                       # line number in the input patch
    text: str


@dataclass(frozen=True)
class ImportItem:
    """What became of one input file (or one message of an mbox, or one part of a split patch)."""

    source: str
    action: ImportAction
    patch_id: str = ""
    upstream: str = ""
    status: str = ""
    status_rule: str = ""
    date: str = ""
    date_rule: str = ""
    file: str = ""                  # workspace-relative file written (or planned, on a dry run)
    outcome: str = ""               # how the patch applies at the upstream's pin
    reason: str = ""                # why skipped, what it duplicates, which entry a note belongs to
    remarks: tuple[str, ...] = ()   # what import changed or noticed: stripped prefixes, CRLF, splits, containment
    requires: tuple[str, ...] = ()  # ids (same queue) the patch sits on: they apply first
    missing_context: tuple[MissingLine, ...] = ()   # lines it needs that no tree or patch has (first 5)


@dataclass(frozen=True)
class ImportReport:
    items: tuple[ImportItem, ...]
    entries: tuple[PatchEntry, ...]     # the new series entries, in queue order
    written: tuple[str, ...]            # workspace-relative files written (planned on a dry run)
    warnings: tuple[str, ...]
    inputs: int                         # input files seen
    dry_run: bool
    accepted: bool                      # False: nothing was written (strict import with refusals)
    timings: dict[str, float] = field(default_factory=dict)   # seconds per phase (read, place, anchor, ...)

    @property
    def ok(self) -> bool:
        return self.accepted and not any(i.action == ImportAction.SKIPPED for i in self.items)



Order = tuple[int, ...]


@dataclass
class State:
    """The report as it grows: items keyed by input order, and warnings."""

    items: list[tuple[Order, ImportItem]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, order: Order, item: ImportItem) -> None:
        self.items.append((order, item))

    def timed(self, phase: str, started: float) -> None:
        import time
        self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - started
