"""Before an import: the upstreams and stacks that exported bundles name, created from their manifests.

`patchq export` writes one manifest per upstream (stack, upstream, url, pin, patches). Importing such a folder into
a workspace that lacks them used to skip every patch ("no upstream") and lose the stack; now the missing upstreams
are added to pins.lock with the manifest's url and pin, and a missing stack with the manifest upstreams (in the order
the manifests are found) and the statuses its patches carry. Existing upstreams and stacks are left as they are.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from .bundle import Manifest, read_manifest
from .errors import BadInput
from .model import FULL_SHA, UPSTREAM_NAME, Stack, Status, Upstream
from .txn import Txn
from .workspace import LOCK_NAME, Workspace


@dataclass(frozen=True)
class ManifestSetup:
    """What the manifests among an import's inputs add to the workspace."""

    upstreams: tuple[Upstream, ...] = ()
    stacks: tuple[Stack, ...] = ()
    sources: tuple[str, ...] = ()          # the manifests read

    @property
    def empty(self) -> bool:
        return not (self.upstreams or self.stacks)

    def sentences(self) -> list[str]:
        out = [f"added upstream {u.name} ({u.url} @ {u.pin[:12]}) from its bundle's manifest" for u in self.upstreams]
        out += [f"added stack {s.name} ({', '.join(s.upstreams)}; include {', '.join(x.value for x in s.include)}) "
                "from its bundles' manifests" for s in self.stacks]
        return out


def manifests_in(paths: Sequence[Path]) -> list[tuple[Path, Manifest]]:
    """Every `*.manifest.json` among the inputs (folders walked in name order, symlinks not followed)."""
    found: list[Path] = []
    for path in paths:
        if path.is_file() and path.name.endswith(".manifest.json"):
            found.append(path)
        elif path.is_dir() and not path.is_symlink():
            for folder, dirs, files in os.walk(path):
                dirs.sort()
                found.extend(Path(folder) / f for f in sorted(files) if f.endswith(".manifest.json"))
    out = []
    for path in found:
        try:
            out.append((path, read_manifest(path)))
        except BadInput:
            continue                 # the import itself reports a malformed manifest against its bundle
    return out


def plan_setup(ws: Workspace, paths: Sequence[Path]) -> ManifestSetup:
    """The upstreams and stacks the inputs' manifests name that the workspace does not have."""
    manifests = manifests_in(paths)
    upstreams: dict[str, Upstream] = {}
    stacks: dict[str, tuple[list[str], set[Status]]] = {}
    for _, manifest in manifests:
        name = manifest.upstream
        if name not in ws.upstreams and name not in upstreams:
            if not UPSTREAM_NAME.match(name) or not FULL_SHA.match(manifest.pin) or not manifest.url:
                continue
            upstreams[name] = Upstream(name=name, url=manifest.url, pin=manifest.pin)
        if manifest.stack in ws.stacks or not UPSTREAM_NAME.match(manifest.stack):
            continue
        ups, statuses = stacks.setdefault(manifest.stack, ([], set()))
        if name not in ups:
            ups.append(name)
        for patch in manifest.patches:
            try:
                statuses.add(Status.parse(patch.status))
            except ValueError:
                continue
    made = tuple(Stack(name=name, upstreams=tuple(ups),
                       include=tuple(s for s in Status if s in statuses) or (Status.PROMOTED,))
                 for name, (ups, statuses) in stacks.items())
    return ManifestSetup(tuple(upstreams.values()), made, tuple(str(p) for p, _ in manifests))


def with_setup(ws: Workspace, setup: ManifestSetup) -> Workspace:
    """The workspace as it is once `setup` is written (for a dry run, which writes nothing)."""
    return replace(ws, upstreams={**ws.upstreams, **{u.name: u for u in setup.upstreams}},
                   stacks={**ws.stacks, **{s.name: s for s in setup.stacks}})


def write_setup(ws: Workspace, t: Txn, setup: ManifestSetup) -> Workspace:
    """Stage the upstreams and stacks into pins.lock (comments kept; checked by loading) and return the workspace
    as it will be once `t` commits."""
    from .metadata import StackChange, add_upstream_node, stage_stack
    for upstream in setup.upstreams:
        ws = add_upstream_node(ws, t, upstream)
    for stack in setup.stacks:
        ws = stage_stack(ws, t, stack.name, StackChange(upstreams=stack.upstreams,
                                                        include=tuple(s.value for s in stack.include)), create=True)
    return ws


@contextlib.contextmanager
def prepared_import(ws: Workspace, paths: Sequence[Path], *, dry_run: bool) -> Iterator[tuple[Workspace, list[str]]]:
    """The workspace an import should run on, with what the inputs' manifests add, and sentences saying what.

    The additions are written to pins.lock under the workspace lock before the import (which reloads the workspace
    under its own lock) starts. A dry run writes nothing: it runs on a scratch copy of pins.lock beside links to the
    queues, so the import's own check of the result sees the upstreams it would add.
    """
    setup = plan_setup(ws, paths)
    if setup.empty:
        yield ws, []
        return
    from .txn import workspace_txn
    from .workspace import load_workspace
    if not dry_run:
        with workspace_txn(ws.root, "import (upstreams and stacks from manifests)") as (fresh, t):
            setup = plan_setup(fresh, paths)
            done = write_setup(fresh, t, setup) if not setup.empty else fresh
        yield done, setup.sentences()
        return
    with tempfile.TemporaryDirectory(prefix="patchq-import-dry-") as tmp:
        scratch = Path(tmp)
        (scratch / LOCK_NAME).write_bytes(_absolute_urls(ws))
        for name in ("queues", "kernels"):
            if (ws.root / name).exists():
                (scratch / name).symlink_to(ws.root / name)
        t = Txn(scratch, "import --dry-run (scratch pins.lock)")
        staged = write_setup(load_workspace(scratch), t, setup)
        t.commit()
        yield staged, [f"would have {s[len('added '):]}" for s in setup.sentences()]


def _absolute_urls(ws: Workspace) -> bytes:
    """pins.lock with relative local upstream urls made absolute (they are relative to the workspace)."""
    from .yamlio import dump as dump_yaml, editable as _editable
    doc = _editable(ws.lock_doc, ws.lock_path, LOCK_NAME)
    for node in (doc.get("upstreams") or {}).values():
        url = str(node.get("url", ""))
        if url and "://" not in url and not url.startswith(("git@", "file:")) and not Path(url).is_absolute():
            node["url"] = str(ws.root / url)
    return dump_yaml(doc)
