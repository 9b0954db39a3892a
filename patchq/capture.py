"""Turn a live tree (a hand-edited source tree or an installed package) back into patches on top of the pin.

What a lab really ran is often a venv it edited by hand. Capture reads that folder, finds the repository folder it
came from by matching its files with the pin's tree, and keeps what differs: changed files and new text sources,
never build output. With `decompose`, the queue patches whose post-image the live tree holds are attributed, and
only the residual becomes a new patch. Nothing is written until applying the resulting stack at the pin has been
seen to reproduce every file of the live tree byte for byte.
"""

from __future__ import annotations

import base64
import csv
import datetime
import email.parser
import hashlib
import io
import os
import re
import stat
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import BadInput, NeedsYou, PatchqError
from .git import Repo
from .model import PATCH_ID, PatchEntry, Status
from .patchfile import diff_stats, read_patch_file, render_patch_file
from .queue import next_file_name
from .queuerun import LoadedPatch, TinyIndex, load_patch, run_queue
from .sources import ensure_base
from .txn import Txn
from .workspace import (
    Workspace,
    patch_ref,
    series_bytes,
    set_stack_patches,
)

# What is never a source edit: counted in the report, left out of the patch.
PYCACHE = "__pycache__"
BYTECODE = "*.pyc"
EXTENSIONS = "compiled extensions"
METADATA = "dist-info/egg-info"
BACKUPS = "editor backups"
BINARY = "new binary files"
AS_BUILT = "installed as built"
GITIGNORED = "git-ignored"
LINKS = "symbolic links"

VCS_DIRS = {".git", ".hg", ".svn"}
EXTENSION_NAME = re.compile(r"\.(so|pyd|dylib)(\.[0-9]+)*$")
BACKUP_NAME = re.compile(r"(~$|^#.*#$|^\.#|^\..+\.sw[a-p]$|\.(bak|orig|rej)$)")
STACK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
CAPTURE_REF = "refs/patchq/capture/{upstream}"
SHOWN = 10          # files named in a refusal


# ---- reading the live tree ---------------------------------------------------------------------------------------

@dataclass
class LiveTree:
    """The files of PATH that can be source edits, and what was left out."""

    kind: str                                   # "installed package" | "git checkout" | "source tree"
    files: dict[str, bytes]                     # PATH-relative path -> bytes
    ignored: Counter[str] = field(default_factory=Counter)
    package: str = ""
    version: str = ""
    dist_info: str = ""
    record: dict[str, str] = field(default_factory=dict)   # PATH-relative path -> "sha256=..." from RECORD


def ignored_kind(name: str) -> str | None:
    """The category of a file that is never a source edit, by its name; None for a candidate source file."""
    if name.endswith((".pyc", ".pyo")):
        return BYTECODE
    if EXTENSION_NAME.search(name):
        return EXTENSIONS
    if BACKUP_NAME.search(name):
        return BACKUPS
    return None


def _count_files(folder: str) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


def read_live_tree(source: Path) -> LiveTree:
    """Walk PATH without following links, sorting every file into a candidate or an ignored category."""
    live = LiveTree(kind="source tree", files={})
    _describe_installed(source, live)
    ignored_by_git: set[str] = set()
    if live.kind != "installed package" and (source / ".git").exists():
        live.kind = "git checkout"
        ignored_by_git = set(Repo(source).ignored_files())
    for here, dirs, files in os.walk(source):
        rel_dir = os.path.relpath(here, source)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        for name in sorted(dirs):
            full = os.path.join(here, name)
            if os.path.islink(full):
                live.ignored[LINKS] += 1
                dirs.remove(name)
            elif name in VCS_DIRS:
                dirs.remove(name)
            elif name == "__pycache__":
                live.ignored[PYCACHE] += _count_files(full)
                dirs.remove(name)
            elif name.endswith((".dist-info", ".egg-info")):
                live.ignored[METADATA] += _count_files(full)
                dirs.remove(name)
        for name in files:
            rel = rel_dir + name
            full = os.path.join(here, name)
            kind = ignored_kind(name)
            if kind is None and rel in ignored_by_git:
                kind = GITIGNORED
            if kind is None and not stat.S_ISREG(os.lstat(full).st_mode):
                kind = LINKS if os.path.islink(full) else None
                if kind is None:
                    continue                   # a socket or fifo: not a file at all
            if kind is not None:
                live.ignored[kind] += 1
                continue
            with open(full, "rb") as fh:
                live.files[rel] = fh.read()
    return live


