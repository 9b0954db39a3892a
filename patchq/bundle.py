"""`.patch.gz.b64` bundles: base64 of gzip of a stack's patches, as reproduction folders ship them.

Encoding is deterministic (no file name or mtime in the gzip header, fixed level, fixed 76-column wrapping), so the
same queue gives the same bytes on every machine and `base64 -d X | gunzip | git apply` works on it. Decoding is
bounded: a gzip bomb stops at the size limit instead of filling memory.

`export_stack` writes one bundle per upstream (gz.b64, an mbox, a folder of patch files or a quilt series) with a
manifest that records the pin, each patch's checksum and the result tree; `check_export` verifies a repro folder
against the workspace; `read_bundle` reads a bundle back into patch files, checked against its manifest.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import shlex
import shutil
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from .apply import LoadedPatch, run_queue, stack_patches
from .errors import BadInput, NeedsYou
from .git import Repo
from .model import Finding, Outcome, OutcomeKind
from .patchfile import PatchFile, read_patch_file, render_patch_file
from .patchtext import split_mbox
from .sources import ensure_base, ensure_mirror, workspace_ref
from .txn import atomic_write
from .workspace import Workspace

DEFAULT_LIMIT = 64 * 1024 * 1024
WRAP = 76
_B64_CHARS = re.compile(rb"^[A-Za-z0-9+/=\s]*$")


def encode_gz_b64(diff: bytes) -> bytes:
    """Deterministic gzip (mtime 0, no name, level 9, OS byte 255) then base64 wrapped at 76 columns."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    body = compressor.compress(diff) + compressor.flush()
    header = b"\x1f\x8b\x08\x00" + b"\x00\x00\x00\x00" + b"\x02\xff"
    trailer = zlib.crc32(diff).to_bytes(4, "little") + (len(diff) & 0xFFFFFFFF).to_bytes(4, "little")
    encoded = base64.b64encode(header + body + trailer)
    lines = [encoded[i:i + WRAP] for i in range(0, len(encoded), WRAP)]
    return b"\n".join(lines) + b"\n"


def decode_b64(data: bytes, *, source: str) -> bytes:
    """Strict base64 (whitespace allowed): a truncated or corrupted file is an error, not a short diff."""
    if not _B64_CHARS.match(data):
        bad = next(i for i, ch in enumerate(data) if not re.match(rb"[A-Za-z0-9+/=\s]", bytes([ch])))
        raise BadInput(f"not base64: unexpected byte {data[bad:bad + 1]!r}", path=source,
                       line=data[:bad].count(b"\n") + 1)
    compact = re.sub(rb"\s+", b"", data)
    if len(compact) % 4:
        raise BadInput(f"truncated base64 ({len(compact)} characters, not a multiple of 4)", path=source)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadInput(f"invalid base64: {exc}", path=source) from None


def gunzip_bounded(data: bytes, *, source: str, limit: int = DEFAULT_LIMIT) -> bytes:
    """Decompress one or more gzip members, refusing output beyond `limit` bytes and trailing garbage."""
    if data[:2] != b"\x1f\x8b":
        raise BadInput("not gzip data (missing the 1f 8b magic bytes)", path=source)
    out = bytearray()
    rest = data
    while rest:
        if rest[:2] != b"\x1f\x8b":
            raise BadInput("trailing bytes after the gzip data", path=source)
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        chunk = rest
        while chunk:
            try:
                piece = inflater.decompress(chunk, limit + 1 - len(out))
            except zlib.error as exc:
                raise BadInput(f"corrupt gzip data ({exc})", path=source) from None
            out += piece
            if len(out) > limit:
                raise BadInput(f"decompresses to more than {limit} bytes (limit; pass a larger --max-size if this "
                               "is genuine)", path=source)
            chunk = inflater.unconsumed_tail
            if inflater.eof:
                break
            if not piece and not chunk:
                break
        if not inflater.eof:
            raise BadInput("truncated gzip data (the stream ends early)", path=source)
        rest = inflater.unused_data
    return bytes(out)


def decode_gz_b64(data: bytes, *, source: str, limit: int = DEFAULT_LIMIT) -> bytes:
    """The diff inside a `.patch.gz.b64` file."""
    return gunzip_bounded(decode_b64(data, source=source), source=source, limit=limit)


# ---- what a bundle holds ------------------------------------------------------------------------------------------
#
# The decoded content of a patchq bundle is the stack's patch files for one upstream, concatenated in apply order,
# each exactly as `render_patch_file` writes it. That stream is an mbox `git am` reads, and `git apply` applies it
# whole: it skips the headers, descriptions and signatures between the diffs, and a later patch to the same file
# applies on top of the earlier one. The manifest beside the bundle says what went in and what must come out.

FORMAT_VERSION = 1
MANIFEST_KIND = "patchq-bundle-manifest"
FORMATS = ("gz.b64", "patch", "mbox", "quilt")
FILE_MODE = 0o644
DIR_MODE = 0o755
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
HEX40 = re.compile(r"^[0-9a-f]{40}$")
# Outcomes that plain `git apply` reproduces; a 3-way merge, fuzz or a reverse-applying patch would make the
# pipeline fail in the repro folder even though `patchq apply` copes.
PLAIN_APPLY = (OutcomeKind.CLEAN, OutcomeKind.OFFSET)


@dataclass(frozen=True)
class ManifestPatch:
    id: str
    status: str
    flags: tuple[str, ...]
    title: str
    file: str                       # its name in a patch folder or quilt series: NNNN-<id>.patch
    sha256: str                     # of its patch text as it appears in the bundle


