"""The before/after view of a rebase, paired by Patchq-Id rather than by git range-diff's guess.

`git range-diff` pairs commits by how alike their diffs are, so a patch resolved by hand (its diff changed a lot)
shows as dropped plus added. patchq knows which commit is which patch, so it pairs by id: a patch in both stacks is
`unchanged` (same `git patch-id --stable`) or `changed` (with the diff of its two diffs), one only before is
`dropped` (with why), one only after is `added`. Either side may be empty; that is said in a line, never handed
to git.
"""

from __future__ import annotations

import difflib

from ..git import Repo, patch_ids
from .state import QueueChange, RebaseStep


def commit_diffs(repo: Repo, base: str, head: str) -> dict[str, bytes]:
    """The diff each first-parent commit of base..head introduces (`git diff --full-index --binary`), in one
    `git log` run. Diff bodies never start a line with 'commit ', so the split is unambiguous."""
    import re
    if base == head:
        return {}
    text = repo.log_patches(f"{base}..{head}", first_parent=True)
    out: dict[str, bytes] = {}
    for chunk in re.split(rb"(?m)^commit (?=[0-9a-f]{40}\n)", text)[1:]:
        sha, _, body = chunk.partition(b"\n")
        out[sha.decode()] = body.lstrip(b"\n")
    return out


def _patch_ids(diffs: dict[str, bytes]) -> dict[str, str]:
    """commit -> stable patch-id, in one `git patch-id` run."""
    shas = [sha for sha, diff in diffs.items() if diff]
    return {sha: pid for sha, pid in zip(shas, patch_ids([diffs[s] for s in shas])) if pid}


def _indent(text: str) -> str:
    return "".join(f"    {line}\n" for line in text.splitlines())


def range_diff(repo: Repo, *, old_base: str, old_head: str, new_base: str, new_head: str,
               old_order: list[str], old_commits: dict[str, str], steps: list[RebaseStep], header: str,
               new_diffs: dict[str, bytes] | None = None) -> tuple[str, list[QueueChange]]:
    """The before/after text (kept in the workspace) and one QueueChange per patch, paired by Patchq-Id.
    `new_diffs`: `commit_diffs(new_base, new_head)` when the caller already has it."""
    old_diffs = commit_diffs(repo, old_base, old_head)
    if new_diffs is None:
        new_diffs = commit_diffs(repo, new_base, new_head)
    ids = _patch_ids({**old_diffs, **new_diffs})
    new_commits = {s.patch_id: s.commit for s in steps if s.commit}
    why = {s.patch_id: s.kind.value + (f": {s.detail}" if s.detail else "") for s in steps}
    lines = [header]
    if not old_commits:
        lines.append("# the old stack is empty: no patch applied at the old base\n")
    if not new_commits:
        lines.append("# the new stack is empty: every patch was left out (see below)\n")
    changes: list[QueueChange] = []
    order = list(dict.fromkeys([*old_order, *(s.patch_id for s in steps)]))
    for pid in order:
        old = old_commits.get(pid, "")
        new = new_commits.get(pid, "")
        if old and new:
            same = ids.get(old) is not None and ids.get(old) == ids.get(new)
            change = "unchanged" if same else "changed"
            lines.append(f"{pid}: {old[:12]} {'=' if same else '!'} {new[:12]}\n")
            if not same:
                before = old_diffs.get(old, b"").decode("utf-8", "replace").splitlines()
                after = new_diffs.get(new, b"").decode("utf-8", "replace").splitlines()
                body = "\n".join(difflib.unified_diff(before, after, f"{pid} before", f"{pid} after", lineterm="",
                                                      n=2))
                lines.append(_indent(body))
        elif old:
            change = "dropped"
            lines.append(f"{pid}: {old[:12]} < ------------ ({why.get(pid, 'left out')})\n")
        elif new:
            change = "added"
            lines.append(f"{pid}: ------------ > {new[:12]}\n")
        else:
            continue
        changes.append(QueueChange(pid, change, old, new))
    return "".join(lines), changes
