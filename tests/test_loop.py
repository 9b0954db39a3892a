"""The daily edit loop through the CLI: refresh from the right commit, apply that never loses local work, a conflict
recipe that works without a git identity, and the quilt/gbp-pq verbs (status, sync, mark, new, --upto)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import result_of
from patchq.git import Repo
from test_cli import apply_report, as_json, ok, run, user_files, ws  # noqa: F401  (ws is a fixture)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def applied(patchq, lab, *args) -> Path:
    doc = apply_report(as_json(run(patchq, lab, "--json", "apply", "s", *args)))
    return Path(doc["upstreams"][0]["checkout"])


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


# ---- refresh: the right patch, the right checkout, the work tree ----------------------------------------------------

def test_refresh_refuses_a_head_that_is_another_patch(ws, patchq):
    checkout = applied(patchq, ws)                  # HEAD is the commit of 'two'
    before = user_files(ws.root)
    res = run(patchq, ws, "refresh", "one", "--from", str(checkout))
    assert res.code == 2, res.err
    assert "is patch 'two', not 'one'" in res.err and "nothing was written" in res.err
    assert user_files(ws.root) == before


def test_refresh_refuses_a_head_without_a_trailer_unless_forced(ws, patchq):
    checkout = applied(patchq, ws)
    edit(checkout / "vllm/model.py", "return x * 7\n", "return x * 7 + 7\n")
    repo = Repo(checkout)
    repo.run("commit", "-q", "-am", "my own commit")
    before = user_files(ws.root)
    res = run(patchq, ws, "refresh", "two", "--from", str(checkout))
    assert res.code == 2 and "no Patchq-Id trailer" in res.err and "--force" in res.err
    assert user_files(ws.root) == before
    nameless = run(patchq, ws, "refresh", "--from", str(checkout))
    assert nameless.code == 2 and "names no patch" in nameless.err


def test_refresh_takes_the_id_from_the_trailer_and_the_stack_checkout_by_default(ws, patchq):
    checkout = applied(patchq, ws)
    edit(checkout / "vllm/model.py", "return x * 30 + 2\n", "return x * 30 + 20\n")
    Repo(checkout).run("commit", "-q", "-a", "--amend", "--no-edit")
    done = as_json(run(patchq, ws, "--json", "refresh"))          # no ID, no --from: HEAD says 'two'
    assert done["patch"]["id"] == "two" and done["changed"] and Path(done["checkout"]) == checkout
    assert b"+    return x * 30 + 20" in (ws.root / "queues/vllm/0002-two.patch").read_bytes()
    inside = patchq("refresh", cwd=checkout / "vllm")              # run from inside the checkout
    ok(inside)
    assert "unchanged vllm:two" in inside.out


def test_refresh_folds_uncommitted_changes_into_the_patch_at_head(ws, patchq):
    checkout = applied(patchq, ws)
    old = (ws.root / "queues/vllm/0002-two.patch").read_bytes()
    edit(checkout / "vllm/model.py", "return x * 31\n", "return x * 31 - 1\n")
    (checkout / "vllm/added.py").write_text("ADDED = 1\n")
    done = as_json(run(patchq, ws, "--json", "refresh", "two"))
    assert done["worktree"] and done["files"] == ["vllm/added.py", "vllm/model.py"]
    new = (ws.root / "queues/vllm/0002-two.patch").read_bytes()
    assert new[:old.index(b"diff --git")] == old[:old.index(b"diff --git")]
    assert b"+    return x * 30 + 2\n" in new and b"+    return x * 31 - 1\n" in new and b"+++ b/vllm/added.py" in new
    repo = Repo(checkout)
    assert repo.status_porcelain() == [] and repo.head() == done["commit"]
    assert "Patchq-Id: two" in repo.out("log", "-1", "--format=%B")
    expected = (checkout / "vllm/model.py").read_text()
    again = applied(patchq, ws)                      # no --force needed: nothing of the user's is lost
    assert (again / "vllm/model.py").read_text() == expected and (again / "vllm/added.py").exists()


def test_refresh_ignores_the_users_diff_prefix_settings(ws, patchq, tmp_path):
    checkout = applied(patchq, ws)
    for setting, value in (("noprefix", "30 + 22"), ("mnemonicPrefix", "30 + 23")):
        home = tmp_path / setting
        home.mkdir()
        (home / ".gitconfig").write_text(f"[diff]\n\t{setting} = true\n")
        env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
        model = checkout / "vllm/model.py"
        model.write_text(re.sub(r"return x \* 30 \+ \d+\n", f"return x * {value}\n", model.read_text(), count=1))
        ok(patchq("--workspace", str(ws.root), "refresh", "two", env=env))
        text = (ws.root / "queues/vllm/0002-two.patch").read_text()
        assert "diff --git a/vllm/model.py b/vllm/model.py" in text and "+++ b/vllm/model.py" in text, setting
        assert f"+    return x * {value}\n" in text
    checked = apply_report(as_json(patchq("--workspace", str(ws.root), "--json", "apply", "s", "--check", env=env)))
    assert [o["kind"] for o in checked["upstreams"][0]["outcomes"]] == ["clean", "clean"]


# ---- apply never loses local work ----------------------------------------------------------------------------------

def test_apply_refuses_a_checkout_with_a_commit_it_did_not_write_and_force_saves_it(ws, patchq):
    checkout = applied(patchq, ws)
    repo = Repo(checkout)
    edit(checkout / "vllm/model.py", "return x * 9\n", "return x * 9 + 9\n")
    repo.run("commit", "-q", "-am", "tuned layer 9")
    mine = repo.head()
    (checkout / "notes.txt").write_text("unsaved\n")
    res = run(patchq, ws, "apply", "s")
    assert res.code == 2
    assert mine[:10] in res.err and "'tuned layer 9'" in res.err and "patchq did not write" in res.err
    assert "notes.txt" in res.err and "--force" in res.err and "commit" not in res.err.split("hint:")[0].split(
        "did not write")[1].split("uncommitted")[0].replace("'tuned layer 9'", "").replace(mine[:10], "")
    assert repo.head() == mine and (checkout / "notes.txt").read_text() == "unsaved\n"
    forced = ok(run(patchq, ws, "--json", "apply", "s", "--force"))
    steps = apply_report(result_of(forced.out))["next_steps"]
    saved = [s for s in steps if "refs/patchq/saved/s/vllm/" in s]
    assert len(saved) == 1 and "1 commit and uncommitted changes" in saved[0]
    ref = saved[0].split(" under ")[1].split(" ")[0]
    kept = repo.out("rev-parse", ref)
    assert repo.out("rev-parse", f"{kept}^") == mine                         # the work-tree snapshot on top of it
    assert repo.read_blob(ref, "notes.txt") == b"unsaved\n"
    assert "return x * 9 + 9" in repo.read_blob(ref, "vllm/model.py").decode()
    assert repo.head() != mine and not (checkout / "notes.txt").exists()
    ok(run(patchq, ws, "apply", "s"))                                        # clean again: no refusal


def test_apply_refuses_uncommitted_changes_without_telling_to_commit(ws, patchq):
    checkout = applied(patchq, ws)
    (checkout / "vllm/model.py").write_text("my unsaved work\n")
    res = run(patchq, ws, "apply", "s")
    assert res.code == 2 and "uncommitted changes (vllm/model.py)" in res.err
    assert "commit or save" not in res.err and "patchq refresh" in res.err and "patchq new" in res.err
    assert (checkout / "vllm/model.py").read_text() == "my unsaved work\n"


def test_conflict_recipe_works_without_any_git_identity(lab, pyupstream, patchq, tmp_path):
    up, base = pyupstream
    diff = up.diff(base, [("vllm/model.py", "return x * 5\n", "return x * 5 + 5\n")])
    up.edit("vllm/model.py", "return x * 5\n", "return x * 5.0\n")
    lab.upstream("vllm", up, up.commit("upstream moved"))
    lab.patch("vllm", "bad", diff)
    lab.stack("s", ["vllm"])
    lab.save()
    home = tmp_path / "empty-home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), GIT_CONFIG_NOSYSTEM="1", COLUMNS="300")

    def pq(*args, cwd=None):
        return subprocess.run([sys.executable, "-m", "patchq", "--workspace", str(lab.root), *args], cwd=cwd,
                              env=env, capture_output=True, text=True)

    res = pq("apply", "s")
    assert res.returncode == 1 and "git am -3" in res.stdout
    checkout = lab.root / ".patchq/checkouts/s/vllm"
    patch = lab.root / "queues/vllm/0001-bad.patch"
    am = subprocess.run(["git", "am", "-3", str(patch)], cwd=checkout, env=env, capture_output=True, text=True)
    assert "Please tell me who you are" not in am.stderr and "identity unknown" not in am.stderr, am.stderr
    model = checkout / "vllm/model.py"
    text = model.read_text()
    start, end = text.index("<<<<<<<"), text.index(">>>>>>>")
    model.write_text(text[:start] + "    return x * 5.0 + 5\n" + text[text.index("\n", end) + 1:])
    subprocess.run(["git", "add", "vllm/model.py"], cwd=checkout, env=env, check=True)
    cont = subprocess.run(["git", "am", "--continue"], cwd=checkout, env=env, capture_output=True, text=True)
    assert cont.returncode == 0, cont.stderr
    done = pq("refresh", "bad")
    assert done.returncode == 0, done.stderr
    assert "+    return x * 5.0 + 5" in patch.read_text()
    again = pq("--json", "apply", "s")                   # the resolved commit is in the queue now: nothing to refuse
    assert again.returncode == 0, again.stderr
    assert [o["kind"] for o in apply_report(result_of(again.stdout))["upstreams"][0]["outcomes"]] == ["clean"]


# ---- the loop verbs: apply --upto, status, mark, new -----------------------------------------------------------------

def test_status_says_what_the_checkout_holds_and_what_to_run(ws, patchq):
    fresh = as_json(run(patchq, ws, "--json", "status"))
    up = fresh["stacks"][0]["upstreams"][0]
    assert up["checkout"] == "" and up["missing"] == ["one", "two"] and up["actions"] == ["patchq apply s"]
    checkout = applied(patchq, ws, "--upto", "one")
    assert [c for c in Repo(checkout).out("log", "--format=%s").splitlines()][:2] == ["Patch one", "initial"]
    up = as_json(run(patchq, ws, "--json", "status", "s"))["stacks"][0]["upstreams"][0]
    assert [(a["patch_id"], a["state"]) for a in up["applied"]] == [("one", "in-sync")]
    assert up["missing"] == ["two"] and up["actions"] == [] and up["on_pin"] is True
    checkout = applied(patchq, ws)
    ok(run(patchq, ws, "lock", "s"))
    up = as_json(run(patchq, ws, "--json", "status"))["stacks"][0]["upstreams"][0]
    assert up["tree_state"] == "matches" and up["actions"] == [] and up["branch"] == "patchq/s"
    repo = Repo(checkout)
    edit(checkout / "vllm/model.py", "return x * 9\n", "return x * 9 + 9\n")
    repo.run("commit", "-q", "-am", "tuned layer 9")
    edit(checkout / "README.md", "demo", "demo edited")
    text = ok(run(patchq, ws, "status")).out
    assert "tuned layer 9" in text and "uncommitted: README.md" in text and "patchq sync s -u vllm" in text
    assert "patchq new ID --from .patchq/checkouts/s/vllm" in text
    up = as_json(run(patchq, ws, "--json", "status"))["stacks"][0]["upstreams"][0]
    assert [a["state"] for a in up["applied"]] == ["in-sync", "in-sync", "new"]
    assert [c["subject"] for c in up["foreign"]] == ["tuned layer 9"] and up["dirty"] == ["README.md"]


def test_mark_and_the_old_status_form_change_series_and_trailer(ws, patchq):
    marked = as_json(run(patchq, ws, "--json", "mark", "probe", "promoted"))
    assert marked["status"] == "promoted"
    assert b"Patchq-Status: promoted" in (ws.root / "queues/vllm/0003-probe.patch").read_bytes()
    old = run(patchq, ws, "status", "probe", "diagnostic")
    assert old.code == 0 and "is now 'mark ID STATUS'" in old.err
    assert b"Patchq-Status: diagnostic" in (ws.root / "queues/vllm/0003-probe.patch").read_bytes()
    assert "status: diagnostic" in (ws.root / "queues/vllm/series.yaml").read_text()
    bad = run(patchq, ws, "apply", "s", "--upto", "nope")
    assert bad.code == 2 and "does not apply patch vllm:nope" in bad.err


def test_new_inside_a_checkout_takes_author_date_and_place(ws, patchq, tmp_path):
    checkout = applied(patchq, ws)
    edit(checkout / "vllm/model.py", "return x * 20\n", "return x * 20 + 1\n")
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = Ada Lab\n\temail = ada@lab.example\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), COLUMNS="200")
    res = subprocess.run([sys.executable, "-m", "patchq", "--json", "new", "l20", "--after", "one"], cwd=checkout,
                         env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    made = result_of(res.stdout)
    assert made["upstream"] == "vllm" and made["author"] == "Ada Lab <ada@lab.example>"
    assert made["date"] == __import__("datetime").datetime.now(__import__("datetime").timezone.utc).date().isoformat()
    ids = [e["id"] for e in as_json(run(patchq, ws, "--json", "list", "-u", "vllm"))]
    assert ids == ["one", "l20", "two", "probe", "nope"]
    patch = (ws.root / "queues/vllm" / made["file"]).read_text()
    assert "From: Ada Lab <ada@lab.example>" in patch and "1970" not in patch
    repo = Repo(checkout)                  # the checkout now holds the new patch as its own commit, work tree clean
    assert repo.status_porcelain() == [] and "Patchq-Id: l20" in repo.out("log", "-1", "--format=%B")
    up = as_json(run(patchq, ws, "--json", "status"))["stacks"][0]["upstreams"][0]
    assert [a["patch_id"] for a in up["applied"]] == ["one", "two", "l20"] and up["foreign"] == []
    assert up["actions"] == ["patchq apply s   (the queue changed since the checkout was made: order)"]
    before = user_files(ws.root)
    bad = run(patchq, ws, "new", "l21", "--from", str(checkout), "--date", "2026-13-45")
    assert bad.code == 2 and "is not a date" in bad.err
    bad = run(patchq, ws, "new", "l21", "--from", str(checkout), "--author", "nobody")
    assert bad.code == 2 and "is not 'Name <email>'" in bad.err
    assert user_files(ws.root) == before
