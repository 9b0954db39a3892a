"""The one door for YAML: every file patchq reads goes through `read` (or `parse`), every rewrite through `dump`.

Reading is guarded the same way for every file (pins.lock, series.yaml, import map files, kernels/ recipes):
a size limit, a nesting limit, and no tags, anchors or aliases (an alias bomb is refused at its first anchor,
before anything is built). Errors are one line, `path:line: message`. The libyaml fast path (`fastyaml`) answers
when it is sure; otherwise ruamel's round-trip loader, with the guard inside its scan, reads the file and names
the problem. Rewrites load with the round-trip loader (`editable=True`) so that comments and quoting survive.
"""

from __future__ import annotations

import datetime
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scanner import RoundTripScanner

from . import fastyaml
from .errors import BadInput

MAX_YAML_BYTES = 4 * 1024 * 1024
MAX_YAML_DEPTH = 64


# ---- reading -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class YamlDoc:
    """A document read through the guard: its data (mappings and lists that know their lines) and its file."""

    data: Any
    path: str

    def line_of(self, node: Any = None, key: Any = None) -> int | None:
        """1-based line of `key` in `node` (the top of the document by default), or of the node itself."""
        return line_of(self.data if node is None else node, key)

    def key_lines(self) -> dict[str, int]:
        """Key paths such as `resources.jobs` and `inputs[2]`, each with its 1-based line, for error messages."""
        lines: dict[str, int] = {}
        _record_lines(self.data, "", lines)
        return lines

    def plain(self) -> Any:
        """The data as plain dicts, lists, str, int, float, bool, None and dates: what a safe loader returns."""
        return _plain(self.data)


def read(path: Path | str, *, what: str = "YAML file", editable: bool = False) -> YamlDoc:
    """Read and guard one YAML file; `what` names it in errors ("pins.lock", "recipe", ...)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BadInput(f"{what} not found", path=str(path)) from None
    if len(data) > MAX_YAML_BYTES:
        raise BadInput(f"{what} is {len(data)} bytes; more than {MAX_YAML_BYTES} is not a hand-written file",
                       path=str(path))
    return YamlDoc(_load(data.decode("utf-8", "replace"), str(path), editable), str(path))


def parse(text: str, path: Path | str, *, what: str = "YAML file", editable: bool = False) -> YamlDoc:
    """`read` for text the caller has already read (and decoded its own way); `path` names it in errors."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_YAML_BYTES:
        raise BadInput(f"{what} is {size} bytes; more than {MAX_YAML_BYTES} is not a hand-written file",
                       path=str(path))
    return YamlDoc(_load(text, str(path), editable), str(path))


def load(path: Path, *, what: str, editable: bool = False) -> Any:
    """The data of `read`, for callers that take line numbers from the document itself (`line_of`)."""
    return read(path, what=what, editable=editable).data


def editable(doc: Any, path: Path, what: str) -> Any:
    """The round-trip document behind `doc`, for rewriting: one read on the fast path carries no comments."""
    if doc is not None and fastyaml.is_fast(doc):
        return load(path, what=what, editable=True)
    return doc


def _load(text: str, path: str, editable: bool) -> Any:
    _flow_depth_problem(text, path)
    if not editable:
        fast = fastyaml.load(text, max_depth=MAX_YAML_DEPTH)
        if fast is not None:
            return fast
    try:
        return guarded_loader(path).load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise BadInput(f"invalid YAML: {problem}", path=path, line=line) from None
    except TypeError:            # a mapping or list used as a mapping key: legal YAML, never a patchq file
        raise BadInput("invalid YAML for patchq: a mapping or list is used as a key", path=path,
                       line=_first_line(text, re.compile(r"^\s*\?(\s|$)"))) from None
    except ValueError as exc:    # a value YAML resolves but cannot build, like the date 2026-02-30
        raise BadInput(f"invalid value: {exc} (quote it to keep it as text)", path=path,
                       line=_first_line(text, BAD_DATE, _not_a_date)) from None


def guard(text: str, path: str) -> None:
    """Refuse what `read` refuses before any loader builds it: a file over the size limit, tags, anchors and
    aliases (billion laughs), deep nesting. Other syntax errors are left to the loader that reads the text."""
    if len(text) > MAX_YAML_BYTES:
        raise BadInput(f"{len(text)} characters; more than {MAX_YAML_BYTES} is not a hand-written file", path=path)
    _flow_depth_problem(text, path)
    try:
        for _ in guarded_loader(path).scan(text):
            pass
    except YAMLError:
        return


