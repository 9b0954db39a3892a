"""Planning: duplicates, ids, statuses, containment, and the final entry and bytes of every imported patch."""

from __future__ import annotations

import contextlib
import email.utils
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from .. import git
from ..errors import BadInput
from ..model import PatchEntry, Status
from ..patchfile import PatchFile, entry_from_patch, read_patch_file, render_patch_file
from ..workspace import Workspace
from .depends import infer_requirements, requirements_first
from .inputs import Candidate, NoteFile, safe_description
from .items import ImportAction, ImportItem, Order, State
from .naming import (
    DEFAULT_RULE,
    SAFETY,
    MapRule,
    date_from_name,
    rules_for,
    slug_of,
    status_from_name,
    status_from_text,
    strip_fences,
)
from .placer import Part, Placer


def patch_ids(diffs: Sequence[bytes]) -> list[str | None]:
    """`git patch-id --stable` of many diffs in one git process."""
    return git.patch_ids(diffs)


ChangeItem = tuple[str, str, int, bytes]       # (+ or -, path, pre-image line of its block, line text)


def change_items(patch: PatchFile) -> Counter[ChangeItem]:
    """A patch's line changes anchored at the pre-image line where each change block starts.

    Two snapshots made against the same base describe the same edit with the same items, so one patch is contained
    in another when its items are a sub-multiset of the other's — even when their hunks were merged differently.
    """
    items: Counter[ChangeItem] = Counter()
    for section in patch.files:
        path = section.path
        for hunk in section.hunks:
            old_line = hunk.old_start
            block = None
            for raw in hunk.lines:
                tag = raw[:1]
                if tag == b" ":
                    old_line += 1
                    block = None
                elif tag == b"-":
                    block = old_line if block is None else block
                    items[("-", path, old_line, raw[1:])] += 1
                    old_line += 1
                elif tag == b"+":
                    block = old_line if block is None else block
                    items[("+", path, block, raw[1:])] += 1
    return items


def _contains(big: Counter[ChangeItem], small: Counter[ChangeItem]) -> bool:
    return bool(small) and big != small and all(big[key] >= count for key, count in small.items())



@dataclass
class Plan:
    files: dict[str, bytes] = field(default_factory=dict)              # workspace-relative path -> bytes (new)
    series: dict[str, list[PatchEntry]] = field(default_factory=dict)  # upstream -> full new entry list
    new_entries: dict[str, list[PatchEntry]] = field(default_factory=dict)
    updates: dict[str, bytes] = field(default_factory=dict)            # existing patch file -> new bytes (--update)


def _unique_file(files: dict[str, bytes], wanted: str, root: Path) -> str:
    stem, dot, ext = wanted.rpartition(".")
    candidate, n = wanted, 1
    while candidate in files or (root / candidate).exists():
        n += 1
        candidate = f"{stem}-{n}{dot}{ext}"
    return candidate


def _status_of(part: Part, rules: Sequence[MapRule], forced: Status | None, slug: str) -> tuple[Status, str]:
    cand = part.cand
    if cand.salvaged:
        return Status.DIAGNOSTIC, "salvaged from a damaged bundle: always diagnostic, never promoted"
    if forced is not None:
        return forced, "--status"
    for rule in reversed(rules_for(rules, cand.item.rel, cand.item.path.name, cand.source, (slug,))):
        if rule.status is not None:
            return rule.status, rule.describe()
    if cand.patchq is not None:
        value = cand.patchq.trailer("Patchq-Status")
        if value:
            with contextlib.suppress(ValueError):
                return Status.parse(value), "trailer: Patchq-Status"
    found = status_from_name(cand.stem)
    if found is None and cand.message is not None and cand.head.subject:
        by_subject = status_from_name(cand.head.subject)       # an mbox message's subject is its name
        if by_subject is not None:
            found = (by_subject[0], "subject" + by_subject[1][len("name"):])
    if found is None:
        text = f"{cand.title}\n\n{cand.description}"
        if cand.note is not None:
            text += "\n\n" + cand.note.data.decode("utf-8", "replace")
        found = status_from_text(text)
    return found if found is not None else (Status.NEGATIVE_ARCHIVED, DEFAULT_RULE)


