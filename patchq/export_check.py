"""`patchq export --check`: a repro folder verified against the workspace, one report per bundle.

Per bundle: its files match the manifest's checksums, the manifest's pin is the one in pins.lock, the bundle is
what exporting now would write (a changed queue is named patch by patch), and the shipped stream still applies at
its base to the recorded tree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .bundle import (
    DEFAULT_LIMIT,
    MANIFEST_KIND,
    Manifest,
    guarded_json,
    manifest_bytes,
    parse_patch_stream,
    read_bundle,
    read_manifest,
    safe_relative,
    sha256_hex,
)
from .errors import BadInput, NeedsYou
from .export import plain_apply_tree, plan_export
from .model import Finding
from .patchfile import PatchFile
from .sources import ensure_base, ensure_mirror
from .workspace import Workspace


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
            doc = guarded_json(path.read_bytes().decode("utf-8"), str(path))
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
            piece = bundle / safe_relative(name, source=str(bundle / "series"), what="series entry")
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
        doc, want = guarded_json(current.decode("utf-8"), "manifest"), json.loads(manifest_bytes(expected))
    except (ValueError, BadInput):
        return False
    if not isinstance(doc, dict) or not isinstance(want, dict):
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
