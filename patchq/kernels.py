"""Native build targets: recipes, which targets a change affects, and builds cached by content.

A recipe (`kernels/<target>.yaml`) says which upstream paths feed a target, how to build it and what it produces.
The cache key hashes the recipe, the bytes of every input file and the toolchain facts, so a Python-only change
never starts a native build and a torch upgrade invalidates exactly the targets that record torch. Outputs are
copied into `objects/<key>/` through a temporary directory renamed into place: a failed or killed build never
leaves a partial object, and `last-good/<target>.json` keeps pointing at the previous good one.

Cache layout under the directory the caller passes:

    objects/<key>/<outputs as laid out in the source tree> + meta.json
    logs/<target>/<UTC timestamp>-<key[:12]>.log
    last-good/<target>.json          {"key": ..., "outputs": [...]}, replaced atomically
    locks/<target>.lock              one build of a target at a time
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import difflib
import fcntl
import functools
import hashlib
import json
import math
import os
import platform
import re
import secrets
import shlex
import shutil
import signal
import stat
import string
import subprocess
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Iterator, Mapping

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, SequenceNode

from .crashtest import file_operation
from .errors import BadInput, EnvironmentFailure
from .git import Repo

CACHE_SCHEMA = 1
TARGET_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
OUTPUT_KINDS = ("wheel", "extension", "cmake-target", "file", "directory")
CAPABILITIES = ("oneapi", "sycl", "cuda", "xpu")   # plus "tool:NAME" for any program on PATH
LOG_TAIL_LINES = 30
FACT_TIMEOUT_S = 120


# ---- the recipe ------------------------------------------------------------------------------------------------

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
    from .workspace import guard_yaml
    guard_yaml(text, where)        # the same guard as pins.lock and series.yaml: no alias bombs, no deep nesting
    yaml = YAML(typ="safe", pure=True)
    try:
        data = yaml.load(text)
        node = yaml.compose(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise BadInput(f"not valid YAML: {exc.problem or exc.context}", path=where, line=line) from None
    except YAMLError as exc:
        raise BadInput(f"not valid YAML: {exc}", path=where) from None
    lines: dict[str, int] = {}
    if node is not None:
        _record_lines(node, "", lines)
    return data, lines


def _record_lines(node: Node, prefix: str, lines: dict[str, int]) -> None:
    """Key paths like `resources.jobs` and `inputs[2]` mapped to 1-based lines, for error messages."""
    if isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            name = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
            lines[name] = key_node.start_mark.line + 1
            _record_lines(value_node, name, lines)
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            name = f"{prefix}[{index}]"
            lines[name] = item.start_mark.line + 1
            _record_lines(item, name, lines)


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

    def reject_unknown(self, data: dict, known: tuple[str, ...], prefix: str) -> None:
        for key in data:
            if key not in known:
                name = f"{prefix}.{key}" if prefix else str(key)
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
                raise self.fail(name, f"unknown key{hint}")

    def text(self, data: dict, key: str, *, default: str | None = None, name: str | None = None) -> str:
        name = name or key
        if key not in data:
            if default is None:
                raise self.fail(name, "is required")
            return default
        value = data[key]
        if not isinstance(value, str):
            raise self.fail(name, f"expected a string, got {_type_name(value)}")
        return value

    def texts(self, data: dict, key: str) -> tuple[str, ...]:
        value = data.get(key, [])
        if not isinstance(value, list):
            raise self.fail(key, f"expected a list of strings, got {_type_name(value)}")
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise self.fail(f"{key}[{index}]", f"expected a string, got {_type_name(item)}")
        return tuple(value)

    def globs(self, data: dict, key: str, *, required: bool = False) -> tuple[str, ...]:
        patterns = self.texts(data, key)
        if required and not patterns:
            raise self.fail(key, "needs at least one glob")
        for index, pattern in enumerate(patterns):
            problem = glob_problem(pattern)
            if problem:
                raise self.fail(f"{key}[{index}]", f"{pattern!r}: {problem}")
        return patterns

    def relative_path(self, data: dict, key: str, *, default: str) -> str:
        value = self.text(data, key, default=default)
        parts = value.split("/")
        if value.startswith("/") or ".." in parts:
            raise self.fail(key, f"{value!r} must stay inside the upstream (relative, no '..')")
        return value

    def mapping(self, data: dict, key: str) -> dict:
        value = data.get(key, {})
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a mapping, got {_type_name(value)}")
        return value

    def env(self, data: dict) -> dict[str, str]:
        result = {}
        for name, value in self.mapping(data, "env").items():
            if not isinstance(name, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
                raise self.fail("env", f"{name!r} is not a variable name")
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise self.fail(f"env.{name}", f"expected a string or number, got {_type_name(value)} (quote it)")
            result[name] = str(value)
        return result

    def toolchain(self, data: dict) -> dict[str, str]:
        facts = self.mapping(data, "toolchain")
        for name in facts:
            self.text(facts, name, name=f"toolchain.{name}")
        return {str(k): v for k, v in facts.items()}

    def requires(self, data: dict) -> tuple[str, ...]:
        names = self.texts(data, "requires")
        for index, name in enumerate(names):
            if name not in CAPABILITIES and not re.match(r"^tool:[A-Za-z0-9._+-]+$", name):
                raise self.fail(f"requires[{index}]",
                                f"unknown requirement {name!r} (known: {', '.join(CAPABILITIES)}, tool:NAME)")
        return names

    def command(self, data: dict) -> str | tuple[str, ...]:
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

    def output_kind(self, data: dict, key: str, name: str) -> str:
        kind = self.text(data, key, name=name)
        if kind not in OUTPUT_KINDS:
            raise self.fail(name, f"unknown output kind {kind!r} (known: {', '.join(OUTPUT_KINDS)})")
        return kind

    def outputs(self, data: dict) -> tuple[OutputSpec, ...]:
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

    def resources(self, data: dict) -> Resources:
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

    def flag(self, data: dict, key: str, *, default: bool) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, got {_type_name(value)}")
        return value


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", bool: "a boolean", int: "a number", float: "a number",
            str: "a string"}.get(type(value), type(value).__name__)


# ---- globs -----------------------------------------------------------------------------------------------------

def glob_problem(pattern: str) -> str:
    """Why a glob is unusable, or "" when it is fine."""
    if not pattern.strip():
        return "empty glob"
    if pattern.startswith("/"):
        return "globs are relative to the upstream's root, not absolute"
    segments = pattern.strip("/").split("/")
    if ".." in segments:
        return "'..' would leave the upstream"
    if any("**" in s and s != "**" for s in segments):
        return "'**' must be a whole path segment, as in 'csrc/**/*.cu'"
    return ""


def _whole_tree_problem(pattern: str) -> str:
    """Outputs are deleted before each build, so an output glob must name something, not everything."""
    first = pattern.strip("/").split("/")[0]
    if first in ("", ".", "**") or set(first) <= set("*?"):
        return "an output must start with a folder or file name (outputs are cleared before each build)"
    return ""


@functools.lru_cache(maxsize=4096)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """`**` spans folders, `*` and `?` stay within one, and a pattern naming a folder covers all under it."""
    segments = pattern.strip("/").split("/")
    body = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            body.append(".*" if last else "(?:[^/]+/)*")
        else:
            body.append(_segment_regex(segment) + ("" if last else "/"))
    return re.compile("^" + "".join(body) + "(?:/.*)?$", re.DOTALL)


def _segment_regex(segment: str) -> str:
    out, i = [], 0
    while i < len(segment):
        char = segment[i]
        close = segment.find("]", i + 2) if char == "[" else -1
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif close != -1:
            inner = segment[i + 1:close]
            negate = inner.startswith("!")
            out.append("[" + ("^" if negate else "") + re.escape(inner[1:] if negate else inner)
                       .replace("\\-", "-") + "]")
            i = close
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def matches_any(patterns: tuple[str, ...], path: str) -> bool:
    return any(compile_glob(p).match(path) for p in patterns)


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


# ---- the environment a recipe runs in --------------------------------------------------------------------------

# Sources the setup script with only its own arguments (bash hands the caller's "$@" to a sourced script given none,
# which oneAPI's scripts would read as options), silences its banner, then replaces itself with the build command.
# argv: setup-script, number of setup arguments, the setup arguments, the command's argv.
_SOURCE_THEN_EXEC = ('setup_script=$0; count=$1; shift; setup_args=("${@:1:$count}"); shift "$count"; '
                     'build=("$@"); set -- "${setup_args[@]}"; '
                     'source "$setup_script" >/dev/null '
                     '|| { echo "patchq: sourcing $setup_script failed" >&2; exit 97; }; '
                     'exec "${build[@]}"')


def recipe_env(recipe: Recipe, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment (or ours) with the recipe's variables on top."""
    merged = dict(os.environ if env is None else env)
    merged.update(recipe.env)
    return merged


