"""The content-addressed build cache: keys, the on-disk store, lookups and the last-good pointers.

The key hashes the recipe, the bytes of every input file and the toolchain facts, so a Python-only change never
starts a native build and a torch upgrade invalidates exactly the targets that record torch. Outputs are copied
into `objects/<key>/` through a temporary folder renamed into place: a failed or killed build never leaves a partial
object, and `last-good/<target>.json` keeps pointing at the previous good one. Layout under the cache folder:

    objects/<key>/<outputs as laid out in the source tree> + meta.json
    logs/<target>/<UTC timestamp>-<key[:12]>.log
    last-good/<target>.json          {"key": ..., "outputs": [...]}, replaced atomically
    locks/<target>.lock              one build of a target at a time
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import hashlib
import json
import os
import platform
import secrets
import shutil
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..digest import sha256_file
from ..errors import EnvironmentFailure
from ..git import Repo, toplevel
from ..txn import atomic_write, publish
from .recipe import OutputSpec, Recipe

CACHE_SCHEMA = 1


def list_inputs(recipe: Recipe, source_dir: str | Path) -> list[str]:
    """Files of the tree that feed the target, sorted, as paths relative to `source_dir`."""
    root = Path(source_dir)
    return sorted(p for p in _tree_files(root) if recipe.is_input(p))


def _tree_files(root: Path) -> list[str]:
    """What git tracks or would track (build products it ignores stay out); every file when not a git tree."""
    listed = _git_listed_files(root)
    if listed is not None:
        return [p for p in listed if os.path.lexists(root / p)]
    files: list[str] = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".git"]
        rel = os.path.relpath(folder, root)
        files.extend(n if rel == "." else f"{rel}/{n}".replace(os.sep, "/") for n in names)
    return files


def _git_listed_files(root: Path) -> list[str] | None:
    """Only when `root` is the top of its own work tree: inside another repository git would list that one's."""
    top = toplevel(root)
    if top is None or top.resolve() != root.resolve():
        return None
    return Repo(root).tracked_and_untracked_files()


def recipe_fingerprint(recipe: Recipe) -> dict[str, Any]:
    """The parts of a recipe that can change what it produces (not its description, hints or launcher)."""
    data = dataclasses.asdict(recipe)
    for key in ("description", "resources", "launcher", "build_by_default", "path", "lines"):
        data.pop(key)
    return data


def cache_key(recipe: Recipe, source_dir: str | Path, facts: Mapping[str, str]) -> str:
    """sha256 of the recipe, the machine, the toolchain facts, and path, mode and bytes of every input file."""
    digest = hashlib.sha256()
    header = {"schema": CACHE_SCHEMA, "recipe": recipe_fingerprint(recipe), "machine": platform.machine(),
              "facts": dict(sorted(facts.items()))}
    digest.update(json.dumps(header, sort_keys=True).encode())
    root = Path(source_dir)
    for rel in list_inputs(recipe, root):
        digest.update(f"\n{rel}\0{_content_id(root / rel)}".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def _content_id(path: Path) -> str:
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        return "link:" + os.readlink(path)
    return ("x:" if info.st_mode & 0o111 else "f:") + sha256_file(path)



# ---- the store ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CachedObject:
    key: str
    path: str                       # objects/<key>
    outputs: tuple[str, ...]        # absolute paths of the stored outputs


class BuildCache:
    """The on-disk layout; every write is a temporary file or folder renamed into place."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.logs = self.root / "logs"
        self.last_good_dir = self.root / "last-good"
        self.locks = self.root / "locks"

    def prepare(self) -> None:
        try:
            for folder in (self.objects, self.logs, self.last_good_dir, self.locks):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EnvironmentFailure(f"cannot create the build cache: {exc.strerror}", path=str(self.root)) from None

    def lookup(self, key: str) -> CachedObject | None:
        folder = self.objects / key
        meta = _read_json(folder / "meta.json")
        if meta is None:
            return None
        outputs = tuple(str(folder / o["path"]) for o in meta.get("outputs", []))
        if not all(os.path.lexists(p) for p in outputs):
            return None
        return CachedObject(key, str(folder), outputs)

    def last_good(self, target: str) -> CachedObject | None:
        pointer = _read_json(self.last_good_dir / f"{target}.json")
        return self.lookup(pointer["key"]) if pointer and "key" in pointer else None

    def last_good_facts(self, target: str) -> dict[str, str] | None:
        """The toolchain facts the target's last good build was keyed with (for a dry run, which probes nothing)."""
        obj = self.last_good(target)
        meta = _read_json(Path(obj.path) / "meta.json") if obj else None
        facts = meta.get("facts") if meta else None
        return {str(k): str(v) for k, v in facts.items()} if isinstance(facts, dict) else None

    def mark_good(self, target: str, obj: CachedObject) -> None:
        _write_json(self.last_good_dir / f"{target}.json",
                           {"target": target, "key": obj.key, "outputs": list(obj.outputs),
                            "at": utc_stamp()})

    def new_log(self, target: str, key: str) -> Path:
        folder = self.logs / target
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{utc_stamp()}-{key[:12]}.log"

    @contextlib.contextmanager
    def target_lock(self, target: str) -> Iterator[None]:
        with open(self.locks / f"{target}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def store(self, key: str, source_dir: Path, produced: list[tuple[OutputSpec, str]],
              meta: dict[str, Any]) -> CachedObject:
        """Copy the outputs into a fresh folder and rename it to objects/<key>: all or nothing."""
        staging = self.objects / f".tmp-{os.getpid()}-{secrets.token_hex(4)}"
        staging.mkdir()
        try:
            records = [_copy_output(source_dir, staging, spec, rel) for spec, rel in produced]
            _write_json(staging / "meta.json", {**meta, "key": key, "outputs": records})
            if not publish(staging, self.objects / key) and self.lookup(key) is None:
                raise EnvironmentFailure(f"build {key[:12]} could not be stored", path=str(self.objects))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        stored = self.lookup(key)
        if stored is None:
            raise EnvironmentFailure(f"stored build {key[:12]} is not readable back", path=str(self.objects))
        return stored

    def sweep_staging(self) -> None:
        """Remove staging folders of builds whose process is gone (killed while storing)."""
        for folder in self.objects.glob(".tmp-*"):
            pid = folder.name.split("-")[1]
            if pid.isdigit() and not _process_alive(int(pid)):
                shutil.rmtree(folder, ignore_errors=True)


def _copy_output(source_dir: Path, staging: Path, spec: OutputSpec, rel: str) -> dict[str, Any]:
    src, dest = source_dir / rel, staging / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    if spec.kind == "directory":
        shutil.copytree(src, dest, symlinks=True)
        return {"kind": spec.kind, "path": rel}
    shutil.copy2(src, dest, follow_symlinks=True)
    return {"kind": spec.kind, "path": rel, "sha256": sha256_file(dest), "size": dest.stat().st_size}


def last_good(cache_dir: str | Path, target: str) -> CachedObject | None:
    """The output a target's last successful build (or cache hit) left; a failed build never moves it."""
    return BuildCache(cache_dir).last_good(target)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json(path: Path, data: Any) -> None:
    """Through `txn.atomic_write` (fsync'd, renamed into place): the one writer of durable files."""
    atomic_write(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def utc_stamp() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
