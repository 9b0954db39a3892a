"""Env-flag extraction: every place a source file reads (or sets) an environment variable.

Lab patches gate nearly every change behind an environment variable that defaults to off, and `patchq flags` audits
them. Python is read with `ast`, so a docstring that merely mentions `os.environ.get("X")` is not a read; C/C++, shell
and CMake are read with small lexers that know where comments and literals are, so only code counts. Each read says
where it is, its default, how its value is compared, and whether that default turns the gated path on.

Conventions worth knowing when reading the results:
- `default_on` describes the gated path, not the variable: `if not os.getenv("X"):` is on by default.
- A string used as a truth value counts as off when it is empty, "0", "false", "no" or "off" (the lab's intent),
  even where Python would call `"0"` true.
- `compared_to` joins the alternatives of a membership test with "|": `... in ("1", "true")` gives "1|true".
- A read whose name is computed at run time is reported with name "<dynamic>", never dropped.
"""

from __future__ import annotations

import ast
import bisect
import operator
import re
import warnings
from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from typing import Callable, Iterator

from .model import FlagIdiom, FlagRead

DYNAMIC = "<dynamic>"

_PY_SUFFIXES = frozenset({".py", ".pyi"})
_C_SUFFIXES = frozenset({".c", ".cc", ".cpp", ".cxx", ".h", ".hh", ".hpp", ".cu", ".cuh", ".sycl", ".inl"})
_SHELL_SUFFIXES = frozenset({".sh", ".bash", ".zsh", ".env"})
_SHEBANG = re.compile(r"#!\s*(\S+)(?:[ \t]+([^\n]*))?")
_SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh"})

_OFF_WORDS = frozenset({"", "0", "false", "no", "off"})
_ON_WORDS = frozenset({"1", "true", "yes", "on"})
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


# ------------------------------------------------------------------------------------------------------ public API

def read_flag_reads(path: str, text: str) -> list[FlagRead]:
    """All env reads in one file's text; language chosen from the path (and shebang). Never raises on bad source:
    Python that does not parse falls back to a careful line scanner and still reports what it can."""
    return [found.read for found in _find_all(path, text)]


def reads_in_lines(path: str, text: str, lines: set[int], *, removed: bool = False) -> list[FlagRead]:
    """Only the reads whose expression touches one of the given 1-based lines: the lines a patch adds, or with
    removed=True the pre-image lines it removes (those reads are marked removed=True)."""
    wanted = [found.read for found in _find_all(path, text) if found.touches(lines)]
    return [replace(read, removed=True) for read in wanted] if removed else wanted


def analysis_kind(path: str, text: str) -> str | None:
    """What decides a file's reads besides its bytes: its language, and for shell whether it is a dotenv file.
    Two files with the same bytes and the same kind have the same reads (the path only labels them)."""
    language = language_of(path, text=text.replace("\r\n", "\n").replace("\r", "\n"))
    if language == "shell" and PurePosixPath(path.replace("\\", "/")).name.lower().endswith(".env"):
        return "shell-env"
    return language


def located_reads(path: str, text: str) -> list[Located]:
    """Every read of a file with the lines its expression spans (what `reads_in_lines` filters); cacheable by
    content and `analysis_kind`."""
    return _find_all(path, text)


def reads_touching(located: list[Located], lines: set[int], *, path: str, removed: bool = False) -> list[FlagRead]:
    """`reads_in_lines` over reads located before (in this file's text, possibly under another path)."""
    wanted = [found.read for found in located if found.touches(lines)]
    return [replace(read, path=path, removed=removed) if read.path != path or removed else read for read in wanted]


def language_of(path: str, *, text: str | None = None) -> str | None:
    """"python" | "c" | "shell" | "cmake" | None. An extensionless file is a script only by its shebang, so it is
    recognised when its text is given."""
    name = PurePosixPath(path.replace("\\", "/")).name.lower()
    if name == "cmakelists.txt" or name.endswith(".cmake"):
        return "cmake"
    if name == ".env":
        return "shell"
    suffix = PurePosixPath(name).suffix
    if suffix in _PY_SUFFIXES:
        return "python"
    if suffix in _C_SUFFIXES:
        return "c"
    if suffix in _SHELL_SUFFIXES:
        return "shell"
    if not suffix and text is not None:
        return _language_of_shebang(text)
    return None


def is_default_off(read: FlagRead) -> bool | None:
    """True when leaving the variable unset keeps the gated path off; None when that cannot be known.

    Uses the extractor's `default_on` when it worked one out, else judges the recorded default by the idiom, so a
    FlagRead built by hand (from a run profile, say) is judged the same way."""
    on = read.default_on if read.default_on is not None else _default_on_from_fields(read)
    return None if on is None else not on


# ------------------------------------------------------------------------------------------------------ shared parts

@dataclass(frozen=True)
class _Found:
    """A read and the lines its expression spans, so a patch that touches any of them counts."""

    read: FlagRead
    first: int
    last: int
    column: int = 0

    def touches(self, lines: set[int]) -> bool:
        if self.last - self.first < len(lines):
            return any(line in lines for line in range(self.first, self.last + 1))
        return any(self.first <= line <= self.last for line in lines)


Located = _Found


class _Unknown:
    """The value a variable would have when unset, where that cannot be worked out."""

    def __repr__(self) -> str:
        return "<unknown>"


_UNKNOWN = _Unknown()


def _find_all(path: str, text: str) -> list[_Found]:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    finder = _FINDERS.get(language_of(path, text=text) or "")
    if finder is None:
        return []
    return sorted(finder(path, text), key=lambda f: (f.read.line, f.column, f.read.name))


def _language_of_shebang(text: str) -> str | None:
    match = _SHEBANG.match(text)
    if match is None:
        return None
    program = match.group(1).rsplit("/", 1)[-1]
    if program == "env":
        words = [w for w in (match.group(2) or "").split() if not w.startswith("-")]
        program = words[0].rsplit("/", 1)[-1] if words else ""
    if program in _SHELLS:
        return "shell"
    if re.fullmatch(r"python[0-9.]*", program):
        return "python"
    return None


def _flag_truth(value: object) -> object:
    """Truth of a value the way flags are meant: "0", "false", "no", "off" and "" are off. Unknown stays unknown."""
    if value is _UNKNOWN:
        return _UNKNOWN
    if value is None:
        return False
    if isinstance(value, str):
        return value.strip().lower() not in _OFF_WORDS
    try:
        return bool(value)
    except Exception:  # an exotic literal's __bool__; nothing to judge
        return _UNKNOWN


def _boolean_word(value: object) -> bool | None:
    """On/off for a value used as text: only words that plainly mean on or off decide."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return {0: False, 1: True}.get(value)  # type: ignore[call-overload]
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _OFF_WORDS:
            return False
        if word in _ON_WORDS:
            return True
    return None


def _numeric_on(value: object, idiom: FlagIdiom) -> bool | None:
    """A number read as a tunable: 0 is off, an int 1 is on, anything else is a size, not a switch."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if value == 0:
        return False
    if idiom is FlagIdiom.INT and value == 1:
        return True
    return None


def _parse_number(value: object, kind: type) -> object:
    if value is _UNKNOWN or value is None:
        return _UNKNOWN
    if isinstance(value, (bool, int, float)):
        return kind(value)
    if isinstance(value, str):
        try:
            return kind(value.strip())
        except ValueError:
            return _UNKNOWN
    return _UNKNOWN


def _default_on_from_fields(read: FlagRead) -> bool | None:
    idiom, default = read.idiom, read.default
    if idiom is FlagIdiom.PRESENCE:
        return False
    if idiom is FlagIdiom.TRUTHY:
        truth = _flag_truth(default)
        return truth if isinstance(truth, bool) else None
    if idiom is FlagIdiom.EQUALS:
        if read.compared_to is None:
            return None
        return default is not None and default in read.compared_to.split("|")
    if idiom in (FlagIdiom.INT, FlagIdiom.FLOAT):
        return _numeric_on(_parse_number(default, int if idiom is FlagIdiom.INT else float), idiom)
    return _boolean_word(default)


def _squash(source: str) -> str:
    """One-line form of a read's source for reports."""
    return " ".join(source.split())


def _unquote(word: str) -> str:
    if len(word) >= 2 and word[0] == word[-1] and word[0] in "\"'":
        return word[1:-1]
    return word


class _Lines:
    """Offset -> 1-based line number."""

    def __init__(self, text: str) -> None:
        self._starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def of(self, offset: int) -> int:
        return bisect.bisect_right(self._starts, offset)

    def start(self, line: int) -> int:
        return self._starts[line - 1]


def _located(read: FlagRead, first: int, last: int, column: int = 0) -> _Found:
    return _Found(read, min(first, read.line), max(last, read.line), column)


# ------------------------------------------------------------------------------------------------------ Python

_STR_METHODS = frozenset({"lower", "upper", "strip", "lstrip", "rstrip", "casefold", "title"})
_BOOL_PARSERS = frozenset({"bool", "strtobool", "str2bool", "str_to_bool", "to_bool", "parse_bool", "as_bool"})
_NUMBER_PARSERS = {"int": (int, FlagIdiom.INT), "float": (float, FlagIdiom.FLOAT)}
_REGISTRY_ATTR = re.compile(r"[A-Z][A-Z0-9_]*\Z")
_COMPARISONS: dict[type, Callable[[object, object], object]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge}
_SCOPE_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef,
                ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_PY_MENTIONS_ENV = re.compile(r"environ|getenv|putenv|envs")
_UNBOUND_MEANING = {"os": "os", "environ": "environ", "getenv": "getenv", "envs": "envs"}


@dataclass(frozen=True)
class _Binding:
    """What one statement binds a name to: an import's meaning, a parameter, or an assigned value to judge later."""

    kind: str                      # os environ getenv putenv envs vllm envs_value param assigned other
    node: ast.AST | None = None    # the assigned value, for "assigned"
    detail: str = ""               # the attribute name, for "envs_value"


class _Scope:
    """Names bound in one function, class, comprehension or module body."""

    def __init__(self, parent: _Scope | None, kind: str, node: ast.AST | None = None) -> None:
        self.parent = parent
        self.kind = kind           # "module" | "function" | "class" | "comprehension"
        self.node = node
        self.bindings: dict[str, list[_Binding]] = {}

    def bind(self, name: str, binding: _Binding) -> None:
        self.bindings.setdefault(name, []).append(binding)

    def owner(self, name: str) -> _Scope | None:
        """The scope whose binding a use of `name` here sees (class bodies are invisible to nested functions)."""
        scope: _Scope | None = self
        first = True
        while scope is not None:
            if (first or scope.kind != "class") and name in scope.bindings:
                return scope
            scope, first = scope.parent, False
        return None


@dataclass(frozen=True)
class _Meaning:
    kind: str                      # a _Binding kind, or "const" (then value is the string), or "unbound"
    value: str | None = None


@dataclass(frozen=True)
class _Sim:
    """The variable's value when unset, followed up through the expression that consumes it."""

    value: object
    idiom: FlagIdiom
    compared_to: str | None = None
    decided: bool = False          # the value is now a yes/no decision, not the raw text
    fallback: str | None = None    # a default supplied by `or "1"` after the read

    def judged(self, value: object, text_idiom: FlagIdiom) -> _Sim:
        idiom = text_idiom if self.idiom is FlagIdiom.STRING and not self.decided else self.idiom
        return replace(self, value=value, idiom=idiom, decided=True)

    def truth(self) -> object:
        return self.value if self.decided else _flag_truth(self.value)


@dataclass(frozen=True)
class _Move:
    node: ast.AST
    sim: _Sim
    grow: bool = True              # the consuming node belongs to the read's expression
    stop: bool = False


@dataclass(frozen=True)
class _Core:
    """Where a read happens, before its context is judged."""

    node: ast.AST                  # the expression whose value is the variable's value (or the presence test)
    scope: _Scope
    name_node: ast.AST
    name: str | None               # None: computed at run time
    default_node: ast.AST | None
    kind: str                      # "value" | "required" | "presence" | "set" | "registry"
    negated: bool = False          # presence test written `not in`
    value_node: ast.AST | None = None  # the value a "set" stores


@dataclass(frozen=True)
class _Accessor:
    """A function of this file that passes one of its parameters to an env read: `def flag(name, default="0")`."""

    function: ast.FunctionDef | ast.AsyncFunctionDef
    core: _Core
    name_param: str
    default_param: str | None      # the parameter that supplies the default
    bound_method: bool
    choice: ast.IfExp | None = None  # `"1" if default else "0"`: the default picked by the parameter's truth


def _python_reads(path: str, text: str) -> list[_Found]:
    if not _PY_MENTIONS_ENV.search(text):
        return []  # every Python idiom names one of these; skipping the parse keeps big files cheap
    tree = _parse_python(text)
    if tree is None:
        tree = _salvage_python(text)
    try:
        return _PythonFile(path, text, tree).reads()
    except RecursionError:
        return []