def _describe_installed(source: Path, live: LiveTree) -> None:
    """An installed package: its dist-info beside it names the distribution, its version and the files it shipped."""
    parent = source.resolve().parent
    name = source.resolve().name
    for dist_info in sorted(parent.glob("*.dist-info")):
        try:
            record = (dist_info / "RECORD").read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if f"{name}/" not in record:          # most of a venv's distributions: no need to parse their RECORD
            continue
        rows = [row for row in csv.reader(io.StringIO(record)) if row]
        if not any(row[0].startswith(f"{name}/") for row in rows):
            continue
        live.kind = "installed package"
        live.dist_info = dist_info.name
        try:
            headers = email.parser.HeaderParser().parsestr(
                (dist_info / "METADATA").read_text(encoding="utf-8", errors="replace"))
            live.package = (headers.get("Name") or "").strip()
            live.version = (headers.get("Version") or "").strip()
        except OSError:
            pass
        live.record = {row[0][len(name) + 1:]: row[1] for row in rows
                       if row[0].startswith(f"{name}/") and len(row) > 1 and row[1]}
        return
    if parent.name in ("site-packages", "dist-packages"):
        live.kind = "installed package"


def _as_built(data: bytes, recorded: str) -> bool:
    """The file is byte for byte what the installer wrote (RECORD's sha256), so not a hand edit."""
    algo, _, digest = recorded.partition("=")
    if algo != "sha256":
        return False
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode() == digest


def blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def is_text(data: bytes) -> bool:
    if b"\0" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# ---- mapping onto the pin ---------------------------------------------------------------------------------------

def find_repo_folder(files: dict[str, str], pin_files: dict[str, tuple[str, str]], name: str) -> str:
    """The repository folder ("" or "pkg/" or "src/pkg/") whose files PATH's files are, by content, else by name.

    Each PATH file votes for every folder where the pin has a file of the same relative path and the same
    content; the folder with most votes wins. Ties go to the folder named like PATH; a tie beyond that is refused.
    """
    by_blob: dict[str, list[str]] = {}
    by_name: dict[str, list[str]] = {}
    for path, (_, sha) in pin_files.items():
        by_blob.setdefault(sha, []).append(path)
        by_name.setdefault(path.rsplit("/", 1)[-1], []).append(path)
    for index in (by_blob, None):
        votes: Counter[str] = Counter()
        for rel, sha in files.items():
            candidates = by_blob.get(sha, ()) if index is not None else by_name.get(rel.rsplit("/", 1)[-1], ())
            for path in candidates:
                if path == rel:
                    votes[""] += 1
                elif path.endswith("/" + rel):
                    votes[path[:-len(rel)]] += 1
        if votes:
            ranked = sorted(votes.items(), key=lambda kv: (-kv[1], not kv[0].endswith(f"{name}/"), kv[0]))
            best, score = ranked[0]
            if len(ranked) > 1 and ranked[1][1] == score and (
                    ranked[1][0].endswith(f"{name}/") == best.endswith(f"{name}/")):
                raise BadInput(f"cannot tell which folder of the repository {name!r} is: "
                               f"{best or '(root)'} and {ranked[1][0] or '(root)'} match {score} files each")
            return best
    raise BadInput(f"no file of {name!r} matches a file of the pin's tree, by content or by name: "
                   "is it this upstream?")


