"""The patch-text layer: one lexer, read strictly (queue files) and leniently (import), mail headers, mbox cuts.

The same git-made diff is read both ways: the strict reading refuses every hand edit with its line, the lenient one
repairs it and names the repair. Parsing is linear: a 2.7 MB patch of 16k symlinks and 16k files (made by git)
parses in a few seconds where the old reader took about a minute.
"""

from __future__ import annotations

import hashlib
import os
import re
import time

import pytest

from patchq.errors import BadInput
from patchq.git import Repo
from patchq.patchfile import read_patch_file
from patchq.patchtext import lex, parse_diff, parse_mail_head, split_mbox
from patchq.patchtext.lenient import Unreadable, read_lenient


@pytest.fixture
def three_hunks(tmp_path) -> bytes:
    """A real `git diff` with three hunks in one file and a second file."""
    repo = Repo.init(tmp_path / "r")
    body = "".join(f"def f{i}():\n    return {i}\n\n" for i in range(30))
    (repo.path / "m.py").write_text(body)
    (repo.path / "n.py").write_text("A = 1\n")
    repo.run("add", "-A")
    repo.run("commit", "-qm", "base")
    (repo.path / "m.py").write_text(body.replace("return 2\n", "return 20\n").replace("return 12\n", "return 120\n")
                                    .replace("return 25\n", "return 250\n"))
    (repo.path / "n.py").write_text("A = 2\n")
    return repo.run("diff", "--no-color").stdout


def test_strict_and_lenient_agree_on_a_clean_diff(three_hunks):
    strict = parse_diff(three_hunks)
    loose = read_lenient(three_hunks)
    assert [f.path for f in strict] == ["m.py", "n.py"]
    assert [len(f.hunks) for f in strict] == [len(s.hunks) for s in loose.sections] == [3, 1]
    for section, raw in zip(strict, loose.sections):
        for hunk, lh in zip(section.hunks, raw.hunks):
            assert lh.trusted and not lh.repairs
            assert hunk.lines == lh.body and (hunk.old_count, hunk.new_count) == (lh.old_count, lh.new_count)


def test_a_miscounted_header_is_refused_strictly_and_recounted_leniently(three_hunks):
    headers = list(re.finditer(rb"(?m)^@@ -(\d+),(\d+) \+(\d+),(\d+) @@", three_hunks))
    m = headers[1]
    bad = three_hunks[:m.start()] + b"@@ -%s,9 +%s,9 @@" % (m.group(1), m.group(3)) + three_hunks[m.end():]
    line = three_hunks[:m.start()].count(b"\n") + 1
    with pytest.raises(BadInput) as exc:
        parse_diff(bad)
    assert exc.value.line == line and "hunk header says -9 +9" in exc.value.message
    loose = read_lenient(bad)
    hunk = loose.sections[0].hunks[1]
    assert not hunk.trusted and (hunk.old_count, hunk.new_count) == (int(m.group(2)), int(m.group(4)))
    assert any(f"line {line}: hunk header said -9 +9" in r and "recounted" in r for r in loose.repairs)
    assert len(loose.sections) == 2 and len(loose.sections[0].hunks) == 3      # the next hunk is still a hunk


def test_context_only_and_stripped_blank_lines(three_hunks):
    bare = re.sub(rb"(?m)^@@ .* @@.*$", b"@@", three_hunks)
    with pytest.raises(BadInput, match="corrupt hunk header"):
        parse_diff(bare)
    loose = read_lenient(re.sub(rb"(?m)^ $", b"", bare))
    hunks = loose.sections[0].hunks
    assert all(h.ranges is None and not h.trusted for h in hunks)
    assert all(raw[:1] in (b" ", b"+", b"-") for h in hunks for raw in h.body)       # blank lines given back
    assert any("blank context line" in r for r in loose.repairs)
    assert any("has no line numbers" in r for r in loose.repairs)


def test_a_hunk_cut_at_the_end_of_the_text_is_truncation_not_a_miscount(three_hunks):
    cut = three_hunks[: three_hunks.rindex(b"\n+")] + b"\n"
    with pytest.raises(Unreadable, match="truncated or hand-edited"):
        read_lenient(cut)


