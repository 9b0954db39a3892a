"""The one YAML door: every file patchq reads is guarded the same way, and recipes read through it as before."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from ruamel.yaml.nodes import MappingNode, SequenceNode

from patchq import yamlio
from patchq.demo import build_demo
from patchq.errors import BadInput

PACKAGE = Path(__file__).resolve().parents[1] / "patchq"

RECIPE = """\
# a recipe in the shape of kernels/<target>.yaml
upstream: vllm
inputs:
  - csrc/
  - 'kernels/**/*.cu'
command: [make, -j, "4"]
outputs:
  - {kind: file, path: build/x.so}
resources:
  jobs: 4
  memory_gb: 1.5
env: {USE_X: "1", LEVEL: 3}
build_by_default: true
description: |
  kept
  as written
"""

LAUGHS = ["&l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"] + [
    f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 10)]


def _safe_lines(text: str) -> dict[str, int]:
    """Key paths and lines as the recipe loader records them today, from ruamel's safe composer."""
    lines: dict[str, int] = {}

    def walk(node, prefix: str) -> None:
        if isinstance(node, MappingNode):
            for key, value in node.value:
                name = f"{prefix}.{key.value}" if prefix else str(key.value)
                lines[name] = key.start_mark.line + 1
                walk(value, name)
        elif isinstance(node, SequenceNode):
            for index, item in enumerate(node.value):
                lines[f"{prefix}[{index}]"] = item.start_mark.line + 1
                walk(item, f"{prefix}[{index}]")

    walk(YAML(typ="safe", pure=True).compose(text), "")
    return lines


@pytest.mark.parametrize("case", ["laughs", "deep"])
def test_a_recipe_bomb_is_refused_at_once_through_the_door(tmp_path, case):
    text = ("upstream: x\ndescription: [" + ", ".join(LAUGHS) + "]\n" if case == "laughs"
            else "upstream: x\ninputs: " + "[" * 3000 + "]" * 3000 + "\n")
    path = tmp_path / "kernels" / "bomb.yaml"
    path.parent.mkdir()
    path.write_text(text)
    for reader in (lambda: yamlio.read(path, what="recipe"), lambda: yamlio.parse(text, str(path), what="recipe")):
        start = time.monotonic()
        with pytest.raises(BadInput, match="anchors and aliases|nested more than 64") as caught:
            reader()
        assert time.monotonic() - start < 5
        assert caught.value.path == str(path) and caught.value.line == 2
        assert str(caught.value).startswith(f"{path}:2: ")


@pytest.mark.parametrize("text, message, line", [
    ("a: 1\nb: !!python/name:os.system x\n", "YAML tags (!...) are not allowed", 2),
    ("a: &x 1\nb: *x\n", "YAML anchors and aliases (&x / *x) are not allowed", 1),
    ("a: [1, 2\n", "invalid YAML: ", 2),
    ("a: 1\nwhen: 2026-02-30\n", "invalid value: ", 2),
    ("a: 1\n? stacks:\n  s:\n    up: [x]\n", "invalid YAML for patchq: a mapping or list is used as a key", 2),
])
def test_every_refusal_is_one_line_with_file_and_line(tmp_path, text, message, line):
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(BadInput) as caught:
        yamlio.read(path, what="x.yaml")
    assert message in caught.value.message
    assert caught.value.line == line and caught.value.path == str(path)
    assert "\n" not in str(caught.value)


def test_size_limit_is_checked_before_anything_is_parsed(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_bytes(b"a: " + b"x" * yamlio.MAX_YAML_BYTES + b"\n")
    with pytest.raises(BadInput) as caught:
        yamlio.read(path, what="big.yaml")
    assert caught.value.message == "big.yaml is 4194308 bytes; more than 4194304 is not a hand-written file"
    assert caught.value.path == str(path)
    with pytest.raises(BadInput) as caught:
        yamlio.parse(path.read_text(), str(path), what="recipe")
    assert caught.value.message == "recipe is 4194308 bytes; more than 4194304 is not a hand-written file"
    with pytest.raises(BadInput) as caught:
        yamlio.read(tmp_path / "missing.yaml", what="recipe")
    assert caught.value.message == "recipe not found"


def test_recipes_read_through_the_door_give_what_the_safe_loader_gave(tmp_path):
    """The data and key lines the recipe loader takes from ruamel's safe loader today, from `yamlio` instead."""
    root = build_demo(tmp_path / "demo")
    texts = [p.read_text() for p in sorted(root.glob("kernels/*.yaml"))] + [RECIPE]
    assert len(texts) >= 3
    for text in texts:
        doc = yamlio.parse(text, "r.yaml", what="recipe")
        want = YAML(typ="safe", pure=True).load(text)
        got = doc.plain()
        assert got == want
        assert repr(got) == repr(want)           # plain types, not ruamel's str/int/float subclasses
        assert doc.key_lines() == _safe_lines(text)
    doc = yamlio.parse(RECIPE, "r.yaml")
    assert doc.key_lines()["outputs[0].kind"] == 8 and doc.key_lines()["resources.memory_gb"] == 11
    assert doc.line_of(key="env") == 12 and doc.line_of(doc.data["inputs"], 1) == 5


def test_editable_reads_keep_comments_for_rewrites(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(RECIPE)
    fast = yamlio.load(path, what="recipe")
    again = yamlio.editable(fast, path, "recipe")
    assert yamlio.dump(again, like=path).decode() == RECIPE
    assert yamlio.editable(again, path, "recipe") is again


def test_only_the_door_builds_a_yaml_loader():
    """ruamel and PyYAML loaders live behind `yamlio` (its fast path is `fastyaml`); nothing else parses YAML."""
    loader = re.compile(r"\bYAML\(|yaml\.(safe_)?load\(|import yaml\b|CSafeLoader|CLoader")
    allowed = {"yamlio.py", "fastyaml.py"}
    offenders = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                       if p.name not in allowed and loader.search(p.read_text()))
    assert offenders == []
