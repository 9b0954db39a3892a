"""import: every input kind of a lab folder, every bad input, upstream choice, splits, inference, dups, atomicity.

The workspace has three real upstreams: vLLM, llm-scaler (which also has a top-level `vllm/`, with a different
`vllm/platforms/xpu.py`) and the lab's own scripts. Patches are made by git or by GNU diff from real files.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import subprocess
import time
from pathlib import Path

import pytest

from conftest import result_of
from patchq.bundle import encode_gz_b64
from patchq.errors import BadInput
from patchq.export import export_stack
from patchq.git import Repo, run_git
from patchq.importer import (
    ImportAction,
    MapRule,
    import_paths,
    parse_head,
    scan_diff,
    slug_of,
    status_from_name,
    status_from_text,
)
from patchq.model import OutcomeKind, Status
from patchq.patchfile import read_patch_file
from patchq.workspace import load_workspace

MINIMAX = "".join(f"def block_{i}(x):\n    return x + {i}\n\n\n" for i in range(30))
VLLM_XPU = "import os\n\n\nclass XPUPlatform:\n    device = 'xpu'\n    use_ccl = False\n\n    def name(self):\n" \
           "        return 'vllm-xpu'\n"
SCALER_XPU = "import torch\n\n\nclass ScalerXPU:\n    kernels = 'esimd'\n    use_ws = False\n\n    def name(self):\n" \
             "        return 'scaler'\n"
RUN_SH = "#!/bin/sh\nset -e\nMODEL=minimax\nvllm serve $MODEL --tp 4\n"


@pytest.fixture
def ws3(lab, make_upstream):
    """A workspace with vllm, llm-scaler and lab upstreams and empty queues."""
    vllm = make_upstream("vllm")
    vllm.write("vllm/model_executor/models/minimax_m2.py", MINIMAX).write("vllm/platforms/xpu.py", VLLM_XPU)
    vllm.write("vllm/envs.py", "environment_variables = {}\n").write("README.md", "vllm\n")
    scaler = make_upstream("llm-scaler")
    scaler.write("vllm/platforms/xpu.py", SCALER_XPU).write("vllm/custom-esimd-kernels-vllm/moe.py", MINIMAX)
    scaler.write("README.md", "scaler\n")
    labsrc = make_upstream("lab")
    labsrc.write("scripts/run_bench.sh", RUN_SH).write("scripts/env.sh", "export A=1\n")
    (labsrc.path / "logs").symlink_to("/tmp")
    lab.upstream("vllm", vllm, vllm.commit("v"))
    lab.upstream("llm-scaler", scaler, scaler.commit("s"))
    lab.upstream("lab", labsrc, labsrc.commit("l"))
    lab.srcs = {"vllm": vllm, "llm-scaler": scaler, "lab": labsrc}
    lab.save()
    return lab


_SCRATCH: dict[str, Repo] = {}


def gdiff(lab, upstream, edits) -> bytes:
    """A real `git diff --full-index` of `edits` on the upstream's pin, made in one scratch clone per upstream."""
    source, pin = lab.upstreams[upstream]
    key = f"{source.path}@{pin}"
    if key not in _SCRATCH:
        scratch = source.path.parent / f".import-scratch-{source.path.name}"
        run_git(["clone", "-q", str(source.path), str(scratch)])
        _SCRATCH[key] = Repo(scratch)
        _SCRATCH[key].run("checkout", "-q", "--detach", pin)
    repo = _SCRATCH[key]
    for rel, old, new in edits:
        target = repo.path / rel
        if old == "" and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(new)
        else:
            text = target.read_text()
            assert old in text, (old, rel)
            target.write_text(text.replace(old, new, 1))
    repo.run("add", "-A")
    out = repo.run("diff", "--cached", "--full-index", pin).stdout
    repo.run("reset", "-q", "--hard", pin)
    return out


def block_edit(i: int, extra: str = " + 100") -> tuple[str, str, str]:
    return ("vllm/model_executor/models/minimax_m2.py", f"return x + {i}\n", f"return x + {i}{extra}\n")


def by_source(report) -> dict[str, list]:
    out: dict[str, list] = {}
    for item in report.items:
        out.setdefault(item.source, []).append(item)
    return out


def one(report, source_end: str):
    found = [i for i in report.items if i.source.endswith(source_end)]
    assert len(found) == 1, (source_end, [i.source for i in report.items])
    return found[0]


