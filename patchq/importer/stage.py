"""Staging and writing: the result staged, loaded back as a workspace, then moved in under a journal."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from ..crashtest import file_operation
from ..errors import BadInput
from ..workspace import LOCK_NAME, SERIES_NAME, STATE_DIR, Workspace, load_workspace, series_bytes, write_atomic
from .plan import Plan


def stage_and_write(ws: Workspace, plan: Plan, *, dry_run: bool) -> None:
    """Stage the result beside the workspace's own files, load it back as a workspace, then move it in.

    New files never replace existing ones; series.yaml files are replaced last. If anything fails while moving,
    the files already moved are removed and the old series files restored, so the workspace is as it was.
    """
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
            write_atomic(target, data)
            staged[rel] = target
            if rel.startswith("queues/") and rel.count("/") == 2:
                _link_or_copy(target, stage / rel)
        replaced: dict[str, Path] = {}
        for rel, data in plan.updates.items():          # import --update: existing patch files, new diffs
            if not (ws.root / rel).is_file():
                raise BadInput(f"{rel} disappeared while importing", path=rel)
            target = stage / "replaced" / rel
            write_atomic(target, data)
            replaced[rel] = target
            view = stage / rel
            with contextlib.suppress(FileNotFoundError):
                view.unlink()
            _link_or_copy(target, view)
        staged_series = {}
        for name, data in series_data.items():
            target = stage / "new-series" / name / SERIES_NAME
            write_atomic(target, data)
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
        if dry_run:
            return
        _move_in(ws, staged, staged_series, replaced)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _unstage(path: str | None, stage: Path) -> str | None:
    if path and path.startswith(str(stage)):
        return os.path.relpath(path, stage)
    return path


def _link_or_copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


IMPORT_JOURNAL = "import-journal.json"


def _move_in(ws: Workspace, staged: dict[str, Path], staged_series: dict[str, Path],
             replaced: dict[str, Path] | None = None) -> None:
    """Move the staged files in, under a journal that lets a later import undo a move a kill interrupted.

    The journal (in `.patchq/`) names every file about to be created, every folder about to be made and the old
    bytes of every series.yaml about to be replaced; it is removed once all moves are done. Until then the import
    is not committed: an error here undoes it at once, and `kill -9` leaves the journal for the next import.
    """
    made_dirs: list[str] = []
    for rel in staged:
        for parent in reversed(Path(rel).parents):
            if str(parent) not in (".", "") and not (ws.root / parent).exists() and str(parent) not in made_dirs:
                made_dirs.append(str(parent))
    old_series = {}
    for name in staged_series:
        target = ws.queue_dir(name) / SERIES_NAME
        old_series[str(target.relative_to(ws.root))] = (
            base64.b64encode(target.read_bytes()).decode() if target.exists() else None)
    for rel in replaced or {}:                       # replaced patch files are undone like series files
        old_series[rel] = base64.b64encode((ws.root / rel).read_bytes()).decode()
    journal = {"created": sorted(staged), "made_dirs": made_dirs, "old_series": old_series}
    journal_path = ws.root / STATE_DIR / IMPORT_JOURNAL
    write_atomic(journal_path, json.dumps(journal, indent=1, sort_keys=True).encode())
    try:
        for rel, source in staged.items():
            target = ws.root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                raise BadInput(f"{rel} appeared while importing; import never overwrites a file", path=rel)
            os.replace(source, target)
            file_operation()
        for rel, source in (replaced or {}).items():
            os.replace(source, ws.root / rel)
            file_operation()
        for name, source in staged_series.items():
            os.replace(source, ws.queue_dir(name) / SERIES_NAME)
            file_operation()
    except BaseException:
        _undo_import(ws.root, journal)
        raise
    journal_path.unlink()                      # the commit point: the import is complete


def _undo_import(root: Path, journal: dict) -> None:
    for rel, data in journal["old_series"].items():
        if data is None:
            with contextlib.suppress(FileNotFoundError):
                (root / rel).unlink()
        elif (root / rel).read_bytes() != base64.b64decode(data):
            write_atomic(root / rel, base64.b64decode(data))
    for rel in journal["created"]:
        with contextlib.suppress(FileNotFoundError):
            (root / rel).unlink()
    for rel in reversed(journal["made_dirs"]):
        with contextlib.suppress(OSError):
            (root / rel).rmdir()
    with contextlib.suppress(FileNotFoundError):
        (root / STATE_DIR / IMPORT_JOURNAL).unlink()


def recover_interrupted_import(root: Path) -> bool:
    """Undo an import that was killed while moving its files in: the workspace goes back to before it."""
    path = root / STATE_DIR / IMPORT_JOURNAL
    try:
        journal = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(journal, dict) or not {"created", "made_dirs", "old_series"} <= set(journal):
            raise ValueError("not an import journal")
    except FileNotFoundError:
        return False
    except (OSError, ValueError) as exc:
        raise BadInput(f"unreadable journal of an interrupted import ({exc}); inspect and remove it",
                       path=str(path)) from None
    _undo_import(root, journal)
    return True
