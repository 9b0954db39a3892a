"""The fast flag audit: same answers as committing each patch and diffing it, fewer git processes, a blob-id cache."""

from __future__ import annotations

import json

import pytest

from patchq import git as patchq_git
from patchq.audit import _independent_groups, audit_patches, audit_workspace
from patchq.flagcache import Job, ReadCache
from patchq.flags import reads_in_lines
from patchq.model import Status
from patchq.patchfile import parse_diff
from patchq.queuerun import load_patch, run_queue
from patchq.sources import ensure_base
from patchq.splice import splice_lines

PY = "import os\n\n" + "".join(f"def f{i}(x):\n    total = x * {i}\n    return total\n\n\n" for i in range(30))
SH = "#!/bin/sh\nset -e\n" + "".join(f"step{i}() {{\n    echo {i}\n}}\n" for i in range(20))
CC = "#include <cstdlib>\n" + "".join(f"int g{i}(int x) {{\n    int t = x * {i};\n    return t;\n}}\n"
                                      for i in range(20))
GATE = '    if os.environ.get("{0}", "0") == "1":\n        total += 1\n'
OLD_GATE = '    total = x * 3\n    if os.getenv("VLLM_GONE"):\n        total = 0\n'


def _reference(repo, base, ordered, on_top):
    """The audit as it was: every patch committed with `apply`'s own machinery, reads from `git diff -U0`."""
    def reads_of(commit, loaded):
        diff = repo.run("diff", "--no-color", "--no-ext-diff", "--no-renames", "-U0", f"{commit}^", commit).stdout
        out = []
        for section in parse_diff(diff, source=loaded.source):
            added = {n for h in section.hunks for n in h.added_lines()}
            removed = {n for h in section.hunks for n in h.removed_lines()}
            if section.new_path and added:
                text = repo.read_blob(commit, section.new_path).decode()
                out.extend(reads_in_lines(section.new_path, text, added))
            if section.old_path and removed:
                text = repo.read_blob(f"{commit}^", section.old_path).decode()
                out.extend(reads_in_lines(section.old_path, text, removed, removed=True))
        return out
    run = run_queue(repo, base, ordered, keep_going=True, commit_ref="refs/test/ordered")
    answers = [reads_of(run.commits[lp.entry.id], lp) if lp.entry.id in run.commits else None for lp in ordered]
    for loaded in on_top:
        alone = run_queue(repo, run.head, [loaded], commit_ref="refs/test/alone")
        commit = alone.commits.get(loaded.entry.id)
        answers.append(reads_of(commit, loaded) if commit else None)
    return answers


def _upstream(make_upstream):
    up = make_upstream("vllm")
    up.write("vllm/model.py", PY).write("scripts/run.sh", SH).write("csrc/k.cpp", CC)
    up.write("vllm/old.py", "import os\nGONE = os.getenv('VLLM_OLD_FILE')\n")
    for n in range(8):
        up.write(f"vllm/pkg/m{n}.py", PY)
    up.write("vllm/model.py", PY.replace("    total = x * 3\n", OLD_GATE))
    return up, up.commit("base")