def test_lexer_sections_and_gaps_cover_the_text(three_hunks):
    text = b"Prose first.\n\n" + three_hunks + b"-- \n2.43.0\n"
    lexed = lex(text, trust_counts=False)
    covered = sum(e - s for s, e in lexed.gaps) + sum(s.end - s.start for s in lexed.sections)
    assert covered == len(lexed.lines)
    assert [lexed.lines[i] for i in range(*lexed.gaps[-1])] == [b"-- ", b"2.43.0"]


def test_mail_headers_decode_rfc2047_and_mbox_cuts_only_at_real_separators():
    head = parse_mail_head(["From 1234567890abcdef1234567890abcdef12345678 Mon Sep 17 00:00:00 2001",
                            "From: =?UTF-8?q?J=C3=B6rg?= <j@lab>", "Subject: [PATCH 1/2] =?UTF-8?q?Fix_=C3=BC?=",
                            " ber-kernel", "", "Body."])
    assert head.is_mail and head.author == "J\u00f6rg <j@lab>" and head.subject == "Fix \u00fc ber-kernel"
    assert head.body == ("", "Body.")
    one = (b"From abc Mon Sep 17 00:00:00 2001\nFrom: a <a@b>\nSubject: one\n\nFrom x Mon Sep 17 00:00:00 2001 "
           b"is quoted prose, not a separator\n\n")
    two = b"From def Mon Sep 17 00:00:00 2001\nFrom: a <a@b>\nSubject: two\n\nbody\n"
    pieces = split_mbox(one + two)
    assert [(n, data) for n, data in pieces] == [(1, one), (one.count(b"\n") + 1, two)]


def test_patch_file_subjects_are_decoded_like_mail(three_hunks):
    data = (b"From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\nFrom: a <a@b>\n"
            b"Date: Thu, 1 Jan 1970 00:00:00 +0000\nSubject: [PATCH] =?UTF-8?q?Gr=C3=BC=C3=9Fe?=\n\nWhy.\n---\n\n"
            + three_hunks)
    patch = read_patch_file(data, source="x.patch")
    assert patch.subject == "Gr\u00fc\u00dfe" and patch.description == "Why."


def _git_new_file(path: str, content: bytes, link: bool) -> bytes:
    """What `git diff --cached` prints for one new file or symlink (checked against git itself below)."""
    blob = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()[:7]
    mode = b"120000" if link else b"100644"
    body = b"+" + content.rstrip(b"\n") + b"\n" + (b"\\ No newline at end of file\n" if link else b"")
    return (b"diff --git a/%s b/%s\nnew file mode %s\nindex 0000000..%s\n--- /dev/null\n+++ b/%s\n@@ -0,0 +1 @@\n"
            % (path.encode(), path.encode(), mode, blob.encode(), path.encode())) + body


def _links_and_files(count: int) -> bytes:
    links = [_git_new_file(f"d/{i // 500:02d}/l{i:05d}", f"../../f/{i:05d}".encode(), True) for i in range(count)]
    files = [_git_new_file(f"f/{i:05d}", f"{i}\n".encode(), False) for i in range(count)]
    return b"".join(links + files)


def test_the_generated_big_patch_is_what_git_prints(tmp_path):
    repo = Repo.init(tmp_path / "small")
    for i in range(40):
        folder = repo.path / "d" / f"{i // 500:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        os.symlink(f"../../f/{i:05d}", folder / f"l{i:05d}")
        (repo.path / "f").mkdir(exist_ok=True)
        (repo.path / "f" / f"{i:05d}").write_text(f"{i}\n")
    repo.run("add", "-A")
    assert repo.run("diff", "--cached", "--no-color", "--no-renames").stdout == _links_and_files(40)


def test_a_patch_of_16k_symlinks_and_16k_files_parses_in_linear_time():
    """The old reader compared every path with every symlink created before it: ~60 s for this patch."""
    diff = _links_and_files(16000)
    assert len(diff) > 2_700_000
    started = time.perf_counter()
    files = parse_diff(diff, source="big.patch")
    elapsed = time.perf_counter() - started
    print(f"\nparsed {len(diff)} bytes, {len(files)} sections in {elapsed:.2f} s")
    assert len(files) == 32000 and sum(f.new_mode == "120000" for f in files) == 16000
    assert elapsed < 30          # generous: about a second on an idle core, minutes when it was quadratic