def _flags_of(patch: PatchFile, remarks: list[str]) -> tuple[str, ...]:
    """Env flags the added lines read, from the flags module when it is installed (hunks only: no checkout)."""
    try:
        from ..flags import reads_in_lines
    except ImportError:
        return ()
    names: set[str] = set()
    for section in patch.files:
        if not section.new_path:
            continue
        for hunk in section.hunks:
            fragment, added = [], set()
            for raw in hunk.lines:
                if raw[:1] in (b" ", b"+"):
                    fragment.append(raw[1:].decode("utf-8", "replace"))
                    if raw[:1] == b"+":
                        added.add(len(fragment))
            if not added:
                continue
            try:
                reads = reads_in_lines(section.new_path, "\n".join(fragment) + "\n", added)
            except Exception as exc:  # an extractor bug must not stop an import; the report says so
                remarks.append(f"env flags of {section.new_path} could not be read ({type(exc).__name__})")
                continue
            names.update(r.name for r in reads if not r.dynamic and not r.removed)
    return tuple(sorted(names))


def annotate(ws: Workspace, placed: list[tuple[Order, Part]], rules: Sequence[MapRule], forced: Status | None,
             state: State, placer: Placer, *, update: bool = False) -> Plan:
    """Duplicates, ids, statuses, requirements, containment and the final entries and bytes of every placed part."""
    plan = Plan()
    by_upstream: dict[str, list[tuple[Order, Part]]] = {}
    for order, part in placed:
        by_upstream.setdefault(part.upstream, []).append((order, part))
    existing_of: dict[str, list[tuple[PatchEntry, PatchFile]]] = {}
    kept_of: dict[str, list[tuple[Order, Part]]] = {}
    for name, parts in by_upstream.items():
        existing_of[name] = _existing_patches(ws, name)
        kept_of[name] = _dedupe_and_name(ws, name, parts, existing_of[name], rules, forced, state,
                                         plan.updates if update else None)
    started = time.perf_counter()
    for name, kept in kept_of.items():
        infer_requirements(placer, name, kept, existing_of[name])
        kept_of[name] = requirements_first(kept)
    state.timed("depends", started)
    all_kept = [p for kept in kept_of.values() for _, p in kept]
    for name, kept in kept_of.items():
        contains = _containment(name, kept, existing_of[name], state)
        existing = list(ws.queue(name).entries)
        numbers = [int(m.group(1)) for e in existing if (m := re.match(r"^(\d{4})-", e.file))]
        number = max(numbers) if numbers else 0
        new_entries = []
        for order, part in kept:
            number += 1
            part.entry = _final_entry(ws, part, contains[id(part)], kept, all_kept, number)
            new_entries.append(part.entry)
            path = f"queues/{name}/{part.entry.file}"
            plan.files[path] = part.data
            entry = part.entry
            rank = part.split.index(name) if part.split else 0
            state.add(order + (rank,), ImportItem(
                part.cand.source, ImportAction.IMPORTED, patch_id=entry.id, upstream=name, status=entry.status.value,
                status_rule=part.status_rule, date=entry.date, date_rule=part.date_rule, file=path,
                outcome=part.outcome.kind.value, reason=part.outcome.detail if not part.outcome.kind.ok else "",
                remarks=tuple(part.cand.remarks + part.remarks), requires=entry.requires,
                missing_context=tuple(part.missing[:5])))
        if new_entries:
            plan.series[name] = existing + new_entries
            plan.new_entries[name] = new_entries
    return plan


def _existing_patches(ws: Workspace, name: str) -> list[tuple[PatchEntry, PatchFile]]:
    out = []
    for entry in ws.queue(name).entries:
        path = ws.patch_path(entry)
        with contextlib.suppress(OSError, BadInput):
            out.append((entry, read_patch_file(path.read_bytes(), source=ws.rel(path))))
    return out


