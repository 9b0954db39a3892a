"""Setup and metadata verbs: add upstreams and stacks, change a stack, edit a patch's annotation, list them.

Everything routine that used to need a hand edit of pins.lock or series.yaml. pins.lock is rewritten through its
round-trip document (comments, order and quoting survive; only the values changed are new) and checked by loading
the result before it replaces the old file. `edit` changes series.yaml and the patch file's header together, and in
the patch file only the lines whose value changed: every other byte stays.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from .errors import BadInput
from .model import FULL_SHA, UPSTREAM_NAME, PatchEntry, Stack, Status, Upstream
from .patchfile import format_date, read_patch_file, trailer_lines
from .txn import Txn
from .workspace import LOCK_NAME, Workspace, load_workspace, series_bytes
from .yamlio import dump as dump_yaml, editable as _editable

PROFILE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# ---- upstreams ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class UpstreamInfo:
    name: str
    url: str
    pin: str
    archive: str = ""               # "pypi vllm==0.11.0" / "url ..." / ""
    version: str = ""
    description: str = ""
    patches: int = 0
    stacks: tuple[str, ...] = ()


def upstream_infos(ws: Workspace) -> list[UpstreamInfo]:
    out = []
    for name, up in ws.upstreams.items():
        archive = ""
        if up.archive is not None:
            archive = f"pypi {up.archive.pypi}" if up.archive.pypi else f"url {up.archive.url}"
        out.append(UpstreamInfo(name, up.url, up.pin, archive, up.version, up.description,
                                len(ws.queue(name).entries),
                                tuple(s.name for s in ws.stacks.values() if name in s.upstreams)))
    return out


def add_upstream(ws: Workspace, t: Txn, name: str, url: str, *, pin: str = "latest", pypi: str = "", sha256: str = "",
                 version: str = "", description: str = "", cwd: Path | None = None) -> UpstreamInfo:
    """A new upstream in pins.lock, its pin resolved to a full commit through a fresh mirror."""
    from .model import ArchiveSource
    from .sources import ensure_mirror, pypi_sdist_sha256, resolve_ref
    if not UPSTREAM_NAME.match(name):
        raise BadInput(f"upstream name {name!r} must be lower-case letters, digits, '.', '_' or '-'")
    if name in ws.upstreams:
        raise BadInput(f"upstream {name!r} already exists", path=LOCK_NAME)
    url = _stored_url(ws, url, cwd or Path.cwd())
    archive = None
    if pypi:
        req_name, sep, req_version = pypi.partition("==")
        if not sep or not req_name.strip() or not req_version.strip():
            raise BadInput(f"--pypi {pypi!r} must be NAME==VERSION")
        if sha256 and not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise BadInput("--sha256 must be 64 hex digits")
        archive = ArchiveSource(sha256=sha256 or pypi_sdist_sha256(pypi), pypi=pypi)
        version = version or req_version.strip()
    upstream = Upstream(name=name, url=url, pin="0" * 40, archive=archive, description=description, version=version)
    if FULL_SHA.match(pin) and archive is not None:
        sha = pin                    # an archive stands in when the URL is out of reach: a full id is enough
    else:
        mirror = ensure_mirror(upstream, workspace=ws.root)
        sha = resolve_ref(mirror, upstream, pin)
    add_upstream_node(ws, t, replace(upstream, pin=sha))
    return UpstreamInfo(name, url, sha, f"pypi {pypi}" if pypi else "", version, description)


def add_upstream_node(ws: Workspace, t: Txn, upstream: Upstream) -> Workspace:
    """Stage one new upstream into pins.lock (checked by loading the result); returns the workspace as staged."""
    doc = _lock_doc(ws)
    node = CommentedMap()
    node["url"] = upstream.url
    node["pin"] = upstream.pin
    if upstream.archive is not None:
        arch = CommentedMap()
        if upstream.archive.pypi:
            arch["pypi"] = upstream.archive.pypi
        if upstream.archive.url:
            arch["url"] = upstream.archive.url
        arch["sha256"] = upstream.archive.sha256
        node["archive"] = arch
    if upstream.version:
        node["version"] = upstream.version
    if upstream.description:
        node["description"] = upstream.description
    if doc.get("upstreams") is None:
        doc["upstreams"] = CommentedMap()
    doc["upstreams"][upstream.name] = node
    return _write_lock(ws, t, doc)


def _stored_url(ws: Workspace, url: str, cwd: Path) -> str:
    """URLs as given; a local folder as a path relative to the workspace (pins.lock reads them so)."""
    if "://" in url or url.startswith(("git@", "file:")):
        return url
    path = Path(url).expanduser()
    if not path.is_absolute():
        path = (cwd / path).resolve()
    if not path.exists():
        raise BadInput(f"upstream url {url!r}: no such folder (give a git URL or an existing repository)")
    try:
        return str(path.relative_to(ws.root.resolve()))
    except ValueError:
        return str(path)


# ---- stacks ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StackInfo:
    name: str
    upstreams: tuple[str, ...]
    include: tuple[str, ...]
    extra: tuple[str, ...]
    pins: dict[str, str]
    profile: dict[str, str]
    result: dict[str, Any]
    description: str
    patches: dict[str, int]          # upstream -> how many patches the stack applies there
    listed: tuple[str, ...] = ()     # an explicit `patches:` list (then `include` selects nothing)
    exclude: tuple[str, ...] = ()    # patches a rebase left out of this stack


def stack_info(ws: Workspace, stack: Stack) -> StackInfo:
    result = {}
    if stack.result is not None:
        result = {k: v for k, v in vars(stack.result).items() if v not in ("", None, ())}
        if "gates" in result:
            result["gates"] = list(result["gates"])
    return StackInfo(stack.name, stack.upstreams, tuple(s.value for s in stack.include), stack.extra,
                     dict(stack.pins), dict(stack.profile), result, stack.description,
                     {up: len(ws.stack_entries(stack, up)) for up in stack.upstreams}, stack.patches, stack.exclude)


@dataclass(frozen=True)
class StackChange:
    """What `stack add|set` changes; None leaves a field as it is."""

    upstreams: tuple[str, ...] | None = None
    include: tuple[str, ...] | None = None
    extra: tuple[str, ...] | None = None
    profile: dict[str, str | None] | None = None     # value None removes the key
    result: dict[str, Any] | None = None             # metric, value, lane, date, gates, notes; "" removes
    description: str | None = None


def set_stack(ws: Workspace, t: Txn, name: str, change: StackChange, *, create: bool) -> StackInfo:
    """Create (`create`) or change a stack in pins.lock, checked by loading the result before it is written."""
    fresh = stage_stack(ws, t, name, change, create=create)
    return stack_info(fresh, fresh.stack(name))


def stage_stack(ws: Workspace, t: Txn, name: str, change: StackChange, *, create: bool) -> Workspace:
    """`set_stack`'s change staged on `t`; returns the workspace as it will be once committed."""
    if create and name in ws.stacks:
        raise BadInput(f"stack {name!r} already exists (change it with 'patchq stack set')", path=LOCK_NAME)
    if not create:
        ws.stack(name)
    if not UPSTREAM_NAME.match(name):
        raise BadInput(f"stack name {name!r} must be lower-case letters, digits, '.', '_' or '-'")
    if create and not change.upstreams:
        raise BadInput("a new stack needs its upstreams: --upstream U (repeatable, in apply order)")
    for up in change.upstreams or ():
        ws.upstream(up)
    for status in change.include or ():
        try:
            Status.parse(status)
        except ValueError as exc:
            raise BadInput(str(exc)) from None
    for ref in change.extra or ():
        ws.find_patch(ref)
    for key in (change.profile or {}):
        if not PROFILE_KEY.match(key):
            raise BadInput(f"profile key {key!r} is not an environment variable name")
    if not create and (change.include is not None or change.extra is not None) and ws.stacks[name].patches:
        raise BadInput(f"stack {name!r} lists its patches explicitly ('patches:'); --include/--extra select by "
                       "status and cannot be combined with it: edit its 'patches:' list instead", path=LOCK_NAME)
    doc = _lock_doc(ws)
    if doc.get("stacks") is None:
        doc["stacks"] = CommentedMap()
    node = doc["stacks"].get(name) if not create else None
    if node is None:
        node = CommentedMap()
        doc["stacks"][name] = node
    if change.upstreams is not None:
        node["upstreams"] = _flow(list(change.upstreams))
    if change.include is not None:
        node["include"] = _flow(list(change.include))
    if change.extra is not None:
        if change.extra:
            node["extra"] = _flow(list(change.extra))
        elif "extra" in node:
            del node["extra"]
    if change.profile:
        profile = node.get("profile")
        if not isinstance(profile, dict):
            profile = node["profile"] = CommentedMap()
        for key, value in change.profile.items():
            if value is None:
                profile.pop(key, None)
            else:
                profile[key] = value
        if not profile:
            del node["profile"]
    if change.result:
        result = node.get("result")
        if not isinstance(result, dict):
            result = node["result"] = CommentedMap()
        for key, value in change.result.items():
            if value in ("", None, ()):
                result.pop(key, None)
            else:
                result[key] = _flow(list(value)) if isinstance(value, (list, tuple)) else value
        if not result:
            del node["result"]
    if change.description is not None:
        if change.description:
            node["description"] = change.description
        else:
            node.pop("description", None)
    return _write_lock(ws, t, doc)


