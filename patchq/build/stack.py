"""Builds for a stack: which native targets its patches and changes touch, their builds through the cache, and the
Python-only routes (an overlay onto an installed package, a repacked wheel) that need no compiler.

The only module of `build/` that knows workspaces and stacks: it joins `apply` results to recipes and builds, and
to `overlay.py` (site-packages, wheels); those work on explicit inputs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..apply import apply_stack
from ..errors import BadInput, NeedsYou
from ..git import Repo
from ..model import ApplyReport, OutcomeKind, UpstreamApply
from ..patchfile import touched_paths
from ..queuerun import load_patch
from ..sources import cache_root, ensure_base
from ..workspace import Workspace
from .recipe import Recipe, affected_targets, load_recipes, targets_to_build

if TYPE_CHECKING:       # imported where used: an apply with no recipe to build loads neither (start-up time)
    from ..overlay import OverlayResult, OverlayStatus, PythonChanges
    from .builder import BuildOutcome


@dataclass(frozen=True)
class PatchTargets:
    upstream: str
    patch_id: str
    targets: tuple[str, ...]


@dataclass(frozen=True)
class BuildReport:
    stack: str
    per_patch: tuple[PatchTargets, ...]
    affected: dict[str, tuple[str, ...]]      # target -> changed paths of the stack that feed it
    builds: tuple[BuildOutcome, ...]
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not any(b.failed for b in self.builds)


def build_cache_dir() -> Path:
    """The build cache shared by every workspace of this user (outputs are keyed by content, not by workspace)."""
    return cache_root() / "builds"


def workspace_recipes(ws: Workspace) -> dict[str, Recipe]:
    """The workspace's `kernels/*.yaml` recipes by target; none when it has no `kernels/` folder."""
    return load_recipes(ws.root / "kernels")


def targets_per_patch(ws: Workspace, report: ApplyReport) -> tuple[PatchTargets, ...]:
    """Which recipes each applied patch feeds, from the paths the patch touches (read only when there are recipes:
    without any, every patch feeds none, and reading the queue again would cost as much as applying it)."""
    recipes = workspace_recipes(ws)
    out = []
    for up in report.upstreams:
        for outcome in up.outcomes:
            if not outcome.kind.applied:
                continue
            entry = ws.queue(up.upstream).get(outcome.patch_id)
            if entry is None:
                continue
            paths = touched_paths(load_patch(ws, entry).patch.files) if recipes else []
            out.append(PatchTargets(up.upstream, outcome.patch_id,
                                    tuple(affected_targets(recipes, up.upstream, paths))))
    return tuple(out)


def _changed(up: UpstreamApply) -> list[str]:
    if not up.checkout or not up.head or up.head == up.base:
        return []
    return Repo(up.checkout).changed_paths(up.base, up.head)


def build_after_apply(ws: Workspace, report: ApplyReport, *, targets: tuple[str, ...] = (), dry_run: bool = False,
                      jobs: int | None = None, launcher: str | None = None) -> BuildReport:
    """Build the targets the applied stack touches, each in its upstream's checkout, through the content cache."""
    recipes = workspace_recipes(ws)
    unknown = [t for t in targets if t not in recipes]
    if unknown:
        known = ", ".join(sorted(recipes)) or "none"
        raise BadInput(f"unknown build target(s) {', '.join(unknown)} (recipes: {known})")
    affected: dict[str, tuple[str, ...]] = {}
    checkout_of: dict[str, str] = {}
    for up in report.upstreams:
        if any(o.kind == OutcomeKind.NOT_REACHED for o in up.outcomes):
            continue   # the queue stopped early: the checkout is not the stack
        if any(recipe.upstream == up.upstream for recipe in recipes.values()):   # else no diff to ask git for
            for target, paths in affected_targets(recipes, up.upstream, _changed(up)).items():
                affected[target] = paths
        checkout_of[up.upstream] = up.checkout
    builds = []
    for target in targets_to_build(recipes, affected, targets):
        recipe = recipes[target]
        source = checkout_of.get(recipe.upstream)
        if not source:
            raise BadInput(f"target {target!r} builds from upstream {recipe.upstream!r}, which stack "
                           f"{report.stack!r} does not use (or which stopped on a conflict)", path=recipe.path)
        from .builder import build_target
        builds.append(build_target(recipe, source, build_cache_dir(), dry_run=dry_run, jobs=jobs, launcher=launcher))
    return BuildReport(report.stack, targets_per_patch(ws, report), affected, tuple(builds), dry_run)


