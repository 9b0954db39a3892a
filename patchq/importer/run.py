"""The import: read every input, place each candidate, plan the queues, stage and write; see docs/import.md."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..bundle import DEFAULT_LIMIT
from ..errors import BadInput
from ..model import Status
from ..txn import Txn, workspace_txn
from ..workspace import SERIES_NAME, Workspace
from .inputs import Candidate, InputFile, walk
from .items import ImportAction, ImportItem, ImportReport, Order, Refused, State
from .naming import MapRule, load_map, rules_for
from .placer import Part, Placer
from .plan import annotate, plan_notes
from .reading import Reading, read_all
from .stage import stage_and_write


@dataclass(frozen=True)
class Options:
    upstream: str | None
    status: Status | None
    rules: tuple[MapRule, ...]
    limit: int
    dry_run: bool
    strict: bool
    salvage: bool
    update: bool = False


def import_paths(ws: Workspace, paths: Sequence[Path | str], *, upstream: str | None = None,
                 status: Status | str | None = None, mapping: Path | str | Sequence[MapRule] | None = None,
                 dry_run: bool = False, limit: int = DEFAULT_LIMIT, strict: bool = False,
                 salvage: bool = False, update: bool = False) -> ImportReport:
    """Import lab patch folders and files into the workspace's queues; see docs/import.md.

    Everything is decided and staged first; the workspace is written only when the staged result loads back as a
    valid workspace (and, with `strict`, when no input was refused). `dry_run` decides and validates, writes nothing.
    `salvage` imports the complete file sections of a damaged bundle as a diagnostic patch instead of refusing it.
    `update` lets an input whose id names an existing patch of its queue replace that patch's diff (its annotation
    stays) instead of being refused or imported under another id.
    """
    given = [Path(p) for p in paths]
    if not given:
        raise BadInput("nothing to import: give one or more files or folders")
    if upstream is not None:
        ws.upstream(upstream)
    forced_status = Status.parse(status) if isinstance(status, str) else status
    if mapping is None:
        rules: tuple[MapRule, ...] = ()
    elif isinstance(mapping, (str, Path)):
        rules = load_map(Path(mapping), ws)
    else:
        rules = tuple(mapping)
    inputs = walk(given)
    options = Options(upstream, forced_status, rules, limit, dry_run, strict, salvage, update)
    if dry_run:
        return _run(ws, None, inputs, options)
    with workspace_txn(ws.root, "import") as (fresh, t):
        return _run(fresh, t, inputs, options)


def _run(ws: Workspace, t: Txn | None, inputs: list[InputFile], options: Options) -> ImportReport:
    state = State()
    upstream, rules = options.upstream, options.rules
    started = time.perf_counter()
    read = read_all(inputs, options.limit, state, salvage=options.salvage)
    state.timed("read", started)
    by_stem = {(n.item.path.parent, n.stem): n for n in read.notes}
    for _, cand in [*read.singles, *(m for ms in read.groups.values() for m in ms)]:
        if cand.patchq is None:
            cand.note = by_stem.get((cand.item.path.parent, cand.stem))
            if cand.note is not None:
                cand.note.wanted_by.append(cand.source)

    names = [upstream] if upstream else list(ws.upstreams)
    for _, cand in [*read.singles, *(m for ms in read.groups.values() for m in ms)]:
        if cand.hint and not upstream:
            if cand.hint in ws.upstreams:
                cand.remarks.append(f"upstream {cand.hint} named by the bundle's manifest")
            else:
                cand.remarks.append(f"the manifest names upstream {cand.hint!r}, which this workspace does not "
                                    "have: placed by its paths")
                cand.hint = ""
    everyone = [c for _, c in read.singles] + [c for ms in read.groups.values() for _, c in ms]
    placer = Placer(ws, names, state.warnings, everyone)
    try:
        started = time.perf_counter()
        placed = _place_all(placer, read, names, rules, state)
        state.timed("place", started)
        started = time.perf_counter()
        plan = annotate(ws, placed, rules, options.status, state, placer, update=options.update)
        plan_notes(ws, read.notes, plan, state)
        state.timed("plan", started)
    finally:
        placer.close()
    state.seconds["anchor"] = placer.seconds["anchor"]
    accepted = not (options.strict and any(i.action == ImportAction.SKIPPED for _, i in state.items))
    written: tuple[str, ...] = ()
    if not accepted:
        state.warnings.append("strict import: some inputs were refused, so nothing was written")
    elif plan.files or plan.series or plan.updates:
        started = time.perf_counter()
        stage_and_write(ws, t, plan)
        state.timed("write", started)
        written = tuple([*plan.files, *plan.updates, *(f"queues/{u}/{SERIES_NAME}" for u in plan.series)])
    items = tuple(item for _, item in sorted(state.items, key=lambda oi: oi[0]))
    entries = tuple(e for u in plan.series for e in plan.new_entries[u])
    return ImportReport(items, entries, written, tuple(state.warnings), read.count, options.dry_run, accepted,
                        dict(state.seconds))


def _place_all(placer: Placer, read: Reading, names: list[str], rules: Sequence[MapRule], state: State
               ) -> list[tuple[Order, Part]]:
    placed: list[tuple[Order, Part]] = []

    def allowed_for(cand: Candidate) -> list[str]:
        for rule in reversed(rules_for(rules, cand.item.rel, cand.item.path.name, cand.source, ())):
            if rule.upstream:
                return [rule.upstream]
        if cand.hint and len(names) > 1:
            return [cand.hint]
        return names

    def place_one(order: Order, cand: Candidate) -> None:
        try:
            placed.extend((order, part) for part in placer.place(cand, allowed_for(cand)))
        except Refused as exc:
            state.add(order, ImportItem(cand.source, ImportAction.SKIPPED, reason=exc.reason,
                                        remarks=tuple(cand.remarks)))

    singles = list(read.singles)
    for key in sorted(read.groups):
        members = read.groups[key]
        if len(members) == 1:
            singles.append(members[0])
            continue
        cands = [c for _, c in members]
        allowed = {tuple(allowed_for(c)) for c in cands}
        parts = None
        if len(allowed) == 1:
            try:
                parts = placer.place_group(cands, list(next(iter(allowed))))
            except Refused as exc:
                for order, cand in members:
                    state.add(order, ImportItem(cand.source, ImportAction.SKIPPED, reason=exc.reason))
                continue
        if parts is None:
            for order, cand in members:
                cand.remarks.append("no single upstream holds the whole series: placed one patch at a time")
                place_one(order, cand)
        else:
            placed.extend((order, part) for (order, _), part in zip(members, parts))
    for order, cand in sorted(singles, key=lambda oc: oc[0]):
        place_one(order, cand)
    placed.sort(key=lambda op: op[0])
    return placed