@dataclass(frozen=True)
class Manifest:
    """What one bundle holds and what applying it must produce."""

    format: str
    stack: str
    upstream: str
    url: str
    pin: str                        # the pin in pins.lock when exported
    base: str                       # the commit the bundle applies to (the pin, or an archive commit for it)
    result_tree: str                # tree id after applying the bundle at `base`
    bundle: str                     # file or folder name inside the export folder
    content_sha256: str             # of the decoded stream (all patch files concatenated)
    files: dict[str, str]           # every file of the bundle (export-folder-relative) -> sha256
    patches: tuple[ManifestPatch, ...]
    format_version: int = FORMAT_VERSION

    @property
    def bundle_sha256(self) -> str:
        """The checksum of the bundle file; empty for folder formats, whose files are listed one by one."""
        return self.files.get(self.bundle, "")

    @property
    def label(self) -> str:
        return export_label(self.stack, self.upstream, self.format)


@dataclass(frozen=True)
class BundleContents:
    """A bundle read back: its decoded stream and the patch files in it."""

    source: str
    content: bytes
    patches: tuple[PatchFile, ...]
    ids: tuple[str, ...]            # Patchq-Id of each patch ("" when a patch has none)
    sha256: str                     # of the bundle file as stored
    manifest: Manifest | None = None

    @property
    def foreign(self) -> bool:
        """Not made by patchq: no patch carries a Patchq-Id (for example one squashed diff)."""
        return not any(self.ids)


@dataclass(frozen=True)
class WrittenFile:
    path: str                       # export-folder-relative
    sha256: str
    action: str                     # "written" | "unchanged"


@dataclass(frozen=True)
class ExportedBundle:
    upstream: str
    pin: str
    base: str
    tree: str
    bundle: str
    manifest: str
    patches: tuple[str, ...]
    files: tuple[WrittenFile, ...]
    base_note: str = ""


@dataclass(frozen=True)
class ExportResult:
    stack: str
    out_dir: str
    format: str
    bundles: tuple[ExportedBundle, ...]
    skipped: tuple[str, ...] = ()   # upstreams of the stack with no patches to export


@dataclass(frozen=True)
class ExportPlan:
    """Everything one upstream's export would write, computed in memory before anything touches the disk."""

    manifest: Manifest
    files: dict[str, bytes]         # export-folder-relative path -> bytes: bundle files, manifest, README snippet
    folder: str                     # the folder a folder format owns ("" for single-file formats)
    content: bytes
    base_note: str = ""


@dataclass(frozen=True)
class BundleCheck:
    manifest: str
    stack: str
    upstream: str
    format: str
    bundle: str
    problems: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)


@dataclass(frozen=True)
class ExportCheck:
    out_dir: str
    bundles: tuple[BundleCheck, ...]

    @property
    def ok(self) -> bool:
        return all(b.ok for b in self.bundles)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def export_label(stack: str, upstream: str, fmt: str) -> str:
    """`<stack>-<upstream>` for the default gz.b64 format, `<stack>-<upstream>.<format>` for the others."""
    stem = f"{stack}-{upstream}"
    return stem if fmt == "gz.b64" else f"{stem}.{fmt}"


def bundle_name(stack: str, upstream: str, fmt: str) -> str:
    stem = f"{stack}-{upstream}"
    return {"gz.b64": f"{stem}.patch.gz.b64", "mbox": f"{stem}.mbox", "patch": f"{stem}.patches",
            "quilt": f"{stem}.quilt"}[fmt]


def manifest_name(stack: str, upstream: str, fmt: str) -> str:
    return f"{export_label(stack, upstream, fmt)}.manifest.json"


def manifest_for(bundle: Path) -> Path | None:
    """The manifest patchq writes beside `bundle`, when it is there."""
    name = bundle.name
    for suffix, fmt in ((".patch.gz.b64", "gz.b64"), (".mbox", "mbox"), (".patches", "patch"), (".quilt", "quilt")):
        if name.endswith(suffix):
            stem = name[: -len(suffix)]
            candidate = bundle.with_name(f"{stem if fmt == 'gz.b64' else f'{stem}.{fmt}'}.manifest.json")
            return candidate if candidate.is_file() else None
    return None


# ---- reading bundles back -------------------------------------------------------------------------------------------

def split_patch_stream(data: bytes) -> list[tuple[int, bytes]]:
    """Cut a concatenation of patch files at each mbox separator line (`patchtext.split_mbox`).

    Returns (1-based first line, text) per piece. A stream without separators (one squashed diff) is one piece.
    Diff lines always start with a space, '+', '-', '@' or a header word, so the cut cannot fall inside a diff.
    """
    return split_mbox(data)


def parse_patch_stream(data: bytes, *, source: str, encoded: bool) -> tuple[PatchFile, ...]:
    """Every patch file of a stream, with errors naming the bundle, the patch and the line in the decoded text."""
    pieces = split_patch_stream(data)
    out = []
    for number, (first_line, text) in enumerate(pieces, 1):
        try:
            out.append(read_patch_file(text, source=source))
        except BadInput as exc:
            line = first_line + (exc.line or 1) - 1
            where = f"patch {number} of {len(pieces)}"
            if encoded:
                raise BadInput(f"{where}, line {line} of the decoded text: {exc.message}", path=source) from None
            raise BadInput(f"{where}: {exc.message}", path=source, line=line) from None
    return tuple(out)


