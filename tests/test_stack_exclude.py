"""A stack's `exclude:` list (what a rebase left out): every entry must name a patch of one of the stack's
upstreams, so a typo cannot leave the patch it meant in the stack without a word; a bare id works as `upstream:id`.
`stack list` shows it, and a stack's explicit `patches:` list."""

from __future__ import annotations

import pytest

from patchq.errors import BadInput
from patchq.model import Status
from patchq.workspace import load_workspace


def two_patch_lab(lab, pyupstream, **stack_opts):
    up, base = pyupstream
    lab.upstream("vllm", up, base)
    lab.patch("vllm", "keep", up.diff(base, [("README.md", "demo\n", "demo!\n")]))
    lab.patch("vllm", "drop", up.diff(base, [("vllm/model.py", "return x * 3\n", "return x * 4\n")]),
              status=Status.PROMOTED)
    lab.stack("s", ["vllm"], **stack_opts)
    return lab.save()


@pytest.mark.parametrize("written", ["vllm:drop", "drop"])
def test_an_excluded_patch_is_left_out_by_full_ref_or_bare_id(lab, pyupstream, written):
    ws = load_workspace(two_patch_lab(lab, pyupstream, exclude=[written]))
    assert [e.id for e in ws.stack_entries(ws.stack("s"), "vllm")] == ["keep"]


def test_an_exclude_naming_no_patch_is_refused_with_file_and_line(lab, pyupstream):
    root = two_patch_lab(lab, pyupstream, exclude=["vllm:dorp"])
    with pytest.raises(BadInput) as caught:
        load_workspace(root)
    err = caught.value
    assert "stack 's' excludes 'vllm:dorp'" in err.message and "drop" in err.message     # the near name is offered
    assert err.path == str(root / "pins.lock")
    lines = (root / "pins.lock").read_text().splitlines()
    assert err.line is not None and lines[err.line - 1].strip().startswith("exclude:")


def test_the_cli_says_it_in_one_line_and_exits_2(lab, pyupstream, patchq):
    root = two_patch_lab(lab, pyupstream, exclude=["vllm:dorp"])
    res = patchq("--workspace", str(root), "apply", "s", "--check")
    assert res.code == 2
    assert res.err.count("\n") == 1 and "excludes 'vllm:dorp'" in res.err and "pins.lock:" in res.err


def test_stack_list_shows_an_explicit_patch_list_and_the_excluded_patches(lab, pyupstream, patchq):
    import json
    up, base = pyupstream
    lab.upstream("vllm", up, base)
    lab.patch("vllm", "keep", up.diff(base, [("README.md", "demo\n", "demo!\n")]))
    lab.patch("vllm", "drop", up.diff(base, [("vllm/model.py", "return x * 3\n", "return x * 4\n")]))
    lab.stack("listed", ["vllm"], patches=["vllm:keep"])
    lab.stack("pruned", ["vllm"], exclude=["vllm:drop"])
    root = lab.save()
    text = patchq("--workspace", str(root), "stack", "list")
    assert text.code == 0, text.err
    assert "listed: vllm  (listed patches)" in text.out and "  patches: vllm:keep" in text.out
    assert "pruned: vllm  (include promoted)" in text.out and "  exclude: vllm:drop" in text.out
    doc = json.loads(patchq("--workspace", str(root), "--json", "stack", "list").out)["result"]
    by_name = {s["name"]: s for s in doc}
    assert by_name["listed"]["listed"] == ["vllm:keep"] and by_name["listed"]["patches"] == {"vllm": 1}
    assert by_name["pruned"]["exclude"] == ["vllm:drop"] and by_name["pruned"]["patches"] == {"vllm": 1}
