"""`patchq export`: a stack's patches written as bundles (gz.b64, mbox, a folder of patch files or a quilt series),
one per upstream, each with its manifest and a README snippet of the commands that rebuild it.

Every bundle is planned in memory and proven to apply with plain `git apply` at the pin before anything is
written, so a repro folder never ships what its own instructions cannot reproduce.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .apply import stack_patches
from .bundle import (
    FORMATS,
    SAFE_NAME,
    Manifest,
    ManifestPatch,
    bundle_name,
    encode_gz_b64,
    export_label,
    manifest_bytes,
    read_manifest,
    sha256_hex,
)
from .errors import BadInput, NeedsYou
from .git import Repo
from .model import Outcome, OutcomeKind
from .patchfile import read_patch_file, render_patch_file
from .queuerun import LoadedPatch, run_queue
from .sources import ensure_base, workspace_ref
from .txn import atomic_write, publish
from .workspace import Workspace

FILE_MODE = 0o644
DIR_MODE = 0o755
# Outcomes that plain `git apply` reproduces; a 3-way merge, fuzz or a reverse-applying patch would make the
# pipeline fail in the repro folder even though `patchq apply` copes.
PLAIN_APPLY = (OutcomeKind.CLEAN, OutcomeKind.OFFSET)


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
        publish(fresh, folder)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return [WrittenFile(f"{plan.folder}/{name}", sha256_hex(data), "written") for name, data in inside.items()]