def test_same_reads_as_committing_and_diffing_each_patch(lab, make_upstream):
    up, base = _upstream(make_upstream)
    lab.upstream("vllm", up, base)
    model = "vllm/model.py"
    lab.patch("vllm", "top", up.diff(base, [(model, "import os\n", "import os\nimport sys\n" * 3)]))
    # made against the pin: lands with an offset after `top`; removes a read and adds two
    lab.patch("vllm", "offset", up.diff(base, [(model, OLD_GATE, "    total = x * 3\n" + GATE.format("VLLM_A")),
                                               ("vllm/pkg/m1.py", "    total = x * 5\n",
                                                "    total = x * 5\n" + GATE.format("VLLM_B"))]))
    lab.patch("vllm", "shell", up.diff(base, [("scripts/run.sh", "    echo 4\n",
                                               '    echo 4\n    [ "${RUN_X:-0}" = 1 ] && echo x\n')]))
    lab.patch("vllm", "cpp", up.diff(base, [("csrc/k.cpp", "    int t = x * 7;\n",
                                             '    int t = x * 7;\n    if (std::getenv("K_X")) t = 0;\n')]))
    lab.patch("vllm", "delete", up.diff(base, [("vllm/old.py", "", None)]))
    lab.patch("vllm", "new", up.diff(base, [("vllm/fresh.py", "", "import os\nF = os.getenv('VLLM_FRESH', '1')\n")]))
    # side patches: alone on top (one per independent file), one conflicting, one already applied, one 3-way
    for n in range(2, 8):
        lab.patch("vllm", f"side{n}", up.diff(base, [(f"vllm/pkg/m{n}.py", "    total = x * 9\n",
                                                      "    total = x * 9\n" + GATE.format(f"VLLM_S{n}"))]),
                  status=Status.NEGATIVE_ARCHIVED)
    lab.patch("vllm", "clash", up.diff(base, [("vllm/pkg/m1.py", "    total = x * 5\n",
                                               "    total = x * 5\n" + GATE.format("VLLM_C"))]),
              status=Status.NEGATIVE_ARCHIVED)
    lab.patch("vllm", "again", up.diff(base, [("csrc/k.cpp", "    int t = x * 7;\n",
                                               '    int t = x * 7;\n    if (std::getenv("K_X")) t = 0;\n')]),
              status=Status.DIAGNOSTIC)
    lab.patch("vllm", "merge", up.diff(base, [(model, "    total = x * 20\n",
                                               "    total = x * 20\n" + GATE.format("VLLM_M"))]),
              status=Status.DIAGNOSTIC)
    ws = lab.load()
    entries = ws.queue("vllm").entries
    ordered = [load_patch(ws, e) for e in entries if e.status == Status.PROMOTED]
    others = [load_patch(ws, e) for e in entries if e.status != Status.PROMOTED]
    fast = audit_patches(ws, "vllm", base, ordered, others)
    repo = ensure_base(ws.upstream("vllm"), base, workspace=ws.root).repo
    expected = _reference(repo, base, ordered, others)
    assert len(fast) == len(expected) == len(entries)
    for got, want in zip(fast, expected):
        if want is None:
            assert got.approximate, got.patch_id
        else:
            assert not got.approximate and list(got.reads) == want, got.patch_id
    by_id = {p.patch_id: p for p in fast}
    assert by_id["clash"].approximate and by_id["again"].approximate and not by_id["merge"].approximate
    assert any(r.removed and r.name == "VLLM_GONE" for r in by_id["offset"].reads)
    assert by_id["delete"].reads[0].removed and by_id["new"].found == ("VLLM_FRESH",)


def test_side_patches_on_separate_files_share_one_git_apply(lab, make_upstream, monkeypatch):
    up, base = _upstream(make_upstream)
    lab.upstream("vllm", up, base)
    for n in range(8):
        lab.patch("vllm", f"side{n}", up.diff(base, [(f"vllm/pkg/m{n}.py", "    total = x * 9\n",
                                                      "    total = x * 9\n" + GATE.format(f"VLLM_S{n}"))]),
                  status=Status.NEGATIVE_ARCHIVED)
    ws = lab.load()
    ensure_base(ws.upstream("vllm"), base, workspace=ws.root)
    calls: list[list[str]] = []
    original = patchq_git.run_git

    def counting(args, **kwargs):
        calls.append(list(args))
        return original(args, **kwargs)

    monkeypatch.setattr(patchq_git, "run_git", counting)
    audit = audit_workspace(ws)
    applies = [c for c in calls if c[0] == "apply"]
    assert len(applies) <= 2, applies          # 8 patches on 8 files: one stream (two when split over both cores)
    assert [p.found for p in audit.patches] == [(f"VLLM_S{n}",) for n in range(8)]
    assert not any(p.approximate for p in audit.patches)


def test_groups_keep_a_file_apart_from_a_folder_of_the_same_name(lab, make_upstream):
    up = make_upstream("vllm")
    up.write("a/b", "x\n").write("c.py", "y\n").write("d.py", "z\n")
    base = up.commit("base")
    lab.upstream("vllm", up, base)
    lab.patch("vllm", "rm", up.diff(base, [("a/b", "", None)]), status=Status.DIAGNOSTIC)
    lab.patch("vllm", "mk", up.diff(base, [("a/b", "", None), ("a/b/c.py", "", "q\n")]), status=Status.DIAGNOSTIC)
    lab.patch("vllm", "c", up.diff(base, [("c.py", "y\n", "y2\n")]), status=Status.DIAGNOSTIC)
    lab.patch("vllm", "d", up.diff(base, [("d.py", "z\n", "z2\n")]), status=Status.DIAGNOSTIC)
    ws = lab.load()
    loaded = [load_patch(ws, e) for e in ws.queue("vllm").entries]
    groups = _independent_groups(loaded)
    assert sorted(sorted(g) for g in groups) == [[0, 2, 3], [1]]