def _dedupe_and_name(ws: Workspace, name: str, parts: list[tuple[Order, Part]],
                     existing: list[tuple[PatchEntry, PatchFile]], rules: Sequence[MapRule], forced: Status | None,
                     state: State, updates: dict[str, bytes] | None = None) -> list[tuple[Order, Part]]:
    """Drop duplicates (same git patch-id as an existing entry or an earlier input); give the rest ids and statuses."""
    ids = patch_ids([p.diff for _, p in parts] + [pf.diff for _, pf in existing])
    for (_, part), pid in zip(parts, ids):
        part.patch_id = pid or ""
    existing_by_pid = {pid: e for (e, _), pid in zip(existing, ids[len(parts):]) if pid}
    used_ids = {e.id for e in ws.queue(name).entries}
    first_of: dict[str, Part] = {}
    kept: list[tuple[Order, Part]] = []
    dups: list[tuple[Order, Part, Part]] = []
    for order, part in parts:
        cand = part.cand
        remarks = tuple(cand.remarks + part.remarks)
        if part.patch_id and part.patch_id in existing_by_pid:
            twin = existing_by_pid[part.patch_id]
            state.add(order, ImportItem(cand.source, ImportAction.DUPLICATE, patch_id=twin.id, upstream=name,
                                        reason=f"same change (git patch-id) as the existing {name}:{twin.id}",
                                        remarks=remarks))
            continue
        if part.patch_id and part.patch_id in first_of:
            dups.append((order, part, first_of[part.patch_id]))
            continue
        if part.patch_id:
            first_of[part.patch_id] = part
        if cand.patchq is not None:
            base_id = cand.patchq.trailer("Patchq-Id") or slug_of(cand.stem)
        elif cand.message is not None:
            base_id = slug_of(cand.head.subject or cand.title, from_name=False)
        else:
            base_id = slug_of(cand.stem)
        new_id = base_id
        for rule in reversed(rules_for(rules, cand.item.rel, cand.item.path.name, cand.source, (base_id,))):
            if rule.id:
                new_id = rule.id
                break
        if part.split:
            new_id = f"{new_id}-{part.upstream}"[:100]
        if updates is not None and new_id in used_ids:
            _update_existing(name, new_id, part, existing, updates, state, order, remarks)
            continue
        if cand.patchq is not None and new_id in used_ids:
            state.add(order, ImportItem(cand.source, ImportAction.SKIPPED, patch_id=new_id, upstream=name,
                                        reason=f"id {new_id!r} is already used in queue {name} by a different "
                                               "patch; give it a new id with --map", remarks=remarks))
            first_of.pop(part.patch_id, None)
            continue
        unique, n = new_id, 1
        while unique in used_ids:
            n += 1
            unique = f"{new_id}-{n}"
        if unique != new_id:
            part.remarks.append(f"id {new_id!r} was taken: using {unique!r}")
        used_ids.add(unique)
        status, part.status_rule = _status_of(part, rules, forced, base_id)
        date, part.date_rule = _date_of(part.cand)
        part.entry = PatchEntry(id=unique, upstream=name, file="", status=status, title=part.cand.title, date=date)
        kept.append((order, part))
    for order, part, first in dups:
        if first.entry is None:
            continue
        first.duplicates.append(part.cand.source)
        status, said = _status_of(part, rules, forced, first.entry.id)
        if said != DEFAULT_RULE and SAFETY[status] < SAFETY[first.entry.status]:
            first.remarks.append(f"the duplicate {part.cand.source} says {status.value} ({said}): kept the safer "
                                 "status")
            first.entry = replace(first.entry, status=status)
            first.status_rule = said
        state.add(order, ImportItem(part.cand.source, ImportAction.DUPLICATE, patch_id=first.entry.id,
                                    upstream=name, reason=f"same change (git patch-id) as {first.cand.source}, "
                                                          f"imported as {name}:{first.entry.id}",
                                    remarks=tuple(part.cand.remarks + part.remarks)))
    return kept


