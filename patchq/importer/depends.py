"""What each patch sits on: requirements inferred from the lines a patch needs and other patches add.

Lab patches are usually cut from a tree that already carries earlier patches. For an imported patch that does not
apply at the pin, the pre-image lines of its hunks that are absent from the pinned file are looked up in the
post-images (added lines) of the other patches of the same queue — entries already there and other inputs of the
same import. The fewest patches that add them all become its `requires` (greedy: the one adding most first, the
earliest on a tie), and the patch is judged again on top of them (their own requirements first): its outcome is
the outcome there. Lines found nowhere are its `missing_context`.

The cost is one set of lines per touched file at the pin and one per providing patch, so it grows with the size of
the patches, not with the number of pairs of patches.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..model import OutcomeKind, PatchEntry, Status
from ..patchfile import PatchFile
from ..queuerun import LoadedPatch
from .items import MissingLine, Order
from .placer import Part, Placer

MAX_MISSING = 5


@dataclass
class Provider:
    """A patch that could be required: an existing entry or another imported part of the same queue."""

    id: str
    patch: PatchFile
    added: dict[str, set[bytes]]
    position: int
    part: Part | None = None
    entry: PatchEntry | None = None

    def requires(self) -> tuple[str, ...]:
        if self.part is not None:
            return tuple(self.part.requires)
        return self.entry.requires if self.entry is not None else ()


def added_lines(patch: PatchFile) -> dict[str, set[bytes]]:
    out: dict[str, set[bytes]] = {}
    for section in patch.files:
        if section.new_path is None:
            continue
        lines = out.setdefault(section.new_path, set())
        for hunk in section.hunks:
            lines.update(raw[1:] for raw in hunk.lines if raw[:1] == b"+")
    return out


def needed_lines(placer: Placer, name: str, part: Part) -> list[tuple[str, bytes, int]]:
    """(path, text, line in the input patch) of the pre-image lines the pinned files lack."""
    out: list[tuple[str, bytes, int]] = []
    for index in part.sections:
        section = part.cand.scanned.sections[index]
        mapped = part.mapped[index] if index < len(part.mapped) else None
        if mapped is None or mapped.old is None or section.created:
            continue
        data = placer.blob(name, mapped.old)
        present = set(data.split(b"\n")) if data is not None else set()
        for hunk in section.hunks:
            for text, line in hunk.pre_image():
                if text.strip() and text not in present:
                    out.append((mapped.old, text, line))
    return out


def infer_requirements(placer: Placer, name: str, kept: list[tuple[Order, Part]],
                       existing: list[tuple[PatchEntry, PatchFile]]) -> None:
    """Set `requires`, `missing` and (re-judged on top of its requirements) the outcome of each conflicting part."""
    providers: list[Provider] = []
    for position, (entry, patch) in enumerate(existing):
        providers.append(Provider(entry.id, patch, added_lines(patch), position, entry=entry))
    for position, (_, part) in enumerate(kept, len(existing)):
        assert part.entry is not None
        providers.append(Provider(part.entry.id, part.patch, added_lines(part.patch), position, part=part))
    by_id = {p.id: p for p in providers}
    changed = []
    for _, part in kept:
        if part.cand.patchq is not None or part.group or part.outcome.kind != OutcomeKind.CONFLICT:
            continue
        need = needed_lines(placer, name, part)
        if not need:
            continue
        mine = part.entry.id if part.entry is not None else ""
        uncovered = {(path, text) for path, text, _ in need}
        chosen: list[Provider] = []
        while uncovered:
            best: Provider | None = None
            cover: set[tuple[str, bytes]] = set()
            for provider in providers:
                if provider.id == mine or provider in chosen:
                    continue
                found = {(p, t) for p, t in uncovered if t in provider.added.get(p, ())}
                if len(found) > len(cover) and mine not in _closure(provider.id, by_id):
                    best, cover = provider, found
            if best is None:
                break
            chosen.append(best)
            uncovered -= cover
        part.requires = [p.id for p in sorted(chosen, key=lambda p: p.position)]
        part.missing = [MissingLine(path, line, text.decode("utf-8", "replace"))
                        for path, text, line in need if (path, text) in uncovered]
        if part.requires:
            changed.append(part)
    for part in changed:
        _judge_on_top(placer, name, part, by_id)


def _closure(pid: str, by_id: dict[str, Provider]) -> list[str]:
    """`pid`'s requirements, theirs first, without repeats (cycles are cut where they close)."""
    out: list[str] = []
    seen: set[str] = set()

    def visit(node: str) -> None:
        if node in seen or node not in by_id:
            return
        seen.add(node)
        for need in by_id[node].requires():
            visit(need)
        out.append(node)

    for need in by_id[pid].requires() if pid in by_id else ():
        visit(need)
    return out


def _judge_on_top(placer: Placer, name: str, part: Part, by_id: dict[str, Provider]) -> None:
    assert part.entry is not None
    below = [by_id[i] for i in _closure(part.entry.id, by_id)]       # requirements of requirements first
    alone = part.outcome.kind.value
    built = placer.build(part.cand, name, part.sections, part.mapped, [p.patch for p in below])
    loaded = [LoadedPatch(PatchEntry(id=p.id, upstream=name, file="", status=Status.NEGATIVE_ARCHIVED, title=p.id),
                          p.patch, p.id) for p in below]
    loaded.append(LoadedPatch(PatchEntry(id=part.entry.id, upstream=name, file="", status=Status.NEGATIVE_ARCHIVED,
                                         title=part.cand.title), built.patch, part.cand.source))
    outcome = built.adjust(placer.judge(name, loaded)[-1])
    part.built, part.diff, part.patch = built, built.diff, built.patch
    part.outcome = replace(outcome, patch_id=part.entry.id)
    shown = ", ".join(f"{name}:{i}" for i in part.requires)
    part.remarks.extend(n for n in built.notes() if n not in part.remarks)
    part.remarks.append(f"needs {shown}: judged on top of {', '.join(p.id for p in below)} "
                        f"({outcome.kind.value}; alone at the pin: {alone})")


def requirements_first(kept: list[tuple[Order, Part]]) -> list[tuple[Order, Part]]:
    """Input order, except that a part comes after the imported parts it requires."""
    ids = {p.entry.id: k for k, (_, p) in enumerate(kept) if p.entry is not None}
    placed: list[int] = []
    done: set[int] = set()

    def visit(k: int, path: set[int]) -> None:
        if k in done or k in path:
            return
        path.add(k)
        for need in kept[k][1].requires:
            if need in ids:
                visit(ids[need], path)
        done.add(k)
        placed.append(k)

    for k in range(len(kept)):
        visit(k, set())
    return [kept[k] for k in placed]