def _parse_python(source: str) -> ast.Module | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ast.parse(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
            return None


class _PythonFile:
    """One parsed Python file: who binds which name, where each env read is, and how its value is consumed."""

    def __init__(self, path: str, text: str, tree: ast.Module) -> None:
        self.path = path
        self.text = text
        self.segments = _Segments(text)
        self.parents: dict[ast.AST, ast.AST] = {}
        self.scope_of: dict[ast.AST, _Scope] = {}
        self.module_scope = _Scope(None, "module", tree)
        self._meanings: dict[tuple[int, str], _Meaning] = {}
        self._resolving: set[tuple[int, str]] = set()
        self._bind_block(self.module_scope, tree.body)
        self._index(tree)

    # -- scopes ---------------------------------------------------------------------------------------------------

    def _index(self, tree: ast.Module) -> None:
        """Parents and scopes of every node, iteratively: deep expressions must not exhaust the stack."""
        stack: list[tuple[ast.AST, _Scope]] = [(tree, self.module_scope)]
        while stack:
            node, scope = stack.pop()
            self.scope_of[node] = scope
            inner, inner_children = self._child_scope(node, scope)
            for child in ast.iter_child_nodes(node):
                self.parents[child] = node
                stack.append((child, inner if id(child) in inner_children else scope))

    def _child_scope(self, node: ast.AST, scope: _Scope) -> tuple[_Scope, set[int]]:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            inner = _Scope(scope, "function", node)
            for arg in _parameters(node.args):
                inner.bind(arg.arg, _Binding("param"))
            body = node.body if isinstance(node.body, list) else [node.body]
            self._bind_block(inner, body)
            return inner, {id(n) for n in body}
        if isinstance(node, ast.ClassDef):
            inner = _Scope(scope, "class", node)
            self._bind_block(inner, node.body)
            return inner, {id(n) for n in node.body}
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            inner = _Scope(scope, "comprehension", node)
            for generator in node.generators:
                for name in _target_names(generator.target):
                    inner.bind(name, _Binding("other"))
            return inner, {id(n) for n in ast.iter_child_nodes(node)}
        return scope, set()

    def _bind_block(self, scope: _Scope, body: list[ast.AST]) -> None:
        """Record what each statement of a body binds, without entering nested functions or classes."""
        stack = list(body)
        while stack:
            node = stack.pop()
            for name, binding in _bindings_of(node):
                scope.bind(name, binding)
            if not isinstance(node, _SCOPE_NODES):
                stack.extend(ast.iter_child_nodes(node))

    def meaning(self, name: str, scope: _Scope) -> _Meaning:
        owner = scope.owner(name)
        if owner is None:
            return _Meaning(_UNBOUND_MEANING.get(name, "unbound"))
        key = (id(owner), name)
        if key in self._meanings:
            return self._meanings[key]
        if key in self._resolving:
            return _Meaning("other")
        self._resolving.add(key)
        try:
            meanings = [self._meaning_of(binding, owner) for binding in owner.bindings[name]]
        finally:
            self._resolving.discard(key)
        merged = _merge_meanings(meanings)
        self._meanings[key] = merged
        return merged

    def _meaning_of(self, binding: _Binding, scope: _Scope) -> _Meaning:
        if binding.kind == "envs_value":
            return _Meaning("envs_value", binding.detail)
        if binding.kind != "assigned" or binding.node is None:
            return _Meaning(binding.kind)
        value = binding.node
        if self.is_environ(value, scope):
            return _Meaning("environ")
        if self.is_getenv(value, scope):
            return _Meaning("getenv")
        if isinstance(value, ast.Name) and self.meaning(value.id, scope).kind in ("os", "envs"):
            return self.meaning(value.id, scope)
        constant = self.constant(value, scope)
        return _Meaning("const", constant) if constant is not None else _Meaning("other")

    # -- what a node is ---------------------------------------------------------------------------------------------

    def _names(self, node: ast.AST, scope: _Scope, kinds: tuple[str, ...]) -> bool:
        return isinstance(node, ast.Name) and self.meaning(node.id, scope).kind in kinds

    def is_environ(self, node: ast.AST, scope: _Scope) -> bool:
        """os.environ, an alias of it, or a copy of it (subprocess environments are built from copies)."""
        if isinstance(node, ast.Attribute):
            return node.attr == "environ" and self._names(node.value, scope, ("os",))
        if isinstance(node, ast.Name):
            return self._names(node, scope, ("environ",))
        if isinstance(node, ast.Call) and not node.keywords:
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr == "copy" and not node.args:
                return self.is_environ(func.value, scope)
            if isinstance(func, ast.Name) and func.id == "dict" and len(node.args) == 1:
                return self.is_environ(node.args[0], scope)
        return False

    def is_getenv(self, node: ast.AST, scope: _Scope) -> bool:
        if isinstance(node, ast.Attribute):
            if node.attr == "getenv":
                return self._names(node.value, scope, ("os",))
            return node.attr == "get" and self.is_environ(node.value, scope)
        return self._names(node, scope, ("getenv",))

    def is_putenv(self, node: ast.AST, scope: _Scope) -> bool:
        if isinstance(node, ast.Attribute):
            return node.attr == "putenv" and self._names(node.value, scope, ("os",))
        return self._names(node, scope, ("putenv",))

    def is_envs_module(self, node: ast.AST, scope: _Scope) -> bool:
        if isinstance(node, ast.Attribute):
            return node.attr == "envs" and self._names(node.value, scope, ("vllm",))
        return self._names(node, scope, ("envs",))

    def constant(self, node: ast.AST | None, scope: _Scope, depth: int = 0) -> str | None:
        """The string a name expression always has: literals, constants, f-strings and `+` of those."""
        if node is None or depth > 40:
            return None
        if isinstance(node, ast.Constant):
            return node.value if isinstance(node.value, str) else None
        if isinstance(node, ast.Name):
            meaning = self.meaning(node.id, scope)
            return meaning.value if meaning.kind == "const" else None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left = self.constant(node.left, scope, depth + 1)
            right = self.constant(node.right, scope, depth + 1) if left is not None else None
            return None if right is None else left + right  # type: ignore[operator]
        if isinstance(node, ast.JoinedStr):
            return self._joined_constant(node, scope, depth)
        return None

    def _joined_constant(self, node: ast.JoinedStr, scope: _Scope, depth: int) -> str | None:
        parts = []
        for part in node.values:
            if isinstance(part, ast.FormattedValue):
                if part.format_spec is not None or part.conversion not in (-1, 115):
                    return None
                part = part.value
            text = self.constant(part, scope, depth + 1)
            if text is None:
                return None
            parts.append(text)
        return "".join(parts)

    def literal(self, node: ast.AST | None, scope: _Scope) -> tuple[str | None, object]:
        """(text as written, value) of a default or compared value; the value is _UNKNOWN when not a literal."""
        if node is None:
            return None, None
        constant = self.constant(node, scope)
        if constant is not None:
            return constant, constant
        try:
            value = ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return self.source(node), _UNKNOWN
        if value is None:
            return None, None
        if isinstance(value, (str, bool, int, float)):
            return str(value), value
        return self.source(node), _UNKNOWN

    def source(self, node: ast.AST) -> str:
        return _squash(self.segments.of(node))

    # -- finding reads ----------------------------------------------------------------------------------------------

    def reads(self) -> list[_Found]:
        cores = [core for node, scope in self.scope_of.items() for core in self._cores_at(node, scope)]
        accessors = self._accessors(cores)
        found = [self._found_for(core) for core in cores] + self._accessor_calls(accessors)
        registry, merged = self._registry_entries(found)
        return [item for item in found if id(item) not in merged] + registry

    def _cores_at(self, node: ast.AST, scope: _Scope) -> list[_Core]:
        if isinstance(node, ast.Call):
            return self._call_cores(node, scope)
        if isinstance(node, ast.Subscript) and self.is_environ(node.value, scope):
            return self._subscript_cores(node, scope)
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], (ast.In, ast.NotIn)):
            if self.is_environ(node.comparators[0], scope):
                return [self._core(node, scope, node.left, None, "presence",
                                   negated=isinstance(node.ops[0], ast.NotIn))]
            return []
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            if _REGISTRY_ATTR.match(node.attr) and self.is_envs_module(node.value, scope):
                return [_Core(node, scope, node, node.attr, None, "registry")]
            return []
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            meaning = self.meaning(node.id, scope)
            if meaning.kind == "envs_value":
                return [_Core(node, scope, node, meaning.value, None, "registry")]
        return []

    def _core(self, node: ast.AST, scope: _Scope, name_node: ast.AST, default_node: ast.AST | None, kind: str,
              *, negated: bool = False, value_node: ast.AST | None = None) -> _Core:
        return _Core(node, scope, name_node, self.constant(name_node, scope), default_node, kind, negated, value_node)

    def _call_cores(self, call: ast.Call, scope: _Scope) -> list[_Core]:
        func = call.func
        name_node = _argument(call, 0, "key")
        if self.is_getenv(func, scope):
            if name_node is None:
                return []
            return [self._core(call, scope, name_node, _argument(call, 1, "default"), "value")]
        if isinstance(func, ast.Attribute) and self.is_environ(func.value, scope):
            return self._environ_method_cores(call, func.attr, scope)
        if self.is_putenv(func, scope) and name_node is not None:
            return [self._core(call, scope, name_node, None, "set", value_node=_argument(call, 1, "value"))]
        if isinstance(func, ast.Attribute) and func.attr == "is_set" and self.is_envs_module(func.value, scope):
            if name_node is not None:
                return [self._core(call, scope, name_node, None, "presence")]
        return []

    def _environ_method_cores(self, call: ast.Call, method: str, scope: _Scope) -> list[_Core]:
        name_node = _argument(call, 0, "key")
        if method in ("setdefault", "pop") and name_node is not None:
            default = _argument(call, 1, "default")
            if method == "setdefault" and isinstance(self.parents.get(call), ast.Expr):
                return [self._core(call, scope, name_node, None, "set", value_node=default)]
            return [self._core(call, scope, name_node, default, "value")]
        if method == "update":
            return self._update_cores(call, scope)
        return []

    def _update_cores(self, call: ast.Call, scope: _Scope) -> list[_Core]:
        cores = []
        for argument in call.args[:1]:
            if isinstance(argument, ast.Dict):
                cores += [self._core(call, scope, key, None, "set", value_node=value)
                          for key, value in zip(argument.keys, argument.values) if key is not None]
        for keyword in call.keywords:
            if keyword.arg is not None:
                name = ast.Constant(keyword.arg)
                ast.copy_location(name, keyword.value)
                cores.append(_Core(call, scope, name, keyword.arg, None, "set", value_node=keyword.value))
        return cores

    def _subscript_cores(self, node: ast.Subscript, scope: _Scope) -> list[_Core]:
        key = node.slice
        if isinstance(node.ctx, ast.Load):
            return [self._core(node, scope, key, None, "required")]
        if isinstance(node.ctx, ast.Store):
            parent = self.parents.get(node)
            value = parent.value if isinstance(parent, (ast.Assign, ast.AnnAssign)) else None
            return [self._core(node, scope, key, None, "set", value_node=value)]
        return []

    # -- judging a read ---------------------------------------------------------------------------------------------

    def _found_for(self, core: _Core) -> _Found:
        if core.kind == "set":
            text, value = self.literal(core.value_node, core.scope)
            parent = self.parents.get(core.node)
            outer = parent if isinstance(parent, (ast.Assign, ast.AnnAssign)) else core.node
            return self._emit(core, outer, _Sim(value, FlagIdiom.SET), default=text,
                              default_on=_boolean_word(value))
        if core.kind == "registry":
            sim, outer = self.simulate(core.node, _Sim(_UNKNOWN, FlagIdiom.REGISTRY))
            return self._emit(core, outer, sim, default=None, default_on=None)
        if core.kind == "presence":
            sim, outer = self.simulate(core.node, _Sim(core.negated, FlagIdiom.PRESENCE, decided=True))
            return self._emit(core, outer, sim, default=None, default_on=_final_on(sim))
        text, value = self.literal(core.default_node, core.scope)
        if core.kind == "required":
            value = _UNKNOWN
        sim, outer = self.simulate(core.node, _Sim(value, FlagIdiom.STRING))
        if text is None and sim.fallback is not None:
            text = sim.fallback
        return self._emit(core, outer, sim, default=text, default_on=_final_on(sim))

    def _emit(self, core: _Core, outer: ast.AST, sim: _Sim, *, default: str | None,
              default_on: bool | None) -> _Found:
        read = FlagRead(
            name=core.name if core.name is not None else DYNAMIC, path=self.path, line=_line(core.name_node),
            language="python", default=default, idiom=sim.idiom, compared_to=sim.compared_to,
            default_on=default_on, dynamic=core.name is None, expression=self.source(outer))
        first, last = _span(core.node, outer)
        return _located(read, first, last, getattr(core.name_node, "col_offset", 0))

    def simulate(self, start: ast.AST, sim: _Sim) -> tuple[_Sim, ast.AST]:
        """Follow the value up through the expressions that consume it (int(), .lower(), ==, not, if ...)."""
        node, outer, growing = start, start, True
        for _ in range(64):
            parent = self.parents.get(node)
            move = self._step(node, parent, sim) if parent is not None else None
            if move is None:
                break
            node, sim = move.node, move.sim
            growing = growing and move.grow
            if growing:
                outer = node
            if move.stop:
                break
        return sim, outer

    def _step(self, node: ast.AST, parent: ast.AST, sim: _Sim) -> _Move | None:
        scope = self.scope_of.get(parent, self.module_scope)
        if isinstance(parent, ast.Call) and parent.args and parent.args[0] is node:
            return self._through_call(parent, sim)
        if isinstance(parent, ast.Attribute) and parent.attr in _STR_METHODS:
            call = self.parents.get(parent)
            if isinstance(call, ast.Call) and call.func is parent:
                return _Move(call, replace(sim, value=_string_method(sim.value, parent.attr)))
            return None
        if isinstance(parent, ast.Compare) and len(parent.ops) == 1:
            return _Move(parent, self._compared(node, parent, sim, scope))
        if isinstance(parent, ast.UnaryOp) and isinstance(parent.op, ast.Not):
            return _Move(parent, sim.judged(_negate(sim.truth()), FlagIdiom.TRUTHY))
        if isinstance(parent, ast.NamedExpr) and parent.value is node:
            return _Move(parent, sim)
        if isinstance(parent, ast.BoolOp):
            return self._through_boolop(node, parent, sim, scope)
        if _is_test(parent, node):
            return _Move(node, sim.judged(sim.truth(), FlagIdiom.TRUTHY), grow=False, stop=True)
        return None

    def _through_call(self, call: ast.Call, sim: _Sim) -> _Move | None:
        func = call.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name in _NUMBER_PARSERS and isinstance(func, ast.Name):
            kind, idiom = _NUMBER_PARSERS[name]
            if sim.decided:
                return _Move(call, replace(sim, value=_parse_number(sim.value, kind)))
            new_idiom = idiom if sim.idiom is FlagIdiom.STRING else sim.idiom
            return _Move(call, replace(sim, value=_parse_number(sim.value, kind), idiom=new_idiom))
        if name in _BOOL_PARSERS:
            return _Move(call, sim.judged(sim.truth(), FlagIdiom.TRUTHY))
        if name == "str" and isinstance(func, ast.Name):
            return _Move(call, sim)
        return None

    def _through_boolop(self, node: ast.AST, boolop: ast.BoolOp, sim: _Sim, scope: _Scope) -> _Move | None:
        """`a and b` in a condition judges each operand's truth; `os.getenv("X") or "1"` supplies a default."""
        if self._in_boolean_position(boolop):
            return _Move(boolop, sim.judged(sim.truth(), FlagIdiom.TRUTHY), grow=False)
        if isinstance(boolop.op, ast.Or) and boolop.values[0] is node and len(boolop.values) > 1:
            text, value = self.literal(boolop.values[1], scope)
            if value is _UNKNOWN or not isinstance(value, str):
                return None
            unset = sim.value in (None, "")
            return _Move(boolop, replace(sim, value=value if unset else sim.value,
                                         fallback=text if unset else sim.fallback))
        return None

    def _in_boolean_position(self, node: ast.AST) -> bool:
        for _ in range(64):
            parent = self.parents.get(node)
            if parent is None:
                return False
            if _is_test(parent, node):
                return True
            if isinstance(parent, ast.Call) and isinstance(parent.func, ast.Name) and parent.func.id == "bool":
                return True
            if not (isinstance(parent, ast.BoolOp) or (isinstance(parent, ast.UnaryOp)
                                                       and isinstance(parent.op, ast.Not))):
                return False
            node = parent
        return False

    def _compared(self, node: ast.AST, compare: ast.Compare, sim: _Sim, scope: _Scope) -> _Sim:
        op = compare.ops[0]
        on_left = compare.left is node
        other = compare.comparators[0] if on_left else compare.left
        if isinstance(op, (ast.Is, ast.IsNot)) and isinstance(other, ast.Constant) and other.value is None:
            value = _UNKNOWN if sim.value is _UNKNOWN else sim.value is None
            return sim.judged(_negate(value) if isinstance(op, ast.IsNot) else value, FlagIdiom.PRESENCE)
        literals = self._literals(other, scope)
        if isinstance(op, (ast.In, ast.NotIn)):
            value = _membership(sim.value, literals, on_left, other)
            value = _negate(value) if isinstance(op, ast.NotIn) else value
            compared = "|".join(_as_text(v) for v in literals) if literals else None
            return replace(sim.judged(value, FlagIdiom.EQUALS), compared_to=compared)
        compare_op = _COMPARISONS.get(type(op))
        if literals is None or len(literals) != 1 or isinstance(other, (ast.Tuple, ast.List, ast.Set)):
            judged = sim.judged(_UNKNOWN, FlagIdiom.EQUALS if compare_op in (operator.eq, operator.ne)
                                else FlagIdiom.UNKNOWN)
            return judged
        literal = literals[0]
        left, right = (sim.value, literal) if on_left else (literal, sim.value)
        value = _apply(compare_op, left, right)
        idiom = FlagIdiom.EQUALS if compare_op in (operator.eq, operator.ne) else FlagIdiom.UNKNOWN
        return replace(sim.judged(value, idiom), compared_to=_as_text(literal))

    def _literals(self, node: ast.AST, scope: _Scope) -> list[object] | None:
        elements = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
        values = []
        for element in elements:
            text, value = self.literal(element, scope)
            if value is _UNKNOWN or (value is None and text is None and not _is_none(element)):
                return None
            values.append(value)
        return values

    # -- accessor functions, registry entries -----------------------------------------------------------------------

    def _accessors(self, cores: list[_Core]) -> dict[str, _Accessor]:
        """Functions whose parameter names the variable they read, so their calls are reads too."""
        accessors: dict[str, _Accessor] = {}
        for core in cores:
            if core.name is not None or core.kind not in ("value", "required", "presence"):
                continue
            if not isinstance(core.name_node, ast.Name):
                continue
            owner = core.scope.owner(core.name_node.id)
            function = owner.node if owner is not None else None
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if self.meaning(core.name_node.id, core.scope).kind != "param":
                continue
            previous = accessors.get(function.name)
            if previous is not None and (previous.core.kind != "presence" or core.kind == "presence"):
                continue
            default_param, choice = _default_parameter(core.default_node, function)
            accessors[function.name] = _Accessor(function, core, core.name_node.id, default_param,
                                                 _is_bound_method(function, self.scope_of.get(function)), choice)
        return accessors

    def _accessor_calls(self, accessors: dict[str, _Accessor]) -> list[_Found]:
        if not accessors:
            return []
        found = []
        for node, scope in self.scope_of.items():
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if isinstance(func, ast.Name) and func.id in accessors:
                accessor, via_attribute = accessors[func.id], False
            elif isinstance(func, ast.Attribute) and func.attr in accessors and accessors[func.attr].bound_method:
                accessor, via_attribute = accessors[func.attr], True
            else:
                continue
            item = self._accessor_call(node, scope, accessor, via_attribute)
            if item is not None:
                found.append(item)
        return found

    def _accessor_call(self, call: ast.Call, scope: _Scope, accessor: _Accessor, via_attribute: bool) -> _Found | None:
        name_node = _call_argument(call, accessor.function, accessor.name_param, via_attribute)
        if name_node is None or _inside(call, accessor.function, self.parents):
            return None
        core = accessor.core
        text, value = self._accessor_default(call, scope, accessor, via_attribute)
        start_value = _UNKNOWN if core.kind == "required" else value
        if core.kind == "presence":
            inner = _Sim(core.negated, FlagIdiom.PRESENCE, decided=True)
        else:
            inner = _Sim(start_value, FlagIdiom.STRING)
        sim, _ = self.simulate(core.node, inner)
        outer: ast.AST = call
        if sim.idiom is FlagIdiom.STRING and not sim.decided:
            sim, outer = self.simulate(call, sim)
        name = self.constant(name_node, scope)
        read = FlagRead(
            name=name if name is not None else DYNAMIC, path=self.path, line=_line(name_node), language="python",
            default=text if text is not None else sim.fallback, idiom=sim.idiom, compared_to=sim.compared_to,
            default_on=_final_on(sim), dynamic=name is None, expression=self.source(outer))
        first, last = _span(call, outer)
        return _located(read, first, last, getattr(name_node, "col_offset", 0))

    def _accessor_default(self, call: ast.Call, scope: _Scope, accessor: _Accessor,
                          via_attribute: bool) -> tuple[str | None, object]:
        function = accessor.function
        if accessor.default_param is None:
            return self.literal(accessor.core.default_node, accessor.core.scope)
        given = _call_argument(call, function, accessor.default_param, via_attribute)
        if given is not None:
            text, value = self.literal(given, scope)
        else:
            declared = _parameter_default(function, accessor.default_param)
            outer_scope = self.scope_of.get(function, self.module_scope)
            text, value = self.literal(declared, outer_scope) if declared is not None else (None, None)
        if accessor.choice is None:
            return text, value
        if value is _UNKNOWN:
            return self.source(accessor.choice), _UNKNOWN
        branch = accessor.choice.body if value else accessor.choice.orelse
        return self.literal(branch, accessor.core.scope)

    def _registry_entries(self, found: list[_Found]) -> tuple[list[_Found], set[int]]:
        """vLLM's envs.py: `environment_variables = {"VLLM_X": lambda: ..., }` entries, named by their keys.

        The read inside an entry that reads the key's own variable is folded into the entry (it lends its default),
        so the registry does not report each variable twice."""
        entries: list[_Found] = []
        merged: set[int] = set()
        for table in self._registry_tables():
            for key, value in zip(table.keys, table.values):
                if not (isinstance(key, ast.Constant) and isinstance(key.value, str) and _ENV_NAME.match(key.value)):
                    continue
                inner = self._entry_read(key.value, value, found)
                if inner is not None:
                    merged.add(id(inner))
                entries.append(self._registry_found(key, value, inner))
        return entries, merged

    def _registry_tables(self) -> Iterator[ast.Dict]:
        for statement in self.module_scope.node.body:  # type: ignore[union-attr]
            if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
                target, value = statement.targets[0], statement.value
            elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
                target, value = statement.target, statement.value
            else:
                continue
            if isinstance(target, ast.Name) and isinstance(value, ast.Dict) and self._is_registry(target.id, value):
                yield value

    def _is_registry(self, name: str, table: ast.Dict) -> bool:
        if name == "environment_variables":
            return True
        scope = self.module_scope
        for value in table.values:
            if isinstance(value, ast.Lambda):
                for node in ast.walk(value.body):
                    if self._cores_at(node, self.scope_of.get(node, scope)):
                        return True
        return False

    def _entry_read(self, name: str, value: ast.AST, found: list[_Found]) -> _Found | None:
        first, last = _line(value), getattr(value, "end_lineno", None) or _line(value)
        for item in found:
            if item.read.name == name and first <= item.read.line <= last and item.first >= first:
                return item
        return None

    def _registry_found(self, key: ast.Constant, value: ast.AST, inner: _Found | None) -> _Found:
        default, default_on, compared = None, None, None
        if inner is not None:
            default, default_on, compared = inner.read.default, inner.read.default_on, inner.read.compared_to
        else:
            default = self._helper_default(key.value, value)
            default_on = _boolean_word(default)
        expression = f"{self.source(key)}: {self.source(value)}"
        read = FlagRead(name=key.value, path=self.path, line=_line(key), language="python", default=default,
                        idiom=FlagIdiom.REGISTRY, compared_to=compared, default_on=default_on,
                        expression=expression)
        end = getattr(value, "end_lineno", None) or _line(value)
        return _located(read, _line(key), end, key.col_offset)

    def _helper_default(self, name: str, value: ast.AST) -> str | None:
        """`env_with_choices("VLLM_X", "auto", [...])`: a helper call naming the key lends its second argument."""
        for node in ast.walk(value):
            if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
                if node.args[0].value == name:
                    text, _ = self.literal(_argument(node, 1, "default"), self.module_scope)
                    return text
        return None