def _flow(values: list[str]) -> CommentedSeq:
    seq = CommentedSeq(values)
    seq.fa.set_flow_style()
    return seq


def _lock_doc(ws: Workspace) -> Any:
    doc = ws.lock_doc = _editable(ws.lock_doc, ws.lock_path, LOCK_NAME)
    return doc


def _write_lock(ws: Workspace, t: Txn, doc: Any) -> Workspace:
    """Stage pins.lock only if the new text loads as a valid workspace (checked beside a link to the queues, before
    the real file is touched); returns the workspace as it will be once committed."""
    import tempfile
    data = dump_yaml(doc)
    with tempfile.TemporaryDirectory(prefix="patchq-lock-check-") as tmp:
        (Path(tmp) / LOCK_NAME).write_bytes(data)
        for name in ("queues", "kernels"):
            if (ws.root / name).exists():
                (Path(tmp) / name).symlink_to(ws.root / name)
        try:
            checked = load_workspace(Path(tmp))
        except BadInput as exc:
            where = exc.path.replace(tmp, str(ws.root)) if exc.path else None
            raise BadInput(f"the change would make pins.lock invalid: {exc.message}", path=where,
                           line=exc.line) from None
    t.write(ws.lock_path, data)
    return replace(checked, root=ws.root, lock_doc=doc)


