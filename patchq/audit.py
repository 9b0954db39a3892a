"""The env-flag audit behind `patchq flags`: which flags each patch reads, and whether a stack's profile fits them.

Reads are found in what each patch adds or removes, in the file as it is after the patch is applied in its place
in the stack (so module-level constants and multi-line calls resolve, and line numbers are real post-image lines).
A patch that does not apply is audited from its own hunks, and the report says so.
"""

from __future__ import annotations

import concurrent.futures
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from .flagcache import Job, ReadCache, blob_id
from .flags import Located, reads_in_lines, reads_touching
from .git import ObjectReader, Repo
from .gitindex import TempIndex
from .model import Finding, FlagRead, Stack, Status
from .patchfile import touched_paths
from .queuerun import LoadedPatch, TinyIndex, check_symlink_ancestors, judge_in_one_pass, load_patch
from .sources import cache_root, ensure_base
from .splice import splice_lines
from .workspace import Workspace

FINDING_KINDS = ("declared-not-found", "found-not-declared", "profile-unread", "negative-in-profile",
                 "default-mismatch", "default-on", "dynamic-name", "approximate")


@dataclass(frozen=True)
class PatchFlags:
    patch_id: str
    upstream: str
    status: Status
    declared: tuple[str, ...]
    reads: tuple[FlagRead, ...]
    approximate: bool = False        # audited from the patch's own hunks because it did not apply

    @property
    def found(self) -> tuple[str, ...]:
        return tuple(sorted({r.name for r in self.reads if not r.dynamic and not r.removed}))


@dataclass(frozen=True)
class FlagSummary:
    name: str
    patches: tuple[str, ...]
    defaults: tuple[str, ...]        # distinct defaults as written ("<none>" when a read has none)
    idioms: tuple[str, ...]
    default_off: bool | None         # True when every read's default leaves the gated path off
    profile_value: str | None
    reads: tuple[FlagRead, ...]


@dataclass(frozen=True)
class FlagAudit:
    scope: str
    patches: tuple[PatchFlags, ...]
    flags: tuple[FlagSummary, ...]
    findings: tuple[Finding, ...]
    profile: dict[str, str]


@dataclass(frozen=True)
class _Change:
    """What an applied patch did to one path: its contents before and after, and the lines it removed and added."""

    path: str
    old: bytes | None                # None: the path did not exist before
    new: bytes | None                # None: the patch deletes it
    removed: tuple[int, ...]
    added: tuple[int, ...]


