"""Find a workspace and load or save `pins.lock` and `queues/<upstream>/series.yaml` without losing comments.

Loading validates everything a later step relies on (full SHAs, known statuses, unique ids, existing files, no
unknown keys) and reports the file and line of the first problem. The bytes a change writes are made here; they
reach the disk through `txn` (a command's transaction), so a crash leaves either the old or the new files. The
YAML itself (the guard, the fast path, the round-trip rewrite) is `yamlio`'s.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from . import fastyaml
from .errors import BadInput
from .model import (
    FULL_SHA,
    PATCH_ID,
    UPSTREAM_NAME,
    ArchiveSource,
    BenchSpec,
    GateSpec,
    PatchEntry,
    Queue,
    Release,
    Stack,
    StackResult,
    Status,
    Upstream,
)
from .txn import atomic_write
from .yamlio import dump as dump_yaml, dump_block, editable as _editable, line_of as _line, load as load_yaml

LOCK_NAME = "pins.lock"
SERIES_NAME = "series.yaml"
STATE_DIR = ".patchq"

UPSTREAM_KEYS = {"url", "pin", "archive", "description", "version", "releases"}
ARCHIVE_KEYS = {"sha256", "url", "pypi", "subdir"}
STACK_KEYS = {"upstreams", "pins", "include", "extra", "profile", "result", "trees", "description", "patches",
              "bench", "gates", "exclude"}
RESULT_KEYS = {"metric", "value", "lane", "date", "gates", "notes", "record"}
ENTRY_KEYS = {"id", "file", "status", "title", "why", "flags", "result", "baseline", "notes", "date", "base",
              "supersedes", "contains", "author", "requires", "salvaged"}




def _require_map(node: Any, what: str, path: Path, line: int | None) -> CommentedMap:
    if node is None:
        return CommentedMap()
    if not isinstance(node, CommentedMap):     # both loaders (fast and round-trip) build every mapping as one
        raise BadInput(f"{what} must be a mapping", path=str(path), line=line)
    return node


def _check_keys(node: CommentedMap, allowed: set[str], what: str, path: Path) -> None:
    for key in node:
        if key not in allowed:
            close = sorted(allowed)
            raise BadInput(f"unknown key {key!r} in {what} (known: {', '.join(close)})",
                           path=str(path), line=_line(node, key))


def _str(node: Any, key: str, path: Path, *, default: str = "") -> str:
    value = node.get(key, default) if isinstance(node, dict) else default
    if value is None:
        return default
    if isinstance(value, (dict, list)):
        raise BadInput(f"{key!r} must be a single value", path=str(path), line=_line(node, key))
    return str(value)


def _str_list(node: Any, key: str, path: Path) -> tuple[str, ...]:
    value = node.get(key) if isinstance(node, dict) else None
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if not isinstance(value, list) or any(isinstance(v, (dict, list)) for v in value):
        raise BadInput(f"{key!r} must be a list of names", path=str(path), line=_line(node, key))
    return tuple(str(v) for v in value)


def _str_map(node: Any, key: str, path: Path) -> dict[str, str]:
    value = node.get(key) if isinstance(node, dict) else None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadInput(f"{key!r} must be a mapping", path=str(path), line=_line(node, key))
    out = {}
    for k, v in value.items():
        if isinstance(v, (dict, list)):
            raise BadInput(f"{key}.{k} must be a single value", path=str(path), line=_line(value, k))
        out[str(k)] = "" if v is None else (str(v).lower() if isinstance(v, bool) else str(v))
    return out


@dataclass
class Workspace:
    """A loaded workspace. The raw YAML documents are kept so a save rewrites only what changed."""

    root: Path
    upstreams: dict[str, Upstream]
    stacks: dict[str, Stack]
    queues: dict[str, Queue]
    lock_doc: Any = field(repr=False, default=None)
    series_docs: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def lock_path(self) -> Path:
        return self.root / LOCK_NAME

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    def queue_dir(self, upstream: str) -> Path:
        return self.root / "queues" / upstream

    def patch_path(self, entry: PatchEntry) -> Path:
        return self.queue_dir(entry.upstream) / entry.file

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def upstream(self, name: str) -> Upstream:
        if name not in self.upstreams:
            raise BadInput(f"unknown upstream {name!r}{_close(name, self.upstreams)}", path=LOCK_NAME)
        return self.upstreams[name]

    def stack(self, name: str) -> Stack:
        if name not in self.stacks:
            raise BadInput(f"unknown stack {name!r}{_close(name, self.stacks)}", path=LOCK_NAME)
        return self.stacks[name]

    def queue(self, upstream: str) -> Queue:
        return self.queues.get(upstream, Queue(upstream, ()))

    def pin_for(self, stack: Stack, upstream: str) -> str:
        return stack.pins.get(upstream) or self.upstream(upstream).pin

    def find_patch(self, ref: str) -> PatchEntry:
        """A patch by `id`, `upstream:id` or `status:id` (the last as written in stacks' extra lists)."""
        upstream, _, pid = ref.rpartition(":")
        candidates = []
        for queue in self.queues.values():
            for entry in queue.entries:
                if entry.id != pid:
                    continue
                if upstream and upstream not in (entry.upstream, entry.status.value):
                    continue
                candidates.append(entry)
        if not candidates:
            names = [e.id for q in self.queues.values() for e in q.entries]
            raise BadInput(f"unknown patch {ref!r}{_close(pid, names)}")
        if len(candidates) > 1:
            raise BadInput(f"patch id {pid!r} exists in several queues; say which: "
                           + ", ".join(e.ref for e in candidates))
        return candidates[0]

    def stack_entries(self, stack: Stack, upstream: str, extra: tuple[str, ...] = ()) -> list[PatchEntry]:
        """The patches a stack applies to one upstream, in order.

        Included statuses come in series order; extra patches (stack extras and `--with`) go before the first
        patch that requires them, else after their `base` patch, else on top.
        """
        queue = self.queue(upstream)
        if stack.patches:       # an explicit list selects; the series still decides the order
            listed = {(e.upstream, e.id) for e in (self.find_patch(ref) for ref in stack.patches)}
            chosen = [e for e in queue.entries if (e.upstream, e.id) in listed]
        else:
            chosen = [e for e in queue.entries if e.status in stack.include]
        excluded = {self.find_patch(ref).ref for ref in stack.exclude}   # left out by a rebase (docs/rebase.md)
        chosen = [e for e in chosen if e.ref not in excluded]
        extras = [self.find_patch(ref) for ref in (*stack.extra, *extra)]
        for entry in extras:
            if entry.upstream != upstream or entry in chosen or entry.ref in excluded:
                continue
            needed = [i for i, e in enumerate(chosen) if entry.id in e.requires]
            if needed:                  # a patch the stack's own patches require goes in before them
                chosen.insert(needed[0], entry)
            elif entry.base and any(e.id == entry.base for e in chosen):
                position = next(i for i, e in enumerate(chosen) if e.id == entry.base) + 1
                while position < len(chosen) and chosen[position].status != Status.PROMOTED:
                    position += 1
                chosen.insert(position, entry)
            else:
                chosen.append(entry)
        return chosen


def required_by(queue: Queue, patch_id: str) -> list[str]:
    """Ids of the entries of `queue` that list `patch_id` in their `requires`."""
    return [e.id for e in queue.entries if patch_id in e.requires]


def check_requires(ws: Workspace, stack_name: str, upstream: str, entries: list[PatchEntry]) -> None:
    """Refuse (bad input) a stack that applies a patch without a patch it requires, or after it."""
    position = {e.id: i for i, e in enumerate(entries)}
    for index, entry in enumerate(entries):
        for need in entry.requires:
            if need not in position:
                raise BadInput(f"stack {stack_name!r} applies {upstream}:{entry.id} but not {upstream}:{need}, "
                               f"which it requires (add {need} to the stack or leave {entry.id} out)",
                               path=LOCK_NAME)
            if position[need] > index:
                raise BadInput(f"stack {stack_name!r} applies {upstream}:{entry.id} before {upstream}:{need}, "
                               "which it requires", path=LOCK_NAME)


def _close(name: str, known: Collection[str]) -> str:
    import difflib
    near = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    if near:
        return f" (did you mean: {', '.join(near)}?)"
    names = sorted(known)
    return f" (known: {', '.join(names[:8])}{', ...' if len(names) > 8 else ''})" if names else " (none defined)"


def find_workspace(start: Path | None = None) -> Path:
    """Walk up from `start` to the folder holding pins.lock, like git finds .git."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / LOCK_NAME).is_file():
            return folder
    raise BadInput(f"no {LOCK_NAME} in {here} or any parent folder; run 'patchq init' or pass --workspace")


def load_workspace(root: Path) -> Workspace:
    lock_path = root / LOCK_NAME
    doc = load_yaml(lock_path, what=LOCK_NAME)
    doc = _require_map(doc, LOCK_NAME, lock_path, 1)
    _check_keys(doc, {"version", "upstreams", "stacks"}, LOCK_NAME, lock_path)
    version = doc.get("version", 1)
    if version != 1:
        raise BadInput(f"unsupported lock version {version!r} (this patchq reads version 1)", path=str(lock_path),
                       line=_line(doc, "version"))
    upstreams = {}
    up_doc = _require_map(doc.get("upstreams"), "upstreams", lock_path, _line(doc, "upstreams"))
    for name, node in up_doc.items():
        upstreams[str(name)] = _load_upstream(str(name), node, up_doc, lock_path)
    stacks = {}
    st_doc = _require_map(doc.get("stacks"), "stacks", lock_path, _line(doc, "stacks"))
    for name, node in st_doc.items():
        stacks[str(name)] = _load_stack(str(name), node, st_doc, lock_path, upstreams)
    ws = Workspace(root=root, upstreams=upstreams, stacks=stacks, queues={}, lock_doc=doc)
    for folder in (root / STATE_DIR, *(ws.queue_dir(name) for name in upstreams)):
        _refuse_link(folder, root)
    for name in upstreams:
        series = ws.queue_dir(name) / SERIES_NAME
        if series.exists():
            ws.series_docs[name], ws.queues[name] = _load_series(ws, name, series)
    queues_dir = root / "queues"
    if queues_dir.is_dir():
        for child in sorted(queues_dir.iterdir()):
            if child.is_dir() and child.name not in upstreams and (child / SERIES_NAME).exists():
                raise BadInput(f"queue folder queues/{child.name}/ has no upstream of that name in {LOCK_NAME}",
                               path=str(child / SERIES_NAME))
    _check_stack_refs(ws)
    return ws


def _load_upstream(name: str, node: Any, parent: CommentedMap, path: Path) -> Upstream:
    line = _line(parent, name)
    if not UPSTREAM_NAME.match(name):
        raise BadInput(f"upstream name {name!r} must be lower-case letters, digits, '.', '_' or '-'",
                       path=str(path), line=line)
    node = _require_map(node, f"upstream {name!r}", path, line)
    _check_keys(node, UPSTREAM_KEYS, f"upstream {name!r}", path)
    url = _str(node, "url", path)
    pin = _str(node, "pin", path)
    if not url:
        raise BadInput(f"upstream {name!r} has no url", path=str(path), line=line)
    if url.startswith("-"):
        raise BadInput(f"url {url!r} of upstream {name!r} starts with '-' (git would read it as an option)",
                       path=str(path), line=_line(node, "url") or line)
    if not FULL_SHA.match(pin):
        raise BadInput(f"pin {pin!r} of upstream {name!r} is not a full 40-hex commit id "
                       "(run 'patchq pin' to resolve a short SHA, tag or branch)", path=str(path),
                       line=_line(node, "pin") or line)
    archive = None
    if node.get("archive") is not None:
        arch = _require_map(node["archive"], "archive", path, _line(node, "archive"))
        _check_keys(arch, ARCHIVE_KEYS, f"archive of {name!r}", path)
        sha = _str(arch, "sha256", path)
        if not re.fullmatch(r"[0-9a-f]{64}", sha):
            raise BadInput(f"archive sha256 of {name!r} must be 64 hex digits", path=str(path),
                           line=_line(arch, "sha256") or _line(node, "archive"))
        if not (arch.get("url") or arch.get("pypi")):
            raise BadInput(f"archive of {name!r} needs 'url' or 'pypi'", path=str(path), line=_line(node, "archive"))
        archive = ArchiveSource(sha256=sha, url=_str(arch, "url", path) or None, pypi=_str(arch, "pypi", path) or None,
                                subdir=_str(arch, "subdir", path) or None)
        if archive.subdir:
            check_archive_subdir(archive.subdir, name, path=str(path), line=_line(arch, "subdir"))
    releases: tuple[Release, ...] = ()
    if node.get("releases") is not None:       # release chains (and packaging's version parser) only when used
        from .releases import parse_releases
        releases = parse_releases(node, name, path)
    return Upstream(name=name, url=url, pin=pin, archive=archive, description=_str(node, "description", path),
                    version=_str(node, "version", path), releases=releases)


def check_archive_subdir(subdir: str, name: str, *, path: str = LOCK_NAME, line: int | None = None) -> None:
    """An archive's `subdir` names a folder inside the archive: relative, without `..` (else any readable folder
    of the machine would be committed as the upstream)."""
    parts = subdir.replace("\\", "/").split("/")
    if subdir.startswith(("/", "~")) or re.match(r"^[A-Za-z]:", subdir) or ".." in parts:
        raise BadInput(f"archive subdir {subdir!r} of {name!r} must be a folder inside the archive (relative, "
                       "without '..')", path=path, line=line)


def _load_stack(name: str, node: Any, parent: CommentedMap, path: Path, upstreams: dict[str, Upstream]) -> Stack:
    line = _line(parent, name)
    node = _require_map(node, f"stack {name!r}", path, line)
    _check_keys(node, STACK_KEYS, f"stack {name!r}", path)
    names = _str_list(node, "upstreams", path)
    pins = _str_map(node, "pins", path)
    if not names:
        names = tuple(pins) or tuple(upstreams)
    for up in (*names, *pins):
        if up not in upstreams:
            raise BadInput(f"stack {name!r} uses unknown upstream {up!r}{_close(up, upstreams)}", path=str(path),
                           line=_line(node, "upstreams") or _line(node, "pins") or line)
    for up, sha in pins.items():
        if not FULL_SHA.match(sha):
            raise BadInput(f"pin {sha!r} of {up!r} in stack {name!r} is not a full 40-hex commit id", path=str(path),
                           line=_line(node["pins"], up))
    include = []
    for raw in _str_list(node, "include", path) or ("promoted",):
        try:
            include.append(Status.parse(raw))
        except ValueError as exc:
            raise BadInput(str(exc), path=str(path), line=_line(node, "include")) from None
    result = None
    if node.get("result") is not None:
        res = _require_map(node["result"], "result", path, _line(node, "result"))
        _check_keys(res, RESULT_KEYS, f"result of stack {name!r}", path)
        value = res.get("value")
        try:
            number = float(value) if value is not None else None
        except (TypeError, ValueError):
            raise BadInput(f"result value {value!r} of stack {name!r} is not a number", path=str(path),
                           line=_line(res, "value")) from None
        result = StackResult(metric=_str(res, "metric", path), value=number, lane=_str(res, "lane", path),
                             date=_str(res, "date", path), gates=_str_list(res, "gates", path),
                             notes=_str(res, "notes", path), record=_str(res, "record", path))
    trees = _str_map(node, "trees", path)
    for up, tree in trees.items():
        if not FULL_SHA.match(tree):
            raise BadInput(f"recorded tree {tree!r} of {up!r} is not a full id", path=str(path),
                           line=_line(node["trees"], up))
    patches = _str_list(node, "patches", path)
    if patches and (node.get("include") is not None or node.get("extra") is not None):
        raise BadInput(f"stack {name!r} lists its 'patches' and also selects by 'include'/'extra'; keep one of the two",
                       path=str(path), line=_line(node, "patches"))
    if "patches" in node and not patches:
        raise BadInput(f"stack {name!r} has an empty 'patches' list (leave the key out to select by status)",
                       path=str(path), line=_line(node, "patches"))
    bench: BenchSpec | None = None
    gates: tuple[GateSpec, ...] = ()
    if node.get("bench") is not None or node.get("gates") is not None:
        from .benchspec import load_bench, load_gates  # bench/gates validation lives with the trial code
        bench, gates = load_bench(node, name, path), load_gates(node, name, path)
    return Stack(name=name, upstreams=names, pins=pins, include=tuple(include), extra=_str_list(node, "extra", path),
                 profile=_str_map(node, "profile", path), result=result, trees=trees,
                 description=_str(node, "description", path), patches=patches, bench=bench,
                 gates=gates, exclude=_str_list(node, "exclude", path))


def _load_series(ws: Workspace, upstream: str, path: Path) -> tuple[Any, Queue]:
    doc = load_yaml(path, what=SERIES_NAME)
    doc = _require_map(doc, SERIES_NAME, path, 1)
    _check_keys(doc, {"patches"}, SERIES_NAME, path)
    items = doc.get("patches") or []
    if not isinstance(items, list):
        raise BadInput("'patches' must be a list", path=str(path), line=_line(doc, "patches"))
    entries: list[PatchEntry] = []
    seen: dict[str, int | None] = {}
    for index, node in enumerate(items):
        line = _line(items, index)
        node = _require_map(node, "a series entry", path, line)
        _check_keys(node, ENTRY_KEYS, "series entry", path)
        pid = _str(node, "id", path)
        if not PATCH_ID.match(pid):
            raise BadInput(f"patch id {pid!r} must be lower-case letters, digits, '.', '_' or '-'", path=str(path),
                           line=line)
        if pid in seen:
            raise BadInput(f"duplicate patch id {pid!r} (first at line {seen[pid]})", path=str(path), line=line)
        seen[pid] = line
        file = _str(node, "file", path)
        if not file or "/" in file or "\\" in file or file.startswith("."):
            raise BadInput(f"file {file!r} of {pid!r} must be a plain file name inside queues/{upstream}/",
                           path=str(path), line=_line(node, "file") or line)
        _check_patch_file(ws, upstream, pid, file, path, _line(node, "file") or line)
        try:
            status = Status.parse(_str(node, "status", path, default="promoted"))
        except ValueError as exc:
            raise BadInput(str(exc), path=str(path), line=_line(node, "status") or line) from None
        entries.append(PatchEntry(
            id=pid, upstream=upstream, file=file, status=status, title=_str(node, "title", path),
            why=_str(node, "why", path).strip("\n"), flags=_str_list(node, "flags", path),
            result=_str(node, "result", path), baseline=_str(node, "baseline", path),
            notes=_str_list(node, "notes", path), date=_str(node, "date", path), base=_str(node, "base", path),
            supersedes=_str_list(node, "supersedes", path), contains=_str_list(node, "contains", path),
            author=_str(node, "author", path), requires=_str_list(node, "requires", path),
            salvaged=_str(node, "salvaged", path)))
    ids = {e.id for e in entries}
    for entry in entries:
        for ref in (entry.base, *entry.supersedes, *entry.contains, *entry.requires):
            if ref and ref not in ids:
                raise BadInput(f"{entry.id!r} refers to {ref!r}, which is not in this queue", path=str(path),
                               line=seen[entry.id])
    cycle = requires_cycle(entries)
    if cycle:
        raise BadInput(f"requires form a cycle: {' -> '.join(cycle)}", path=str(path), line=seen[cycle[0]])
    return doc, Queue(upstream, tuple(entries))


def _check_patch_file(ws: Workspace, upstream: str, pid: str, file: str, series: Path, line: int | None) -> None:
    """The entry's file exists and is in the queue's folder. A plain file needs one lstat: the folder itself is
    no link (load_workspace refuses one), so only a link can lead out, and only a link is resolved."""
    patch = ws.queue_dir(upstream) / file
    try:
        mode = os.lstat(patch).st_mode
    except OSError:
        mode = 0
    if stat.S_ISREG(mode):
        return
    if not patch.is_file():
        raise BadInput(f"patch file queues/{upstream}/{file} of {pid!r} does not exist", path=str(series), line=line)
    inside = (ws.root / "queues").resolve() / upstream   # queues/ itself may be a link (pins.lock checks)
    if patch.resolve().parent != inside:
        raise BadInput(f"patch file queues/{upstream}/{file} of {pid!r} is a link to a file outside queues/"
                       f"{upstream}/", path=str(series), line=line)


def requires_cycle(entries: list[PatchEntry] | tuple[PatchEntry, ...]) -> list[str]:
    """A cycle among `requires` (as ids, first repeated last), or [] when there is none: such a queue can't apply."""
    needs = {e.id: e.requires for e in entries}
    state: dict[str, int] = {}          # 1: on the current path, 2: done
    for start in needs:
        if state.get(start):
            continue
        path, stack = [start], [iter(needs[start])]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt) and nxt in needs:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(needs[nxt]))
    return []


