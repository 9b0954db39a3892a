"""`patchq sync`: write what was done in a stack's checkout back into its queues (gbp-pq's `export`).

The checkout's commits above the pin are walked oldest first and mapped to patches by their `Patchq-Id` trailer:
a changed diff refreshes its patch (the annotation stays byte for byte), a commit without a known id becomes a new
patch (subject -> title, body -> why, author and date kept), the series takes the checkout's order, and stack
patches missing from the checkout are reported as dropped (they stay in the queue: removing one is your call).
Nothing is written unless every commit of every upstream can be taken.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .apply import default_checkout_dir
from .checkout import checkout_base, is_patchq_checkout, move_applied, operation_in_progress
from .errors import BadInput
from .git import Repo
from .model import PATCH_ID, PatchEntry, Status
from .patchfile import read_patch_file, render_patch_file
from .queue import next_file_name
from .queuerun import load_patch
from .txn import Txn
from .workspace import Workspace, series_bytes
from .wsstatus import _commit_patch_ids, _queue_patch_ids

UNCHANGED, REFRESHED, ADDED = "unchanged", "refreshed", "added"


@dataclass(frozen=True)
class SyncedPatch:
    patch_id: str
    commit: str
    action: str                     # unchanged | refreshed | added
    file: str
    title: str = ""


@dataclass(frozen=True)
class SyncUpstream:
    upstream: str
    checkout: str
    patches: tuple[SyncedPatch, ...] = ()     # in the checkout's order
    order: tuple[str, ...] = ()               # the queue's order afterwards
    reordered: bool = False
    dropped: tuple[str, ...] = ()             # applied by the stack, absent from the checkout (kept in the queue)
    note: str = ""                            # why this upstream was skipped


@dataclass(frozen=True)
class SyncReport:
    stack: str
    upstreams: tuple[SyncUpstream, ...]
    dry_run: bool = False

    @property
    def changed(self) -> bool:
        return any(u.reordered or any(p.action != UNCHANGED for p in u.patches) for u in self.upstreams)


@dataclass
class _Plan:
    report: SyncUpstream
    writes: list[tuple[Path, bytes]]
    series: bytes | None
    checkout: Path
    head: str


def sync_stack(ws: Workspace, t: Txn | None, stack_name: str, *, only: tuple[str, ...] = (),
               dry_run: bool = False) -> SyncReport:
    stack = ws.stack(stack_name)
    for name in only:
        if name not in stack.upstreams:
            raise BadInput(f"stack {stack_name!r} does not use upstream {name!r}")
    plans = [_plan(ws, stack_name, up, required=bool(only)) for up in stack.upstreams if not only or up in only]
    if not dry_run and t is not None:
        for plan in plans:
            for path, data in plan.writes:
                t.write(path, data)
            if plan.series is not None:
                t.write(ws.queue_dir(plan.report.upstream) / "series.yaml", plan.series)
        t.commit()
        for plan in plans:      # the checkout's commits are the queue's now: apply may regenerate it freely
            if plan.head:
                move_applied(Repo(plan.checkout), plan.head, "patchq sync")
    return SyncReport(stack_name, tuple(p.report for p in plans), dry_run)


def _plan(ws: Workspace, stack_name: str, upstream: str, *, required: bool) -> _Plan:
    stack = ws.stack(stack_name)
    path = default_checkout_dir(ws, stack_name, upstream)
    rel = ws.rel(path)
    if not is_patchq_checkout(path):
        if required:
            raise BadInput(f"no checkout of {upstream!r} for stack {stack_name!r}: run 'patchq apply {stack_name}'")
        return _Plan(SyncUpstream(upstream, "", note="not applied yet"), [], None, path, "")
    repo = Repo(path)
    busy = operation_in_progress(path)
    if busy:
        raise BadInput(f"a '{busy}' is stopped in {rel}; finish or abort it first")
    dirty = repo.status_porcelain()
    if dirty:
        raise BadInput(f"{rel} has uncommitted changes ({', '.join(sorted(dirty)[:3])}); commit them "
                       f"(git -C {rel} commit) or fold them into the patch at HEAD with 'patchq refresh' first")
    pin = ws.pin_for(stack, upstream)
    head = repo.head() or ""
    archive = ws.upstream(upstream).archive
    base = checkout_base(path, pin, archive.sha256 if archive else "")
    if not base:
        raise BadInput(f"{rel} is not on the pin {pin[:12]} of {upstream!r}; sync needs the checkout 'patchq apply "
                       f"{stack_name}' made")
    merges = repo.rev_list("--min-parents=2", "HEAD", "--not", base)
    if merges:
        raise BadInput(f"{rel} has a merge commit ({merges[0][:10]}); a queue is a straight line of commits")
    records = repo.log_records("--reverse", "HEAD", "--not", base,
                               fields=("%H", "%an <%ae>", "%aI", "%B",
                                       "%(trailers:key=Patchq-Id,valueonly,separator=%x2C)"))
    queue = ws.queue(upstream)
    known = [queue.get(r[4].split(",")[0].strip()) for r in records]
    ours = _commit_patch_ids(repo, base) if records else {}
    theirs = _queue_patch_ids(ws, repo, [e for e in known if e is not None])
    taken: set[str] = set()
    used_ids = {e.id for e in queue.entries}
    numbers = _numbers(ws, upstream)
    order_ids: list[str] = []
    new_entries: dict[str, PatchEntry] = {}
    patches: list[SyncedPatch] = []
    writes: list[tuple[Path, bytes]] = []
    status = Status.PROMOTED if Status.PROMOTED in stack.include else stack.include[0]
    for record, entry in zip(records, known):
        sha, author, date, message = record[0], record[1], record[2], record[3]
        if entry is not None:
            if entry.id in taken:
                raise BadInput(f"{rel}: two commits carry Patchq-Id {entry.id!r} ({sha[:10]} and an earlier one); "
                               "squash or re-label one of them")
            taken.add(entry.id)
            order_ids.append(entry.id)
            target = ws.patch_path(entry)
            if ours.get(sha) and ours.get(sha) == theirs.get(entry.id):
                patches.append(SyncedPatch(entry.id, sha, UNCHANGED, entry.file, entry.title))
                continue
            current = load_patch(ws, entry).patch
            data = current.with_diff(repo.commit_diff(sha))
            read_patch_file(data, source=ws.rel(target))
            writes.append((target, data))
            patches.append(SyncedPatch(entry.id, sha, REFRESHED, entry.file, entry.title))
            continue
        title, why, label = _split_message(message)
        patch_id = _new_id(label, title, used_ids)
        used_ids.add(patch_id)
        numbers += 1
        new = PatchEntry(id=patch_id, upstream=upstream, file=f"{numbers:04d}-{patch_id}.patch", status=status,
                         title=title or patch_id, why=why, author=author, date=date)
        data = render_patch_file(new, repo.commit_diff(sha))
        read_patch_file(data, source=new.file)
        writes.append((ws.queue_dir(upstream) / new.file, data))
        new_entries[patch_id] = new
        order_ids.append(patch_id)
        patches.append(SyncedPatch(patch_id, sha, ADDED, new.file, new.title))
    entries = list(queue.entries)
    order = _merge_order(entries, order_ids, new_entries)
    reordered = [e.id for e in order if e.id in taken] != [e.id for e in entries if e.id in taken]
    dropped = tuple(e.id for e in ws.stack_entries(stack, upstream) if e.id not in taken)
    series = series_bytes(ws, upstream, order) if (new_entries or reordered) else None
    report = SyncUpstream(upstream, str(path), tuple(patches), tuple(e.id for e in order), reordered, dropped)
    return _Plan(report, writes, series, path, head)


def _numbers(ws: Workspace, upstream: str) -> int:
    name = next_file_name(ws, upstream, "x")
    return int(name[:4]) - 1


def _merge_order(entries: list[PatchEntry], order_ids: list[str], new: dict[str, PatchEntry]) -> list[PatchEntry]:
    """The queue with the checkout's patches in the checkout's order, in the slots those patches held, and new
    patches right after the patch their commit followed; patches the checkout does not hold keep their places."""
    by_id = {e.id: e for e in entries}
    existing = [i for i in order_ids if i in by_id]
    slots = [n for n, e in enumerate(entries) if e.id in set(existing)]
    out = list(entries)
    for slot, patch_id in zip(slots, existing):
        out[slot] = by_id[patch_id]
    for position, patch_id in enumerate(order_ids):
        if patch_id not in new:
            continue
        before = next((order_ids[k] for k in range(position - 1, -1, -1)), None)
        if before is None:
            first = next((n for n, e in enumerate(out) if e.id in set(order_ids)), len(out))
            out.insert(first, new[patch_id])
        else:
            at = next(n for n, e in enumerate(out) if e.id == before)
            out.insert(at + 1, new[patch_id])
    return out


_TRAILER = re.compile(r"^[A-Za-z][A-Za-z0-9-]*: ")


def _split_message(message: str) -> tuple[str, str, str]:
    """(subject, body without a trailing Patchq trailer block, the Patchq-Id it named or '')."""
    lines = message.strip("\n").split("\n")
    subject = lines[0].strip()
    body = "\n".join(lines[1:]).strip("\n")
    paragraphs = body.split("\n\n") if body else []
    label = ""
    if paragraphs:
        last = [ln for ln in paragraphs[-1].split("\n") if ln]
        if last and all(_TRAILER.match(ln) for ln in last) and any(ln.startswith("Patchq-") for ln in last):
            label = next((ln.partition(": ")[2].strip() for ln in last if ln.startswith("Patchq-Id: ")), "")
            paragraphs = paragraphs[:-1]
    return subject, "\n\n".join(paragraphs).strip(), label


def _new_id(label: str, title: str, used: set[str]) -> str:
    base = label if label and PATCH_ID.match(label) else \
        re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", title.lower())).strip("-")[:48].strip("-") or "patch"
    if not base[0].isalnum():
        base = "p" + base
    candidate, n = base, 1
    while candidate in used:
        n += 1
        candidate = f"{base}-{n}"
    return candidate

