"""The env-flag audit behind `patchq flags`: which flags each patch reads, and whether a stack's profile fits them.

Reads are found in what each patch adds or removes, in the file as it is after the patch is applied in its place
in the stack (so module-level constants and multi-line calls resolve, and line numbers are real post-image lines).
A patch that does not apply is audited from its own hunks, and the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from .apply import LoadedPatch, load_patch, run_queue
from .flags import reads_in_lines
from .git import Repo
from .model import FlagRead, Finding, Stack, Status
from .patchfile import parse_diff
from .sources import ensure_base
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
    profile: dict


def _reads_of_applied(repo: Repo, commit: str, loaded: LoadedPatch) -> list[FlagRead]:
    """Reads in the lines a commit adds (post-image) and removes (pre-image), from whole files."""
    diff = repo.run("diff", "--no-color", "--no-ext-diff", "--no-renames", "-U0", f"{commit}^", commit).stdout
    files = parse_diff(diff, source=loaded.source)
    specs = []
    for section in files:
        if section.new_path:
            specs.append(f"{commit}:{section.new_path}")
        if section.old_path:
            specs.append(f"{commit}^:{section.old_path}")
    blobs = repo.read_blobs(specs)
    reads: list[FlagRead] = []
    for section in files:
        added = {n for h in section.hunks for n in h.added_lines()}
        removed = {n for h in section.hunks for n in h.removed_lines()}
        if section.new_path and added:
            text = (blobs.get(f"{commit}:{section.new_path}") or b"").decode("utf-8", "replace")
            reads.extend(reads_in_lines(section.new_path, text, added))
        if section.old_path and removed:
            text = (blobs.get(f"{commit}^:{section.old_path}") or b"").decode("utf-8", "replace")
            reads.extend(reads_in_lines(section.old_path, text, removed, removed=True))
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
                  on_top: list[LoadedPatch]) -> list[PatchFlags]:
    """Flags of `ordered` applied in sequence, and of each of `on_top` applied alone on the full sequence."""
    base = ensure_base(ws.upstream(upstream), pin, workspace=ws.root)
    ref = f"refs/patchq/audit/{upstream}"
    run = run_queue(base.repo, base.commit, ordered, keep_going=True, commit_ref=ref)
    out = [_patch_flags(base.repo, run.commits.get(lp.entry.id), lp) for lp in ordered]
    for loaded in on_top:
        alone = run_queue(base.repo, run.head, [loaded], commit_ref=f"{ref}-extra")
        out.append(_patch_flags(base.repo, alone.commits.get(loaded.entry.id), loaded))
    base.repo.run("update-ref", "-d", ref, check=False)
    base.repo.run("update-ref", "-d", f"{ref}-extra", check=False)
    return out


def _patch_flags(repo: Repo, commit: str | None, loaded: LoadedPatch) -> PatchFlags:
    entry = loaded.entry
    if commit:
        reads, approximate = _reads_of_applied(repo, commit, loaded), False
    else:
        reads, approximate = _reads_of_hunks(loaded), True
    return PatchFlags(entry.id, entry.upstream, entry.status, entry.flags, tuple(reads), approximate)


def _summaries(patches: list[PatchFlags], profile: dict) -> list[FlagSummary]:
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
        where = f"queues/{pf.upstream}/{ws.queue(pf.upstream).get(pf.patch_id).file}" \
            if ws.queue(pf.upstream).get(pf.patch_id) else pf.patch_id
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
        for name, value in sorted(stack.profile.items()):
            if name in read_names:
                continue
            rejected = [pf.patch_id for pf in negative if name in pf.found]
            if rejected:
                findings.append(Finding("negative-in-profile", f"profile sets {name}={value}, which only the "
                                        f"rejected patch(es) {', '.join(rejected)} read: it turns on a rejected "
                                        "path (or does nothing in this stack)", "pins.lock"))
            elif not _upstream_reads(ws, stack, name):
                findings.append(Finding("profile-unread", f"profile sets {name}={value} but no patch of the stack "
                                        "and no file of its upstreams reads it (a typo, or a missing patch?)",
                                        "pins.lock"))
    return findings


def _upstream_reads(ws: Workspace, stack: Stack, name: str) -> bool:
    """Whether the unpatched upstream code mentions the flag (profiles also set upstream's own flags)."""
    for upstream in stack.upstreams:
        base = ensure_base(ws.upstream(upstream), ws.pin_for(stack, upstream), workspace=ws.root)
        if base.repo.run("grep", "-q", "-F", "-e", name, base.commit, "--", check=False).ok:
            return True
    return False


def audit_stack(ws: Workspace, stack_name: str) -> FlagAudit:
    stack = ws.stack(stack_name)
    patches: list[PatchFlags] = []
    negative: list[PatchFlags] = []
    for upstream in stack.upstreams:
        entries = ws.stack_entries(stack, upstream)
        ordered = [load_patch(ws, e) for e in entries]
        rejected = [load_patch(ws, e) for e in ws.queue(upstream).entries
                    if e.status == Status.NEGATIVE_ARCHIVED and e not in entries]
        found = audit_patches(ws, upstream, ws.pin_for(stack, upstream), ordered, rejected)
        patches.extend(found[:len(ordered)])
        negative.extend(found[len(ordered):])
    summaries = _summaries(patches, stack.profile)
    findings = _findings(ws, patches, summaries, stack, negative)
    return FlagAudit(stack_name, tuple(patches), tuple(summaries), tuple(findings), dict(stack.profile))


def audit_workspace(ws: Workspace, only: str | None = None) -> FlagAudit:
    """Every queue: promoted patches in order, each other patch alone on top; or just one patch with `only`."""
    target = ws.find_patch(only) if only else None
    patches: list[PatchFlags] = []
    for upstream in ws.upstreams:
        queue = ws.queue(upstream)
        if not queue.entries or (target and target.upstream != upstream):
            continue
        promoted = [load_patch(ws, e) for e in queue.entries if e.status == Status.PROMOTED]
        others = [load_patch(ws, e) for e in queue.entries if e.status != Status.PROMOTED]
        found = audit_patches(ws, upstream, ws.upstream(upstream).pin, promoted, others)
        patches.extend(found)
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
               if ws.queue(name).entries and not (mirror_path(up) / "HEAD").exists()]
    for name in missing:
        findings.append(Finding("flags-unchecked", f"env flags of queue {name!r} not checked: its upstream is not "
                                "cached yet (run 'patchq apply' once)", f"queues/{name}", severity="warning"))
    kinds = {"declared-not-found", "found-not-declared"}
    checked = Workspace(ws.root, ws.upstreams, ws.stacks, {k: v for k, v in ws.queues.items() if k not in missing},
                        ws.lock_doc, ws.series_docs)
    return findings + [f for f in audit_workspace(checked).findings if f.kind in kinds]
