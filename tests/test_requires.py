"""The `requires` series field: validated at load, enforced by apply before any checkout, shown, checked.

Also the `salvaged` mark import puts on a patch rebuilt from a damaged bundle: such a patch can never be promoted.
"""

from __future__ import annotations

import pytest

from conftest import result_of
from patchq.errors import BadInput
from patchq.model import Status
from patchq.patchfile import entry_from_patch, read_patch_file
from patchq.workspace import load_workspace


def chain_lab(lab, pyupstream):
    """Queue: a (adds a line), b (edits the line a adds; requires a), c (unrelated)."""
    up, base = pyupstream
    lab.upstream("vllm", up, base)
    a_diff = up.diff(base, [("vllm/model.py", "return x * 3\n", "return x * 3\n    # tuned\n")])
    lab.patch("vllm", "a", a_diff, status=Status.NEGATIVE_ARCHIVED)
    up.edit("vllm/model.py", "return x * 3\n", "return x * 3\n    # tuned\n")
    with_a = up.commit("with a")
    b_diff = up.diff(with_a, [("vllm/model.py", "    # tuned\n", "    # tuned twice\n")])
    lab.patch("vllm", "b", b_diff, requires=("a",))
    lab.patch("vllm", "c", up.diff(base, [("README.md", "demo\n", "demo!\n")]))
    lab.stack("s", ["vllm"])
    return lab


def test_requires_round_trips_through_series_and_trailers(lab, pyupstream):
    ws = chain_lab(lab, pyupstream).load()
    b = ws.queue("vllm").get("b")
    assert b.requires == ("a",)
    patch = read_patch_file(ws.patch_path(b).read_bytes(), source="b")
    assert patch.trailer("Patchq-Requires") == "a"
    assert entry_from_patch(patch, upstream="vllm", file=b.file, source="b").requires == ("a",)


@pytest.mark.parametrize("requires, words", [
    ("[nowhere]", "refers to 'nowhere', which is not in this queue"),
    ("[b]", "requires form a cycle: b -> b"),
])
def test_series_refuses_unknown_and_cyclic_requires(lab, pyupstream, requires, words):
    root = chain_lab(lab, pyupstream).save()
    series = root / "queues/vllm/series.yaml"
    text = series.read_text()
    assert "requires: [a]" in text
    series.write_text(text.replace("requires: [a]", f"requires: {requires}"))
    with pytest.raises(BadInput) as exc:
        load_workspace(root)
    assert words in exc.value.message and exc.value.line


def test_series_refuses_a_longer_cycle(lab, pyupstream):
    root = chain_lab(lab, pyupstream).save()
    series = root / "queues/vllm/series.yaml"
    text = series.read_text().replace("  - id: a\n", "  - id: a\n    requires: [c]\n", 1)
    text = text.replace("  - id: c\n", "  - id: c\n    requires: [b]\n", 1)
    series.write_text(text)
    with pytest.raises(BadInput) as exc:
        load_workspace(root)
    assert "cycle" in exc.value.message and {"a", "b", "c"} <= set(exc.value.message.replace(">", " ").split())


def test_apply_of_a_stack_without_a_requirement_exits_2_before_any_checkout(lab, pyupstream, patchq):
    root = chain_lab(lab, pyupstream).save()        # the stack takes promoted b, c but not negative-archived a
    res = patchq("-w", str(root), "apply", "s")
    assert res.code == 2, res.err
    assert "vllm:b" in res.err and "vllm:a" in res.err and "requires" in res.err
    assert not (root / ".patchq" / "checkouts").exists()
    res = patchq("-w", str(root), "apply", "s", "--with", "negative-archived:a")
    assert res.code == 0, res.out + res.err


def test_show_lists_requires_and_required_by(lab, pyupstream, patchq):
    root = chain_lab(lab, pyupstream).save()
    res = patchq("-w", str(root), "show", "a")
    assert "required-by" in res.out and "b" in res.out.split("required-by", 1)[1]
    res = patchq("-w", str(root), "show", "b")
    assert "requires" in res.out and " a" in res.out.split("requires", 1)[1].splitlines()[0]
    doc = result_of(patchq("-w", str(root), "--json", "show", "a").out)
    assert doc["required_by"] == ["b"] and doc["patch"]["requires"] == []


def test_check_flags_a_requirement_after_its_patch_and_salvaged_promoted(lab, pyupstream, patchq):
    root = chain_lab(lab, pyupstream).save()
    series = root / "queues/vllm/series.yaml"
    text = series.read_text()
    a_block, rest = text.split("  - id: b\n", 1)
    head, a_node = a_block.split("  - id: a\n", 1)
    series.write_text(head + "  - id: b\n" + rest.split("  - id: c\n")[0] + "  - id: a\n" + a_node
                      + "  - id: c\n" + rest.split("  - id: c\n")[1])
    assert [e.id for e in load_workspace(root).queue("vllm").entries] == ["b", "a", "c"]
    res = patchq("-w", str(root), "--json", "check")
    kinds = {f["kind"]: f["message"] for f in result_of(res.out)}
    assert res.code == 1 and "b requires a" in kinds["requires-order"]


def test_a_salvaged_patch_can_never_be_promoted(lab, pyupstream, patchq):
    up, base = pyupstream
    lab.upstream("vllm", up, base)
    lab.patch("vllm", "rescued", up.diff(base, [("README.md", "demo\n", "demo!\n")]), status=Status.DIAGNOSTIC,
              salvaged="2 file sections lost after line 40 of the decoded text")
    root = lab.save()
    res = patchq("-w", str(root), "mark", "rescued", "promoted")
    assert res.code == 2 and "salvaged" in res.err and "never be promoted" in res.err
    assert load_workspace(root).queue("vllm").get("rescued").status == Status.DIAGNOSTIC
    series = root / "queues/vllm/series.yaml"
    series.write_text(series.read_text().replace("status: diagnostic", "status: promoted"))
    res = patchq("-w", str(root), "--json", "check")
    assert res.code == 1 and "salvaged-promoted" in {f["kind"] for f in result_of(res.out)}