class _Judge:
    """Applies patches in temporary indexes of one mirror and says what each one changed, line by line.

    git judges every patch (`git apply --cached`); the contents and the changed lines come from splicing the hunks in
    Python at the places git accepted, used only when the result has exactly the blob ids git produced; otherwise
    the blobs are read from git and compared with `git diff -U0`. No commits are written: the audit needs the
    applied result, not history, and not the per-hunk diagnosis of a conflict.
    """

    def __init__(self, repo: Repo, base: str, paths: list[str], reader: ObjectReader) -> None:
        self.repo, self.base, self.reader = repo, base, reader
        self.index = TinyIndex(repo, base, paths)
        self.contents: dict[str, bytes] = {}
        self.at_base = self.index.entries()
        specs = {path: f"{base}:{path}" for path, (_, _, stage) in self.at_base.items() if stage == 0}
        blobs = repo.read_blobs(list(specs.values()))
        self.contents = {path: data for path, spec in specs.items() if (data := blobs.get(spec)) is not None}

    def close(self) -> None:
        self.index.close()

    # ---- the promoted queue, in order -------------------------------------------------------------------------
    def run_in_order(self, patches: list[LoadedPatch]) -> list[list[_Change] | None]:
        """Each patch applied on the ones before it (a patch that does not apply is skipped, as `--keep-going`)."""
        snapshot = self.index.snapshot()
        if judge_in_one_pass(self.repo, self.index, patches) is not None:
            entries = self.index.entries()
            contents = dict(self.contents)
            out = [self._spliced(contents, lp) for lp in patches]
            if all(o is not None for o in out) and _same_files(contents, entries):
                self.contents = contents
                return [o or None for o in out]
            self.index.restore(snapshot)
        return [self._apply_one(self.index, loaded, self.contents) for loaded in patches]

    # ---- each other patch alone on top ------------------------------------------------------------------------
    def run_each_alone(self, patches: list[LoadedPatch]) -> list[list[_Change] | None]:
        """Each patch applied alone on the current state, all in copies of one temporary index.

        Patches that touch unrelated paths cannot affect each other, so they are judged together, one `git apply`
        for a group; a group that fails has the patch git names taken out and judged alone. Groups are shared out
        to both cores.
        """
        head = self.index.snapshot()
        results: dict[int, list[_Change] | None] = {}
        groups = _independent_groups(patches)
        workers = min(2, len(groups))
        indexes = [self.index] + [TempIndex("patchq-audit-", head) for _ in range(max(0, workers - 1))]
        free = list(indexes)
        lock = threading.Lock()

        def judge(group: list[int]) -> None:
            with lock:
                index = free.pop()
            try:
                for number, changes in self._judge_group(index, head, [(n, patches[n]) for n in group]):
                    results[number] = changes
            finally:
                with lock:
                    free.append(index)

        try:
            if workers <= 1:
                for group in groups:
                    judge(group)
            else:
                with concurrent.futures.ThreadPoolExecutor(workers) as pool:
                    list(pool.map(judge, groups))
        finally:
            for index in indexes[1:]:
                index.close()
            self.index.restore(head)
        return [results.get(n) for n in range(len(patches))]

    def _judge_group(self, index: TempIndex, head: bytes, group: list[tuple[int, LoadedPatch]]
                     ) -> Iterator[tuple[int, list[_Change] | None]]:
        while group:
            if len(group) == 1:
                number, loaded = group[0]
                index.restore(head)
                yield number, self._apply_one(index, loaded, dict(self.contents))
                return
            index.restore(head)
            stream = b"".join(lp.patch.diff if lp.patch.diff.endswith(b"\n") else lp.patch.diff + b"\n"
                              for _, lp in group)
            res = self.repo.apply(stream, cached=True, env=index.env)
            if res.ok:
                entries = index.entries()
                for number, loaded in group:
                    contents = dict(self.contents)
                    changes = self._spliced(contents, loaded)
                    if changes is not None and _same_files(contents, entries, only=touched_paths(loaded.patch.files)):
                        yield number, changes or None
                    else:
                        index.restore(head)
                        yield number, self._apply_one(index, loaded, dict(self.contents))
                return
            culprits = _named_in(res.stderr, group)
            named = bool(culprits)                    # a failure git names fails alone too: paths are disjoint
            if not named:                             # git's message names no path of ours: one at a time
                culprits = set(range(len(group)))
            for position in sorted(culprits):
                number, loaded = group[position]
                index.restore(head)
                yield number, self._apply_one(index, loaded, dict(self.contents), fails_as_is=named)
            group = [item for position, item in enumerate(group) if position not in culprits]

    # ---- one patch --------------------------------------------------------------------------------------------
    def _apply_one(self, index: TempIndex, loaded: LoadedPatch, contents: dict[str, bytes], *,
                   fails_as_is: bool = False) -> list[_Change] | None:
        """Judge one patch the way `apply` does (as is, already upstream, 3-way, reduced context) without the
        conflict diagnosis; on success update `contents` and the index, and say what changed. `fails_as_is`: git
        has just said this patch does not apply as is on this index."""
        if not loaded.patch.files:
            return None
        before_index = index.snapshot()
        before = index.entries()
        diff = loaded.patch.diff
        applied = not fails_as_is and self.repo.apply(diff, cached=True, env=index.env).ok
        if not applied:
            index.restore(before_index)
            if self.repo.apply(diff, cached=True, check=True, reverse=True, env=index.env).ok:
                return None                                   # already upstream: audited from its hunks
            three = self.repo.apply(diff, cached=True, threeway=True, env=index.env)
            applied = three.ok and not any(stage for _, _, stage in index.entries().values())
            if not applied:
                index.restore(before_index)
                applied = self.repo.apply(diff, cached=True, context=1, env=index.env).ok
                if not applied:
                    index.restore(before_index)
                    return None
        after = index.entries()
        trial = dict(contents)
        changes = self._spliced(trial, loaded)
        if changes is not None and _same_files(trial, after, only=touched_paths(loaded.patch.files)):
            contents.clear()
            contents.update(trial)
            return changes or None
        return self._from_git(before, after, contents) or None

    def _spliced(self, contents: dict[str, bytes], loaded: LoadedPatch) -> list[_Change] | None:
        """The patch's sections spliced into `contents` (updated); None where only git can say."""
        changes: list[_Change] = []
        for section in loaded.patch.files:
            if section.binary or section.rename or section.copy or "120000" in (section.new_mode, section.old_mode):
                return None
            path = section.path
            if section.is_deleted:
                old = contents.pop(path, None)
                if old is None:
                    return None
                lines = () if _binary(old) else tuple(range(1, _line_count(old) + 1))
                changes.append(_Change(path, old, None, lines, ()))
                continue
            old = b"" if section.is_new else contents.get(path)
            if old is None or (section.is_new and path in contents):
                return None
            spliced = splice_lines(old, section.hunks)
            if spliced is None:
                return None
            contents[path] = spliced.data
            if spliced.data != old or section.is_new:
                changes.append(_Change(path, None if section.is_new else old, spliced.data, spliced.removed,
                                       spliced.added))
        return changes

    def _from_git(self, before: dict[str, tuple[str, str, int]], after: dict[str, tuple[str, str, int]],
                  contents: dict[str, bytes]) -> list[_Change]:
        changes = []
        for path in sorted(set(before) | set(after)):
            old_entry, new_entry = before.get(path), after.get(path)
            if old_entry is not None and new_entry is not None and old_entry[:2] == new_entry[:2]:
                continue
            old = contents.get(path) if old_entry is not None else None
            new = self.reader.read(new_entry[1]) if new_entry is not None else None
            removed: tuple[int, ...]
            added: tuple[int, ...]
            if _binary(old) or _binary(new):              # git diff shows no lines of a binary file
                removed, added = (), ()
            elif old is not None and new is not None and old_entry is not None and new_entry is not None:
                removed, added = _zero_context_lines(self.repo.diff_blobs_zero_context(old_entry[1], new_entry[1]))
            else:
                removed = tuple(range(1, _line_count(old) + 1)) if old is not None else ()
                added = tuple(range(1, _line_count(new) + 1)) if new is not None else ()
            changes.append(_Change(path, old, new, removed, added))
            if new is None:
                contents.pop(path, None)
            else:
                contents[path] = new
        return changes


