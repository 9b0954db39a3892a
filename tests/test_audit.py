"""The env-flag audit per patch and per stack, on real queues applied to real upstreams."""

from __future__ import annotations

from conftest import result_of
from patchq.audit import audit_stack, audit_workspace
from patchq.model import Status

SRC = "import os\n\n\ndef run(x):\n    return x\n\n\ndef other(y):\n    return y\n"


def _lab(lab, make_upstream):
    up = make_upstream("vllm")
    up.write("vllm/run.py", SRC).write("vllm/envs.py", "import os\nUP = os.getenv('VLLM_UPSTREAM_OWN', '0')\n")
    base = up.commit("base")
    lab.upstream("vllm", up, base)
    return up, base


def kinds(audit):
    return sorted({f.kind for f in audit.findings})


def test_flags_found_with_post_image_lines_and_defaults(lab, make_upstream):
    up, base = _lab(lab, make_upstream)
    lab.patch("vllm", "gate", up.diff(base, [("vllm/run.py", "    return x\n",
                                               "    if os.environ.get(\"VLLM_GATE\", \"0\") == \"1\":\n"
                                               "        x = x + 1\n    return x\n")]), flags=("VLLM_GATE",))
    lab.stack("s", ["vllm"], profile={"VLLM_GATE": "1"})
    audit = audit_stack(lab.load(), "s")
    [summary] = audit.flags
    assert summary.name == "VLLM_GATE" and summary.defaults == ("0",) and summary.default_off is True
    assert summary.profile_value == "1"
    assert [(r.path, r.line) for r in summary.reads] == [("vllm/run.py", 5)]
    assert audit.findings == ()


def test_declared_and_found_disagree(lab, make_upstream):
    up, base = _lab(lab, make_upstream)
    lab.patch("vllm", "p", up.diff(base, [("vllm/run.py", "    return x\n",
                                            "    return x * int(os.getenv(\"VLLM_SCALE\", \"2\"))\n")]),
              flags=("VLLM_SCALE_TYPO",))
    lab.stack("s", ["vllm"])
    assert kinds(audit_stack(lab.load(), "s")) == ["declared-not-found", "found-not-declared"]


def test_profile_typo_and_negative_flag_in_profile(lab, make_upstream):
    up, base = _lab(lab, make_upstream)
    lab.patch("vllm", "good", up.diff(base, [("vllm/run.py", "    return x\n",
                                               "    if os.getenv(\"VLLM_GOOD\"):\n        x += 1\n    return x\n")]),
              flags=("VLLM_GOOD",))
    lab.patch("vllm", "bad", up.diff(base, [("vllm/run.py", "    return y\n",
                                              "    if os.getenv(\"VLLM_REJECTED\"):\n        y += 1\n    return y\n")]),
              status=Status.NEGATIVE_ARCHIVED, flags=("VLLM_REJECTED",))
    lab.stack("s", ["vllm"], profile={"VLLM_GOOD": "1", "VLLM_GOD": "1", "VLLM_REJECTED": "1",
                                      "VLLM_UPSTREAM_OWN": "1"})
    audit = audit_stack(lab.load(), "s")
    by_kind = {f.kind: f.message for f in audit.findings}
    assert "VLLM_GOD" in by_kind["profile-unread"]
    assert "VLLM_REJECTED" in by_kind["negative-in-profile"] and "bad" in by_kind["negative-in-profile"]
    assert not any("VLLM_UPSTREAM_OWN" in f.message for f in audit.findings)   # upstream reads it itself


def test_default_mismatch_and_default_on(lab, make_upstream):
    up, base = _lab(lab, make_upstream)
    lab.patch("vllm", "a", up.diff(base, [("vllm/run.py", "    return x\n",
                                            "    if os.environ.get(\"VLLM_X\", \"1\") == \"1\":\n"
                                            "        x += 1\n    return x\n")]), flags=("VLLM_X",))
    lab.patch("vllm", "b", up.diff(base, [("vllm/run.py", "    return y\n",
                                            "    if os.environ.get(\"VLLM_X\", \"0\") == \"1\":\n"
                                            "        y += 1\n    return y\n")]), flags=("VLLM_X",))
    lab.stack("s", ["vllm"])
    audit = audit_stack(lab.load(), "s")
    assert kinds(audit) == ["default-mismatch", "default-on"]
    assert audit.flags[0].default_off is False


def test_patch_that_does_not_apply_is_audited_from_its_hunks(lab, make_upstream):
    up, base = _lab(lab, make_upstream)
    diff = up.diff(base, [("vllm/run.py", "    return x\n",
                           "    if os.getenv(\"VLLM_OLD\"):\n        x -= 1\n    return x\n")])
    up.edit("vllm/run.py", "def run(x):\n    return x\n", "def run(x):\n    x = abs(x)\n    return x + 0\n")
    pin = up.commit("rewrite run")
    lab.upstream("vllm", up, pin)
    lab.patch("vllm", "old", diff, status=Status.DIAGNOSTIC, flags=("VLLM_OLD",))
    audit = audit_workspace(lab.load(), "old")
    [patch] = audit.patches
    assert patch.approximate and patch.found == ("VLLM_OLD",)
    assert patch.reads[0].line == 5


def test_cli_fail_on_and_json(lab, make_upstream, patchq):
    up, base = _lab(lab, make_upstream)
    lab.patch("vllm", "p", up.diff(base, [("vllm/run.py", "    return x\n",
                                            "    if os.getenv(\"VLLM_P\"):\n        x += 1\n    return x\n")]),
              flags=("VLLM_P",))
    lab.stack("s", ["vllm"], profile={"VLLM_Q": "1"})
    root = lab.save()
    plain = patchq("flags", "s", cwd=root)
    assert plain.code == 0 and "profile-unread" in plain.out
    gated = patchq("flags", "s", "--fail-on", "profile-unread", cwd=root)
    assert gated.code == 1
    other = patchq("flags", "s", "--fail-on", "default-on", cwd=root)
    assert other.code == 0
    bad = patchq("flags", "s", "--fail-on", "nonsense", cwd=root)
    assert bad.code == 2 and "unknown --fail-on" in bad.err
    data = result_of(patchq("--json", "flags", "s", cwd=root).out)
    assert data["flags"][0]["name"] == "VLLM_P" and data["findings"][0]["kind"] == "profile-unread"
