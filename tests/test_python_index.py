"""The name index of a Python file assembled from remembered pieces (each piece's walk kept with it) is the index
one walk of the whole tree gives: the same nodes in the same order, the same parents, scopes, bindings and reads,
version after version, while the pieces move between lines and are reused."""

from __future__ import annotations

import ast
import sysconfig
from pathlib import Path

import pytest

from patchq.flags import python_parse
from patchq.flags.python import _may_read, _may_read_or_name, _PythonFile
from patchq.flags.python_names import PythonNames, Scope
from patchq.flags.python_parse import parse_as_pieces

SOURCE = '''"""Every read idiom the finder knows, at module level and inside functions, classes and comprehensions."""
import os
import os as _os
from os import environ, getenv as fetch
from vllm import envs
from vllm.envs import VLLM_IMPORTED as imported_flag

NAME = "VLLM_" + "CONST"
FLAG = os.environ.get("VLLM_FLAG", "0") == "1"
LIMIT = int(_os.getenv("X_LIMIT", "4")) > 2
PRESENT = "VLLM_PRESENT" not in os.environ
REQUIRED = os.environ["VLLM_REQUIRED"]
os.environ["VLLM_SET"] = "1"
os.environ.setdefault("VLLM_DEFAULTED", "1")
os.environ.update({"VLLM_UPDATED": "1"}, VLLM_KEYWORD="0")
os.putenv("VLLM_PUT", "1")
copied = dict(os.environ)
ALIASED = environ.get(NAME, "1") != "0"
FETCHED = fetch("VLLM_FETCHED") or "1"
SQUARES = [os.getenv(f"VLLM_{i}") for i in range(3)]
TABLE = {key: lambda: os.getenv("VLLM_LAMBDA", "0") for key in ("a",)}


def _env_flag(name, default="0"):
    return os.environ.get(name, default) == "1"


class Runner:
    scale = float(os.getenv("X_SCALE", "0.5"))

    def _int(self, name, default=4):
        return int(os.getenv(name, default))

    def run(self):
        if envs.VLLM_ATTENTION_BACKEND == "FLASH" and imported_flag:
            return self._int("VLLM_MINIMAX_TOKENS")
        if envs.is_set("VLLM_ISSET"):
            return copied["VLLM_COPIED"]
        return [environ.get(n) for n in ("VLLM_IN_COMP",)]


@decorator(os.getenv("VLLM_DECORATOR"))
def decorated(value=os.getenv("VLLM_PARAM_DEFAULT", "x")):
    if (walrus := os.getenv("VLLM_WALRUS")) is not None:
        return walrus
    return value


if _env_flag("VLLM_MINIMAX_W"):
    fast = _env_flag("VLLM_MINIMAX_FAST", "1")
elif getenv_missing := 1:
    pass
else:
    pass
try:
    import torch
except ImportError:
    torch = None
for i in range(3):
    os.environ["VLLM_LOOP"] = str(i)
x = 1
x = 1
'''

EDITS = [
    lambda s: "# a new first line\n\n" + s,
    lambda s: s.replace("LIMIT = ", "NEW = os.getenv('VLLM_NEW')\nLIMIT = "),
    lambda s: s.replace("        return int(os.getenv(name, default))\n",
                        "        # changed\n        return int(os.getenv(name, default)) + 1\n"),
    lambda s: s.replace("x = 1\nx = 1\n", ""),
    lambda s: s.replace("from vllm.envs import VLLM_IMPORTED as imported_flag\n", ""),   # no registry name left
    lambda s: s.replace("class Runner:", "class Runner(object):"),
]


@pytest.fixture(autouse=True)
def _fresh_memory():
    python_parse._memory.forget()
    yield
    python_parse._memory.forget()


