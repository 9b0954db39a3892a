"""Edit a queue: add a patch recorded from a work tree, refresh a patch's diff, keep series and trailers in step.

The patch file and series.yaml are staged on the command's transaction (`txn.Txn`) and land together.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from .errors import BadInput
from .git import Repo
from .headedit import set_trailer
from .model import PATCH_ID, PatchEntry, Status
from .patchfile import entry_from_patch, read_patch_file, render_patch_file
from .txn import Txn
from .workspace import Workspace, series_bytes


def worktree_diff(folder: Path) -> bytes:
    """The diff of a checkout's work tree (untracked files included) against its HEAD, without touching its index."""
    if not (folder / ".git").exists():
        raise BadInput(f"{folder} is not a git checkout (expected the folder 'patchq apply' made)")
    repo = Repo(folder)
    head = repo.head()
    if head is None:
        raise BadInput(f"{folder} has no commits")
    return repo.diff_trees(head, repo.worktree_tree(head))


def next_file_name(ws: Workspace, upstream: str, patch_id: str) -> str:
    numbers = [int(m.group(1)) for e in ws.queue(upstream).entries if (m := re.match(r"^(\d{4})-", e.file))]
    return f"{(max(numbers) + 1 if numbers else 1):04d}-{patch_id}.patch"


def add_patch(ws: Workspace, t: Txn, entry: PatchEntry, diff: bytes, *, after: str | None = None) -> PatchEntry:
    """Add a new annotated patch to its upstream's queue: at the end, or right after patch `after`."""
    if not PATCH_ID.match(entry.id):
        raise BadInput(f"patch id {entry.id!r} must be lower-case letters, digits, '.', '_' or '-'")
    ws.upstream(entry.upstream)
    if ws.queue(entry.upstream).get(entry.id):
        raise BadInput(f"patch {entry.id!r} already exists in queue {entry.upstream!r}")
    if not diff.strip():
        raise BadInput("there is nothing to record: the work tree has no changes against its HEAD")
    if not entry.file:
        entry = replace(entry, file=next_file_name(ws, entry.upstream, entry.id))
    data = render_patch_file(entry, diff)
    read_patch_file(data, source=entry.file)          # never write a patch patchq itself cannot read back
    target = ws.queue_dir(entry.upstream) / entry.file
    if target.exists():
        raise BadInput(f"{ws.rel(target)} already exists")
    entries = list(ws.queue(entry.upstream).entries)
    if after is not None:
        position = next((i for i, e in enumerate(entries) if e.id == after), None)
        if position is None:
            raise BadInput(f"--after {after}: no patch {after!r} in queue {entry.upstream!r}")
        entries.insert(position + 1, entry)
    else:
        entries.append(entry)
    t.write(target, data, create=True)
    t.write(ws.queue_dir(entry.upstream) / "series.yaml", series_bytes(ws, entry.upstream, entries))
    return entry


def refresh_patch(ws: Workspace, t: Txn, patch_ref: str, diff: bytes) -> PatchEntry:
    """Replace one patch's diff, keeping its header, description and trailers byte for byte."""
    entry = ws.find_patch(patch_ref)
    path = ws.patch_path(entry)
    current = read_patch_file(path.read_bytes(), source=ws.rel(path))
    if not diff.strip():
        raise BadInput(f"refusing to refresh {entry.id!r} with an empty diff")
    data = current.with_diff(diff)
    read_patch_file(data, source=ws.rel(path))
    t.write(path, data)
    return entry


def commit_diff(repo: Repo, commit: str) -> bytes:
    """The diff a single commit introduces, in the form patch files carry."""
    return repo.commit_diff(commit)


def set_status(ws: Workspace, t: Txn, patch_ref: str, status: Status) -> PatchEntry:
    """Change a patch's status in series.yaml and in its trailer together: one trailer line, no other byte."""
    entry = ws.find_patch(patch_ref)
    if status == Status.PROMOTED and entry.salvaged:
        raise BadInput(f"{entry.ref} was salvaged from a damaged bundle ({entry.salvaged}); a salvaged patch can "
                       "never be promoted: import the undamaged bundle instead", path=ws.rel(ws.patch_path(entry)))
    updated = replace(entry, status=status)
    path = ws.patch_path(entry)
    patch = read_patch_file(path.read_bytes(), source=ws.rel(path))
    data = set_trailer(patch.head, "Patchq-Status", status.value) + patch.diff + patch.tail
    read_patch_file(data, source=ws.rel(path))          # never write a patch patchq itself cannot read back
    t.write(path, data)
    entries = [updated if e.id == entry.id else e for e in ws.queue(entry.upstream).entries]
    t.write(ws.queue_dir(entry.upstream) / "series.yaml", series_bytes(ws, entry.upstream, entries))
    return updated


def trailer_mismatches(ws: Workspace, entry: PatchEntry) -> list[tuple[str, str, str]]:
    """(field, series value, trailer value) where series.yaml and the patch file's trailers disagree."""
    path = ws.patch_path(entry)
    patch = read_patch_file(path.read_bytes(), source=ws.rel(path))
    from_file = entry_from_patch(patch, upstream=entry.upstream, file=entry.file, source=ws.rel(path)) \
        if patch.trailer("Patchq-Id") else None
    if from_file is None:
        return [("Patchq-Id", entry.id, "(missing)")]
    out = []
    for name in ("id", "status", "flags", "result", "baseline", "date", "base", "notes", "supersedes", "contains",
                 "requires", "salvaged"):
        a, b = getattr(entry, name), getattr(from_file, name)
        if a != b:
            out.append((name, _show(a), _show(b)))
    if entry.title and entry.title != from_file.title:
        out.append(("title", entry.title, from_file.title))
    return out


def _show(value: object) -> str:
    if isinstance(value, tuple):
        return ", ".join(value)
    return str(getattr(value, "value", value))          # a status by its name in the file