def _update_existing(name: str, patch_id: str, part: Part, existing: list[tuple[PatchEntry, PatchFile]],
                     updates: dict[str, bytes], state: State, order: Order, remarks: tuple[str, ...]) -> None:
    """import --update: the existing patch of this id gets the input's diff; header and annotation stay."""
    entry, current = next((e, pf) for e, pf in existing if e.id == patch_id)
    rel = f"queues/{name}/{entry.file}"
    if rel in updates:
        state.add(order, ImportItem(part.cand.source, ImportAction.SKIPPED, patch_id=patch_id, upstream=name,
                                    reason=f"another input already updates {name}:{patch_id}", remarks=remarks))
        return
    data = current.with_diff(part.diff)
    read_patch_file(data, source=rel)               # never write a patch patchq itself cannot read back
    updates[rel] = data
    state.add(order, ImportItem(part.cand.source, ImportAction.UPDATED, patch_id=patch_id, upstream=name,
                                status=entry.status.value, file=rel, outcome=part.outcome.kind.value,
                                reason=f"replaced the diff of the existing {name}:{patch_id}; its annotation is kept",
                                remarks=remarks))


def _named(part: Part) -> PatchEntry:
    """The entry naming a kept part: every part in `kept` got one when it was named."""
    assert part.entry is not None, part.cand.source
    return part.entry


def _containment(name: str, kept: list[tuple[Order, Part]], existing: list[tuple[PatchEntry, PatchFile]],
                 state: State) -> dict[int, list[str]]:
    """`contains` per imported part: the imported or existing patches whose every line change it also makes."""
    items = {id(p): change_items(p.patch) for _, p in kept}
    existing_items = [(e, change_items(pf)) for e, pf in existing]
    out: dict[int, list[str]] = {id(p): [] for _, p in kept}
    for _, big in kept:
        if big.cand.patchq is not None:
            continue                     # a patchq patch keeps its own annotation, byte for byte
        mine = items[id(big)]
        inner = [s for _, s in kept if s is not big and _contains(mine, items[id(s)])]
        direct = [s for s in inner if not any(o is not s and _contains(items[id(o)], items[id(s)]) for o in inner)]
        old = [e for e, its in existing_items if _contains(mine, its)]
        out[id(big)] = [_named(s).id for s in direct] + [e.id for e in old]
        for inside in [_named(s) for s in inner] + old:
            big.remarks.append(f"contains {inside.id} (a cumulative snapshot)")
            outer = _named(big)
            if inside.status == Status.PROMOTED and outer.status != Status.PROMOTED:
                state.warnings.append(f"{name}:{outer.id} is {outer.status.value} and contains the promoted "
                                      f"{inside.id}: never apply it on top of {inside.id} (it replaces it)")
    for _, small in kept:
        for entry, its in existing_items:
            if _contains(its, items[id(small)]):
                state.warnings.append(f"the existing {name}:{entry.id} already contains the imported "
                                      f"{_named(small).id} ({small.cand.source})")
    return out