# ---- edit a patch's annotation --------------------------------------------------------------------------------------

EDITABLE = ("title", "why", "flags", "result", "baseline", "notes", "date", "base", "supersedes", "contains",
            "requires", "author")


def edit_patch(ws: Workspace, t: Txn, patch_ref: str, changes: dict[str, Any]) -> PatchEntry:
    """Change a patch's annotation in series.yaml and in its patch file together.

    In the patch file only the header lines that carry a changed value are rewritten (Subject, From, Date, the
    description and the Patchq trailers); the diff, the signature and everything else keep every byte.
    """
    entry = ws.find_patch(patch_ref)
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise BadInput(f"cannot edit {', '.join(sorted(unknown))} (editable: {', '.join(EDITABLE)})")
    updated = replace(entry, **changes)
    if updated.base and not ws.queue(entry.upstream).get(updated.base):
        raise BadInput(f"--base {updated.base}: no patch of that id in queue {entry.upstream!r}")
    for field in ("supersedes", "contains", "requires"):
        for ref in getattr(updated, field):
            if not ws.queue(entry.upstream).get(ref):
                raise BadInput(f"--{field} {ref}: no patch of that id in queue {entry.upstream!r}")
    order = [e.id for e in ws.queue(entry.upstream).entries]
    for ref in updated.requires:
        if order.index(ref) >= order.index(entry.id):
            raise BadInput(f"--requires {ref}: it comes after {entry.id!r} in the queue; a patch can only require "
                           "earlier ones")
    path = ws.patch_path(entry)
    data = path.read_bytes()
    patch = read_patch_file(data, source=ws.rel(path))
    new_head = _edited_head(patch.head.decode("utf-8", "surrogateescape"), entry, updated)
    new_data = new_head.encode("utf-8", "surrogateescape") + patch.diff + patch.tail
    read_patch_file(new_data, source=ws.rel(path))
    entries = [updated if e.id == entry.id else e for e in ws.queue(entry.upstream).entries]
    series = series_bytes(ws, entry.upstream, entries)
    if new_data != data:
        t.write(path, new_data)
    t.write(ws.queue_dir(entry.upstream) / "series.yaml", series)
    return updated


