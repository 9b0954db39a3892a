"""Placing: which upstream each candidate goes to, judged with apply's own classifier at the pin."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

from ..errors import BadInput, PatchqError
from ..model import Outcome, OutcomeKind, PatchEntry, Status
from ..patchfile import PatchFile, read_patch_file, touched_paths
from ..queuerun import LoadedPatch, TinyIndex, classify_patch, run_queue
from ..workspace import Workspace
from .anchor import Anchoring, Placed, anchor_sections, apply_sections
from .inputs import Candidate
from .items import MissingLine, Refused
from .paths import Mapped, UpstreamView, canonical_diff, check_components, map_sections, path_remarks, view_of

RANK = {OutcomeKind.CLEAN: 4, OutcomeKind.OFFSET: 4, OutcomeKind.THREEWAY: 3, OutcomeKind.FUZZ: 3,
        OutcomeKind.ALREADY_UPSTREAM: 2, OutcomeKind.EMPTY: 1, OutcomeKind.CONFLICT: 0, OutcomeKind.NOT_REACHED: 0}
SYMLINK_ESCAPE = "unsafe path: it writes below"

V = TypeVar("V")
Score = TypeVar("Score", int, tuple[int, int, int])      # how `_best` ranks one upstream's judgement


@dataclass
class Built:
    """A candidate's sections written for one upstream: the canonical diff, read back strictly, and its anchoring."""

    diff: bytes
    patch: PatchFile
    anchoring: Anchoring | None = None

    def notes(self) -> list[str]:
        """Remarks anchoring owes the report: hunks found only ignoring whitespace."""
        return list(self.anchoring.fuzz) if self.anchoring is not None else []

    def adjust(self, outcome: Outcome) -> Outcome:
        """The outcome with what anchoring knows: hunks found nowhere conflict; whitespace-only matches are fuzz."""
        if self.anchoring is None:
            return outcome
        if self.anchoring.unplaced:
            where = "; ".join(f"hunk at line {h.line}: its context is found nowhere" for _, h in
                              self.anchoring.unplaced[:3])
            if outcome.kind != OutcomeKind.CONFLICT:
                return replace(outcome, kind=OutcomeKind.CONFLICT, detail=where)
            return outcome
        if self.anchoring.fuzz and outcome.kind in (OutcomeKind.CLEAN, OutcomeKind.OFFSET):
            return replace(outcome, kind=OutcomeKind.FUZZ, detail="; ".join(self.anchoring.fuzz))
        return outcome


@dataclass
class Part:
    """A candidate (or one upstream's share of it) placed in an upstream, with its canonical diff judged there."""

    cand: Candidate
    upstream: str
    sections: tuple[int, ...]
    diff: bytes
    patch: PatchFile
    outcome: Outcome
    split: tuple[str, ...] = ()       # the upstreams of all parts when the candidate was split
    patch_id: str = ""                # git patch-id
    entry: PatchEntry | None = None
    data: bytes = b""
    status_rule: str = ""
    date_rule: str = ""
    remarks: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    built: Built | None = None
    mapped: tuple[Mapped, ...] = ()
    requires: list[str] = field(default_factory=list)            # ids in the same queue, inferred
    group: bool = False               # judged in series order with the other members of its quilt series or mbox
    missing: list[MissingLine] = field(default_factory=list)