def test_the_second_audit_reads_every_analysis_from_the_cache(lab, make_upstream, tmp_path):
    up, base = _upstream(make_upstream)
    lab.upstream("vllm", up, base)
    lab.patch("vllm", "a", up.diff(base, [("vllm/model.py", "    total = x * 5\n",
                                           "    total = x * 5\n" + GATE.format("VLLM_A"))]), flags=("VLLM_A",))
    lab.patch("vllm", "b", up.diff(base, [("vllm/pkg/m1.py", "    total = x * 5\n",
                                           "    total = x * 5\n" + GATE.format("VLLM_B"))]),
              status=Status.NEGATIVE_ARCHIVED)
    ws = lab.load()
    entries = ws.queue("vllm").entries
    ordered, others = [load_patch(ws, entries[0])], [load_patch(ws, entries[1])]
    first_cache = ReadCache(tmp_path / "flags")
    first = audit_patches(ws, "vllm", base, ordered, others, cache=first_cache)
    assert first_cache.analysed == 2                  # the two post-images (nothing removed: no pre-image)
    again = ReadCache(tmp_path / "flags")
    assert audit_patches(ws, "vllm", base, ordered, others, cache=again) == first
    assert again.analysed == 0
    stored = sorted((tmp_path / "flags").rglob("*.json"))
    assert len(stored) == first_cache.analysed
    stored[0].write_text("{not json")                 # a damaged entry is analysed again, never trusted
    damaged = ReadCache(tmp_path / "flags")
    assert audit_patches(ws, "vllm", base, ordered, others, cache=damaged) == first
    assert damaged.analysed == 1
    assert json.loads(stored[0].read_text())          # and rewritten whole


@pytest.mark.parametrize("row", [
    [1, 1, 0, "X", "2", "python", None, "truthy", None, False, False, ""],     # a line that is text
    [1, 1, 0, "X", 2, "python", None, "truthy", None, "yes", False, ""],       # default_on that is no boolean
    [1, 1, 0, "X", 2, "python", None, "truthy", None, False, False],           # a field short
])
def test_a_stored_read_of_the_wrong_shape_is_analysed_again(tmp_path, row):
    job = Job("a.py", b'import os\nif os.getenv("X_ON"):\n    pass\n')
    first = ReadCache(tmp_path / "flags")
    key = first.key(job)
    assert key is not None
    good = first.located([job])[key]
    [stored] = (tmp_path / "flags").rglob("*.json")
    stored.write_text(json.dumps([row]))
    again = ReadCache(tmp_path / "flags")
    assert [found.read for found in again.located([job])[key]] == [found.read for found in good]
    assert again.analysed == 1


def test_splice_lines_says_where_hunks_landed():
    diff = (b"diff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -2,2 +2,3 @@\n b\n-c\n+C\n+D\n@@ -6,1 +7,2 @@\n f\n+g\n")
    [section] = parse_diff(diff, source="t")
    old = b"x\nx\na\nb\nc\nd\ne\nf\n"           # two lines above what the hunks say: an offset of +2
    spliced = splice_lines(old, section.hunks)
    assert spliced is not None
    assert spliced.data == b"x\nx\na\nb\nC\nD\nd\ne\nf\ng\n"
    assert spliced.removed == (5,) and spliced.added == (5, 6, 10)
    assert splice_lines(b"nothing here\n", section.hunks) is None


def test_object_reader_reads_many_blobs_through_one_process(make_upstream):
    up = make_upstream()
    up.write("a.txt", "alpha\n").write("b.bin", "\0\1\2")
    commit = up.commit("two files")
    with up.repo.object_reader() as reader:
        assert reader.read(f"{commit}:a.txt") == b"alpha\n"
        assert reader.read(f"{commit}:b.bin") == b"\0\1\2"
        assert reader.read(f"{commit}:missing") is None
        assert reader.read(commit) is None            # a commit is not a blob
        with pytest.raises(ValueError):
            reader.read("a\nb")
        assert reader.read(f"{commit}:a.txt") == b"alpha\n"


