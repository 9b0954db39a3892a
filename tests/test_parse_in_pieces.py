"""Versions of a Python file parsed top-level statement by statement: always the tree ast.parse gives (every node,
line and column), with the statements of earlier versions reused where their text recurs."""

from __future__ import annotations

import ast
import sysconfig
import time
from pathlib import Path

import pytest

from patchq.flags import python_parse
from patchq.flags.python_parse import parse_in_pieces, parse_python

BASE = '''<Q3>A module docstring
that runs on at column 0,

    and is indented here.
<Q3>
import os

FLAG = os.environ.get("VLLM_FLAG", "0") == "1"
TABLE = {
    "a": 1,
}
CALL = dict(
    x=1,
)
VALUES = [
1,
2,
]
TEXT = <S3>
col0 = "inside a string"
<S3>
MIXED = <Q3>one <S3> inside
def not_a_function(): pass
<Q3>
LONG = 1 + \\
2


@decorator
@other(1)
def decorated():
    return 1


class Thing:
    def method(self):
        if FLAG:
            return 2
        return 3


if FLAG:
    x = 1
elif os.getenv("OTHER"):
    x = 2
else:
    x = 3
try:
    import torch
except ImportError:
    torch = None
finally:
    pass
for i in range(3):
    pass
else:
    pass
x = 1
x = 1
'''.replace("<Q3>", '"' * 3).replace("<S3>", "'" * 3)


def _same_as_parse(source: str) -> ast.Module | None:
    expected = parse_python(source)
    got = parse_in_pieces(source, "mod.py")
    if expected is None:
        assert got is None
        return None
    assert got is not None
    assert ast.dump(got, include_attributes=True) == ast.dump(expected, include_attributes=True)
    return got


@pytest.fixture(autouse=True)
def _fresh_memory():
    python_parse._memory.forget()
    yield
    python_parse._memory.forget()


def test_strings_brackets_decorators_and_clauses_at_column_0_parse_as_the_whole():
    """Column-0 lines inside brackets and after a backslash are cut at and joined again (a piece that does not parse
    alone): the joined piece is remembered like any other."""
    _same_as_parse(BASE)
    assert any(text.startswith("VALUES = [") and text.endswith("]\n") for text in python_parse._memory.of("mod.py"))
    _same_as_parse(BASE)                                  # the second time from remembered pieces


@pytest.mark.parametrize("edit", [
    lambda s: "# a new first line\n\n" + s,                                   # every piece moves down
    lambda s: s.replace("TABLE = {", "NEW = 1\nTABLE = {"),                    # the pieces below move
    lambda s: s.replace("    return 1\n", "    return 10\n    # more\n"),      # one piece changes, later move
    lambda s: s.replace("x = 1\nx = 1\n", ""),                                # lines taken out: pieces move up
    lambda s: s.replace("\n", "\r\n"),                                        # CRLF: parsed whole
    lambda s: s + "\x0cx = 2\n",                                              # a form feed before a statement
    lambda s: s.replace("LONG = 1 + \\\n2", "LONG = (1 +\n2)"),
])
def test_each_version_after_another_is_the_tree_of_that_version(edit):
    """Parse the base, an edited version, and the base again: each equal to ast.parse of its own text, so a
    remembered piece moved to new lines is moved back when the text puts it back."""
    _same_as_parse(BASE)
    _same_as_parse(edit(BASE))
    _same_as_parse(BASE)


def test_an_unchanged_statement_is_reused_not_parsed_again():
    first = _same_as_parse(BASE)
    second = _same_as_parse("# header\n" + BASE)
    assert first is not None and second is not None
    classes = [n for n in second.body if isinstance(n, ast.ClassDef)]
    assert classes and classes[0] is next(n for n in first.body if isinstance(n, ast.ClassDef))
    assert classes[0].lineno == next(n.lineno for n in ast.parse("# header\n" + BASE).body
                                 if isinstance(n, ast.ClassDef))


def test_the_same_statement_twice_in_one_file_is_two_nodes():
    """A remembered piece is used once per tree: the second `x = 1` gets its own nodes at its own line."""
    tree = _same_as_parse(BASE)
    assert tree is not None
    last, before = tree.body[-1], tree.body[-2]
    assert last is not before and (before.lineno, last.lineno) == (last.lineno - 1, last.lineno)


@pytest.mark.parametrize("broken", [
    "import os\nx = (1,\ny = 2\nz = 3\n",                 # an unclosed bracket: every later piece joined, then none
    "def f():\nreturn 1\n",                               # a body that is not indented
    "x = 1\n@decorator\n",                                # a decorator with nothing under it
    "x = 1\ny = '''open\nz = 2\n",
    "a = 1\n" * 30 + "b = (\n" + "c = 2\n" * 30,         # past the joins allowed: parsed whole, which fails
])
def test_source_that_does_not_parse_gives_none_as_parse_python_does(broken):
    started = time.perf_counter()
    assert _same_as_parse(broken) is None
    assert time.perf_counter() - started < 5


def test_standard_library_sample_parses_the_same():
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[::7]
    assert len(files) > 20
    for path in files:
        _same_as_parse(path.read_text(encoding="utf-8", errors="surrogateescape"))


def test_a_new_piece_that_does_not_parse_alone_is_joined_and_remembered():
    """In a version built from remembered pieces, a new statement whose column-0 lines sit inside brackets is cut,
    fails alone, and is joined with the next cut until it parses: the joined text is remembered."""
    _same_as_parse(BASE)
    edited = BASE.replace("x = 1\nx = 1\n", "NEWLIST = [\n1,\n]\nx = 1\nx = 1\n")
    _same_as_parse(edited)
    assert "NEWLIST = [\n1,\n]\n" in python_parse._memory.of("mod.py")


def test_remembered_pieces_are_bounded_by_file(monkeypatch):
    """Past the bound the oldest file's pieces are forgotten, never the file being parsed."""
    monkeypatch.setattr(python_parse, "_KEPT_BYTES", len(BASE) * 2)
    for number in range(6):
        assert parse_in_pieces(BASE, f"f{number}.py") is not None
    assert list(python_parse._memory.files) == ["f3.py", "f4.py", "f5.py"]
    assert python_parse._memory.bytes <= len(BASE) * 3
