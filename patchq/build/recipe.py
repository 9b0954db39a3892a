"""Build recipes (`kernels/<target>.yaml`): what feeds a target, how it is built, what it produces.

Loading is strict (an unknown key, a wrong type or a bad glob is an error naming the file, the key and its line);
routing is pure: which targets a set of changed paths feeds, checked against a tree only on request.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BadInput
from ..git import Repo
from .globs import compile_glob, glob_problem, matches_any

TARGET_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
OUTPUT_KINDS = ("wheel", "extension", "cmake-target", "file", "directory")
CAPABILITIES = ("oneapi", "sycl", "cuda", "xpu")   # plus "tool:NAME" for any program on PATH


@dataclass(frozen=True)
class OutputSpec:
    """One thing a build produces, as a glob relative to the upstream's root."""

    kind: str           # wheel | extension | cmake-target | file | directory
    path: str


@dataclass(frozen=True)
class Resources:
    """Hints that shape how a build runs, never what it produces (so they stay out of the cache key)."""

    jobs: int | None = None
    mem_per_job_gb: float | None = None
    swap_gb: float | None = None


@dataclass(frozen=True)
class Recipe:
    target: str
    upstream: str
    inputs: tuple[str, ...]
    command: str | tuple[str, ...]           # a bash script, or an argv run as is
    outputs: tuple[OutputSpec, ...]
    exclude: tuple[str, ...] = ()
    workdir: str = "."
    setup: str = ""                          # a script sourced before the command (oneAPI's env script)
    setup_args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    toolchain: dict[str, str] = field(default_factory=dict)   # fact name -> shell command whose output is keyed
    requires: tuple[str, ...] = ()
    resources: Resources = Resources()
    launcher: str = ""
    build_by_default: bool = True
    description: str = ""
    path: str = field(default="", compare=False)             # the file it came from, for messages
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def line_of(self, key: str) -> int | None:
        return self.lines.get(key) or self.lines.get(key.split(".")[0].split("[")[0])

    @property
    def command_text(self) -> str:
        return self.command.strip() if isinstance(self.command, str) else shlex.join(self.command)

    def is_input(self, path: str) -> bool:
        """A path feeds the target when an input glob covers it and neither an exclude nor an output does."""
        return (matches_any(self.inputs, path) and not matches_any(self.exclude, path)
                and not matches_any(tuple(o.path for o in self.outputs), path))


_RECIPE_KEYS = ("target", "upstream", "description", "inputs", "exclude", "command", "workdir", "setup",
                "setup_args", "env", "toolchain", "requires", "outputs", "kind", "resources", "launcher",
                "build_by_default")
_REQUIRED_KEYS = ("upstream", "inputs", "command", "outputs")
_OUTPUT_KEYS = ("kind", "path")
_RESOURCE_KEYS = ("jobs", "mem_per_job_gb", "swap_gb")


# ---- loading ---------------------------------------------------------------------------------------------------

def load_recipes(kernels_dir: str | Path) -> dict[str, Recipe]:
    """Every `*.yaml` recipe of a folder by target name; a missing folder has none."""
    folder = Path(kernels_dir)
    if not folder.is_dir():
        return {}
    recipes = [load_recipe(p) for p in sorted(folder.glob("*.yaml"))]
    return {r.target: r for r in recipes}