def read_bundle(path: Path, *, limit: int = DEFAULT_LIMIT, manifest: Manifest | Path | None = None,
                pin: str | None = None) -> BundleContents:
    """Decode a `.patch.gz.b64` (or `.gz`, or a plain mbox / patch) and split it into patch files.

    With a manifest, the bundle must match it exactly: file checksum, decoded checksum, patch ids in order and each
    patch's checksum. With `pin`, the manifest must have been made for that pin. Every refusal is a BadInput that
    names the file; nothing is written either way.
    """
    source = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BadInput("bundle not found", path=source) from None
    except IsADirectoryError:
        raise BadInput("is a folder, not a bundle file", path=source) from None
    if isinstance(manifest, Path):
        manifest = read_manifest(manifest)
    digest = sha256_hex(raw)
    if manifest is not None:
        if pin is not None and manifest.pin != pin:
            raise BadInput(f"the manifest pins {manifest.upstream} at {manifest.pin[:12]} but the workspace pins "
                           f"{pin[:12]}; export the bundle again or pin the workspace to match", path=source)
        expected = manifest.files.get(manifest.bundle) or manifest.files.get(path.name, "")
        if expected and digest != expected:
            raise BadInput(f"checksum mismatch: the file has sha256 {digest[:16]}…, its manifest says "
                           f"{expected[:16]}… (changed or damaged after export)", path=source)
    encoded = path.name.endswith(".b64")
    if encoded:
        content = decode_gz_b64(raw, source=source, limit=limit)
    elif path.name.endswith(".gz"):
        content = gunzip_bounded(raw, source=source, limit=limit)
    else:
        if len(raw) > limit:
            raise BadInput(f"{len(raw)} bytes is more than the {limit}-byte limit", path=source)
        content = raw
    patches = parse_patch_stream(content, source=source, encoded=encoded)
    ids = tuple(p.trailer("Patchq-Id") or "" for p in patches)
    if manifest is not None:
        verify_against_manifest(content, patches, manifest, source=source)
    return BundleContents(source, content, patches, ids, digest, manifest)


def verify_against_manifest(content: bytes, patches: tuple[PatchFile, ...], manifest: Manifest, *,
                            source: str) -> None:
    if sha256_hex(content) != manifest.content_sha256:
        raise BadInput("decoded content does not match the manifest's content_sha256", path=source)
    ids = [p.trailer("Patchq-Id") or "" for p in patches]
    listed = [p.id for p in manifest.patches]
    if ids != listed:
        raise BadInput(f"bundle holds patches {', '.join(ids) or '(none)'} but the manifest lists "
                       f"{', '.join(listed) or '(none)'}", path=source)
    for patch, entry in zip(patches, manifest.patches):
        if sha256_hex(patch.head + patch.diff + patch.tail) != entry.sha256:
            raise BadInput(f"patch {entry.id!r} does not match its checksum in the manifest", path=source)


# ---- manifests ------------------------------------------------------------------------------------------------------

def manifest_bytes(manifest: Manifest) -> bytes:
    """Deterministic JSON: sorted keys, two-space indent, ASCII only, one trailing newline."""
    doc: dict[str, object] = {
        "kind": MANIFEST_KIND, "format_version": manifest.format_version, "format": manifest.format,
        "stack": manifest.stack, "upstream": manifest.upstream, "url": manifest.url, "pin": manifest.pin,
        "base": manifest.base, "result_tree": manifest.result_tree, "bundle": manifest.bundle,
        "content_sha256": manifest.content_sha256, "files": dict(sorted(manifest.files.items())),
        "patches": [{"id": p.id, "status": p.status, "flags": list(p.flags), "title": p.title, "file": p.file,
                     "sha256": p.sha256} for p in manifest.patches],
    }
    if manifest.bundle_sha256:
        doc["bundle_sha256"] = manifest.bundle_sha256
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=True) + "\n").encode("ascii")


def _safe_relative(name: object, *, source: str, what: str) -> str:
    if not isinstance(name, str) or not name:
        raise BadInput(f"{what} must be a file name", path=source)
    parts = name.split("/")
    if len(parts) > 2 or any(not SAFE_NAME.match(p) for p in parts):
        raise BadInput(f"{what} {name!r} is not a plain name inside the export folder", path=source)
    return name


MAX_JSON_DEPTH = 32
MAX_JSON_NUMBER = 64          # digits: a manifest holds counts and sizes, never a 5,000-digit number


def _guarded_json(text: str, source: str):
    """json.loads, refusing what would crash or stall it: deep nesting (a RecursionError) and huge numbers
    (Python refuses to convert more than 4,300 digits, with a ValueError of its own)."""
    depth = 0
    for char in re.sub(r'"(?:[^"\\]|\\.)*"|[^\[\]{}"]+', "", text):
        if char in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise BadInput(f"manifest nests more than {MAX_JSON_DEPTH} levels deep", path=source)
        elif char in "]}":
            depth = max(0, depth - 1)

    def number(raw: str):
        if len(raw) > MAX_JSON_NUMBER:
            raise BadInput(f"manifest holds a number of {len(raw)} characters", path=source)
        return float(raw) if any(c in raw for c in ".eE") else int(raw)

    return json.loads(text, parse_int=number, parse_float=number)