def _shape(names: PythonNames) -> dict[str, object]:
    """Everything the index holds, with nodes named by their place in `nodes` (two trees' nodes are different
    objects): the order, each node's parent, its scope chain, every scope's bindings, the registry names."""
    place = {id(node): number for number, node in enumerate(names.nodes)}

    def chain(scope: Scope | None) -> list[object]:
        links: list[object] = []
        while scope is not None:
            links.append((scope.kind, "this module" if scope is names.module_scope else place.get(id(scope.node))))
            scope = scope.parent
        return links

    def bindings(scope: Scope) -> dict[str, list[object]]:
        return {name: [(b.kind, b.detail, place.get(id(b.node)) if b.node is not None else None) for b in listed]
                for name, listed in scope.bindings.items()}

    scopes: dict[int, Scope] = {}
    for node in names.nodes:
        scope = names.scope_at(node)
        while scope is not None:
            scopes.setdefault(id(scope), scope)
            scope = scope.parent
    return {
        "nodes": [(type(node).__name__, getattr(node, "lineno", None), getattr(node, "col_offset", None))
                  for node in names.nodes],
        "parents": [place.get(id(names.parents.get(node))) for node in names.nodes],
        "scopes": [chain(names.scope_at(node)) for node in names.nodes],
        "bindings": sorted((chain(scope), bindings(scope)) for scope in scopes.values()),
        "registry": sorted(names.registry_names),
    }


def _versions() -> list[str]:
    versions = [SOURCE]
    for edit in EDITS:
        versions += [edit(SOURCE), SOURCE]
    versions.append(EDITS[1](EDITS[0](SOURCE)))
    return versions


def test_the_index_from_pieces_is_the_index_of_one_walk_version_after_version():
    seen_pieces = 0
    for text in _versions():
        tree, pieces = parse_as_pieces(text, "mod.py")
        assert tree is not None and pieces
        assert [s for piece in pieces for s in piece.statements] == tree.body
        seen_pieces += sum(piece.walked is not None for piece in pieces)
        from_pieces = PythonNames("mod.py", text, tree, pieces)
        whole = PythonNames("mod.py", text, ast.parse(text))
        assert _shape(from_pieces) == _shape(whole)
    assert seen_pieces > 100          # most pieces came with a walk kept from an earlier version


def test_reads_from_pieces_are_the_reads_of_the_whole_tree():
    for text in _versions():
        tree, pieces = parse_as_pieces(text, "mod.py")
        assert tree is not None
        got = _PythonFile("mod.py", text, tree, pieces).reads()
        expected = _PythonFile("mod.py", text, ast.parse(text)).reads()
        assert got == expected
        assert len(expected) > 20


def test_a_reused_piece_keeps_its_walk_and_its_scopes_see_this_versions_module():
    tree, pieces = parse_as_pieces(SOURCE, "mod.py")
    assert tree is not None
    first = PythonNames("mod.py", SOURCE, tree, pieces)
    runner = next(p for p in pieces if any(isinstance(s, ast.ClassDef) for s in p.statements))
    walked = runner.walked
    assert walked is not None
    edited = EDITS[1](SOURCE)
    tree2, pieces2 = parse_as_pieces(edited, "mod.py")
    assert tree2 is not None
    second = PythonNames("mod.py", edited, tree2, pieces2)
    again = next(p for p in pieces2 if any(isinstance(s, ast.ClassDef) for s in p.statements))
    assert again is runner and again.walked is walked          # not walked again
    method = next(n for n in second.nodes if isinstance(n, ast.FunctionDef) and n.name == "run")
    scope = second.scope_at(method)
    assert scope.kind == "class" and scope.parent is second.module_scope
    assert scope.parent is not first.module_scope
    assert "NEW" in second.module_scope.bindings and "NEW" not in first.module_scope.bindings


def test_the_read_filter_keeps_every_node_a_read_is_found_at():
    """`_may_read` judges syntax only; every node where `_cores_at` finds a read passes it (`_may_read_or_name`
    in a file with registry names), here and in a standard-library sample, and most nodes do not."""
    texts = [SOURCE, EDITS[4](SOURCE)]
    texts += [path.read_text(encoding="utf-8", errors="replace")
              for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))
              if "environ" in path.read_text(encoding="utf-8", errors="replace")][:25]
    found = kept = total = 0
    for text in texts:
        tree = python_parse.parse_python(text)
        if tree is None:
            continue
        reader = _PythonFile("m.py", text, tree)
        pick = _may_read_or_name if reader.registry_names else _may_read
        for node in reader.nodes:
            total += 1
            kept += pick(node)
            if reader._cores_at(node, reader.scope_at(node)):
                found += 1
                assert pick(node), ast.dump(node)
    assert found > 40 and kept < total / 3
