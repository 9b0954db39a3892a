"""What a name means in a Python file: scopes, bindings, constants, which expressions are `os.environ`, and
which argument of a call fills which parameter.

Kept apart from the read finder because it is the part that knows Python's scoping and calling rules (class bodies
hidden from nested functions, comprehensions, imports under aliases, `*args`, bound methods) and nothing about how a
flag's value is judged; `python.py` builds on it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .python_parse import Piece
from .text import squash
from .truth import UNKNOWN, Value

REGISTRY_ATTR = re.compile(r"[A-Z][A-Z0-9_]*\Z")
_SCOPE_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef,
                ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_UNBOUND_MEANING = {"os": "os", "environ": "environ", "getenv": "getenv", "envs": "envs"}


@dataclass(frozen=True)
class _Binding:
    """What one statement binds a name to: an import's meaning, a parameter, or an assigned value to judge later."""

    kind: str                      # os environ getenv putenv envs vllm envs_value param assigned other
    node: ast.AST | None = None    # the assigned value, for "assigned"
    detail: str = ""               # the attribute name, for "envs_value"


class Scope:
    """Names bound in one function, class, comprehension or module body."""

    def __init__(self, parent: Scope | None, kind: str, node: ast.AST | None = None) -> None:
        self.parent = parent
        self.kind = kind           # "module" | "function" | "class" | "comprehension"
        self.node = node
        self.bindings: dict[str, list[_Binding]] = {}

    def bind(self, name: str, binding: _Binding) -> None:
        self.bindings.setdefault(name, []).append(binding)

    def owner(self, name: str) -> Scope | None:
        """The scope whose binding a use of `name` here sees (class bodies are invisible to nested functions)."""
        scope: Scope | None = self
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


@dataclass
class _Walked:
    """What one walk found below some top-level statements: kept with a remembered piece (python_parse), so a
    version that reuses the piece gets its nodes, parents and inner scopes without walking them again."""

    nodes: list[ast.AST]                     # in walk order
    parents: dict[ast.AST, ast.AST]          # the statements themselves excepted (their parent is each version's)
    scope_of: dict[ast.AST, Scope]           # nodes inside a function, class, lambda or comprehension
    module_bindings: dict[str, list[_Binding]]
    outer_scopes: list[Scope]                # scopes opened at module level: their parent is each version's module
    registry_names: set[str]
    picks: dict[str, list[ast.AST]] = field(default_factory=dict)   # `PythonNames.picked`, by the pick's name