def read_manifest(path: Path) -> Manifest:
    """Load and validate a manifest; anything malformed is a BadInput naming the manifest."""
    source = str(path)
    try:
        doc = _guarded_json(path.read_bytes().decode("utf-8"), source)
    except FileNotFoundError:
        raise BadInput("manifest not found", path=source) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        raise BadInput(f"manifest is not valid JSON ({getattr(exc, 'msg', exc)})", path=source, line=line) from None
    if not isinstance(doc, dict) or doc.get("kind") != MANIFEST_KIND:
        raise BadInput(f"not a patchq bundle manifest (no \"kind\": \"{MANIFEST_KIND}\")", path=source)
    if doc.get("format_version") != FORMAT_VERSION:
        raise BadInput(f"manifest format_version {doc.get('format_version')!r} is not {FORMAT_VERSION} "
                       "(made by another patchq version)", path=source)

    def text(key: str, pattern: re.Pattern[str] | None = None) -> str:
        value = doc.get(key)
        if not isinstance(value, str) or (pattern is not None and not pattern.match(value)):
            raise BadInput(f"manifest field {key!r} is missing or malformed", path=source)
        return value

    fmt = text("format")
    if fmt not in FORMATS:
        raise BadInput(f"manifest format {fmt!r} is not one of {', '.join(FORMATS)}", path=source)
    stack, upstream = text("stack"), text("upstream")
    for value in (stack, upstream):
        if not SAFE_NAME.match(value):
            raise BadInput(f"manifest names {value!r}, which is not a plain name", path=source)
    files_doc = doc.get("files")
    if not isinstance(files_doc, dict) or not files_doc:
        raise BadInput("manifest field 'files' is missing or empty", path=source)
    files = {}
    for name, digest in files_doc.items():
        files[_safe_relative(name, source=source, what="listed file")] = digest
        if not isinstance(digest, str) or not HEX64.match(digest):
            raise BadInput(f"checksum of {name!r} is not a sha256", path=source)
    patches_doc = doc.get("patches")
    if not isinstance(patches_doc, list):
        raise BadInput("manifest field 'patches' is missing", path=source)
    patches = []
    for item in patches_doc:
        if not isinstance(item, dict):
            raise BadInput("each manifest patch must be an object", path=source)
        values = {k: item.get(k) for k in ("id", "status", "title", "file", "sha256")}
        flags = item.get("flags", [])
        if any(not isinstance(v, str) for v in values.values()) or not isinstance(flags, list) \
                or any(not isinstance(f, str) for f in flags) or not HEX64.match(values["sha256"]):
            raise BadInput(f"manifest patch {item.get('id')!r} is malformed", path=source)
        patches.append(ManifestPatch(values["id"], values["status"], tuple(flags), values["title"],
                                     values["file"], values["sha256"]))
    manifest = Manifest(format=fmt, stack=stack, upstream=upstream, url=text("url"), pin=text("pin", HEX40),
                        base=text("base", HEX40), result_tree=text("result_tree", HEX40),
                        bundle=_safe_relative(text("bundle"), source=source, what="bundle"),
                        content_sha256=text("content_sha256", HEX64), files=files, patches=tuple(patches))
    if doc.get("bundle_sha256", manifest.bundle_sha256) != manifest.bundle_sha256:
        raise BadInput("bundle_sha256 disagrees with the checksum listed under 'files'", path=source)
    return manifest


# ---- exporting ------------------------------------------------------------------------------------------------------

def _refuse_unexportable(loaded: LoadedPatch, outcome: Outcome, pin: str) -> NeedsYou:
    why = {
        OutcomeKind.THREEWAY: "applies only through a 3-way merge",
        OutcomeKind.FUZZ: "applies only with reduced context",
        OutcomeKind.ALREADY_UPSTREAM: "is already upstream (its reverse applies)",
        OutcomeKind.EMPTY: "changes nothing",
        OutcomeKind.CONFLICT: "does not apply",
        OutcomeKind.NOT_REACHED: "was not reached",
    }.get(outcome.kind, outcome.kind.value)
    detail = f" ({outcome.detail})" if outcome.detail else ""
    return NeedsYou(f"cannot export: {loaded.entry.ref} {why} at pin {pin[:12]}{detail}; plain `git apply` in the "
                    "repro folder would fail", path=loaded.source,
                    hint="run 'patchq apply' on the stack, resolve, 'patchq refresh' the patch, then export again")


