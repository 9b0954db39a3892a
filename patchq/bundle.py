"""`.patch.gz.b64` bundles: base64 of gzip of a stack's patches, as reproduction folders ship them.

Encoding is deterministic (no file name or mtime in the gzip header, fixed level, fixed 76-column wrapping), so the
same queue gives the same bytes on every machine and `base64 -d X | gunzip | git apply` works on it. Decoding is
bounded: a gzip bomb stops at the size limit instead of filling memory.

The manifest beside a bundle records the pin, each patch's checksum and the result tree; `read_bundle` reads a
bundle back into patch files, checked against its manifest. Writing bundles is `export.py`'s, checking a repro
folder against the workspace `export_check.py`'s.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

from .errors import BadInput
from .patchfile import PatchFile, read_patch_file
from .patchtext import split_mbox

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
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
HEX40 = re.compile(r"^[0-9a-f]{40}$")


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


def safe_relative(name: object, *, source: str, what: str) -> str:
    if not isinstance(name, str) or not name:
        raise BadInput(f"{what} must be a file name", path=source)
    parts = name.split("/")
    if len(parts) > 2 or any(not SAFE_NAME.match(p) for p in parts):
        raise BadInput(f"{what} {name!r} is not a plain name inside the export folder", path=source)
    return name


MAX_JSON_DEPTH = 32
MAX_JSON_NUMBER = 64          # digits: a manifest holds counts and sizes, never a 5,000-digit number


def guarded_json(text: str, source: str) -> object:
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

    def number(raw: str) -> int | float:
        if len(raw) > MAX_JSON_NUMBER:
            raise BadInput(f"manifest holds a number of {len(raw)} characters", path=source)
        return float(raw) if any(c in raw for c in ".eE") else int(raw)

    return json.loads(text, parse_int=number, parse_float=number)


def read_manifest(path: Path) -> Manifest:
    """Load and validate a manifest; anything malformed is a BadInput naming the manifest."""
    source = str(path)
    try:
        doc = guarded_json(path.read_bytes().decode("utf-8"), source)
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
        files[safe_relative(name, source=source, what="listed file")] = digest
        if not isinstance(digest, str) or not HEX64.match(digest):
            raise BadInput(f"checksum of {name!r} is not a sha256", path=source)
    patches_doc = doc.get("patches")
    if not isinstance(patches_doc, list):
        raise BadInput("manifest field 'patches' is missing", path=source)
    patches = []
    for item in patches_doc:
        if not isinstance(item, dict):
            raise BadInput("each manifest patch must be an object", path=source)
        raw = {k: item.get(k) for k in ("id", "status", "title", "file", "sha256")}
        flags = item.get("flags", [])
        values = {k: v for k, v in raw.items() if isinstance(v, str)}
        if len(values) != len(raw) or not isinstance(flags, list) \
                or any(not isinstance(f, str) for f in flags) or not HEX64.match(values["sha256"]):
            raise BadInput(f"manifest patch {item.get('id')!r} is malformed", path=source)
        patches.append(ManifestPatch(values["id"], values["status"], tuple(flags), values["title"],
                                     values["file"], values["sha256"]))
    manifest = Manifest(format=fmt, stack=stack, upstream=upstream, url=text("url"), pin=text("pin", HEX40),
                        base=text("base", HEX40), result_tree=text("result_tree", HEX40),
                        bundle=safe_relative(text("bundle"), source=source, what="bundle"),
                        content_sha256=text("content_sha256", HEX64), files=files, patches=tuple(patches))
    if doc.get("bundle_sha256", manifest.bundle_sha256) != manifest.bundle_sha256:
        raise BadInput("bundle_sha256 disagrees with the checksum listed under 'files'", path=source)
    return manifest
