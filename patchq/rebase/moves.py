"""Files upstream renamed or deleted between the old base and the new one, and patches retargeted to follow renames.

git's own rename detection (`diff -M`) decides what is a rename; a patch's sections for a renamed file are rewritten
to the new path (the pre-image blob ids stay, so a 3-way merge still has its base). A file the patch changes that
upstream deleted is never dropped silently: the rebase stops on it as a conflict that names the commit or release
that deleted it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..git import Repo
from ..patchfile import read_patch_file
from ..queuerun import LoadedPatch


@dataclass(frozen=True)
class Rename:
    old: str
    new: str
    score: int                    # git's similarity, percent
    where: str                    # "<commit12> <subject>" of the commit (or release) that moved it

    @property
    def line(self) -> str:
        return f"followed rename {self.old} -> {self.new} ({self.score}% similar, in {self.where})"


@dataclass(frozen=True)
class Moves:
    """Renames and deletions between two bases, limited to the paths a queue changes."""

    renames: dict[str, Rename]
    deleted: dict[str, str]       # path -> "<commit12> <subject>" of the commit (or release) that deleted it

    def to_dict(self) -> dict[str, Any]:
        return {"renames": {k: dataclasses.asdict(v) for k, v in self.renames.items()}, "deleted": self.deleted}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Moves:
        data = data or {}
        return cls({k: Rename(**v) for k, v in data.get("renames", {}).items()}, dict(data.get("deleted", {})))


NO_MOVES = Moves({}, {})


def changed_paths(patches: list[LoadedPatch]) -> set[str]:
    """Paths the queue changes that must already exist at the base (modified or deleted, not created)."""
    return {s.old_path for p in patches for s in p.patch.files if not s.is_new and s.old_path}


def find_moves(repo: Repo, old: str, new: str, patches: list[LoadedPatch]) -> Moves:
    """Renames (git's detection, default 50% similarity) and deletions of the queue's files between two bases."""
    wanted = changed_paths(patches)
    if old == new or not wanted:
        return NO_MOVES
    fields = repo.name_status(old, new, renames=True)
    renames: dict[str, tuple[str, int]] = {}
    deleted: list[str] = []
    for status, paths in fields:
        if status.startswith("R") and paths[0] in wanted:
            renames[paths[0]] = (paths[1], int(status[1:] or 100))
        elif status == "D" and paths[0] in wanted:
            deleted.append(paths[0])
    found_renames = {src: Rename(src, dst, score, _where(repo, old, new, src))
                     for src, (dst, score) in renames.items()}
    found_deleted = {path: _where(repo, old, new, path) for path in deleted}
    return Moves(found_renames, found_deleted)


def _where(repo: Repo, old: str, new: str, path: str) -> str:
    """The first-parent commit of old..new that renamed or deleted `path` (git log's answer), as a short label."""
    found = repo.first_removal(old, new, path)
    if not found:
        return f"{new[:12]} (between the bases)"
    sha, subject = found
    return f"{sha[:12]} {subject}"


def retarget(loaded: LoadedPatch, renames: dict[str, Rename]) -> tuple[LoadedPatch, tuple[str, ...]]:
    """The patch with its sections for renamed files moved to the new paths, and one line per rename followed.

    Only the file header lines change (`diff --git`, `---`, `+++`); hunks and `index` lines stay, so a 3-way merge
    still finds the pre-image. Sections that create, rename or copy files, or have quoted paths, are left alone.
    """
    moved = [(s, renames[s.old_path]) for s in loaded.patch.files
             if s.old_path in renames and not (s.is_new or s.rename or s.copy) and '"' not in s.old_path]
    if not moved:
        return loaded, ()
    lines = loaded.patch.diff.split(b"\n")
    for section, rename in moved:
        dst = rename.new
        end = section.hunks[0].header_line - 1 if section.hunks else section.end_line - 1
        for number in range(section.start_line - 1, end):
            line = lines[number]
            if line.startswith(b"diff --git "):
                lines[number] = b"diff --git a/" + dst.encode() + b" b/" + dst.encode()
            elif line.startswith(b"--- a/"):
                lines[number] = b"--- a/" + dst.encode()
            elif line.startswith(b"+++ b/"):
                lines[number] = b"+++ b/" + dst.encode()
    diff = b"\n".join(lines)
    patch = read_patch_file(loaded.patch.head + diff + loaded.patch.tail, source=loaded.source)
    return LoadedPatch(loaded.entry, patch, loaded.source), tuple(rename.line for _, rename in moved)


def deleted_in(loaded: LoadedPatch, deleted: dict[str, str]) -> list[str]:
    """"path (deleted upstream in X)" for each file the patch changes that upstream deleted."""
    return [f"{s.old_path}: deleted upstream in {deleted[s.old_path]}" for s in loaded.patch.files
            if not s.is_new and s.old_path in deleted]