def _independent_groups(patches: list[LoadedPatch]) -> list[list[int]]:
    """Patches split into groups whose members touch no common path and no path below another's (a file one of
    them writes is never a folder another one writes into), so applying a group is applying each alone."""
    groups: list[tuple[list[int], set[str], set[str]]] = []
    for number, loaded in enumerate(patches):
        paths = set(touched_paths(loaded.patch.files))
        if not paths:
            groups.append(([number], set(), set()))
            continue
        reach = paths | {"/".join(p.split("/")[:depth]) for p in paths for depth in range(1, p.count("/") + 1)}
        for members, their_paths, their_reach in groups:
            if their_paths and not (paths & their_reach) and not (their_paths & reach):
                members.append(number)
                their_paths |= paths
                their_reach |= reach
                break
        else:
            groups.append(([number], set(paths), reach))
    return [members for members, _, _ in groups]


_NAMED_PATH = re.compile(r"^error: (?:patch failed: (.+):\d+|(.+): (?:does not exist in index|already exists in "
                         r"index|does not match index|patch does not apply|No such file or directory))$")


def _named_in(stderr: str, group: list[tuple[int, LoadedPatch]]) -> set[int]:
    """Positions in `group` of the patches whose paths git's errors name (paths in a group have one owner)."""
    owner = {path: i for i, (_, lp) in enumerate(group) for path in touched_paths(lp.patch.files)}
    named = set()
    for line in stderr.splitlines():
        m = _NAMED_PATH.match(line)
        if m is not None and (m.group(1) or m.group(2)) in owner:
            named.add(owner[m.group(1) or m.group(2)])
    return named


_HUNK_HEADER = re.compile(rb"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@", re.MULTILINE)


def _zero_context_lines(diff: bytes) -> tuple[tuple[int, ...], tuple[int, ...]]:
    removed: list[int] = []
    added: list[int] = []
    for m in _HUNK_HEADER.finditer(diff):
        old_start, old_count = int(m.group(1)), int(m.group(2) or 1)
        new_start, new_count = int(m.group(3)), int(m.group(4) or 1)
        removed.extend(range(old_start, old_start + old_count))
        added.extend(range(new_start, new_start + new_count))
    return tuple(removed), tuple(added)