def plan_export(ws: Workspace, stack_name: str, upstream: str, fmt: str) -> ExportPlan:
    """The bundle, manifest and README snippet for one upstream, after proving the bundle applies at the pin."""
    if fmt not in FORMATS:
        raise BadInput(f"unknown bundle format {fmt!r} (choose one of: {', '.join(FORMATS)})")
    stack = ws.stack(stack_name)
    if not SAFE_NAME.match(stack_name):
        raise BadInput(f"stack name {stack_name!r} cannot be used in a file name (letters, digits, '.', '_', "
                       "'-' only)", path=ws.rel(ws.lock_path))
    if upstream not in stack.upstreams:
        raise BadInput(f"stack {stack_name!r} does not use upstream {upstream!r} (it uses: "
                       f"{', '.join(stack.upstreams)})")
    patches = stack_patches(ws, stack, upstream)
    if not patches:
        raise BadInput(f"stack {stack_name!r} has no patches for upstream {upstream!r}: nothing to export")
    pin = ws.pin_for(stack, upstream)
    base = ensure_base(ws.upstream(upstream), pin, workspace=ws.root)
    run = run_queue(base.repo, base.commit, patches, commit_ref=workspace_ref(ws.root, "stacks", stack_name, upstream))
    for loaded, outcome in zip(patches, run.outcomes):
        if outcome.kind not in PLAIN_APPLY:
            raise _refuse_unexportable(loaded, outcome, base.commit)
    texts = [render_patch_file(loaded.entry, loaded.patch.diff) for loaded in patches]
    for loaded, text in zip(patches, texts):
        read_patch_file(text, source=loaded.source)     # never ship what patchq itself cannot read back
    content = b"".join(texts)
    tree = plain_apply_tree(base.repo, base.commit, content)
    if tree != run.tree:
        raise NeedsYou(f"cannot export {stack_name}: the concatenated {upstream} patches "
                       + ("do not apply with plain `git apply`" if tree is None else
                          f"give tree {tree[:12]} with plain `git apply`, patch by patch gives {run.tree[:12]}")
                       + f" at pin {base.commit[:12]}")
    if fmt == "quilt":
        for loaded in patches:
            if any(section.binary for section in loaded.patch.files):
                raise BadInput(f"{loaded.entry.ref} has a binary diff, which quilt (GNU patch) cannot apply; "
                               "export this stack as gz.b64, mbox or patch", path=loaded.source)
    names = [f"{number:04d}-{loaded.entry.id}.patch" for number, loaded in enumerate(patches, 1)]
    bundle = bundle_name(stack_name, upstream, fmt)
    bundle_files: dict[str, bytes]
    if fmt == "gz.b64":
        bundle_files = {bundle: encode_gz_b64(content)}
    elif fmt == "mbox":
        bundle_files = {bundle: content}
    else:
        bundle_files = {f"{bundle}/{name}": text for name, text in zip(names, texts)}
        if fmt == "quilt":
            bundle_files[f"{bundle}/series"] = "".join(f"{name}\n" for name in names).encode()
    manifest = Manifest(
        format=fmt, stack=stack_name, upstream=upstream, url=ws.upstream(upstream).url, pin=pin, base=base.commit,
        result_tree=run.tree, bundle=bundle, content_sha256=sha256_hex(content),
        files={name: sha256_hex(data) for name, data in bundle_files.items()},
        patches=tuple(ManifestPatch(loaded.entry.id, loaded.entry.status.value, loaded.entry.flags,
                                    loaded.entry.title or loaded.entry.id, name, sha256_hex(text))
                      for loaded, name, text in zip(patches, names, texts)))
    files = dict(bundle_files)
    label = export_label(stack_name, upstream, fmt)
    files[f"{label}.manifest.json"] = manifest_bytes(manifest)
    files[f"{label}.repro.md"] = repro_readme(manifest)
    return ExportPlan(manifest, files, bundle if fmt in ("patch", "quilt") else "", content, base.note)


def plain_apply_tree(repo: Repo, base: str, content: bytes) -> str | None:
    """The tree plain `git apply` makes of `content` on `base` (in a scratch index), or None when it fails."""
    with repo.temp_index(base) as env:
        if not repo.apply(content, cached=True, env=env).ok:
            return None
        return repo.write_tree(env)


def repro_readme(manifest: Manifest) -> bytes:
    """The exact commands that rebuild the stack from this folder."""
    up = manifest.upstream
    clone = (f"git clone {shlex.quote(manifest.url)} {up} && cd {up} && "
             f"git checkout --detach {manifest.base}")
    apply_line = {
        "gz.b64": f'base64 -d "$REPRO/{manifest.bundle}" | gunzip | git apply',
        "mbox": f'git am "$REPRO/{manifest.bundle}"      # or: git apply "$REPRO/{manifest.bundle}"',
        "patch": f'git am "$REPRO/{manifest.bundle}"/*.patch',
        "quilt": f'QUILT_PATCHES="$REPRO/{manifest.bundle}" quilt push -a',
    }[manifest.format]
    tree_line = "git add -A && git write-tree" if manifest.format != "quilt" else \
        "git add -A -- . ':(exclude).pc' && git write-tree"
    listing = "\n".join(f"{n}. `{p.id}` ({p.status}{'; flags ' + ', '.join(p.flags) if p.flags else ''}): "
                        f"{p.title}" for n, p in enumerate(manifest.patches, 1))
    note = ""
    if manifest.base != manifest.pin:
        note = (f"\nThe base {manifest.base} is the commit patchq made from the upstream's release archive for pin "
                f"{manifest.pin}; check out the pin where git hosting is reachable.\n")
    text = f"""# Reproduce stack `{manifest.stack}` on `{up}`

`{manifest.bundle}` holds {len(manifest.patches)} patch{'es' if len(manifest.patches) != 1 else ''} for {up} at
{manifest.base}, made by `patchq export` (manifest: `{manifest.label}.manifest.json`).
{note}
```sh
REPRO="$PWD"    # this folder
{clone}
{apply_line}
{tree_line}    # prints {manifest.result_tree}
```

Patches, in apply order:

{listing}

Verify this folder against the workspace it came from: `patchq export --check "$REPRO" {manifest.stack}`.
"""
    return text.encode("utf-8")