def load_recipe(path: str | Path) -> Recipe:
    """Parse one recipe strictly: an unknown key, a wrong type or a bad glob is an error with its line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"cannot read recipe: {exc.strerror}", path=str(path)) from None
    except UnicodeDecodeError:
        raise BadInput("recipe is not UTF-8 text", path=str(path)) from None
    data, lines = _parse_yaml(text, str(path))
    return _RecipeReader(str(path), lines).recipe(data, default_target=path.stem)


def _parse_yaml(text: str, where: str) -> tuple[Any, dict[str, int]]:
    """Through the one YAML door: the same guard as pins.lock and series.yaml (no alias bombs, no deep nesting)."""
    from .. import yamlio
    doc = yamlio.parse(text, where, what="recipe")
    return doc.plain(), doc.key_lines()


class _RecipeReader:
    """Typed access to one parsed recipe; every complaint names the file, the key and its line."""

    def __init__(self, path: str, lines: dict[str, int]) -> None:
        self.path = path
        self.lines = lines

    def fail(self, key: str, message: str) -> BadInput:
        line = self.lines.get(key)
        if line is None and "[" in key:
            line = self.lines.get(key.split("[")[0])
        return BadInput(f"{key}: {message}" if key else message, path=self.path, line=line)

    def recipe(self, data: Any, *, default_target: str) -> Recipe:
        if not isinstance(data, dict):
            raise self.fail("", "a recipe is a mapping of keys (upstream, inputs, command, outputs, ...)")
        self.reject_unknown(data, _RECIPE_KEYS, "")
        for key in _REQUIRED_KEYS:
            if key not in data:
                raise BadInput(f"missing required key {key!r}", path=self.path, line=1)
        target = self.text(data, "target", default=default_target)
        if not TARGET_NAME.match(target):
            raise self.fail("target", f"{target!r} is not a valid target name (lower case, digits, . _ -)")
        if target != default_target:
            raise self.fail("target", f"{target!r} differs from the file name {default_target}.yaml")
        recipe = Recipe(
            target=target,
            upstream=self.text(data, "upstream"),
            inputs=self.globs(data, "inputs", required=True),
            exclude=self.globs(data, "exclude"),
            command=self.command(data),
            workdir=self.relative_path(data, "workdir", default="."),
            setup=self.text(data, "setup", default=""),
            setup_args=self.texts(data, "setup_args"),
            env=self.env(data),
            toolchain=self.toolchain(data),
            requires=self.requires(data),
            outputs=self.outputs(data),
            resources=self.resources(data),
            launcher=self.text(data, "launcher", default=""),
            build_by_default=self.flag(data, "build_by_default", default=True),
            description=self.text(data, "description", default=""),
            path=self.path,
            lines=dict(self.lines),
        )
        return recipe

    def reject_unknown(self, data: dict[str, Any], known: tuple[str, ...], prefix: str) -> None:
        for key in data:
            if key not in known:
                name = f"{prefix}.{key}" if prefix else str(key)
                import difflib  # only for a misspelt key: not on every apply
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
                raise self.fail(name, f"unknown key{hint}")

    def text(self, data: dict[str, Any], key: str, *, default: str | None = None, name: str | None = None) -> str:
        name = name or key
        if key not in data:
            if default is None:
                raise self.fail(name, "is required")
            return default
        value = data[key]
        if not isinstance(value, str):
            raise self.fail(name, f"expected a string, got {_type_name(value)}")
        return value

    def texts(self, data: dict[str, Any], key: str) -> tuple[str, ...]:
        value = data.get(key, [])
        if not isinstance(value, list):
            raise self.fail(key, f"expected a list of strings, got {_type_name(value)}")
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise self.fail(f"{key}[{index}]", f"expected a string, got {_type_name(item)}")
        return tuple(value)

    def globs(self, data: dict[str, Any], key: str, *, required: bool = False) -> tuple[str, ...]:
        patterns = self.texts(data, key)
        if required and not patterns:
            raise self.fail(key, "needs at least one glob")
        for index, pattern in enumerate(patterns):
            problem = glob_problem(pattern)
            if problem:
                raise self.fail(f"{key}[{index}]", f"{pattern!r}: {problem}")
        return patterns

    def relative_path(self, data: dict[str, Any], key: str, *, default: str) -> str:
        value = self.text(data, key, default=default)
        parts = value.split("/")
        if value.startswith("/") or ".." in parts:
            raise self.fail(key, f"{value!r} must stay inside the upstream (relative, no '..')")
        return value

    def mapping(self, data: dict[str, Any], key: str) -> dict[str, Any]:
        value = data.get(key, {})
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a mapping, got {_type_name(value)}")
        return value

    def env(self, data: dict[str, Any]) -> dict[str, str]:
        result = {}
        for name, value in self.mapping(data, "env").items():
            if not isinstance(name, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
                raise self.fail("env", f"{name!r} is not a variable name")
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise self.fail(f"env.{name}", f"expected a string or number, got {_type_name(value)} (quote it)")
            result[name] = str(value)
        return result

    def toolchain(self, data: dict[str, Any]) -> dict[str, str]:
        facts = self.mapping(data, "toolchain")
        for name in facts:
            self.text(facts, name, name=f"toolchain.{name}")
        return {str(k): v for k, v in facts.items()}

    def requires(self, data: dict[str, Any]) -> tuple[str, ...]:
        names = self.texts(data, "requires")
        for index, name in enumerate(names):
            if name not in CAPABILITIES and not re.match(r"^tool:[A-Za-z0-9._+-]+$", name):
                raise self.fail(f"requires[{index}]",
                                f"unknown requirement {name!r} (known: {', '.join(CAPABILITIES)}, tool:NAME)")
        return names

    def command(self, data: dict[str, Any]) -> str | tuple[str, ...]:
        value = data["command"]
        if isinstance(value, str):
            if not value.strip():
                raise self.fail("command", "is empty")
            return value
        if not isinstance(value, list):
            raise self.fail("command", f"expected a bash script (a string) or an argv (a list), "
                                       f"got {_type_name(value)}")
        argv = self.texts(data, "command")
        if not argv:
            raise self.fail("command", "is empty")
        return argv

    def output_kind(self, data: dict[str, Any], key: str, name: str) -> str:
        kind = self.text(data, key, name=name)
        if kind not in OUTPUT_KINDS:
            raise self.fail(name, f"unknown output kind {kind!r} (known: {', '.join(OUTPUT_KINDS)})")
        return kind

    def outputs(self, data: dict[str, Any]) -> tuple[OutputSpec, ...]:
        """Each output is {kind, path}, or a bare path taking the recipe's `kind` (default: file)."""
        items = data["outputs"]
        if not isinstance(items, list) or not items:
            raise self.fail("outputs", "expected a non-empty list of paths or {kind, path}")
        default_kind = self.output_kind(data, "kind", "kind") if "kind" in data else "file"
        specs = []
        for index, item in enumerate(items):
            name = f"outputs[{index}]"
            if isinstance(item, str):
                item = {"kind": default_kind, "path": item}
            elif not isinstance(item, dict):
                raise self.fail(name, f"expected a path or a mapping with kind and path, got {_type_name(item)}")
            self.reject_unknown(item, _OUTPUT_KEYS, name)
            kind = self.output_kind(item, "kind", f"{name}.kind") if "kind" in item else default_kind
            path = self.text(item, "path", name=f"{name}.path")
            problem = glob_problem(path) or _whole_tree_problem(path)
            if problem:
                raise self.fail(f"{name}.path", f"{path!r}: {problem}")
            specs.append(OutputSpec(kind, path))
        return tuple(specs)

    def resources(self, data: dict[str, Any]) -> Resources:
        hints = self.mapping(data, "resources")
        self.reject_unknown(hints, _RESOURCE_KEYS, "resources")
        jobs = hints.get("jobs")
        if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
            raise self.fail("resources.jobs", "expected a whole number of at least 1")
        numbers = {}
        for key in ("mem_per_job_gb", "swap_gb"):
            value = hints.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                raise self.fail(f"resources.{key}", "expected a number of gigabytes (0 or more)")
            numbers[key] = float(value) if value is not None else None
        return Resources(jobs=jobs, **numbers)

    def flag(self, data: dict[str, Any], key: str, *, default: bool) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, got {_type_name(value)}")
        return value


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", bool: "a boolean", int: "a number", float: "a number",
            str: "a string"}.get(type(value), type(value).__name__)