def _edited_head(head: str, old: PatchEntry, new: PatchEntry) -> str:
    lines = head.split("\n")
    if new.title != old.title:
        _set_header(lines, "Subject", lambda value: re.sub(r"^(\[PATCH[^\]]*\]\s*)?.*$",
                                                           lambda m: (m.group(1) or "") + new.title.replace("\n", " "),
                                                           value, count=1))
    if new.author != old.author:
        _set_header(lines, "From", lambda value: new.author)
    if new.date != old.date:
        _set_header(lines, "Date", lambda value: format_date(new.date))
    text = "\n".join(lines)
    end = _body_end(text)
    start = _body_start(text)
    body = text[start:end]
    paragraphs = body.strip("\n").split("\n\n") if body.strip("\n") else []
    trailer_at = next((i for i in range(len(paragraphs) - 1, -1, -1)
                       if any(ln.startswith("Patchq-") for ln in paragraphs[i].split("\n"))), None)
    old_trailers, new_trailers = trailer_lines(old), trailer_lines(new)
    if trailer_at is not None and old_trailers != new_trailers:
        kept = [ln for ln in paragraphs[trailer_at].split("\n") if ln and not ln.startswith("Patchq-")]
        paragraphs[trailer_at] = "\n".join(kept + new_trailers)
    elif trailer_at is None and new_trailers:
        paragraphs.append("\n".join(new_trailers))
        trailer_at = len(paragraphs) - 1
    if new.why.strip() != old.why.strip():
        cut = trailer_at if trailer_at is not None else len(paragraphs)
        described = [new.why.strip()] if new.why.strip() else []
        paragraphs = described + paragraphs[cut:]
    if paragraphs == (body.strip("\n").split("\n\n") if body.strip("\n") else []):
        return text
    leading = body[:len(body) - len(body.lstrip("\n"))]
    trailing = body[len(body.rstrip("\n")):]
    return text[:start] + leading + "\n\n".join(paragraphs) + (trailing or "\n") + text[end:]


def _set_header(lines: list[str], key: str, value_of: Callable[[str], str]) -> None:
    for i, line in enumerate(lines):
        if not line.strip():
            break
        if line.startswith(f"{key}: "):
            j = i + 1
            value = line[len(key) + 2:]
            while j < len(lines) and lines[j].startswith((" ", "\t")) and lines[j].strip():
                value += " " + lines[j].strip()
                j += 1
            lines[i:j] = [f"{key}: {value_of(value)}"]
            return


def _body_start(text: str) -> int:
    """Where the message body begins: after the mail headers' blank line (or at 0 for a header-less patch)."""
    if re.match(r"^(From [0-9a-f]{40} |From: |Date: |Subject: )", text):
        blank = text.find("\n\n")
        return blank + 2 if blank >= 0 else len(text)
    return 0


def _body_end(text: str) -> int:
    """Where the body ends: the '---' line before the diffstat, else the end of the head."""
    m = re.search(r"^---$", text, re.M)
    return m.start() if m else len(text)