def _refuse_link(folder: Path, root: Path) -> None:
    """The workspace's own folders (queues/<upstream>/, .patchq/) must be real folders inside it: through a symlink,
    import and apply would write wherever it points. (`queues/` itself may be a link: patchq's own scratch
    workspaces, which check a pins.lock before it is written, borrow the real one that way.)"""
    if folder.is_symlink():
        raise BadInput(f"{folder.relative_to(root)} is a symlink; patchq writes there, so it must be a real folder "
                       "of the workspace", path=str(folder))


def _check_stack_refs(ws: Workspace) -> None:
    for stack in ws.stacks.values():
        for ref in stack.patches:
            where = _line(ws.lock_doc["stacks"][stack.name], "patches")
            try:
                entry = ws.find_patch(ref)
            except BadInput as exc:
                raise BadInput(f"stack {stack.name!r}: {exc.message}", path=str(ws.lock_path), line=where) from None
            if entry.upstream not in stack.upstreams:
                raise BadInput(f"stack {stack.name!r} lists {entry.ref}, but {entry.upstream!r} is not one of its "
                               f"upstreams ({', '.join(stack.upstreams)})", path=str(ws.lock_path), line=where)
        for ref in stack.extra:
            try:
                ws.find_patch(ref)
            except BadInput as exc:
                raise BadInput(f"stack {stack.name!r}: {exc.message}", path=str(ws.lock_path),
                               line=_line(ws.lock_doc["stacks"][stack.name], "extra")) from None
        for ref in stack.exclude:       # a typo here would leave the patch it meant in the stack, silently
            where = _line(ws.lock_doc["stacks"][stack.name], "exclude")
            try:
                entry = ws.find_patch(ref)
            except BadInput as exc:
                raise BadInput(f"stack {stack.name!r} excludes {ref!r}: {exc.message}", path=str(ws.lock_path),
                               line=where) from None
            if entry.upstream not in stack.upstreams:
                raise BadInput(f"stack {stack.name!r} excludes {entry.ref}, but {entry.upstream!r} is not one of its "
                               f"upstreams ({', '.join(stack.upstreams)})", path=str(ws.lock_path), line=where)


