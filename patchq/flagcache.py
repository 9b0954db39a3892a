"""Env-flag analyses kept by blob id, so a file's bytes are analysed once, not on every audit.

A file's reads depend only on its bytes and its `analysis_kind` (the path merely labels them), so the located reads
of each (blob id, kind) are stored in the cache folder, under a version taken from the extractor's own source: a
changed extractor never reads an old answer. Misses are analysed on both cores when there are enough of them to pay
for a second process. A cache that cannot be written (read-only, full) only costs speed.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

from . import flags
from .machine import usable_cores
from .model import FlagIdiom, FlagRead
from .txn import atomic_write


def _extractor_version() -> str:
    """A hash of every module of the extractor package and of this file, so any change to either is a new version."""
    digest = hashlib.sha256()
    package = Path(flags.__file__).parent
    for module in [*sorted(package.glob("*.py")), Path(__file__)]:
        digest.update(module.name.encode() + b"\0" + module.read_bytes())
    return digest.hexdigest()[:16]


VERSION = _extractor_version()
PARALLEL_MIN_BYTES = 256 * 1024     # below this much text to analyse, a second process costs more than it saves


def blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class Job:
    """One file content to analyse under a path (the path only picks the language)."""

    path: str
    data: bytes

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


class ReadCache:
    """Located reads by (blob id, kind): in memory for this process and as small JSON files in `folder`."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder / VERSION if folder is not None else None
        self.memory: dict[str, list[flags.Located]] = {}
        self.analysed = 0            # misses analysed by this process (for benchmarks and tests)

    def key(self, job: Job) -> str | None:
        kind = flags.analysis_kind(job.path, job.text)
        return None if kind is None else f"{blob_id(job.data)}-{kind}"

    def located(self, jobs: list[Job]) -> dict[str, list[flags.Located]]:
        """Located reads of every job, by key (jobs whose language has no reads are left out)."""
        wanted: dict[str, Job] = {}
        for job in jobs:
            key = self.key(job)
            if key is not None and key not in self.memory:
                wanted.setdefault(key, job)
        missing = {key: job for key, job in wanted.items() if not self._load(key)}
        if missing:
            for key, found in _analyse(missing).items():
                self.memory[key] = found
                self._store(key, found)
            self.analysed += len(missing)
        return self.memory

    def _path(self, key: str) -> Path | None:
        return self.folder / key[:2] / f"{key}.json" if self.folder is not None else None

    def _load(self, key: str) -> bool:
        path = self._path(key)
        if path is None:
            return False
        try:
            raw = json.loads(path.read_text())
            if not isinstance(raw, list):
                return False
            self.memory[key] = [_found_from(item) for item in raw]
        except (OSError, ValueError):
            return False
        return True

    def _store(self, key: str, found: list[flags.Located]) -> None:
        path = self._path(key)
        if path is None:
            return
        data = json.dumps([_found_to(f) for f in found], separators=(",", ":")).encode()
        try:
            atomic_write(path, data, durable=False)
        except OSError:
            return


def _analyse(jobs: dict[str, Job]) -> dict[str, list[flags.Located]]:
    """Analyse on both cores when the work is big enough: here and in a forked helper, each taking the next file
    when it is free.

    The versions of one file stay together and in the order they were asked for (the order of the queue), so each
    side parses most of a version from the statements of the one before it (python_parse.parse_in_pieces). A file's
    cost is not its size (a Python version mostly reused costs a fraction of a C file lexed whole), so the files
    are not divided up front: both sides take turns from one shared counter, largest files first."""
    by_path: dict[str, list[tuple[str, Job]]] = {}
    for key, job in jobs.items():
        by_path.setdefault(job.path, []).append((key, job))
    groups = sorted(by_path.values(), key=lambda g: -sum(len(job.data) for _, job in g))
    total = sum(len(job.data) for job in jobs.values())
    if len(groups) < 2 or total < PARALLEL_MIN_BYTES or usable_cores() < 2 or not hasattr(os, "fork"):
        return _analyse_here([item for group in groups for item in group])
    import concurrent.futures
    import multiprocessing
    global _shared, last_split
    try:
        context = multiprocessing.get_context("fork")
        _shared = (groups, context.RawValue("i", 0))
        pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=context)
    except (OSError, ImportError):    # no shared memory or semaphores here (some containers): this core alone
        _shared = None
        return _analyse_here([item for group in groups for item in group])
    theirs: dict[str, list[flags.Located]] = {}
    taken_there = 0
    try:
        with pool:
            try:
                future: concurrent.futures.Future[tuple[dict[str, list[flags.Located]], int]] | None = \
                    pool.submit(_take_turns)
            except OSError:           # no second process to be had (fork refused): every file is taken here
                future = None
            mine, taken_here = _take_turns_counted()
            if future is not None:
                try:
                    theirs, taken_there = future.result()
                except concurrent.futures.BrokenExecutor:
                    pass              # the helper died (killed, out of memory): what it had taken is done below
    finally:
        _shared = None
    last_split = (taken_here, taken_there)
    mine.update(theirs)
    left = [item for group in groups for item in group if item[0] not in mine]
    if left:
        mine.update(_analyse_here(left))
    return mine