# ---- the plan ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Attributed:
    patch: str
    files: tuple[str, ...]          # files of the live tree this patch explains (with its requirements)


@dataclass(frozen=True)
class NotAttributed:
    patch: str
    reason: str


@dataclass(frozen=True)
class CaptureReport:
    """What capture found and wrote; `written` is empty for a dry run."""

    upstream: str
    pin: str
    source: str                      # the folder's name only: never a path of the user's machine
    kind: str
    package: str
    version: str
    repo_folder: str                 # where in the repository the folder maps ("" = the root)
    files_seen: int
    unchanged: int
    changed: tuple[str, ...]
    new: tuple[str, ...]
    ignored: dict[str, int]
    missing: tuple[str, ...]         # files of the pin the folder lacks: reported, never deletions
    attributed: tuple[Attributed, ...]
    not_attributed: tuple[NotAttributed, ...]
    unseen: tuple[str, ...]          # files the attributed patches change that the folder does not show
    residual_files: tuple[str, ...]
    residual_added: int
    residual_removed: int
    residual_bytes: int
    patch: str                       # id of the new patch ("" when the queue explains everything)
    patch_file: str
    stack: str
    result_tree: str
    dry_run: bool
    written: tuple[str, ...]

    @property
    def captured(self) -> tuple[str, ...]:
        return tuple(sorted((*self.changed, *self.new)))


