"""The resolution work tree: a shared clone of the mirror with rerere, where conflicts are shown and fixed."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from ..errors import EnvironmentFailure
from ..git import Repo, clone_shared
from ..patchfile import commit_message, date_to_git
from ..patchtext import FileDiff
from ..queuerun import LoadedPatch
from ..txn import publish
from .state import MARKER_LINE, RERERE_REPLAYED, ConflictStop, RebasePaths

# ---- the resolution work tree ----------------------------------------------------------------------------------------

def _prepare_worktree(repo: Repo, paths: RebasePaths, head: str) -> Repo:
    """A work tree at `head` sharing the mirror's objects, with rerere on and its cache in the rebase folder."""
    paths.rr_cache.mkdir(parents=True, exist_ok=True)
    if (paths.worktree / ".git").is_dir():
        wt = Repo(paths.worktree)
        wt.rerere_clear()
        wt.reset_hard(head)
        return wt
    shutil.rmtree(paths.worktree, ignore_errors=True)
    tmp = paths.dir / "worktree.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    made = clone_shared(repo.path, tmp)
    for key, value in (("rerere.enabled", "true"), ("gc.auto", "0"), ("core.autocrlf", "false"),
                       ("advice.detachedHead", "false")):
        made.config(key, value)
    # relative, so it points at the same folder from worktree.tmp and worktree, and survives moving the workspace
    (tmp / ".git" / "rr-cache").symlink_to(Path("..") / ".." / "rr-cache")
    made.checkout(head)
    if not publish(tmp, paths.worktree, durable=False):
        raise EnvironmentFailure(f"cannot make the resolution work tree: {paths.worktree} is in the way")
    return Repo(paths.worktree)


def _untracked(wt: Repo) -> list[str]:
    return wt.untracked_files()


def _section_text(diff: bytes, section: FileDiff) -> bytes:
    lines = diff.split(b"\n")
    return b"\n".join(lines[section.start_line - 1: section.end_line - 1]) + b"\n"


def _write_reject(wt: Repo, path: str, text: bytes) -> str:
    """The section git could not place at all, as `<path>.rej` beside where the file would be."""
    target = wt.path / f"{path}.rej"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(text)
    return f"{path}.rej"


def _open_conflict(repo: Repo, paths: RebasePaths, head: str, loaded: LoadedPatch, *,
                   deleted: dict[str, str] | None = None, fuzz: bool = False) -> tuple[Repo, ConflictStop]:
    """Apply the patch in the resolution work tree file by file, each with a real 3-way merge; rerere replays what
    it knows.

    One file that cannot be merged (deleted upstream, missing, no pre-image blob) never stops the others from being
    merged: it gets a `.rej` and a line saying why, and every file that needs work is in the stop's list. With
    `fuzz`, files that apply only with reduced context are applied that way and listed for review.
    """
    wt = _prepare_worktree(repo, paths, head)
    diff = loaded.patch.diff
    replayed: set[str] = set()
    whole: list[str] = []
    review: list[str] = []
    rejects: list[str] = []
    for section in loaded.patch.files:
        text = _section_text(diff, section)
        path = section.path
        if deleted and not section.is_new and section.old_path in deleted:
            rej = _write_reject(wt, section.old_path, text)
            whole.append(f"{section.old_path}: deleted upstream in {deleted[section.old_path]} (the patch's change "
                         f"is in {rej}: port it where the code went, or drop it)")
            continue
        res = wt.apply(text, index=True, threeway=True)
        replayed.update(RERERE_REPLAYED.findall(res.stderr))
        if res.ok or path in wt.unmerged_paths():
            continue
        if fuzz:
            res = wt.apply(text, index=True, context=1)
            if res.ok:
                review.append(path)
                continue
        before = set(_untracked(wt))
        res = wt.apply(text, reject=True)
        made = sorted(p for p in set(_untracked(wt)) - before if p.endswith(".rej"))
        if made:
            rejects.extend(made)
        else:
            rej = _write_reject(wt, path, text)
            reason = next((ln[7:] for ln in res.stderr.splitlines() if ln.startswith("error: ")), "does not apply")
            whole.append(f"{path}: failed as a whole ({reason}); its change is in {rej}")
    fixed = [p for p in sorted(replayed) if p in wt.unmerged_paths() and not _has_markers(wt.path / p)]
    if fixed:
        wt.add(fixed)
    stop = ConflictStop(loaded.entry.id, loaded.source, str(paths.worktree), tuple(wt.unmerged_paths()),
                        tuple(sorted(set(rejects))), tuple(sorted(replayed)), whole=tuple(whole),
                        review=tuple(review))
    return wt, stop


def _has_markers(path: Path) -> bool:
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        return False
    return re.search(rb"^(<{7}|>{7})( |$)", data, re.M) is not None


def _unresolved(wt: Repo, head: str) -> list[str]:
    """Why the work tree cannot be committed yet, one line per problem; empty when it can."""
    problems = []
    unmerged = wt.unmerged_paths()
    if unmerged:
        problems.append("unmerged (edit, then git add): " + ", ".join(unmerged))
    rejects = sorted(p for p in _untracked(wt) if p.endswith(".rej"))
    if rejects:
        problems.append("rejected hunks to apply by hand, then delete: " + ", ".join(rejects))
    staged = wt.staged_diff(head)
    marked: list[str] = []
    current = ""
    for line in staged.split(b"\n"):
        if line.startswith(b"+++ b/"):
            current = line[6:].decode("utf-8", "replace")
        elif MARKER_LINE.match(line + b"\n") and current not in marked:
            marked.append(current)
    if marked:
        problems.append("conflict markers still staged in: " + ", ".join(marked))
    unstaged = [p for p in wt.unstaged_paths() if p not in unmerged]
    if unstaged:
        problems.append("changed but not staged (git add them, or git checkout -- them): " + ", ".join(unstaged))
    return problems


def _commit_resolution(repo: Repo, wt: Repo, refs: str, head: str, loaded: LoadedPatch) -> str:
    """The resolution as the patch's commit on `head` (same message, author and date as run_queue writes), copied
    into the mirror. Returns "" when the resolution changes nothing."""
    wt.rerere_record()                                  # record the resolution for next time
    tree = wt.write_tree()
    if tree == repo.tree_of(head):
        return ""
    author = loaded.patch.author or loaded.entry.author or "patchq <patchq@localhost>"
    commit = wt.commit_tree(tree, [head], commit_message(loaded.entry), author=author,
                            date="@" + date_to_git(loaded.patch.date))
    wt.update_ref("refs/patchq/resolved", commit)
    repo.fetch_ref(wt.path, f"+refs/patchq/resolved:{refs}/resolved")
    return commit