def export_stack(ws: Workspace, stack_name: str, *, out_dir: Path, upstreams: tuple[str, ...] = (),
                 fmt: str = "gz.b64", force: bool = False) -> ExportResult:
    """Write one bundle (plus manifest and README snippet) per upstream of the stack into `out_dir`.

    Every bundle is planned and proven to apply before anything is written; existing files that differ are not
    overwritten without `force`; files that already hold the right bytes are left alone. Other files in `out_dir`
    are never touched.
    """
    stack = ws.stack(stack_name)
    for name in upstreams:
        if name not in stack.upstreams:
            raise BadInput(f"stack {stack_name!r} does not use upstream {name!r} (it uses: "
                           f"{', '.join(stack.upstreams)})")
    chosen = list(upstreams) or list(stack.upstreams)
    skipped = []
    if not upstreams:
        skipped = [u for u in chosen if not ws.stack_entries(stack, u)]
        chosen = [u for u in chosen if u not in skipped]
        if not chosen:
            raise BadInput(f"stack {stack_name!r} has no patches in any of its upstreams: nothing to export")
    plans = [plan_export(ws, stack_name, upstream, fmt) for upstream in chosen]
    if out_dir.exists() and not out_dir.is_dir():
        raise BadInput("is not a folder", path=str(out_dir))
    for plan in plans:
        _check_targets(out_dir, plan, force)
    out_dir.mkdir(parents=True, exist_ok=True)
    bundles = []
    for plan in plans:
        written = _write_plan(out_dir, plan)
        m = plan.manifest
        bundles.append(ExportedBundle(m.upstream, m.pin, m.base, m.result_tree, m.bundle,
                                      f"{m.label}.manifest.json", tuple(p.id for p in m.patches), tuple(written),
                                      plan.base_note))
    return ExportResult(stack_name, str(out_dir), fmt, tuple(bundles), tuple(skipped))


def _previous_export(out_dir: Path, plan: ExportPlan) -> dict[str, str]:
    """Files this folder holds from an earlier export of the same bundle, untouched since: path -> sha256.

    Those may be replaced without --force (re-exporting after the queue changed is the normal case); anything
    else that is in the way, a file someone edited or someone else's, is refused.
    """
    label = plan.manifest.label
    path = out_dir / f"{label}.manifest.json"
    if not path.is_file() or path.is_symlink():
        return {}
    try:
        old = read_manifest(path)
    except BadInput:
        return {}
    if (old.stack, old.upstream, old.format) != (plan.manifest.stack, plan.manifest.upstream, plan.manifest.format):
        return {}
    owned = dict(old.files)
    owned[f"{label}.manifest.json"] = sha256_hex(path.read_bytes())
    owned[f"{label}.repro.md"] = sha256_hex(repro_readme(old))
    return owned


def _check_targets(out_dir: Path, plan: ExportPlan, force: bool) -> None:
    """Refuse before writing anything: a different file in the way, or stray files in a folder the export owns."""
    owned = {} if force else _previous_export(out_dir, plan)

    def replaceable(rel: str, current: bytes) -> bool:
        return force or owned.get(rel) == sha256_hex(current)

    if plan.folder:
        folder = out_dir / plan.folder
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise BadInput("is in the way (not a folder); move it aside", path=str(folder))
        if folder.is_dir():
            wanted = {rel.split("/", 1)[1] for rel in plan.files if rel.startswith(plan.folder + "/")}
            stray = sorted(p.name for p in folder.iterdir() if p.name not in wanted and not (
                p.is_file() and not p.is_symlink() and replaceable(f"{plan.folder}/{p.name}", p.read_bytes())))
            if stray:
                raise BadInput(f"holds files this export would not write ({', '.join(stray[:4])}"
                               f"{', ...' if len(stray) > 4 else ''})", path=str(folder),
                               hint="pass --force to replace the folder, or export into another folder")
    for rel, data in plan.files.items():
        target = out_dir / rel
        if target.is_symlink() or (target.exists() and not target.is_file()):
            raise BadInput("is in the way (not a regular file); move it aside", path=str(target))
        if target.exists():
            current = target.read_bytes()
            if current != data and not replaceable(rel, current):
                raise BadInput("exists with different content that an earlier export of this bundle did not "
                               "write; refusing to overwrite it", path=str(target),
                               hint="pass --force to replace it, or export into another folder")


def _write_file(target: Path, data: bytes) -> str:
    if target.is_file() and not target.is_symlink() and target.read_bytes() == data:
        action = "unchanged"
    else:
        atomic_write(target, data)
        action = "written"
    os.chmod(target, FILE_MODE)            # atomic_write keeps an old file's mode; a bundle's mode is fixed
    return action


def _write_plan(out_dir: Path, plan: ExportPlan) -> list[WrittenFile]:
    written: list[WrittenFile] = []
    if plan.folder:
        written.extend(_write_folder(out_dir, plan))
    for rel, data in plan.files.items():
        if plan.folder and rel.startswith(plan.folder + "/"):
            continue
        written.append(WrittenFile(rel, sha256_hex(data), _write_file(out_dir / rel, data)))
    return written


def _write_folder(out_dir: Path, plan: ExportPlan) -> list[WrittenFile]:
    """A folder format's files: built aside and renamed into place, unless the folder already holds exactly them."""
    folder = out_dir / plan.folder
    inside = {rel.split("/", 1)[1]: data for rel, data in plan.files.items() if rel.startswith(plan.folder + "/")}
    if folder.is_dir() and sorted(p.name for p in folder.iterdir()) == sorted(inside) and all(
            (folder / name).read_bytes() == data for name, data in inside.items()):
        os.chmod(folder, DIR_MODE)
        for name in inside:
            os.chmod(folder / name, FILE_MODE)
        return [WrittenFile(f"{plan.folder}/{name}", sha256_hex(data), "unchanged") for name, data in inside.items()]
    fresh = Path(tempfile.mkdtemp(prefix=f".{plan.folder}.", dir=out_dir))
    old = None
    try:
        for name, data in inside.items():
            (fresh / name).write_bytes(data)
            os.chmod(fresh / name, FILE_MODE)
        os.chmod(fresh, DIR_MODE)
        if folder.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{plan.folder}.old.", dir=out_dir))
            os.replace(folder, old / "x")
        os.replace(fresh, folder)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return [WrittenFile(f"{plan.folder}/{name}", sha256_hex(data), "written") for name, data in inside.items()]


