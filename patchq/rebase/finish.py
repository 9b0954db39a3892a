"""Completing a rebase: the old files copied aside, the new ones committed in one transaction; --abort puts back.

The new files and the rebase state that says "swapping" are committed together by the command's transaction
(`txn`): a kill before its commit point leaves the rebase finishing (--continue finishes it again), a kill after
it is rolled forward by the next command. The old bytes copied aside here are what --abort restores, through a
transaction as well, whether the swap was committed or not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import shutil
from pathlib import Path

from ..errors import EnvironmentFailure
from ..git import Repo
from ..model import Stack, Status
from ..patchfile import read_patch_file, render_patch_file
from ..queuerun import LoadedPatch, run_queue
from ..txn import Txn, atomic_write
from ..workspace import (
    LOCK_NAME,
    SERIES_NAME,
    Workspace,
    series_bytes,
    set_lock_values,
)
from .moves import Moves
from .rangediff import commit_diffs, range_diff
from .state import (
    LEFT_OUT,
    RebasePaths,
    RebaseState,
    RebaseStep,
    StepKind,
    _file_sha,
    _outcome_to_dict,
    _sha256,
    _step_from_dict,
    crash_point,
    range_diff_path,
    workspace_rr_cache,
)
from .survey import check_side, side_entries

ASIDE = "old.bin"       # in the swap folder: the bytes every swapped file had before, for --abort


# ---- completing ------------------------------------------------------------------------------------------------------

def _finish(ws: Workspace, repo: Repo, state: RebaseState, paths: RebasePaths, patches: list[LoadedPatch],
            t: Txn) -> None:
    """Compute every new file, copy aside what they replace, then commit them with the state "swapping"."""
    shutil.rmtree(paths.swap, ignore_errors=True)
    steps = [_step_from_dict(s) for s in state.steps]
    files: dict[str, bytes] = {}
    diffs = commit_diffs(repo, state.onto, state.head)
    regenerated: list[LoadedPatch] = []
    exact = True
    for loaded, step in zip(patches, steps):
        if not step.commit:
            continue
        path = ws.patch_path(loaded.entry)
        data = loaded.patch.with_diff(diffs[step.commit])
        again = read_patch_file(data, source=loaded.source)
        # The proof that no re-apply check is needed: each file's diff, read back as `apply` reads it, is its
        # commit's diff byte for byte, and the commits form one first-parent line on the new base, so applying the
        # files in order rebuilds exactly the rebased tree.
        exact = exact and again.diff == diffs[step.commit]
        regenerated.append(LoadedPatch(loaded.entry, again, loaded.source))
        if data != path.read_bytes():
            files[ws.rel(path)] = data
    head_tree = repo.tree_of(state.head)
    stack = ws.stacks.get(state.stack)
    left_out, edits, exclude = _decisions(ws, state, patches, steps, stack)
    files.update(edits)
    if exact:
        tree, verified = head_tree, True
        state.counts["verify_runs"] = 0
    else:
        verify = run_queue(repo, state.onto, regenerated, keep_going=True, commit_ref=f"{state.refs}/verify")
        state.counts["judged"] += len(regenerated)
        state.counts["verify_runs"] = 1
        tree, verified = verify.tree, verify.tree == head_tree
    old_base = state.old_base or state.old_pin
    new_pin = state.new_pin or state.onto
    header = (f"# patchq rebase of {state.stack or 'the promoted queue'} on {state.upstream}: "
              f"{state.old_pin} -> {new_pin} ({state.ref})\n"
              f"# paired by Patchq-Id: {old_base[:12]}..{state.old_head[:12]} -> {state.onto[:12]}..{state.head[:12]}"
              "\n")
    text, changes = range_diff(repo, old_base=old_base, old_head=state.old_head, new_base=state.onto,
                               new_head=state.head, old_order=[p.entry.id for p in patches],
                               old_commits=state.old_commits, steps=steps, header=header, new_diffs=diffs)
    rd_rel = range_diff_path(state.upstream, state.old_pin, new_pin)
    files[rd_rel] = text.encode()
    files.update(_new_resolutions(ws, state.upstream, paths))
    releases = {state.upstream: state.releases} if state.releases is not None else None
    excluded = {stack.name: exclude} if exclude and stack is not None else None
    if stack is not None and state.upstream in stack.pins:
        lock = set_lock_values(ws, stack_pins={stack.name: {state.upstream: new_pin}},
                               trees={stack.name: {state.upstream: tree}}, releases=releases, exclude=excluded)
        where = f"stacks.{stack.name}.pins.{state.upstream}"
    elif stack is not None:
        lock = set_lock_values(ws, pins={state.upstream: new_pin}, trees={stack.name: {state.upstream: tree}},
                               releases=releases, exclude=excluded)
        where = f"upstreams.{state.upstream}.pin"
    else:
        lock = set_lock_values(ws, pins={state.upstream: new_pin}, releases=releases, exclude=excluded)
        where = f"upstreams.{state.upstream}.pin"
    files[LOCK_NAME] = lock
    order = [p.entry.id for p in patches]
    commits = {s.patch_id: s.commit for s in steps if s.commit}
    side = check_side(repo, ws, side_entries(ws, stack or Stack("", (state.upstream,)), state.upstream), order,
                      commits, state.onto, state.head, Moves.from_dict(state.moves))
    state.counts["judged"] += len(side)
    state.final = {
        "range_diff": text, "range_diff_file": rd_rel, "pin_written": where, "tree": tree,
        "verified": verified, "changes": [dataclasses.asdict(c) for c in changes],
        "side": [{**dataclasses.asdict(s), "status": s.status.value, "outcome": _outcome_to_dict(s.outcome)}
                 for s in side],
        "files": sorted(files), "left_out": left_out, "reapplied": not exact,
    }
    aside = bytearray()          # every old file in one file: one fsync for the set, not two per file
    entries = []
    for rel, data in sorted(files.items()):
        target = ws.root / rel
        old_sha = _file_sha(target)
        old_at = None
        if old_sha is not None:
            old = target.read_bytes()
            old_at = [len(aside), len(old)]
            aside += old
        made = []
        parent = Path(rel).parent
        while str(parent) not in ("", ".") and not (ws.root / parent).exists():
            made.append(str(parent))
            parent = parent.parent
        entries.append({"path": rel, "new_sha": _sha256(data), "old": f"swap/{ASIDE}" if old_sha else "",
                        "old_at": old_at, "old_sha": old_sha, "made_dirs": made})
        t.write(target, data)
    atomic_write(paths.swap / ASIDE, bytes(aside))
    crash_point("aside-written")
    state.swap = entries
    state.phase = "swapping"
    t.write(paths.state, state.to_bytes())
    t.commit(label="swap")                               # the commit point: files and state land together


def _decisions(ws: Workspace, state: RebaseState, patches: list[LoadedPatch], steps: list[RebaseStep],
               stack: Stack | None) -> tuple[list[str], dict[str, bytes], list[str]]:
    """The decision on every patch the rebase left out: a dated note on each, and either archived
    (--archive-left-out) or taken out of the stack (its `exclude:` list), so `apply --verify` holds afterwards.
    Returns the notes, the changed files (series.yaml, patch files) and the stack's new exclude list."""
    left = [s for s in steps if s.kind in LEFT_OUT]
    if not left:
        return [], {}, []
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    pin = (state.new_pin or state.onto)[:12]
    by_id = {p.entry.id: p for p in patches}
    queue = ws.queue(state.upstream)
    entries = list(queue.entries)
    files: dict[str, bytes] = {}
    notes: list[str] = []
    refs: list[str] = []
    for step in left:
        loaded = by_id[step.patch_id]
        entry = queue.get(step.patch_id) or loaded.entry
        if step.kind == StepKind.ALREADY_UPSTREAM:
            why = "already upstream" + (f" ({step.upstream_commit[:12]} {step.upstream_subject})"
                                        if step.upstream_commit else " (its reverse applies on the new base)")
        elif step.kind == StepKind.SKIPPED:
            why = "skipped during the rebase (--skip)"
        else:
            why = f"empty ({step.detail or 'it changes nothing on the new base'})"
        if state.archive_left_out:
            action = "archived with --archive-left-out"
        elif stack is not None:
            action = f"stack {stack.name} no longer applies it (exclude)"
            refs.append(entry.ref)
        else:
            action = "kept promoted (no stack was moved)"
        note = f"{today}: rebase onto {state.upstream}@{state.ref} ({pin}) left it out: {why}; {action}"
        updated = dataclasses.replace(entry, notes=(*entry.notes, note),
                                      status=Status.NEGATIVE_ARCHIVED if state.archive_left_out else entry.status)
        entries = [updated if e.id == entry.id else e for e in entries]
        files[ws.rel(ws.patch_path(entry))] = render_patch_file(updated, loaded.patch.diff)
        notes.append(f"{entry.ref}: {note}")
    files[ws.rel(ws.queue_dir(state.upstream) / SERIES_NAME)] = series_bytes(ws, state.upstream, entries)
    exclude = list(dict.fromkeys([*(stack.exclude if stack else ()), *refs])) if refs else []
    return notes, files, exclude


