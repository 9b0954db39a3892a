"""Issue 13: the holes a red team found beyond the hostile corpus, each held shut by a test that failed before.

Inputs that must be refused live in the hostile corpus (tests/hostile/corpus.py) and crashes in tests/test_crash.py;
here are the rest: build outputs behind a symlink, a killed move that must not discard edits, a status change
that must keep the patch file's header, two processes that must not lose each other's changes, filters, the
shared cache, and archive sources.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import MODEL_PY

from patchq.apply import apply_stack
from patchq.errors import BadInput
from patchq.git import Repo, run_git
from patchq.kernels import BuildKind, build_target, load_recipe
from patchq.model import Status

SIGNED_PATCH = b"""\
From 1234567890abcdef1234567890abcdef12345678 Mon Sep 17 00:00:00 2001
From: Ada Lovelace <ada@example.org>
Date: Tue, 19 May 2026 10:20:30 +0200
Subject: [PATCH 2/7] model: scale layer 3 by one more
 (a folded subject line)

Layer 3 was one short; measured on the B70 lane.

Signed-off-by: Ada Lovelace <ada@example.org>
Reviewed-by: Charles Babbage <cb@example.org>
---
 vllm/model.py | 2 +-
 1 file changed, 1 insertion(+), 1 deletion(-)