# ---- writers ---------------------------------------------------------------------------------------------------

def entry_to_yaml(entry: PatchEntry, into: CommentedMap | None = None) -> CommentedMap:
    """Series metadata for one entry, updating `into` in place so comments on it survive."""
    node = into if into is not None else CommentedMap()
    values: dict[str, Any] = {
        "id": entry.id, "file": entry.file, "status": entry.status.value, "title": entry.title,
        "why": entry.why, "flags": list(entry.flags), "result": entry.result, "baseline": entry.baseline,
        "notes": list(entry.notes), "date": entry.date, "base": entry.base,
        "supersedes": list(entry.supersedes), "contains": list(entry.contains), "author": entry.author,
        "requires": list(entry.requires), "salvaged": entry.salvaged,
    }
    for key, value in values.items():
        empty = value in ("", [], None)
        if empty and key == "title" and into is not None and key not in node:
            continue                  # an entry written without a title keeps having none
        if empty and key not in ("id", "file", "status", "title"):
            if key in node:
                del node[key]
            continue
        if isinstance(value, list):
            seq = CommentedSeq(value)
            seq.fa.set_flow_style()
            if list(node.get(key) or []) != value:
                node[key] = seq
        elif node.get(key) != value:
            node[key] = value
    return node


def series_bytes(ws: Workspace, upstream: str, entries: list[PatchEntry]) -> bytes:
    """series.yaml text for `entries`, reusing the existing document's comments for entries that remain."""
    spliced = _series_spliced(ws, upstream, entries)
    if spliced is not None:
        return spliced
    doc = _editable(ws.series_docs.get(upstream), ws.queue_dir(upstream) / SERIES_NAME, SERIES_NAME)
    if doc is not None:
        ws.series_docs[upstream] = doc
    old_nodes: dict[str, CommentedMap] = {}
    if doc is None:
        doc = CommentedMap()
        doc.yaml_set_start_comment(f"patchq queue for upstream {upstream!r}: order is apply order")
    for node in doc.get("patches") or []:
        if isinstance(node, CommentedMap) and node.get("id"):
            old_nodes[str(node["id"])] = node
    seq = CommentedSeq()
    for entry in entries:
        seq.append(entry_to_yaml(entry, old_nodes.get(entry.id)))
    old_seq = doc.get("patches")
    if isinstance(old_seq, CommentedSeq):
        seq.ca.items.update({})
    doc["patches"] = seq
    return dump_yaml(doc, like=ws.queue_dir(upstream) / SERIES_NAME)


