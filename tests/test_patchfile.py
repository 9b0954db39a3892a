"""Patch files: every diff shape git and diff(1) produce parses; malformed or unsafe patches are refused by line."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from patchq.errors import BadInput
from patchq.git import Repo
from patchq.model import PatchEntry, Status
from patchq.patchfile import entry_from_patch, format_date, parse_diff, read_patch_file, render_patch_file


@pytest.fixture
def repo(tmp_path) -> Repo:
    repo = Repo.init(tmp_path / "r")
    (repo.path / "f.txt").write_text("".join(f"line {i}\n" for i in range(1, 21)))
    (repo.path / "gone.txt").write_text("bye\n")
    (repo.path / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (repo.path / "moved.py").write_text("".join(f"x{i} = {i}\n" for i in range(30)))
    repo.run("add", "-A")
    repo.run("commit", "-q", "-m", "base")
    return repo


def staged_diff(repo: Repo, *extra: str) -> bytes:
    repo.run("add", "-A")
    return repo.run("diff", "--cached", "--full-index", *extra).stdout


def line_of(data: bytes, needle: bytes) -> int:
    return data[: data.index(needle)].count(b"\n") + 1


def test_git_diff_modification_parses_hunks_and_counts(repo):
    text = (repo.path / "f.txt").read_text().replace("line 3\n", "line 3 changed\n").replace("line 17\n", "")
    (repo.path / "f.txt").write_text(text)
    files = parse_diff(staged_diff(repo))
    (section,) = files
    assert (section.old_path, section.new_path) == ("f.txt", "f.txt")
    assert [(h.old_start, h.old_count, h.new_start, h.new_count) for h in section.hunks] == [(1, 6, 1, 6),
                                                                                            (14, 7, 14, 6)]
    assert section.hunks[0].added_lines() == [3]
    assert section.hunks[1].removed_lines() == [17]
    assert len(section.old_blob) == 40 and len(section.new_blob) == 40


def test_diff_u_output_with_timestamps_parses(tmp_path):
    old, new = tmp_path / "a", tmp_path / "b"
    old.mkdir()
    new.mkdir()
    (old / "model.py").write_text("x = 1\ny = 2\n")
    (new / "model.py").write_text("x = 1\ny = 3\n")
    proc = subprocess.run(["diff", "-u", "a/model.py", "b/model.py"], cwd=tmp_path, capture_output=True)
    assert proc.returncode == 1 and b"\t" in proc.stdout.splitlines()[0]    # a timestamp after a tab
    patch = read_patch_file(proc.stdout, source="x.diff")
    (section,) = patch.files
    assert (section.old_path, section.new_path) == ("a/model.py", "b/model.py")
    assert section.hunks[0].lines == (b" x = 1", b"-y = 2", b"+y = 3")


def test_diff_u_with_absolute_paths_is_refused_with_its_line(tmp_path):
    data = (b"lab notes\n--- /tmp/vllm-orig/vllm/model.py\t2026-05-19 10:00:00\n"
            b"+++ /venv/site-packages/vllm/model.py\t2026-05-19 10:01:00\n@@ -1 +1 @@\n-a\n+b\n")
    with pytest.raises(BadInput, match="absolute path '/tmp/vllm-orig/vllm/model.py'") as info:
        read_patch_file(data, source="q/x.patch")
    assert (info.value.path, info.value.line) == ("q/x.patch", 2)


def test_format_patch_output_parses_header_and_keeps_bytes(repo):
    (repo.path / "f.txt").write_text("changed\n")
    repo.run("commit", "-q", "-a", "-m", "Change f\n\nBecause it was wrong.", "--author", "Ann <ann@example.com>",
             "--date", "2026-05-19T12:00:00+02:00")
    data = repo.run("format-patch", "-1", "--stdout", "HEAD").stdout
    patch = read_patch_file(data, source="0001.patch")
    assert patch.author == "Ann <ann@example.com>"
    assert patch.subject == "Change f"
    assert patch.description == "Because it was wrong."
    assert "2026" in patch.date and "+0200" in patch.date
    assert patch.files[0].path == "f.txt"
    assert patch.tail.startswith(b"-- \n")
    assert patch.head + patch.diff + patch.tail == data
    assert patch.with_diff(patch.diff) == data


def test_rename_with_and_without_edits(repo):
    repo.run("mv", "moved.py", "pkg_moved.py")
    (repo.path / "gone.txt").rename(repo.path / "kept.txt")
    (repo.path / "kept.txt").write_text("bye\n")
    text = (repo.path / "pkg_moved.py").read_text().replace("x29 = 29\n", "x29 = 290\n")
    (repo.path / "pkg_moved.py").write_text(text)
    files = {f.new_path: f for f in parse_diff(staged_diff(repo, "-M"))}
    assert files["kept.txt"].rename and files["kept.txt"].old_path == "gone.txt" and not files["kept.txt"].hunks
    moved = files["pkg_moved.py"]
    assert moved.rename and moved.old_path == "moved.py" and len(moved.hunks) == 1
    assert moved.paths == ("moved.py", "pkg_moved.py")


def test_mode_change_new_and_deleted_files(repo):
    (repo.path / "run.sh").chmod(0o755)
    (repo.path / "gone.txt").unlink()
    (repo.path / "new" / "dir").mkdir(parents=True)
    (repo.path / "new" / "dir" / "added.txt").write_text("hello\n")
    files = {f.path: f for f in parse_diff(staged_diff(repo))}
    mode = files["run.sh"]
    assert (mode.old_mode, mode.new_mode, mode.hunks) == ("100644", "100755", ())
    assert files["gone.txt"].is_deleted and files["gone.txt"].old_path == "gone.txt"
    added = files["new/dir/added.txt"]
    assert added.is_new and added.new_mode == "100644" and added.hunks[0].lines == (b"+hello",)


def test_binary_patches_parse_as_binary(repo):
    (repo.path / "blob.bin").write_bytes(bytes(range(256)) * 4)
    with_data = parse_diff(staged_diff(repo, "--binary"))
    assert [(f.path, f.binary, f.is_new) for f in with_data] == [("blob.bin", True, True)]
    without = parse_diff(staged_diff(repo))
    assert [(f.path, f.binary) for f in without] == [("blob.bin", True)]
    # a binary patch inside a patch file is still a patch, not "a binary file"
    patch = read_patch_file(render_patch_file(_entry("bin"), staged_diff(repo, "--binary")), source="b.patch")
    assert patch.files[0].binary


def test_no_newline_at_end_of_file(repo):
    (repo.path / "gone.txt").write_bytes(b"bye now")
    data = staged_diff(repo)
    assert b"\\ No newline at end of file" in data
    (section,) = parse_diff(data)
    assert section.hunks[0].lines == (b"-bye", b"+bye now", b"\\ No newline at end of file")
    # and the reverse direction: the marker follows the removed line
    (back,) = parse_diff(repo.run("diff", "--cached", "-R").stdout)
    assert back.hunks[0].lines == (b"-bye now", b"\\ No newline at end of file", b"+bye")


def test_quoted_paths_are_unquoted(repo):
    name = 'sp ace "q" é.txt'
    (repo.path / name).write_text("x\n")
    data = staged_diff(repo)
    assert b'"b/sp ace \\"q\\" \\303\\251.txt"' in data
    (section,) = parse_diff(data)
    assert section.new_path == name and section.is_new


# ---- refusals, each with the patch file's line ---------------------------------------------------------------

def _entry(pid: str) -> PatchEntry:
    return PatchEntry(id=pid, upstream="vllm", file=f"0001-{pid}.patch", status=Status.PROMOTED, title=f"T {pid}",
                      author="Lab <lab@example.com>", date="2026-05-19")


GOOD = b"diff --git a/f.txt b/f.txt\n--- a/f.txt\n+++ b/f.txt\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n"


def refuse(data: bytes, match: str, line: int | None) -> None:
    with pytest.raises(BadInput, match=match) as info:
        read_patch_file(data, source="queues/vllm/x.patch")
    assert info.value.path == "queues/vllm/x.patch"
    assert info.value.line == line


def test_a_file_that_is_not_a_diff_is_refused():
    refuse(b"Subject: notes\n\nWe tried MTP and it was slower.\n", "no diff found", None)
    refuse(b"\x00\x01\x02binary", "binary, not a patch", None)


def test_context_and_crlf_diffs_are_refused(tmp_path):
    (tmp_path / "a").write_text("x\ny\n")
    (tmp_path / "b").write_text("x\nz\n")
    context = subprocess.run(["diff", "-c", "a", "b"], cwd=tmp_path, capture_output=True).stdout
    refuse(context, "no diff found", None)
    data = GOOD + b"*** a/g.txt\n--- b/g.txt\n***************\n"
    refuse(data, "unified diff", 8)
    refuse(GOOD.replace(b"\n", b"\r\n"), "CRLF", 1)


@pytest.mark.parametrize("header", [b"@@ -1,x +1,2 @@", b"@@ -1,2 +1,2", b"@@@ -1,2 +1,2 @@@", b"@@ garbage @@"])
def test_a_corrupt_hunk_header_is_refused_with_its_line(header):
    data = b"From: Lab <l@x>\nSubject: s\n\n" + GOOD.replace(b"@@ -1,2 +1,2 @@", header)
    refuse(data, "corrupt hunk header", 7)


@pytest.mark.parametrize("header,seen", [(b"@@ -1,3 +1,2 @@", "-2 +2"), (b"@@ -1,2 +1,5 @@", "-2 +2")])
def test_wrong_hunk_counts_are_refused_with_the_hunk_line(header, seen):
    data = b"notes\n\n" + GOOD.replace(b"@@ -1,2 +1,2 @@", header)
    refuse(data, re.escape(f"but the hunk has {seen}"), 6)


def test_a_hunk_without_a_file_header_is_refused():
    refuse(b"--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n@@ -5 +5 @@\n-c\n+d\n\n@@ -9 +9 @@\n-e\n+f\n",
           "hunk without a file header", 10)


@pytest.mark.parametrize("path,why", [
    (b"/etc/passwd", "absolute path"),
    (b"../outside.txt", "climbs out of the tree"),
    (b"vllm/../../outside.txt", "climbs out of the tree"),
    (b".git/hooks/pre-commit", "git's own .git"),
    (b"sub/.GIT/config", "git's own .git"),
])
def test_paths_outside_the_tree_are_refused(path, why):
    diff = (b"diff --git a/" + path + b" b/" + path + b"\nnew file mode 100644\n--- /dev/null\n+++ b/" + path
            + b"\n@@ -0,0 +1 @@\n+x\n")
    data = GOOD + diff
    refuse(data, why, line_of(data, b"diff --git a/" + path))


def test_writing_through_a_symlink_the_patch_creates_is_refused():
    link = (b"diff --git a/lnk b/lnk\nnew file mode 120000\n--- /dev/null\n+++ b/lnk\n@@ -0,0 +1 @@\n+sub\n"
            b"\\ No newline at end of file\n")
    through = b"diff --git a/lnk/x.txt b/lnk/x.txt\nnew file mode 100644\n--- /dev/null\n+++ b/lnk/x.txt\n" \
              b"@@ -0,0 +1 @@\n+pwned\n"
    data = GOOD + link + through
    refuse(data, "written through the symlink 'lnk'", line_of(data, b"diff --git a/lnk/x.txt"))


def test_a_symlink_pointing_out_of_the_tree_is_refused():
    data = (b"diff --git a/a/lnk b/a/lnk\nnew file mode 120000\n--- /dev/null\n+++ b/a/lnk\n@@ -0,0 +1 @@\n"
            b"+../../etc\n\\ No newline at end of file\n")
    refuse(data, "points outside the tree", 1)


def test_setuid_modes_are_refused():
    data = b"diff --git a/run.sh b/run.sh\nold mode 100644\nnew mode 104755\n"
    refuse(data, "mode 104755", 1)


def test_a_path_twice_in_one_patch_is_refused():
    data = GOOD + GOOD
    refuse(data, "appears twice", 8)


# ---- writing -------------------------------------------------------------------------------------------------

def test_rendered_patch_files_round_trip_and_git_am_accepts_them(repo):
    (repo.path / "f.txt").write_text("new first line\n" + (repo.path / "f.txt").read_text())
    (repo.path / "run.sh").chmod(0o755)
    diff = staged_diff(repo, "--binary")
    repo.run("reset", "-q", "--hard")
    entry = PatchEntry(id="fused-qk", upstream="vllm", file="0001-fused-qk.patch", status=Status.DIAGNOSTIC,
                       title="Fuse QK norm", why="Saves a launch.\n\nSecond paragraph.", flags=("VLLM_A", "VLLM_B"),
                       result="+3 tok/s", baseline="pin", date="2026-05-19", notes=("runs/0519.json",),
                       author="Ann Lab <ann@example.com>")
    data = render_patch_file(entry, diff)
    patch = read_patch_file(data, source=entry.file)
    back = entry_from_patch(patch, upstream="vllm", file=entry.file, source=entry.file)
    assert back == entry
    assert patch.diff == diff
    if shutil.which("git"):
        (repo.path.parent / "p.patch").write_bytes(data)
        repo.run("am", "-q", str(repo.path.parent / "p.patch"))
        log = repo.out("log", "-1", "--format=%an <%ae>%n%s%n%b")
        assert log.startswith("Ann Lab <ann@example.com>\nFuse QK norm\nSaves a launch.")
        assert "Patchq-Flags: VLLM_A, VLLM_B" in log
        assert (repo.path / "f.txt").read_text().startswith("new first line\n")
        assert repo.out("ls-files", "-s", "run.sh").startswith("100755")


def test_with_diff_replaces_only_the_diff():
    data = render_patch_file(_entry("one"), GOOD)
    patch = read_patch_file(data, source="x")
    new = GOOD.replace(b"+c", b"+d")
    out = patch.with_diff(new)
    assert out.replace(new, GOOD) == data
    assert read_patch_file(out, source="x").trailers == patch.trailers


def test_iso_dates_with_a_z_become_the_same_date_header_on_every_python():
    """Python 3.10's fromisoformat does not read a trailing Z; the header must not fall back to the epoch there."""
    assert format_date("2026-05-19T10:00:00Z") == "Tue, 19 May 2026 10:00:00 +0000"
    assert format_date("2026-05-19") == "Tue, 19 May 2026 00:00:00 +0000"
    assert format_date("not a date") == "Thu, 1 Jan 1970 00:00:00 +0000"