class _Segments:
    """Source text of nodes. ast.get_source_segment splits the whole file on every call; this splits it once."""

    def __init__(self, text: str) -> None:
        self._lines = text.split("\n")
        self._encoded: dict[int, bytes] = {}

    def _cut(self, line: int, start: int | None, end: int | None) -> str:
        """Part of a line between two UTF-8 byte columns (ast's columns count bytes)."""
        text = self._lines[line]
        if text.isascii():
            return text[start:end]
        encoded = self._encoded.setdefault(line, text.encode("utf-8"))
        return encoded[start:end].decode("utf-8", "replace")

    def of(self, node: ast.AST) -> str:
        first, last = getattr(node, "lineno", None), getattr(node, "end_lineno", None)
        start, end = getattr(node, "col_offset", None), getattr(node, "end_col_offset", None)
        if None in (first, last, start, end) or not 1 <= first <= last <= len(self._lines):
            return ""
        if first == last:
            return self._cut(first - 1, start, end)
        middle = self._lines[first:last - 1]
        return "\n".join([self._cut(first - 1, start, None), *middle, self._cut(last - 1, None, end)])


def _final_on(sim: _Sim) -> bool | None:
    if sim.value is _UNKNOWN:
        return None
    if sim.decided:
        return bool(sim.value)
    if sim.idiom in (FlagIdiom.INT, FlagIdiom.FLOAT):
        return _numeric_on(sim.value, sim.idiom)
    return _boolean_word(sim.value)


def _negate(value: object) -> object:
    return value if value is _UNKNOWN else not value


def _apply(compare: Callable[[object, object], object] | None, left: object, right: object) -> object:
    if compare is None or left is _UNKNOWN or right is _UNKNOWN:
        return _UNKNOWN
    try:
        return bool(compare(left, right))
    except TypeError:
        return _UNKNOWN


def _membership(value: object, literals: list[object] | None, on_left: bool, other: ast.AST) -> object:
    if literals is None or value is _UNKNOWN:
        return _UNKNOWN
    if isinstance(other, (ast.Tuple, ast.List, ast.Set)):
        return value in literals if on_left else _UNKNOWN
    container, member = (literals[0], value) if on_left else (value, literals[0])
    if isinstance(container, str) and isinstance(member, str):
        return member in container
    return _UNKNOWN


def _string_method(value: object, method: str) -> object:
    return getattr(value, method)() if isinstance(value, str) else _UNKNOWN


def _as_text(value: object) -> str:
    return value if isinstance(value, str) else str(value)