class Placer:
    """Decides where candidates go, judging each placement with apply's own classifier at the pin."""

    def __init__(self, ws: Workspace, names: Sequence[str], warnings: list[str],
                 candidates: Sequence[Candidate] = ()) -> None:
        self.ws = ws
        self.names = list(names)
        self.views: dict[str, UpstreamView | None] = {}
        self.warnings = warnings
        self.candidates = list(candidates)
        self.maps: dict[tuple[int, str], list[Mapped | None]] = {}
        self.indexes: dict[str, tuple[TinyIndex, set[str]]] = {}
        self.blobs: dict[tuple[str, str], bytes | None] = {}
        self.seconds = {"anchor": 0.0}

    def close(self) -> None:
        for index, _ in self.indexes.values():
            index.close()
        self.indexes.clear()

    def mapping(self, cand: Candidate, name: str) -> list[Mapped | None]:
        key = (id(cand), name)
        if key not in self.maps:
            view = self.view(name)
            assert view is not None
            self.maps[key] = map_sections(cand.scanned.sections, view, strip=cand.strip)
        return self.maps[key]

    def judge_one(self, name: str, cand: Candidate, patch: PatchFile) -> Outcome:
        """One patch alone at the pin, in a tiny index shared by every candidate (one `git apply` per check)."""
        view = self.view(name)
        assert view is not None
        touched = touched_paths(patch.files)
        for path in touched:
            link = view.symlink_above(path)
            if link:
                return Outcome("candidate", name, OutcomeKind.CONFLICT,
                               detail=f"{SYMLINK_ESCAPE} {link!r}, which is a symlink at the pin of {name}")
        if name not in self.indexes:
            paths: set[str] = set()
            for other in self.candidates:
                for m in self.mapping(other, name):
                    if m is not None:
                        paths.update(p for p in (m.old, m.new) if p)
            self.indexes[name] = (TinyIndex(view.repo, view.commit, sorted(paths)), paths)
        index, indexed = self.indexes[name]
        if not set(touched) <= indexed:
            return self.judge(name, [_loaded(cand, patch)])[0]
        before = index.snapshot()
        try:
            outcome, _ = classify_patch(view.repo, index, _loaded(cand, patch))
        finally:
            index.restore(before)
        return outcome

    def view(self, name: str) -> UpstreamView | None:
        if name not in self.views:
            try:
                self.views[name] = view_of(self.ws, name)
            except PatchqError as exc:
                self.views[name] = None
                self.warnings.append(f"upstream {name!r} is not available, so nothing was placed there: {exc}")
        return self.views[name]

    def judge(self, name: str, loaded: list[LoadedPatch]) -> list[Outcome]:
        view = self.view(name)
        assert view is not None
        try:
            return run_queue(view.repo, view.commit, loaded, keep_going=True).outcomes
        except BadInput as exc:
            return [Outcome(lp.entry.id, name, OutcomeKind.CONFLICT, detail=exc.message) for lp in loaded]

    def blob(self, name: str, path: str) -> bytes | None:
        """A file at the pin of `name` (cached; None when it does not exist there)."""
        key = (name, path)
        if key not in self.blobs:
            view = self.view(name)
            assert view is not None
            self.blobs[key] = view.repo.read_blob(view.commit, path) if path in view.files else None
        return self.blobs[key]

    def prefetch(self, name: str, paths: Sequence[str]) -> None:
        view = self.view(name)
        assert view is not None
        wanted = [p for p in dict.fromkeys(paths) if (name, p) not in self.blobs and p in view.files]
        if wanted:
            found = view.repo.read_blobs([f"{view.commit}:{p}" for p in wanted])
            for path in wanted:
                self.blobs[(name, path)] = found.get(f"{view.commit}:{path}")

    def on_top(self, name: str, path: str, below: Sequence[PatchFile]) -> bytes | None:
        """A file as it is at the pin with the patches `below` applied in order (None: absent, or they do not fit)."""
        data = self.blob(name, path)
        for patch in below:
            for section in patch.files:
                if path not in section.paths:
                    continue
                if section.is_deleted:
                    data = None
                    continue
                hunks = [Placed(h.old_start, h.new_start, h.lines, b"") for h in section.hunks]
                data = apply_sections(b"" if section.is_new or data is None else data, hunks)
        return data

    def build(self, cand: Candidate, name: str, indexes: Sequence[int], mapped: Sequence[Mapped],
              below: Sequence[PatchFile] = ()) -> Built:
        """The canonical diff of some sections in one upstream, hunks anchored at the pin or on top of `below`."""
        sections = [cand.scanned.sections[i] for i in indexes]
        if cand.patchq is not None:
            return Built(cand.patchq.diff, cand.patchq)
        chosen = [mapped[i] for i in indexes]
        started = time.perf_counter()
        if any(not h.trusted for s in sections for h in s.hunks):
            olds = [m.old for m in chosen]
            if not below:
                self.prefetch(name, [p for p in olds if p])
            anchoring = anchor_sections(sections, olds, lambda p: self.on_top(name, p, below))
        else:
            anchoring = anchor_sections(sections, [None] * len(sections), lambda p: None)
            anchoring = Anchoring(anchoring.hunks)
        self.seconds["anchor"] += time.perf_counter() - started
        diff = canonical_diff(sections, chosen, anchoring.hunks)
        try:
            return Built(diff, read_patch_file(diff, source=cand.source),
                         anchoring if anchoring.anchored or anchoring.unplaced or anchoring.fuzz else None)
        except BadInput as exc:
            raise Refused(exc.message) from None

    def place(self, cand: Candidate, allowed: Sequence[str]) -> list[Part]:
        """Parts of one candidate: one upstream when one holds every file, else one part per upstream."""
        for section in cand.scanned.sections:
            check_components(section)
        maps: dict[str, list[Mapped | None]] = {}
        for name in allowed:
            if self.view(name) is not None:
                maps[name] = self.mapping(cand, name)
        if not maps:
            raise Refused("no pinned upstream is available to place it in")
        per_section: list[set[str]] = []
        for index, section in enumerate(cand.scanned.sections):
            strengths = {n: one.strength for n, m in maps.items() if (one := m[index]) is not None}
            if not strengths:
                where = f"upstream {allowed[0]!r}" if len(allowed) == 1 else \
                    f"any pinned upstream ({', '.join(maps)})"
                raise Refused(f"{section.shown} (line {section.line}) was not found in {where}")
            best = max(strengths.values())
            per_section.append({n for n, s in strengths.items() if s == best})
        everywhere = set.intersection(*per_section)
        every = list(range(len(cand.scanned.sections)))
        if everywhere:
            ordered = [n for n in maps if n in everywhere]
            judged: dict[str, tuple[Built, Outcome]] = {}
            refusals: dict[str, Refused] = {}
            for name in ordered:
                try:
                    built = self.build(cand, name, every, maps[name])     # type: ignore[arg-type]
                except Refused as exc:          # e.g. context that is ambiguous in this upstream
                    refusals[name] = exc
                    continue
                judged[name] = (built, built.adjust(self.judge_one(name, cand, built.patch)))
            if not judged:
                raise next(iter(refusals.values()))
            chosen = _best(judged, lambda v: RANK[v[1].kind])
            if chosen is None:
                kinds = ", ".join(f"{n}: {v[1].kind.value}" for n, v in judged.items())
                raise Refused(f"ambiguous upstream: its paths exist in {', '.join(judged)} and it fits them "
                              f"equally ({kinds}); say which with --upstream or --map")
            built, outcome = judged[chosen]
            _refuse_escape(outcome)
            remarks = path_remarks(cand.scanned.sections, maps[chosen]) + built.notes()
            if len(ordered) > 1:
                others = ", ".join(f"{n}: {judged[n][1].kind.value}" if n in judged else f"{n}: refused"
                                   for n in ordered if n != chosen)
                remarks.append(f"upstream {chosen} chosen by applying it at each candidate pin ({others})")
            return [Part(cand, chosen, tuple(every), built.diff, built.patch, outcome, remarks=remarks, built=built,
                         mapped=tuple(maps[chosen]))]      # type: ignore[arg-type]
        if cand.patchq is not None:
            raise Refused("its files belong to different upstreams; a patchq patch is imported whole or not at all")
        return self._split(cand, maps, per_section)

    def _split(self, cand: Candidate, maps: dict[str, list[Mapped | None]], per_section: list[set[str]]
               ) -> list[Part]:
        fixed = {i: next(iter(c)) for i, c in enumerate(per_section) if len(c) == 1}
        assigned = dict(fixed)
        for index, names in enumerate(per_section):
            if index in assigned:
                continue
            judged = {}
            for name in [n for n in maps if n in names]:
                built = self.build(cand, name, [index], maps[name])     # type: ignore[arg-type]
                judged[name] = built.adjust(self.judge_one(name, cand, built.patch))
            chosen = _best(judged, lambda o: RANK[o.kind])
            if chosen is None:
                preferred = [n for n in judged if n in set(fixed.values())
                             and RANK[judged[n].kind] == max(RANK[o.kind] for o in judged.values())]
                chosen = preferred[0] if len(preferred) == 1 else None
            if chosen is None:
                raise Refused(f"ambiguous upstream for {cand.scanned.sections[index].shown}: it exists in "
                              f"{', '.join(judged)} and fits them equally; say which with --upstream or --map")
            assigned[index] = chosen
        order: list[str] = []
        for index in sorted(assigned):
            if assigned[index] not in order:
                order.append(assigned[index])
        parts = []
        for name in order:
            indexes = tuple(i for i in sorted(assigned) if assigned[i] == name)
            built = self.build(cand, name, indexes, maps[name])     # type: ignore[arg-type]
            outcome = built.adjust(self.judge_one(name, cand, built.patch))
            _refuse_escape(outcome)
            files = ", ".join(maps[name][i].new or maps[name][i].old or "?" for i in indexes)   # type: ignore
            remarks = [f"split: the {name} part holds {files}", *built.notes(),
                       *path_remarks([cand.scanned.sections[i] for i in indexes], [maps[name][i] for i in indexes])]
            parts.append(Part(cand, name, indexes, built.diff, built.patch, outcome, split=tuple(order),
                              remarks=remarks, built=built, mapped=tuple(maps[name])))    # type: ignore[arg-type]
        return parts

    def place_group(self, members: list[Candidate], allowed: Sequence[str]) -> list[Part] | None:
        """A quilt series or mbox applies in order: one upstream for all of it, judged as a sequence."""
        for cand in members:
            for section in cand.scanned.sections:
                check_components(section)
        judged: dict[str, tuple[list[tuple[Built, list[Mapped]]], list[Outcome], int]] = {}
        for name in allowed:
            view = self.view(name)
            if view is None:
                continue
            created: set[str] = set()
            built: list[tuple[Built, list[Mapped]]] = []
            strength = 0
            for cand in members:
                maybe = map_sections(cand.scanned.sections, view, strip=cand.strip, created_before=frozenset(created))
                mapped = [m for m in maybe if m is not None]
                if len(mapped) < len(maybe):
                    break
                strength += sum(m.strength for m in mapped)
                created |= {m.new for m, s in zip(mapped, cand.scanned.sections) if s.created and m.new}
                try:
                    every = list(range(len(cand.scanned.sections)))
                    below = [b.patch for b, _ in built]
                    built.append((self.build(cand, name, every, mapped, below), mapped))
                except Refused:
                    break
            else:
                loaded = [_loaded(c, b.patch, f"m{n}") for n, (c, (b, _)) in enumerate(zip(members, built))]
                outcomes = [b.adjust(o) for (b, _), o in zip(built, self.judge(name, loaded))]
                judged[name] = (built, outcomes, strength)
        if not judged:
            return None
        chosen = _best(judged, lambda v: (sum(RANK[o.kind] >= 2 for o in v[1]), sum(RANK[o.kind] for o in v[1]),
                                          v[2]))
        if chosen is None:
            raise Refused(f"ambiguous upstream for the whole series: it fits {', '.join(judged)} equally; "
                          "say which with --upstream or --map")
        built, outcomes, _ = judged[chosen]
        parts = []
        for cand, (one, mapped), outcome in zip(members, built, outcomes):
            remarks = ["judged in series order", *path_remarks(cand.scanned.sections, mapped), *one.notes()]
            if len(judged) > 1:
                remarks.append(f"series placed in {chosen} (also fits: {', '.join(n for n in judged if n != chosen)})")
            indexes = tuple(range(len(cand.scanned.sections)))
            parts.append(Part(cand, chosen, indexes, one.diff, one.patch, outcome, remarks=remarks, built=one,
                              mapped=tuple(mapped), group=True))
        return parts


def _refuse_escape(outcome: Outcome) -> None:
    if outcome.kind == OutcomeKind.CONFLICT and outcome.detail.startswith(SYMLINK_ESCAPE):
        raise Refused(outcome.detail)


def _best(judged: Mapping[str, V], key: Callable[[V], Score]) -> str | None:
    """The single best-scoring name, or None on a tie at the top."""
    if not judged:
        return None
    scores = {name: key(value) for name, value in judged.items()}
    top = max(scores.values())
    winners = [name for name, score in scores.items() if score == top]
    return winners[0] if len(winners) == 1 else None


def _loaded(cand: Candidate, patch: PatchFile, pid: str = "candidate") -> LoadedPatch:
    entry = PatchEntry(id=pid, upstream="", file="", status=Status.NEGATIVE_ARCHIVED, title=cand.title)
    return LoadedPatch(entry, patch, cand.source)