def line_of(node: Any, key: Any = None) -> int | None:
    """1-based line of a mapping key or list item (or of the node) in its YAML file."""
    try:
        if key is not None and isinstance(node, CommentedMap):
            return int(node.lc.key(key)[0]) + 1
        if key is not None and isinstance(node, CommentedSeq):
            return int(node.lc.item(key)[0]) + 1
        return int(node.lc.line) + 1
    except (AttributeError, KeyError, TypeError, IndexError):
        return None


def _record_lines(node: Any, prefix: str, lines: dict[str, int]) -> None:
    if isinstance(node, CommentedMap):
        for key, value in node.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            found = line_of(node, key)
            if found is not None:
                lines[name] = found
            _record_lines(value, name, lines)
    elif isinstance(node, CommentedSeq):
        for index, item in enumerate(node):
            name = f"{prefix}[{index}]"
            found = line_of(node, index)
            if found is not None:
                lines[name] = found
            _record_lines(item, name, lines)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, datetime.datetime):      # ruamel's TimeStamp keeps extra state; a safe loader's does not
        return datetime.datetime(value.year, value.month, value.day, value.hour, value.minute, value.second,
                                 value.microsecond, tzinfo=value.tzinfo)
    return value


BAD_DATE = re.compile(r"(?<![\w.-])(\d{4})-(\d\d?)-(\d\d?)(?![\w.-])")


def _not_a_date(match: re.Match[str]) -> bool:
    try:
        datetime.date(*(int(g) for g in match.groups()))
    except ValueError:
        return True
    return False


def _first_line(text: str, pattern: re.Pattern[str],
                accept: Callable[[re.Match[str]], bool] = lambda m: True) -> int | None:
    """The 1-based line where `pattern` first matches (and `accept` agrees), to point a person at it."""
    for number, line in enumerate(text.splitlines(), 1):
        if any(accept(m) for m in pattern.finditer(line)):
            return number
    return None


# ---- the guard inside ruamel's scan ----------------------------------------------------------------------------------

class _GuardedScanner(RoundTripScanner):
    """ruamel's own scanner, refusing tags, anchors/aliases and deep nesting as the tokens go by.

    Checking inside the one scan that loading does anyway (instead of scanning the document twice) halves the cost
    of reading a 200-patch series.yaml. Every token reaches the parser through `get_token`, and the whole document
    is composed before anything is constructed, so a refused token stops the load before it can matter: the
    scanner sees what YAML sees (an anchor named `&.x`, one after a quoted '#', `*word*` inside a plain sentence
    are all judged right), and nesting is bounded before the composer, which recurses once per level, goes deep.
    """

    def get_token(self) -> Any:
        token = super().get_token()
        kind = type(token).__name__
        if kind in _COUNTED:
            self.patchq_depth = getattr(self, "patchq_depth", 0) + _COUNTED[kind]
            if self.patchq_depth > MAX_YAML_DEPTH:
                self._refuse(f"YAML nested more than {MAX_YAML_DEPTH} levels deep", token)
        elif kind == "TagToken":
            self._refuse("YAML tags (!...) are not allowed", token)
        elif kind in ("AnchorToken", "AliasToken"):
            self._refuse("YAML anchors and aliases (&x / *x) are not allowed", token)
        return token

    def _refuse(self, message: str, token: Any) -> None:
        raise BadInput(message, path=getattr(self.loader, "patchq_path", None), line=token.start_mark.line + 1)


_COUNTED = {"BlockMappingStartToken": 1, "BlockSequenceStartToken": 1, "FlowMappingStartToken": 1,
            "FlowSequenceStartToken": 1, "BlockEndToken": -1, "FlowMappingEndToken": -1, "FlowSequenceEndToken": -1}


def guarded_loader(path: Path | str) -> YAML:
    """The exact (round-trip) loader with the guard in its scanner; errors name `path`."""
    yaml = round_trip()
    yaml.Scanner = _GuardedScanner
    yaml.patchq_path = str(path)  # type: ignore[attr-defined]  # read back by the guarded scanner's errors
    return yaml


_QUOTED_OR_COMMENT = re.compile(r"""(?:(?<=[\s\[{,:])|^)(?:'(?:[^']|'')*'|"(?:[^"\\]|\\.)*")|(?:(?<=\s)|^)#[^\n]*""",
                                re.MULTILINE)
_BRACKET = re.compile(r"[\[\]{}]")
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")


