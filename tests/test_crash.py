"""Crash safety: SIGKILL `patchq` at many points; the workspace is the old or the new state, and the next command
recovers or explains.

Kill points come from two sources: the test hook PATCHQ_TEST_KILL_AFTER_WRITES=N (patchq/crashtest.py: the process
kills itself at the N-th durable file operation — of a transaction's commit, an `atomic_write`, a checkout's move —
every N until the command finishes), and SIGKILL from outside after a series of delays spread over the command's
normal run time (for the steps between them: git runs, reading, planning). KILL_POINTS_TRIED counts them all;
docs/safety.md quotes it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import MODEL_PY
from patchq.crashtest import TEST_KILL_ENV
from patchq.demo import build_demo
from procs import processes
from test_hostile import snapshot
from test_rebuild import _installed_vllm, _tree_hashes

DELAYS = 8                      # outside kills per command, spread over its normal run time


def state(root: Path) -> dict[str, tuple]:
    """The workspace as a user sees it: every file except patchq's own .patchq/ state and leftover temp files."""
    return {k: v for k, v in snapshot(root).items()
            if not k.startswith(".patchq") and not Path(k).name.endswith(".tmp")}


def leftovers(root: Path) -> list[str]:
    return [k for k in snapshot(root) if not k.startswith(".patchq") and Path(k).name.endswith(".tmp")]