def _binary(data: bytes | None) -> bool:
    """git's own test: a NUL byte in the first 8,000 bytes."""
    return data is not None and b"\0" in data[:8000]


def _line_count(data: bytes | None) -> int:
    if not data:
        return 0
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)


def _same_files(contents: dict[str, bytes], entries: dict[str, tuple[str, str, int]],
               only: list[str] | None = None) -> bool:
    """Whether the spliced contents are exactly what git put in the index (blob ids; stage-0 entries only)."""
    paths = set(only) if only is not None else set(contents) | {p for p, e in entries.items() if e[2] == 0}
    for path in paths:
        entry = entries.get(path)
        data = contents.get(path)
        if (entry is None) != (data is None):
            return False
        if entry is not None and data is not None and (entry[2] != 0 or entry[1] != blob_id(data)):
            return False
    return True


def _jobs_of(changes: list[_Change]) -> list[Job]:
    jobs = []
    for change in changes:
        if change.new is not None and change.added:
            jobs.append(Job(change.path, change.new))
        if change.old is not None and change.removed:
            jobs.append(Job(change.path, change.old))
    return jobs


def _reads_of_changes(cache: ReadCache, located: dict[str, list[Located]], changes: list[_Change]) -> list[FlagRead]:
    """Reads in the lines a patch adds (post-image) and removes (pre-image), from whole files."""
    reads: list[FlagRead] = []
    for change in changes:
        if change.new is not None and change.added:
            key = cache.key(Job(change.path, change.new))
            if key is not None:
                reads.extend(reads_touching(located[key], set(change.added), path=change.path))
        if change.old is not None and change.removed:
            key = cache.key(Job(change.path, change.old))
            if key is not None:
                reads.extend(reads_touching(located[key], set(change.removed), path=change.path, removed=True))
    return reads


def _reads_of_hunks(loaded: LoadedPatch) -> list[FlagRead]:
    """Fallback for a patch that does not apply: scan its hunks' post-image fragments."""
    reads: list[FlagRead] = []
    for section in loaded.patch.files:
        if not section.new_path:
            continue
        for hunk in section.hunks:
            fragment, added, line = [], set(), hunk.new_start
            for raw in hunk.lines:
                if raw[:1] in (b" ", b"+"):
                    fragment.append(raw[1:].decode("utf-8", "replace"))
                    if raw[:1] == b"+":
                        added.add(len(fragment))
            text = "\n".join(fragment) + "\n"
            for read in reads_in_lines(section.new_path, text, added):
                reads.append(FlagRead(**{**read.__dict__, "line": read.line + line - 1}))
    return reads


def audit_patches(ws: Workspace, upstream: str, pin: str, ordered: list[LoadedPatch],
                  on_top: list[LoadedPatch], cache: ReadCache | None = None) -> list[PatchFlags]:
    """Flags of `ordered` applied in sequence, and of each of `on_top` applied alone on the full sequence."""
    return _flags_of([_judge_queue(ws, upstream, pin, ordered, on_top)], cache)[0]


@dataclass
class _Judged:
    """One queue judged: each patch with the file versions it leaves (None where it does not apply)."""

    patches: list[LoadedPatch]
    changes: list[list[_Change] | None]


def _judge_queue(ws: Workspace, upstream: str, pin: str, ordered: list[LoadedPatch],
                 on_top: list[LoadedPatch]) -> _Judged:
    base = ensure_base(ws.upstream(upstream), pin, workspace=ws.root)
    _check_symlinks(base.repo, base.commit, ordered, on_top)
    paths: dict[str, None] = {}
    for loaded in ordered + on_top:
        paths.update(dict.fromkeys(touched_paths(loaded.patch.files)))
    with base.repo.object_reader() as reader:
        judge = _Judge(base.repo, base.commit, list(paths), reader)
        try:
            results = judge.run_in_order(ordered) + judge.run_each_alone(on_top)
        finally:
            judge.close()
    return _Judged(ordered + on_top, results)