def _series_spliced(ws: Workspace, upstream: str, entries: list[PatchEntry]) -> bytes | None:
    """series.yaml with only the changed entries' lines rewritten, or None where that is not safe.

    The common edit (a status, a note, a result on a few patches of the same queue) should not cost a round trip
    of the whole file through ruamel's pure-Python loader, ~2 ms per entry. Only for a file read on the fast path
    whose only key is `patches`, with the same ids in the same order, and only where each changed entry's lines
    hold no comment or blank line and are exactly what the dumper writes for the entry as it was: then the
    entry's new text is what the whole-document rewrite would write for it, and nothing else moves.
    """
    doc = ws.series_docs.get(upstream)
    if doc is None or not fastyaml.is_fast(doc) or list(doc) != ["patches"] or upstream not in ws.queues:
        return None
    old = ws.queues[upstream].entries
    seq = doc["patches"]
    if [e.id for e in old] != [e.id for e in entries] or not isinstance(seq, CommentedSeq) or len(seq) != len(old):
        return None
    try:
        text = (ws.queue_dir(upstream) / SERIES_NAME).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    lines = text.splitlines(keepends=True)
    starts = [seq.lc.item(i)[0] for i in range(len(seq))]
    bounds = [*starts, len(lines)]
    if any(a >= b for a, b in zip(bounds, bounds[1:])):
        return None

    def render(entry: PatchEntry, node: Any) -> str:
        block = dump_block({"patches": [entry_to_yaml(entry, _commented(node))]}, like_text=text)
        return block.partition("\n")[2]           # the item alone, without the `patches:` line

    pieces: list[str] = []
    last = 0
    for number, (before, after) in enumerate(zip(old, entries)):
        if before == after:
            continue
        start, end = bounds[number], bounds[number + 1]
        chunk = "".join(lines[start:end])
        if "#" in chunk or any(not line.strip() for line in lines[start:end]) or not chunk.endswith("\n") \
                or render(before, seq[number]) != chunk:
            return None
        pieces += [*lines[last:start], render(after, seq[number])]
        last = end
    return "".join([*pieces, *lines[last:]]).encode()