def _whole_tree_problem(pattern: str) -> str:
    """Outputs are deleted before each build, so an output glob must name something, not everything."""
    first = pattern.strip("/").split("/")[0]
    if first in ("", ".", "**") or set(first) <= set("*?"):
        return "an output must start with a folder or file name (outputs are cleared before each build)"
    return ""


# ---- which targets a change affects ----------------------------------------------------------------------------

def affected_targets(recipes: Mapping[str, Recipe], upstream: str,
                     changed_paths: list[str]) -> dict[str, tuple[str, ...]]:
    """Target -> the changed paths of `upstream` that feed it; targets no path feeds are left out."""
    affected: dict[str, tuple[str, ...]] = {}
    for name in sorted(recipes):
        recipe = recipes[name]
        if recipe.upstream != upstream:
            continue
        feeding = tuple(p for p in changed_paths if recipe.is_input(p))
        if feeding:
            affected[name] = feeding
    return affected


def targets_to_build(recipes: Mapping[str, Recipe], affected: Mapping[str, tuple[str, ...]],
                     requested: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Affected targets that build by default, or exactly the requested ones (`--target`), affected or not."""
    if requested:
        unknown = [t for t in requested if t not in recipes]
        if unknown:
            raise BadInput(f"no recipe for target {unknown[0]!r} (known: {', '.join(sorted(recipes)) or 'none'})")
        return tuple(requested)
    return tuple(t for t in affected if recipes[t].build_by_default)


def validate_recipe_at(recipe: Recipe, repo: Repo, rev: str) -> list[str]:
    """The input globs that match nothing in the tree at `rev` (a recipe written for another layout)."""
    paths = repo.ls_tree_paths(rev)
    return [g for g in recipe.inputs if not any(compile_glob(g).match(p) for p in paths)]


def require_inputs_at(recipe: Recipe, repo: Repo, rev: str) -> None:
    """Raise, naming the recipe, the key and its line, when an input glob matches nothing at the pin."""
    stale = validate_recipe_at(recipe, repo, rev)
    if stale:
        index = recipe.inputs.index(stale[0])
        listed = ", ".join(repr(g) for g in stale)
        raise BadInput(f"inputs: {listed} match{'es' if len(stale) == 1 else ''} nothing in "
                       f"{recipe.upstream} at {rev[:12]}", path=recipe.path,
                       line=recipe.line_of(f"inputs[{index}]"),
                       hint="the upstream moved these files: update the recipe's globs")