# ---- checking a repro folder ----------------------------------------------------------------------------------------

def check_export(ws: Workspace, out_dir: Path, *, stack_name: str | None = None,
                 limit: int = DEFAULT_LIMIT) -> ExportCheck:
    """Verify every patchq bundle in `out_dir` against the workspace, one report per bundle.

    Per bundle: its files match the manifest's checksums, the manifest's pin is the one in pins.lock, the bundle
    equals what exporting now would write (so a changed queue is caught, patch by patch), and the shipped stream
    still applies at its base to the recorded tree. Unreadable manifests or bundles raise BadInput (exit 2).
    """
    if not out_dir.is_dir():
        raise BadInput("is not a folder", path=str(out_dir))
    manifests = []
    for path in sorted(out_dir.glob("*.manifest.json")):
        try:
            doc = _guarded_json(path.read_bytes().decode("utf-8"), str(path))
        except (ValueError, UnicodeDecodeError, BadInput):
            doc = {"kind": MANIFEST_KIND}             # unreadable: let read_manifest say why
        if not isinstance(doc, dict) or doc.get("kind") != MANIFEST_KIND:
            continue                                  # someone else's manifest in a shared folder
        manifest = read_manifest(path)
        if stack_name is None or manifest.stack == stack_name:
            manifests.append((path, manifest))
    if not manifests:
        which = f" for stack {stack_name!r}" if stack_name else ""
        raise BadInput(f"no patchq bundle manifests{which} (*.manifest.json)", path=str(out_dir))
    return ExportCheck(str(out_dir), tuple(_check_one(ws, out_dir, path, m, limit) for path, m in manifests))


def _shipped_stream(out_dir: Path, manifest: Manifest, limit: int) -> tuple[bytes, list[Finding]]:
    """The decoded stream as shipped, plus findings for files that are missing, stray or not as listed."""
    findings = []
    for rel, digest in sorted(manifest.files.items()):
        target = out_dir / rel
        if not target.is_file():
            findings.append(Finding("missing", f"{rel} is listed in the manifest but missing", str(target)))
            continue
        got = sha256_hex(target.read_bytes())
        if got != digest:
            findings.append(Finding("checksum", f"{rel} has sha256 {got[:16]}…, the manifest says {digest[:16]}… "
                                    "(changed after export)", str(target)))
    bundle = out_dir / manifest.bundle
    if manifest.format in ("patch", "quilt"):
        if bundle.is_dir():
            listed = {rel.split("/", 1)[1] for rel in manifest.files}
            for extra in sorted(p.name for p in bundle.iterdir() if p.name not in listed):
                findings.append(Finding("stray", f"{manifest.bundle}/{extra} is not part of the bundle",
                                        str(bundle / extra)))
        names = [p.file for p in manifest.patches]
        if manifest.format == "quilt" and (bundle / "series").is_file():
            names = [ln.strip() for ln in (bundle / "series").read_text("utf-8", "replace").splitlines()
                     if ln.strip() and not ln.startswith("#")]
        parts = []
        for name in names:
            piece = bundle / _safe_relative(name, source=str(bundle / "series"), what="series entry")
            if piece.is_file():
                parts.append(read_bundle(piece, limit=limit).content)
        return b"".join(parts), findings
    if not bundle.is_file():
        return b"", findings
    return read_bundle(bundle, limit=limit).content, findings


def _patch_changes(old: Manifest, new: Manifest) -> list[str]:
    """Which patches differ between the shipped manifest and an export made now, by id."""
    before = {p.id: p for p in old.patches}
    after = {p.id: p for p in new.patches}
    out = []
    for pid in after:
        if pid not in before:
            out.append(f"{pid} was added to the stack")
    for pid, p in before.items():
        if pid not in after:
            out.append(f"{pid} is no longer in the stack")
            continue
        q = after[pid]
        if q.sha256 != p.sha256:
            what = [name for name, a, b in (("status", p.status, q.status), ("flags", p.flags, q.flags),
                                            ("title", p.title, q.title)) if a != b]
            out.append(f"{pid} changed" + (f" ({', '.join(what)})" if what else " (diff or description)"))
    common = [p.id for p in old.patches if p.id in after]
    if common != [p.id for p in new.patches if p.id in before]:
        out.append("the patches are in a different order")
    return out


def _check_one(ws: Workspace, out_dir: Path, path: Path, manifest: Manifest, limit: int) -> BundleCheck:
    stream, findings = _shipped_stream(out_dir, manifest, limit)
    shipped: tuple[PatchFile, ...] = ()
    if stream:                                   # unreadable pieces or unsafe paths stop here with exit 2
        shipped = parse_patch_stream(stream, source=str(out_dir / manifest.bundle), encoded=True)
    findings.extend(_workspace_findings(ws, out_dir, path, manifest, stream, shipped))
    if stream:
        findings.extend(_apply_findings(ws, out_dir, path, manifest, stream))
    return BundleCheck(str(path), manifest.stack, manifest.upstream, manifest.format, manifest.bundle,
                       tuple(findings))