# The files and the turn counter, set before the helper is forked and inherited by it (a shared counter cannot
# be pickled to a process); None outside `_analyse`. The counter has no lock: a lock held by a helper killed in
# the middle of a turn would stop this side for good, and without one two sides that read the counter at the
# same moment both analyse that file (the same answer twice), while no file is ever skipped.
_shared: tuple[list[list[tuple[str, Job]]], Any] | None = None
last_split: tuple[int, int] | None = None   # files taken here and by the helper in the last split (for tests)


def _take_turns() -> tuple[dict[str, list[flags.Located]], int]:
    """The helper's side (its own name, so a test can make the helper die without touching this side's)."""
    return _take_turns_counted()


def _take_turns_counted() -> tuple[dict[str, list[flags.Located]], int]:
    """Analyse the next file nobody has taken, until none is left: (reads by key, files taken)."""
    assert _shared is not None
    groups, turn = _shared
    out: dict[str, list[flags.Located]] = {}
    taken = 0
    while True:
        index = turn.value
        turn.value = index + 1
        if index >= len(groups):
            return out, taken
        out.update(_analyse_here(groups[index]))
        taken += 1


def _analyse_here(items: list[tuple[str, Job]]) -> dict[str, list[flags.Located]]:
    """Analyse with the cycle collector paused: a syntax tree holds no cycles, and with a hundred thousand nodes
    alive every automatic collection walks them all again (10-15% of the analysis, measured)."""
    paused = gc.isenabled()
    gc.disable()
    try:
        return {key: flags.located_reads(job.path, job.text) for key, job in items}
    finally:
        python_parse = sys.modules.get(f"{__package__}.flags.python_parse")   # loaded only if Python was read
        if python_parse is not None:
            python_parse.forget_pieces()      # the batch's remembered trees go with the batch
        if paused:
            gc.enable()


# One stored read, a JSON array: the Located's lines and column, then the FlagRead's fields (its path is the job's).
_Row: TypeAlias = tuple[int, int, int, str, int, str, str | None, str, str | None, bool | None, bool, str]


def _found_to(found: flags.Located) -> _Row:
    r = found.read
    return (found.first, found.last, found.column, r.name, r.line, r.language, r.default, r.idiom.value,
            r.compared_to, r.default_on, r.dynamic, r.expression)


def _found_from(item: object) -> flags.Located:
    """A stored row back; one of the wrong shape or types raises ValueError, so the entry is analysed afresh."""
    if not isinstance(item, list) or len(item) != 12:
        raise ValueError("a stored read is an array of 12 fields")
    first, last, column, name, line, language, default, idiom, compared_to, default_on, dynamic, expression = item
    read = FlagRead(name=_text(name), path="", line=_number(line), language=_text(language),
                    default=_text_or_none(default), idiom=FlagIdiom(_text(idiom)),
                    compared_to=_text_or_none(compared_to), default_on=_flag_or_none(default_on),
                    dynamic=_flag(dynamic), expression=_text(expression))
    return flags.Located(read, _number(first), _number(last), _number(column))


def _number(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"stored field {value!r} is not an integer")
    return value


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"stored field {value!r} is not a string")
    return value


def _text_or_none(value: object) -> str | None:
    return None if value is None else _text(value)


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"stored field {value!r} is not a boolean")
    return value


def _flag_or_none(value: object) -> bool | None:
    return None if value is None else _flag(value)