"""
SIGNATURE = b"-- \n2.45.0\n\n"


def _signed_workspace(lab, pyupstream, *, trailers: bytes = b"") -> tuple[Path, Path]:
    up, base = pyupstream
    lab.upstream("vllm", up, base)
    lab.stack("s", ["vllm"])
    root = lab.save()
    diff = up.diff(base, [("vllm/model.py", "return x * 3\n", "return x * 3 + 1\n")])
    head = SIGNED_PATCH.replace(b"Reviewed-by: Charles Babbage <cb@example.org>\n",
                                b"Reviewed-by: Charles Babbage <cb@example.org>\n" + trailers)
    patch = root / "queues" / "vllm" / "0001-scale.patch"
    patch.write_bytes(head + diff + SIGNATURE)
    (root / "queues" / "vllm" / "series.yaml").write_text("patches:\n  - id: scale\n    file: 0001-scale.patch\n")
    return root, patch


@pytest.mark.parametrize("trailers", [b"", b"Patchq-Id: scale\nPatchq-Status: promoted\n"],
                         ids=["no-patchq-trailers", "with-status-trailer"])
def test_status_edits_one_trailer_line_and_keeps_every_other_byte(lab, pyupstream, patchq, trailers):
    root, patch = _signed_workspace(lab, pyupstream, trailers=trailers)
    before = patch.read_bytes()
    result = patchq("-w", str(root), "status", "scale", "negative-archived")
    assert result.code == 0, result.err
    after = patch.read_bytes()
    if trailers:      # the one line changes
        assert after == before.replace(b"Patchq-Status: promoted\n", b"Patchq-Status: negative-archived\n")
    else:             # one line joins the sign-offs, as `git interpret-trailers` would add it
        assert after == before.replace(b"<cb@example.org>\n---\n",
                                       b"<cb@example.org>\nPatchq-Status: negative-archived\n---\n")
    series = (root / "queues" / "vllm" / "series.yaml").read_text()
    assert "status: negative-archived" in series and "title" not in series


# ---- 1. build outputs never reached through a symlink that leaves the checkout -------------------------------------

def test_build_output_cleaning_and_collection_never_leave_the_checkout(make_upstream, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.whl").write_text("not yours\n")
    up = make_upstream("pkg")
    up.write("src/a.c", "int a;\n")
    os.symlink(outside, up.path / "dist")            # the upstream's own link (or one a build made)
    up.commit("base")
    checkout = tmp_path / "checkout"
    run_git(["clone", "-q", str(up.path), str(checkout)])
    recipe_path = tmp_path / "kernels" / "wheel.yaml"
    recipe_path.parent.mkdir()
    recipe_path.write_text("upstream: pkg\ninputs: [src/]\ncommand: 'touch dist/new.whl'\n"
                           "outputs: [{kind: wheel, path: 'dist/*.whl'}]\n")
    with pytest.raises(BadInput, match="leaves the checkout"):
        build_target(load_recipe(recipe_path), checkout, tmp_path / "cache")
    assert (outside / "victim.whl").read_text() == "not yours\n"
    (checkout / "stale.whl").write_text("an output an earlier build left at the checkout's root\n")
    recipe_path.write_text("upstream: pkg\ninputs: [src/]\ncommand: 'touch new.whl'\n"
                           "outputs: [{kind: wheel, path: '*.whl'}]\n")
    assert build_target(load_recipe(recipe_path), checkout, tmp_path / "cache").kind == BuildKind.BUILT
    assert not (checkout / "stale.whl").exists() and (checkout / "new.whl").exists()
    assert sorted(p.name for p in outside.iterdir()) == ["victim.whl"]      # the build never ran either


# ---- 2. a killed move is no licence to discard edits ---------------------------------------------------------------

def _applied(lab, pyupstream):
    up, base = pyupstream
    lab.upstream("vllm", up, base)
    lab.patch("vllm", "one", up.diff(base, [("vllm/model.py", "return x * 3\n", "return x * 3 + 1\n")]))
    lab.patch("vllm", "two", up.diff(base, [("README.md", "demo\n", "demo two\n")]))
    lab.stack("s", ["vllm"])
    ws = lab.load()
    return ws, Path(apply_stack(ws, "s").upstreams[0].checkout)


@pytest.mark.parametrize("edit", ["tracked", "untracked"])
def test_edits_made_after_a_killed_move_are_refused_not_discarded(lab, pyupstream, edit):
    ws, checkout = _applied(lab, pyupstream)
    head = Repo(checkout).head()
    (checkout / ".git" / "patchq-moving").write_text(f"12345\nfrom {head}\nto {head}\n")
    target = checkout / ("vllm/model.py" if edit == "tracked" else "notes.txt")
    target.write_text("my work\n")
    with pytest.raises(BadInput, match="match neither"):
        apply_stack(ws, "s")
    assert target.read_text() == "my work\n"
    assert (checkout / ".git" / "patchq-moving").exists()
    apply_stack(ws, "s", force=True)                  # the user's explicit choice
    assert Repo(checkout).status_porcelain() == []


# ---- lost updates: every writing command reads the workspace under its lock ----------------------------------------

def _start_paused(root: Path, args: list[str], folder: Path) -> subprocess.Popen:
    """Start patchq with the test hook holding it right after it has read the workspace."""
    folder.mkdir()
    env = dict(os.environ, PATCHQ_TEST_PAUSE_AT=f"loaded:{folder}")
    proc = subprocess.Popen([sys.executable, "-m", "patchq", "-w", str(root), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (folder / "reached").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return proc


def _race(root: Path, first: list[str], second: list[str], tmp_path: Path, patchq) -> None:
    """`first` has read the workspace when `second` runs from start to end; then `first` goes on. Both must end
    up done: each exits 0, or the second is refused (exit 3) while the first holds the lock and then succeeds."""
    folder = tmp_path / f"pause-{first[0]}-{second[0]}"
    proc = _start_paused(root, first, folder)
    other = patchq("-w", str(root), *second)
    assert other.code in (0, 3), other.err
    if other.code == 3:
        assert "in use by patchq pid" in other.err
    (folder / "go").write_text("")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    if other.code == 3:                                 # refused while the first held the lock: run it again
        again = patchq("-w", str(root), *second)
        assert again.code == 0, again.err


@pytest.fixture
def racing(lab, pyupstream):
    up, base = pyupstream
    lab.upstream("vllm", up, base)
    lab.patch("vllm", "a", up.diff(base, [("vllm/model.py", "return x * 3\n", "return x * 3 + 1\n")]))
    lab.patch("vllm", "b", up.diff(base, [("README.md", "demo\n", "demo b\n")]))
    lab.stack("s", ["vllm"])
    root = lab.save()
    # an emoji in a comment keeps pins.lock off the libyaml fast path, so the document a command read is the one
    # it writes back (the fast path happens to re-read the file just before writing)
    lock = root / "pins.lock"
    lock.write_text("# lab workspace \N{ROCKET}\n" + lock.read_text())
    up.write("NEWS", "v2\n")
    v2 = up.commit("v2")
    up.repo.run("tag", "v2", v2)
    up.write("NEWS", "v3\n")
    v3 = up.commit("v3")
    up.repo.run("branch", "next", v3)
    return root, up, base, v2, v3


def test_pin_and_pin_lose_nothing(racing, tmp_path, patchq):
    root, _, base, v2, v3 = racing
    (root / "pins.lock").write_text((root / "pins.lock").read_text().replace(
        "stacks:\n  s:\n", f"stacks:\n  t:\n    upstreams: [vllm]\n    pins:\n      vllm: {base}\n  s:\n"))
    _race(root, ["pin", "vllm@v2"], ["pin", "vllm@next", "--stack", "t"], tmp_path, patchq)
    text = (root / "pins.lock").read_text()
    assert f"pin: {v2}" in text
    assert f"vllm: {v3}" in text


def test_pin_and_lock_lose_nothing(racing, tmp_path, patchq):
    root, _, _, v2, _ = racing
    _race(root, ["pin", "vllm@v2"], ["lock", "s"], tmp_path, patchq)
    text = (root / "pins.lock").read_text()
    assert f"pin: {v2}" in text
    assert "trees:" in text


def test_new_and_status_lose_nothing(racing, tmp_path, patchq):
    root, up, base, _, _ = racing
    work = tmp_path / "work"
    run_git(["clone", "-q", str(up.path), str(work)])
    Repo(work).run("checkout", "-q", "--detach", base)
    (work / "vllm" / "model.py").write_text(MODEL_PY.replace("return x * 5\n", "return x * 5 + 1\n"))
    _race(root, ["new", "c", "-u", "vllm", "--from", str(work)], ["status", "a", "diagnostic"],
                          tmp_path, patchq)
    series = (root / "queues" / "vllm" / "series.yaml").read_text()
    assert "id: c" in series
    assert "status: diagnostic" in series


def test_status_and_status_lose_nothing(racing, tmp_path, patchq):
    root, *_ = racing
    _race(root, ["status", "a", "diagnostic"], ["status", "b", "negative-archived"], tmp_path,
                          patchq)
    series = (root / "queues" / "vllm" / "series.yaml").read_text()
    assert series.count("status: diagnostic") == 1
    assert "status: negative-archived" in series
    assert Status.DIAGNOSTIC.value in (root / "queues" / "vllm" / "0001-a.patch").read_text()