def _flags_of(queues: list[_Judged], cache: ReadCache | None) -> list[list[PatchFlags]]:
    """The flags of every judged queue, with the file versions of all of them analysed in one batch (split over
    both cores as one piece of work, not one queue after the other)."""
    cache = cache if cache is not None else ReadCache(cache_root() / "flags")
    located = cache.located([job for judged in queues for changes in judged.changes if changes
                             for job in _jobs_of(changes)])
    out = []
    for judged in queues:
        flags = []
        for loaded, changes in zip(judged.patches, judged.changes):
            entry = loaded.entry
            if changes:
                reads, approximate = _reads_of_changes(cache, located, changes), False
            else:
                reads, approximate = _reads_of_hunks(loaded), True
            flags.append(PatchFlags(entry.id, entry.upstream, entry.status, entry.flags, tuple(reads), approximate))
        out.append(flags)
    return out


def _check_symlinks(repo: Repo, base: str, ordered: list[LoadedPatch], on_top: list[LoadedPatch]) -> None:
    """No patch may write below a symlink of the base or one the promoted queue creates (one `ls-tree` unless a
    patch judged alone creates a symlink itself, which must not count against the others)."""
    if not any(s.new_mode == "120000" for lp in on_top for s in lp.patch.files):
        check_symlink_ancestors(repo, base, ordered + on_top)
        return
    check_symlink_ancestors(repo, base, ordered)
    for loaded in on_top:
        check_symlink_ancestors(repo, base, ordered + [loaded])


def _summaries(patches: list[PatchFlags], profile: dict[str, str]) -> list[FlagSummary]:
    by_name: dict[str, list[tuple[PatchFlags, FlagRead]]] = {}
    for pf in patches:
        for read in pf.reads:
            if not read.dynamic and not read.removed:
                by_name.setdefault(read.name, []).append((pf, read))
    out = []
    for name in sorted(by_name):
        pairs = by_name[name]
        defaults = tuple(dict.fromkeys("<none>" if r.default is None else r.default for _, r in pairs))
        offs = [r.default_on for _, r in pairs]
        default_off = None if any(v is None for v in offs) else not any(offs)
        out.append(FlagSummary(name, tuple(dict.fromkeys(pf.patch_id for pf, _ in pairs)), defaults,
                               tuple(dict.fromkeys(r.idiom.value for _, r in pairs)), default_off,
                               profile.get(name), tuple(r for _, r in pairs)))
    return out


def _findings(ws: Workspace, patches: list[PatchFlags], summaries: list[FlagSummary], stack: Stack | None,
              negative: list[PatchFlags]) -> list[Finding]:
    findings: list[Finding] = []
    for pf in patches:
        entry = ws.queue(pf.upstream).get(pf.patch_id)
        where = f"queues/{pf.upstream}/{entry.file}" if entry else pf.patch_id
        found = set(pf.found)
        for name in pf.declared:
            if name not in found:
                findings.append(Finding("declared-not-found", f"{pf.patch_id}: declares {name} but no added or "
                                        "changed line reads it", where, severity="warning"))
        for name in sorted(found - set(pf.declared)):
            line = next(r for r in pf.reads if r.name == name)
            findings.append(Finding("found-not-declared", f"{pf.patch_id}: reads {name} ({line.path}:{line.line}) "
                                    "but does not declare it in its flags", where, severity="warning"))
        for read in pf.reads:
            if read.dynamic:
                findings.append(Finding("dynamic-name", f"{pf.patch_id}: env read with a computed name "
                                        f"`{read.expression}`", read.path, read.line, severity="warning"))
        if pf.approximate:
            findings.append(Finding("approximate", f"{pf.patch_id}: does not apply here; flags read from its "
                                    "hunks only", where, severity="warning"))
    for summary in summaries:
        if len(summary.defaults) > 1:
            findings.append(Finding("default-mismatch", f"{summary.name} is read with different defaults "
                                    f"({', '.join(summary.defaults)}) by {', '.join(summary.patches)}"))
        if any(r.default_on for r in summary.reads):
            culprit = next(r for r in summary.reads if r.default_on)
            findings.append(Finding("default-on", f"{summary.name} defaults to on ({culprit.default!r}): the gated "
                                    "path runs unless someone turns it off", culprit.path, culprit.line,
                                    severity="warning"))
    if stack is not None:
        read_names = {s.name for s in summaries}
        unread = [n for n in sorted(stack.profile) if n not in read_names and
                  not any(n in pf.found for pf in negative)]
        upstream_read = _upstream_reads(ws, stack, unread) if unread else set()
        for name, value in sorted(stack.profile.items()):
            if name in read_names:
                continue
            rejected = [pf.patch_id for pf in negative if name in pf.found]
            if rejected:
                findings.append(Finding("negative-in-profile", f"profile sets {name}={value}, which only the "
                                        f"rejected patch(es) {', '.join(rejected)} read: it turns on a rejected "
                                        "path (or does nothing in this stack)", "pins.lock"))
            elif name not in upstream_read:
                findings.append(Finding("profile-unread", f"profile sets {name}={value} but no patch of the stack "
                                        "and no file of its upstreams reads it (a typo, or a missing patch?)",
                                        "pins.lock"))
    return findings


