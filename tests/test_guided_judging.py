"""Fewer git processes, the same answers: the queue judged in parts after a failed one-pass run, and the breaking-
commit search guided by a Python prediction of `git apply`.

Each speed-up is checked against git doing all the work: the prediction against `git apply` itself on generated
files and edits, the parts against the patch-by-patch ladder, and the guided search against the unguided one,
also when the prediction is made to lie (git's confirmation must catch it).
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

import patchq.git as git_module
import patchq.queuerun as queuerun
import patchq.rebase.survey as survey
from patchq.git import Repo
from patchq.model import OutcomeKind, PatchEntry, Status
from patchq.patchfile import read_patch_file
from patchq.queuerun import LoadedPatch, run_queue
from patchq.rebase import start_rebase
from patchq.sources import ensure_mirror
from patchq.splice import Unsure, git_would_apply
from patchq.workspace import load_workspace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_rebase

WORDS = [f"line {i}\n" for i in range(6)] + ["\n", "    return x\n", "pass\n"]   # few distinct lines: ambiguity


def _text(rng: random.Random, count: int) -> list[str]:
    return [rng.choice(WORDS) if rng.random() < 0.4 else f"unique {rng.randrange(10**6)}\n" for _ in range(count)]


def _edited(rng: random.Random, lines: list[str]) -> list[str]:
    out = list(lines)
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(out) + 1)
        action = rng.random()
        if action < 0.4 and out:
            del out[min(at, len(out) - 1)]
        elif action < 0.7:
            out.insert(at, f"added {rng.randrange(10**6)}\n")
        elif out:
            out[min(at, len(out) - 1)] = f"changed {rng.randrange(10**6)}\n"
    return out


def _drifted(rng: random.Random, lines: list[str]) -> list[str]:
    """The base moved on: lines inserted or removed anywhere (top, bottom, inside a hunk's context)."""
    out = list(lines)
    for _ in range(rng.randint(0, 3)):
        at = rng.choice([0, len(out), rng.randrange(len(out) + 1)])
        if rng.random() < 0.6 or not out:
            out.insert(at, rng.choice([rng.choice(WORDS), f"upstream {rng.randrange(10**6)}\n"]))
        else:
            del out[min(at, len(out) - 1)]
    return out


def test_the_prediction_agrees_with_git_apply_on_generated_edits(tmp_path):
    """For each case: a real diff (git diff --no-index, 1 or 3 lines of context, with and without a final newline)
    applied by `git apply` to a drifted copy of its base; the prediction must say the same, to the byte."""
    rng = random.Random(1726)
    work = tmp_path / "w"
    work.mkdir()
    agreed = refused = 0
    for case in range(160):
        base = _text(rng, rng.randint(3, 40))
        new = _edited(rng, base)
        tail = rng.random() < 0.2
        old_bytes = "".join(base).encode()
        new_bytes = "".join(new).encode()
        if tail:
            old_bytes, new_bytes = old_bytes.rstrip(b"\n"), new_bytes.rstrip(b"\n")
        (work / "a").write_bytes(old_bytes)
        (work / "b").write_bytes(new_bytes)
        context = rng.choice(["-U1", "-U3"])
        diff = subprocess.run(["git", "diff", "--no-index", context, "a", "b"], cwd=work, capture_output=True).stdout
        if not diff:
            continue
        diff = diff.replace(b"a/a", b"a/f").replace(b"b/b", b"b/f")
        hunks = read_patch_file(diff, source="case").files[0].hunks
        target = _drifted(rng, base)
        target_bytes = "".join(target).encode()
        if tail:
            target_bytes = target_bytes.rstrip(b"\n")
        (work / "f").write_bytes(target_bytes)
        proc = subprocess.run(["git", "apply", "--whitespace=nowarn", "-"], cwd=work, input=diff,
                              capture_output=True)
        try:
            predicted = git_would_apply(target_bytes, hunks)
        except Unsure:
            continue
        if proc.returncode == 0:
            assert predicted == (work / "f").read_bytes(), f"case {case}: git applied it, the prediction differs"
            agreed += 1
        else:
            assert predicted is None, f"case {case}: git refused it ({proc.stderr!r}), the prediction applied it"
            refused += 1
    assert agreed > 40 and refused > 20       # both answers were exercised, not only one


def _loaded(pid: str, diff: bytes) -> LoadedPatch:
    entry = PatchEntry(id=pid, upstream="vllm", file=f"{pid}.patch", status=Status.PROMOTED, title=pid,
                       author="Lab <lab@example.com>", date="2026-05-19")
    return LoadedPatch(entry, read_patch_file(diff, source=f"{pid}.patch"), f"{pid}.patch")


def _count_apply_processes(monkeypatch) -> list[int]:
    counted = [0]
    real = git_module.subprocess.Popen

    class Counting(real):  # type: ignore[misc, valid-type]
        def __init__(self, args, *rest, **kwargs):
            counted[0] += args[0] == "git" and "apply" in args[1:]
            super().__init__(args, *rest, **kwargs)

    monkeypatch.setattr(git_module.subprocess, "Popen", Counting)
    return counted


def _queue_with_trouble(make_upstream):
    """A queue whose new base needs a 3-way merge, has one patch already, one real conflict, and patches after
    them (one on the conflicted file, one new file) that apply."""
    up = make_upstream("vllm")
    module = "".join(f"def f{i}(x):\n    return x + {i}\n\n\n" for i in range(40))
    up.write("m.py", module).write("n.py", module.replace("f", "g"))
    base = up.commit("base")
    edits = {
        "p1": [("m.py", "    return x + 3\n", "    return x + 3  # p1\n")],
        "p2": [("m.py", "    return x + 10\n", "    return x + 10  # p2\n")],
        "p3": [("n.py", "    return x + 5\n", "    return x + 5  # p3\n")],
        "p4": [("m.py", "    return x + 20\n", "    return x + 20  # p4\n")],
        "p5": [("n.py", "    return x + 30\n", "    return x + 30  # p5\n")],
        "p6": [("m.py", "    return x + 35\n", "    return x + 35  # p6\n")],
        "p7": [("new.py", "", "NEW = 1\n")],
        "p8": [("m.py", "    return x + 20\n", "    return x + 21\n")],
    }
    patches = [_loaded(pid, up.diff(base, e)) for pid, e in edits.items()]
    up.write("m.py", "# top\n# lines\n" + module.replace("def f11(x):", "def f11(x):  # upstream")
             .replace("    return x + 20\n", "    return x + 20  # upstream took it another way\n"))
    up.edit("n.py", "    return x + 5\n", "    return x + 5  # p3\n")
    new = up.commit("upstream moves")
    return Repo(up.path), new, patches


def test_a_queue_judged_in_parts_matches_patch_by_patch(make_upstream, monkeypatch):
    repo, new, patches = _queue_with_trouble(make_upstream)
    counted = _count_apply_processes(monkeypatch)
    parts = run_queue(repo, new, patches, keep_going=True, commit_ref="refs/patchq/test/parts")
    in_parts = counted[0]
    monkeypatch.setattr(queuerun, "one_pass", lambda *args: (None, None))   # git judges every patch alone
    counted[0] = 0
    alone = run_queue(repo, new, patches, keep_going=True, commit_ref="refs/patchq/test/alone")
    kinds = {o.patch_id: o.kind for o in parts.outcomes}
    assert kinds["p2"] == OutcomeKind.THREEWAY and kinds["p3"] == OutcomeKind.ALREADY_UPSTREAM
    assert kinds["p4"] == OutcomeKind.CONFLICT and kinds["p1"] == OutcomeKind.OFFSET
    for a, b in zip(parts.outcomes, alone.outcomes, strict=True):
        assert (a.patch_id, a.kind, a.files, a.offsets, a.detail, a.hunks) == \
               (b.patch_id, b.kind, b.files, b.offsets, b.detail, b.hunks)
    assert parts.tree == alone.tree
    assert [repo.tree_of(parts.commits[p]) for p in sorted(parts.commits)] == \
           [repo.tree_of(alone.commits[p]) for p in sorted(alone.commits)]
    assert in_parts < counted[0], f"{in_parts} git apply processes in parts, {counted[0]} one by one"
    print(f"git apply processes: {in_parts} in parts, {counted[0]} one by one")


def test_a_conflict_stops_the_queue_in_parts_as_it_does_alone(make_upstream, monkeypatch):
    repo, new, patches = _queue_with_trouble(make_upstream)
    parts = run_queue(repo, new, patches)
    monkeypatch.setattr(queuerun, "one_pass", lambda *args: (None, None))
    alone = run_queue(repo, new, patches)
    assert [(o.patch_id, o.kind) for o in parts.outcomes] == [(o.patch_id, o.kind) for o in alone.outcomes]
    assert [o.kind for o in parts.outcomes][4:] == [OutcomeKind.NOT_REACHED] * 4


@pytest.fixture
def bench_ws(tmp_path, monkeypatch):
    """bench_rebase's generated history (120 commits, 24 patches: two 3-way breaks and one taken upstream)."""
    monkeypatch.setenv("PATCHQ_CACHE", str(tmp_path / "cache"))
    upstream, template, base, tip, _ = bench_rebase.build(tmp_path, 120, 24)
    ensure_mirror(load_workspace(template).upstream("vllm"), workspace=template, need=(base, tip))
    return template


def _breaking(template: Path, into: Path) -> tuple[list[tuple[str, str, str, int]], int]:
    import shutil
    shutil.copytree(template, into)
    counted = [0]
    real = git_module.subprocess.Popen

    class Counting(real):  # type: ignore[misc, valid-type]
        def __init__(self, args, *rest, **kwargs):
            counted[0] += args[0] == "git"
            super().__init__(args, *rest, **kwargs)

    git_module.subprocess.Popen = Counting
    try:
        report = start_rebase(into, "vllm@latest")
    finally:
        git_module.subprocess.Popen = real
    assert report.state == "done"
    return sorted((b.patch_id, b.commit, b.kind.value, b.checks) for b in report.breaking), counted[0]


def test_the_guided_search_finds_what_git_alone_finds_even_when_the_prediction_lies(bench_ws, tmp_path,
                                                                                    monkeypatch):
    honest = survey.predict_at
    guided, guided_processes = _breaking(bench_ws, tmp_path / "guided")
    monkeypatch.setattr(survey, "predict_at", lambda *args: None)                  # git judges every step
    unguided, unguided_processes = _breaking(bench_ws, tmp_path / "unguided")

    def lying(*args):
        answer = honest(*args)
        return None if answer is None else not answer
    monkeypatch.setattr(survey, "predict_at", lying)
    misled, _ = _breaking(bench_ws, tmp_path / "misled")
    assert [b[:3] for b in guided] == [b[:3] for b in unguided] == [b[:3] for b in misled]
    assert {b[2] for b in guided} == {"3way", "already-upstream"}
    assert guided_processes + 10 < unguided_processes, (guided_processes, unguided_processes)
