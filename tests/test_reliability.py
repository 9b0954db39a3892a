"""Issue 13: the holes a red team found beyond the hostile corpus, each held shut by a test that failed before.

Inputs that must be refused live in the hostile corpus (tests/hostile/corpus.py) and crashes in tests/test_crash.py;
here are the rest: build outputs behind a symlink, a killed move that must not discard edits, a status change
that must keep the patch file's header, two processes that must not lose each other's changes, filters, the
shared cache, and archive sources.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import test_bundle
from conftest import MODEL_PY
from patchq.apply import apply_stack
from patchq.build.builder import BuildKind, build_target
from patchq.build.recipe import load_recipe
from patchq.errors import BadInput
from patchq.git import Repo, run_git
from patchq.model import Status
from test_bundle import MANIFEST

exported, shipped = test_bundle.exported, test_bundle.shipped      # fixtures shared with the bundle tests

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
    result = patchq("-w", str(root), "mark", "scale", "negative-archived")
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
    _race(root, ["new", "c", "-u", "vllm", "--from", str(work)], ["mark", "a", "diagnostic"],
                          tmp_path, patchq)
    series = (root / "queues" / "vllm" / "series.yaml").read_text()
    assert "id: c" in series
    assert "status: diagnostic" in series


def test_status_and_status_lose_nothing(racing, tmp_path, patchq):
    root, *_ = racing
    _race(root, ["mark", "a", "diagnostic"], ["mark", "b", "negative-archived"], tmp_path,
                          patchq)
    series = (root / "queues" / "vllm" / "series.yaml").read_text()
    assert series.count("status: diagnostic") == 1
    assert "status: negative-archived" in series
    assert Status.DIAGNOSTIC.value in (root / "queues" / "vllm" / "0001-a.patch").read_text()


# ---- signals: SIGTERM and SIGHUP like Ctrl-C; no traceback early; git never left holding index.lock --------------

@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=["TERM", "HUP", "INT"])
def test_a_signal_mid_command_cleans_up_and_says_so(racing, tmp_path, signum):
    root, *_ = racing
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    folder = tmp_path / "pause"
    folder.mkdir()
    env = dict(os.environ, PATCHQ_TEST_PAUSE_AT=f"judging:{folder}", TMPDIR=str(scratch))
    proc = subprocess.Popen([sys.executable, "-m", "patchq", "-w", str(root), "apply", "s"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (folder / "reached").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    assert list(scratch.iterdir())                    # the temporary index exists now
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err
    assert err.strip().splitlines()[-1].startswith("interrupted"), err
    assert "Traceback" not in err
    assert list(scratch.iterdir()) == []              # no temporary folder left behind
    assert not (root / ".patchq" / "lock").exists()


def test_ctrl_c_while_the_cli_imports_prints_no_traceback(tmp_path):
    """The installed `patchq` script imports the CLI at top level; a Ctrl-C during those imports must end quietly.
    (Only what comes before patchq's first line runs — the interpreter's start-up — is Python's own.)"""
    script = tmp_path / "bin" / "patchq"
    script.parent.mkdir()
    script.write_text("import sys\nfrom patchq.cli import main\nsys.exit(main())\n")
    start = time.monotonic()
    assert subprocess.run([sys.executable, str(script), "--version"], capture_output=True, cwd=tmp_path,
                          check=False).returncode == 0
    whole = time.monotonic() - start                  # the signals are spread over one whole run, as it goes here
    seen = []
    for k in range(8):
        proc = subprocess.Popen([sys.executable, str(script), "--version"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        time.sleep(whole * (k + 1) / 9)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        frames = re.findall(r'File "([^"]+)"', err)
        ours = [f for f in frames if "/patchq/" in f]   # once patchq's own code runs, no traceback
        assert not ours, err
        seen.append(proc.returncode)
    assert 130 in seen          # some signals did land while patchq ran


def test_sigint_while_git_starts_never_leaves_git_holding_the_index_lock(tmp_path):
    """The signal lands inside `subprocess.Popen`, after git exists but before patchq holds it: it must wait."""
    repo = Repo.init(tmp_path / "r")
    repo.run("config", "filter.slow.clean", "sleep 3; cat")
    (repo.path / ".gitattributes").write_text("*.txt filter=slow\n")
    (repo.path / "a.txt").write_text("a\n")
    script = textwrap.dedent(f"""
        import os, signal, subprocess, sys
        from patchq.git import Repo
        started = subprocess.Popen._execute_child
        def land_inside(self, *args, **kwargs):
            started(self, *args, **kwargs)
            os.kill(os.getpid(), signal.SIGINT)        # git runs; Popen has not returned yet
        subprocess.Popen._execute_child = land_inside
        try:
            Repo({str(repo.path)!r}).run("add", "a.txt")
        except KeyboardInterrupt:
            sys.exit(130)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 130, proc.stderr
    assert not (repo.path / ".git" / "index.lock").exists(), "git was left running, holding index.lock"
    assert repo.run("status").ok


# ---- 4. the shared cache keeps workspaces apart ---------------------------------------------------------------------

def _bare_copy(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    run_git(["clone", "-q", "--bare", str(source), str(dest)])


def _lock(url: str, pin: str) -> str:
    return f"version: 1\nupstreams:\n  up:\n    url: {url}\n    pin: {pin}\nstacks:\n  s:\n    upstreams: [up]\n"


def test_two_workspaces_with_the_same_relative_url_never_share_a_mirror(make_upstream, tmp_path, patchq):
    mine, theirs = make_upstream("mine"), make_upstream("theirs")
    mine.write("code.py", "mine\n")
    mine.commit("mine")
    theirs.write("code.py", "secret of the other workspace\n")
    their_commit = theirs.commit("theirs")
    a, b = tmp_path / "a", tmp_path / "b"
    _bare_copy(theirs.path, a / "upstreams" / "up.git")
    _bare_copy(mine.path, b / "upstreams" / "up.git")
    for ws in (a, b):
        (ws / "queues").mkdir()
        (ws / "pins.lock").write_text(_lock("upstreams/up.git", their_commit))   # b pins a commit only a has
    assert patchq("-w", str(a), "apply", "s").code == 0
    refused = patchq("-w", str(b), "apply", "s")
    assert refused.code == 2 and their_commit[:12] in refused.err, refused.err
    assert not (b / ".patchq" / "checkouts" / "s" / "up" / "code.py").exists()


def _stack_pair(make_upstream, tmp_path):
    """Two workspaces on one upstream (same url, so one mirror), each with a stack named `s` of its own patch."""
    up = make_upstream("shared")
    up.write("code.py", "".join(f"line {i}\n" for i in range(20)))
    base = up.commit("base")
    roots = []
    for name, line in (("a", "line 3\n"), ("b", "line 15\n")):
        root = tmp_path / name
        queue = root / "queues" / "up"
        queue.mkdir(parents=True)
        diff = up.diff(base, [("code.py", line, f"{line.strip()} changed by {name}\n")])
        from patchq.model import PatchEntry
        from patchq.patchfile import render_patch_file
        entry = PatchEntry(id=f"p{name}", upstream="up", file=f"0001-p{name}.patch", status=Status.PROMOTED,
                           title=f"change {name}")
        (queue / entry.file).write_bytes(render_patch_file(entry, diff))
        (queue / "series.yaml").write_text(f"patches:\n  - id: p{name}\n    file: 0001-p{name}.patch\n")
        (root / "pins.lock").write_text(_lock(str(up.path), base))
        roots.append(root)
    return up, roots


def _gc_mirrors() -> None:
    for mirror in (Path(os.environ["PATCHQ_CACHE"]) / "mirrors").iterdir():
        Repo(mirror).run("gc", "-q", "--prune=now")


def test_stacks_of_the_same_name_in_two_workspaces_keep_their_commits(make_upstream, tmp_path, patchq):
    _, (a, b) = _stack_pair(make_upstream, tmp_path)
    into = tmp_path / "repro"
    assert patchq("-w", str(a), "apply", "s").code == 0
    assert patchq("-w", str(a), "apply", "s", "--into", str(into)).code == 0
    assert patchq("-w", str(a), "mark", "pa", "diagnostic").code == 0
    assert patchq("-w", str(a), "apply", "s").code == 0          # a's own ref moves on: the --into folder stays
    assert patchq("-w", str(b), "apply", "s").code == 0          # b's stack `s`: its own ref
    _gc_mirrors()
    for checkout in (a / ".patchq/checkouts/s/up", into / "up", b / ".patchq/checkouts/s/up"):
        repo = Repo(checkout)
        assert repo.head() is not None, checkout
        assert repo.run("status", "--porcelain").out == "", checkout
    assert "changed by a" in (into / "up" / "code.py").read_text()
    assert patchq("-w", str(a), "apply", "s").code == 0


def test_checkouts_follow_the_mirror_when_the_cache_moves(make_upstream, tmp_path, patchq):
    _, (a, _) = _stack_pair(make_upstream, tmp_path)
    first, second, third = tmp_path / "cache1", tmp_path / "cache2", tmp_path / "cache3"
    assert patchq("-w", str(a), "apply", "s", env={"PATCHQ_CACHE": str(first)}).code == 0
    shutil.rmtree(first)
    moved = patchq("-w", str(a), "apply", "s", env={"PATCHQ_CACHE": str(second)})
    assert moved.code == 0, moved.err                 # the same commit again: found in the new mirror
    checkout = Repo(a / ".patchq/checkouts/s/up")
    assert checkout.run("status", "--porcelain").out == ""
    assert patchq("-w", str(a), "mark", "pa", "diagnostic").code == 0     # the stack's result changes
    shutil.rmtree(second)
    lost = patchq("-w", str(a), "apply", "s", env={"PATCHQ_CACHE": str(third)})
    assert lost.code == 2 and "PATCHQ_CACHE" in lost.err, lost.err
    forced = patchq("-w", str(a), "apply", "s", "--force", env={"PATCHQ_CACHE": str(third)})
    assert forced.code == 0, forced.err
    assert checkout.run("status", "--porcelain").out == ""


# ---- 5. archive sources resolved against the workspace, and refused for what they are ------------------------------

def _archive_workspace(root: Path, url: str, sha: str) -> None:
    (root / "queues").mkdir(parents=True)
    (root / "pins.lock").write_text(
        f"version: 1\nupstreams:\n  pkg:\n    url: {root / 'no-hosting.git'}\n    pin: {'f' * 40}\n"
        f"    archive:\n      sha256: '{sha}'\n      url: {url}\nstacks:\n  s:\n    upstreams: [pkg]\n")


def test_a_relative_archive_url_is_relative_to_the_workspace(tmp_path, patchq):
    from test_sources import FILES, make_tarball
    root = tmp_path / "ws"
    root.mkdir()
    sha = make_tarball(root / "pkg-1.0.tar.gz", FILES)
    _archive_workspace(root, "pkg-1.0.tar.gz", sha)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = patchq("-w", str(root), "apply", "s", cwd=elsewhere)
    assert result.code == 0, result.err
    assert (root / ".patchq/checkouts/s/pkg/pkg/model.py").read_bytes() == FILES["pkg/model.py"]


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_an_archive_url_that_is_no_file_is_bad_input(tmp_path, patchq, kind):
    root = tmp_path / "ws"
    root.mkdir()
    target = root / "pkg-1.0.tar.gz"
    if kind == "folder":
        target.mkdir()
    else:
        os.mkfifo(target)
    _archive_workspace(root, str(target), "a" * 64)
    result = patchq("-w", str(root), "apply", "s")
    assert result.code == 2 and "not a regular file" in result.err, result.err


# ---- environment: filters, HOME --------------------------------------------------------------------------------

def test_a_patch_cannot_switch_on_an_lfs_filter_during_apply(lab, pyupstream, tmp_path, patchq):
    """The user has git-lfs configured; a patch adds `.gitattributes` routing files through it."""
    up, base = pyupstream
    home = tmp_path / "home"
    home.mkdir()
    ran = tmp_path / "lfs-ran"
    (home / ".gitconfig").write_text(f"[filter \"lfs\"]\n\tsmudge = touch {ran}; cat\n\tclean = touch {ran}; cat\n"
                                     f"\tprocess = touch {ran}\n\trequired = true\n")
    lab.upstream("vllm", up, base)
    lab.patch("vllm", "attrs", up.diff(base, [(".gitattributes", "", "* filter=lfs\n"),
                                              (".lfsconfig", "", "[lfs]\n\turl = https://lfs.invalid/x\n")]))
    lab.stack("s", ["vllm"])
    root = lab.save()
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    for _ in range(2):                        # a fresh checkout, then one moved in place
        result = patchq("-w", str(root), "apply", "s", env=env)
        assert result.code == 0, result.err
    assert not ran.exists(), "git ran the lfs filter the patch switched on"
    assert (root / ".patchq/checkouts/s/vllm/vllm/model.py").read_text() == MODEL_PY


def test_an_empty_home_is_an_environment_error(lab, pyupstream, tmp_path, patchq):
    up, base = pyupstream
    lab.upstream("vllm", up, base)
    lab.stack("s", ["vllm"])
    root = lab.save()
    env = dict(os.environ, HOME="")
    env.pop("PATCHQ_CACHE")
    result = subprocess.run([sys.executable, "-m", "patchq", "-w", str(root), "apply", "s"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 3 and "HOME is empty" in result.stderr, result.stderr
    assert not (tmp_path / ".cache").exists()


# ---- bundle manifests: hostile JSON is bad input, an invalid manifest stops the import --------------------------

def _empty_queue(lab, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the exported workspace with its vllm queue emptied, to import the bundle into."""
    root = tmp_path / "importer"
    shutil.copytree(lab.root, root, ignore=shutil.ignore_patterns(".patchq"))
    queue = root / "queues" / "vllm"
    for patch in queue.glob("*.patch"):
        patch.unlink()
    (queue / "series.yaml").write_text("patches: []\n")
    return root, queue


@pytest.mark.parametrize("case", ["deep", "huge-number"])
def test_a_manifest_that_would_crash_the_json_reader_is_bad_input(exported, patchq, case, tmp_path):
    lab, _, out, _ = exported
    manifest = out / MANIFEST
    text = manifest.read_text()
    extra = "[" * 5000 + "]" * 5000 if case == "deep" else "9" * 5000
    manifest.write_text(text.replace('"format_version"', f'"x": {extra}, "format_version"', 1))
    checked = patchq("export", "--check", str(out), cwd=lab.root)
    assert checked.code == 2, checked.err
    assert re.search(r"nests more than|number of 5000", checked.err) and "internal error" not in checked.err
    root, queue = _empty_queue(lab, tmp_path)
    imported = patchq("--json", "import", str(out), "-u", "vllm", cwd=root)
    assert imported.code == 1 and "internal error" not in imported.err, imported.err
    assert (queue / "series.yaml").read_text() == "patches: []\n"


def test_an_invalid_manifest_field_stops_its_bundle_from_being_imported(exported, patchq, tmp_path):
    lab, _, out, _ = exported
    manifest = out / MANIFEST
    manifest.write_text(manifest.read_text().replace('"pin": "', '"pin": "not-a-sha-', 1))
    root, queue = _empty_queue(lab, tmp_path)
    imported = patchq("--json", "import", str(out), "-u", "vllm", cwd=root)
    assert imported.code == 1, imported.out + imported.err
    assert "is invalid" in imported.out and "not imported unchecked" in imported.out
    assert (queue / "series.yaml").read_text() == "patches: []\n"
    assert list(queue.glob("*.patch")) == []


# ---- wrong codes and messages ------------------------------------------------------------------------------------

def test_a_queue_naming_more_paths_than_a_command_line_holds_is_judged(lab, pyupstream, patchq):
    """~2.4 MB of path names (past the kernel's ARG_MAX for one git command) once failed as exit 3."""
    up, base = pyupstream
    folder = "/".join(["d" * 200] * 15)                # 3,000-character folder names, 800 files below them
    diff = b"".join(f"diff --git a/{folder}/f{i} b/{folder}/f{i}\nnew file mode 100644\n--- /dev/null\n"
                    f"+++ b/{folder}/f{i}\n@@ -0,0 +1 @@\n+{i}\n".encode() for i in range(800))
    lab.upstream("vllm", up, base)
    lab.patch("vllm", "many", diff)
    lab.stack("s", ["vllm"])
    result = patchq("-w", str(lab.save()), "--json", "apply", "s", "--check")
    assert result.code == 0, result.err
    assert '"clean"' in result.out


def test_a_fetch_error_names_its_cause_not_its_last_line(lab, pyupstream, tmp_path, patchq):
    up, base = pyupstream
    lab.upstream("vllm", up, base)
    lab.stack("s", ["vllm"])
    root = lab.save()
    lock = root / "pins.lock"
    (tmp_path / "not-a-repository").mkdir()              # git ends its complaint with "...and the repository exists."
    lock.write_text(lock.read_text().replace(str(up.path), f"file://{tmp_path / 'not-a-repository'}"))
    result = patchq("-w", str(root), "apply", "s")
    assert result.code == 3
    assert "does not appear to be a git repository" in result.err, result.err


def test_series_rewrites_keep_the_document_markers_comments_and_indentation(lab, pyupstream, patchq):
    up, base = pyupstream
    lab.upstream("vllm", up, base)
    lab.patch("vllm", "a", up.diff(base, [("vllm/model.py", "return x * 3\n", "return x * 3 + 1\n")]))
    lab.patch("vllm", "b", up.diff(base, [("README.md", "demo\n", "demo b\n")]))
    lab.stack("s", ["vllm"])
    root = lab.save()
    series = root / "queues" / "vllm" / "series.yaml"
    text = ("# the vllm queue: order is apply order\n# (a comment before the document marker)\n---\n"
            "patches:\n- id: a   # the first\n  file: 0001-a.patch\n  status: promoted\n  flags:\n  - X_ONE\n"
            "  - X_TWO\n- id: b\n  file: 0002-b.patch\n  status: promoted\n...\n# after the end marker\n")
    series.write_text(text)
    result = patchq("-w", str(root), "mark", "b", "diagnostic")
    assert result.code == 0, result.err
    assert series.read_text() == text.replace("0002-b.patch\n  status: promoted", "0002-b.patch\n  status: diagnostic")
    lock = root / "pins.lock"
    lock.write_text(lock.read_text().replace("\n  vllm:\n    url:", "\n    vllm:\n        url:")
                    .replace("\n    pin:", "\n        pin:"))
    before = lock.read_text()
    assert patchq("-w", str(root), "lock", "s").code == 0
    after = lock.read_text()
    assert after.startswith(before.split("stacks:")[0])           # the upstreams block, 4-space indents, as it was


# ---- recipes through the YAML guard; a long shell line stays linear ---------------------------------------------

@pytest.mark.parametrize("case", ["deep", "laughs"])
def test_a_hostile_recipe_is_refused_at_once(tmp_path, case):
    laughs = ["&l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"] + [
        f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 10)]
    text = ("upstream: x\ninputs: " + "[" * 3000 + "]" * 3000 + "\n" if case == "deep"
            else "upstream: x\ndescription: [" + ", ".join(laughs) + "]\n")
    path = tmp_path / "kernels" / "bomb.yaml"
    path.parent.mkdir()
    path.write_text(text)
    start = time.monotonic()
    with pytest.raises(BadInput, match="nested more than|anchors and aliases") as caught:
        load_recipe(path)
    assert time.monotonic() - start < 5          # it took 56 s and 4 GB (laughs), seconds (nesting) before
    assert caught.value.path == str(path) and caught.value.line == 2


def test_a_40_kb_shell_line_is_audited_in_linear_time():
    """2,500 `${VLLM_X:-1}` reads on one line: each read's test context was searched over the whole line."""
    from patchq.flags.shell import reads as _shell_reads
    line = "echo " + " ".join(f"${{VLLM_X{i}:-1}}" for i in range(2500)) + "\n"
    start = time.monotonic()
    found = _shell_reads("run.sh", line)
    assert time.monotonic() - start < 20         # ~95 s before on the 2-core test machine, ~1.5 s after
    assert len(found) == 2500
