"""Run one queue on one base commit: judge every patch, then commit the result, without a work tree.

The queue is applied in a tiny temporary index that holds only the paths the queue touches, inside the upstream's
mirror: no work tree is read or written while patches are judged, so a 30-patch stack on a vLLM-size tree is
checked in a fraction of a second. Each patch that applies becomes a commit (author, date, message and trailers
from the patch file) written in one `git fast-import` run.

Per patch, git is asked in order: does it apply as is (clean, or offset from `-v`), does the reverse apply
(already upstream), does a 3-way merge through the recorded blob ids succeed, does it apply with reduced context
(fuzz); otherwise it is a conflict, and each hunk is checked on its own to say exactly which ones fail and why.
This is the engine `apply`, `rebase`, `import`, `export` and the flag audit share; `apply.py` only adds stacks
and checkouts on top.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from .crashtest import pause_point
from .errors import BadInput
from .git import GitResult, ObjectReader, Repo
from .gitindex import TempIndex
from .model import HunkProblem, Outcome, OutcomeKind, PatchEntry
from .patchfile import PatchFile, commit_message, date_to_git, read_patch_file, single_hunk_diffs, touched_paths
from .sources import (
    Base,
)
from .splice import splice
from .treecheck import escaping_link
from .workspace import Workspace

OFFSET_LINE = re.compile(r"^Hunk #(\d+) succeeded at (\d+)(?: \(offset (-?\d+) lines?\))?\.")
CHECKING_LINE = re.compile(r"^Checking patch (.+?)\.\.\.$")
FAILED_AT = re.compile(r"^error: patch failed: (.+):(\d+)$")
INVALID_PATH = re.compile(r"^error: invalid path '(.*)'$", re.MULTILINE)


@dataclass(frozen=True)
class LoadedPatch:
    entry: PatchEntry
    patch: PatchFile
    source: str                      # workspace-relative path, for messages


# One path a patch changed: (mode, blob id, path), mode '' for a deletion. The Python replay adds the file's new
# bytes (None for a deletion), which fast-import then takes inline.
PathChange = tuple[str, str, str] | tuple[str, str, str, bytes | None]
QueueChanges = list[tuple[LoadedPatch, Sequence[PathChange]]]     # the patches that changed something, in order


@dataclass
class QueueRun:
    """What running a queue produced: one outcome per patch and, when commits were asked for, the commits."""

    outcomes: list[Outcome] = field(default_factory=list)
    commits: dict[str, str] = field(default_factory=dict)   # patch id -> commit
    head: str = ""                                           # last commit (the base when nothing applied)
    tree: str = ""


@dataclass(frozen=True)
class Refused:
    """Where a one-pass run failed: the first patch git refused, and git's report on it."""

    position: int
    stderr: str


QueuePlan = tuple[str, str, Base, QueueRun, list[LoadedPatch]]     # upstream, pin, base, its run, the patches