def _is_none(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _is_test(parent: ast.AST, node: ast.AST) -> bool:
    if isinstance(parent, (ast.If, ast.While, ast.IfExp, ast.Assert)):
        return parent.test is node
    if isinstance(parent, ast.comprehension):
        return any(condition is node for condition in parent.ifs)
    return False


def _line(node: ast.AST) -> int:
    return max(1, getattr(node, "lineno", 1) or 1)


def _span(core: ast.AST, outer: ast.AST) -> tuple[int, int]:
    first = min(_line(core), _line(outer))
    last = max(getattr(core, "end_lineno", None) or _line(core), getattr(outer, "end_lineno", None) or _line(outer))
    return first, last


def _inside(node: ast.AST, ancestor: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    for _ in range(10_000):
        node = parents.get(node)  # type: ignore[assignment]
        if node is None:
            return False
        if node is ancestor:
            return True
    return False


def _argument(call: ast.Call, index: int, keyword: str) -> ast.AST | None:
    """A call's argument by position or keyword; after a `*args` the position is unknowable."""
    if index < len(call.args):
        return None if any(isinstance(a, ast.Starred) for a in call.args[:index]) else call.args[index]
    for item in call.keywords:
        if item.arg == keyword:
            return item.value
    return None


def _default_parameter(default: ast.AST | None, function: ast.FunctionDef | ast.AsyncFunctionDef
                       ) -> tuple[str | None, ast.IfExp | None]:
    """Which parameter of an accessor supplies the default: the read's own default argument, the test of
    `"1" if default else "0"`, or (when the read has none) a parameter called default/fallback."""
    params = [a.arg for a in _parameters(function.args)]
    if isinstance(default, ast.Name) and default.id in params:
        return default.id, None
    if isinstance(default, ast.IfExp) and isinstance(default.test, ast.Name) and default.test.id in params:
        return default.test.id, default
    if default is None:
        named = [p for p in params if re.fullmatch(r"_?(?:default|fallback)(?:_?val(?:ue)?)?", p)]
        return (named[0], None) if named else (None, None)
    return None, None


def _parameters(arguments: ast.arguments) -> list[ast.arg]:
    params = list(arguments.posonlyargs) + list(arguments.args) + list(arguments.kwonlyargs)
    params += [a for a in (arguments.vararg, arguments.kwarg) if a is not None]
    return params


def _positional_parameters(function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    return [a.arg for a in list(function.args.posonlyargs) + list(function.args.args)]


def _parameter_default(function: ast.FunctionDef | ast.AsyncFunctionDef, name: str) -> ast.AST | None:
    positional = _positional_parameters(function)
    defaults = function.args.defaults
    if name in positional:
        index = positional.index(name) - (len(positional) - len(defaults))
        return defaults[index] if index >= 0 else None
    for arg, default in zip(function.args.kwonlyargs, function.args.kw_defaults):
        if arg.arg == name:
            return default
    return None


def _call_argument(call: ast.Call, function: ast.FunctionDef | ast.AsyncFunctionDef, name: str,
                   via_attribute: bool) -> ast.AST | None:
    for item in call.keywords:
        if item.arg == name:
            return item.value
    positional = _positional_parameters(function)
    if name not in positional:
        return None
    index = positional.index(name) - (1 if via_attribute else 0)
    if 0 <= index < len(call.args) and not any(isinstance(a, ast.Starred) for a in call.args[:index + 1]):
        return call.args[index]
    return None


def _is_bound_method(function: ast.AST, scope: _Scope | None) -> bool:
    """A method called as `self.flag("X")`: its first parameter is not passed at the call."""
    if scope is None or scope.kind != "class":
        return False
    decorators = {d.id for d in getattr(function, "decorator_list", []) if isinstance(d, ast.Name)}
    return "staticmethod" not in decorators and bool(_positional_parameters(function))  # type: ignore[arg-type]


def _target_names(target: ast.AST) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [name for element in target.elts for name in _target_names(element)]
    if isinstance(target, ast.Starred):
        return _target_names(target.value)
    return []


def _bindings_of(node: ast.AST) -> list[tuple[str, _Binding]]:
    """The names one statement (or walrus) binds, and to what."""
    if isinstance(node, ast.Import):
        return [_import_binding(alias) for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        return [_from_import_binding(node, alias) for alias in node.names if alias.name != "*"]
    if isinstance(node, ast.Assign):
        return [(name, _Binding("assigned", node.value) if isinstance(target, ast.Name) else _Binding("other"))
                for target in node.targets for name in _target_names(target)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
        return [(node.target.id, _Binding("assigned", node.value))]
    if isinstance(node, (ast.AugAssign, ast.For, ast.AsyncFor)):
        return [(name, _Binding("other")) for name in _target_names(node.target)]
    if isinstance(node, ast.NamedExpr):
        return [(name, _Binding("other")) for name in _target_names(node.target)]
    if isinstance(node, (ast.With, ast.AsyncWith)):
        return [(name, _Binding("other")) for item in node.items if item.optional_vars is not None
                for name in _target_names(item.optional_vars)]
    if isinstance(node, ast.ExceptHandler) and node.name:
        return [(node.name, _Binding("other"))]
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [(node.name, _Binding("other"))]
    return []


def _import_binding(alias: ast.alias) -> tuple[str, _Binding]:
    if alias.asname:
        kind = {"os": "os", "vllm.envs": "envs", "vllm": "vllm"}.get(alias.name, "other")
        return alias.asname, _Binding(kind)
    top = alias.name.split(".")[0]
    return top, _Binding({"os": "os", "vllm": "vllm"}.get(top, "other"))


def _from_import_binding(node: ast.ImportFrom, alias: ast.alias) -> tuple[str, _Binding]:
    bound = alias.asname or alias.name
    module = node.module or ""
    if node.level == 0 and module == "os":
        return bound, _Binding({"environ": "environ", "getenv": "getenv", "putenv": "putenv"}.get(alias.name, "other"))
    if alias.name == "envs" and (module == "vllm" or (node.level > 0 and module in ("", "vllm"))):
        return bound, _Binding("envs")
    if module in ("vllm.envs", "envs") and _REGISTRY_ATTR.match(alias.name):
        return bound, _Binding("envs_value", detail=alias.name)
    return bound, _Binding("other")


def _merge_meanings(meanings: list[_Meaning]) -> _Meaning:
    """One name bound several ways: any environ binding wins (never drop a read), constants must agree."""
    kinds = {m.kind for m in meanings}
    for preferred in ("environ", "getenv", "putenv", "envs"):
        if preferred in kinds:
            return _Meaning(preferred)
    if len(kinds) == 1:
        values = {m.value for m in meanings}
        return meanings[0] if len(values) == 1 else _Meaning("other")
    return _Meaning("other")


# -- Python that does not parse --------------------------------------------------------------------------------------

_PY_LEXEME = re.compile(r"#|'''|\"\"\"|'|\"")
_PY_STRING_BODY = {
    "'''": re.compile(r"(?:[^'\\]|\\[\s\S]|'(?!''))*"), '"""': re.compile(r'(?:[^"\\]|\\[\s\S]|"(?!""))*'),
    "'": re.compile(r"(?:[^'\\\n]|\\[\s\S])*"), '"': re.compile(r'(?:[^"\\\n]|\\[\s\S])*')}
_PY_READ_START = re.compile(
    r"(?<![\w.])(?:[A-Za-z_]\w*\s*\.\s*)*(?:environ\s*(?:\.\s*(?:get|setdefault|pop)\s*(?=\()|(?=\[))|getenv\s*(?=\())")
_PY_PRESENCE = re.compile(r"(['\"])[^'\"\n]*\1\s+(?:not\s+)?in\s+(?:[A-Za-z_]\w*\s*\.\s*)*environ\b")
_PY_WRAPPER_BEFORE = re.compile(r"(?<![\w.])(?:int|float|bool|str)\s*\(\s*\Z")
_PY_METHOD_AFTER = re.compile(r"\s*\.\s*(?:lower|upper|strip|lstrip|rstrip|casefold)\s*\(\s*\)")
_PY_COMPARE_AFTER = re.compile(r"\s*(?:==|!=|>=|<=|>|<|not\s+in\b|in\b|is\s+not\b|is\b)\s*")
_CLOSING_PAREN = re.compile(r"\s*\)")
_BRACKET = re.compile(r"[()\[\]{}]")
_PY_HEADER = re.compile(r"(?:if|elif|while|for|with|def|class|try|except|else|finally|async)\b")


def _salvage_python(text: str) -> ast.Module:
    """Broken Python: parse each logical line on its own, and cut reads out of the lines that still fail."""
    code = _python_code(text)
    lines = _Lines(text)
    body: list[ast.stmt] = []
    for start, end in _python_units(code):
        if not code[start:end].strip():
            continue
        statements = _parse_unit(text[start:end], lines.of(start))
        if statements is None:
            statements = _read_snippets(text, code, start, end, lines)
        body.extend(statements)
    return ast.Module(body=body, type_ignores=[])


def _python_code(text: str) -> str:
    """The text with comments and string contents blanked (quotes kept), so only code is searched."""
    out = list(text)
    position = 0
    while True:
        match = _PY_LEXEME.search(text, position)
        if match is None:
            break
        if match.group() == "#":
            end = text.find("\n", match.start())
            end = len(text) if end < 0 else end
            _blank(out, match.start(), end, keep_newlines=True)
            position = end
            continue
        quote = match.group()
        body = _PY_STRING_BODY[quote].match(text, match.end())
        closed = text.startswith(quote, body.end())  # type: ignore[union-attr]
        _blank(out, match.end(), body.end(), keep_newlines=False)  # type: ignore[union-attr]
        position = body.end() + (len(quote) if closed else 0)  # type: ignore[union-attr]
    return "".join(out)


def _blank(out: list[str], start: int, end: int, *, keep_newlines: bool) -> None:
    for index in range(start, min(end, len(out))):
        if not (keep_newlines and out[index] == "\n"):
            out[index] = " "


def _python_units(code: str) -> Iterator[tuple[int, int]]:
    """Logical lines: a newline ends a statement unless brackets are open or the line ends with a backslash."""
    depth, start = 0, 0
    for match in re.finditer(r"[()\[\]{}\n]", code):
        char, index = match.group(), match.start()
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth = max(0, depth - 1)
        elif depth == 0 and not (index > 0 and code[index - 1] == "\\"):
            yield start, index
            start = index + 1
    yield start, len(code)


def _parse_unit(source: str, line: int) -> list[ast.stmt] | None:
    """One logical line as statements at their real lines and columns, or None when it does not parse alone."""
    stripped = source.lstrip(" \t")
    indent = source[:len(source) - len(stripped)]
    if stripped.startswith("elif") and re.match(r"elif\b", stripped):
        source = indent + "if  " + stripped[4:]
    if _PY_HEADER.match(stripped) and source.rstrip().endswith(":"):
        source += "\n" + indent + " pass"
    elif stripped.startswith("@"):
        source += "\n" + indent + "def _(): pass"
    wrapped = "if 1:\n" + source if indent else source
    tree = _parse_python(wrapped)
    if tree is None or not tree.body:
        return None
    statements = tree.body[0].body if indent and isinstance(tree.body[0], ast.If) else tree.body
    for statement in statements:
        ast.increment_lineno(statement, line - 2 if indent else line - 1)
    return statements


def _read_snippets(text: str, code: str, start: int, end: int, lines: _Lines) -> list[ast.stmt]:
    """Cut each env read (with its int()/.lower()/== context) out of a line that does not parse, and parse that."""
    statements = []
    spans = [_widen_read(code, m.start(), m.end(), start, end)
             for m in _PY_READ_START.finditer(code, start, end)]
    spans += [(m.start(), m.end(), m.start(), m.end()) for m in _PY_PRESENCE.finditer(code, start, end)]
    for wide_start, wide_end, core_start, core_end in spans:
        if core_end <= core_start:
            continue
        parsed = _parse_snippet(text, wide_start, wide_end, lines)
        if parsed is None and (wide_start, wide_end) != (core_start, core_end):
            parsed = _parse_snippet(text, core_start, core_end, lines)
        if parsed is not None:
            statements.append(parsed)
    return statements


def _widen_read(code: str, start: int, opener: int, lo: int, hi: int) -> tuple[int, int, int, int]:
    """(wide start, wide end, core start, core end): the read plus the int()/.lower()/== around it."""
    close = _balanced_end(code, opener, hi)
    if close is None:
        return start, start, start, start
    wide_start, wide_end = start, close
    while True:
        before = _PY_WRAPPER_BEFORE.search(code, lo, wide_start)
        after = _CLOSING_PAREN.match(code, wide_end, hi)
        if before is None or after is None:
            break
        wide_start, wide_end = before.start(), after.end()
    while (method := _PY_METHOD_AFTER.match(code, wide_end, hi)) is not None:
        wide_end = method.end()
    compare = _PY_COMPARE_AFTER.match(code, wide_end, hi)
    if compare is not None:
        operand_end = _operand_end(code, compare.end(), hi)
        if operand_end is not None:
            wide_end = operand_end
    return wide_start, wide_end, start, close


def _balanced_end(code: str, opener: int, hi: int) -> int | None:
    """Index just past the bracket that closes the one at `opener` (string contents are already blanked)."""
    depth = 0
    for match in _BRACKET.finditer(code, opener, hi):
        depth += 1 if match.group() in "([{" else -1
        if depth == 0:
            return match.end()
    return None


def _operand_end(code: str, index: int, hi: int) -> int | None:
    """End of a literal operand after a comparison: a string, a number, None, or a bracketed collection."""
    match = re.compile(r"""[rRbBuU]?(['"])[ ]*\1|-?\d+(?:\.\d+)?|None\b|True\b|False\b""").match(code, index, hi)
    if match is not None:
        return match.end()
    if index < hi and code[index] in "([{":
        return _balanced_end(code, index, hi)
    return None


def _parse_snippet(text: str, start: int, end: int, lines: _Lines) -> ast.stmt | None:
    """Parse text[start:end] alone, keeping the line and byte column it has in the file."""
    line = lines.of(start)
    prefix = text[lines.start(line):start]
    column = len(prefix.encode("utf-8"))
    snippet = text[start:end]
    source = snippet if column == 0 else "(" + " " * (column - 1) + snippet + ")"
    tree = _parse_python(source)
    if tree is None or len(tree.body) != 1 or not isinstance(tree.body[0], ast.Expr):
        return None
    ast.increment_lineno(tree.body[0], line - 1)
    return tree.body[0]


# ------------------------------------------------------------------------------------------------------ C / C++

_C_LEXEME = re.compile(r"//|/\*|\"|'")
_C_STRING_BODY = re.compile(r'(?:[^"\\\n]|\\[\s\S])*')
_C_CHAR_BODY = re.compile(r"(?:[^'\\\n]|\\[\s\S])*")
_C_RAW_PREFIXES = frozenset({"R", "LR", "uR", "UR", "u8R"})
_C_GETENV = re.compile(r"(?<![\w.>:$])(?:std\s*::\s*|::\s*)?(?:secure_getenv|getenv)\s*\(")
_C_SETENV = re.compile(r"(?<![\w.>:$])(?:std\s*::\s*|::\s*)?setenv\s*\(")
_C_DEFINE = re.compile(r'^[ \t]*#[ \t]*define[ \t]+([A-Za-z_]\w*)[ \t]+(?=")', re.M)
_C_CONST_DECL = re.compile(r'\b([A-Za-z_]\w*)\s*(?:\[\s*\d*\s*\])?\s*=\s*(?=")')
_C_DECL_WORDS = re.compile(r"\b(?:const|constexpr|char|string|string_view)\b")
_C_INT_FUNCS = r"atoi|atol|atoll|strtol|strtoll|strtoul|strtoull|stoi|stol|stoll|stoul|stoull"
_C_FLOAT_FUNCS = r"atof|strtof|strtod|strtold|stof|stod|stold"
_C_NUMBER_CALL = re.compile(rf"(?:std\s*::\s*)?({_C_INT_FUNCS}|{_C_FLOAT_FUNCS})\s*\(\s*\Z")
_C_STRING_CALL = re.compile(r"(?:std\s*::\s*)?string(?:_view)?\s*\(\s*\Z")
_C_STRCMP_CALL = re.compile(r"\b(?:strcmp|strcasecmp|strncmp|strncasecmp)\s*\(\s*\Z")
_C_ASSIGNED = re.compile(r"([A-Za-z_]\w*)\s*(?<![=!<>+\-*/%&|^])=\s*\Z")
_C_PROTOTYPE_ARG = re.compile(r"(?:const\s+)?(?:char|wchar_t)\b[\s*]*\w*(?:\s*,.*)?", re.S)
_C_HEADER = re.compile(r"([A-Za-z_]\w*)\s*\(([^()]*)\)\s*(?:const\s*)?(?:noexcept\s*)?(?:try\s*)?\{")
_C_GETENV_IDENTIFIER = re.compile(r"(?<![\w.>:])(?:std\s*::\s*|::\s*)?(?:secure_getenv|getenv)\s*\(\s*"
                                  r"([A-Za-z_]\w*)\s*\)")
_C_AT_TERNARY = re.compile(rf"(?P<var>[A-Za-z_]\w*)\s*\?\s*(?:std\s*::\s*)?(?P<func>{_C_INT_FUNCS}|{_C_FLOAT_FUNCS})"
                           r"\s*\(\s*(?P<arg>[A-Za-z_]\w*)\s*\)\s*:\s*(?P<default>-?[\w.]+)")
_C_NUMBER_BEFORE = re.compile(rf"(?:std\s*::\s*)?\b(?P<func>{_C_INT_FUNCS}|{_C_FLOAT_FUNCS}|sscanf)\s*\(\s*\Z")
_C_GUARD_BEFORE = re.compile(rf"\b(?P<var>[A-Za-z_]\w*)\s*&&\s*(?:std\s*::\s*)?(?:{_C_INT_FUNCS}|{_C_FLOAT_FUNCS})"
                             r"\s*\(\s*\Z")
_C_NOT_FUNCTIONS = frozenset({"if", "while", "for", "switch", "catch", "return", "sizeof", "defined"})
_C_KNOWN_ACCESSORS = {"get_sycl_env": (0, 1, FlagIdiom.INT)}  # llama.cpp ggml-sycl: get_sycl_env("GGML_SYCL_X", 0)


@dataclass(frozen=True)
class _CAccessor:
    name_index: int
    default_index: int | None
    idiom: FlagIdiom
    header: int = -1               # offset of the function's own name, which is not a call


@dataclass(frozen=True)
class _CContext:
    idiom: FlagIdiom
    start: int
    end: int
    compared_to: str | None = None
    default: str | None = None
    default_on: bool | None = None


class _CSource:
    """One C/C++ file with comments and literal contents blanked, and its string constants known."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.text = text
        self.code, self.literals = _mask_c(text)
        self.lines = _Lines(text)
        self.constants = self._constants()

    def reads(self) -> list[_Found]:
        found = [item for m in _C_GETENV.finditer(self.code) if (item := self._getenv(m)) is not None]
        found += [item for m in _C_SETENV.finditer(self.code) if (item := self._setenv(m)) is not None]
        found += self._accessor_calls()
        return _unique_by_line(found)

    # -- names -------------------------------------------------------------------------------------------------------

    def _constants(self) -> dict[str, str]:
        """`#define FLAG "X"` and `constexpr const char* kFlag = "X";`, kept only when unambiguous."""
        seen: dict[str, set[str]] = {}
        for match in _C_DEFINE.finditer(self.code):
            value = self._literal_run(match.end(), _line_end(self.code, match.end()))
            if value is not None:
                seen.setdefault(match.group(1), set()).add(value)
        for match in _C_CONST_DECL.finditer(self.code):
            statement_start = max(self.code.rfind(c, 0, match.start()) for c in ";{}\n") + 1
            if not _C_DECL_WORDS.search(self.code, statement_start, match.start()):
                continue
            end = self.code.find(";", match.end())
            value = self._literal_run(match.end(), end) if end >= 0 else None
            if value is not None:
                seen.setdefault(match.group(1), set()).add(value)
        return {name: values.pop() for name, values in seen.items() if len(values) == 1}

    def _literal_run(self, start: int, end: int) -> str | None:
        """The value of adjacent string literals filling code[start:end] ("LLM_" "SCALER_X"), else None."""
        parts, index = [], start
        while index < end:
            while index < end and self.code[index] in " \t\n()":
                index += 1
            if index >= end:
                break
            literal = self.literals.get(index)
            if literal is None:
                return None
            parts.append(literal[1])
            index = literal[0]
        return "".join(parts) if parts else None

    def _name_of(self, start: int, end: int) -> tuple[str | None, bool]:
        """(name, is_read): a literal or constant names the variable; a prototype's parameter is no read at all."""
        argument = self.code[start:end].strip()
        if not argument or _C_PROTOTYPE_ARG.fullmatch(argument):
            return None, False
        literal = self._literal_run(start, end)
        if literal is not None:
            return literal, True
        bare = argument.strip("() \t\n")
        return self.constants.get(bare), True

    # -- getenv and friends --------------------------------------------------------------------------------------------

    def _getenv(self, match: re.Match[str]) -> _Found | None:
        if re.search(r"#\s*define\s+\Z", self.code[_line_start(self.code, match.start()):match.start()]):
            return None
        arguments = _c_arguments(self.code, match.end() - 1)
        if arguments is None or not arguments[0]:
            return None
        (arg_start, arg_end), close = arguments[0][0], arguments[1]
        name, is_read = self._name_of(arg_start, arg_end)
        if not is_read:
            return None
        context = self._context(match.start(), close)
        return self._found(name, arg_start, context, default=context.default)

    def _setenv(self, match: re.Match[str]) -> _Found | None:
        arguments = _c_arguments(self.code, match.end() - 1)
        if arguments is None or len(arguments[0]) < 2:
            return None
        (name_start, name_end), (value_start, value_end) = arguments[0][0], arguments[0][1]
        name, is_read = self._name_of(name_start, name_end)
        if not is_read:
            return None
        value = self._literal_run(value_start, value_end)
        value = value if value is not None else _squash(self.text[value_start:value_end])
        context = _CContext(FlagIdiom.SET, match.start(), arguments[1], default=value,
                            default_on=_boolean_word(value))
        return self._found(name, name_start, context, default=value)

    def _found(self, name: str | None, name_at: int, context: _CContext, *, default: str | None) -> _Found:
        name_at = _skip_space(self.code, name_at)
        read = FlagRead(
            name=name if name is not None else DYNAMIC, path=self.path, line=self.lines.of(name_at), language="c",
            default=default, idiom=context.idiom, compared_to=context.compared_to, default_on=context.default_on,
            dynamic=name is None, expression=_squash(self.text[context.start:context.end]))
        return _located(read, self.lines.of(context.start), self.lines.of(max(context.start, context.end - 1)),
                        name_at - self.lines.start(self.lines.of(name_at)))

    def _context(self, start: int, end: int) -> _CContext:
        """How the value of `getenv(...)` at code[start:end] is used, judged from the code around it."""
        before = self.code[max(0, start - 240):start]
        after = self.code[end:end + 240]
        for judge in (self._ternary, self._null_test, self._negation, self._wrapped, self._assigned, self._truth_test):
            context = judge(start, end, before, after)
            if context is not None:
                return context
        return _CContext(FlagIdiom.STRING, start, end)

    def _ternary(self, start: int, end: int, before: str, after: str) -> _CContext | None:
        pattern = (rf"\s*\?\s*(?:std\s*::\s*)?(?P<func>{_C_INT_FUNCS}|{_C_FLOAT_FUNCS})\s*\("
                   r"\s*(?:std\s*::\s*|::\s*)?(?:secure_)?getenv\s*\([^()]*\)\s*\)\s*:\s*(?P<default>-?[\w.]+)")
        match = re.match(pattern, after)
        return self._numeric_default(match, start, end + match.end()) if match else None

    def _numeric_default(self, match: re.Match[str], start: int, end: int) -> _CContext:
        idiom = FlagIdiom.FLOAT if re.fullmatch(_C_FLOAT_FUNCS, match.group("func")) else FlagIdiom.INT
        default = match.group("default")
        value = _parse_number(default.rstrip("fFlLuU") or default, int if idiom is FlagIdiom.INT else float)
        return _CContext(idiom, start, end, default=default, default_on=_numeric_on(value, idiom))

    def _null_test(self, start: int, end: int, before: str, after: str) -> _CContext | None:
        match = re.match(r"\s*(!=|==)\s*(?:nullptr|NULL|0)\b", after)
        if match:
            return _CContext(FlagIdiom.TRUTHY, start, end + match.end(), default_on=match.group(1) == "==")
        match = re.search(r"\b(?:nullptr|NULL)\s*(!=|==)\s*\Z", before)
        if match:
            return _CContext(FlagIdiom.TRUTHY, start - len(before) + match.start(), end,
                             default_on=match.group(1) == "==")
        return None

    def _negation(self, start: int, end: int, before: str, after: str) -> _CContext | None:
        match = re.search(r"(?<![!=<>])!\s*\Z", before)
        return _CContext(FlagIdiom.TRUTHY, start - len(before) + match.start(), end, default_on=True) if match else None

    def _wrapped(self, start: int, end: int, before: str, after: str) -> _CContext | None:
        """atoi(getenv(..)), std::string(getenv(..)) == "1", strcmp(getenv(..), "1") == 0."""
        base = start - len(before)
        number = _C_NUMBER_CALL.search(before)
        if number:
            close = _c_close(self.code, end)
            compare = re.compile(r"\s*(==|!=|>=|<=|>|<)\s*(-?\d+(?:\.\d+)?)").match(self.code, close)
            idiom = FlagIdiom.FLOAT if re.fullmatch(_C_FLOAT_FUNCS, number.group(1)) else FlagIdiom.INT
            return _CContext(idiom, base + number.start(), compare.end() if compare else close,
                             compared_to=compare.group(2) if compare else None)
        string_call = _C_STRING_CALL.search(before)
        if string_call:
            close = _c_close(self.code, end)
            compare = re.compile(r'\s*(==|!=)\s*(?=")').match(self.code, close)
            literal = self.literals.get(compare.end()) if compare else None
            if compare and literal:
                return _CContext(FlagIdiom.EQUALS, base + string_call.start(), literal[0], compared_to=literal[1],
                                 default_on=False if compare.group(1) == "==" else None)
        strcmp = _C_STRCMP_CALL.search(before)
        if strcmp:
            compared = self._strcmp_tail(end)
            if compared is not None:
                literal_value, stop, positive = compared
                return _CContext(FlagIdiom.EQUALS, base + strcmp.start(), stop, compared_to=literal_value,
                                 default_on=False if positive else None)
        return None

    def _strcmp_tail(self, position: int) -> tuple[str, int, bool] | None:
        """`, "1") == 0` after strcmp's first argument: (literal, end offset, compared equal)."""
        comma = re.compile(r'\s*,\s*(?=")').match(self.code, position)
        literal = self.literals.get(comma.end()) if comma else None
        if literal is None:
            return None
        rest = re.compile(r"\s*(?:,\s*\w+\s*)?\)\s*(==|!=)\s*0\b").match(self.code, literal[0])
        return (literal[1], rest.end(), rest.group(1) == "==") if rest else None

    def _assigned(self, start: int, end: int, before: str, after: str) -> _CContext | None:
        """`const char* v = getenv("X");` then the uses of v decide the idiom."""
        match = _C_ASSIGNED.search(before, max(0, len(before) - 80))
        if match is None:
            return None
        statement_end = self.code.find(";", end)
        statement_end = len(self.code) if statement_end < 0 else statement_end + 1
        head = max(before.rfind(c, 0, match.start()) for c in ";{}\n") + 1
        condition = re.compile(r"\s*(?:if|while)\s*\(\s*").match(before, head)
        head = condition.end() if condition else _skip_space(before, head)
        return self._judge_variable(match.group(1), statement_end, start - len(before) + head, bool(condition))

    def _function_end(self, start: int) -> int:
        """Where the function holding `start` ends (a `}` in the first column), at most 6000 characters on."""
        end = re.compile(r"\n\}").search(self.code, start, start + 6000)
        return end.start() if end else min(len(self.code), start + 6000)

    def _judge_variable(self, variable: str, statement_end: int, start: int, in_condition: bool) -> _CContext:
        """The first telling use of the variable after its declaration decides how the flag is read."""
        uses = list(_word_occurrences(self.code, variable, statement_end, self._function_end(statement_end)))
        for use in uses:
            ternary = _C_AT_TERNARY.match(self.code, use)
            if ternary and ternary.group("var") == ternary.group("arg") == variable:
                return self._numeric_default(ternary, start, statement_end)
        for use in uses:
            compared = self._compared_at(use, use + len(variable))
            if compared is not None:
                return _CContext(FlagIdiom.EQUALS, start, statement_end, compared_to=compared, default_on=False)
        for use in uses:
            number = _C_NUMBER_BEFORE.search(self.code, max(0, use - 40), use)
            if number:
                idiom = FlagIdiom.FLOAT if re.fullmatch(_C_FLOAT_FUNCS, number.group("func")) else FlagIdiom.INT
                return _CContext(idiom, start, statement_end,
                                 default_on=False if self._guarded(uses, variable) else None)
        if in_condition or any(self._truth_tested(use, use + len(variable)) for use in uses):
            return _CContext(FlagIdiom.TRUTHY, start, statement_end, default_on=False)
        return _CContext(FlagIdiom.STRING, start, statement_end)

    def _compared_at(self, start: int, end: int) -> str | None:
        """The literal a use of a variable is compared with: strcmp(v, "1") == 0 or std::string(v) == "1"."""
        before = self.code[max(0, start - 40):start]
        if re.search(r"\b(?:strcmp|strcasecmp)\s*\(\s*\Z", before):
            compared = self._strcmp_tail(end)
            return compared[0] if compared is not None and compared[2] else None
        if _C_STRING_CALL.search(before):
            compare = re.compile(r'\s*\)\s*==\s*(?=")').match(self.code, end)
            literal = self.literals.get(compare.end()) if compare else None
            return literal[1] if literal else None
        return None

    def _guarded(self, uses: list[int], variable: str) -> bool:
        """`v && atoi(v)`: unset skips the parse, so the gated path is off."""
        for use in uses:
            guard = _C_GUARD_BEFORE.search(self.code, max(0, use - 80), use)
            if guard and guard.group("var") == variable:
                return True
        return False

    def _truth_tested(self, start: int, end: int) -> bool:
        before = self.code[max(0, start - 40):start]
        if re.match(r"\s*(?:(?:!=|==)\s*(?:nullptr|NULL)\b|&&|\?)", self.code[end:end + 40]):
            return True
        if re.search(r"\b(?:if|while)\s*\(\s*!?\s*\Z", before) and re.match(r"\s*[)&|]", self.code[end:end + 40]):
            return True
        return bool(re.search(r"(?<![!=<>])!\s*\Z", before))

    def _truth_test(self, start: int, end: int, before: str, after: str) -> _CContext | None:
        if re.search(r"\b(?:if|while)\s*\(\s*\Z|(?:&&|\|\|)\s*\Z|\bbool\s+\w+\s*=\s*\Z", before) or \
                re.match(r"\s*(?:&&|\|\||\?)", after):
            return _CContext(FlagIdiom.TRUTHY, start, end, default_on=False)
        return None

    # -- accessor functions -----------------------------------------------------------------------------------------

    def _accessors(self) -> dict[str, _CAccessor]:
        """Functions of this file that pass a parameter to getenv (llama.cpp's `get_sycl_env(name, default)`)."""
        accessors = {name: _CAccessor(*spec) for name, spec in _C_KNOWN_ACCESSORS.items()}
        uses = list(_C_GETENV_IDENTIFIER.finditer(self.code))
        if not uses:
            return accessors
        headers = [m for m in _C_HEADER.finditer(self.code) if m.group(1) not in _C_NOT_FUNCTIONS]
        starts = [h.start() for h in headers]
        for use in uses:
            header = self._enclosing_header(headers, starts, use.start())
            if header is None:
                continue
            params = _c_parameter_names(header.group(2))
            if use.group(1) not in params:
                continue
            name_index = params.index(use.group(1))
            accessors[header.group(1)] = _CAccessor(name_index, _c_default_index(params, name_index),
                                                     _c_return_idiom(self.code, header.start()), header.start())
        return accessors

    def _enclosing_header(self, headers: list[re.Match[str]], starts: list[int], position: int
                          ) -> re.Match[str] | None:
        """The function definition whose body holds `position` (nearest first, a few candidates)."""
        index = bisect.bisect_right(starts, position) - 1
        for header in headers[max(0, index - 8):index + 1][::-1]:
            if header.end() <= position < _c_close(self.code, header.end(), "{", "}"):
                return header
        return None

    def _accessor_calls(self) -> list[_Found]:
        accessors = self._accessors()
        pattern = re.compile(rf"(?<![\w.>:])({'|'.join(map(re.escape, accessors))})\s*\(")
        found = []
        for match in pattern.finditer(self.code):
            accessor = accessors[match.group(1)]
            if match.start() == accessor.header:
                continue
            item = self._accessor_call(match, accessor)
            if item is not None:
                found.append(item)
        return found

    def _accessor_call(self, match: re.Match[str], accessor: _CAccessor) -> _Found | None:
        arguments = _c_arguments(self.code, match.end() - 1)
        if arguments is None or len(arguments[0]) <= accessor.name_index:
            return None
        spans, close = arguments
        name_start, name_end = spans[accessor.name_index]
        if re.search(r"\b(?:const|char|int|bool|float|double|unsigned|long|std\s*::\s*string)\b[\s*&]*\w",
                     self.code[name_start:name_end]):
            return None  # a declaration, not a call
        name, _ = self._name_of(name_start, name_end)
        default = None
        if accessor.default_index is not None and accessor.default_index < len(spans):
            d_start, d_end = spans[accessor.default_index]
            literal = self._literal_run(d_start, d_end)
            default = literal if literal is not None else _squash(self.text[d_start:d_end])
        context = _CContext(accessor.idiom, match.start(), close, default=default,
                            default_on=_accessor_default_on(default, accessor.idiom))
        return self._found(name, name_start, context, default=default)


def _word_occurrences(code: str, word: str, lo: int, hi: int) -> Iterator[int]:
    """Offsets of `word` as a whole identifier in code[lo:hi] (str.find: far cheaper than a regex per variable)."""
    index = code.find(word, lo, hi)
    while index >= 0:
        before = code[index - 1] if index > 0 else " "
        after = code[index + len(word)] if index + len(word) < len(code) else " "
        if not (before.isalnum() or before == "_") and not (after.isalnum() or after == "_"):
            yield index
        index = code.find(word, index + 1, hi)


def _accessor_default_on(default: str | None, idiom: FlagIdiom) -> bool | None:
    if default is None:
        return None
    if idiom in (FlagIdiom.INT, FlagIdiom.FLOAT):
        text = default.rstrip("fFlLuU") or default
        return _numeric_on(_parse_number(text, int if idiom is FlagIdiom.INT else float), idiom)
    if idiom is FlagIdiom.TRUTHY:
        lowered = default.strip().lower()
        return None if lowered not in _OFF_WORDS | _ON_WORDS else lowered in _ON_WORDS
    return _boolean_word(default)


def _mask_c(text: str) -> tuple[str, dict[int, tuple[int, str]]]:
    """Comments and literal contents blanked (same length, newlines kept); each string literal's (end, value) by the
    offset of its opening quote."""
    out = list(text)
    literals: dict[int, tuple[int, str]] = {}
    position = 0
    while True:
        match = _C_LEXEME.search(text, position)
        if match is None:
            break
        start, lexeme = match.start(), match.group()
        if lexeme == "//":
            end = _c_line_comment_end(text, start)
            _blank(out, start, end, keep_newlines=True)
        elif lexeme == "/*":
            close = text.find("*/", start + 2)
            end = len(text) if close < 0 else close + 2
            _blank(out, start, end, keep_newlines=True)
        elif lexeme == '"':
            end, value, body_end = _c_string(text, start)
            literals[start] = (end, value)
            _blank(out, start + 1, body_end, keep_newlines=True)
        elif _is_digit_separator(text, start):
            end = start + 1
        else:
            body = _C_CHAR_BODY.match(text, start + 1)
            end = body.end() + (1 if text.startswith("'", body.end()) else 0)  # type: ignore[union-attr]
            _blank(out, start + 1, body.end(), keep_newlines=True)  # type: ignore[union-attr]
        position = max(end, start + 1)
    return "".join(out), literals


def _c_line_comment_end(text: str, start: int) -> int:
    position = start
    while True:
        end = text.find("\n", position)
        if end < 0:
            return len(text)
        if text[end - 1] != "\\":
            return end
        position = end + 1


def _c_string(text: str, start: int) -> tuple[int, str, int]:
    """(end, value, end of the blanked body) of the literal opening at `start`, raw strings included."""
    prefix_start = start
    while prefix_start > 0 and (text[prefix_start - 1].isalnum() or text[prefix_start - 1] == "_"):
        prefix_start -= 1
    if text[prefix_start:start] in _C_RAW_PREFIXES:
        open_paren = text.find("(", start + 1, start + 18)
        delimiter = text[start + 1:open_paren] if open_paren >= 0 else None
        if delimiter is not None and not re.search(r"[\s\\)]", delimiter):
            closing = ")" + delimiter + '"'
            close = text.find(closing, open_paren)
            if close >= 0:
                return close + len(closing), text[open_paren + 1:close], close + len(closing) - 1
            return len(text), text[open_paren + 1:], len(text)
    body = _C_STRING_BODY.match(text, start + 1)
    body_end = body.end()  # type: ignore[union-attr]
    value = re.sub(r"\\(.)", r"\1", text[start + 1:body_end], flags=re.S)
    closed = text.startswith('"', body_end)
    return body_end + (1 if closed else 0), value, body_end


def _is_digit_separator(text: str, index: int) -> bool:
    """C++14 `1'000'000`: a quote between digits is not a character literal."""
    if index == 0 or not text[index - 1].isalnum():
        return False
    prefix_start = index
    while prefix_start > 0 and (text[prefix_start - 1].isalnum() or text[prefix_start - 1] == "_"):
        prefix_start -= 1
    return text[prefix_start:index] not in ("L", "u", "U", "u8")


def _c_arguments(code: str, open_paren: int) -> tuple[list[tuple[int, int]], int] | None:
    """Top-level argument spans of the call whose `(` is at `open_paren`, and the offset past its `)`."""
    depth, start, spans = 0, open_paren + 1, []
    for match in re.compile(r"[()\[\]{},;]").finditer(code, open_paren):
        char, index = match.group(), match.start()
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                if code[start:index].strip() or spans:
                    spans.append((start, index))
                return spans, index + 1
        elif char == "," and depth == 1:
            spans.append((start, index))
            start = index + 1
        elif char == ";":
            return None
    return None


def _c_close(code: str, position: int, opener: str = "(", closer: str = ")") -> int:
    """Offset past the `closer` that closes an `opener` already open at `position`."""
    depth = 1
    pattern = re.compile(f"[{re.escape(opener)}{re.escape(closer)}]")
    for match in pattern.finditer(code, position):
        depth += 1 if match.group() == opener else -1
        if depth == 0:
            return match.end()
    return len(code)


def _c_parameter_names(params: str) -> list[str]:
    names = []
    for param in params.split(","):
        param = param.split("=")[0]
        words = re.findall(r"[A-Za-z_]\w*", param)
        names.append(words[-1] if len(words) >= 2 else "")
    return names


def _c_default_index(params: list[str], name_index: int) -> int | None:
    others = [i for i, p in enumerate(params) if i != name_index and p]
    named = [i for i in others if re.search(r"default|fallback|def_?val|dflt", params[i], re.I)]
    if named:
        return named[0]
    return others[0] if len(others) == 1 else None


def _c_return_idiom(code: str, name_start: int) -> FlagIdiom:
    head_start = max(code.rfind(c, 0, name_start) for c in ";{}") + 1
    words = set(re.findall(r"[A-Za-z_]\w*", code[head_start:name_start]))
    if "bool" in words:
        return FlagIdiom.TRUTHY
    if words & {"float", "double"}:
        return FlagIdiom.FLOAT
    numeric = {"int", "long", "short", "unsigned", "size_t", "ssize_t"}
    if words & numeric or any(re.fullmatch(r"u?int\d+_t", w) for w in words):
        return FlagIdiom.INT
    return FlagIdiom.STRING


def _line_start(code: str, index: int) -> int:
    return code.rfind("\n", 0, index) + 1


def _line_end(code: str, index: int) -> int:
    end = code.find("\n", index)
    return len(code) if end < 0 else end


def _skip_space(code: str, index: int) -> int:
    while index < len(code) and code[index] in " \t\n":
        index += 1
    return index


def _unique_by_line(found: list[_Found]) -> list[_Found]:
    """`getenv("X") ? atoi(getenv("X")) : 0` reads X twice on one line; report it once."""
    seen: set[tuple[str, int]] = set()
    unique = []
    for item in sorted(found, key=lambda f: (f.read.line, f.column)):
        key = (item.read.name, item.read.line)
        if item.read.dynamic or key not in seen:
            unique.append(item)
            seen.add(key)
    return unique


def _c_reads(path: str, text: str) -> list[_Found]:
    if "getenv" not in text and "setenv" not in text and not any(name in text for name in _C_KNOWN_ACCESSORS):
        return []
    return _CSource(path, text).reads()


# ------------------------------------------------------------------------------------------------------ shell

_SHELL_SPECIALS = frozenset({
    "HOME", "PATH", "PWD", "OLDPWD", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "LANGUAGE", "TMPDIR", "HOSTNAME",
    "HOSTTYPE", "OSTYPE", "MACHTYPE", "UID", "EUID", "GROUPS", "PPID", "RANDOM", "SRANDOM", "SECONDS", "LINENO",
    "IFS", "PS1", "PS2", "PS3", "PS4", "OPTARG", "OPTIND", "OPTERR", "REPLY", "SHLVL", "COLUMNS", "LINES", "DISPLAY",
    "EDITOR", "VISUAL", "PAGER", "MAIL", "MAILPATH", "MAILCHECK", "TZ", "DIRSTACK", "EPOCHSECONDS", "EPOCHREALTIME",
    "CDPATH", "MANPATH", "FUNCNAME", "PIPESTATUS", "BASH", "BASHPID", "BASHOPTS", "SHELLOPTS", "PROMPT_COMMAND",
    "POSIXLY_CORRECT", "FCEDIT", "HOSTFILE", "INPUTRC", "ZSH_VERSION", "ZSH_NAME", "KSH_VERSION", "ENV",
    "IGNOREEOF", "TIMEFORMAT", "TMOUT", "PROMPT_DIRTRIM", "GLOBIGNORE", "FIGNORE"})
_SHELL_SPECIAL_PREFIXES = ("LC_", "BASH_", "COMP_", "HIST", "READLINE_")
_SHELL_UPPER = re.compile(r"[A-Z_][A-Z0-9_]*\Z")
_SHELL_PARAM = re.compile(r"([A-Za-z_]\w*)(?:(:?[-=+?])([\s\S]*))?\Z")
_SHELL_PARAM_OTHER = re.compile(r"([A-Za-z_]\w*)(?=[%#/^,:@])")
_SHELL_ASSIGN = re.compile(r"([A-Za-z_]\w*)(\+?)=([\s\S]*)\Z")
_SHELL_HEREDOC = re.compile(r"<<(-?)[ \t]*(?:(['\"])([^'\"\n]+)\2|\\?([A-Za-z_][\w.-]*))")
_SHELL_KEYWORDS = frozenset({"if", "then", "else", "elif", "do", "while", "until", "!", "time", "{", "}", "fi",
                             "done", "exec", "command", "nohup"})
_SHELL_SEPARATORS = frozenset("\n;&|()")
_TEST_OPERATORS = {"eq": operator.eq, "ne": operator.ne, "gt": operator.gt, "ge": operator.ge, "lt": operator.lt,
                   "le": operator.le}
_FLIPPED = {"eq": "eq", "ne": "ne", "gt": "lt", "ge": "le", "lt": "gt", "le": "ge"}

# Lexer states, one character per position of the text.
_CODE, _NESTED, _DQUOTE, _SQUOTE, _COMMENT, _ESCAPED, _HEREDOC, _HEREDOC_LITERAL = "cndsxehH"
_EXPANDING = frozenset((_CODE, _NESTED, _DQUOTE, _HEREDOC))


@dataclass(frozen=True)
class _Expansion:
    name: str
    start: int
    end: int
    op: str                        # "" for $X / ${X}; ":-" "-" ":=" "=" ":+" "+" ":?" "?"; "other" for ${X%..}
    word: str


@dataclass(frozen=True)
class _Assignment:
    """`NAME=value` as one shell word: where it is and the value as written."""

    name: str
    start: int
    end: int
    value: str


_NEAR = 256        # characters around a shell expansion where the test that uses it is looked for


def _shell_reads(path: str, text: str) -> list[_Found]:
    return _ShellScript(path, text).reads()


class _ShellScript:
    """A shell script: which characters are code, which names it sets, and its reads and exports."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.text = text
        self.states = _shell_states(text)
        self.lines = _Lines(text)
        self.is_dotenv = PurePosixPath(path.replace("\\", "/")).name.lower().endswith(".env")
        self.commands = _shell_commands(text, self.states)
        self.expansions = list(self._expansions())
        self.wrapping = [e for e in self.expansions if "$" in e.word]

    def reads(self) -> list[_Found]:
        sets, assigned = self._sets()
        assigned |= {e.name for e in self.expansions if e.op in (":=", "=")}
        found = [self._set_found(assignment) for assignment in sets]
        found += [self._read_found(e) for e in self.expansions
                  if self._reported(e, assigned) and not self._inside_own_expansion(e)]
        return found

    def _inside_own_expansion(self, expansion: _Expansion) -> bool:
        """`${TP:+--tp $TP}`: the inner $TP is part of the outer read of TP."""
        return any(other.name == expansion.name and other.start < expansion.start and expansion.end <= other.end
                   for other in self.wrapping)

    # -- reads -------------------------------------------------------------------------------------------------------

    def _expansions(self) -> Iterator[_Expansion]:
        for match in re.finditer(r"\$", self.text):
            start = match.start()
            if self.states[start] not in _EXPANDING:
                continue
            expansion = self._expansion_at(start)
            if expansion is not None:
                yield expansion

    def _expansion_at(self, start: int) -> _Expansion | None:
        text = self.text
        if text.startswith("${", start):
            close = _shell_brace_end(text, start + 2)
            if close is None:
                return None
            inner = text[start + 2:close]
            match = _SHELL_PARAM.match(inner)
            if match:
                return _Expansion(match.group(1), start, close + 1, match.group(2) or "", match.group(3) or "")
            other = _SHELL_PARAM_OTHER.match(inner)
            if other and not inner[len(other.group(1)):].startswith(("[", "@")):
                return _Expansion(other.group(1), start, close + 1, "other", "")
            return None
        match = re.compile(r"[A-Za-z_]\w*").match(text, start + 1)
        return _Expansion(match.group(), start, match.end(), "", "") if match else None

    def _reported(self, expansion: _Expansion, assigned: set[str]) -> bool:
        name = expansion.name
        if _is_shell_special(name):
            return False
        upper = bool(_SHELL_UPPER.match(name))
        if expansion.op in (":-", "-", ":=", "="):
            return upper or name not in assigned
        return upper and name not in assigned

    def _read_found(self, expansion: _Expansion) -> _Found:
        start, end = _with_quotes(self.text, expansion.start, expansion.end)
        unset = _unset_value(expansion)
        default = _unquote(expansion.word) if expansion.op in (":-", "-", ":=", "=") else None
        idiom, compared, on, outer_start, outer_end = self._judge(expansion, unset, start, end)
        if expansion.op in (":=", "=") and self._is_colon_command(start):
            idiom, on = FlagIdiom.SET, _boolean_word(default)
        read = FlagRead(
            name=expansion.name, path=self.path, line=self.lines.of(expansion.start), language="shell",
            default=default, idiom=idiom, compared_to=compared, default_on=on,
            expression=_squash(self.text[outer_start:outer_end]))
        column = expansion.start - self.lines.start(self.lines.of(expansion.start))
        return _located(read, self.lines.of(outer_start), self.lines.of(max(outer_start, outer_end - 1)), column)

    def _judge(self, expansion: _Expansion, unset: object, start: int, end: int
               ) -> tuple[FlagIdiom, str | None, bool | None, int, int]:
        """How `[ "${X:-0}" = "1" ]`, `-eq`, `-n`, `(( ))` or `${X:+..}` use the value; else it is text.

        Only the stretch of the line around the expansion is looked at (`_NEAR` characters each way): a test's
        operator and operand sit next to it, and a 40 KB one-line script must stay linear.
        """
        line_start = max(self.text.rfind("\n", 0, start) + 1, start - _NEAR)
        line_end = min(_line_end(self.text, end), end + _NEAR)
        before, after = self.text[line_start:start], self.text[end:line_end]
        if expansion.op in (":+", "+"):
            return FlagIdiom.PRESENCE, None, False, expansion.start, expansion.end
        match = re.match(r"\s+(==?|!=)\s+(\"[^\"]*\"|'[^']*'|[^\s\]);]+)", after)
        if match:
            literal = _unquote(match.group(2))
            value = _apply(operator.eq if match.group(1) != "!=" else operator.ne, unset, literal)
            return FlagIdiom.EQUALS, literal, _decided(value), start, end + match.end()
        match = re.search(r"(\"[^\"]*\"|'[^']*'|[^\s\[;]+)\s+(==?|!=)\s+\Z", before)
        if match:
            literal = _unquote(match.group(1))
            value = _apply(operator.eq if match.group(2) != "!=" else operator.ne, unset, literal)
            return FlagIdiom.EQUALS, literal, _decided(value), line_start + match.start(), end
        match = re.match(r"\s+-(eq|ne|gt|ge|lt|le)\s+[\"']?(-?\d+)", after)
        if match:
            value = _apply(_TEST_OPERATORS[match.group(1)], _parse_number(unset, int), int(match.group(2)))
            return FlagIdiom.INT, match.group(2), _decided(value), start, end + match.end()
        match = re.search(r"(-?\d+)[\"']?\s+-(eq|ne|gt|ge|lt|le)\s+\Z", before)
        if match:
            compare = _TEST_OPERATORS[_FLIPPED[match.group(2)]]
            value = _apply(compare, _parse_number(unset, int), int(match.group(1)))
            return FlagIdiom.INT, match.group(1), _decided(value), line_start + match.start(), end
        match = re.search(r"-([nz])\s+\Z", before)
        if match:
            truth = _flag_truth(unset)
            value = _negate(truth) if match.group(1) == "z" else truth
            return FlagIdiom.TRUTHY, None, _decided(value), line_start + match.start(), end
        if re.search(r"\(\(\s*\Z", before) and re.match(r"\s*\)\)", after):
            number = _parse_number(unset, int)
            return FlagIdiom.INT, None, None if number is _UNKNOWN else number != 0, start, end
        on = _boolean_word(unset) if expansion.op in (":-", "-", ":=", "=") else None
        return FlagIdiom.STRING, None, on, expansion.start, expansion.end

    def _is_colon_command(self, start: int) -> bool:
        line_start = self.text.rfind("\n", 0, start) + 1
        near = max(line_start, start - _NEAR)
        pattern = r"(?:^|[;&|]|\bthen|\bdo)\s*:\s+\Z" if near == line_start else r"(?:[;&|]|\bthen|\bdo)\s*:\s+\Z"
        return bool(re.search(pattern, self.text[near:start]))

    # -- sets ----------------------------------------------------------------------------------------------------------

    def _sets(self) -> tuple[list[_Assignment], set[str]]:
        """Each export / prefix / env assignment (and exported plain one), and every name the script assigns."""
        sets: list[_Assignment] = []
        plain: list[_Assignment] = []
        assigned: set[str] = set()
        exported: set[str] = set()
        allexport_from: int | None = None
        for words in self.commands:
            words = _without_keywords(self.text, words)
            if not words:
                continue
            head = self.text[words[0][0]:words[0][1]]
            args = [self.text[s:e] for s, e in words]
            if head == "set" and ("-a" in args[1:] or "allexport" in args[1:]):
                allexport_from = words[0][0] if allexport_from is None else allexport_from
            new_sets, new_plain, new_assigned, new_exported = _command_assignments(self.text, words)
            sets += new_sets
            plain += new_plain
            assigned |= new_assigned
            exported |= new_exported
        for assignment in plain:
            if self.is_dotenv or assignment.name in exported or (
                    allexport_from is not None and assignment.start > allexport_from):
                sets.append(assignment)
        return [a for a in sets if not _is_shell_special(a.name)], assigned

    def _set_found(self, assignment: _Assignment) -> _Found:
        literal = _unquote(assignment.value)
        on = _boolean_word(literal) if "$" not in literal and "`" not in literal else None
        line = self.lines.of(assignment.start)
        read = FlagRead(name=assignment.name, path=self.path, line=line, language="shell", default=literal,
                        idiom=FlagIdiom.SET, default_on=on,
                        expression=_squash(self.text[assignment.start:assignment.end]))
        return _located(read, line, self.lines.of(max(assignment.start, assignment.end - 1)),
                        assignment.start - self.lines.start(line))


def _decided(value: object) -> bool | None:
    return None if value is _UNKNOWN else bool(value)


def _unset_value(expansion: _Expansion) -> object:
    if expansion.op in (":-", "-", ":=", "="):
        return _unquote(expansion.word)
    if expansion.op in (":?", "?"):
        return _UNKNOWN
    return ""


def _with_quotes(text: str, start: int, end: int) -> tuple[int, int]:
    if start > 0 and end < len(text) and text[start - 1] == '"' and text[end] == '"':
        return start - 1, end + 1
    return start, end


def _is_shell_special(name: str) -> bool:
    return name in _SHELL_SPECIALS or name.startswith(_SHELL_SPECIAL_PREFIXES)


def _shell_brace_end(text: str, start: int) -> int | None:
    """Offset of the `}` closing a `${` whose contents start at `start` (nested ${..} and quotes respected)."""
    depth, index, limit = 1, start, min(len(text), start + 4000)
    while index < limit:
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == "'":
            close = text.find("'", index + 1, limit)
            index = limit if close < 0 else close + 1
            continue
        if text.startswith("${", index):
            depth += 1
            index += 2
            continue
        if char == "}":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    return None


def _shell_states(text: str) -> str:
    """One state letter per character: code, nested code, double/single quoted, comment, escaped, heredoc body."""
    states = [_CODE] * len(text)
    stack: list[list] = [[_CODE, 0]]     # [kind, depth]; kind is _CODE, _NESTED ("$(" or "`"), "{" or _DQUOTE
    pending: list[tuple[str, bool, bool]] = []
    index, n = 0, len(text)
    while index < n:
        char = text[index]
        kind = stack[-1][0]
        here = _CODE if len(stack) == 1 else _NESTED
        if kind == _DQUOTE:
            if char == "\\" and index + 1 < n:
                states[index], states[index + 1] = _DQUOTE, _ESCAPED
                index += 2
                continue
            states[index] = _DQUOTE
            if char == '"':
                stack.pop()
            elif text.startswith("$(", index) or text.startswith("${", index):
                stack.append([_NESTED if text[index + 1] == "(" else "{", 0])
                states[index + 1] = _DQUOTE
                index += 1
            elif char == "`":
                stack.append(["`", 0])
            index += 1
            continue
        if char == "\\" and index + 1 < n:
            states[index], states[index + 1] = here, _ESCAPED
            index += 2
            continue
        if char == "#" and (index == 0 or text[index - 1] in " \t\n;&|(") and kind != "{":
            end = _line_end(text, index)
            states[index:end] = _COMMENT * (end - index)
            index = end
            continue
        if char == "'":
            close = text.find("'", index + 1)
            end = n if close < 0 else close + 1
            states[index:end] = _SQUOTE * (end - index)
            index = end
            continue
        states[index] = here
        if char == '"':
            stack.append([_DQUOTE, 0])
        elif text.startswith("$(", index) or text.startswith("${", index):
            stack.append([_NESTED if text[index + 1] == "(" else "{", 0])
            states[index + 1] = here
            index += 1
        elif char == "`":
            if kind == "`":
                stack.pop()
            else:
                stack.append(["`", 0])
        elif char in "({" and len(stack) > 1 and kind in (_NESTED, "{"):
            stack[-1][1] += 1 if (char == "(") == (kind == _NESTED) else 0
        elif char in ")}" and len(stack) > 1 and kind in (_NESTED, "{"):
            if (char == ")") == (kind == _NESTED):
                if stack[-1][1] == 0:
                    stack.pop()
                else:
                    stack[-1][1] -= 1
        elif text.startswith("<<", index) and not text.startswith("<<<", index):
            heredoc = _SHELL_HEREDOC.match(text, index)
            if heredoc:
                delimiter = heredoc.group(3) or heredoc.group(4)
                operand = text[heredoc.start() + 2:heredoc.end()].lstrip("- \t")
                literal = bool(heredoc.group(2)) or operand.startswith("\\")
                pending.append((delimiter, heredoc.group(1) == "-", literal))
        elif char == "\n" and pending:
            index = _heredoc_bodies(text, index + 1, pending, states)
            pending = []
            continue
        index += 1
    return "".join(states)


def _heredoc_bodies(text: str, start: int, pending: list[tuple[str, bool, bool]], states: list[str]) -> int:
    """Mark the bodies of the heredocs opened on the previous line; returns the offset after the last one."""
    index = start
    for delimiter, strip_tabs, literal in pending:
        state = _HEREDOC_LITERAL if literal else _HEREDOC
        while index < len(text):
            end = _line_end(text, index)
            line = text[index:end]
            states[index:end + 1] = state * (min(end + 1, len(text)) - index)
            index = end + 1
            if (line.lstrip("\t") if strip_tabs else line) == delimiter:
                break
    return index


def _shell_commands(text: str, states: str) -> list[list[tuple[int, int]]]:
    """Simple commands as lists of word spans, split at unquoted separators of top-level code."""
    commands: list[list[tuple[int, int]]] = []
    words: list[tuple[int, int]] = []
    word_start: int | None = None
    for index, char in enumerate(text):
        state = states[index]
        at_code = state == _CODE
        if at_code and char == "\\" and index + 1 < len(text) and text[index + 1] == "\n":
            continue
        breaks_word = (at_code and char in " \t") or state in (_COMMENT, _HEREDOC, _HEREDOC_LITERAL) or (
            state == _ESCAPED and char == "\n" and index > 0 and text[index - 1] == "\\")
        separates = at_code and char in _SHELL_SEPARATORS and not _is_redirect_amp(text, index)
        if breaks_word or separates:
            if word_start is not None:
                words.append((word_start, index))
                word_start = None
            if separates or (state in (_HEREDOC, _HEREDOC_LITERAL)):
                if words:
                    commands.append(words)
                words = []
            continue
        if word_start is None:
            word_start = index
    if word_start is not None:
        words.append((word_start, len(text)))
    if words:
        commands.append(words)
    return commands


def _is_redirect_amp(text: str, index: int) -> bool:
    if text[index] != "&":
        return False
    return (index > 0 and text[index - 1] in "<>") or text.startswith("&>", index)


def _without_keywords(text: str, words: list[tuple[int, int]]) -> list[tuple[int, int]]:
    index = 0
    while index < len(words) and text[words[index][0]:words[index][1]] in _SHELL_KEYWORDS:
        index += 1
    return words[index:]


def _command_assignments(text: str, words: list[tuple[int, int]]
                         ) -> tuple[list[_Assignment], list[_Assignment], set[str], set[str]]:
    """(sets, plain assignments, names assigned, names exported) of one simple command."""
    raw = [text[s:e] for s, e in words]
    head = raw[0]
    assignments = [_Assignment(m.group(1), s, e, m.group(3)) for (s, e), word in zip(words, raw)
                   if (m := _SHELL_ASSIGN.match(word))]
    names = {a.name for a in assignments}
    if head in ("export", "declare", "typeset", "readonly", "local"):
        options = "".join(w[1:] for w in raw[1:] if w.startswith("-"))
        exporting = head == "export" or "x" in options
        exported = {w for w in raw[1:] if _ENV_NAME.match(w)} if exporting else set()
        return (assignments if exporting else []), [], names, exported
    if head == "env":
        return assignments, [], names, set()
    if head in ("for", "select") and len(raw) > 1:
        return [], [], {raw[1]}, set()
    if head == "read":
        return [], [], {w for w in raw[1:] if _ENV_NAME.match(w)}, set()
    leading = 0
    while leading < len(raw) and _SHELL_ASSIGN.match(raw[leading]):
        leading += 1
    prefix = assignments[:leading]
    if leading == len(raw):
        return [], prefix, names, set()
    return prefix, [], set(), set()


# ------------------------------------------------------------------------------------------------------ CMake

_CMAKE_LEXEME = re.compile(r"#\[(=*)\[|#|\[(=*)\[|\"")
_CMAKE_QUOTED = re.compile(r'(?:[^"\\]|\\[\s\S])*')
_CMAKE_COMPARE = r"STREQUAL|STRLESS|STRGREATER|STRLESS_EQUAL|STRGREATER_EQUAL|EQUAL|LESS|GREATER|LESS_EQUAL|" \
                 r"GREATER_EQUAL|MATCHES|VERSION_EQUAL|VERSION_LESS|VERSION_GREATER"


def _cmake_reads(path: str, text: str) -> list[_Found]:
    code = _mask_cmake(text)
    lines = _Lines(text)
    found = [item for m in re.finditer(r"\$ENV\{", code) if (item := _cmake_expansion(path, text, code, lines, m))]
    found += [_cmake_defined(path, text, lines, m)
              for m in re.finditer(r"\b(NOT\s+)?DEFINED\s+ENV\{([A-Za-z_]\w*)\}", code)]
    found += [item for m in re.finditer(r"(?i)\bset\s*\(\s*ENV\{([^}\s]*)\}", code)
              if (item := _cmake_set(path, text, code, lines, m))]
    return found


def _mask_cmake(text: str) -> str:
    """Comments and bracket arguments blanked; quoted arguments kept, since `$ENV{X}` expands inside them."""
    out = list(text)
    position = 0
    while True:
        match = _CMAKE_LEXEME.search(text, position)
        if match is None:
            break
        lexeme = match.group()
        if lexeme == '"':
            body = _CMAKE_QUOTED.match(text, match.end())
            position = body.end() + 1  # type: ignore[union-attr]
            continue
        if lexeme == "#":
            end = _line_end(text, match.start())
        else:
            equals = match.group(1) if match.group(1) is not None else match.group(2)
            close = text.find("]" + equals + "]", match.end())
            end = len(text) if close < 0 else close + len(equals) + 2
        _blank(out, match.start(), end, keep_newlines=True)
        position = max(end, match.start() + 1)
    return "".join(out)


def _cmake_expansion(path: str, text: str, code: str, lines: _Lines, match: re.Match[str]) -> _Found | None:
    close = _c_close(code, match.end(), "{", "}")
    inner = code[match.end():close - 1]
    name = inner if _ENV_NAME.match(inner) else None
    start, end = _with_quotes(text, match.start(), close)
    idiom, compared, on, outer_start, outer_end = _cmake_judge(code, start, end)
    read = FlagRead(name=name if name is not None else DYNAMIC, path=path, line=lines.of(match.start()),
                    language="cmake", idiom=idiom, compared_to=compared, default_on=on, dynamic=name is None,
                    expression=_squash(text[outer_start:outer_end]))
    column = match.start() - lines.start(lines.of(match.start()))
    return _located(read, lines.of(outer_start), lines.of(max(outer_start, outer_end - 1)), column)


def _cmake_judge(code: str, start: int, end: int) -> tuple[FlagIdiom, str | None, bool | None, int, int]:
    line_start = code.rfind("\n", 0, start) + 1
    before, after = code[line_start:start], code[end:_line_end(code, end)]
    match = re.match(rf"\s+({_CMAKE_COMPARE})\s+(\"[^\"]*\"|[^\s)]+)", after)
    if match:
        return _cmake_compared(match.group(1), _unquote(match.group(2)), start, end + match.end())
    match = re.search(rf"(\"[^\"]*\"|[^\s(]+)\s+({_CMAKE_COMPARE})\s+\Z", before)
    if match:
        return _cmake_compared(match.group(2), _unquote(match.group(1)), line_start + match.start(), end)
    match = re.search(r"(?i)(?:\b(?:if|elseif|while)\s*\(|\b(?:AND|OR))\s*(NOT\s+)?\Z", before)
    closing = re.match(r"(?i)\s*(?:\)|AND\b|OR\b)", after)
    if match and closing:
        return FlagIdiom.TRUTHY, None, bool(match.group(1)), line_start + match.start(), end + closing.end()
    return FlagIdiom.STRING, None, None, start, end


def _cmake_compared(operation: str, literal: str, start: int, end: int
                    ) -> tuple[FlagIdiom, str | None, bool | None, int, int]:
    if operation.startswith("STR") or operation == "MATCHES" or operation.startswith("VERSION"):
        on = literal == "" if operation == "STREQUAL" else None
        return FlagIdiom.EQUALS, literal, on, start, end
    return FlagIdiom.INT, literal, None, start, end


def _cmake_defined(path: str, text: str, lines: _Lines, match: re.Match[str]) -> _Found:
    line = lines.of(match.start(2))
    read = FlagRead(name=match.group(2), path=path, line=line, language="cmake", idiom=FlagIdiom.PRESENCE,
                    default_on=bool(match.group(1)), expression=_squash(text[match.start():match.end()]))
    return _located(read, lines.of(match.start()), lines.of(match.end() - 1), match.start(2) - lines.start(line))


def _cmake_set(path: str, text: str, code: str, lines: _Lines, match: re.Match[str]) -> _Found | None:
    close = _c_close(code, match.end())
    value = _squash(text[match.end():close - 1])
    if not value:
        return None  # set(ENV{X}) with no value unsets X
    name = match.group(1) if _ENV_NAME.match(match.group(1)) else None
    literal = _unquote(value)
    name_at = match.start(1)
    read = FlagRead(name=name if name is not None else DYNAMIC, path=path, line=lines.of(name_at), language="cmake",
                    default=literal, idiom=FlagIdiom.SET,
                    default_on=_boolean_word(literal) if "${" not in literal else None, dynamic=name is None,
                    expression=_squash(text[match.start():close]))
    return _located(read, lines.of(match.start()), lines.of(close - 1), name_at - lines.start(lines.of(name_at)))


_FINDERS: dict[str, Callable[[str, str], list[_Found]]] = {
    "python": _python_reads, "c": _c_reads, "shell": _shell_reads, "cmake": _cmake_reads}

__all__ = ["DYNAMIC", "is_default_off", "language_of", "read_flag_reads", "reads_in_lines"]
