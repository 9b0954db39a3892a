"""export / export --check: deterministic bundles that the plain shell pipeline applies, and every refusal.

Bundles are made from real queues on real upstreams; the pipeline is run with the system's base64, gunzip and git
in a fresh clone; the CLI runs as a subprocess so exit codes, umask and TZ are what a user's shell gives.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import MODEL_PY, Lab, Upstream, result_of
from patchq.apply import apply_stack
from patchq.bundle import DEFAULT_LIMIT, decode_gz_b64, encode_gz_b64, read_bundle, read_manifest, split_patch_stream
from patchq.errors import BadInput, NeedsYou
from patchq.export import export_stack
from patchq.export_check import check_export
from patchq.git import Repo, run_git
from patchq.model import Status
from patchq.patchfile import entry_from_patch, render_patch_file

STACK = "fast"
BUNDLE = f"{STACK}-vllm.patch.gz.b64"
MANIFEST = f"{STACK}-vllm.manifest.json"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def listing(folder: Path) -> dict[str, tuple[int, str]]:
    """Every file below `folder` with its mode and checksum: to prove nothing was written."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and ".patchq" not in path.parts:
            out[str(path.relative_to(folder))] = (path.stat().st_mode & 0o777, sha(path.read_bytes()))
    return out


def sh(command: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", command], cwd=cwd, capture_output=True, text=True)


def fresh_clone(source: Path, commit: str, dest: Path) -> Repo:
    run_git(["clone", "-q", str(source), str(dest)])
    repo = Repo(dest)
    repo.run("checkout", "-q", "--detach", commit)
    return repo


def worktree_tree(repo: Repo, *exclude: str) -> str:
    repo.run("add", "-A", "--", ".", *(f":(exclude){e}" for e in exclude))
    return repo.out("write-tree")


def add_vllm_queue(lab, up, base) -> None:
    """Three stacked vllm patches (two touch model.py, the third made on top of the first) and a diagnostic."""
    first = up.diff(base, [("vllm/model.py", "return x * 3\n", "return x * 3 + 1\n")])
    second = up.diff(base, [("vllm/model.py", "return x * 30\n", "return x * 30 + 2\n"),
                            ("vllm/fused.py", "", "def fused(q, k):\n    return q + k\n")])
    up.edit("vllm/model.py", "return x * 3\n", "return x * 3 + 1\n")
    with_first = up.commit("scratch: the first patch, to make the third on")
    third = up.diff(with_first, [("vllm/model.py", "def layer_4(x):\n    return x * 4\n",
                                  "def layer_4(x):\n    # after layer 3's fix\n    return x * 4\n")])
    lab.upstream("vllm", up, base)
    lab.patch("vllm", "qk-norm", first, flags=("VLLM_QK_NORM",), why="Fuse Q and K RMSNorm.\n\nMeasured twice.",
              result="+3 tok/s")
    lab.patch("vllm", "moe-ws", second, flags=("VLLM_MOE_WS", "VLLM_MOE_WS_MAX"), title="MoE: work stealing")
    lab.patch("vllm", "probe", up.diff(base, [("README.md", "demo\n", "demo probe\n")]), status=Status.DIAGNOSTIC)
    lab.patch("vllm", "layer4-note", third, date="2026-06-01")


@pytest.fixture
def stacked(lab, pyupstream, make_upstream):
    """The vllm queue plus a kernel upstream with one patch, in one stack. Returns (lab, vllm, vllm pin, kern)."""
    up, base = pyupstream
    add_vllm_queue(lab, up, base)
    kern = make_upstream("kern")
    kern.write("csrc/moe.cpp", "int moe() { return 1; }\n")
    kern_pin = kern.commit("kernels")
    lab.upstream("kern", kern, kern_pin)
    lab.patch("kern", "moe-kernel", kern.diff(kern_pin, [("csrc/moe.cpp", "return 1;", "return 2;")]))
    lab.stack(STACK, ["vllm", "kern"])
    return lab, up, base, kern


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """One workspace and one vllm export, made once for the tests that only read or spoil a copy of it."""
    root = tmp_path_factory.mktemp("shipped")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PATCHQ_CACHE", str(root / "cache"))
        up = Upstream(root / "src" / "vllm")
        up.write("vllm/model.py", MODEL_PY).write("README.md", "demo\n")
        base = up.commit("initial")
        (root / "ws").mkdir()
        lab = Lab(root / "ws")
        add_vllm_queue(lab, up, base)
        lab.stack(STACK, ["vllm"])
        export_stack(lab.load(), STACK, out_dir=root / "repro")
    return lab, root / "repro", base


@pytest.fixture
def exported(shipped, tmp_path):
    """A private copy of the shipped export: (lab, workspace, export folder, pin)."""
    lab, repro, base = shipped
    out = tmp_path / "repro"
    shutil.copytree(repro, out)
    return lab, lab.load(), out, base


def cli(*args: str, cwd: Path, umask: int = 0o022, tz: str = "UTC0") -> subprocess.CompletedProcess:
    """The real CLI under a given umask and time zone."""
    command = f"umask {umask:03o} && exec {sys.executable} -m patchq " + " ".join(f"'{a}'" for a in args)
    env = dict(os.environ, TZ=tz, COLUMNS="200")
    return subprocess.run(["sh", "-c", command], cwd=cwd, capture_output=True, text=True, env=env)


# ---- what export writes -----------------------------------------------------------------------------------------

def test_export_writes_bundle_manifest_and_readme_per_upstream(stacked, tmp_path):
    lab, up, base, kern = stacked
    ws = lab.load()
    out = tmp_path / "repro"
    result = export_stack(ws, STACK, out_dir=out)
    assert [b.upstream for b in result.bundles] == ["vllm", "kern"]
    assert sorted(p.name for p in out.iterdir()) == sorted([
        BUNDLE, MANIFEST, f"{STACK}-vllm.repro.md",
        f"{STACK}-kern.patch.gz.b64", f"{STACK}-kern.manifest.json", f"{STACK}-kern.repro.md"])
    raw = (out / BUNDLE).read_bytes()
    assert raw[:4] == b"H4sI"                                     # base64 of the gzip magic with deflate
    gz = decode_b64_system(out / BUNDLE)
    assert gz[4:8] == b"\0\0\0\0"                                  # mtime 0: no timestamp in the gzip header
    assert max(len(line) for line in raw.splitlines()) == 76 and raw.endswith(b"\n")
    content = gzip.decompress(gz)
    entries = ws.stack_entries(ws.stack(STACK), "vllm")
    texts = [render_patch_file(e, read_diff(ws, e)) for e in entries]
    assert content == b"".join(texts)                             # the patch files, concatenated in order
    assert [e.id for e in entries] == ["qk-norm", "moe-ws", "layer4-note"]

    manifest_raw = (out / MANIFEST).read_bytes()
    doc = json.loads(manifest_raw)
    assert manifest_raw == (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
    assert doc["stack"] == STACK and doc["upstream"] == "vllm" and doc["format"] == "gz.b64"
    assert doc["pin"] == base and doc["base"] == base and doc["format_version"] == 1
    assert doc["bundle"] == BUNDLE and doc["bundle_sha256"] == sha(raw) == doc["files"][BUNDLE]
    assert doc["content_sha256"] == sha(content)
    assert [(p["id"], p["status"], p["flags"], p["sha256"]) for p in doc["patches"]] == [
        (e.id, "promoted", list(e.flags), sha(t)) for e, t in zip(entries, texts)]
    applied = apply_stack(ws, STACK, check_only=False, only=("vllm",))
    assert doc["result_tree"] == applied.upstreams[0].tree
    readme = (out / f"{STACK}-vllm.repro.md").read_text()
    assert f"git checkout --detach {base}" in readme
    assert f'base64 -d "$REPRO/{BUNDLE}" | gunzip | git apply' in readme
    assert doc["result_tree"] in readme


def decode_b64_system(path: Path) -> bytes:
    return subprocess.run(["base64", "-d", str(path)], capture_output=True, check=True).stdout


def read_diff(ws, entry) -> bytes:
    from patchq.patchfile import read_patch_file
    return read_patch_file(ws.patch_path(entry).read_bytes(), source=entry.file).diff


def test_export_is_byte_identical_across_time_zones_and_umasks(stacked, tmp_path):
    lab, *_ = stacked
    root = lab.save()
    one = cli("export", STACK, "-o", str(tmp_path / "one"), cwd=root, umask=0o022, tz="UTC0")
    two = cli("export", STACK, "-o", str(tmp_path / "two"), cwd=root, umask=0o077, tz="XYZ-13:45")
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    first, second = listing(tmp_path / "one"), listing(tmp_path / "two")
    assert first == second                                       # same names, bytes and modes
    assert {mode for mode, _ in first.values()} == {0o644}
    again = cli("--json", "export", STACK, "-o", str(tmp_path / "one"), cwd=root, umask=0o077, tz="XYZ+11")
    assert again.returncode == 0, again.stderr
    actions = {f["action"] for b in result_of(again.stdout)["bundles"] for f in b["files"]}
    assert actions == {"unchanged"}
    assert listing(tmp_path / "one") == first


# ---- the bundle applies where it is used --------------------------------------------------------------------------

def test_shell_pipeline_applies_the_bundle_at_the_pin_to_patchq_apply_tree(stacked, tmp_path):
    lab, up, base, _ = stacked
    ws = lab.load()
    out = tmp_path / "repro"
    export_stack(ws, STACK, out_dir=out, upstreams=("vllm",))
    clone = fresh_clone(up.path, base, tmp_path / "clone")
    res = sh(f"base64 -d '{out / BUNDLE}' | gunzip | git apply", cwd=clone.path)
    assert res.returncode == 0, res.stderr
    tree = worktree_tree(clone)
    applied = apply_stack(ws, STACK, into=tmp_path / "applied", only=("vllm",))
    assert tree == applied.upstreams[0].tree == read_manifest(out / MANIFEST).result_tree
    assert "return x * 3 + 1\n\n\ndef layer_4(x):\n    # after layer 3's fix" in \
        (clone.path / "vllm/model.py").read_text()


def test_git_am_accepts_the_decoded_bundle_as_an_mbox(stacked, tmp_path):
    lab, up, base, _ = stacked
    out = tmp_path / "repro"
    export_stack(lab.load(), STACK, out_dir=out, upstreams=("vllm",))
    mbox = tmp_path / "decoded.mbox"
    assert sh(f"base64 -d '{out / BUNDLE}' | gunzip > '{mbox}'", cwd=tmp_path).returncode == 0
    clone = fresh_clone(up.path, base, tmp_path / "clone")
    res = clone.run("am", str(mbox), check=False)
    assert res.ok, res.stderr
    assert clone.out("log", "--format=%s", f"{base}..HEAD").splitlines() == [
        "Patch layer4-note", "MoE: work stealing", "Patch qk-norm"]
    body = clone.out("log", "-1", "--format=%B", "HEAD~2")
    assert "Fuse Q and K RMSNorm.\n\nMeasured twice." in body and "Patchq-Flags: VLLM_QK_NORM" in body
    assert clone.tree_of("HEAD") == read_manifest(out / MANIFEST).result_tree


@pytest.mark.parametrize("fmt", ["mbox", "patch", "quilt"])
def test_other_formats_apply_to_the_same_tree(stacked, tmp_path, fmt):
    lab, up, base, _ = stacked
    ws = lab.load()
    out = tmp_path / "repro"
    export_stack(ws, STACK, out_dir=out, upstreams=("vllm",), fmt=fmt)
    manifest = read_manifest(out / f"{STACK}-vllm.{fmt}.manifest.json")
    assert manifest.format == fmt
    clone = fresh_clone(up.path, base, tmp_path / "clone")
    bundle = out / manifest.bundle
    exclude: tuple[str, ...] = ()
    if fmt == "mbox":
        assert bundle.name == f"{STACK}-vllm.mbox"
        res = clone.run("apply", str(bundle), check=False)
        assert res.ok, res.stderr
    elif fmt == "patch":
        names = sorted(p.name for p in bundle.iterdir())
        assert names == ["0001-qk-norm.patch", "0002-moe-ws.patch", "0003-layer4-note.patch"]
        res = clone.run("am", *[str(bundle / n) for n in names], check=False)
        assert res.ok, res.stderr
    else:
        series = (bundle / "series").read_text().split()
        assert series == ["0001-qk-norm.patch", "0002-moe-ws.patch", "0003-layer4-note.patch"]
        if shutil.which("quilt"):
            res = subprocess.run(["quilt", "push", "-a"], cwd=clone.path, capture_output=True, text=True,
                                 env=dict(os.environ, QUILT_PATCHES=str(bundle)))
            assert res.returncode == 0, res.stdout + res.stderr
            exclude = (".pc",)
        else:                      # no quilt here: the series applied in order with git apply stands in
            for name in series:
                res = clone.run("apply", str(bundle / name), check=False)
                assert res.ok, res.stderr
    assert worktree_tree(clone, *exclude) == manifest.result_tree
    report = check_export(ws, out)
    assert report.ok, report


# ---- export --check -----------------------------------------------------------------------------------------------

def test_check_passes_on_a_fresh_export_and_names_the_changed_patch(stacked, tmp_path, patchq):
    lab, up, base, _ = stacked
    root = lab.save()
    out = tmp_path / "repro"
    assert patchq("export", STACK, "-o", str(out), cwd=root).code == 0
    ok = patchq("export", "--check", str(out), cwd=root)
    assert ok.code == 0, ok.out + ok.err
    assert "all match" in ok.out
    # a patch in the queue changes after the export
    entry = lab.queues["vllm"][1]
    changed = up.diff(base, [("vllm/model.py", "return x * 30\n", "return x * 30 + 3\n"),
                             ("vllm/fused.py", "", "def fused(q, k):\n    return q + k\n")])
    (root / "queues/vllm" / entry.file).write_bytes(render_patch_file(entry, changed))
    stale = patchq("export", "--check", str(out), STACK, cwd=root)
    assert stale.code == 1, stale.out + stale.err
    assert "moe-ws changed" in stale.out
    assert f"MISMATCH {BUNDLE}" in stale.out and f"ok {STACK}-kern.patch.gz.b64" in stale.out


def test_check_fails_on_a_tampered_bundle_and_on_a_moved_pin(stacked, tmp_path, patchq):
    lab, up, base, _ = stacked
    root = lab.save()
    out = tmp_path / "repro"
    assert patchq("export", STACK, "-o", str(out), "-u", "vllm", cwd=root).code == 0
    original = (out / BUNDLE).read_bytes()
    content = decode_gz_b64(original, source=BUNDLE)
    (out / BUNDLE).write_bytes(encode_gz_b64(content.replace(b"+    return x * 3 + 1", b"+    return x * 3 + 9")))
    tampered = patchq("export", "--check", str(out), cwd=root)
    assert tampered.code == 1, tampered.out + tampered.err
    assert "checksum" in tampered.out and BUNDLE in tampered.out and "qk-norm is not the same" in tampered.out
    (out / BUNDLE).write_bytes(original)
    lab.upstreams["vllm"] = (up, up.repo.out("rev-parse", "HEAD"))     # pins.lock moves to a newer commit
    lab.save()
    moved = patchq("export", "--check", str(out), cwd=root)
    assert moved.code == 1, moved.out + moved.err
    assert f"the manifest pins vllm at {base[:12]}" in moved.out


def test_check_accepts_the_same_patches_compressed_by_another_zlib(exported):
    lab, ws, out, base = exported
    content = decode_gz_b64((out / BUNDLE).read_bytes(), source=BUNDLE)
    other = base64.encodebytes(gzip.compress(content, compresslevel=1, mtime=0))   # 76 columns too
    assert other != (out / BUNDLE).read_bytes()
    (out / BUNDLE).write_bytes(other)
    doc = json.loads((out / MANIFEST).read_bytes())
    doc["files"][BUNDLE] = doc["bundle_sha256"] = sha(other)
    (out / MANIFEST).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    report = check_export(ws, out)
    assert report.ok, report
    assert [p.kind for p in report.bundles[0].problems] == ["encoding"]


# ---- bad input ------------------------------------------------------------------------------------------------------

def _outside_tree(content: bytes) -> bytes:
    return content.replace(b"a/vllm/fused.py", b"a/../fused.py").replace(b"b/vllm/fused.py", b"b/../fused.py")


BAD_BUNDLES = {
    "truncated base64": (lambda raw: raw[:-7], {}, "truncated base64"),
    "wrong checksum": (lambda raw: encode_gz_b64(decode_gz_b64(raw, source="x") + b"\n"), {"manifest": True},
                       "checksum mismatch"),
    "manifest pin": (lambda raw: raw, {"manifest": True, "pin": "1" * 40}, "the workspace pins 111111111111"),
    "over the size limit": (lambda raw: raw, {"limit": 200}, "more than 200 bytes"),
    "path outside the tree": (lambda raw: encode_gz_b64(_outside_tree(decode_gz_b64(raw, source="x"))), {},
                              "climbs out of the tree"),
}


@pytest.mark.parametrize("case", list(BAD_BUNDLES))
def test_read_bundle_refuses_bad_input_naming_the_file(exported, case):
    lab, ws, out, base = exported
    spoil, opts, message = BAD_BUNDLES[case]
    bundle = out / BUNDLE
    bundle.write_bytes(spoil(bundle.read_bytes()))
    before = listing(out.parent)
    with pytest.raises(BadInput, match=message) as info:
        read_bundle(bundle, limit=opts.get("limit", DEFAULT_LIMIT),
                    manifest=out / MANIFEST if opts.get("manifest") else None, pin=opts.get("pin"))
    assert info.value.path == str(bundle) and info.value.exit_code == 2
    assert listing(out.parent) == before


@pytest.mark.parametrize("case,extra", [("truncated base64", ()), ("over the size limit", ("--max-size", "200")),
                                        ("path outside the tree", ()), ("corrupt manifest", ())])
def test_check_refuses_corrupt_input_with_exit_2_and_writes_nothing(exported, patchq, case, extra):
    lab, ws, out, base = exported
    if case == "corrupt manifest":
        (out / MANIFEST).write_bytes((out / MANIFEST).read_bytes()[:-40])
        message = f"{out / MANIFEST}:47: manifest is not valid JSON"
    else:
        spoil, _, message = BAD_BUNDLES[case]
        (out / BUNDLE).write_bytes(spoil((out / BUNDLE).read_bytes()))
    before = listing(out.parent), listing(lab.root)
    res = patchq("export", "--check", str(out), *extra, cwd=lab.root)
    assert res.code == 2, res.out + res.err
    assert res.err.startswith("error: ") and message in res.err and "Traceback" not in res.err
    if case != "corrupt manifest":
        assert str(out / BUNDLE) in res.err
    assert (listing(out.parent), listing(lab.root)) == before


def test_export_refuses_to_overwrite_a_different_file_and_keeps_other_files(stacked, tmp_path, patchq):
    lab, *_ = stacked
    root = lab.save()
    out = tmp_path / "repro"
    out.mkdir()
    (out / "build.sh").write_text("#!/bin/sh\n")
    (out / BUNDLE).write_text("someone else's bundle\n")
    before = listing(out)
    refused = patchq("export", STACK, "-o", str(out), cwd=root)
    assert refused.code == 2 and "exists with different content" in refused.err and BUNDLE in refused.err
    assert listing(out) == before
    forced = patchq("export", STACK, "-o", str(out), "--force", cwd=root)
    assert forced.code == 0, forced.err
    assert (out / "build.sh").read_text() == "#!/bin/sh\n"
    assert read_bundle(out / BUNDLE, manifest=out / MANIFEST).ids == ("qk-norm", "moe-ws", "layer4-note")


def test_reexport_replaces_its_own_earlier_files_but_not_edited_ones(stacked, tmp_path):
    lab, up, base, _ = stacked
    out = tmp_path / "repro"
    export_stack(lab.load(), STACK, out_dir=out, upstreams=("vllm",), fmt="patch")
    entry = lab.queues["vllm"][0]
    folder = lab.root / "queues/vllm"
    (folder / entry.file).write_bytes(render_patch_file(
        entry, up.diff(base, [("vllm/model.py", "return x * 3\n", "return x * 3 + 4\n")])))
    ws = lab.load()
    assert not check_export(ws, out).ok
    again = export_stack(ws, STACK, out_dir=out, upstreams=("vllm",), fmt="patch")
    actions = {f.path: f.action for f in again.bundles[0].files}
    assert actions[f"{STACK}-vllm.patches/0001-qk-norm.patch"] == "written"
    assert check_export(ws, out).ok
    (out / f"{STACK}-vllm.patches/0002-moe-ws.patch").write_text("edited by hand\n")
    before = listing(out)
    (folder / entry.file).write_bytes(render_patch_file(
        entry, up.diff(base, [("vllm/model.py", "return x * 3\n", "return x * 3 + 5\n")])))
    with pytest.raises(BadInput, match="different content"):
        export_stack(lab.load(), STACK, out_dir=out, upstreams=("vllm",), fmt="patch")
    assert listing(out) == before


def test_export_refuses_a_stack_that_needs_a_threeway_merge(lab, pyupstream, tmp_path):
    up, base = pyupstream
    diff = up.diff(base, [("vllm/model.py", "def layer_10(x):\n    return x * 10\n",
                           "def layer_10(x):\n    return x * 10 + 7\n")])
    up.edit("vllm/model.py", "def layer_11(x):", "# eleven\ndef layer_11(x):")
    pin = up.commit("comment near layer 10")
    lab.upstream("vllm", up, pin)
    lab.patch("vllm", "needs-merge", diff)
    lab.stack(STACK, ["vllm"])
    out = tmp_path / "repro"
    with pytest.raises(NeedsYou, match="needs-merge applies only through a 3-way merge"):
        export_stack(lab.load(), STACK, out_dir=out)
    assert not out.exists()


# ---- reading bundles back -------------------------------------------------------------------------------------------

def test_bundle_carries_the_whole_annotation_back(exported):
    lab, ws, out, base = exported
    contents = read_bundle(out / BUNDLE, manifest=out / MANIFEST, pin=base)
    assert contents.ids == ("qk-norm", "moe-ws", "layer4-note") and not contents.foreign
    pieces = split_patch_stream(contents.content)
    for (_, text), patch, original in zip(pieces, contents.patches, ws.stack_entries(ws.stack(STACK), "vllm")):
        entry = entry_from_patch(patch, upstream="vllm", file=original.file, source=BUNDLE)
        assert entry == original                                   # ids, status, flags, why, result, dates
        assert render_patch_file(entry, patch.diff) == text         # and re-rendering gives the same bytes


def test_foreign_squashed_diff_reads_as_one_patch(pyupstream, tmp_path):
    up, base = pyupstream
    squashed = up.diff(base, [("vllm/model.py", "return x * 3\n", "return x * 3 + 1\n"),
                              ("README.md", "demo\n", "demo 2\n")])
    path = tmp_path / "lab-change.diff.gz.b64"
    path.write_bytes(encode_gz_b64(squashed))
    contents = read_bundle(path)
    assert contents.foreign and len(contents.patches) == 1
    assert [f.path for f in contents.patches[0].files] == ["README.md", "vllm/model.py"]