def _commented(node: Any) -> Any:
    """A fresh round-trip copy of a node read on the fast path (flow style kept), for the dumper to write."""
    if isinstance(node, dict):
        mapping = CommentedMap((key, _commented(value)) for key, value in node.items())
        if isinstance(node, CommentedMap) and node.fa.flow_style():
            mapping.fa.set_flow_style()
        return mapping
    if isinstance(node, list):
        seq = CommentedSeq(_commented(value) for value in node)
        if isinstance(node, CommentedSeq) and node.fa.flow_style():
            seq.fa.set_flow_style()
        return seq
    return node


def set_lock_values(ws: Workspace, *, pins: dict[str, str] | None = None,
                    stack_pins: dict[str, dict[str, str]] | None = None,
                    trees: dict[str, dict[str, str]] | None = None,
                    releases: dict[str, list[dict[str, str]]] | None = None,
                    exclude: dict[str, list[str]] | None = None) -> bytes:
    """pins.lock text with new upstream pins, stack pins, recorded trees, release lists and stack exclusions;
    everything else as it was."""
    doc = ws.lock_doc = _editable(ws.lock_doc, ws.root / LOCK_NAME, LOCK_NAME)
    for name, items in (releases or {}).items():
        doc["upstreams"][name]["releases"] = [CommentedMap(item) for item in items]
    for stack, refs in (exclude or {}).items():
        doc["stacks"][stack]["exclude"] = list(refs)
    for name, sha in (pins or {}).items():
        doc["upstreams"][name]["pin"] = sha
    for stack, values in (stack_pins or {}).items():
        node = doc["stacks"][stack]
        if "pins" not in node or node["pins"] is None:
            node["pins"] = CommentedMap()
        for up, sha in values.items():
            node["pins"][up] = sha
    for stack, values in (trees or {}).items():
        node = doc["stacks"][stack]
        if "trees" not in node or node["trees"] is None:
            node["trees"] = CommentedMap()
        for up, tree in values.items():
            node["trees"][up] = tree
    return dump_yaml(doc, like=ws.root / LOCK_NAME)