def _flow_depth_problem(text: str, path: str) -> None:
    """Refuse deeply nested flow collections (`[[[[...`) in one linear pass.

    ruamel's scanner looks ahead over a whole flow collection for a possible simple key, so 5,000 opening brackets
    take it seconds before the nesting guard sees the 65th. This counts brackets first as they come (fast: a
    hand-written file never gets near the limit); only past the limit does it look again with quoted strings and
    comments blanked out, so that brackets inside them do not count. Whatever it misjudges, the guard inside the
    scan still judges.
    """
    if text.count("[") + text.count("{") <= MAX_YAML_DEPTH or _bracket_depth(text)[0] <= MAX_YAML_DEPTH:
        return
    plain = _QUOTED_OR_COMMENT.sub(lambda m: " " * len(m.group(0).replace("\n", "")) + "\n" * m.group(0).count("\n"),
                                   text)
    deepest, line = _bracket_depth(plain)
    if deepest > MAX_YAML_DEPTH:
        raise BadInput(f"YAML nested more than {MAX_YAML_DEPTH} levels deep", path=path, line=line)


def _bracket_depth(text: str) -> tuple[int, int]:
    """The deepest bracket nesting of `text` and the 1-based line where it first passes the limit (0: never)."""
    depth = deepest = 0
    for char in _NOT_BRACKETS.sub("", text):
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if depth > MAX_YAML_DEPTH:
                break
        else:
            depth = max(0, depth - 1)
    if deepest <= MAX_YAML_DEPTH:
        return deepest, 0
    depth = 0
    for match in _BRACKET.finditer(text):          # again, only to name the line
        depth = depth + 1 if match.group(0) in "[{" else max(0, depth - 1)
        if depth > MAX_YAML_DEPTH:
            return deepest, text.count("\n", 0, match.start()) + 1
    return deepest, 0


# ---- writing ---------------------------------------------------------------------------------------------------------

def round_trip() -> YAML:
    """ruamel's round-trip loader/dumper in patchq's layout: quotes kept, no wrapping, 2/4/2 indentation."""
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def dump(data: Any, *, like: Path | None = None) -> bytes:
    """YAML text for `data`; with `like` (the file being rewritten), in that file's layout.

    ruamel drops what comes before a `---` line (comments included) and the `---` and `...` markers themselves, and
    writes its own indentation: a rewrite keeps the original's text before `---` and from `...` on byte for byte,
    and indents block mappings and sequences the way the original does.
    """
    yaml = round_trip()
    head = tail = ""
    if like is not None:
        try:
            original = like.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            original = ""
        head, tail = _document_frame(original)
        mapping, sequence, offset = _indentation(original)
        yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    buf = io.StringIO()
    yaml.dump(data, buf)
    return (head + buf.getvalue() + tail).encode()


def dump_block(data: Any, *, like_text: str) -> str:
    """YAML text for `data` indented the way `like_text` indents its blocks, with no document markers: a piece to
    put into that text."""
    yaml = round_trip()
    mapping, sequence, offset = _indentation(like_text)
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    buf = io.StringIO()
    yaml.dump(data, buf)
    return buf.getvalue()


_START = re.compile(r"^---(?:[ \t].*)?$", re.MULTILINE)
_END = re.compile(r"^\.\.\.(?:[ \t].*)?$", re.MULTILINE)


def _document_frame(text: str) -> tuple[str, str]:
    """The text up to and including a `---` line that only comments precede, and from a `...` line to the end."""
    head = tail = ""
    start = _START.search(text)
    if start and all(not ln.strip() or ln.lstrip().startswith(("#", "%")) for ln in text[:start.start()].splitlines()):
        head = text[:start.end()] + "\n"
    end = _END.search(text, start.end() if start else 0)
    if end:
        tail = text[end.start():]
        if not tail.endswith("\n"):
            tail += "\n"
    return head, tail


_KEY = re.compile(r"^( *)[^\s#-][^:#]*:(?:\s|$)")


def _indentation(text: str) -> tuple[int, int, int]:
    """(mapping, sequence, offset) as ruamel's `indent()` takes them, read from how `text` indents its blocks;
    patchq's own layout (2, 4, 2) where the text does not say."""
    mapping, sequence, offset = 2, 4, 2
    lines = text.splitlines()
    parents: list[int] = []          # indents of keys that open a block (`key:` with nothing after)
    found_map = found_seq = False
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip(" "))
        while parents and parents[-1] >= indent and not (line.lstrip().startswith("- ") and parents[-1] == indent):
            parents.pop()
        if line.lstrip().startswith("- ") and parents and not found_seq:
            offset = indent - parents[-1]
            sequence = offset + 2
            found_seq = True
        elif _KEY.match(line) and parents and not found_map and indent > parents[-1]:
            mapping = indent - parents[-1]
            found_map = True
        if _KEY.match(line) and line.rstrip().endswith(":"):
            parents.append(indent)
        if found_map and found_seq:
            break
    return mapping, sequence, offset
