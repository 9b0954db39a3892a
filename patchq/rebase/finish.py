"""Completing a rebase: new files written aside, committed as one swap list, swapped in; undone by --abort."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import shutil
from pathlib import Path

from ..apply import LoadedPatch, run_queue
from ..git import Repo
from ..model import Stack
from ..patchfile import read_patch_file
from ..workspace import LOCK_NAME, Workspace, set_lock_values, write_atomic
from .state import (
    RANGE_LINE,
    QueueChange,
    RebasePaths,
    RebaseState,
    RebaseStep,
    _file_sha,
    _outcome_to_dict,
    _sha256,
    _step_from_dict,
    crash_point,
    range_diff_path,
    workspace_rr_cache,
)
from .survey import check_side, side_entries

# ---- completing ------------------------------------------------------------------------------------------------------

def _finish(ws: Workspace, repo: Repo, state: RebaseState, paths: RebasePaths, patches: list[LoadedPatch]) -> None:
    """Compute every new file, write them aside with copies of what they replace, then commit the swap list."""
    shutil.rmtree(paths.swap, ignore_errors=True)
    steps = [_step_from_dict(s) for s in state.steps]
    files: dict[str, bytes] = {}
    regenerated: list[LoadedPatch] = []
    diffs = commit_diffs(repo, state.onto, state.head)
    for loaded, step in zip(patches, steps):
        path = ws.patch_path(loaded.entry)
        data = path.read_bytes()
        if step.commit:
            data = loaded.patch.with_diff(diffs[step.commit])
            if data != path.read_bytes():
                files[ws.rel(path)] = data
        regenerated.append(LoadedPatch(loaded.entry, read_patch_file(data, source=loaded.source), loaded.source))
    head_tree = repo.tree_of(state.head)
    if all(step.commit for step in steps):
        # every regenerated diff is its commit's own diff, applied in the same order on the same base: the
        # files reproduce the rebased tree by construction
        tree, verified = head_tree, True
    else:
        verify = run_queue(repo, state.onto, regenerated, keep_going=True, commit_ref=f"{state.refs}/verify")
        state.counts["judged"] += len(regenerated)
        tree, verified = verify.tree, verify.tree == head_tree
    text, changes = _range_diff(repo, state, patches, steps)
    rd_rel = range_diff_path(state.upstream, state.old_pin, state.onto)
    files[rd_rel] = text.encode()
    files.update(_new_resolutions(ws, state.upstream, paths))
    stack = ws.stacks.get(state.stack)
    if stack is not None and state.upstream in stack.pins:
        lock = set_lock_values(ws, stack_pins={stack.name: {state.upstream: state.onto}},
                               trees={stack.name: {state.upstream: tree}})
        where = f"stacks.{stack.name}.pins.{state.upstream}"
    elif stack is not None:
        lock = set_lock_values(ws, pins={state.upstream: state.onto},
                               trees={stack.name: {state.upstream: tree}})
        where = f"upstreams.{state.upstream}.pin"
    else:
        lock = set_lock_values(ws, pins={state.upstream: state.onto})
        where = f"upstreams.{state.upstream}.pin"
    files[LOCK_NAME] = lock
    order = [p.entry.id for p in patches]
    commits = {s.patch_id: s.commit for s in steps if s.commit}
    side = check_side(repo, ws, side_entries(ws, stack or Stack("", (state.upstream,)), state.upstream), order,
                      commits, state.onto, state.head)
    state.counts["judged"] += len(side)
    state.final = {
        "range_diff": text, "range_diff_file": rd_rel, "pin_written": where, "tree": tree,
        "verified": verified, "changes": [dataclasses.asdict(c) for c in changes],
        "side": [{**dataclasses.asdict(s), "status": s.status.value, "outcome": _outcome_to_dict(s.outcome)}
                 for s in side],
        "files": sorted(files),
    }
    swap_dir = paths.swap
    entries = []
    for number, (rel, data) in enumerate(sorted(files.items())):
        target = ws.root / rel
        aside = swap_dir / "new" / str(number)
        write_atomic(aside, data)
        old_sha = _file_sha(target)
        if old_sha is not None:
            write_atomic(swap_dir / "old" / str(number), target.read_bytes())
        made = []
        parent = Path(rel).parent
        while str(parent) not in ("", ".") and not (ws.root / parent).exists():
            made.append(str(parent))
            parent = parent.parent
        entries.append({"path": rel, "new": str(aside.relative_to(paths.dir)), "new_sha": _sha256(data),
                        "old": f"swap/old/{number}" if old_sha else "", "old_sha": old_sha, "made_dirs": made})
    crash_point("aside-written")
    state.swap = entries
    state.phase = "swapping"
    state.save(paths)                                    # the commit point: from here on, --continue rolls forward
    crash_point("swap-committed")


def commit_diffs(repo: Repo, base: str, head: str) -> dict[str, bytes]:
    """The diff each commit of base..head introduces (as `git diff --full-index --binary` writes it), in one
    `git log` run. Diff bodies never start a line with 'commit ', so the split is unambiguous."""
    text = repo.run("log", "-p", "--first-parent", "--no-color", "--no-ext-diff", "--full-index", "--binary",
                    "--no-renames", "--src-prefix=a/", "--dst-prefix=b/", "--format=commit %H%n",
                    f"{base}..{head}").stdout
    out: dict[str, bytes] = {}
    for chunk in re.split(rb"(?m)^commit (?=[0-9a-f]{40}\n)", text)[1:]:
        sha, _, body = chunk.partition(b"\n")
        body = body.lstrip(b"\n")
        out[sha.decode()] = body
    return out


def _swap_in(root: Path, paths: RebasePaths, state: RebaseState) -> None:
    for number, entry in enumerate(state.swap):
        target = root / entry["path"]
        _drop_temp_files(target)
        if _file_sha(target) != entry["new_sha"]:
            write_atomic(target, (paths.dir / entry["new"]).read_bytes())
        if number == 0:
            crash_point("mid-swap")
    crash_point("swapped")


def _swap_out(root: Path, paths: RebasePaths, state: RebaseState) -> None:
    """Undo a swap, finished or not: every file back to its old bytes, files and folders it created removed."""
    for entry in reversed(state.swap):
        target = root / entry["path"]
        _drop_temp_files(target)
        if entry["old_sha"] is None:
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
            for folder in entry["made_dirs"]:
                with contextlib.suppress(OSError):
                    (root / folder).rmdir()
        elif _file_sha(target) != entry["old_sha"]:
            write_atomic(target, (paths.dir / entry["old"]).read_bytes())


def _drop_temp_files(target: Path) -> None:
    """Remove what a write_atomic of `target` killed before its rename left beside it (`.NAME.*.tmp`)."""
    if target.parent.is_dir():
        for leftover in target.parent.glob(f".{target.name}.*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


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
    refs = repo.run("for-each-ref", "--format=%(refname)", prefix + "/", check=False).out.split()
    if refs:
        repo.run("update-ref", "--stdin", input="".join(f"delete {r}\n" for r in refs))


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


def _range_diff(repo: Repo, state: RebaseState, patches: list[LoadedPatch],
                steps: list[RebaseStep]) -> tuple[str, list[QueueChange]]:
    """`git range-diff` of old pin..old stack against new base..new stack, and what it says per patch."""
    old_order = [p.entry.id for p in patches if p.entry.id in state.old_commits]
    new_order = [s.patch_id for s in steps if s.commit]
    header = (f"# patchq rebase of {state.stack or 'the promoted queue'} on {state.upstream}: "
              f"{state.old_pin} -> {state.onto} ({state.ref})\n"
              f"# git range-diff {state.old_pin[:12]}..{state.old_head[:12]} {state.onto[:12]}..{state.head[:12]}\n")
    res = repo.run("range-diff", "--no-color", f"{state.old_pin}..{state.old_head}", f"{state.onto}..{state.head}",
                   check=False)
    text = res.out if res.ok else f"(git range-diff failed: {res.stderr.strip()})\n"
    changes: list[QueueChange] = []
    for line in text.splitlines():
        m = RANGE_LINE.match(line)
        if not m:
            continue
        left, sign, right = m.group(1), m.group(3), m.group(4)
        old_id = old_order[int(left) - 1] if left != "-" and int(left) <= len(old_order) else ""
        new_id = new_order[int(right) - 1] if right != "-" and int(right) <= len(new_order) else ""
        change = {"=": "unchanged", "!": "changed", "<": "dropped", ">": "added"}[sign]
        pid = old_id or new_id
        changes.append(QueueChange(pid, change, state.old_commits.get(old_id, ""),
                                   next((s.commit for s in steps if s.patch_id == new_id), "")))
    return header + text, changes