def _upstream_reads(ws: Workspace, stack: Stack, names: list[str]) -> set[str]:
    """Which of `names` the unpatched upstream code mentions (profiles also set upstream's own flags): one
    `git grep` per upstream for all of them."""
    found: set[str] = set()
    for upstream in stack.upstreams:
        left = [n for n in names if n not in found]
        if not left:
            break
        base = ensure_base(ws.upstream(upstream), ws.pin_for(stack, upstream), workspace=ws.root)
        text = base.repo.grep_fixed_lines(base.commit, left)
        found.update(n for n in left if n.encode() in text)
    return found


def audit_stack(ws: Workspace, stack_name: str) -> FlagAudit:
    stack = ws.stack(stack_name)
    patches: list[PatchFlags] = []
    negative: list[PatchFlags] = []
    judged: list[_Judged] = []
    counts: list[int] = []
    for upstream in stack.upstreams:
        entries = ws.stack_entries(stack, upstream)
        ordered = [load_patch(ws, e) for e in entries]
        rejected = [load_patch(ws, e) for e in ws.queue(upstream).entries
                    if e.status == Status.NEGATIVE_ARCHIVED and e not in entries]
        judged.append(_judge_queue(ws, upstream, ws.pin_for(stack, upstream), ordered, rejected))
        counts.append(len(ordered))
    for found, promoted in zip(_flags_of(judged, None), counts):
        patches.extend(found[:promoted])
        negative.extend(found[promoted:])
    summaries = _summaries(patches, stack.profile)
    findings = _findings(ws, patches, summaries, stack, negative)
    return FlagAudit(stack_name, tuple(patches), tuple(summaries), tuple(findings), dict(stack.profile))


def audit_workspace(ws: Workspace, only: str | None = None) -> FlagAudit:
    """Every queue: promoted patches in order, each other patch alone on top; or just one patch with `only`."""
    target = ws.find_patch(only) if only else None
    judged: list[_Judged] = []
    for upstream in ws.upstreams:
        queue = ws.queue(upstream)
        if not queue.entries or (target and target.upstream != upstream):
            continue
        promoted = [load_patch(ws, e) for e in queue.entries if e.status == Status.PROMOTED]
        others = [load_patch(ws, e) for e in queue.entries if e.status != Status.PROMOTED]
        judged.append(_judge_queue(ws, upstream, ws.upstream(upstream).pin, promoted, others))
    patches = [flags for found in _flags_of(judged, None) for flags in found]
    if target:
        patches = [p for p in patches if p.patch_id == target.id and p.upstream == target.upstream]
    summaries = _summaries(patches, {})
    findings = _findings(ws, patches, summaries, None, [])
    return FlagAudit(target.ref if target else "workspace", tuple(patches), tuple(summaries), tuple(findings), {})


def declared_vs_found(ws: Workspace) -> list[Finding]:
    """What `patchq check` reports about flags: declarations that disagree with the code.

    `check` stays offline: upstreams whose mirror is not cached yet are named and skipped, not downloaded.
    """
    from .sources import mirror_path
    findings = []
    missing = [name for name, up in ws.upstreams.items()
               if ws.queue(name).entries and not (mirror_path(up, ws.root) / "HEAD").exists()]
    for name in missing:
        findings.append(Finding("flags-unchecked", f"env flags of queue {name!r} not checked: its upstream is not "
                                "cached yet (run 'patchq apply' once)", f"queues/{name}", severity="warning"))
    kinds = {"declared-not-found", "found-not-declared"}
    checked = Workspace(ws.root, ws.upstreams, ws.stacks, {k: v for k, v in ws.queues.items() if k not in missing},
                        ws.lock_doc, ws.series_docs)
    return findings + [f for f in audit_workspace(checked).findings if f.kind in kinds]
