"""The commands as a user runs them: exit codes, one-line errors, --json, and files left exactly as they were."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import result_of
from patchq.git import Repo
from patchq.model import Status
from patchq.workspace import load_workspace
from procs import processes

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def user_files(root: Path) -> dict[str, bytes]:
    """Everything in the workspace except patchq's own state folder."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".patchq" not in p.relative_to(root).parts}


def wait_for_a_child(pid: int, timeout: float = 60.0) -> bool:
    """Wait until `pid` has started a child process (patchq runs git): proof that it is past start-up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.ppid == pid for p in processes()):
            return True
        time.sleep(0.01)
    return False


def ok(res):
    assert res.code == 0, f"exit {res.code}\nstdout: {res.out}\nstderr: {res.err}"
    return res


def as_json(res):
    ok(res)
    return result_of(res.out)


@pytest.fixture
def ws(lab, pyupstream):
    """A workspace with one upstream, two promoted patches, a diagnostic and a rejected one, and a stack."""
    up, base = pyupstream
    lab.upstream("vllm", up, base)
    lab.patch("vllm", "one", up.diff(base, [("vllm/model.py", "return x * 3\n", "return x * 3 + 1\n")]),
              flags=("VLLM_ONE",))
    lab.patch("vllm", "two", up.diff(base, [("vllm/model.py", "return x * 30\n", "return x * 30 + 2\n")]))
    lab.patch("vllm", "probe", up.diff(base, [("README.md", "demo\n", "demo probe\n")]), status=Status.DIAGNOSTIC)
    lab.patch("vllm", "nope", up.diff(base, [("README.md", "demo\n", "rejected\n")]),
              status=Status.NEGATIVE_ARCHIVED)
    lab.stack("s", ["vllm"])
    lab.save()
    return lab


def run(patchq, lab, *args):
    return patchq("--workspace", str(lab.root), *args)


def apply_report(doc: dict) -> dict:
    """`apply --json` prints the report, or {"apply": report, "build": ...} when it also rebuilt targets."""
    return doc["apply"] if "apply" in doc else doc


# ---- init / list / show ----------------------------------------------------------------------------------------

def test_init_then_refuses_to_overwrite(tmp_path, patchq):
    made = as_json(patchq("--json", "init", str(tmp_path / "w")))
    assert made["created"].endswith("pins.lock")
    assert ok(patchq("--workspace", str(tmp_path / "w"), "list")).code == 0
    again = patchq("init", str(tmp_path / "w"))
    assert again.code == 2 and "already exists" in again.err


def test_list_filters_and_json(ws, patchq):
    every = as_json(run(patchq, ws, "--json", "list"))
    assert [e["id"] for e in every] == ["one", "two", "probe", "nope"]
    assert [e["id"] for e in as_json(run(patchq, ws, "--json", "list", "--status", "diagnostic"))] == ["probe"]
    assert [e["id"] for e in as_json(run(patchq, ws, "--json", "list", "--stack", "s"))] == ["one", "two"]
    assert as_json(run(patchq, ws, "--json", "list", "--upstream", "vllm", "--status", "negative-archived")
                   )[0]["id"] == "nope"
    table = ok(run(patchq, ws, "list"))
    assert "VLLM_ONE" in table.out and "negative-archived" in table.out
    bad = run(patchq, ws, "list", "--stack", "fast")
    assert bad.code == 2 and "unknown stack 'fast'" in bad.err
    bad = run(patchq, ws, "list", "--status", "golden")
    assert bad.code == 2


def test_show_by_id_and_by_status_ref(ws, patchq):
    shown = as_json(run(patchq, ws, "--json", "show", "one"))
    assert shown["patch"]["flags"] == ["VLLM_ONE"] and shown["stacks"] == ["s"]
    assert as_json(run(patchq, ws, "--json", "show", "diagnostic:probe"))["stacks"] == []
    human = ok(run(patchq, ws, "show", "vllm:one"))
    assert "queues/vllm/0001-one.patch" in human.out
    missing = run(patchq, ws, "show", "onee")
    assert missing.code == 2 and "did you mean: one" in missing.err


# ---- check ---------------------------------------------------------------------------------------------------

def test_check_finds_a_hand_edit_of_series_and_an_orphan(ws, patchq):
    assert [f for f in as_json(run(patchq, ws, "--json", "check")) if f["severity"] == "error"] == []
    series = ws.root / "queues/vllm/series.yaml"
    series.write_text(series.read_text().replace("status: diagnostic", "status: promoted"))
    (ws.root / "queues/vllm/0009-stray.patch").write_bytes((ws.root / "queues/vllm/0002-two.patch").read_bytes())
    before = user_files(ws.root)
    res = run(patchq, ws, "--json", "check")
    assert res.code == 1
    findings = result_of(res.out)
    mismatch = [f for f in findings if f["kind"] == "trailer-mismatch"]
    assert mismatch and "probe: status is 'promoted' in series.yaml but 'diagnostic'" in mismatch[0]["message"]
    assert mismatch[0]["path"] == "queues/vllm/0003-probe.patch"
    orphan = [f for f in findings if f["kind"] == "orphan"]
    assert orphan and orphan[0]["path"] == "queues/vllm/0009-stray.patch" and orphan[0]["severity"] == "warning"
    human = run(patchq, ws, "check")
    assert human.code == 1 and "trailer-mismatch" in human.out
    assert user_files(ws.root) == before


# ---- apply, lock, verify ---------------------------------------------------------------------------------------

def test_apply_json_then_lock_and_verify(ws, patchq):
    report = apply_report(as_json(run(patchq, ws, "--json", "apply", "s")))
    (up,) = report["upstreams"]
    assert [(o["patch_id"], o["kind"]) for o in up["outcomes"]] == [("one", "clean"), ("two", "clean")]
    assert report["ok"] is True and Path(up["checkout"]).is_dir()
    lock_text = (ws.root / "pins.lock").read_text()
    locked = as_json(run(patchq, ws, "--json", "lock", "s"))
    assert locked["trees"]["vllm"] == up["tree"]
    new_text = (ws.root / "pins.lock").read_text()
    assert new_text.startswith(lock_text.split("\n", 1)[0]) and f"vllm: {up['tree']}" in new_text
    verified = apply_report(as_json(run(patchq, ws, "--json", "apply", "s", "--verify")))
    assert verified["upstreams"][0]["verified"] is True
    human = ok(run(patchq, ws, "apply", "s", "--verify"))
    assert "bit-identical" in human.out
    # a changed patch no longer regenerates the recorded tree: exit 1, and it says so
    patch = ws.root / "queues/vllm/0002-two.patch"
    patch.write_bytes(patch.read_bytes().replace(b"+    return x * 30 + 2", b"+    return x * 30 + 3"))
    drifted = run(patchq, ws, "--json", "apply", "s", "--verify")
    assert drifted.code == 1
    assert apply_report(result_of(drifted.out))["upstreams"][0]["verified"] is False


def test_apply_check_only_touches_no_checkout(ws, patchq):
    report = apply_report(as_json(run(patchq, ws, "--json", "apply", "s", "--check", "--with",
                                      "diagnostic:probe")))
    assert report["checked_only"] is True
    assert [o["patch_id"] for o in report["upstreams"][0]["outcomes"]] == ["one", "two", "probe"]
    assert not (ws.root / ".patchq" / "checkouts").exists()


def test_apply_into_a_non_empty_folder_is_refused(ws, patchq, tmp_path):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    before = user_files(ws.root)
    res = run(patchq, ws, "apply", "s", "--into", str(target))
    assert res.code == 2
    assert res.err.startswith("error: ") and "not empty" in res.err and len(res.err.strip().splitlines()) == 1
    assert [p.name for p in target.iterdir()] == ["notes.txt"] and (target / "notes.txt").read_text() == "keep me"
    assert user_files(ws.root) == before


def test_apply_refuses_a_dirty_patchq_checkout(ws, patchq):
    checkout = Path(apply_report(as_json(run(patchq, ws, "--json", "apply", "s")))["upstreams"][0]["checkout"])
    (checkout / "vllm/model.py").write_text("my unsaved work\n")
    (checkout / "scratch.txt").write_text("also mine\n")
    res = run(patchq, ws, "apply", "s")
    assert res.code == 2 and "uncommitted changes" in res.err and "--force" in res.err
    assert (checkout / "vllm/model.py").read_text() == "my unsaved work\n"
    assert (checkout / "scratch.txt").read_text() == "also mine\n"
    ok(run(patchq, ws, "apply", "s", "--force"))
    assert not (checkout / "scratch.txt").exists()
    assert Repo(checkout).status_porcelain() == []


def test_an_upstream_that_cannot_be_fetched_exits_3_naming_the_url(ws, patchq, tmp_path):
    missing = tmp_path / "no" / "such" / "repo.git"
    lock = ws.root / "pins.lock"
    lock.write_text(lock.read_text().replace(f"url: {ws.upstreams['vllm'][0].path}", f"url: {missing}"))
    before = user_files(ws.root)
    res = run(patchq, ws, "apply", "s")
    assert res.code == 3, res.err
    assert str(missing) in res.err and res.err.startswith("error: ") and "Traceback" not in res.err
    assert user_files(ws.root) == before
    assert not (ws.root / ".patchq" / "checkouts").exists()


def test_a_patch_writing_below_a_symlink_of_the_base_is_refused(lab, make_upstream, patchq):
    up = make_upstream("vllm")
    up.write("real/a.txt", "a\n")
    (up.path / "link").symlink_to("real")
    base = up.commit("with a symlink")
    lab.upstream("vllm", up, base)
    lab.patch("vllm", "through-link", b"diff --git a/link/b.txt b/link/b.txt\nnew file mode 100644\n"
              b"--- /dev/null\n+++ b/link/b.txt\n@@ -0,0 +1 @@\n+b\n")
    lab.stack("s", ["vllm"])
    lab.save()
    before = user_files(lab.root)
    res = run(patchq, lab, "apply", "s")
    assert res.code == 2
    assert res.err.startswith("error: queues/vllm/0001-through-link.patch: ") and "symlink" in res.err
    assert user_files(lab.root) == before
    assert not (lab.root / ".patchq" / "checkouts").exists()
    assert not (up.path / "real" / "b.txt").exists()


def test_a_conflict_exits_1_and_says_what_to_do(lab, pyupstream, patchq):
    up, base = pyupstream
    diff = up.diff(base, [("vllm/model.py", "return x * 5\n", "return x * 5 + 5\n")])
    up.edit("vllm/model.py", "return x * 5\n", "return x * 5.0\n")
    lab.upstream("vllm", up, up.commit("upstream moved"))
    lab.patch("vllm", "bad", diff)
    lab.stack("s", ["vllm"])
    lab.save()
    res = run(patchq, lab, "apply", "s")
    assert res.code == 1
    assert "conflict" in res.out and "git am -3" in res.out and "patchq refresh bad" in res.out


# ---- authoring: new, refresh, status, pin ----------------------------------------------------------------------

def test_new_records_the_work_tree_diff_as_a_patch_that_applies(ws, patchq, tmp_path):
    checkout = Path(apply_report(as_json(run(patchq, ws, "--json", "apply", "s")))["upstreams"][0]["checkout"])
    model = checkout / "vllm/model.py"
    model.write_text(model.read_text().replace(
        "def layer_12(x):\n    return x * 12\n",
        "def layer_12(x):\n    if os.environ.get(\"VLLM_L12\", \"0\") == \"1\":\n        return x * 13\n"
        "    return x * 12\n"))
    (checkout / "vllm/extra.py").write_text("NEW = 1\n")
    expected = model.read_text()
    made = as_json(run(patchq, ws, "--json", "new", "l12", "-u", "vllm", "--from", str(checkout),
                       "--title", "Layer 12 behind a flag", "--flag", "VLLM_L12", "--why", "Because."))
    assert made["file"] == "0005-l12.patch" and made["flags"] == ["VLLM_L12"]
    patch = (ws.root / "queues/vllm/0005-l12.patch").read_bytes()
    assert b"Patchq-Id: l12" in patch and b"+++ b/vllm/extra.py" in patch
    workspace = load_workspace(ws.root)
    assert [e.id for e in workspace.queue("vllm").entries][-1] == "l12"
    assert run(patchq, ws, "--json", "check").code == 0
    again = apply_report(as_json(run(patchq, ws, "--json", "apply", "s", "--into", str(tmp_path / "fresh"))))
    outcomes = {o["patch_id"]: o["kind"] for o in again["upstreams"][0]["outcomes"]}
    assert outcomes == {"one": "clean", "two": "clean", "l12": "clean"}
    assert (tmp_path / "fresh" / "vllm" / "vllm/model.py").read_text() == expected
    assert (tmp_path / "fresh" / "vllm" / "vllm/extra.py").read_text() == "NEW = 1\n"
    dup = run(patchq, ws, "new", "l12", "-u", "vllm", "--from", str(checkout))
    assert dup.code == 2 and "already exists" in dup.err


def test_new_with_nothing_to_record_is_refused(ws, patchq):
    checkout = Path(apply_report(as_json(run(patchq, ws, "--json", "apply", "s")))["upstreams"][0]["checkout"])
    before = user_files(ws.root)
    res = run(patchq, ws, "new", "empty", "-u", "vllm", "--from", str(checkout))
    assert res.code == 2 and "nothing to record" in res.err
    assert user_files(ws.root) == before


def test_refresh_replaces_only_the_diff(ws, patchq):
    checkout = Path(apply_report(as_json(run(patchq, ws, "--json", "apply", "s")))["upstreams"][0]["checkout"])
    repo = Repo(checkout)
    path = ws.root / "queues/vllm/0002-two.patch"
    old = path.read_bytes()
    model = checkout / "vllm/model.py"
    model.write_text(model.read_text().replace("return x * 30 + 2\n", "return x * 30 + 20\n"))
    repo.run("commit", "-q", "-a", "--amend", "--no-edit")
    as_json(run(patchq, ws, "--json", "refresh", "two", "--from", str(checkout)))
    new = path.read_bytes()
    head_end = old.index(b"diff --git")
    assert new[:head_end] == old[:head_end]
    assert b"+    return x * 30 + 20" in new and new.endswith(b"-- \npatchq\n")
    checked = apply_report(as_json(run(patchq, ws, "--json", "apply", "s", "--check")))
    outcomes = checked["upstreams"][0]["outcomes"]
    assert [o["kind"] for o in outcomes] == ["clean", "clean"]


def test_mark_changes_series_and_trailer_together(ws, patchq):
    series_before = (ws.root / "queues/vllm/series.yaml").read_text()
    changed = as_json(run(patchq, ws, "--json", "mark", "probe", "promoted"))
    assert changed["status"] == "promoted"
    assert b"Patchq-Status: promoted" in (ws.root / "queues/vllm/0003-probe.patch").read_bytes()
    series = (ws.root / "queues/vllm/series.yaml").read_text()
    changed_lines = [(a, b) for a, b in zip(series_before.splitlines(), series.splitlines()) if a != b]
    assert changed_lines == [("    status: diagnostic", "    status: promoted")]
    assert len(series.splitlines()) == len(series_before.splitlines())
    assert run(patchq, ws, "--json", "check").code == 0
    assert [e["id"] for e in as_json(run(patchq, ws, "--json", "list", "--stack", "s"))] == ["one", "two", "probe"]


def test_pin_resolves_short_sha_tag_and_branch_and_keeps_comments(ws, patchq):
    up = ws.upstreams["vllm"][0]
    first = up.repo.out("rev-parse", "HEAD")
    up.edit("README.md", "demo\n", "demo v2\n")
    second = up.commit("v2")
    up.repo.run("tag", "v2.0", second)
    up.repo.run("tag", "-a", "v2.0-annotated", "-m", "release", second)
    up.repo.run("branch", "stable", first)
    lock = ws.root / "pins.lock"
    lock.write_text("# my pins, my comments\n" + lock.read_text().replace("  vllm:\n", "  vllm:   # the engine\n"))
    cases = [("v2.0", second), (first[:8], first), ("v2.0-annotated", second), ("stable", first),
             ("latest", second)]
    for ref, expected in cases:
        res = as_json(run(patchq, ws, "--json", "pin", f"vllm@{ref}"))
        assert res["pin"] == expected, ref
        text = lock.read_text()
        assert f"pin: {expected}" in text
        assert text.startswith("# my pins, my comments\n") and "  vllm:   # the engine\n" in text
    as_json(run(patchq, ws, "--json", "pin", "vllm@v2.0", "--stack", "s"))
    assert load_workspace(ws.root).stack("s").pins == {"vllm": second}
    before = user_files(ws.root)
    bad = run(patchq, ws, "pin", "vllm@no-such-tag")
    assert bad.code == 2 and "names no commit, tag or branch" in bad.err
    assert run(patchq, ws, "pin", "vllm").code == 2
    assert user_files(ws.root) == before


# ---- interrupted runs ---------------------------------------------------------------------------------------------

def test_a_lock_left_on_patchqs_own_refs_by_a_killed_run_does_not_stop_the_next(lab, make_upstream, patchq):
    """A run killed while git moved refs/patchq/applied leaves that ref's lock file (git cannot remove it when
    SIGKILLed; the killed-apply test below met it), and one killed while fast-import wrote the stack's commits
    leaves one on the workspace's ref in the mirror. Both refs move only under the workspace lock, so the next
    apply removes the lock files and moves the refs."""
    up = make_upstream("vllm")
    up.write("pkg/mod.py", "def f(x):\n    return x\n")
    base = up.commit("base")
    lab.upstream("vllm", up, base)
    up.write("pkg/mod.py", "def f(x):\n    return x + 1\n")
    lab.patch("vllm", "one", up.repo.run("diff", "--full-index").stdout)
    lab.stack("s", ["vllm"])
    lab.save()
    first = patchq("--json", "--workspace", str(lab.root), "apply", "s")
    assert first.code == 0, first.err
    checkout = Path(apply_report(result_of(first.out))["upstreams"][0]["checkout"])
    left = checkout / ".git" / "refs" / "patchq" / "applied.lock"
    left.write_text("0" * 40 + "\n")
    from patchq.sources import mirror_path, workspace_ref
    from patchq.workspace import load_workspace
    mirror = mirror_path(load_workspace(lab.root).upstream("vllm"), lab.root)
    stack_ref = workspace_ref(lab.root, "stacks", "s", "vllm")
    in_mirror = mirror / f"{stack_ref}.lock"         # the same in the shared mirror, on this workspace's own ref
    in_mirror.write_text("0" * 40 + "\n")
    again = patchq("--json", "--workspace", str(lab.root), "apply", "s")
    assert again.code == 0, again.err
    assert not left.exists() and not in_mirror.exists()
    assert Repo(checkout).rev_parse("refs/patchq/applied") == Repo(checkout).head()
    assert Repo(mirror).rev_parse(stack_ref) == Repo(checkout).head()


def test_a_killed_apply_leaves_nothing_half_written_and_the_next_run_starts_clean(lab, make_upstream, patchq):
    """SIGKILL `patchq apply` at several moments of a long queue; every next run must still succeed."""
    up = make_upstream("vllm")
    for d in range(40):
        for f in range(10):
            up.write(f"pkg{d}/mod{f}.py", "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(30)))
    base = up.commit("big tree")
    lab.upstream("vllm", up, base)
    for n in range(80):          # diffs made in the upstream's own work tree: 80 clones would be slow
        target = up.path / f"pkg{n % 40}/mod{n % 10}.py"
        text = target.read_text()
        target.write_text(text.replace(f"return x + {n % 30}\n", f"return x + {n % 30} + {n}\n", 1))
        lab.patch("vllm", f"p{n:02d}", up.repo.run("diff", "--full-index").stdout)
        target.write_text(text)
    lab.stack("s", ["vllm"])
    lab.save()
    before = user_files(lab.root)
    env = dict(os.environ, COLUMNS="200")
    killed_mid_run = 0
    for delay in (0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 1.0, 1.5):   # patchq got faster: early kills too
        # the run and the git processes it started are killed together, as a closed terminal or a job stop does
        proc = subprocess.Popen([sys.executable, "-m", "patchq", "--workspace", str(lab.root), "apply", "s"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
        time.sleep(delay)
        killed_mid_run += proc.poll() is None
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        assert user_files(lab.root) == before, f"workspace changed by a run killed after {delay}s"
    # Ctrl-C: the same, and patchq says it was interrupted
    proc = subprocess.Popen([sys.executable, "-m", "patchq", "--workspace", str(lab.root), "apply", "s"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
    assert wait_for_a_child(proc.pid), "patchq apply never started git"
    proc.send_signal(signal.SIGINT)     # mid-run, not during interpreter start-up (where Python itself dies of it)
    _, err = proc.communicate()
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, (proc.returncode, err)
    assert user_files(lab.root) == before
    assert killed_mid_run >= 3
    final = patchq("--json", "--workspace", str(lab.root), "apply", "s")
    assert final.code == 0, final.err
    report = apply_report(result_of(final.out))
    assert {o["kind"] for o in report["upstreams"][0]["outcomes"]} == {"clean"}
    checkout = Repo(report["upstreams"][0]["checkout"])
    assert checkout.status_porcelain() == []
    assert checkout.tree_of("HEAD") == report["upstreams"][0]["tree"]
    assert len(checkout.rev_list(f"{base}..HEAD")) == 80
    assert user_files(lab.root) == before
    names = {p.name for p in (lab.root / ".patchq" / "checkouts" / "s").iterdir()}
    assert "vllm" in names and all(name.startswith(".vllm.") for name in names - {"vllm"})   # killed half-clones