def capture(ws: Workspace, t: Txn | None, upstream_name: str, source: Path, *, patch_id: str = "",
            status: Status = Status.DIAGNOSTIC, stack_name: str = "", decompose: bool = False,
            dry_run: bool = False, today: str = "") -> CaptureReport:
    """Capture `source` against `upstream_name`'s pin (the stack's pin when the stack exists); see the module doc."""
    upstream = ws.upstream(upstream_name)
    if not source.exists():
        raise BadInput(f"{source}: no such folder")
    if not source.is_dir():
        raise BadInput(f"{source} is not a folder (give a source tree or an installed package folder)")
    stack = None
    if stack_name:
        if not STACK_NAME.match(stack_name):
            raise BadInput(f"stack name {stack_name!r} must be letters, digits, '.', '_' or '-'")
        stack = ws.stacks.get(stack_name)
    pin = ws.pin_for(stack, upstream_name) if stack else upstream.pin
    today = today or datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    queue = ws.queue(upstream_name)
    if patch_id:
        if not PATCH_ID.match(patch_id):
            raise BadInput(f"patch id {patch_id!r} must be lower-case letters, digits, '.', '_' or '-'")
        if queue.get(patch_id):
            raise BadInput(f"patch {patch_id!r} already exists in queue {upstream_name!r}")

    base = ensure_base(upstream, pin, workspace=ws.root)
    repo = base.repo
    pin_files = {path: (mode, sha) for mode, sha, path in repo.ls_tree_entries(base.commit) if mode != "160000"}
    live = read_live_tree(source)
    if not live.files:
        raise BadInput(f"{source} holds no source file to capture (only ignored ones: "
                       f"{_ignored_text(live.ignored) or 'none'})")
    blobs = {rel: blob_id(data) for rel, data in live.files.items()}
    folder = find_repo_folder(blobs, pin_files, source.resolve().name)

    changed, new, unchanged = [], [], 0
    contents: dict[str, bytes] = {}              # repository path -> the live bytes (every file we keep)
    for rel in sorted(live.files):
        path, data = folder + rel, live.files[rel]
        at_pin = pin_files.get(path)
        if at_pin is not None:
            if at_pin[1] == blobs[rel]:
                unchanged += 1
            elif at_pin[0] == "120000":
                live.ignored[LINKS] += 1       # a link at the pin the installer copied as a file: not an edit
                continue
            else:
                changed.append(path)
            contents[path] = data
        elif rel in live.record and _as_built(data, live.record[rel]):
            live.ignored[AS_BUILT] += 1
        elif not is_text(data):
            live.ignored[BINARY] += 1
        else:
            new.append(path)
            contents[path] = data
    present = {folder + rel for rel in live.files}
    missing = sorted(p for p in pin_files if p.startswith(folder) and p not in present
                     and ignored_kind(p.rsplit("/", 1)[-1]) is None)
    if not changed and not new:
        raise BadInput(f"nothing to capture: the {unchanged} source files of {source.name!r} equal "
                       f"{upstream_name} at {pin[:12]} ({folder or 'the repository root'})")

    target = _tree_with(repo, base.commit, {p: contents[p] for p in (*changed, *new)}, pin_files)
    visible = set(contents)
    attributed: list[Attributed] = []
    skipped: list[NotAttributed] = []
    loaded_attributed: list[LoadedPatch] = []
    explained_tree = repo.tree_of(base.commit)
    if decompose:
        explained_tree, loaded_attributed, attributed, skipped = _attribute(
            ws, repo, base.commit, target, queue.entries, visible)
    residual_paths = [p for p in repo.changed_paths(explained_tree, target) if p in visible]
    residual = repo.diff_paths(explained_tree, target, residual_paths)
    unseen = sorted(p for p in repo.changed_paths(base.commit, explained_tree) if p not in visible) \
        if loaded_attributed else []

    entry = None
    stack_patches = list(loaded_attributed)
    if residual:
        entry = _residual_entry(ws, upstream_name, patch_id, status, today, source.name, live, folder, pin,
                                (changed, new), missing, [a.patch for a in attributed])
        source_rel = f"queues/{upstream_name}/{entry.file}"
        data = render_patch_file(entry, residual)
        stack_patches.append(LoadedPatch(entry, read_patch_file(data, source=source_rel), source_rel))
    elif not stack_name:
        raise BadInput(f"the queue explains every captured file ({', '.join(a.patch for a in attributed)}); "
                       "there is no residual to write: pass --stack STACK to record a stack of them")
    result_tree = verify_reproduction(repo, base.commit, stack_patches, contents, upstream_name)

    stats = diff_stats(read_patch_file(residual, source="residual").files) if residual else None
    written: list[str] = []
    if not dry_run and t is not None:
        if entry is not None:
            target_file = ws.queue_dir(upstream_name) / entry.file
            if target_file.exists():
                raise BadInput(f"{ws.rel(target_file)} already exists")
            t.write(target_file, render_patch_file(entry, residual), create=True)
            t.write(ws.queue_dir(upstream_name) / "series.yaml",
                         series_bytes(ws, upstream_name, [*queue.entries, entry]))
            written += [ws.rel(target_file), f"queues/{upstream_name}/series.yaml"]
        if stack_name:
            refs = [patch_ref(ws, lp.entry) for lp in stack_patches]
            t.write(ws.lock_path, set_stack_patches(ws, stack_name, upstream_name, refs, result_tree))
            written.append("pins.lock")
    return CaptureReport(
        upstream=upstream_name, pin=pin, source=source.name, kind=live.kind, package=live.package,
        version=live.version, repo_folder=folder, files_seen=len(live.files), unchanged=unchanged,
        changed=tuple(changed), new=tuple(new), ignored=dict(sorted(live.ignored.items())), missing=tuple(missing),
        attributed=tuple(attributed), not_attributed=tuple(skipped), unseen=tuple(unseen),
        residual_files=tuple(sorted(residual_paths)), residual_added=stats.added if stats else 0,
        residual_removed=stats.removed if stats else 0, residual_bytes=len(residual),
        patch=entry.id if entry else "", patch_file=f"queues/{upstream_name}/{entry.file}" if entry else "",
        stack=stack_name, result_tree=result_tree, dry_run=dry_run, written=tuple(written))