class PythonNames:
    """One parsed Python file's names: parents and scopes of every node, and what each name is bound to.

    `nodes` holds every node in walk order; `scope_of` only those inside a function, class, lambda or
    comprehension (the rest are in the module scope: ask `scope_at`), so a reused piece's entries are the same
    for every version and are copied in whole."""

    def __init__(self, path: str, text: str, tree: ast.Module, pieces: Sequence[Piece] = ()) -> None:
        self.path = path
        self.text = text
        self.tree = tree
        self.segments = _Segments(text)
        self.nodes: list[ast.AST] = [tree]
        self.parents: dict[ast.AST, ast.AST] = {}
        self.scope_of: dict[ast.AST, Scope] = {}
        self.module_scope = Scope(None, "module", tree)
        self._meanings: dict[tuple[int, str], _Meaning] = {}
        self._resolving: set[tuple[int, str]] = set()
        self._settled: dict[tuple[int, str], _Meaning] = {}   # by (id of the scope asked from, name)
        self.registry_names: set[str] = set()    # names some statement binds to an `envs` attribute
        self._walks: list[_Walked] = []
        if pieces:
            self._index_pieces(tree, pieces)
        else:
            self._take(_walk(tree.body, Scope(None, "module")))
        for statement in tree.body:
            self.parents[statement] = tree

    def scope_at(self, node: ast.AST) -> Scope:
        return self.scope_of.get(node, self.module_scope)

    def picked(self, name: str, pick: Callable[[ast.AST], bool]) -> list[ast.AST]:
        """The nodes below the module for which `pick` (a test of a node's own syntax, never of names or scopes)
        is true, in walk order; kept under `name` with each reused piece, so a version tests only its new nodes."""
        found: list[ast.AST] = []
        for walked in self._walks:
            nodes = walked.picks.get(name)
            if nodes is None:
                nodes = walked.picks[name] = [node for node in walked.nodes if pick(node)]
            found += nodes
        return found

    # -- scopes ---------------------------------------------------------------------------------------------------

    def _index_pieces(self, tree: ast.Module, pieces: Sequence[Piece]) -> None:
        """The walk of the whole body, assembled from each piece's own walk (remembered on the piece). The walk
        takes a body's statements last to first, so the pieces are taken last to first too: every scope then
        sees its bindings, and `nodes` lists the nodes, in the order one walk of the whole tree gives."""
        for piece in reversed(pieces):
            walked = piece.walked
            if not isinstance(walked, _Walked):
                walked = piece.walked = _walk(piece.statements, Scope(None, "module"))
            self._take(walked)

    def _take(self, walked: _Walked) -> None:
        self._walks.append(walked)
        self.nodes.extend(walked.nodes)
        self.parents.update(walked.parents)
        self.scope_of.update(walked.scope_of)
        module = self.module_scope
        for name, bindings in walked.module_bindings.items():
            module.bindings.setdefault(name, []).extend(bindings)
        for scope in walked.outer_scopes:
            scope.parent = module
        self.registry_names |= walked.registry_names

    def meaning(self, name: str, scope: Scope) -> _Meaning:
        asked = (id(scope), name)
        settled = self._settled.get(asked)
        if settled is not None:
            return settled
        owner = scope.owner(name)
        if owner is None:
            settled = self._settled[asked] = _Meaning(_UNBOUND_MEANING.get(name, "unbound"))
            return settled
        key = (id(owner), name)
        if key in self._meanings:
            settled = self._settled[asked] = self._meanings[key]
            return settled
        if key in self._resolving:         # a cycle: "other" for now, and not remembered
            return _Meaning("other")
        self._resolving.add(key)
        try:
            meanings = [self._meaning_of(binding, owner) for binding in owner.bindings[name]]
        finally:
            self._resolving.discard(key)
        merged = _merge_meanings(meanings)
        self._meanings[key] = self._settled[asked] = merged
        return merged

    def _meaning_of(self, binding: _Binding, scope: Scope) -> _Meaning:
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

    def _names(self, node: ast.AST, scope: Scope, kinds: tuple[str, ...]) -> bool:
        return isinstance(node, ast.Name) and self.meaning(node.id, scope).kind in kinds

    def is_environ(self, node: ast.AST, scope: Scope) -> bool:
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

    def is_getenv(self, node: ast.AST, scope: Scope) -> bool:
        if isinstance(node, ast.Attribute):
            if node.attr == "getenv":
                return self._names(node.value, scope, ("os",))
            return node.attr == "get" and self.is_environ(node.value, scope)
        return self._names(node, scope, ("getenv",))

    def is_putenv(self, node: ast.AST, scope: Scope) -> bool:
        if isinstance(node, ast.Attribute):
            return node.attr == "putenv" and self._names(node.value, scope, ("os",))
        return self._names(node, scope, ("putenv",))

    def is_envs_module(self, node: ast.AST, scope: Scope) -> bool:
        if isinstance(node, ast.Attribute):
            return node.attr == "envs" and self._names(node.value, scope, ("vllm",))
        return self._names(node, scope, ("envs",))

    def constant(self, node: ast.AST | None, scope: Scope, depth: int = 0) -> str | None:
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
            if left is None:
                return None
            right = self.constant(node.right, scope, depth + 1)
            return None if right is None else left + right
        if isinstance(node, ast.JoinedStr):
            return self._joined_constant(node, scope, depth)
        return None

    def _joined_constant(self, node: ast.JoinedStr, scope: Scope, depth: int) -> str | None:
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

    def literal(self, node: ast.AST | None, scope: Scope) -> tuple[str | None, Value]:
        """(text as written, value) of a default or compared value; the value is UNKNOWN when not a literal."""
        if node is None:
            return None, None
        constant = self.constant(node, scope)
        if constant is not None:
            return constant, constant
        try:
            value = ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return self.source(node), UNKNOWN
        if value is None:
            return None, None
        if isinstance(value, (str, bool, int, float)):
            return str(value), value
        return self.source(node), UNKNOWN

    def source(self, node: ast.AST) -> str:
        return squash(self.segments.of(node))


