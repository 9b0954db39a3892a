"""Python env reads: find each read in the tree and judge how its value is consumed.

`python_names` says what a name means (is this `os.environ`?); this module finds the reads (getenv, environ[...],
`in environ`, putenv, vLLM's `envs.X` registry, and this file's own accessor functions), then follows each value
up through `int()`, `.lower()`, `==`, `not` and `if` to say its idiom and whether the unset default turns the gated
path on.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from ..model import FlagIdiom, FlagRead
from .located import DYNAMIC, Located, located
from .python_names import (
    REGISTRY_ATTR,
    PythonNames,
    Scope,
    argument_of,
    call_argument,
    default_parameter,
    is_bound_method,
    parameter_default,
)
from .python_parse import parse_as_pieces, salvage_python
from .text import ENV_NAME
from .truth import (
    UNKNOWN,
    Comparison,
    Truth,
    Value,
    boolean_word,
    compare_values,
    flag_truth,
    negate,
    numeric_on,
    parse_number,
)

LANGUAGE = "python"

_STR_METHODS: dict[str, Callable[[str], str]] = {
    "lower": str.lower, "upper": str.upper, "strip": str.strip, "lstrip": str.lstrip, "rstrip": str.rstrip,
    "casefold": str.casefold, "title": str.title}
_BOOL_PARSERS = frozenset({"bool", "strtobool", "str2bool", "str_to_bool", "to_bool", "parse_bool", "as_bool"})
_NUMBER_PARSERS: dict[str, tuple[type[int] | type[float], FlagIdiom]] = {
    "int": (int, FlagIdiom.INT), "float": (float, FlagIdiom.FLOAT)}
_COMPARISONS: dict[type[ast.cmpop], Comparison] = {
    ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_PY_MENTIONS_ENV = re.compile(r"environ|getenv|putenv|envs")


@dataclass(frozen=True)
class _Sim:
    """The variable's value when unset, followed up through the expression that consumes it."""

    value: Value
    idiom: FlagIdiom
    compared_to: str | None = None
    decided: bool = False          # the value is now a yes/no decision, not the raw text
    fallback: str | None = None    # a default supplied by `or "1"` after the read

    def judged(self, value: Value, text_idiom: FlagIdiom) -> _Sim:
        idiom = text_idiom if self.idiom is FlagIdiom.STRING and not self.decided else self.idiom
        return replace(self, value=value, idiom=idiom, decided=True)

    def truth(self) -> Truth:
        """A decided value is a truth already (int() of one is 0 or 1, equal to the bool it came from)."""
        if not self.decided:
            return flag_truth(self.value)
        return UNKNOWN if self.value is UNKNOWN else bool(self.value)


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
    scope: Scope
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


def reads(path: str, text: str) -> list[Located]:
    if not _PY_MENTIONS_ENV.search(text):
        return []  # every Python idiom names one of these; skipping the parse keeps big files cheap
    tree, pieces = parse_as_pieces(text, path)
    if tree is None:
        tree = salvage_python(text)
    try:
        return _PythonFile(path, text, tree, pieces).reads()
    except RecursionError:
        return []


_READ_METHODS = frozenset({"getenv", "get", "setdefault", "pop", "update", "putenv", "is_set"})


def _may_read(node: ast.AST) -> bool:
    """Whether `_cores_at` can find a read at this node, judged by its syntax alone (names and scopes are judged
    there): a call of a bare name or of a method a read uses, any subscript, `in`/`not in`, an UPPER attribute."""
    kind = type(node)
    if kind is ast.Call:
        func = node.func                                 # type: ignore[attr-defined]
        return type(func) is ast.Name or (type(func) is ast.Attribute and func.attr in _READ_METHODS)
    if kind is ast.Subscript:
        return True
    if kind is ast.Compare:
        return len(node.ops) == 1 and type(node.ops[0]) in (ast.In, ast.NotIn)   # type: ignore[attr-defined]
    if kind is ast.Attribute:
        return type(node.ctx) is ast.Load and REGISTRY_ATTR.match(node.attr) is not None  # type: ignore[attr-defined]
    return False


def _may_read_or_name(node: ast.AST) -> bool:
    """`_may_read`, and every loaded name: in a file that binds a name to an `envs` attribute, a use of it reads."""
    return _may_read(node) or (isinstance(node, ast.Name) and type(node.ctx) is ast.Load)


def _is_call(node: ast.AST) -> bool:
    return type(node) is ast.Call