def build_stack(ws: Workspace, stack_name: str, *, targets: tuple[str, ...] = (), dry_run: bool = False,
                jobs: int | None = None, launcher: str | None = None, force: bool = False) -> BuildReport:
    """Regenerate the stack's checkouts (cheap when they are current), then build what it touches."""
    report = apply_stack(ws, stack_name, force=force)
    if not report.ok:
        bad = next(o for u in report.upstreams for o in u.outcomes if not o.kind.ok)
        raise NeedsYou(f"stack {stack_name!r} does not apply ({bad.upstream}:{bad.patch_id} is {bad.kind.value}); "
                       "fix it with 'patchq apply' before building")
    return build_after_apply(ws, report, targets=targets, dry_run=dry_run, jobs=jobs, launcher=launcher)


# ---- Python-only routes ------------------------------------------------------------------------------------------

def _stack_python_changes(ws: Workspace, stack_name: str, upstream: str) -> tuple[PythonChanges, UpstreamApply]:
    stack = ws.stack(stack_name)
    if upstream not in stack.upstreams:
        raise BadInput(f"stack {stack_name!r} does not use upstream {upstream!r} "
                       f"(it uses {', '.join(stack.upstreams)})")
    report = apply_stack(ws, stack_name, only=(upstream,), check_only=False)
    up = report.upstreams[0]
    if up.stopped:
        bad = next(o for o in up.outcomes if not o.kind.ok)
        raise NeedsYou(f"{upstream}:{bad.patch_id} does not apply; nothing to overlay until it does")
    base = ensure_base(ws.upstream(upstream), up.pin, workspace=ws.root)
    from ..overlay import python_changes_between
    return python_changes_between(base.repo, base.commit, up.head), up


def expected_version(ws: Workspace, upstream: str, override: str | None) -> str:
    """The package version an installed copy must have: --expect-version, the upstream's `version`, or its sdist."""
    if override:
        return override
    up = ws.upstream(upstream)
    if up.version:
        return up.version
    if up.archive and up.archive.pypi and "==" in up.archive.pypi:
        return up.archive.pypi.split("==", 1)[1]
    raise BadInput(f"upstream {upstream!r} has no 'version' in pins.lock; pass --expect-version",
                   path=str(ws.lock_path))


def overlay_backup_dir(ws: Workspace, site_packages: Path) -> Path:
    key = hashlib.sha256(str(site_packages.resolve()).encode()).hexdigest()[:16]
    return ws.state_dir / "overlay" / key


@dataclass(frozen=True)
class OverlayReport:
    stack: str
    upstream: str
    result: OverlayResult
    skipped_native: tuple[str, ...] = ()


def overlay_stack(ws: Workspace, stack_name: str, site_packages: Path, *, upstream: str, package: str | None,
                  version: str | None) -> OverlayReport:
    changes, up = _stack_python_changes(ws, stack_name, upstream)
    if not changes.diff:
        raise BadInput(f"stack {stack_name!r} changes no Python file of {upstream!r}; nothing to overlay")
    from .. import __version__
    mark = {"stack": stack_name, "upstream": upstream, "pin": up.pin, "head": up.head, "tree": up.tree,
            "patchq": __version__}
    from ..overlay import overlay_apply
    result = overlay_apply(site_packages, changes.diff, package=package or upstream,
                           expected_version=expected_version(ws, upstream, version),
                           backup_root=overlay_backup_dir(ws, site_packages), marker=mark)
    return OverlayReport(stack_name, upstream, result, changes.other_paths)


def revert_overlay(ws: Workspace, site_packages: Path) -> OverlayResult:
    from ..overlay import overlay_revert
    return overlay_revert(site_packages, overlay_backup_dir(ws, site_packages))


def status_of_overlay(ws: Workspace, site_packages: Path, package: str) -> OverlayStatus:
    from ..overlay import overlay_status
    return overlay_status(site_packages, package, overlay_backup_dir(ws, site_packages))


@dataclass(frozen=True)
class WheelReport:
    stack: str
    upstream: str
    wheel: str
    version: str                                  # the wheel's PEP 440 version: upstream's + `pq.<tree12>`
    replaced: tuple[str, ...]
    deleted: tuple[str, ...]
    skipped_native: tuple[str, ...]


def wheel_for_stack(ws: Workspace, stack_name: str, wheel: Path, out_dir: Path, *, upstream: str) -> WheelReport:
    """The upstream's binary wheel with the stack's Python files replaced: an installable wheel, no compiler."""
    changes, up = _stack_python_changes(ws, stack_name, upstream)
    if changes.other_paths:
        raise NeedsYou(f"stack {stack_name!r} also changes non-Python files of {upstream!r} "
                       f"({', '.join(changes.other_paths[:3])}); a repacked wheel would not contain them — "
                       "build it with 'patchq build' instead")
    tree = up.tree or Repo(up.checkout).tree_of(up.head)
    from ..overlay import repack_wheel
    built = repack_wheel(wheel, changes.replacements, out_dir, deletions=changes.deletions,
                         local_label=f"pq.{tree[:12]}")
    version = built.name.split("-")[1]
    return WheelReport(stack_name, upstream, str(built), version, tuple(sorted(changes.replacements)),
                       changes.deletions, changes.other_paths)