def _split_jobs() -> dict[str, Job]:
    """Files enough to split: one large C file first (the largest is taken first, and lexing it keeps this side
    busy long after the helper has started), then Python files in versions, more C, a script."""
    big = CC * 250 + 'int big() { return getenv("GGML_BIG") != nullptr; }\n'
    jobs = {"big": Job("csrc/big.cpp", big.encode())}
    for number in range(6):
        text = PY.replace("    return total\n", f'    return total if os.getenv("VLLM_F{number}") else 0\n')
        for version in range(8):             # versions of one file stay in order: later ones reuse the earlier
            edited = text.replace(f"def f{version}(x):", f"def f{version}(x, y={version}):")
            jobs[f"p{number}-{version}"] = Job(f"vllm/m{number}.py", edited.encode())
    for number in range(4):
        cc = CC.replace("return t;", f'return getenv("GGML_X{number}") ? t : 0;') * 8
        jobs[f"c{number}"] = Job(f"csrc/k{number}.cpp", cc.encode())
    jobs["sh"] = Job("run.sh", (SH.replace("echo", 'echo "${VLLM_SH:-1}"') * 8).encode())
    return jobs


def test_analysis_split_over_two_processes_gives_the_answer_of_one(monkeypatch):
    """Above the size that pays for a helper, the files are analysed here and in a forked helper, each side taking
    the next file from a shared counter: the same reads as one process, and both sides took files."""
    from patchq import flagcache
    monkeypatch.setattr(flagcache, "usable_cores", lambda: 2)      # the split is taken even on a one-core runner
    jobs = _split_jobs()
    assert sum(len(job.data) for job in jobs.values()) >= flagcache.PARALLEL_MIN_BYTES
    alone = flagcache._analyse_here(list(jobs.items()))
    flagcache.last_split = None
    split = flagcache._analyse(jobs)
    assert split == alone and list(split) != [] and set(split) == set(jobs)
    assert all(split.values())                   # every file has its read
    assert flagcache.last_split is not None
    here, there = flagcache.last_split
    assert here >= 1 and there >= 1 and here + there >= 12     # 12 files; one taken by both at once counts twice


def _dies_in_the_helper(parent: int):
    """Run as the helper's turn-taking: in the forked helper, take a file and die by SIGKILL before answering."""
    import os
    import signal

    from patchq import flagcache
    if os.getpid() != parent:
        assert flagcache._shared is not None
        flagcache._shared[1].value += 1          # the helper had taken a file
        os.kill(os.getpid(), signal.SIGKILL)
    return flagcache._take_turns_counted()


def test_a_helper_that_dies_leaves_its_files_to_this_side(monkeypatch):
    """The helper killed mid-analysis (as the out-of-memory killer would): the audit still has every file's reads,
    the ones the helper had taken analysed here."""
    import functools
    import os

    from patchq import flagcache
    monkeypatch.setattr(flagcache, "usable_cores", lambda: 2)
    monkeypatch.setattr(flagcache, "_take_turns", functools.partial(_dies_in_the_helper, os.getpid()))
    jobs = _split_jobs()
    alone = flagcache._analyse_here(list(jobs.items()))
    assert flagcache._analyse(jobs) == alone
    assert flagcache.last_split is not None and flagcache.last_split[1] == 0


def test_no_shared_memory_for_a_helper_means_one_core_not_a_failure(monkeypatch):
    """Where a container offers no shared memory or semaphores (multiprocessing raises OSError making them; not
    something this machine can be made to do, so the context is replaced by one that refuses), the audit analyses
    everything on this core."""
    import multiprocessing

    from patchq import flagcache
    monkeypatch.setattr(flagcache, "usable_cores", lambda: 2)

    def refused(method=None):
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(multiprocessing, "get_context", refused)
    jobs = _split_jobs()
    alone = flagcache._analyse_here(list(jobs.items()))
    flagcache.last_split = None
    assert flagcache._analyse(jobs) == alone
    assert flagcache.last_split is None and flagcache._shared is None
