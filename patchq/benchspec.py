"""A stack's `bench:` and `gates:` in pins.lock, and the metric spec that reads a number from a command's output.

Validated when the workspace loads, like everything else in pins.lock, so a typo in a benchmark's regex is one line
naming the file and line before any checkout is made, not a failure forty minutes into a trial.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import BadInput
from .model import BenchSpec, GateSpec
from .workspace import _check_keys, _require_map
from .yamlio import line_of as _line

BENCH_KEYS = {"cmd", "metric", "repeats", "warmup", "timeout", "better", "unit", "cwd", "build"}
GATE_KEYS = {"name", "cmd", "timeout", "cwd"}
GATE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MAX_REPEATS = 10_000


# ---- metric specs --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MetricSpec:
    """Where the number is: the last match of a regex's one group, or a JSON path into stdout or a file."""

    text: str
    kind: str                                   # "regex" | "json"
    regex: re.Pattern[str] | None = None
    file: str = ""                              # json: a file relative to the command's folder ("" = stdout)
    path: tuple[str | int, ...] = ()


_JSON_STEP = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]|\[\"([^\"]*)\"\]")


def parse_metric(text: str) -> MetricSpec:
    """`json:$.a.b[0]` (stdout), `json:out.json:$.a` (a file), or a regex with exactly one group."""
    if text.startswith("json:"):
        rest = text[5:]
        file, sep, path = rest.rpartition(":")
        if not sep:
            file, path = "", rest
        if file and (file.startswith("/") or ".." in Path(file).parts):
            raise ValueError(f"metric file {file!r} must be a relative path inside the command's folder")
        return MetricSpec(text, "json", file=file, path=_json_path(path))
    try:
        regex = re.compile(text, re.MULTILINE)
    except re.error as exc:
        raise ValueError(f"metric regex {text!r} does not compile: {exc}") from None
    if regex.groups != 1:
        raise ValueError(f"metric regex {text!r} has {regex.groups} groups; it needs exactly one, around the number "
                         "(or write json:PATH)")
    return MetricSpec(text, "regex", regex=regex)


def _json_path(text: str) -> tuple[str | int, ...]:
    body = text[1:] if text.startswith("$") else "." + text if text and not text.startswith((".", "[")) else text
    steps: list[str | int] = []
    pos = 0
    while pos < len(body):
        match = _JSON_STEP.match(body, pos)
        if not match:
            raise ValueError(f"JSON path {text!r} is not understood at {body[pos:]!r} (write $.key.key[0])")
        key, index, quoted = match.groups()
        steps.append(int(index) if index is not None else (key if key is not None else quoted))
        pos = match.end()
    if not steps:
        raise ValueError(f"JSON path {text!r} names nothing (write $.key)")
    return tuple(steps)


class MetricMissing(Exception):
    """The command ran but its output does not hold the number where the spec says."""


def read_metric(spec: MetricSpec, stdout: str, stderr: str, cwd: Path) -> float:
    if spec.kind == "regex":
        assert spec.regex is not None
        for stream in (stdout, stderr):
            matches = list(spec.regex.finditer(stream))
            if matches:
                return _number(matches[-1].group(1), spec)
        raise MetricMissing(f"no match for {spec.text!r} in the output")
    if spec.file:
        try:
            doc = json.loads((cwd / spec.file).read_text())
        except FileNotFoundError:
            raise MetricMissing(f"{spec.file} was not written") from None
        except (OSError, ValueError) as exc:
            raise MetricMissing(f"{spec.file} is not JSON: {exc}") from None
    else:
        doc = _json_from_stdout(stdout)
    node: Any = doc
    for step in spec.path:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            raise MetricMissing(f"{spec.text}: no {step!r} in the JSON") from None
    if isinstance(node, bool) or not isinstance(node, (int, float, str)):
        raise MetricMissing(f"{spec.text} is {type(node).__name__}, not a number")
    return _number(node, spec)


def _json_from_stdout(stdout: str) -> Any:
    try:
        return json.loads(stdout)
    except ValueError:
        pass
    for line in reversed(stdout.strip().splitlines()):      # a log, then the JSON result on its last line
        try:
            return json.loads(line)
        except ValueError:
            continue
    raise MetricMissing("stdout holds no JSON document")