def _tree_with(repo: Repo, base: str, files: dict[str, bytes], pin_files: dict[str, tuple[str, str]]) -> str:
    """The pin's tree with `files` replaced or added (modes as at the pin; new files 100644)."""
    paths = sorted(files)
    ids = repo.write_blobs([files[p] for p in paths])
    with repo.temp_index(base) as env:
        repo.update_index([(pin_files.get(p, ("100644", ""))[0], sha, p) for p, sha in zip(paths, ids)], env)
        return repo.write_tree(env)


def _attribute(ws: Workspace, repo: Repo, base: str, target: str, entries: Sequence[PatchEntry], visible: set[str]
               ) -> tuple[str, list[LoadedPatch], list[Attributed], list[NotAttributed]]:
    """Queue patches whose post-image the captured tree holds, in queue order, each with its requirements.

    A group (a patch and those it requires that are not attributed yet) belongs when it applies on the pin plus
    the patches attributed before it, and the change it makes to the files the live tree shows is found in the
    captured tree (its reverse applies there). Files the live tree does not show (not installed, outside the
    package) cannot be judged and do not count against a patch.
    """
    order = {e.id: i for i, e in enumerate(entries)}
    done: set[str] = set()
    attributed: list[Attributed] = []
    skipped: list[NotAttributed] = []
    loaded_in: list[LoadedPatch] = []
    current = repo.tree_of(base)
    with repo.temp_index(base) as env:
        index_file = env["GIT_INDEX_FILE"]
        for entry in entries:
            if entry.id in done:
                continue
            needs = sorted(_requirements(entries, entry.id) - done, key=lambda i: order.get(i, -1))
            group = [e for i in needs for e in entries if e.id == i] + [entry]
            try:
                loaded = [load_patch(ws, g) for g in group]
            except PatchqError as exc:
                skipped.append(NotAttributed(entry.id, f"its patch file does not read: {exc}"))
                continue
            with open(index_file, "rb") as fh:
                saved = fh.read()
            failed = next((lp for lp in loaded if not repo.apply(lp.patch.diff, cached=True, env=env).ok), None)
            after = repo.write_tree(env) if failed is None else current
            reason = ""
            shown: list[str] = []
            if failed is not None:
                reason = ("does not apply on the pin with the patches attributed before it"
                          + (f" (its requirement {failed.entry.id} does not)" if failed.entry.id != entry.id else ""))
            elif after == current:
                reason = "changes nothing on top of the patches attributed before it"
            else:
                shown = [p for p in repo.changed_paths(current, after) if p in visible]
                if not shown:
                    reason = "changes no file the captured folder shows"
                elif not _present(repo, target, repo.diff_paths(current, after, shown), shown):
                    reason = f"its change to {', '.join(shown[:3])} is not in the captured files"
            if reason:
                with open(index_file, "wb") as fh:
                    fh.write(saved)
                skipped.append(NotAttributed(entry.id, reason))
                continue
            for lp in loaded:
                done.add(lp.entry.id)
                loaded_in.append(lp)
            attributed.extend(Attributed(lp.entry.id, tuple(p for p in shown if p in _paths(lp))) for lp in loaded)
            current = after
    return current, loaded_in, attributed, skipped


def _paths(loaded: LoadedPatch) -> set[str]:
    return {p for section in loaded.patch.files for p in section.paths}


def _requirements(entries: Sequence[PatchEntry], patch_id: str) -> set[str]:
    """Every patch `patch_id` requires (the `requires` series field), transitively."""
    by_id = {e.id: e for e in entries}
    out: set[str] = set()
    todo = list(by_id[patch_id].requires) if patch_id in by_id else []
    while todo:
        need = todo.pop()
        if need in out or need not in by_id:
            continue
        out.add(need)
        todo.extend(by_id[need].requires)
    return out