def _walk(statements: list[ast.stmt], module: Scope) -> _Walked:
    """Parents, scope and bindings of every node below top-level statements, in one iterative walk (deep
    expressions must not exhaust the stack); module-level bindings go to `module`.

    A node's bindings go to the scope whose body holds it without a function, class, lambda or comprehension in
    between (`bind`); nodes outside any body (decorators, defaults, comprehension parts) bind nothing. The walk
    is a stack, so each scope sees its bindings in the same order as a walk of that scope alone would.
    """
    found = _Walked([], {}, {}, module.bindings, [], set())
    nodes, parents, scope_of, outer, registry = (found.nodes, found.parents, found.scope_of, found.outer_scopes,
                                                 found.registry_names)
    fields = _FIELDS
    stack: list[tuple[ast.AST, Scope, Scope | None]] = [(statement, module, module) for statement in statements]
    pop, push, note = stack.pop, stack.append, nodes.append
    while stack:
        node, scope, bind = pop()
        note(node)
        if scope is not module:
            scope_of[node] = scope
        kind = type(node)
        if bind is not None:
            binder = _BINDERS.get(kind)
            if binder is not None:
                for name, binding in binder(node):
                    bind.bind(name, binding)
                    if binding.kind == "envs_value":
                        registry.add(name)
        names = fields.get(kind)
        if names is None:
            names = fields[kind] = _node_fields(kind)
        if kind in _SCOPE_KINDS:
            inner, body = _child_scope(node, scope)
            if scope is module:
                outer.append(inner)
            for name in names:
                value = getattr(node, name, None)
                if isinstance(value, ast.AST):
                    parents[value] = node
                    push((value, inner, inner if name == body else None) if name in _INNER[kind]
                         else (value, scope, None))
                elif isinstance(value, list):
                    inside = name in _INNER[kind]
                    for item in value:
                        if isinstance(item, ast.AST):
                            parents[item] = node
                            push((item, inner, inner if name == body else None) if inside
                                 else (item, scope, None))
            continue
        for name in names:
            value = getattr(node, name, None)
            if isinstance(value, ast.AST):
                parents[value] = node
                push((value, scope, bind))
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, ast.AST):
                        parents[item] = node
                        push((item, scope, bind))
    return found


def _child_scope(node: ast.AST, scope: Scope) -> tuple[Scope, str]:
        """The scope a function, class, lambda or comprehension opens, with what it binds up front, and the
        field whose nodes bind names in it ("" for a comprehension: only its loop targets do)."""
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            inner = Scope(scope, "function", node)
            for arg in parameters(node.args):
                inner.bind(arg.arg, _Binding("param"))
            return inner, "body"
        if isinstance(node, ast.ClassDef):
            return Scope(scope, "class", node), "body"
        inner = Scope(scope, "comprehension", node)
        for generator in node.generators:      # type: ignore[attr-defined]
            for name in _target_names(generator.target):
                inner.bind(name, _Binding("other"))
        return inner, ""


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
        first: int | None = getattr(node, "lineno", None)
        last: int | None = getattr(node, "end_lineno", None)
        start: int | None = getattr(node, "col_offset", None)
        end: int | None = getattr(node, "end_col_offset", None)
        if first is None or last is None or start is None or end is None or not 1 <= first <= last <= len(self._lines):
            return ""
        if first == last:
            return self._cut(first - 1, start, end)
        middle = self._lines[first:last - 1]
        return "\n".join([self._cut(first - 1, start, None), *middle, self._cut(last - 1, None, end)])