def set_stack_patches(ws: Workspace, stack_name: str, upstream: str, refs: list[str], tree: str) -> bytes:
    """pins.lock text where `stack_name` applies exactly `refs` to `upstream` (the stack is made when missing).

    Everything else in the file stays as written, comments included. A stack that selected by status goes on
    applying what it applied to its other upstreams: those patches are listed too, since `patches` replaces
    `include` and `extra` for the whole stack. The result tree of `upstream` is recorded for `apply --verify`.
    """
    doc = ws.lock_doc = _editable(ws.lock_doc, ws.lock_path, LOCK_NAME)
    if doc.get("stacks") is None:
        doc["stacks"] = CommentedMap()
    node = doc["stacks"].get(stack_name)
    others: list[str] = []
    if node is None:
        node = doc["stacks"][stack_name] = CommentedMap()
        node["upstreams"] = _flow([upstream])
    else:
        stack = ws.stack(stack_name)
        if upstream not in stack.upstreams:
            node["upstreams"] = _flow([*stack.upstreams, upstream])
        if stack.patches:
            others = [r for r in stack.patches if ws.find_patch(r).upstream != upstream]
        else:
            others = [patch_ref(ws, e) for name in stack.upstreams if name != upstream
                      for e in ws.stack_entries(stack, name)]
        for key in ("include", "extra"):
            if key in node:
                del node[key]
    node["patches"] = _flow([*others, *refs])
    if node.get("trees") is None:
        node["trees"] = CommentedMap()
    node["trees"][upstream] = tree
    return dump_yaml(doc)