def _number(raw: Any, spec: MetricSpec) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise MetricMissing(f"{spec.text}: {raw!r} is not a number") from None
    if not math.isfinite(value):
        raise MetricMissing(f"{spec.text}: {raw!r} is not a finite number")
    return value


# ---- pins.lock: bench and gates ------------------------------------------------------------------------------------

def _int(node: Any, key: str, default: int, low: int, path: Path) -> int:
    value = node.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_REPEATS:
        raise BadInput(f"{key} must be a whole number from {low} to {MAX_REPEATS}, not {value!r}", path=str(path),
                       line=_line(node, key))
    return value


def _seconds(node: Any, key: str, default: float, path: Path) -> float:
    value = node.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 7 * 86400:
        raise BadInput(f"{key} must be a number of seconds above 0, not {value!r}", path=str(path),
                       line=_line(node, key))
    return float(value)


def _text(node: Any, key: str, path: Path, *, required: bool = False) -> str:
    value = node.get(key)
    if value is None or value == "":
        if required:
            raise BadInput(f"{key!r} is required", path=str(path), line=_line(node))
        return ""
    if not isinstance(value, str):
        raise BadInput(f"{key!r} must be text", path=str(path), line=_line(node, key))
    return value


def _folder(node: Any, key: str, path: Path) -> str:
    value = _text(node, key, path)
    if value and (value.startswith("/") or ".." in Path(value).parts):
        raise BadInput(f"{key} {value!r} must be a relative folder inside the trial checkout", path=str(path),
                       line=_line(node, key))
    return value


def load_bench(stack_node: Any, stack: str, path: Path) -> BenchSpec | None:
    if stack_node.get("bench") is None:
        return None
    node = _require_map(stack_node["bench"], f"bench of stack {stack!r}", path, _line(stack_node, "bench"))
    _check_keys(node, BENCH_KEYS, f"bench of stack {stack!r}", path)
    metric = _text(node, "metric", path, required=True)
    try:
        parse_metric(metric)
    except ValueError as exc:
        raise BadInput(str(exc), path=str(path), line=_line(node, "metric")) from None
    better = _text(node, "better", path) or "higher"
    if better not in ("higher", "lower"):
        raise BadInput(f"better must be 'higher' or 'lower', not {better!r}", path=str(path),
                       line=_line(node, "better"))
    build = node.get("build") or []
    if isinstance(build, str):
        build = [b.strip() for b in build.split(",") if b.strip()]
    if not isinstance(build, list) or any(not isinstance(b, str) for b in build):
        raise BadInput("build must be a list of kernels/ target names", path=str(path), line=_line(node, "build"))
    return BenchSpec(cmd=_text(node, "cmd", path, required=True), metric=metric,
                     repeats=_int(node, "repeats", 5, 1, path), warmup=_int(node, "warmup", 1, 0, path),
                     timeout=_seconds(node, "timeout", 600.0, path), better=better, unit=_text(node, "unit", path),
                     cwd=_folder(node, "cwd", path), build=tuple(build))


def load_gates(stack_node: Any, stack: str, path: Path) -> tuple[GateSpec, ...]:
    items = stack_node.get("gates")
    if items is None:
        return ()
    if not isinstance(items, list):
        raise BadInput(f"gates of stack {stack!r} must be a list of {{name, cmd, timeout}}", path=str(path),
                       line=_line(stack_node, "gates"))
    gates: list[GateSpec] = []
    for index, item in enumerate(items):
        node = _require_map(item, "a gate", path, _line(items, index))
        _check_keys(node, GATE_KEYS, f"gate of stack {stack!r}", path)
        name = _text(node, "name", path, required=True)
        if not GATE_NAME.match(name):
            raise BadInput(f"gate name {name!r} must be lower-case letters, digits, '.', '_' or '-'", path=str(path),
                           line=_line(node, "name"))
        if any(g.name == name for g in gates):
            raise BadInput(f"two gates are named {name!r}", path=str(path), line=_line(node, "name"))
        gates.append(GateSpec(name=name, cmd=_text(node, "cmd", path, required=True),
                              timeout=_seconds(node, "timeout", 600.0, path), cwd=_folder(node, "cwd", path)))
    return tuple(gates)