def load_patch(ws: Workspace, entry: PatchEntry) -> LoadedPatch:
    path = ws.patch_path(entry)
    source = ws.rel(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BadInput(f"patch file of {entry.id!r} is missing", path=source) from None
    return LoadedPatch(entry, read_patch_file(data, source=source), source)


ARG_BYTES_PER_CALL = 256 * 1024     # path bytes per git command line: far below the kernel's ARG_MAX


def _arg_chunks(paths: list[str]) -> list[list[str]]:
    chunks: list[list[str]] = [[]]
    size = 0
    for path in paths:
        if chunks[-1] and size + len(path) + 1 > ARG_BYTES_PER_CALL:
            chunks.append([])
            size = 0
        chunks[-1].append(path)
        size += len(path.encode("utf-8", "surrogateescape")) + 1
    return [c for c in chunks if c]


def ls_tree(repo: Repo, base: str, paths: list[str], *, recursive: bool = False) -> bytes:
    """`git ls-tree -z` of `paths` at `base`, in as many calls as the command-line limit needs (a queue that
    names 100k files, or very long names, must not fail with "Argument list too long")."""
    return b"".join(repo.ls_tree_raw(base, chunk, recursive=recursive) for chunk in _arg_chunks(paths))


class TinyIndex(TempIndex):
    """A temporary index holding only the queue's paths at the base, with snapshots to undo a failed attempt."""

    def __init__(self, repo: Repo, base: str, paths: list[str]) -> None:
        super().__init__("patchq-apply-")
        self.repo = repo
        listing = b""
        if paths:
            listing = ls_tree(repo, base, paths, recursive=True)
        repo.index_info(listing, self.env)
        if not os.path.exists(self.file):
            repo.read_tree("", self.env)


def check_symlink_ancestors(repo: Repo, base: str, patches: list[LoadedPatch]) -> None:
    """Refuse a patch that writes below a path that is a symlink at the base: the write would leave the tree."""
    parents: dict[str, LoadedPatch] = {}
    created: dict[str, LoadedPatch] = {}          # symlinks that earlier patches of the queue create
    for loaded in patches:
        for path in touched_paths(loaded.patch.files):
            parts = path.split("/")
            for depth in range(1, len(parts)):
                parent = "/".join(parts[:depth])
                if parent in created:
                    raise BadInput(f"patch {loaded.entry.id!r} writes below {parent!r}, a symlink that patch "
                                   f"{created[parent].entry.id!r} creates", path=loaded.source)
                parents.setdefault(parent, loaded)
        for section in loaded.patch.files:
            if section.new_mode == "120000" and section.new_path:
                created[section.new_path] = loaded
    if not parents:
        return
    listing = ls_tree(repo, base, list(parents)).decode("utf-8", "surrogateescape")
    for record in listing.split("\0"):
        if not record:
            continue
        meta, _, path = record.partition("\t")
        if meta.startswith("120000") and path in parents:
            loaded = parents[path]
            raise BadInput(f"patch {loaded.entry.id!r} writes below {path!r}, which is a symlink at the base commit",
                           path=loaded.source)


def check_result_links(repo: Repo, base: str, patches: list[LoadedPatch], at_base: dict[str, tuple[str, str, int]],
                       final: dict[str, tuple[str, str, int]]) -> None:
    """Refuse a queue whose result has a symlink pointing outside the tree, however the diff made it (a `+` line,
    a binary patch with mode 120000, a rename or copy to a shallower folder, a mode change)."""
    changed = {path: (mode, sha) for mode, sha, path in _index_delta(at_base, final) if "\0" not in path}
    found = escaping_link(repo, base, changed)
    if found is None:
        return
    path, why = found
    owner = next((lp for lp in reversed(patches) if path in touched_paths(lp.patch.files)), None)
    raise BadInput(f"patch {owner.entry.id if owner else '?'!r} makes {path!r} a symlink that points outside the "
                   f"tree ({why})", path=owner.source if owner else None)


def _parse_offsets(stderr: str) -> list[str]:
    current = ""
    found = []
    for line in stderr.splitlines():
        m = CHECKING_LINE.match(line)
        if m:
            current = m.group(1)
            continue
        m = OFFSET_LINE.match(line)
        if m and m.group(3) and int(m.group(3)) != 0:
            found.append(f"{current}: hunk {m.group(1)} at line {m.group(2)} ({int(m.group(3)):+d} lines)")
    return found


def _diagnose_conflict(repo: Repo, env: dict[str, str], loaded: LoadedPatch) -> tuple[tuple[str, ...],
                                                                                       tuple[HunkProblem, ...]]:
    """Which files and which hunks of a patch fail, each checked on its own against the current index."""
    problems: list[HunkProblem] = []
    files: list[str] = []
    diff = loaded.patch.diff
    lines = diff.split(b"\n")
    for section in loaded.patch.files:
        whole = b"\n".join(lines[section.start_line - 1: section.end_line - 1]) + b"\n"
        res = repo.apply(whole, cached=True, check=True, env=env)
        if res.ok:
            continue
        files.append(section.path)
        reason = _reason(res.stderr)
        if "does not exist" in reason or "already exists" in reason or not section.hunks:
            problems.append(HunkProblem(section.path, None, None, reason))
            continue
        for number, hunk, single in single_hunk_diffs(diff, section):
            one = repo.apply(single, cached=True, check=True, env=env)
            if not one.ok:
                m = next((FAILED_AT.match(ln) for ln in one.stderr.splitlines() if FAILED_AT.match(ln)), None)
                line = int(m.group(2)) if m else hunk.old_start
                problems.append(HunkProblem(section.path, number, line,
                                            f"context changed near line {line} (hunk @@ -{hunk.old_start},"
                                            f"{hunk.old_count} +{hunk.new_start},{hunk.new_count} @@)"))
        if not any(p.file == section.path for p in problems):
            problems.append(HunkProblem(section.path, None, None,
                                        "each hunk applies alone but not together (they overlap after moving)"))
    return tuple(files), tuple(problems)


def _reason(stderr: str) -> str:
    for line in stderr.splitlines():
        if "does not exist in index" in line:
            return "file does not exist at this base"
        if "already exists in index" in line:
            return "file already exists at this base"
        if "does not match index" in line:
            return "file differs from the patch's pre-image"
        if "lacks the necessary blob" in line:
            return "pre-image blob unknown here, no 3-way merge possible"
    for line in stderr.splitlines():
        if line.startswith("error: "):
            return line[7:]
    return stderr.strip().splitlines()[0] if stderr.strip() else "does not apply"


def classify_patch(repo: Repo, index: TinyIndex, loaded: LoadedPatch, *,
                   refused_stderr: str | None = None) -> tuple[Outcome, bool]:
    """Apply one patch to the tiny index. Returns the outcome and whether the index now holds the patch.

    `refused_stderr`: git already said, in a one-pass run that stopped at this patch, that it does not apply as
    is; that report stands in for the first rung.
    """
    entry = loaded.entry
    files = tuple(touched_paths(loaded.patch.files))
    if not loaded.patch.files:
        return Outcome(entry.id, entry.upstream, OutcomeKind.EMPTY, detail="the patch has no file changes"), False
    before = index.snapshot()
    if refused_stderr is not None:
        res = GitResult(1, b"", refused_stderr)
    else:
        res = repo.apply(loaded.patch.diff, cached=True, verbose=True, env=index.env)
    unsafe = INVALID_PATH.search(res.stderr)
    if unsafe:       # `.git.`, `git~1`, `.git::$INDEX_ALLOCATION`: names git itself refuses as standing for .git
        raise BadInput(f"path {unsafe.group(1)!r} is refused by git as unsafe (on some file systems it names "
                       ".git)", path=loaded.source)
    if res.ok:
        offsets = tuple(_parse_offsets(res.stderr))
        kind = OutcomeKind.OFFSET if offsets else OutcomeKind.CLEAN
        return Outcome(entry.id, entry.upstream, kind, files=files, offsets=offsets), True
    index.restore(before)
    if repo.apply(loaded.patch.diff, cached=True, check=True, reverse=True, env=index.env).ok:
        return Outcome(entry.id, entry.upstream, OutcomeKind.ALREADY_UPSTREAM, files=files,
                       detail="the base already contains this change (its reverse applies)"), False
    three = repo.apply(loaded.patch.diff, cached=True, threeway=True, env=index.env)
    merged = sorted({key.partition("\0")[0] for key, (_, _, stage) in index.entries().items() if stage})
    if three.ok and not merged:
        return Outcome(entry.id, entry.upstream, OutcomeKind.THREEWAY, files=files,
                       detail="merged through the pre-image blobs recorded in the patch"), True
    index.restore(before)
    # Reduced context only where no 3-way merge was possible: after a merge that conflicted, a fuzzy apply would
    # put the patch's lines somewhere git's merge refused to (a method defined twice, an import of a deleted module).
    if not merged and not threeway_possible(repo, loaded):
        fuzz = repo.apply(loaded.patch.diff, cached=True, verbose=True, context=1, env=index.env)
        if fuzz.ok:
            return Outcome(entry.id, entry.upstream, OutcomeKind.FUZZ, files=files,
                           offsets=tuple(_parse_offsets(fuzz.stderr)),
                           detail="applied only with 1 line of context (the patch records no pre-image blobs "
                                  "for a 3-way merge): review it"), True
        index.restore(before)
    bad_files, hunks = _diagnose_conflict(repo, index.env, loaded)
    detail = "; ".join(f"{h.file}: " + (f"hunk {h.hunk}: " if h.hunk else "") + h.reason for h in hunks)
    if merged:
        detail = f"3-way merge conflicts in {', '.join(merged)}" + (f"; {detail}" if detail else "")
    return Outcome(entry.id, entry.upstream, OutcomeKind.CONFLICT, files=bad_files or files, hunks=hunks,
                   detail=detail or _reason(res.stderr)), False


def threeway_possible(repo: Repo, loaded: LoadedPatch) -> bool:
    """Whether git can 3-way merge this patch: every changed file records a pre-image blob that the repository has."""
    wanted = [section.old_blob for section in loaded.patch.files if not section.is_new]
    if not wanted or any(not blob or set(blob) == {"0"} for blob in wanted):
        return False
    return repo.has_objects(wanted)


def run_queue(repo: Repo, base: str, patches: list[LoadedPatch], *, keep_going: bool = False,
              commit_ref: str | None = None) -> QueueRun:
    """Judge every patch on `base` in order; with `commit_ref`, also record a commit per applied patch there."""
    check_symlink_ancestors(repo, base, patches)
    paths: dict[str, None] = {}
    for loaded in patches:
        for p in touched_paths(loaded.patch.files):
            paths[p] = None
    index = TinyIndex(repo, base, list(paths))
    run = QueueRun(head=base)
    reader: ObjectReader | None = None
    try:
        at_base = index.entries()
        pause_point("judging")           # test hook: a signal while a temporary index exists
        snapshot = index.snapshot()
        quick, refused = one_pass(repo, index, patches)
        if quick is not None:
            check_result_links(repo, base, patches, at_base, index.entries())
            if commit_ref is None:
                run.outcomes = quick
                return run
            reader = repo.object_reader()
            replayed = replay_in_python(reader, patches, at_base, index.entries())
            if replayed is not None:
                run.outcomes = _mark_empty(quick, replayed)
                return _commit_run(repo, base, commit_ref, run, replayed)
            index.restore(snapshot)
            refused = None               # the replay cannot follow this queue: patch by patch
        if reader is None:
            reader = repo.object_reader()
        changes = _judge_in_parts(repo, index, reader, patches, refused, run, keep_going)
        check_result_links(repo, base, patches, at_base, index.entries())
    finally:
        index.close()
        if reader is not None:
            reader.close()
    if commit_ref is not None:
        return _commit_run(repo, base, commit_ref, run, changes)
    return run


def _mark_empty(outcomes: list[Outcome], changes: QueueChanges) -> list[Outcome]:
    changed_ids = {lp.entry.id for lp, _ in changes}
    return [o if o.patch_id in changed_ids else
            Outcome(o.patch_id, o.upstream, OutcomeKind.EMPTY, files=o.files,
                    detail="applies but changes nothing at this base") for o in outcomes]


def _judge_in_parts(repo: Repo, index: TinyIndex, reader: ObjectReader, patches: list[LoadedPatch],
                    refused: Refused | None, run: QueueRun, keep_going: bool) -> QueueChanges:
    """A queue that does not apply in one pass: the patches before the one git refused, in one pass; that one
    down the rest of the ladder (reverse, 3-way, fuzz, diagnosis); then the rest in one pass again, and so on.

    A part is replayed in Python to learn what each of its patches changed, and kept only if the replay ends at
    exactly the files git wrote. Where a replay cannot be used, or git's report gave no position, the rest goes
    patch by patch as before. Every judgement is git's: the position from a failed pass only decides where to cut,
    and the refused patch's first rung is git's report on it from that pass.
    """
    changes: QueueChanges = []
    current = index.entries()
    position = 0
    in_parts = refused is not None
    whole_rest = False                 # the next part: the whole rest (True) or the patches before `refused`
    while position < len(patches):
        known: str | None = None       # git's report on patches[position] failing as is, when a pass said so
        if in_parts:
            if whole_rest:
                part = patches[position:]
            else:
                part = patches[position:position + refused.position] if refused is not None else []
            if part:
                before = index.snapshot()
                quick, failed = one_pass(repo, index, part)
                if quick is None:
                    if whole_rest and failed is not None:
                        refused, whole_rest = failed, False    # cut before the patch git refused
                    else:
                        in_parts = False      # a part that should apply did not, or no position: one by one
                    continue
                replayed = replay_in_python(reader, part, current, index.entries())
                if replayed is None:
                    index.restore(before)
                    in_parts = False
                    continue
                run.outcomes.extend(_mark_empty(quick, replayed))
                changes.extend(replayed)
                current = index.entries()
                position += len(part)
                if position >= len(patches):
                    break
            if not whole_rest and refused is not None:
                known = refused.stderr
        loaded = patches[position]
        outcome, applied = classify_patch(repo, index, loaded, refused_stderr=known)
        if applied:
            after = index.entries()
            delta = _index_delta(current, after)
            if not delta:
                outcome = Outcome(loaded.entry.id, loaded.entry.upstream, OutcomeKind.EMPTY,
                                  files=outcome.files, detail="applies but changes nothing at this base")
            else:
                changes.append((loaded, delta))
            current = after
        run.outcomes.append(outcome)
        position += 1
        if outcome.kind == OutcomeKind.CONFLICT and not keep_going:
            run.outcomes.extend(Outcome(lp.entry.id, lp.entry.upstream, OutcomeKind.NOT_REACHED,
                                        detail="an earlier patch stopped the queue") for lp in patches[position:])
            break
        whole_rest = True
    return changes


def _commit_run(repo: Repo, base: str, commit_ref: str, run: QueueRun, changes: QueueChanges) -> QueueRun:
    commits = _write_commits(repo, base, commit_ref, changes)
    run.commits = commits
    run.head = commits[changes[-1][0].entry.id] if changes else base
    run.outcomes = [Outcome(o.patch_id, o.upstream, o.kind, o.files, o.hunks, o.detail,
                            commits.get(o.patch_id, ""), o.offsets) for o in run.outcomes]
    run.tree = repo.tree_of(run.head)
    return run


def _blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def replay_in_python(reader: ObjectReader, patches: list[LoadedPatch], start: dict[str, tuple[str, str, int]],
                     final: dict[str, tuple[str, str, int]]) -> QueueChanges | None:
    """Each patch's resulting files, spliced in Python at the positions git just verified in its one pass.

    This saves one git process per patch when a run of patches applies as is. git stays the judge: the replay is
    used only if every final file it computes has exactly the blob id and mode git's own pass produced (`start` and
    `final` are the index before and after that pass); otherwise None, and the patches go one by one through git.
    """
    contents: dict[str, bytes] = {}
    modes: dict[str, str] = {}
    for path, (mode, sha, stage) in start.items():
        if stage != 0:
            return None
        blob = reader.read(sha)
        if blob is None:
            return None
        contents[path] = blob
        modes[path] = mode
    changes: QueueChanges = []
    for loaded in patches:
        delta: list[PathChange] = []
        for section in loaded.patch.files:
            if section.binary or section.rename or section.copy or section.new_mode == "120000":
                return None
            path = section.path
            if section.is_deleted:
                if path not in contents:
                    return None
                del contents[path]
                delta.append(("", "", path, None))
                continue
            old = b"" if section.is_new else contents.get(path)
            if old is None or (section.is_new and path in contents):
                return None
            new = splice(old, section.hunks)
            if new is None:
                return None
            mode = section.new_mode or modes.get(path, "100644")
            if new != old or mode != modes.get(path) or section.is_new:
                delta.append((mode, _blob_id(new), path, new))
            contents[path] = new
            modes[path] = mode
        if delta:
            changes.append((loaded, delta))
    expected = {path: (mode, sha) for path, (mode, sha, stage) in final.items() if stage == 0}
    computed = {path: (modes[path], _blob_id(data)) for path, data in contents.items()}
    return changes if computed == expected else None


def judge_in_one_pass(repo: Repo, index: TinyIndex, patches: list[LoadedPatch]) -> list[Outcome] | None:
    """All patches in one `git apply --cached` process: the common case of a queue that applies as is.

    Returns None (index untouched) when anything fails or a patch has no diff, and the caller judges patch by
    patch; `first_failure` says where to start.
    """
    return one_pass(repo, index, patches)[0]


def one_pass(repo: Repo, index: TinyIndex, patches: list[LoadedPatch]) -> tuple[list[Outcome] | None,
                                                                                 Refused | None]:
    """`judge_in_one_pass`, and on failure the position of the first patch git refused (None when unknown).

    git applies successive sections for the same file in order, and `-v` names each section as it checks it
    (before any error about it), so offsets map to their patch, and so does the first error: every patch before
    that one applied in sequence. The position is only a hint for where to cut the queue; git judges each part.
    """
    if not patches or any(not lp.patch.files for lp in patches):
        return None, None
    before = index.snapshot()
    stream = b"".join(lp.patch.diff if lp.patch.diff.endswith(b"\n") else lp.patch.diff + b"\n" for lp in patches)
    res = repo.apply(stream, cached=True, verbose=True, env=index.env)
    owners = [position for position, lp in enumerate(patches) for _ in lp.patch.files]
    if not res.ok:
        index.restore(before)
        return None, _first_refused(res.stderr, owners)
    offsets: dict[int, list[str]] = {}
    section = -1
    current = ""
    for line in res.stderr.splitlines():
        m = CHECKING_LINE.match(line)
        if m:
            section += 1
            current = m.group(1)
            continue
        m = OFFSET_LINE.match(line)
        if m and m.group(3) and int(m.group(3)) != 0 and 0 <= section < len(owners):
            offsets.setdefault(owners[section], []).append(
                f"{current}: hunk {m.group(1)} at line {m.group(2)} ({int(m.group(3)):+d} lines)")
    if section + 1 != len(owners):
        index.restore(before)
        return None, None     # git's report did not line up with our sections: judge one by one
    out = []
    for position, lp in enumerate(patches):
        moved = tuple(offsets.get(position, ()))
        out.append(Outcome(lp.entry.id, lp.entry.upstream, OutcomeKind.OFFSET if moved else OutcomeKind.CLEAN,
                           files=tuple(touched_paths(lp.patch.files)), offsets=moved))
    return out, None


def _first_refused(stderr: str, owners: list[int]) -> Refused | None:
    """The patch owning the section git reported the first error for, from a failed `-v` run, with git's report
    on that patch's sections alone (what a run of that patch by itself says)."""
    lines = stderr.splitlines()
    starts = [number for number, line in enumerate(lines) if CHECKING_LINE.match(line)]
    error = next((number for number, line in enumerate(lines) if line.startswith("error: ")), None)
    if error is None:
        return None
    section = sum(1 for start in starts if start < error) - 1
    if not 0 <= section < len(owners) or len(starts) > len(owners):
        return None
    owner = owners[section]
    first = owners.index(owner)
    after = next((k for k in range(first, len(owners)) if owners[k] != owner), len(owners))
    end = starts[after] if after < len(starts) else len(lines)
    return Refused(owner, "\n".join(lines[starts[first]:end]) + "\n")


def _index_delta(before: dict[str, tuple[str, str, int]], after: dict[str, tuple[str, str, int]]
                 ) -> list[tuple[str, str, str]]:
    """(mode, blob, path) for changed paths; mode '' marks a deletion."""
    delta = []
    for path, (mode, sha, _) in after.items():
        if before.get(path, ("", "", 0))[:2] != (mode, sha):
            delta.append((mode, sha, path))
    for path in before:
        if path not in after:
            delta.append(("", "", path))
    return delta


def _fi_path(path: str) -> str:
    if path.startswith('"') or "\n" in path:
        return '"' + path.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return path


def _write_commits(repo: Repo, base: str, ref: str, changes: QueueChanges) -> dict[str, str]:
    """All commits of the queue in one `git fast-import` run; ids are stable for the same patches and base."""
    if not changes:
        repo.update_ref(ref, base)
        return {}
    out = [f"reset {ref}\nfrom {base}\n\n".encode()]
    for mark, (loaded, delta) in enumerate(changes, 1):
        author = loaded.patch.author or loaded.entry.author or "patchq <patchq@localhost>"
        if "<" not in author:
            author = f"{author} <unknown@localhost>"
        when = date_to_git(loaded.patch.date)
        message = commit_message(loaded.entry).encode()
        out.append(f"commit {ref}\nmark :{mark}\nauthor {author} {when}\ncommitter patchq <patchq@localhost> {when}\n"
                   f"data {len(message)}\n".encode() + message + b"\n")
        for mode, sha, path, *inline in delta:
            if not mode:
                out.append(f"D {_fi_path(path)}\n".encode())
            elif inline and inline[0] is not None:
                data = inline[0]
                out.append(f"M {mode} inline {_fi_path(path)}\ndata {len(data)}\n".encode() + data + b"\n")
            else:
                out.append(f"M {mode} {sha} {_fi_path(path)}\n".encode())
        out.append(b"\n")
    ids = repo.fast_import(b"".join(out))
    return {loaded.entry.id: ids[mark] for mark, (loaded, _) in enumerate(changes, 1)}


# ---- stacks -----------------------------------------------------------------------------------------------------