def argument_of(call: ast.Call, index: int, keyword: str) -> ast.AST | None:
    """A call's argument by position or keyword; after a `*args` the position is unknowable."""
    if index < len(call.args):
        return None if any(isinstance(a, ast.Starred) for a in call.args[:index]) else call.args[index]
    for item in call.keywords:
        if item.arg == keyword:
            return item.value
    return None


def default_parameter(default: ast.AST | None, function: ast.FunctionDef | ast.AsyncFunctionDef
                       ) -> tuple[str | None, ast.IfExp | None]:
    """Which parameter of an accessor supplies the default: the read's own default argument, the test of
    `"1" if default else "0"`, or (when the read has none) a parameter called default/fallback."""
    params = [a.arg for a in parameters(function.args)]
    if isinstance(default, ast.Name) and default.id in params:
        return default.id, None
    if isinstance(default, ast.IfExp) and isinstance(default.test, ast.Name) and default.test.id in params:
        return default.test.id, default
    if default is None:
        named = [p for p in params if re.fullmatch(r"_?(?:default|fallback)(?:_?val(?:ue)?)?", p)]
        return (named[0], None) if named else (None, None)
    return None, None


def parameters(arguments: ast.arguments) -> list[ast.arg]:
    params = list(arguments.posonlyargs) + list(arguments.args) + list(arguments.kwonlyargs)
    params += [a for a in (arguments.vararg, arguments.kwarg) if a is not None]
    return params


def _positional_parameters(function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    return [a.arg for a in list(function.args.posonlyargs) + list(function.args.args)]


def parameter_default(function: ast.FunctionDef | ast.AsyncFunctionDef, name: str) -> ast.AST | None:
    positional = _positional_parameters(function)
    defaults = function.args.defaults
    if name in positional:
        index = positional.index(name) - (len(positional) - len(defaults))
        return defaults[index] if index >= 0 else None
    for arg, default in zip(function.args.kwonlyargs, function.args.kw_defaults, strict=True):
        if arg.arg == name:
            return default
    return None


def call_argument(call: ast.Call, function: ast.FunctionDef | ast.AsyncFunctionDef, name: str,
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


def is_bound_method(function: ast.FunctionDef | ast.AsyncFunctionDef, scope: Scope | None) -> bool:
    """A method called as `self.flag("X")`: its first parameter is not passed at the call."""
    if scope is None or scope.kind != "class":
        return False
    decorators = {d.id for d in function.decorator_list if isinstance(d, ast.Name)}
    return "staticmethod" not in decorators and bool(_positional_parameters(function))


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
    if module in ("vllm.envs", "envs") and REGISTRY_ATTR.match(alias.name):
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


# What each statement kind binds, looked up by node type in the walk (most nodes bind nothing).
_Binder = Callable[[ast.AST], list[tuple[str, _Binding]]]
_BINDERS: dict[type, _Binder] = {kind: _bindings_of for kind in (
    ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign, ast.AugAssign, ast.For, ast.AsyncFor, ast.NamedExpr,
    ast.With, ast.AsyncWith, ast.ExceptHandler, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)}
_SCOPE_KINDS = frozenset(_SCOPE_NODES)
# The fields of a scope node whose nodes are inside the scope it opens; the rest are evaluated outside it.
_INNER: dict[type, frozenset[str]] = {
    ast.FunctionDef: frozenset({"body"}), ast.AsyncFunctionDef: frozenset({"body"}), ast.Lambda: frozenset({"body"}),
    ast.ClassDef: frozenset({"body"}),
    **{kind: frozenset(kind._fields) for kind in (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)}}
_FIELDS: dict[type[ast.AST], tuple[str, ...]] = {}
# Fields that never hold a node, or hold one of the shared operator and context singletons (ast.Load(), ast.Add()),
# which the read finder never asks about: the walk does not visit them.
_NOT_WALKED = frozenset({"ctx", "op", "ops", "id", "attr", "arg", "module", "level", "conversion", "is_async",
                         "simple", "type_comment", "kind"})


def _node_fields(kind: type[ast.AST]) -> tuple[str, ...]:
    skip = _NOT_WALKED | ({"value"} if kind in (ast.Constant, ast.MatchSingleton) else set())
    return tuple(name for name in kind._fields if name not in skip)