def _present(repo: Repo, target: str, diff: bytes, paths: list[str]) -> bool:
    """The post-image of `diff` is in `target`: its reverse applies there."""
    index = TinyIndex(repo, target, paths)
    try:
        return repo.apply(diff, cached=True, check=True, reverse=True, env=index.env).ok
    finally:
        index.close()


def verify_reproduction(repo: Repo, base: str, patches: list[LoadedPatch], contents: dict[str, bytes],
                        upstream: str) -> str:
    """Apply the stack at the pin as `patchq apply` does; refuse unless every live file comes out byte for byte.

    Returns the result tree id.
    """
    ref = CAPTURE_REF.format(upstream=upstream)
    try:
        run = run_queue(repo, base, patches, keep_going=True, commit_ref=ref)
    finally:
        repo.delete_ref(ref)
    bad = [o for o in run.outcomes if not o.kind.applied]
    if bad:
        raise NeedsYou(f"refusing to write: at the pin, {bad[0].patch_id} is {bad[0].kind.value}"
                       + (f" ({bad[0].detail})" if bad[0].detail else "") + ", so the stack would not reproduce "
                       "the captured tree")
    result = {path: sha for _, sha, path in repo.ls_tree_entries(run.tree)}
    differ = sorted(p for p, data in contents.items() if result.get(p) != blob_id(data))
    if differ:
        more = f" and {len(differ) - SHOWN} more" if len(differ) > SHOWN else ""
        raise NeedsYou(f"refusing to write: applying the stack at the pin does not reproduce {len(differ)} captured "
                       f"file(s): {', '.join(differ[:SHOWN])}{more}")
    return run.tree


def _residual_entry(ws: Workspace, upstream: str, patch_id: str, status: Status, today: str, folder_name: str,
                    live: LiveTree, folder: str, pin: str, captured: tuple[list[str], list[str]],
                    missing: list[str], explained: list[str]) -> PatchEntry:
    """The annotated entry of the snapshot (or residual) patch: what, from which package, when; no local paths."""
    queue = ws.queue(upstream)
    what = f"{live.package} {live.version}".strip() if live.package else folder_name
    if not patch_id:
        stem = re.sub(r"[^a-z0-9._-]+", "-", (live.package or upstream).lower()).strip("-.")[:60] or "tree"
        patch_id = f"live-{stem}-{today}"
        number = 2
        while queue.get(patch_id) or not PATCH_ID.match(patch_id):
            patch_id = f"live-{stem}-{today}-{number}"
            number += 1
    changed, new = captured
    if explained:
        title = f"Hand edits in the live tree of {what} (beyond {len(explained)} queue patches)"
    else:
        title = f"Live tree of {what}, captured"
    source = (f"the installed package {what}" + (f" ({live.dist_info})" if live.dist_info else "")
              if live.kind == "installed package" else f"a {live.kind} ({folder_name})")
    lines = [(f"Captured by 'patchq capture' on {today} from {source}, mapped onto "
              f"{folder or 'the repository root'} of {upstream} at {pin[:12]}."),
             (f"{len(changed) + len(new)} files captured ({len(changed)} changed, {len(new)} new); left out: "
              f"{_ignored_text(live.ignored) or 'nothing'}.")]
    if missing:
        lines.append(f"{len(missing)} files of the pin are not in the captured folder"
                     + (" (wheels omit files)" if live.kind == "installed package" else "")
                     + "; they are not deletions.")
    if explained:
        lines.append(f"Queue patches that explain the rest: {', '.join(explained)}. This patch holds what none of "
                     "them explains.")
    entry = PatchEntry(id=patch_id, upstream=upstream, file="", status=status, title=title, why="\n".join(lines),
                       date=today)
    return replace(entry, file=next_file_name(ws, upstream, patch_id))


def _ignored_text(ignored: Counter[str]) -> str:
    return ", ".join(f"{count} {kind}" for kind, count in sorted(ignored.items()) if count)
