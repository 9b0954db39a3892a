"""Staging and writing: the result staged, loaded back as a workspace, then committed by the import's transaction."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import BadInput
from ..txn import Txn
from ..workspace import LOCK_NAME, SERIES_NAME, STATE_DIR, Workspace, load_workspace, series_bytes
from .plan import Plan


def stage_and_write(ws: Workspace, t: Txn | None, plan: Plan) -> None:
    """Stage the result beside the workspace's own files, load it back as a workspace, then stage it on `t`.

    New files never replace existing ones. Without `t` (a dry run) the check is all: nothing is written.
    """
    dry_run = t is None
    series_data = {name: series_bytes(ws, name, entries) for name, entries in plan.series.items()}
    for rel in plan.files:
        if (ws.root / rel).exists():
            raise BadInput(f"{rel} already exists; import never overwrites a file", path=rel)
    parent = None if dry_run else ws.root / STATE_DIR
    if parent is not None:
        parent.mkdir(exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix="patchq-import-", dir=parent))
    try:
        _link_or_copy(ws.root / LOCK_NAME, stage / LOCK_NAME)
        for name in ws.upstreams:
            folder = ws.queue_dir(name)
            if folder.is_dir():
                for child in folder.iterdir():
                    if child.is_file():
                        _link_or_copy(child, stage / "queues" / name / child.name)
        staged: dict[str, Path] = {}
        for rel, data in plan.files.items():
            target = stage / "new" / rel
            _write(target, data)
            staged[rel] = target
            if rel.startswith("queues/") and rel.count("/") == 2:
                _link_or_copy(target, stage / rel)
        replaced: dict[str, Path] = {}
        for rel, data in plan.updates.items():          # import --update: existing patch files, new diffs
            if not (ws.root / rel).is_file():
                raise BadInput(f"{rel} disappeared while importing", path=rel)
            target = stage / "replaced" / rel
            _write(target, data)
            replaced[rel] = target
            view = stage / rel
            with contextlib.suppress(FileNotFoundError):
                view.unlink()
            _link_or_copy(target, view)
        staged_series = {}
        for name, data in series_data.items():
            target = stage / "new-series" / name / SERIES_NAME
            _write(target, data)
            staged_series[name] = target
            view = stage / "queues" / name / SERIES_NAME
            with contextlib.suppress(FileNotFoundError):
                view.unlink()
            _link_or_copy(target, view)
        try:
            load_workspace(stage)
        except BadInput as exc:
            raise BadInput(f"the imported queues would not load: {exc.message}",
                           path=_unstage(exc.path, stage), line=exc.line) from None
        if t is not None:
            _move_in(t, staged, staged_series, replaced)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _unstage(path: str | None, stage: Path) -> str | None:
    if path and path.startswith(str(stage)):
        return os.path.relpath(path, stage)
    return path


def _write(path: Path, data: bytes) -> None:
    """A file of the scratch view (thrown away after the check; the transaction makes the real writes durable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _link_or_copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def _move_in(t: Txn, staged: dict[str, Path], staged_series: dict[str, Path], replaced: dict[str, Path]) -> None:
    """Stage the checked files on the import's transaction: new files (never overwriting one that appeared
    meanwhile), replaced patch files, series.yaml files last; the transaction commits them together."""
    for rel, source in staged.items():
        t.write(rel, source.read_bytes(), create=True)
    for rel, source in replaced.items():
        t.write(rel, source.read_bytes())
    for name, source in staged_series.items():
        t.write(f"queues/{name}/{SERIES_NAME}", source.read_bytes())