def setup_script(recipe: Recipe, env: Mapping[str, str]) -> str:
    """The recipe's setup path with `~` and `$VAR` expanded against the build environment."""
    if not recipe.setup:
        return ""
    return os.path.expanduser(string.Template(recipe.setup).safe_substitute(env))


def shell_argv(recipe: Recipe, command: str | tuple[str, ...], env: Mapping[str, str]) -> list[str]:
    """argv that runs `command` (a bash script, or an argv as is), after the recipe's setup script when it has one."""
    argv = ["bash", "-eo", "pipefail", "-c", command] if isinstance(command, str) else list(command)
    if not recipe.setup:
        return argv
    return ["bash", "-c", _SOURCE_THEN_EXEC, setup_script(recipe, env), str(len(recipe.setup_args)),
            *recipe.setup_args, *argv]


# ---- toolchain facts and the cache key -------------------------------------------------------------------------

def probe_toolchain(recipe: Recipe, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Each fact command's output; a command that fails records its error text instead of stopping the build."""
    if not recipe.toolchain:
        return {}
    ready = environment_after_setup(recipe, recipe_env(recipe, env))
    if ready is None:
        reason = f"error: sourcing {setup_script(recipe, recipe_env(recipe, env))} failed"
        return {name: reason for name in sorted(recipe.toolchain)}
    return {name: _run_fact(recipe.toolchain[name], ready) for name in sorted(recipe.toolchain)}


def environment_after_setup(recipe: Recipe, env: Mapping[str, str]) -> dict[str, str] | None:
    """The variables the setup script leaves, from one sourcing (they are slow); None when sourcing fails."""
    if not recipe.setup:
        return dict(env)
    try:
        proc = subprocess.run(shell_argv(recipe, ("env", "-0"), env), env=dict(env), capture_output=True,
                              stdin=subprocess.DEVNULL, timeout=FACT_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    pairs = (item.split("=", 1) for item in proc.stdout.decode("utf-8", "surrogateescape").split("\0"))
    return {pair[0]: pair[1] for pair in pairs if len(pair) == 2}


def _run_fact(command: str, env: Mapping[str, str]) -> str:
    try:
        proc = subprocess.run(["bash", "-eo", "pipefail", "-c", command], env=dict(env), capture_output=True,
                              stdin=subprocess.DEVNULL, timeout=FACT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"error: timed out after {FACT_TIMEOUT_S}s"
    except OSError as exc:
        return f"error: {exc.strerror}"
    out = proc.stdout.decode("utf-8", "replace").replace("\r\n", "\n").strip()
    if proc.returncode == 0:
        return out
    errors = [ln for ln in proc.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    return f"error (exit {proc.returncode}): {errors[-1].strip() if errors else out[-200:]}"


def list_inputs(recipe: Recipe, source_dir: str | Path) -> list[str]:
    """Files of the tree that feed the target, sorted, as paths relative to `source_dir`."""
    root = Path(source_dir)
    return sorted(p for p in _tree_files(root) if recipe.is_input(p))


def _tree_files(root: Path) -> list[str]:
    """What git tracks or would track (build products it ignores stay out); every file when not a git tree."""
    listed = _git_listed_files(root)
    if listed is not None:
        return [p for p in listed if os.path.lexists(root / p)]
    files = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".git"]
        rel = os.path.relpath(folder, root)
        files.extend(n if rel == "." else f"{rel}/{n}".replace(os.sep, "/") for n in names)
    return files


def _git_listed_files(root: Path) -> list[str] | None:
    """Only when `root` is the top of its own work tree: inside another repository git would list that one's."""
    repo = Repo(root)
    top = repo.run("rev-parse", "--show-toplevel", check=False)
    if not top.ok or Path(top.out.strip()).resolve() != root.resolve():
        return None
    out = repo.run("ls-files", "-z", "--cached", "--others", "--exclude-standard").out
    return sorted(set(p for p in out.split("\0") if p))


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
    with path.open("rb") as fh:
        sha = hashlib.file_digest(fh, "sha256").hexdigest()
    return ("x:" if info.st_mode & 0o111 else "f:") + sha


# ---- what the machine offers -----------------------------------------------------------------------------------

def missing_requirements(recipe: Recipe, env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Why this machine cannot build the recipe (missing toolkit, setup script or hardware); empty when it can."""
    build_env = recipe_env(recipe, env)
    reasons = []
    search_path = build_env.get("PATH", os.defpath)
    script = setup_script(recipe, build_env)
    if script and not Path(script).is_file():
        reasons.append(f"setup script {script} not found")
    elif script and recipe.requires:
        search_path = (environment_after_setup(recipe, build_env) or {}).get("PATH") or search_path
    for name in recipe.requires:
        reason = _requirement_gap(name, search_path, build_env)
        if reason and reason not in reasons:
            reasons.append(reason)
    return tuple(reasons)


def _requirement_gap(name: str, search_path: str, env: Mapping[str, str]) -> str:
    if name in ("oneapi", "sycl"):
        if shutil.which("icpx", path=search_path):
            return ""
        return f"{'oneAPI' if name == 'oneapi' else 'SYCL'} compiler icpx not found on PATH"
    if name == "cuda":
        cuda_home = env.get("CUDA_HOME") or env.get("CUDA_PATH") or ""
        if shutil.which("nvcc", path=search_path) or (cuda_home and Path(cuda_home, "bin", "nvcc").is_file()):
            return ""
        return "CUDA compiler nvcc not found (PATH, CUDA_HOME)"
    if name == "xpu":
        return "" if _has_intel_gpu() else "no Intel GPU (no /dev/dri render node of vendor 0x8086)"
    tool = name.split(":", 1)[1]
    return "" if shutil.which(tool, path=search_path) else f"{tool} not found on PATH"


def _has_intel_gpu() -> bool:
    for node in Path("/sys/class/drm").glob("renderD*"):
        vendor = node / "device" / "vendor"
        with contextlib.suppress(OSError):
            if vendor.read_text().strip().lower() == "0x8086":
                return True
    return False


@dataclass(frozen=True)
class MachineMemory:
    available_gb: float
    swap_total_gb: float


def read_machine_memory() -> MachineMemory:
    """MemAvailable and SwapTotal from /proc/meminfo (total physical memory where that is missing)."""
    values: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            name, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                values[name] = int(parts[0]) / (1024 * 1024)
    if "MemAvailable" not in values:
        values["MemAvailable"] = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024 ** 3
    return MachineMemory(values["MemAvailable"], values.get("SwapTotal", 0.0))


@dataclass(frozen=True)
class JobPlan:
    jobs: int
    notes: tuple[str, ...] = ()


def plan_jobs(resources: Resources, requested: int | None, *, cpu_count: int, memory: MachineMemory) -> JobPlan:
    """min(jobs, floor(available memory / memory per job)), at least 1; says when swap the recipe wants is absent."""
    wanted = requested or resources.jobs or cpu_count
    jobs, notes = wanted, []
    if resources.mem_per_job_gb:
        fit = max(1, math.floor(memory.available_gb / resources.mem_per_job_gb))
        if fit < wanted:
            jobs = fit
            notes.append(f"{wanted} jobs reduced to {fit}: {memory.available_gb:.1f} GB available at "
                         f"{resources.mem_per_job_gb:g} GB per job")
    if resources.swap_gb and memory.swap_total_gb < resources.swap_gb:
        notes.append(f"the recipe wants {resources.swap_gb:g} GB of swap and this machine has "
                     f"{memory.swap_total_gb:.1f} GB: a compile may be killed for memory; add temporary swap "
                     f"(docs/kernels.md)")
    return JobPlan(max(1, jobs), tuple(notes))


def launcher_env(launcher: str, env: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """Variables that route compiles through ccache/sccache (CMake launchers, prefixed CC/CXX), or a note why not."""
    if not launcher:
        return {}, ""
    if not shutil.which(launcher.split()[0], path=env.get("PATH", os.defpath)):
        return {}, f"launcher {launcher} not found on PATH; building without it"
    routed = {f"CMAKE_{lang}_COMPILER_LAUNCHER": launcher for lang in ("C", "CXX", "CUDA")}
    for var, default in (("CC", "cc"), ("CXX", "c++")):
        compiler = env.get(var, default)
        routed[var] = compiler if compiler.startswith(launcher + " ") else f"{launcher} {compiler}"
    return routed, ""


# ---- the cache -------------------------------------------------------------------------------------------------

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
        _write_json_atomic(self.last_good_dir / f"{target}.json",
                           {"target": target, "key": obj.key, "outputs": list(obj.outputs),
                            "at": _utc_stamp()})

    def new_log(self, target: str, key: str) -> Path:
        folder = self.logs / target
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{_utc_stamp()}-{key[:12]}.log"

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
            _write_json_atomic(staging / "meta.json", {**meta, "key": key, "outputs": records})
            try:
                file_operation()
                os.rename(staging, self.objects / key)
                file_operation()
            except OSError:
                if self.lookup(key) is None:    # not a concurrent twin that got there first
                    raise
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
    with dest.open("rb") as fh:
        sha = hashlib.file_digest(fh, "sha256").hexdigest()
    return {"kind": spec.kind, "path": rel, "sha256": sha, "size": dest.stat().st_size}


def last_good(cache_dir: str | Path, target: str) -> CachedObject | None:
    """The output a target's last successful build (or cache hit) left; a failed build never moves it."""
    return BuildCache(cache_dir).last_good(target)


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    file_operation()
    os.replace(tmp, path)
    file_operation()


def _utc_stamp() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---- building --------------------------------------------------------------------------------------------------

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
    base = {"target": recipe.target, "upstream": recipe.upstream, "command": recipe.command_text}
    missing = missing_requirements(recipe, env)
    if missing:
        return BuildOutcome(kind=BuildKind.SKIPPED_UNAVAILABLE, why="; ".join(missing), **base)
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
            return BuildOutcome(kind=BuildKind.WOULD_BUILD, key=key, jobs=plan.jobs, notes=plan.notes,
                                seconds=time.monotonic() - started, **base)
        return BuildOutcome(kind=BuildKind.CACHED, key=key, outputs=hit.outputs, facts=recorded,
                            seconds=time.monotonic() - started, **base)
    known_facts = dict(facts) if facts is not None else probe_toolchain(recipe, env)
    key = cache_key(recipe, source, known_facts)
    hit = cache.lookup(key)
    if hit is None and dry_run:
        plan = plan_jobs(recipe.resources, jobs, cpu_count=os.cpu_count() or 1, memory=read_machine_memory())
        return BuildOutcome(kind=BuildKind.WOULD_BUILD, key=key, facts=known_facts, jobs=plan.jobs,
                            notes=plan.notes, seconds=time.monotonic() - started, **base)
    if hit is None:
        with cache.target_lock(recipe.target):
            hit = cache.lookup(key)         # another process may have built it while we waited
            if hit is None:
                cache.sweep_staging()
                return _run_build(recipe, source, cache, key, known_facts, started, jobs=jobs,
                                  launcher=recipe.launcher if launcher is None else launcher, env=env)
    if not dry_run:
        cache.mark_good(recipe.target, hit)
    return BuildOutcome(kind=BuildKind.CACHED, key=key, outputs=hit.outputs, facts=known_facts,
                        seconds=time.monotonic() - started, **base)


def _run_build(recipe: Recipe, source: Path, cache: BuildCache, key: str, facts: dict[str, str],
               started: float, *, jobs: int | None, launcher: str, env: Mapping[str, str] | None) -> BuildOutcome:
    build_env = recipe_env(recipe, env)
    plan = plan_jobs(recipe.resources, jobs, cpu_count=os.cpu_count() or 1, memory=read_machine_memory())
    routed, launcher_note = launcher_env(launcher, build_env)
    build_env.update(routed)
    build_env.update({"MAX_JOBS": str(plan.jobs), "CMAKE_BUILD_PARALLEL_LEVEL": str(plan.jobs),
                      "PATCHQ_TARGET": recipe.target, "PATCHQ_BUILD_KEY": key})
    notes = plan.notes + ((launcher_note,) if launcher_note else ())
    common = {"target": recipe.target, "upstream": recipe.upstream, "command": recipe.command_text, "key": key,
              "jobs": plan.jobs, "launcher": launcher if routed else "", "notes": notes, "facts": facts}
    _clear_stale_outputs(recipe, source)
    log = cache.new_log(recipe.target, key)
    returncode = _run_logged(shell_argv(recipe, recipe.command, build_env), source / recipe.workdir, build_env,
                             log, header=_log_header(recipe, key, plan.jobs, facts, build_env), label=recipe.target)
    if returncode != 0:
        return _failure(recipe, cache, log, _exit_reason(returncode), started, common)
    produced, absent = _collect_outputs(recipe, source)
    if absent:
        _append_log(log, f"patchq: the build produced nothing for {', '.join(absent)}")
        return _failure(recipe, cache, log, f"no output matches {', '.join(absent)}", started, common)
    meta = {"target": recipe.target, "upstream": recipe.upstream, "facts": facts, "log": str(log),
            "built_at": _utc_stamp(), "seconds": round(time.monotonic() - started, 3)}
    stored = cache.store(key, source, produced, meta)
    cache.mark_good(recipe.target, stored)
    return BuildOutcome(kind=BuildKind.BUILT, outputs=stored.outputs, log=str(log),
                        seconds=time.monotonic() - started, **common)


def _failure(recipe: Recipe, cache: BuildCache, log: Path, why: str, started: float,
             common: dict[str, Any]) -> BuildOutcome:
    previous = cache.last_good(recipe.target)
    return BuildOutcome(kind=BuildKind.FAILED, why=why, log=str(log), log_tail=_log_tail(log),
                        previous_key=previous.key if previous else "",
                        previous_outputs=previous.outputs if previous else (),
                        seconds=time.monotonic() - started, **common)


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
    produced, absent = [], []
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


def _run_logged(argv: list[str], cwd: Path, env: Mapping[str, str], log: Path, *, header: str,
                label: str = "build") -> int:
    """Run the build in its own process group with all output in the log; an interrupt stops the whole group."""
    with log.open("wb") as sink:
        sink.write(header.encode())
        sink.flush()
        try:
            proc = subprocess.Popen(argv, cwd=cwd, env=dict(env), stdout=sink, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            sink.write(f"patchq: cannot start the build: {exc}\n".encode())
            return 127
        try:
            returncode = _wait_watching(proc, log, label)
        except BaseException:
            _stop_group(proc)
            raise
        sink.write(f"# exit {returncode}\n".encode())
    return returncode


def _wait_watching(proc: subprocess.Popen, log: Path, label: str) -> int:
    """Wait for the build, handing each new log line to the progress reporter (spinner, or -v streaming)."""
    from . import progress
    with progress.current().build(label, str(log)) as watch, log.open("rb") as tail:
        pending = b""
        while True:
            try:
                returncode = proc.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                returncode = None
            pending += tail.read()
            *lines, pending = pending.split(b"\n")
            for line in lines:
                watch.line(line.decode("utf-8", "replace"))
            watch.tick()
            if returncode is not None:
                if pending:
                    watch.line(pending.decode("utf-8", "replace"))
                return returncode


def _stop_group(proc: subprocess.Popen) -> None:
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _exit_reason(returncode: int) -> str:
    """A one-line cause; a SIGKILL is usually the kernel's OOM killer on these builds."""
    if returncode == 97:
        return "exit 97: sourcing the setup script failed"
    signum = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else 0
    name = _signal_name(signum) if signum else ""
    if not name:
        return f"exit {returncode}"
    oom = " (out of memory?)" if signum == signal.SIGKILL else ""
    return f"killed by {name}{oom}" if returncode < 0 else f"exit {returncode}: a step was killed by {name}{oom}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return ""


def _log_tail(log: Path, count: int = LOG_TAIL_LINES) -> tuple[str, ...]:
    try:
        with log.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ()
    return tuple(text.splitlines()[-count:])


def _append_log(log: Path, line: str) -> None:
    with log.open("a", encoding="utf-8") as fh:
        fh.write(line + "\n")
