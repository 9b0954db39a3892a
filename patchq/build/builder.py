"""Building one target: reuse the stored output for this content, or run the recipe and store what it produced.

Outputs an earlier build left are cleared first, so a stale file is never stored as this build's; nothing reached
through a symlink that leaves the checkout is deleted or collected.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path

from ..errors import BadInput
from .cache import BuildCache, cache_key, utc_stamp
from .host import launcher_env, missing_requirements, plan_jobs, read_machine_memory
from .recipe import OutputSpec, Recipe
from .runner import (
    append_log,
    exit_reason,
    log_tail,
    probe_toolchain,
    recipe_env,
    run_logged,
    setup_script,
    shell_argv,
)


class BuildKind(str, Enum):
    CACHED = "cached"                            # the outputs for this key were already stored
    BUILT = "built"
    FAILED = "failed"                            # exit status, signal or a missing output; see log_tail
    SKIPPED_UNAVAILABLE = "skipped-unavailable"  # toolkit, setup script or hardware absent here; see why
    WOULD_BUILD = "would-build"                  # dry run and not cached


@dataclass(frozen=True)
class BuildOutcome:
    target: str
    upstream: str
    kind: BuildKind
    key: str = ""
    outputs: tuple[str, ...] = ()             # absolute paths in the cache
    log: str = ""                             # this build's log
    log_tail: tuple[str, ...] = ()            # last lines of the log, when it failed
    why: str = ""                             # one line: why it failed or was skipped
    previous_key: str = ""                    # the last good build, still in the cache, when this one failed
    previous_outputs: tuple[str, ...] = ()
    jobs: int | None = None
    launcher: str = ""
    seconds: float = 0.0
    notes: tuple[str, ...] = ()               # jobs reduced for memory, swap absent, launcher missing
    command: str = ""
    facts: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.kind == BuildKind.FAILED


def build_target(recipe: Recipe, source_dir: str | Path, cache_dir: str | Path, *, dry_run: bool = False,
                 jobs: int | None = None, launcher: str | None = None, env: Mapping[str, str] | None = None,
                 facts: Mapping[str, str] | None = None) -> BuildOutcome:
    """Reuse the stored output for this content, or run the recipe and store what it produced.

    `facts` lets a caller that already probed the toolchain skip probing again; `launcher` overrides the recipe's
    ("" disables it); `env` replaces os.environ as the base environment of the build.
    """
    started = time.monotonic()
    source = Path(source_dir).resolve()
    base = BuildOutcome(recipe.target, recipe.upstream, BuildKind.WOULD_BUILD, command=recipe.command_text)
    missing = missing_requirements(recipe, env)
    if missing:
        return replace(base, kind=BuildKind.SKIPPED_UNAVAILABLE, why="; ".join(missing))
    if not source.is_dir():
        raise BadInput(f"{source} is not a folder: nothing to build {recipe.target} from")
    if not (source / recipe.workdir).is_dir():
        raise BadInput(f"workdir: {recipe.workdir!r} is not a folder of {source}", path=recipe.path,
                       line=recipe.line_of("workdir"))
    cache = BuildCache(cache_dir)
    cache.prepare()
    if dry_run and facts is None:
        # A dry run runs none of the recipe's commands (toolchain facts, setup script): the key is computed with
        # the facts the last good build recorded, so an unchanged checkout is reported cached, the rest would build.
        recorded = cache.last_good_facts(recipe.target)
        key = cache_key(recipe, source, recorded) if recorded is not None else ""
        hit = cache.lookup(key) if key else None
        if hit is None:
            plan = plan_jobs(recipe.resources, jobs, cpu_count=os.cpu_count() or 1, memory=read_machine_memory())
            return replace(base, key=key, jobs=plan.jobs, notes=plan.notes, seconds=time.monotonic() - started)
        return replace(base, kind=BuildKind.CACHED, key=key, outputs=hit.outputs, facts=recorded or {},
                       seconds=time.monotonic() - started)
    known_facts = dict(facts) if facts is not None else probe_toolchain(recipe, env)
    key = cache_key(recipe, source, known_facts)
    hit = cache.lookup(key)
    if hit is None and dry_run:
        plan = plan_jobs(recipe.resources, jobs, cpu_count=os.cpu_count() or 1, memory=read_machine_memory())
        return replace(base, key=key, facts=known_facts, jobs=plan.jobs, notes=plan.notes,
                       seconds=time.monotonic() - started)
    if hit is None:
        with cache.target_lock(recipe.target):
            hit = cache.lookup(key)         # another process may have built it while we waited
            if hit is None:
                cache.sweep_staging()
                return _run_build(recipe, source, cache, key, known_facts, started, jobs=jobs,
                                  launcher=recipe.launcher if launcher is None else launcher, env=env)
    if not dry_run:
        cache.mark_good(recipe.target, hit)
    return replace(base, kind=BuildKind.CACHED, key=key, outputs=hit.outputs, facts=known_facts,
                   seconds=time.monotonic() - started)


def _run_build(recipe: Recipe, source: Path, cache: BuildCache, key: str, facts: dict[str, str],
               started: float, *, jobs: int | None, launcher: str, env: Mapping[str, str] | None) -> BuildOutcome:
    build_env = recipe_env(recipe, env)
    plan = plan_jobs(recipe.resources, jobs, cpu_count=os.cpu_count() or 1, memory=read_machine_memory())
    routed, launcher_note = launcher_env(launcher, build_env)
    build_env.update(routed)
    build_env.update({"MAX_JOBS": str(plan.jobs), "CMAKE_BUILD_PARALLEL_LEVEL": str(plan.jobs),
                      "PATCHQ_TARGET": recipe.target, "PATCHQ_BUILD_KEY": key})
    notes = plan.notes + ((launcher_note,) if launcher_note else ())
    common = BuildOutcome(recipe.target, recipe.upstream, BuildKind.BUILT, key=key, jobs=plan.jobs,
                          launcher=launcher if routed else "", notes=notes, command=recipe.command_text, facts=facts)
    _clear_stale_outputs(recipe, source)
    log = cache.new_log(recipe.target, key)
    returncode = run_logged(shell_argv(recipe, recipe.command, build_env), source / recipe.workdir, build_env,
                             log, header=_log_header(recipe, key, plan.jobs, facts, build_env), label=recipe.target)
    if returncode != 0:
        return _failure(recipe, cache, log, exit_reason(returncode), started, common)
    produced, absent = _collect_outputs(recipe, source)
    if absent:
        append_log(log, f"patchq: the build produced nothing for {', '.join(absent)}")
        return _failure(recipe, cache, log, f"no output matches {', '.join(absent)}", started, common)
    meta = {"target": recipe.target, "upstream": recipe.upstream, "facts": facts, "log": str(log),
            "built_at": utc_stamp(), "seconds": round(time.monotonic() - started, 3)}
    stored = cache.store(key, source, produced, meta)
    cache.mark_good(recipe.target, stored)
    return replace(common, outputs=stored.outputs, log=str(log), seconds=time.monotonic() - started)


def _failure(recipe: Recipe, cache: BuildCache, log: Path, why: str, started: float,
             common: BuildOutcome) -> BuildOutcome:
    previous = cache.last_good(recipe.target)
    return replace(common, kind=BuildKind.FAILED, why=why, log=str(log), log_tail=log_tail(log),
                   previous_key=previous.key if previous else "",
                   previous_outputs=previous.outputs if previous else (), seconds=time.monotonic() - started)


def _real_inside(source: Path, path: Path) -> bool:
    """Whether `path`, every symlink on the way resolved, is inside the checkout `source`."""
    root, real = os.path.realpath(source), os.path.realpath(path)
    return real == root or real.startswith(root + os.sep)


def _refuse_outside(recipe: Recipe, source: Path, match: Path, doing: str) -> None:
    raise BadInput(f"output {match.relative_to(source).as_posix()!r} of target {recipe.target!r} is reached through a "
                   f"symlink that leaves the checkout; patchq does not {doing} it", path=str(source))


def _clear_stale_outputs(recipe: Recipe, source: Path) -> None:
    """An output left by an earlier build must not be stored as this build's (and nothing outside the checkout is
    deleted: a match reached through a symlink that leaves it is refused)."""
    for spec in recipe.outputs:
        for match in source.glob(spec.path):
            if not _real_inside(source, match.parent):
                _refuse_outside(recipe, source, match, "delete")
            if match.is_dir() and not match.is_symlink():
                shutil.rmtree(match)
            else:
                match.unlink()


def _collect_outputs(recipe: Recipe, source: Path) -> tuple[list[tuple[OutputSpec, str]], list[str]]:
    produced: list[tuple[OutputSpec, str]] = []
    absent: list[str] = []
    for spec in recipe.outputs:
        want_dir = spec.kind == "directory"
        found = sorted(p for p in source.glob(spec.path) if p.is_dir() == want_dir)
        for match in found:
            if not _real_inside(source, match):
                _refuse_outside(recipe, source, match, "collect")
        if not found:
            absent.append(spec.path)
        produced.extend((spec, p.relative_to(source).as_posix()) for p in found)
    return produced, absent


def _log_header(recipe: Recipe, key: str, jobs: int, facts: Mapping[str, str], env: Mapping[str, str]) -> str:
    lines = [f"# patchq build {recipe.target} ({recipe.upstream}) key {key}",
             f"# command: {recipe.command_text}",
             f"# setup: {setup_script(recipe, env) or '-'} {' '.join(recipe.setup_args)}".rstrip(),
             f"# jobs: {jobs}"]
    lines += [f"# fact {name}: {value.splitlines()[0] if value else ''}" for name, value in facts.items()]
    for var in ("CC", "CXX", "CMAKE_C_COMPILER_LAUNCHER", *sorted(recipe.env)):
        if var in env:
            lines.append(f"# env {var}={env[var]}")
    return "\n".join(lines) + "\n"