class _PythonFile(PythonNames):
    """One parsed Python file: where each env read is, and how its value is consumed."""

    # -- finding reads ----------------------------------------------------------------------------------------------

    def reads(self) -> list[Located]:
        scope_of, module = self.scope_of, self.module_scope
        candidates = (self.picked("reads or names", _may_read_or_name) if self.registry_names
                      else self.picked("reads", _may_read))
        cores = [core for node in candidates for core in self._cores_at(node, scope_of.get(node, module))]
        accessors = self._accessors(cores)
        found = [self._found_for(core) for core in cores] + self._accessor_calls(accessors)
        registry, merged = self._registry_entries(found)
        return [item for item in found if id(item) not in merged] + registry

    def _cores_at(self, node: ast.AST, scope: Scope) -> list[_Core]:
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
            if REGISTRY_ATTR.match(node.attr) and self.is_envs_module(node.value, scope):
                return [_Core(node, scope, node, node.attr, None, "registry")]
            return []
        if isinstance(node, ast.Name) and node.id in self.registry_names and isinstance(node.ctx, ast.Load):
            meaning = self.meaning(node.id, scope)     # only a name bound to an envs attribute can mean one
            if meaning.kind == "envs_value":
                return [_Core(node, scope, node, meaning.value, None, "registry")]
        return []

    def _core(self, node: ast.AST, scope: Scope, name_node: ast.AST, default_node: ast.AST | None, kind: str,
              *, negated: bool = False, value_node: ast.AST | None = None) -> _Core:
        return _Core(node, scope, name_node, self.constant(name_node, scope), default_node, kind, negated, value_node)

    def _call_cores(self, call: ast.Call, scope: Scope) -> list[_Core]:
        func = call.func
        name_node = argument_of(call, 0, "key")
        if self.is_getenv(func, scope):
            if name_node is None:
                return []
            return [self._core(call, scope, name_node, argument_of(call, 1, "default"), "value")]
        if isinstance(func, ast.Attribute) and self.is_environ(func.value, scope):
            return self._environ_method_cores(call, func.attr, scope)
        if self.is_putenv(func, scope) and name_node is not None:
            return [self._core(call, scope, name_node, None, "set", value_node=argument_of(call, 1, "value"))]
        if isinstance(func, ast.Attribute) and func.attr == "is_set" and self.is_envs_module(func.value, scope):
            if name_node is not None:
                return [self._core(call, scope, name_node, None, "presence")]
        return []

    def _environ_method_cores(self, call: ast.Call, method: str, scope: Scope) -> list[_Core]:
        name_node = argument_of(call, 0, "key")
        if method in ("setdefault", "pop") and name_node is not None:
            default = argument_of(call, 1, "default")
            if method == "setdefault" and isinstance(self.parents.get(call), ast.Expr):
                return [self._core(call, scope, name_node, None, "set", value_node=default)]
            return [self._core(call, scope, name_node, default, "value")]
        if method == "update":
            return self._update_cores(call, scope)
        return []

    def _update_cores(self, call: ast.Call, scope: Scope) -> list[_Core]:
        cores = []
        for argument in call.args[:1]:
            if isinstance(argument, ast.Dict):
                cores += [self._core(call, scope, key, None, "set", value_node=value)
                          for key, value in zip(argument.keys, argument.values, strict=True) if key is not None]
        for keyword in call.keywords:
            if keyword.arg is not None:
                name = ast.Constant(keyword.arg)
                ast.copy_location(name, keyword.value)
                cores.append(_Core(call, scope, name, keyword.arg, None, "set", value_node=keyword.value))
        return cores

    def _subscript_cores(self, node: ast.Subscript, scope: Scope) -> list[_Core]:
        key = node.slice
        if isinstance(node.ctx, ast.Load):
            return [self._core(node, scope, key, None, "required")]
        if isinstance(node.ctx, ast.Store):
            parent = self.parents.get(node)
            value = parent.value if isinstance(parent, (ast.Assign, ast.AnnAssign)) else None
            return [self._core(node, scope, key, None, "set", value_node=value)]
        return []

    # -- judging a read ---------------------------------------------------------------------------------------------

    def _found_for(self, core: _Core) -> Located:
        if core.kind == "set":
            text, value = self.literal(core.value_node, core.scope)
            parent = self.parents.get(core.node)
            outer = parent if isinstance(parent, (ast.Assign, ast.AnnAssign)) else core.node
            return self._emit(core, outer, _Sim(value, FlagIdiom.SET), default=text,
                              default_on=boolean_word(value))
        if core.kind == "registry":
            sim, outer = self.simulate(core.node, _Sim(UNKNOWN, FlagIdiom.REGISTRY))
            return self._emit(core, outer, sim, default=None, default_on=None)
        if core.kind == "presence":
            sim, outer = self.simulate(core.node, _Sim(core.negated, FlagIdiom.PRESENCE, decided=True))
            return self._emit(core, outer, sim, default=None, default_on=_final_on(sim))
        text, value = self.literal(core.default_node, core.scope)
        if core.kind == "required":
            value = UNKNOWN
        sim, outer = self.simulate(core.node, _Sim(value, FlagIdiom.STRING))
        if text is None and sim.fallback is not None:
            text = sim.fallback
        return self._emit(core, outer, sim, default=text, default_on=_final_on(sim))

    def _emit(self, core: _Core, outer: ast.AST, sim: _Sim, *, default: str | None,
              default_on: bool | None) -> Located:
        read = FlagRead(
            name=core.name if core.name is not None else DYNAMIC, path=self.path, line=_line(core.name_node),
            language="python", default=default, idiom=sim.idiom, compared_to=sim.compared_to,
            default_on=default_on, dynamic=core.name is None, expression=self.source(outer))
        first, last = _span(core.node, outer)
        return located(read, first, last, getattr(core.name_node, "col_offset", 0))

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
        scope = self.scope_at(parent)
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
            return _Move(parent, sim.judged(negate(sim.truth()), FlagIdiom.TRUTHY))
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
                return _Move(call, replace(sim, value=parse_number(sim.value, kind)))
            new_idiom = idiom if sim.idiom is FlagIdiom.STRING else sim.idiom
            return _Move(call, replace(sim, value=parse_number(sim.value, kind), idiom=new_idiom))
        if name in _BOOL_PARSERS:
            return _Move(call, sim.judged(sim.truth(), FlagIdiom.TRUTHY))
        if name == "str" and isinstance(func, ast.Name):
            return _Move(call, sim)
        return None

    def _through_boolop(self, node: ast.AST, boolop: ast.BoolOp, sim: _Sim, scope: Scope) -> _Move | None:
        """`a and b` in a condition judges each operand's truth; `os.getenv("X") or "1"` supplies a default."""
        if self._in_boolean_position(boolop):
            return _Move(boolop, sim.judged(sim.truth(), FlagIdiom.TRUTHY), grow=False)
        if isinstance(boolop.op, ast.Or) and boolop.values[0] is node and len(boolop.values) > 1:
            text, value = self.literal(boolop.values[1], scope)
            if value is UNKNOWN or not isinstance(value, str):
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

    def _compared(self, node: ast.AST, compare: ast.Compare, sim: _Sim, scope: Scope) -> _Sim:
        op = compare.ops[0]
        on_left = compare.left is node
        other = compare.comparators[0] if on_left else compare.left
        if isinstance(op, (ast.Is, ast.IsNot)) and isinstance(other, ast.Constant) and other.value is None:
            value = UNKNOWN if sim.value is UNKNOWN else sim.value is None
            return sim.judged(negate(value) if isinstance(op, ast.IsNot) else value, FlagIdiom.PRESENCE)
        literals = self._literals(other, scope)
        if isinstance(op, (ast.In, ast.NotIn)):
            value = _membership(sim.value, literals, on_left, other)
            value = negate(value) if isinstance(op, ast.NotIn) else value
            compared = "|".join(_as_text(v) for v in literals) if literals else None
            return replace(sim.judged(value, FlagIdiom.EQUALS), compared_to=compared)
        compare_op = _COMPARISONS.get(type(op))
        if literals is None or len(literals) != 1 or isinstance(other, (ast.Tuple, ast.List, ast.Set)):
            judged = sim.judged(UNKNOWN, FlagIdiom.EQUALS if compare_op in ("==", "!=") else FlagIdiom.UNKNOWN)
            return judged
        literal = literals[0]
        left, right = (sim.value, literal) if on_left else (literal, sim.value)
        value = compare_values(compare_op, left, right)
        idiom = FlagIdiom.EQUALS if compare_op in ("==", "!=") else FlagIdiom.UNKNOWN
        return replace(sim.judged(value, idiom), compared_to=_as_text(literal))

    def _literals(self, node: ast.AST, scope: Scope) -> list[Value] | None:
        elements = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
        values: list[Value] = []
        for element in elements:
            text, value = self.literal(element, scope)
            if value is UNKNOWN or (value is None and text is None and not _is_none(element)):
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
            default_param, choice = default_parameter(core.default_node, function)
            accessors[function.name] = _Accessor(function, core, core.name_node.id, default_param,
                                                 is_bound_method(function, self.scope_at(function)), choice)
        return accessors

    def _accessor_calls(self, accessors: dict[str, _Accessor]) -> list[Located]:
        if not accessors:
            return []
        found = []
        for node in self.picked("calls", _is_call):
            assert isinstance(node, ast.Call)
            scope = self.scope_at(node)
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

    def _accessor_call(self, call: ast.Call, scope: Scope, accessor: _Accessor, via_attribute: bool) -> Located | None:
        name_node = call_argument(call, accessor.function, accessor.name_param, via_attribute)
        if name_node is None or _inside(call, accessor.function, self.parents):
            return None
        core = accessor.core
        text, value = self._accessor_default(call, scope, accessor, via_attribute)
        start_value = UNKNOWN if core.kind == "required" else value
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
        return located(read, first, last, getattr(name_node, "col_offset", 0))

    def _accessor_default(self, call: ast.Call, scope: Scope, accessor: _Accessor,
                          via_attribute: bool) -> tuple[str | None, Value]:
        function = accessor.function
        if accessor.default_param is None:
            return self.literal(accessor.core.default_node, accessor.core.scope)
        given = call_argument(call, function, accessor.default_param, via_attribute)
        if given is not None:
            text, value = self.literal(given, scope)
        else:
            declared = parameter_default(function, accessor.default_param)
            outer_scope = self.scope_at(function)
            text, value = self.literal(declared, outer_scope) if declared is not None else (None, None)
        if accessor.choice is None:
            return text, value
        if value is UNKNOWN:
            return self.source(accessor.choice), UNKNOWN
        branch = accessor.choice.body if value else accessor.choice.orelse
        return self.literal(branch, accessor.core.scope)

    def _registry_entries(self, found: list[Located]) -> tuple[list[Located], set[int]]:
        """vLLM's envs.py: `environment_variables = {"VLLM_X": lambda: ..., }` entries, named by their keys.

        The read inside an entry that reads the key's own variable is folded into the entry (it lends its default),
        so the registry does not report each variable twice."""
        entries: list[Located] = []
        merged: set[int] = set()
        for table in self._registry_tables():
            for key, value in zip(table.keys, table.values, strict=True):
                if not (isinstance(key, ast.Constant) and isinstance(key.value, str) and ENV_NAME.match(key.value)):
                    continue
                inner = self._entry_read(key.value, value, found)
                if inner is not None:
                    merged.add(id(inner))
                entries.append(self._registry_found(key.value, key, value, inner))
        return entries, merged

    def _registry_tables(self) -> Iterator[ast.Dict]:
        for statement in self.tree.body:
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

    def _entry_read(self, name: str, value: ast.AST, found: list[Located]) -> Located | None:
        first, last = _line(value), getattr(value, "end_lineno", None) or _line(value)
        for item in found:
            if item.read.name == name and first <= item.read.line <= last and item.first >= first:
                return item
        return None

    def _registry_found(self, name: str, key: ast.Constant, value: ast.AST, inner: Located | None) -> Located:
        default, default_on, compared = None, None, None
        if inner is not None:
            default, default_on, compared = inner.read.default, inner.read.default_on, inner.read.compared_to
        else:
            default = self._helper_default(name, value)
            default_on = boolean_word(default)
        expression = f"{self.source(key)}: {self.source(value)}"
        read = FlagRead(name=name, path=self.path, line=_line(key), language="python", default=default,
                        idiom=FlagIdiom.REGISTRY, compared_to=compared, default_on=default_on,
                        expression=expression)
        end = getattr(value, "end_lineno", None) or _line(value)
        return located(read, _line(key), end, key.col_offset)

    def _helper_default(self, name: str, value: ast.AST) -> str | None:
        """`env_with_choices("VLLM_X", "auto", [...])`: a helper call naming the key lends its second argument."""
        for node in ast.walk(value):
            if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
                if node.args[0].value == name:
                    text, _ = self.literal(argument_of(node, 1, "default"), self.module_scope)
                    return text
        return None


def _final_on(sim: _Sim) -> bool | None:
    if sim.value is UNKNOWN:
        return None
    if sim.decided:
        return bool(sim.value)
    if sim.idiom in (FlagIdiom.INT, FlagIdiom.FLOAT):
        return numeric_on(sim.value, sim.idiom)
    return boolean_word(sim.value)


def _membership(value: Value, literals: list[Value] | None, on_left: bool, other: ast.AST) -> Truth:
    if literals is None or value is UNKNOWN:
        return UNKNOWN
    if isinstance(other, (ast.Tuple, ast.List, ast.Set)):
        return value in literals if on_left else UNKNOWN
    container, member = (literals[0], value) if on_left else (value, literals[0])
    if isinstance(container, str) and isinstance(member, str):
        return member in container
    return UNKNOWN


def _string_method(value: Value, method: str) -> Value:
    return _STR_METHODS[method](value) if isinstance(value, str) else UNKNOWN


def _as_text(value: Value) -> str:
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
    current = parents.get(node)
    for _ in range(10_000):
        if current is None:
            return False
        if current is ancestor:
            return True
        current = parents.get(current)
    return False