def tree_hash(root: Path) -> str:
    """Everything a user sees in the workspace (the git-ignored .patchq/ state folder aside)."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] == ".patchq":
            continue
        digest.update(str(rel).encode() + b"\0")
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


# ---- inference rules ---------------------------------------------------------------------------------------------

def test_status_and_slug_rules_from_names():
    assert status_from_name("qk-norm-20260519-negative") == (Status.NEGATIVE_ARCHIVED,
                                                              "name: 'negative' in 'qk-norm-20260519-negative'")
    assert status_from_name("ws-moe-quality-fail")[0] == Status.NEGATIVE_ARCHIVED
    assert status_from_name("decode-timing-hooks")[0] == Status.DIAGNOSTIC
    assert status_from_name("mtp-promoted-then-rejected")[0] == Status.NEGATIVE_ARCHIVED   # the last verdict wins
    assert status_from_name("moe-ws-promoted-20260519")[0] == Status.PROMOTED
    assert status_from_name("moe-active-experts") is None        # promotion words count only as a suffix
    assert status_from_name("plain-change") is None
    assert status_from_text("Tried it.\nVerdict: no uplift at tp4\n")[0] == Status.NEGATIVE_ARCHIVED
    assert status_from_text("Verdict: promoted\n") == (Status.PROMOTED, "text: 'Verdict: promoted'")
    assert status_from_text("the current code is slow") is None  # prose never promotes
    assert slug_of("0003-qk-norm-fusion-20260519-negative") == "qk-norm-fusion"
    assert slug_of("Fix the XPU allreduce (v2)!", from_name=False) == "fix-the-xpu-allreduce-v2"


def test_heads_from_mail_headers_git_log_and_prose():
    mail = parse_head([b"From 1234567890abcdef1234567890abcdef12345678 Mon Sep 17 00:00:00 2001",
                       b"From: =?UTF-8?q?J=C3=B6rg_Lab?= <j@lab.example>", b"Date: Tue, 19 May 2026 10:00:00 +0200",
                       b"Subject: [PATCH 2/3] Fuse the", b" qk norms", b"", b"Body text.", b"---",
                       b" vllm/x.py | 2 +-"])
    assert (mail.author, mail.subject, mail.body) == ("J\u00f6rg Lab <j@lab.example>", "Fuse the qk norms",
                                                       "Body text.")
    log = parse_head([b"commit 0123456789abcdef0123456789abcdef01234567", b"Author: Ada <ada@lab>",
                      b"Date:   Tue May 19 10:00:00 2026 +0200", b"", b"    Trace decode", b"", b"    More."])
    assert (log.author, log.date, log.subject, log.body) == ("Ada <ada@lab>", "Tue, 19 May 2026 10:00:00 +0200",
                                                             "Trace decode", "More.")
    assert parse_head([b"Just prose", b"and more"]).body == "Just prose\nand more"


def test_scan_keeps_prose_and_drops_diff_r_noise():
    text = (b"Fuse qk norm\n\nwhy it helps\n"
            b"diff -ruN /tmp/a/x.py /home/u/x.py\n--- /tmp/a/x.py\t2026-05-19 10:00:00\n+++ /home/u/x.py\t2026-05-19\n"
            b"@@ -1 +1 @@\n-a\n+b\nOnly in /home/u: junk.pyc\n\nResult: -2% tok/s, rejected.\n")
    scanned = scan_diff(text)
    assert [(s.old, s.new) for s in scanned.sections] == [("/tmp/a/x.py", "/home/u/x.py")]
    assert b"Result: -2% tok/s, rejected." in scanned.tail
    assert any("Only in" in r for r in scanned.remarks)


# ---- input kinds -------------------------------------------------------------------------------------------------

def test_loose_git_diffs_get_status_date_id_and_rule(ws3, tmp_path):
    folder = tmp_path / "labpatches"
    folder.mkdir()
    (folder / "qk-norm-fusion-20260519-negative.patch").write_bytes(
        b"QK norm fusion for MiniMax\n\nFuses the two norms.\n\n" + gdiff(ws3, "vllm", [block_edit(3)]))
    (folder / "decode-timing.patch").write_bytes(gdiff(ws3, "vllm", [block_edit(5, " * 1")]))
    (folder / "moe-ws-promoted-2026-05-20.diff").write_bytes(gdiff(ws3, "vllm", [block_edit(7)]))
    (folder / "plain-change.patch").write_bytes(gdiff(ws3, "vllm", [block_edit(9)]))
    report = import_paths(ws3.load(), [folder])
    assert report.ok and report.inputs == 4
    neg = one(report, "qk-norm-fusion-20260519-negative.patch")
    assert (neg.action, neg.patch_id, neg.upstream, neg.status, neg.date) == (
        ImportAction.IMPORTED, "qk-norm-fusion", "vllm", "negative-archived", "2026-05-19")
    assert neg.status_rule == "name: 'negative' in 'qk-norm-fusion-20260519-negative'"
    assert neg.date_rule.startswith("name:") and neg.outcome == "clean"
    assert one(report, "decode-timing.patch").status == "diagnostic"
    promoted = one(report, "moe-ws-promoted-2026-05-20.diff")
    assert (promoted.status, promoted.date, promoted.patch_id) == ("promoted", "2026-05-20", "moe-ws")
    default = one(report, "plain-change.patch")
    assert default.status == "negative-archived" and default.status_rule.startswith("default:")
    ws = load_workspace(ws3.root)
    queue = ws.queue("vllm")
    assert [e.id for e in queue.entries] == ["decode-timing", "moe-ws", "plain-change", "qk-norm-fusion"]
    assert [e.file for e in queue.entries][:2] == ["0001-decode-timing.patch", "0002-moe-ws.patch"]
    entry = queue.get("qk-norm-fusion")
    assert entry.title == "QK norm fusion for MiniMax" and entry.why.startswith("Fuses the two norms.")
    assert "Imported from" in entry.why
    patch = read_patch_file(ws.patch_path(entry).read_bytes(), source="x")
    assert patch.trailer("Patchq-Status") == "negative-archived" and patch.trailer("Patchq-Date") == "2026-05-19"


def test_diff_u_with_absolute_venv_paths_and_prose_after(ws3, tmp_path):
    orig = tmp_path / "tmp" / "vllm-0.20.1-orig" / "vllm" / "model_executor" / "models"
    venv = tmp_path / "home" / "u" / ".venvs" / "v" / "lib" / "python3.12" / "site-packages" / "vllm" / \
        "model_executor" / "models"
    orig.mkdir(parents=True)
    venv.mkdir(parents=True)
    (orig / "minimax_m2.py").write_text(MINIMAX)
    (venv / "minimax_m2.py").write_text(MINIMAX.replace(
        "return x + 12\n", "if os.environ.get(\"VLLM_MINIMAX_DOUBLE\", \"0\") == \"1\":\n        return x + 24\n"
                            "    return x + 12\n"))
    (venv / "new_helper.py").write_text("HELPER = 1\n")
    out = subprocess.run(["diff", "-ruN", str(orig.parents[1]), str(venv.parents[1])], capture_output=True).stdout
    assert out.count(b"\n--- /") == 2 and b"site-packages" in out
    folder = tmp_path / "in"
    folder.mkdir()
    prose = b"\nMeasured: 81 -> 80 tok/s, neutral.\n---\nbench: lane 2\n"
    (folder / "site-packages-edit.diff").write_bytes(out + prose)
    report = import_paths(ws3.load(), [folder])
    item = one(report, "site-packages-edit.diff")
    assert (item.action, item.upstream, item.outcome) == (ImportAction.IMPORTED, "vllm", "clean")
    assert item.status == "negative-archived" and "neutral" in item.status_rule
    assert any("dropping" in r and "/site-packages/" in r and "vllm-0.20.1-orig/" in r for r in item.remarks)
    ws = load_workspace(ws3.root)
    entry = ws.queue("vllm").get("site-packages-edit")
    patch = read_patch_file(ws.patch_path(entry).read_bytes(), source="x")
    assert sorted(f.path for f in patch.files) == ["vllm/model_executor/models/minimax_m2.py",
                                                   "vllm/model_executor/models/new_helper.py"]
    assert next(f for f in patch.files if f.path.endswith("new_helper.py")).is_new
    assert "Measured: 81 -> 80 tok/s, neutral." in entry.why
    assert "\n> ---\nbench: lane 2" in entry.why          # a bare '---' would end the message: quoted
    assert entry.flags == ("VLLM_MINIMAX_DOUBLE",)


def test_absolute_checkout_path_inside_a_and_b(ws3, tmp_path):
    diff = gdiff(ws3, "vllm", [block_edit(2)])
    mangled = diff.replace(b"a/vllm/", b"a/home/u/src/vllm-checkout/vllm/").replace(
        b"b/vllm/", b"b/home/u/src/vllm-checkout/vllm/")
    (tmp_path / "abs-in-ab.patch").write_bytes(mangled)
    report = import_paths(ws3.load(), [tmp_path / "abs-in-ab.patch"])
    item = one(report, "abs-in-ab.patch")
    assert (item.action, item.upstream, item.outcome) == (ImportAction.IMPORTED, "vllm", "clean")
    ws = load_workspace(ws3.root)
    data = ws.patch_path(ws.queue("vllm").get("abs-in-ab")).read_bytes()
    assert b"diff --git a/vllm/model_executor/models/minimax_m2.py b/vllm/model_executor/models/minimax_m2.py" in data
    assert b"home/u" not in data.split(b"---\n", 1)[1]


def test_bundles_gz_b64_diff_gz_b64_and_plain_b64(ws3, tmp_path):
    folder = tmp_path / "bundles"
    folder.mkdir()
    (folder / "fused-moe.patch.gz.b64").write_bytes(encode_gz_b64(gdiff(ws3, "vllm", [block_edit(1)])))
    (folder / "fused-rope-diagnostic.diff.gz.b64").write_bytes(encode_gz_b64(gdiff(ws3, "vllm", [block_edit(4)])))
    (folder / "plain.b64").write_bytes(base64.encodebytes(gdiff(ws3, "lab", [("scripts/env.sh", "A=1", "A=2")])))
    report = import_paths(ws3.load(), [folder])
    assert report.ok
    moe = one(report, "fused-moe.patch.gz.b64")
    assert moe.upstream == "vllm" and any("foreign bundle" in r for r in moe.remarks)
    assert one(report, "fused-rope-diagnostic.diff.gz.b64").status == "diagnostic"
    assert one(report, "plain.b64").upstream == "lab"


def test_notes_beside_a_patch_and_notes_only_files(ws3, tmp_path):
    folder = tmp_path / "n"
    folder.mkdir()
    (folder / "ccl-overlap-20260501-rejected.patch").write_bytes(gdiff(ws3, "vllm", [block_edit(6)]))
    (folder / "ccl-overlap-20260501-rejected.md").write_text("# CCL overlap\n\nIt hung at tp4.\n")
    (folder / "mtp-idea-negative.md").write_text("# MTP speculative decode\n\nTried in prose only.\n\n"
                                                "```python\nos.environ.get('VLLM_MTP', '0')\n```\n")
    report = import_paths(ws3.load(), [folder])
    note = one(report, "ccl-overlap-20260501-rejected.md")
    assert note.action == ImportAction.NOTE and note.file == "queues/vllm/notes/ccl-overlap.md"
    assert "vllm:ccl-overlap" in note.reason
    only = one(report, "mtp-idea-negative.md")
    assert (only.action, only.file, only.status) == (ImportAction.NOTES_ONLY, "notes/mtp-idea.md",
                                                    "negative-archived")
    ws = load_workspace(ws3.root)
    assert ws.queue("vllm").get("ccl-overlap").notes == ("queues/vllm/notes/ccl-overlap.md",)
    assert (ws3.root / "queues/vllm/notes/ccl-overlap.md").read_text().startswith("# CCL overlap")
    assert (ws3.root / "notes/mtp-idea.md").read_bytes() == (folder / "mtp-idea-negative.md").read_bytes()
    assert [e.id for e in ws.queue("vllm").entries] == ["ccl-overlap"]        # a note never becomes a patch


def test_quilt_series_in_order_with_strip_levels(ws3, tmp_path):
    quilt = tmp_path / "patches"
    quilt.mkdir()
    # one.patch (-p0) creates vllm/fused.py; two.patch (-p2, GNU diff labels) edits the file one creates
    one_diff = gdiff(ws3, "vllm", [("vllm/fused.py", "", "FUSED = 1\n"), block_edit(1)])
    (quilt / "one.patch").write_bytes(b"First patch\n\n" + one_diff.replace(b" a/vllm/", b" vllm/").replace(
        b" b/vllm/", b" vllm/"))
    (tmp_path / "f1").write_text("FUSED = 1\n")
    (tmp_path / "f2").write_text("FUSED = 2\n")
    two = subprocess.run(["diff", "-u", "--label", "orig/src/vllm/fused.py", "--label", "new/src/vllm/fused.py",
                          str(tmp_path / "f1"), str(tmp_path / "f2")], capture_output=True).stdout
    (quilt / "two.patch").write_bytes(b"Second patch\n\n" + two)
    (quilt / "series").write_text("# applied in this order\none.patch -p0\ntwo.patch -p2\n")
    (quilt / "stray.patch").write_bytes(gdiff(ws3, "vllm", [block_edit(20)]))
    report = import_paths(ws3.load(), [quilt])
    assert one(report, "patches/series").action == ImportAction.SERIES
    stray = one(report, "stray.patch")
    assert stray.action == ImportAction.SKIPPED and "not listed" in stray.reason
    a, b = one(report, "one.patch"), one(report, "two.patch")
    assert (a.action, a.patch_id, a.upstream, a.outcome) == (ImportAction.IMPORTED, "one", "vllm", "clean")
    assert (b.action, b.patch_id, b.upstream, b.outcome) == (ImportAction.IMPORTED, "two", "vllm", "clean")
    assert any("series order" in r for r in b.remarks)
    ws = load_workspace(ws3.root)
    assert [e.id for e in ws.queue("vllm").entries] == ["one", "two"]
    assert ws.queue("vllm").get("one").title == "First patch"
    two_patch = read_patch_file(ws.patch_path(ws.queue("vllm").get("two")).read_bytes(), source="two")
    assert [f.path for f in two_patch.files] == ["vllm/fused.py"]


def format_patch(lab, upstream: str, commits: list[tuple[str, list]]) -> bytes:
    """A real `git format-patch --stdout` series of commits made on a clone of the upstream."""
    source, pin = lab.upstreams[upstream]
    work = source.path.parent / f"fp-{upstream}"
    subprocess.run(["git", "clone", "-q", str(source.path), str(work)], check=True)
    for message, edits in commits:
        for rel, old, new in edits:
            target = work / rel
            target.write_text(target.read_text().replace(old, new, 1))
        subprocess.run(["git", "commit", "-qam", message], cwd=work, check=True,
                       env={"GIT_AUTHOR_NAME": "Ada Lab", "GIT_AUTHOR_EMAIL": "ada@lab.example",
                            "GIT_COMMITTER_NAME": "Ada Lab", "GIT_COMMITTER_EMAIL": "ada@lab.example",
                            "GIT_AUTHOR_DATE": "2026-05-19T10:00:00+0200", "GIT_COMMITTER_DATE":
                                "2026-05-19T10:00:00+0200", "PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": "/tmp"})
    return subprocess.run(["git", "format-patch", "--stdout", "--cover-letter", f"{pin}..HEAD"], cwd=work,
                          capture_output=True, check=True).stdout


def test_mbox_each_message_one_patch_with_headers_kept(ws3, tmp_path):
    """A `git format-patch --stdout --cover-letter` series: the cover letter is named and skipped."""
    mbox = format_patch(ws3, "vllm", [
        ("Speed up block 3\n\nUses a fused add.", [block_edit(3)]),
        ("Trace block 8 timing\n\nAdds timing output.", [block_edit(8, " * 8")]),
    ])
    (tmp_path / "series.mbox").write_bytes(mbox)
    report = import_paths(ws3.load(), [tmp_path / "series.mbox"])
    cover, first, second = (one(report, f"series.mbox#{n}") for n in (1, 2, 3))
    assert cover.action == ImportAction.SKIPPED and "cover letter" in cover.reason
    assert (first.patch_id, second.patch_id) == ("speed-up-block-3", "trace-block-8-timing")
    assert (first.outcome, second.outcome) == ("clean", "clean")
    assert (second.status, second.status_rule) == ("diagnostic", "subject: 'timing' in 'Trace block 8 timing'")
    assert first.date_rule == "Date: header"
    ws = load_workspace(ws3.root)
    entry = ws.queue("vllm").get("speed-up-block-3")
    assert entry.title == "Speed up block 3" and entry.why.startswith("Uses a fused add.")
    assert entry.author == "Ada Lab <ada@lab.example>" and "19 May 2026 10:00:00 +0200" in entry.date
    data = ws.patch_path(entry).read_bytes()
    assert b"From: Ada Lab <ada@lab.example>\nDate: Tue, 19 May 2026 10:00:00 +0200\n" in data
    assert b"Subject: [PATCH] Speed up block 3\n" in data


def test_patchq_bundle_round_trip_is_byte_identical(lab, pyupstream, tmp_path):
    up, base = pyupstream
    lab.upstream("vllm", up, base)
    lab.patch("vllm", "one", up.diff(base, [("vllm/model.py", "return x * 3\n", "return x * 3 + 1\n")]),
              why="Because it is faster.\n\nSecond paragraph.", flags=("VLLM_ONE",), result="+3 tok/s")
    lab.patch("vllm", "two", up.diff(base, [("vllm/model.py", "return x * 3\n", "return x * 3 + 1\n"),
                                            ("vllm/model.py", "return x * 30\n", "return x * 30 + 2\n")]),
              status=Status.DIAGNOSTIC, base="one")
    lab.patch("vllm", "three", up.diff(base, [("README.md", "demo\n", "demo!\n")]))
    lab.stack("s", ["vllm"], include=["promoted", "diagnostic"])
    ws_a = lab.load()
    # `two` contains `one`'s change: rewrite it as a real follow-up on top of `one` so the stack applies in order
    source_two = up.diff(base, [("vllm/model.py", "return x * 30\n", "return x * 30 + 2\n")])
    two_path = ws_a.patch_path(ws_a.queue("vllm").get("two"))
    two_path.write_bytes(read_patch_file(two_path.read_bytes(), source="two").with_diff(source_two))
    ws_a = load_workspace(lab.root)
    export_stack(ws_a, "s", out_dir=tmp_path / "out")
    bundle = tmp_path / "out" / "s-vllm.patch.gz.b64"
    files_a = [ws_a.patch_path(e).read_bytes() for e in ws_a.queue("vllm").entries]

    root_b = tmp_path / "ws-b"
    root_b.mkdir()
    (root_b / "pins.lock").write_bytes((lab.root / "pins.lock").read_bytes())
    ws_b = load_workspace(root_b)
    report = import_paths(ws_b, [tmp_path / "out"])
    assert report.ok, report
    assert one(report, "s-vllm.manifest.json").action == ImportAction.METADATA
    assert one(report, "s-vllm.repro.md").action == ImportAction.METADATA
    items = [i for i in report.items if i.action == ImportAction.IMPORTED]
    assert [(i.patch_id, i.status, i.status_rule) for i in items] == [
        ("one", "promoted", "trailer: Patchq-Status"), ("two", "diagnostic", "trailer: Patchq-Status"),
        ("three", "promoted", "trailer: Patchq-Status")]
    ws_b = load_workspace(root_b)
    entries_a, entries_b = ws_a.queue("vllm").entries, ws_b.queue("vllm").entries
    assert entries_b == entries_a
    assert [ws_b.patch_path(e).read_bytes() for e in entries_b] == files_a
    export_stack(ws_b, "s", out_dir=tmp_path / "out-b")
    assert (tmp_path / "out-b" / "s-vllm.patch.gz.b64").read_bytes() == bundle.read_bytes()
    # importing the same bundle again changes nothing: every message is a duplicate of an existing entry
    before = tree_hash(root_b)
    again = import_paths(load_workspace(root_b), [bundle])
    assert {i.action for i in again.items} == {ImportAction.DUPLICATE} and tree_hash(root_b) == before
    # the other export formats (one mbox, a folder of patches, a quilt series) come back the same way
    for fmt in ("mbox", "patch", "quilt"):
        export_stack(ws_a, "s", out_dir=tmp_path / f"out-{fmt}", fmt=fmt)
        root = tmp_path / f"ws-{fmt}"
        root.mkdir()
        (root / "pins.lock").write_bytes((lab.root / "pins.lock").read_bytes())
        result = import_paths(load_workspace(root), [tmp_path / f"out-{fmt}"])
        assert result.ok, (fmt, result)
        ws_c = load_workspace(root)
        assert ws_c.queue("vllm").entries == entries_a, fmt
        assert [ws_c.patch_path(e).read_bytes() for e in ws_c.queue("vllm").entries] == files_a, fmt


# ---- upstream choice and splits ------------------------------------------------------------------------------------

def test_upstream_chosen_by_where_the_patch_applies_when_both_have_vllm(ws3, tmp_path):
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "xpu-ccl.patch").write_bytes(gdiff(ws3, "vllm", [("vllm/platforms/xpu.py", "use_ccl = False",
                                                                "use_ccl = True")]))
    (folder / "xpu-ws.patch").write_bytes(gdiff(ws3, "llm-scaler", [("vllm/platforms/xpu.py", "use_ws = False",
                                                                     "use_ws = True")]))
    report = import_paths(ws3.load(), [folder])
    ccl, wsp = one(report, "xpu-ccl.patch"), one(report, "xpu-ws.patch")
    assert (ccl.upstream, ccl.outcome) == ("vllm", "clean")
    assert (wsp.upstream, wsp.outcome) == ("llm-scaler", "clean")
    assert any("chosen by applying it" in r and "vllm: conflict" in r for r in wsp.remarks)


def test_patch_touching_lab_scripts_and_vllm_is_split_and_linked(ws3, tmp_path):
    both = gdiff(ws3, "lab", [("scripts/run_bench.sh", "--tp 4", "--tp 4 --enable-ws")]) + \
        gdiff(ws3, "vllm", [block_edit(11)])
    (tmp_path / "ws-moe-promoted.patch").write_bytes(b"WS MoE with its bench flag\n\n" + both)
    report = import_paths(ws3.load(), [tmp_path / "ws-moe-promoted.patch"])
    parts = by_source(report)[str(tmp_path / "ws-moe-promoted.patch")]
    assert sorted((p.upstream, p.patch_id, p.status) for p in parts) == [
        ("lab", "ws-moe-lab", "promoted"), ("vllm", "ws-moe-vllm", "promoted")]
    ws = load_workspace(ws3.root)
    lab_part, vllm_part = ws.queue("lab").get("ws-moe-lab"), ws.queue("vllm").get("ws-moe-vllm")
    assert "vllm:ws-moe-vllm" in lab_part.notes and "lab:ws-moe-lab" in vllm_part.notes
    assert "Split from" in lab_part.why and "Split from" in vllm_part.why
    assert [f.path for f in read_patch_file(ws.patch_path(lab_part).read_bytes(), source="l").files] == \
        ["scripts/run_bench.sh"]


# ---- overrides ----------------------------------------------------------------------------------------------------

def test_status_option_and_map_file_override_inference(ws3, tmp_path):
    folder = tmp_path / "o"
    folder.mkdir()
    (folder / "a-negative.patch").write_bytes(gdiff(ws3, "vllm", [block_edit(1)]))
    (folder / "b-timing.patch").write_bytes(gdiff(ws3, "vllm", [block_edit(2)]))
    (folder / "c.patch").write_bytes(gdiff(ws3, "vllm", [block_edit(3)]))
    forced = import_paths(ws3.load(), [folder], status="diagnostic", dry_run=True)
    assert {(i.status, i.status_rule) for i in forced.items} == {("diagnostic", "--status")}
    elsewhere = import_paths(ws3.load(), [folder], upstream="lab", dry_run=True)
    assert {(i.action, i.reason.split(" (")[0]) for i in elsewhere.items} == {
        (ImportAction.SKIPPED, "b/vllm/model_executor/models/minimax_m2.py")}
    assert all("was not found in upstream 'lab'" in i.reason for i in elsewhere.items)
    mapfile = tmp_path / "map.yaml"
    mapfile.write_text("'*-negative.patch': promoted\n"
                       "c.patch: {status: diagnostic, id: renamed-c, upstream: vllm}\n")
    report = import_paths(ws3.load(), [folder], mapping=mapfile)
    a, c = one(report, "a-negative.patch"), one(report, "c.patch")
    assert (a.status, a.status_rule) == ("promoted", f"map: '*-negative.patch' ({mapfile}:1)")
    assert (c.patch_id, c.status) == ("renamed-c", "diagnostic")
    assert one(report, "b-timing.patch").status == "diagnostic"
    bad = tmp_path / "bad.yaml"
    bad.write_text("ok.patch: diagnostic\nx.patch: {colour: red}\n")
    with pytest.raises(BadInput) as exc:
        import_paths(ws3.load(), [folder], mapping=bad)
    assert exc.value.line == 2 and "colour" in exc.value.message


# ---- duplicates and containment -------------------------------------------------------------------------------------

def test_duplicates_and_cumulative_snapshots(ws3, tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    promoted = gdiff(ws3, "vllm", [block_edit(4)])
    (folder / "a-fused-promoted-20260501.patch").write_bytes(promoted)
    (folder / "z-fused-copy.patch.gz.b64").write_bytes(encode_gz_b64(promoted))
    (folder / "b-fused-plus-mtp-20260510-negative.patch").write_bytes(
        gdiff(ws3, "vllm", [block_edit(4), block_edit(5, " + 5")]))
    (folder / "0-fused-plus-mtp-more-20260512-negative.patch").write_bytes(     # listed first, dated last
        gdiff(ws3, "vllm", [block_edit(4), block_edit(5, " + 5"), block_edit(25)]))
    report = import_paths(ws3.load(), [folder])
    dup = one(report, "z-fused-copy.patch.gz.b64")
    assert dup.action == ImportAction.DUPLICATE and dup.patch_id == "a-fused"
    ws = load_workspace(ws3.root)
    queue = ws.queue("vllm")
    assert [e.id for e in queue.entries] == ["fused-plus-mtp-more", "a-fused", "b-fused-plus-mtp"]
    assert queue.get("b-fused-plus-mtp").contains == ("a-fused",)
    assert queue.get("fused-plus-mtp-more").contains == ("b-fused-plus-mtp",)
    assert queue.get("fused-plus-mtp-more").supersedes == ("b-fused-plus-mtp",)
    assert queue.get("b-fused-plus-mtp").supersedes == ()      # a-fused is promoted, b is not: contains only
    assert "z-fused-copy.patch.gz.b64" in queue.get("a-fused").why
    assert queue.get("a-fused").status == Status.PROMOTED     # a duplicate without a verdict does not demote it
    assert any("contains the promoted a-fused" in w and "never apply it on top" in w for w in report.warnings)


# ---- bad input -----------------------------------------------------------------------------------------------------

def test_each_bad_input_has_its_reason_and_the_rest_imports(ws3, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    good = gdiff(ws3, "vllm", [block_edit(1)])
    (folder / "good.patch").write_bytes(good)
    (folder / "broken.patch.gz.b64").write_bytes(b"H4sIAAAAAAAC/!!!notbase64\n")
    (folder / "notgzip.patch.gz.b64").write_bytes(base64.encodebytes(b"plain text, not gzip"))
    (folder / "bomb.patch.gz.b64").write_bytes(base64.encodebytes(gzip.compress(b"0" * (3 << 20))))
    (folder / "readme.patch").write_text("Just a note about what we tried.\nNo diff here.\n")
    (folder / "binary.patch").write_bytes(b"diff --git a/w.bin b/w.bin\nindex 1..2 100644\nGIT binary patch\n"
                                          b"literal 3\nKcmZQz$\n\n")
    (folder / "nul.patch").write_bytes(b"\x00\x01\x02garbage")
    (folder / "crlf.patch").write_bytes(gdiff(ws3, "vllm", [block_edit(2)]).replace(b"\n", b"\r\n"))
    mixed = gdiff(ws3, "vllm", [block_edit(3)]).replace(b"+    return x + 3 + 100\n", b"+    return x + 3 + 100\r\n")
    (folder / "mixed.patch").write_bytes(mixed)
    (folder / "no-final-newline.patch").write_bytes(gdiff(ws3, "vllm", [block_edit(6)]).rstrip(b"\n"))
    truncated = gdiff(ws3, "vllm", [block_edit(7)])
    (folder / "truncated.patch").write_bytes(truncated[: truncated.rindex(b"\n+")] + b"\n")
    (folder / "escape.patch").write_bytes(good.replace(b"a/vllm/model_executor", b"a/../../etc").replace(
        b"b/vllm/model_executor", b"b/../../etc"))
    (folder / "dotgit.patch").write_bytes(b"diff --git a/.git/hooks/post-checkout b/.git/hooks/post-checkout\n"
                                          b"new file mode 100755\n--- /dev/null\n+++ b/.git/hooks/post-checkout\n"
                                          b"@@ -0,0 +1 @@\n+rm -rf /\n")
    (folder / "nowhere.patch").write_bytes(good.replace(b"vllm/model_executor/models/minimax_m2.py",
                                                        b"src/unknown/file.c"))
    (folder / "via-symlink.patch").write_bytes(b"diff --git a/logs/x b/logs/x\nnew file mode 100644\n--- /dev/null\n"
                                               b"+++ b/logs/x\n@@ -0,0 +1 @@\n+owned\n")
    report = import_paths(ws3.load(), [folder], limit=1 << 20,
                          mapping=[MapRule("via-symlink.patch", upstream="lab")])
    reasons = {i.source.rsplit("/", 1)[1]: (i.action, i.reason, i.remarks) for i in report.items}
    assert reasons["good.patch"][0] == ImportAction.IMPORTED
    expected = {
        "broken.patch.gz.b64": "not base64", "notgzip.patch.gz.b64": "not gzip data",
        "bomb.patch.gz.b64": "more than 1048576 bytes", "readme.patch": "not a diff",
        "binary.patch": "binary diff", "nul.patch": "binary file", "mixed.patch": "mixed CRLF and LF",
        "truncated.patch": "truncated or hand-edited", "escape.patch": "climbs out of the tree",
        "dotgit.patch": ".git directory", "nowhere.patch": "was not found in any pinned upstream",
        "via-symlink.patch": "writes below 'logs', which is a symlink",
    }
    for name, words in expected.items():
        action, reason, _ = reasons[name]
        assert action == ImportAction.SKIPPED and words in reason, (name, reason)
    assert reasons["crlf.patch"][0] == ImportAction.IMPORTED
    assert any("CRLF line endings converted" in r for r in reasons["crlf.patch"][2])
    assert reasons["no-final-newline.patch"][0] == ImportAction.IMPORTED
    assert any("did not end with a newline" in r for r in reasons["no-final-newline.patch"][2])
    assert report.inputs == len(list(folder.iterdir())) == len(report.items)
    assert not report.ok and report.accepted
    assert {e.id for e in load_workspace(ws3.root).queue("vllm").entries} == {"good", "crlf", "no-final-newline"}


# ---- nothing half-written -------------------------------------------------------------------------------------------

def test_dry_run_strict_refusal_and_invalid_result_write_nothing(ws3, tmp_path):
    folder = tmp_path / "w"
    folder.mkdir()
    (folder / "fine.patch").write_bytes(gdiff(ws3, "vllm", [block_edit(1)]))
    (folder / "notes.md").write_text("prose\n")
    before = tree_hash(ws3.root)
    dry = import_paths(ws3.load(), [folder], dry_run=True)
    assert dry.dry_run and "queues/vllm/0001-fine.patch" in dry.written and "notes/notes.md" in dry.written
    assert tree_hash(ws3.root) == before and not (ws3.root / ".patchq").exists()

    (folder / "junk.patch").write_text("not a diff\n")
    strict = import_paths(ws3.load(), [folder], strict=True)
    assert not strict.accepted and strict.written == () and tree_hash(ws3.root) == before

    # a patchq patch whose Patchq-Base names a patch that is not in the queue: the staged queue does not load
    entry_text = (b"From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\nFrom: a <a@b>\n"
                  b"Date: Thu, 1 Jan 1970 00:00:00 +0000\nSubject: [PATCH] orphan\n\nPatchq-Id: orphan\n"
                  b"Patchq-Status: diagnostic\nPatchq-Base: missing-base\n---\n\n"
                  + gdiff(ws3, "vllm", [block_edit(2)]) + b"-- \npatchq\n")
    (folder / "junk.patch").unlink()
    (folder / "orphan.patch").write_bytes(entry_text)
    with pytest.raises(BadInput) as exc:
        import_paths(ws3.load(), [folder])
    assert "missing-base" in exc.value.message and "would not load" in exc.value.message
    assert tree_hash(ws3.root) == before
    assert not any(p.name.startswith("patchq-import") for p in (ws3.root / ".patchq").iterdir())


# ---- the command ---------------------------------------------------------------------------------------------------

def test_cli_reports_json_and_exit_codes(ws3, tmp_path, patchq):
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "one-promoted.patch").write_bytes(gdiff(ws3, "vllm", [block_edit(1)]))
    res = patchq("--json", "import", str(folder), "--dry-run", cwd=ws3.root)
    assert res.code == 0, res.err
    doc = result_of(res.out)
    assert doc["dry_run"] and doc["items"][0]["action"] == "imported" and doc["items"][0]["status"] == "promoted"
    (folder / "junk.txt").write_text("hello\n")
    res = patchq("import", str(folder), "--max-size", "1M", cwd=ws3.root)
    assert res.code == 1 and "not a diff" in res.out and "one-promoted.patch" in res.out
    assert (ws3.root / "queues/vllm/0001-one-promoted.patch").exists() is False
    assert (ws3.root / "queues/vllm/0001-one.patch").exists()
    res = patchq("import", str(folder), "--upstream", "nope", cwd=ws3.root)
    assert res.code == 2 and res.err.startswith("error: ") and "nope" in res.err
    res = patchq("import", str(folder), "--max-size", "lots", cwd=ws3.root)
    assert res.code == 2


def test_human_report_is_one_line_per_input_named_relative_to_the_folder(ws3, tmp_path, patchq):
    folder = tmp_path / "a-long-folder-name" / "incoming"
    (folder / "sub").mkdir(parents=True)
    for n in range(1, 4):
        (folder / f"p{n}-promoted.patch").write_bytes(gdiff(ws3, "vllm", [block_edit(n)]))
    (folder / "sub" / "notes.txt").write_text("hello\n")
    res = patchq("import", str(folder), "--dry-run", cwd=ws3.root)
    lines = res.out.splitlines()
    assert lines[:2] == ["import (dry run: nothing written) from", f"  {folder}"]
    rows = [ln for ln in lines if ln.split(" ", 1)[0] in ("p1-promoted.patch", "p2-promoted.patch",
                                                         "p3-promoted.patch", "sub/notes.txt")]
    assert len(rows) == 4                                   # one line each, relative names
    assert sum(str(folder) in ln for ln in lines) == 1      # the folder is said once, in the header


# ---- a lab folder of 100+ files ------------------------------------------------------------------------------------

def test_generated_lab_folder_of_100_plus_files_is_fully_accounted_for(ws3, tmp_path):
    folder = tmp_path / "lab-folder"
    folder.mkdir()
    verdicts = ["negative", "rejected", "quality-fail", "neutral", "no-improvement", "timing", "trace", "probe",
                "promoted", "current", "experiment"]
    source, pin = ws3.upstreams["vllm"]
    for i in range(40):
        diff = gdiff(ws3, "vllm", [block_edit(i % 30, f" + {i + 100}")])
        name = f"minimax-change-{i:02d}-202605{(i % 28) + 1:02d}-{verdicts[i % len(verdicts)]}"
        kind = i % 4
        if kind == 0:
            (folder / f"{name}.patch").write_bytes(diff)
        elif kind == 1:
            (folder / f"{name}.patch.gz.b64").write_bytes(encode_gz_b64(diff))
        elif kind == 2:
            (folder / f"{name}.diff").write_bytes(diff.replace(b"a/vllm/", b"/tmp/vllm-orig/vllm/").replace(
                b"b/vllm/", b"/home/u/venv/lib/python3.12/site-packages/vllm/"))
        else:
            (folder / f"{name}.patch").write_bytes(b"Change %d\n\n" % i + diff + b"\nResult: see notes\n")
            (folder / f"{name}.md").write_text(f"# change {i}\n\nmeasured {i} tok/s\n")
    for i in range(20):
        (folder / f"scaler-{i:02d}-probe.patch").write_bytes(
            gdiff(ws3, "llm-scaler", [("vllm/custom-esimd-kernels-vllm/moe.py", f"return x + {i}\n",
                                       f"return x - {i}\n")]))
    for i in range(20):
        (folder / f"bench-{i:02d}.patch").write_bytes(
            gdiff(ws3, "lab", [("scripts/run_bench.sh", "--tp 4", f"--tp 4 --max-num-seqs {i + 1}")]))
    for i in range(15):
        (folder / f"idea-{i:02d}-rejected.md").write_text(f"# idea {i}\n\n```sh\nexport X_{i}=1\n```\n")
    for i in range(5):
        (folder / f"junk-{i}.log").write_text("not a patch\n")
    (folder / "dup-of-00.patch").write_bytes((folder / "minimax-change-00-20260501-negative.patch").read_bytes())
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (folder / "latest.patch").symlink_to(folder / "bench-00.patch")
    files = sorted(p for p in folder.rglob("*") if p.is_file() or p.is_symlink())
    assert len(files) >= 100
    started = time.monotonic()
    report = import_paths(ws3.load(), [folder])
    elapsed = time.monotonic() - started
    print(f"\nimported a lab folder of {len(files)} files in {elapsed:.2f} s")
    accounted = {i.source.split("#")[0] for i in report.items}
    assert accounted == {str(p) for p in files}
    actions = [i.action for i in report.items]
    assert actions.count(ImportAction.IMPORTED) == 80
    assert actions.count(ImportAction.NOTE) == 10 and actions.count(ImportAction.NOTES_ONLY) == 15
    assert actions.count(ImportAction.DUPLICATE) == 1 and actions.count(ImportAction.SKIPPED) == 7
    ws = load_workspace(ws3.root)
    assert (len(ws.queue("vllm").entries), len(ws.queue("llm-scaler").entries), len(ws.queue("lab").entries)) == \
        (40, 20, 20)
    assert all(i.outcome == OutcomeKind.CLEAN.value for i in report.items if i.action == ImportAction.IMPORTED)
    assert elapsed < 30