def patch_ref(ws: Workspace, entry: PatchEntry) -> str:
    """How a stack names a patch: its id, or `upstream:id` when another queue has the same id."""
    clash = any(e.id == entry.id for name, q in ws.queues.items() if name != entry.upstream for e in q.entries)
    return entry.ref if clash else entry.id


def _flow(items: list[str]) -> CommentedSeq:
    seq = CommentedSeq(items)
    seq.fa.set_flow_style()
    return seq


def new_lock_doc() -> CommentedMap:
    doc = CommentedMap()
    doc.yaml_set_start_comment("patchq workspace: upstreams pinned to full commits, and the stacks built on them.\n"
                               "patchq rewrites this file (pins, recorded trees); comments and order survive.")
    doc["version"] = 1
    doc["upstreams"] = CommentedMap()
    doc["stacks"] = CommentedMap()
    return doc


def init_workspace(root: Path) -> Path:
    """A new empty workspace; refuses to overwrite an existing pins.lock."""
    root.mkdir(parents=True, exist_ok=True)
    lock = root / LOCK_NAME
    if lock.exists():
        raise BadInput("a workspace already exists here", path=str(lock))
    (root / "queues").mkdir(exist_ok=True)
    (root / "kernels").mkdir(exist_ok=True)
    gitignore = root / ".gitignore"
    if not gitignore.exists() or STATE_DIR not in gitignore.read_text():
        existing = gitignore.read_text() if gitignore.exists() else ""
        atomic_write(gitignore, (existing + ("" if existing.endswith("\n") or not existing else "\n")
                                 + f"{STATE_DIR}/\n").encode())
    atomic_write(lock, dump_yaml(new_lock_doc()))
    return lock


def with_entries(ws: Workspace, upstream: str, entries: list[PatchEntry]) -> Workspace:
    queues = dict(ws.queues)
    queues[upstream] = Queue(upstream, tuple(entries))
    return replace(ws, queues=queues)