def _final_entry(ws: Workspace, part: Part, contains: list[str], kept: list[tuple[Order, Part]],
                 all_kept: list[Part], number: int) -> PatchEntry:
    cand = part.cand
    entry = part.entry
    assert entry is not None
    file = f"{number:04d}-{entry.id}.patch"
    if cand.patchq is not None:
        data = cand.raw
        imported = entry_from_patch(cand.patchq, upstream=part.upstream, file=file, source=cand.source)
        if imported.status != entry.status:
            data = _set_trailer(data, "Patchq-Status", entry.status.value)
            part.remarks.append(f"Patchq-Status trailer rewritten to {entry.status.value}")
        if imported.id != entry.id:
            data = _set_trailer(data, "Patchq-Id", entry.id)
            part.remarks.append(f"Patchq-Id trailer rewritten to {entry.id}")
        part.data = data
        return entry_from_patch(read_patch_file(data, source=cand.source), upstream=part.upstream, file=file,
                                source=cand.source)
    date = entry.date
    footer = [f"Imported from {cand.source}."]
    if part.duplicates:
        footer.append(f"The same change was also in: {', '.join(part.duplicates)}.")
    notes: list[str] = []
    if cand.note is not None:
        if not cand.note.dest:
            cand.note.dest = _unique_file({}, f"queues/{part.upstream}/notes/{entry.id}.md", ws.root)
        notes.append(cand.note.dest)
        cand.note.linked.append(f"{part.upstream}:{entry.id}")
    if part.split:
        others = [f"{p.upstream}:{p.entry.id}" for p in all_kept if p.cand is cand and p is not part and p.entry]
        footer.append(f"Split from {cand.source} (one part per upstream); the other part: {', '.join(others)}.")
        notes.extend(others)
    supersedes = [p.entry.id for _, p in kept if p.entry is not None and p.entry.id in contains
                  and p.entry.status == entry.status and _iso(p.entry.date) and _iso(date) > _iso(p.entry.date)]
    why = "\n\n".join(p for p in (cand.description, " ".join(footer)) if p)
    flags = _flags_of(part.patch, part.remarks)
    entry = replace(entry, file=file, why=safe_description(why), flags=flags, date=date, notes=tuple(notes),
                    contains=tuple(contains), supersedes=tuple(supersedes), author=cand.head.author,
                    requires=tuple(part.requires), salvaged=cand.salvaged)
    data = render_patch_file(entry, part.diff)
    reread = read_patch_file(data, source=file)
    check = entry_from_patch(reread, upstream=part.upstream, file=file, source=file)
    if check.id != entry.id or check.status != entry.status:
        raise BadInput(f"import would write a patch file that does not read back ({cand.source})", path=file)
    part.data = data
    return entry


def _date_of(cand: Candidate) -> tuple[str, str]:
    """(date, rule): a patchq trailer, an mbox message's Date: header (verbatim), else a date in the file name."""
    if cand.patchq is not None:
        value = cand.patchq.trailer("Patchq-Date") or ""
        return value, "trailer: Patchq-Date" if value else ""
    date = date_from_name(cand.stem)
    if cand.head.date and (cand.message is not None or not date):
        return cand.head.date, "Date: header"
    return date, f"name: {cand.stem!r}" if date else ""


def plan_notes(ws: Workspace, notes: list[NoteFile], plan: Plan, state: State) -> None:
    """Linked notes are copied beside their patch's queue; the others are kept as notes-only files."""
    for note in notes:
        if note.linked:
            plan.files[note.dest] = note.data
            state.add(note.order, ImportItem(note.item.source, ImportAction.NOTE, file=note.dest,
                                             reason=f"linked to {', '.join(note.linked)}"))
            continue
        text = note.data.decode("utf-8", "replace")
        guess = status_from_name(note.stem) or status_from_text(text)
        dest = _unique_file(plan.files, f"notes/{slug_of(note.stem)}.md", ws.root)
        plan.files[dest] = note.data
        remarks = []
        if re.search(r"(?m)^(diff --git |@@ -\d)", strip_fences(text)):
            remarks.append("holds diff text outside code fences; a note is never imported as a patch "
                           "(rename it .patch to import it)")
        reason = "prose and code fences: kept as a note, never a patch"
        if note.wanted_by:
            reason = f"its patch {note.wanted_by[0]} was not imported (see its line): kept as a note"
        state.add(note.order, ImportItem(note.item.source, ImportAction.NOTES_ONLY, file=dest,
                                         status=guess[0].value if guess else "", status_rule=guess[1] if guess else "",
                                         date=date_from_name(note.stem), reason=reason, remarks=tuple(remarks)))


def _iso(date: str) -> str:
    if re.fullmatch(r"\d{4}-\d\d-\d\d", date or ""):
        return date
    try:
        return email.utils.parsedate_to_datetime(date).date().isoformat()
    except (TypeError, ValueError):
        return ""


def _set_trailer(data: bytes, name: str, value: str) -> bytes:
    """Replace one trailer line in a patch file's header, leaving every other byte alone."""
    pattern = re.compile(rb"^" + re.escape(name.encode()) + rb": .*$", re.MULTILINE)
    head_end = data.find(b"\n---\n")
    head, rest = (data[:head_end], data[head_end:]) if head_end >= 0 else (data, b"")
    return pattern.sub(f"{name}: {value}".encode(), head, count=1) + rest