def _workspace_findings(ws: Workspace, out_dir: Path, path: Path, manifest: Manifest, stream: bytes,
                        shipped: tuple[PatchFile, ...]) -> list[Finding]:
    """The pin and the queue now, against what the folder ships.

    A gz.b64 whose decoded content is exactly what export makes now, but whose bytes differ, was compressed by
    another deflate implementation (zlib-ng, say): a warning, not a mismatch, and so is its manifest's checksum.
    """
    stack = ws.stacks.get(manifest.stack)
    if stack is None or manifest.upstream not in ws.upstreams or manifest.upstream not in stack.upstreams:
        return [Finding("unknown", f"the workspace has no stack {manifest.stack!r} using upstream "
                        f"{manifest.upstream!r}", str(path))]
    findings = []
    pin = ws.pin_for(stack, manifest.upstream)
    if pin != manifest.pin:
        findings.append(Finding("pin", f"the manifest pins {manifest.upstream} at {manifest.pin[:12]}, pins.lock "
                                f"now says {pin[:12]}", str(path)))
    try:
        plan = plan_export(ws, manifest.stack, manifest.upstream, manifest.format)
    except NeedsYou as exc:
        findings.append(Finding("stale", f"exporting now fails: {exc.message}", exc.path or str(path)))
        return findings
    changes = _patch_changes(manifest, plan.manifest)
    for change in changes:
        findings.append(Finding("stale", f"the queue changed since export: {change}", str(path)))
    reencoded = manifest.format == "gz.b64" and not changes and sha256_hex(stream) == plan.manifest.content_sha256
    named = [] if changes or not stream else _shipped_patch_changes(shipped, plan.manifest)
    for change in named:
        findings.append(Finding("stale", f"the shipped bundle differs from the queue: {change}",
                                str(out_dir / manifest.bundle)))
    for rel, data in sorted(plan.files.items()):
        target = out_dir / rel
        current = target.read_bytes() if target.is_file() else None
        if current == data or (named and rel in plan.manifest.files):
            continue
        if rel.endswith(".repro.md"):
            findings.append(Finding("readme", f"{rel} differs from what export writes now", str(target),
                                    severity="warning"))
        elif reencoded and rel == plan.manifest.bundle:
            findings.append(Finding("encoding", f"{rel} holds exactly the patches export makes now, compressed to "
                                    "other bytes (another zlib build?)", str(target), severity="warning"))
        elif reencoded and rel == f"{plan.manifest.label}.manifest.json" and current is not None \
                and _same_but_checksums(current, plan.manifest):
            continue
        elif current is not None and not changes:
            findings.append(Finding("stale", f"{rel} differs from what exporting now would write", str(target)))
    return findings


def _shipped_patch_changes(shipped: tuple[PatchFile, ...], expected: Manifest) -> list[str]:
    """Which patches of the shipped stream differ from the ones export makes now, by id."""
    have = {}
    for patch in shipped:
        have[patch.trailer("Patchq-Id") or "(no Patchq-Id)"] = sha256_hex(patch.head + patch.diff + patch.tail)
    want = {p.id: p.sha256 for p in expected.patches}
    out = [f"{pid} is not the same" for pid, digest in want.items() if pid in have and have[pid] != digest]
    out += [f"{pid} is missing from it" for pid in want if pid not in have]
    out += [f"it holds {pid}, which the stack does not" for pid in have if pid not in want]
    if not out and [p for p in have] != [p.id for p in expected.patches]:
        out.append("its patches are in another order")
    return out


def _same_but_checksums(current: bytes, expected: Manifest) -> bool:
    """Two manifests that differ only in the checksums of the bundle file."""
    try:
        doc, want = _guarded_json(current.decode("utf-8"), "manifest"), json.loads(manifest_bytes(expected))
    except (ValueError, BadInput):
        return False
    for key in ("files", "bundle_sha256"):
        doc.pop(key, None)
        want.pop(key, None)
    return doc == want


def _apply_findings(ws: Workspace, out_dir: Path, path: Path, manifest: Manifest, stream: bytes) -> list[Finding]:
    """Does the shipped stream still apply with plain `git apply` at its base, to the recorded tree?"""
    upstream = ws.upstreams.get(manifest.upstream)
    if upstream is None:
        return []
    where = str(out_dir / manifest.bundle)
    try:
        if manifest.base == manifest.pin:
            repo = ensure_mirror(upstream, workspace=ws.root, need=(manifest.base,))
        else:
            base = ensure_base(upstream, manifest.pin, workspace=ws.root)
            if base.commit != manifest.base:
                return [Finding("base", f"base commit {manifest.base[:12]} cannot be made here (the archive for "
                                f"pin {manifest.pin[:12]} gives {base.commit[:12]})", str(path))]
            repo = base.repo
    except BadInput as exc:
        return [Finding("base", f"base commit {manifest.base[:12]} is not available: {exc.message}", str(path))]
    tree = plain_apply_tree(repo, manifest.base, stream)
    if tree is None:
        return [Finding("apply", f"{manifest.bundle} does not apply with plain `git apply` at "
                        f"{manifest.base[:12]}", where)]
    if tree != manifest.result_tree:
        return [Finding("apply", f"{manifest.bundle} gives tree {tree[:12]} at {manifest.base[:12]}, the manifest "
                        f"records {manifest.result_tree[:12]}", where)]
    return []
