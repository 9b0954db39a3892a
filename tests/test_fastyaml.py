"""The libyaml fast read path: the same documents as ruamel's round trip, or no answer; never a different one."""

from __future__ import annotations

import pytest

from hostile.corpus import all_cases
from hostile.properties import LOCK, SERIES, same_document
from patchq import fastyaml
from patchq.demo import build_demo
from patchq.errors import BadInput
from patchq.workspace import load_workspace, load_yaml
from patchq.yamlio import MAX_YAML_DEPTH, guarded_loader


def exact(text: str):
    return guarded_loader("t.yaml").load(text)


def fast(text: str):
    return fastyaml.load(text, max_depth=MAX_YAML_DEPTH)


def test_every_file_of_the_demo_workspace_is_read_fast_and_identically(tmp_path):
    root = build_demo(tmp_path / "demo")
    files = [root / "pins.lock", *sorted(root.glob("queues/*/series.yaml")), *sorted(root.glob("kernels/*.yaml"))]
    assert len(files) >= 4
    for path in files:
        text = path.read_text()
        doc = fast(text)
        assert doc is not None, f"{path.name}: a file patchq writes left the fast path"
        same_document(doc, exact(text), path.name)


def test_typed_scalars_come_out_as_ruamel_builds_them():
    text = ("a: 1\nb: 89.5\nc: 1e3\nd: 0x1F\ne: true\nf: null\ng:\nh: 2026-05-19\ni: '2026-05-19'\nj: yes\n"
            "k: [x, 'y', \"z\"]\nl: {m: n}\no: |\n  kept\n  lines\np: >-\n  folded\n  text\nq: 1_000\nr: .inf\n")
    doc = fast(text)
    assert doc is not None
    same_document(doc, exact(text))
    assert doc["j"] == "yes" and doc["h"].isoformat() == "2026-05-19" and doc["i"] == "2026-05-19"
    assert doc["o"] == "kept\nlines\n" and doc["p"] == "folded text" and doc["g"] is None


@pytest.mark.parametrize("text, why", [
    ("a: !!python/name:os.system x\n", "tag"),
    ("a: ! x\n", "non-specific tag"),
    ("a: &x 1\nb: *x\n", "anchor and alias"),
    ("a: 1\na: 2\n", "duplicate key"),
    ("<<: {a: 1}\nb: 2\n", "merge key"),
    ("a: 1\n---\nb: 2\n", "two documents"),
    ("%YAML 1.1\n---\na: 1\n", "directive"),
    ("? [a, b]\n: c\n", "a sequence as key"),
    ("1: one\n", "a number as key"),
    ("a: 2026-02-30\n", "impossible date"),
    ("a:\tb\n", "tab"),
    ("a: =\n", "the value key"),
    ("a: [" * (MAX_YAML_DEPTH + 1) + "]" * (MAX_YAML_DEPTH + 1) + "\n", "deep nesting"),
    ("a: [1, 2\n", "unclosed flow sequence"),
])
def test_anything_outside_the_plain_subset_gets_no_fast_answer(text, why):
    assert fast(text) is None, why


@pytest.mark.parametrize("text, message", [
    ("a: !!python/name:os.system x\n", "YAML tags (!...) are not allowed"),
    ("a: &x 1\nb: *x\n", "YAML anchors and aliases"),
    ("a: 1\na: 2\n", "duplicate key"),
    ("a: 2026-02-30\n", "invalid value"),
    ("a: [1, 2\n", "invalid YAML"),
])
def test_what_the_fast_path_leaves_still_gets_the_exact_loaders_error(tmp_path, text, message):
    path = tmp_path / "series.yaml"
    path.write_text(text)
    with pytest.raises(BadInput) as caught:
        load_yaml(path, what="series.yaml")
    assert message in str(caught.value) and str(caught.value).startswith(f"{path}:")


def test_hostile_and_seed_yaml_is_never_read_differently():
    texts = [LOCK.decode(), SERIES.decode()]
    texts += [c.data[0].decode("utf-8", "replace") for c in all_cases() if c.kind in ("lock", "series")]
    answered = 0
    for text in texts:
        doc = fast(text)
        try:
            expected = exact(text)
        except Exception:
            assert doc is None, text[:200]
            continue
        if doc is not None:
            answered += 1
            same_document(doc, expected)
    assert answered >= 2


def test_rewrites_after_a_fast_read_keep_comments_and_quoting(lab, pyupstream, patchq):
    up, base = pyupstream
    lab.upstream("vllm", up, base)
    lab.patch("vllm", "fast", up.diff(base, [("vllm/model.py", "return x * 2", "return x * 3")]))
    lab.patch("vllm", "probe", up.diff(base, [("vllm/engine.py", "", "PROBE = 1\n")]))
    lab.stack("s", ["vllm"])
    lab.save()
    series = lab.root / "queues" / "vllm" / "series.yaml"
    text = series.read_text()
    text = "# the lab's queue: keep this note\n" + text.replace("  - id: probe\n", "  # probe: timing only\n"
                                                                "  - id: probe\n", 1)
    series.write_text(text)
    assert fastyaml.is_fast(load_workspace(lab.root).series_docs["vllm"])
    result = patchq("-w", str(lab.root), "status", "probe", "diagnostic")
    assert result.code == 0, result.err
    after = series.read_text()
    assert after.startswith("# the lab's queue: keep this note\n")
    assert "  # probe: timing only\n  - id: probe\n" in after
    assert load_workspace(lab.root).queue("vllm").get("probe").status.value == "diagnostic"