def run(args: list[str], env: dict | None = None, kill_after: float | None = None) -> tuple[int, str]:
    """Run patchq in its own process group; after a kill -9 of patchq alone, wait for the git processes it had
    started to end on their own (as they would on a user's machine) before anyone looks at the files."""
    proc = subprocess.Popen([sys.executable, "-m", "patchq", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, **(env or {})), text=True, start_new_session=True)
    if kill_after is not None:
        try:
            proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    deadline = time.monotonic() + 60
    while _alive_in_group(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return proc.returncode, err


def _alive_in_group(pgid: int) -> bool:
    """Whether a process of the group still runs (zombies do not count: some container inits never reap them)."""
    return any(p.pgid == pgid and p.state != "Z" for p in processes())


def explains(code: int, err: str) -> bool:
    lines = err.strip().splitlines()
    return code in (1, 2, 3) and bool(lines) and lines[0].startswith("error: ") and "Traceback" not in err


def kill_points(template: Path, tmp_path: Path, args_for, judge) -> int:
    """Run the command on fresh copies of `template`, killed at every hook point and at spread delays."""
    tried = 0
    reference = tmp_path / "reference"
    shutil.copytree(template, reference, symlinks=True)
    start = time.monotonic()
    code, err = run(args_for(reference))
    duration = time.monotonic() - start
    assert code == 0, err
    n = 0
    while True:
        n += 1
        ws = tmp_path / f"hook-{n}"
        shutil.copytree(template, ws, symlinks=True)
        code, err = run(args_for(ws), env={TEST_KILL_ENV: str(n)})
        if code != -signal.SIGKILL:
            assert code == 0, err
            shutil.rmtree(ws)
            break
        tried += 1
        judge(ws, reference)
        shutil.rmtree(ws)
    for k in range(1, DELAYS + 1):
        ws = tmp_path / f"delay-{k}"
        shutil.copytree(template, ws, symlinks=True)
        code, err = run(args_for(ws), kill_after=max(0.05, duration * k / (DELAYS + 1)))
        tried += 1
        judge(ws, reference)
        shutil.rmtree(ws)
    return tried


def kill_pairs(attempt, judge) -> tuple[int, int]:
    """Like kill_points, for commands whose state is two folders (workspace and cache, workspace and site-packages).

    `attempt(name, env, kill_after)` makes fresh copies, runs the command and returns (a, b, code, stderr);
    `judge(a, b)` checks the pair after a kill. Returns (kill points tried, of which hook points).
    """
    tried, n = 0, 0
    start = time.monotonic()
    while True:
        n += 1
        a, b, code, err = attempt(f"hook-{n}", {TEST_KILL_ENV: str(n)}, None)
        if code != -signal.SIGKILL:
            assert code == 0, err
            break
        tried += 1
        judge(a, b)
        shutil.rmtree(a), shutil.rmtree(b)
    hooks = tried
    duration = (time.monotonic() - start) / n
    for k in range(1, DELAYS + 1):
        a, b, code, err = attempt(f"delay-{k}", {}, max(0.05, duration * k / (DELAYS + 1)))
        tried += 1
        judge(a, b)
        shutil.rmtree(a), shutil.rmtree(b)
    return tried, hooks


KILL_POINTS_TRIED: dict[str, int] = {}


def _queue_workspace(lab, make_upstream, patches: int = 3):
    up = make_upstream("vllm")
    up.write("vllm/model.py", MODEL_PY).write("README.md", "demo\n")
    base = up.commit("base")
    for i in range(patches):
        diff = up.diff(base, [("vllm/model.py", f"return x * {i + 2}\n", f"return x * {i + 2} + 1\n")])
        lab.upstream("vllm", up, base)
        lab.patch("vllm", f"p{i}", diff)
    lab.stack("s", ["vllm"])
    return up, base


@pytest.mark.parametrize("checkout", ["fresh", "reused"])
def test_kill_apply_anywhere(lab, make_upstream, tmp_path, checkout):
    """A first apply (a checkout made beside and renamed in) and a later one (patchq's checkout moved in place)."""
    _queue_workspace(lab, make_upstream)
    template = lab.save()
    if checkout == "reused":
        code, err = run(["-w", str(template), "apply", "s"])
        assert code == 0, err
        code, err = run(["-w", str(template), "mark", "p1", "negative-archived"])   # the stack changes
        assert code == 0, err
    old = state(template)

    def judge(ws: Path, reference: Path) -> None:
        assert state(ws) == old                               # apply never changes the workspace's own files
        code, err = run(["-w", str(ws), "apply", "s"])        # the next apply recovers: same checkout as uninterrupted
        assert code == 0, err
        checkout = ws / ".patchq" / "checkouts" / "s" / "vllm"
        want = reference / ".patchq" / "checkouts" / "s" / "vllm"
        assert (checkout / "vllm" / "model.py").read_bytes() == (want / "vllm" / "model.py").read_bytes()
        porcelain = subprocess.run(["git", "status", "--porcelain"], cwd=checkout, capture_output=True, text=True)
        assert porcelain.stdout == ""
        assert [p.name for p in checkout.parent.iterdir()] == ["vllm"]     # half-made checkouts were swept

    tried = kill_points(template, tmp_path, lambda ws: ["-w", str(ws), "apply", "s"], judge)
    KILL_POINTS_TRIED[f"apply ({checkout} checkout)"] = tried
    assert tried >= DELAYS + 2                    # the hook met the checkout's own steps, not only timed kills


def test_edits_after_a_killed_apply_are_never_discarded(lab, make_upstream, tmp_path):
    """Issue 13: a kill while a checkout moves leaves a marker; edits made after it must be refused by the next
    apply (exit 2, files untouched), never wiped as if --force had been given."""
    _queue_workspace(lab, make_upstream)
    template = lab.save()
    code, err = run(["-w", str(template), "apply", "s"])
    assert code == 0, err
    code, err = run(["-w", str(template), "mark", "p1", "negative-archived"])     # the next apply moves it
    assert code == 0, err
    reference = tmp_path / "reference"
    shutil.copytree(template, reference, symlinks=True)
    start = time.monotonic()
    assert run(["-w", str(reference), "apply", "s"])[0] == 0
    duration = time.monotonic() - start
    want = (reference / ".patchq/checkouts/s/vllm/vllm/model.py").read_bytes()

    def judge(ws: Path) -> None:
        checkout = ws / ".patchq/checkouts/s/vllm"
        (checkout / "vllm/model.py").write_text("my work\n")
        (checkout / "notes.txt").write_text("my notes\n")
        code, err = run(["-w", str(ws), "apply", "s"])
        assert code == 2 and explains(code, err), err
        assert (checkout / "vllm/model.py").read_text() == "my work\n"
        assert (checkout / "notes.txt").read_text() == "my notes\n"
        code, err = run(["-w", str(ws), "apply", "s", "--force"])          # the user's explicit choice
        assert code == 0, err
        assert (checkout / "vllm/model.py").read_bytes() == want

    tried, n = 0, 0
    while True:
        n += 1
        ws = tmp_path / f"hook-{n}"
        shutil.copytree(template, ws, symlinks=True)
        code, err = run(["-w", str(ws), "apply", "s"], env={TEST_KILL_ENV: str(n)})
        if code != -signal.SIGKILL:
            assert code == 0, err
            shutil.rmtree(ws)
            break
        judge(ws)
        tried += 1
        shutil.rmtree(ws)
    assert tried >= 2                 # the marker's own kill points: before and after git's checkout
    for k in range(1, 4):
        ws = tmp_path / f"delay-{k}"
        shutil.copytree(template, ws, symlinks=True)
        run(["-w", str(ws), "apply", "s"], kill_after=max(0.05, duration * k / 4))
        judge(ws)
        tried += 1
        shutil.rmtree(ws)
    KILL_POINTS_TRIED["apply, then edits"] = tried


def test_kill_export_anywhere(lab, make_upstream, tmp_path):
    _queue_workspace(lab, make_upstream)
    template = lab.save()
    old = state(template)

    def judge(ws: Path, reference: Path) -> None:
        assert state(ws) == old
        out, want = ws.parent / f"{ws.name}-out", reference.parent / "reference-out"
        for path in out.rglob("*") if out.exists() else []:
            if path.is_file() and not path.name.endswith(".tmp"):
                assert path.read_bytes() == (want / path.relative_to(out)).read_bytes(), path   # no half file
        code, err = run(["-w", str(ws), "export", "s", "-o", str(out)])
        assert code == 0, err
        assert state(out) == state(want)

    KILL_POINTS_TRIED["export"] = kill_points(
        template, tmp_path, lambda ws: ["-w", str(ws), "export", "s", "-o", str(ws.parent / f"{ws.name}-out")], judge)


def test_kill_import_anywhere(lab, make_upstream, tmp_path):
    up, base = _queue_workspace(lab, make_upstream, patches=1)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    for i in range(3):
        diff = up.diff(base, [("vllm/model.py", f"return x * {i + 10}\n", f"return x * {i + 10} - 1\n")])
        (incoming / f"{i:02d}-tweak-{i}-promoted.patch").write_bytes(diff)
    template = lab.save()
    old = state(template)

    def judge(ws: Path, reference: Path) -> None:
        now, new = state(ws), state(reference)
        journal = ws / ".patchq" / "txn-journal.json"
        assert all(now.get(k) in (old.get(k), new.get(k)) for k in {*now, *old, *new})   # every file old or new
        if not journal.exists():
            assert now in (old, new), sorted(set(now) ^ set(old))
        committed = journal.exists() or now == new
        code, err = run(["-w", str(ws), "import", str(incoming)])
        if committed:                                # the next command finishes the commit; importing again
            assert code == 0 or explains(code, err), err     # finds everything there already
        else:
            assert code == 0, err                    # killed before the commit point: nothing was written
        assert state(ws) == new
        assert not journal.exists()

    KILL_POINTS_TRIED["import"] = kill_points(template, tmp_path, lambda ws: ["-w", str(ws), "import", str(incoming)],
                                              judge)


def test_kill_rebase_anywhere(lab, make_upstream, tmp_path):
    up, base = _queue_workspace(lab, make_upstream)
    template = lab.save()
    up.edit("README.md", "demo", "demo v2").commit("upstream moves on")
    up.edit("vllm/model.py", "def layer_0(x):", "def layer_0(x):  # upstream").commit("upstream edits the model")
    old = state(template)

    def judge(ws: Path, reference: Path) -> None:
        now, new = state(ws), state(reference)
        assert all(now.get(k) in (old.get(k), new.get(k)) for k in {*now, *old, *new})   # every file old or new
        if not (ws / ".patchq" / "rebase" / "state.json").exists():
            # no rebase in progress: the kill came before it started or after it finished (leftover scratch
            # folders do not count); the workspace is wholly one state, and a fresh rebase from the old one works
            assert now in (old, new)
            if now == old:
                code, err = run(["-w", str(ws), "rebase", "--onto", "vllm@latest"])
                assert code == 0, err
                assert state(ws) == new
            return
        twin = ws.parent / (ws.name + "-twin")
        shutil.copytree(ws, twin, symlinks=True)
        for folder, finish, expected in ((ws, "--continue", new), (twin, "--abort", old)):
            code, err = run(["-w", str(folder), "rebase", finish])
            assert code == 0, err
            assert state(folder) == expected, finish
        shutil.rmtree(twin)

    KILL_POINTS_TRIED["rebase"] = kill_points(
        template, tmp_path, lambda ws: ["-w", str(ws), "rebase", "--onto", "vllm@latest"], judge)


def _cache_state(cache: Path) -> tuple[str | None, list[str]]:
    """The build cache as the next build sees it: the last-good key of the demo target, and broken objects."""
    builds = cache / "builds"
    pointer = builds / "last-good" / "demo-ggml-cpu.json"
    key = json.loads(pointer.read_text())["key"] if pointer.exists() else None
    objects = builds / "objects"
    broken = [o.name for o in objects.iterdir() if not o.name.startswith(".tmp-")
              and not (o / "meta.json").is_file()] if objects.exists() else []
    return key, broken


def test_kill_build_anywhere(tmp_path):
    """Kill `patchq build` anywhere: no partial object in the cache, and the next build gives the same output."""
    template, cache0 = build_demo(tmp_path / "demo"), tmp_path / "cache0"
    env0 = {"PATCHQ_CACHE": str(cache0)}
    code, err = run(["-w", str(template), "apply", "promoted-demo", "--no-build"], env=env0)   # mirrors, checkouts
    assert code == 0, err
    old = state(template)

    def attempt(name: str, env: dict, kill_after: float | None = None) -> tuple[Path, Path, int, str]:
        ws, cache = tmp_path / name, tmp_path / f"{name}-cache"
        shutil.copytree(template, ws, symlinks=True)
        shutil.copytree(cache0, cache, symlinks=True)
        code, err = run(["-w", str(ws), "build", "promoted-demo"], env={**env, "PATCHQ_CACHE": str(cache)},
                        kill_after=kill_after)
        return ws, cache, code, err

    ref_ws, ref_cache, code, err = attempt("reference", {})
    assert code == 0, err
    want_key, _ = _cache_state(ref_cache)
    assert want_key

    def judge(ws: Path, cache: Path) -> None:
        assert state(ws) == old                                  # a build never touches the workspace's files
        key, broken = _cache_state(cache)
        assert key in (None, want_key) and broken == []          # no half-stored output, no half-moved pointer
        code, err = run(["-w", str(ws), "build", "promoted-demo"], env={"PATCHQ_CACHE": str(cache)})
        assert code == 0, err
        assert _cache_state(cache) == (want_key, [])
        assert not list((cache / "builds" / "objects").glob(".tmp-*"))   # the staging a kill left is swept

    tried, hooks = kill_pairs(attempt, judge)
    KILL_POINTS_TRIED["build"] = tried
    assert hooks > 2                                                 # the hook really met the cache's file operations


def test_kill_overlay_anywhere(tmp_path):
    """Kill `patchq overlay` anywhere: `overlay --revert` restores site-packages byte for byte, or nothing changed."""
    template = build_demo(tmp_path / "demo")
    site0 = tmp_path / "site0"
    _installed_vllm(template, site0)
    before = _tree_hashes(site0)
    args = lambda ws, site: ["-w", str(ws), "overlay", "promoted-demo", "--site-packages", str(site)]

    def attempt(name: str, env: dict | None = None, kill_after: float | None = None):
        ws, site = tmp_path / name, tmp_path / f"{name}-site"
        shutil.copytree(template, ws, symlinks=True)
        shutil.copytree(site0, site, symlinks=True)
        code, err = run(args(ws, site), env=env, kill_after=kill_after)
        return ws, site, code, err

    ref_ws, ref_site, code, err = attempt("reference")
    assert code == 0, err
    after = _tree_hashes(ref_site)
    assert after != before

    def judge(ws: Path, site: Path) -> None:
        now = _tree_hashes(site)
        code, err = run(args(ws, site))                          # the next overlay works, or explains
        if code != 0:
            assert explains(code, err) and "overlay --revert" in err, err
            assert now == _tree_hashes(site)                     # refusing changed nothing
            code, err = run(["-w", str(ws), "overlay", "--revert", "--site-packages", str(site)])
            assert code == 0, err
            assert _tree_hashes(site) == before                  # byte for byte, whatever the kill interrupted
            code, err = run(args(ws, site))
            assert code == 0, err
        assert _tree_hashes(site) == after
        code, err = run(["-w", str(ws), "overlay", "--revert", "--site-packages", str(site)])
        assert code == 0, err
        assert _tree_hashes(site) == before

    tried, hooks = kill_pairs(attempt, judge)
    KILL_POINTS_TRIED["overlay"] = tried
    assert hooks > 2


@pytest.fixture(scope="module", autouse=True)
def report_kill_points():
    """After this file's tests, the kill points each family tried (shown with -s; docs/safety.md quotes the
    total). Under -n each worker reports its own share."""
    yield
    if KILL_POINTS_TRIED:
        print("\nkill points tried:", KILL_POINTS_TRIED, "total", sum(KILL_POINTS_TRIED.values()))