def _swap_out(root: Path, paths: RebasePaths, state: RebaseState, t: Txn) -> None:
    """Undo a swap, committed or not: every file back to its old bytes, files and folders it created removed."""
    aside: bytes | None = None
    for entry in reversed(state.swap):
        target = root / entry["path"]
        if entry["old_sha"] is None:
            if target.exists():
                t.remove(target)
        elif _file_sha(target) != entry["old_sha"]:
            if aside is None:
                aside = (paths.swap / ASIDE).read_bytes()
            start, length = entry["old_at"]
            old = aside[start:start + length]
            if _sha256(old) != entry["old_sha"]:
                raise EnvironmentFailure(f"the saved copy of {entry['path']} does not match what the rebase set "
                                         "aside; restore it from your backup or version control",
                                         path=str(paths.swap / ASIDE))
            t.write(target, old)
    t.commit(label="unswap")
    for entry in reversed(state.swap):
        if entry["old_sha"] is None:
            for folder in entry["made_dirs"]:
                with contextlib.suppress(OSError):
                    (root / folder).rmdir()


def _cleanup(paths: RebasePaths, state: RebaseState) -> None:
    """Forget the rebase once the workspace is final (all new, or all old again).

    state.json goes first: without it nothing is in progress, and whatever a crash leaves behind here (folders,
    refs in the mirror) is removed by the next rebase before it starts.
    """
    with contextlib.suppress(FileNotFoundError):
        paths.state.unlink()
    with contextlib.suppress(Exception):
        _delete_refs(Repo(state.mirror), state.refs)
    shutil.rmtree(paths.dir, ignore_errors=True)


def _delete_refs(repo: Repo, prefix: str) -> None:
    repo.delete_refs_under(prefix)


def _new_resolutions(ws: Workspace, upstream: str, paths: RebasePaths) -> dict[str, bytes]:
    """Recorded resolutions (rr-cache entries with a postimage) the workspace does not have yet."""
    out: dict[str, bytes] = {}
    if not paths.rr_cache.is_dir():
        return out
    target = workspace_rr_cache(upstream)
    for entry in sorted(paths.rr_cache.iterdir()):
        if not entry.is_dir() or not any(f.name.startswith("postimage") for f in entry.iterdir()):
            continue
        for item in sorted(entry.iterdir()):
            if item.is_file() and item.name.startswith(("preimage", "postimage")):
                rel = f"{target}/{entry.name}/{item.name}"
                data = item.read_bytes()
                if (_file_sha(ws.root / rel) or "") != _sha256(data):
                    out[rel] = data
    return out
