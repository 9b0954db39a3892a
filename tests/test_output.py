"""Output people can read and scripts can trust: the JSON envelope, errors as JSON, options after the subcommand,
tables that never cut a word, and a start-up that does not import the engine for --help."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from patchq.cli import STATUS_CHOICES
from patchq.model import Status
from patchq.table import Table, Text, parse_markup, render_table

ENVELOPE_KEYS = {"version", "command", "ok", "result", "error"}


# ---- the table renderer ----------------------------------------------------------------------------------------------

def _table(rows: list[list[str]]) -> Table:
    table = Table(title="t")
    for name in ("id", "flags", "detail"):
        table.add_column(name)
    for row in rows:
        table.add_row(*row)
    return table


WORD = st.text(alphabet="abcXYZ_-./019", min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.lists(st.lists(WORD, min_size=1, max_size=5).map(" ".join), min_size=3, max_size=3),
                     min_size=1, max_size=4),
       width=st.integers(min_value=20, max_value=160))
def test_no_word_is_ever_cut_at_any_width(rows, width):
    lines = render_table(_table(rows), width, color=False)
    words_out = " ".join(lines).split()
    for row in rows:
        for cell in row:
            for word in cell.split():
                assert word in words_out, (word, lines)


def test_columns_fit_the_width_or_the_table_turns_vertical():
    long_id = "minimax-fused-qk-norm-with-a-very-long-identifier"
    rows = [[long_id, "VLLM_XPU_USE_LLM_SCALER_MOE_WS, VLLM_MOE_WS_MAX_TOKENS", "one two three four five six"]]
    wide = render_table(_table(rows), 160, color=False)
    assert len(wide) == 3 and all(len(line) <= 160 for line in wide)           # title, header, one row
    narrow = render_table(_table(rows), 80, color=False)
    assert all(len(line) <= 80 for line in narrow) and long_id in "\n".join(narrow)
    assert "VLLM_XPU_USE_LLM_SCALER_MOE_WS," in "\n".join(narrow)              # wrapped between flags, not inside
    tiny = render_table(_table(rows), 40, color=False)
    assert any(line.strip().startswith("id  " + long_id) for line in tiny)     # vertical: `header  value`
    assert "flags  VLLM_XPU_USE_LLM_SCALER_MOE_WS," in "\n".join(tiny)
    piped = render_table(_table(rows), None, color=False)
    assert len(piped) == 3                                                     # no width limit: never wrapped


def test_markup_styles_only_style_words():
    assert parse_markup("[bold]next:[/bold] patchq apply [STACK]") == [("next:", "bold"), (" patchq apply [STACK]", "")]
    assert parse_markup("[green]ok[/] [x]") == [("ok", "green"), (" [x]", "")]
    assert parse_markup("[bold #1a7f37]promote[/bold #1a7f37]: [#x]") == [("promote", "bold #1a7f37"), (": [#x]", "")]
    assert render_table(_table([[str(Text("[bold]a")), "b", "c"]]), None, color=False)[2].startswith("a")


def test_status_choices_are_the_models():
    assert list(STATUS_CHOICES.choices) == [s.value for s in Status]


# ---- the CLI ---------------------------------------------------------------------------------------------------------

@pytest.fixture
def ws(lab, pyupstream):
    up, base = pyupstream
    lab.upstream("vllm", up, base)
    lab.patch("vllm", "one", up.diff(base, [("vllm/model.py", "return x * 3\n", "return x * 3 + 1\n")]),
              flags=("VLLM_ONE",))
    lab.patch("vllm", "clash", up.diff(base, [("README.md", "demo\n", "other\n")]), status=Status.DIAGNOSTIC)
    lab.stack("s", ["vllm"])
    return lab.save()


def test_json_before_or_after_the_subcommand_is_one_envelope(ws, patchq):
    before = patchq("--json", "list", cwd=ws)
    after = patchq("list", "--json", cwd=ws)
    assert before.code == after.code == 0 and before.out == after.out
    doc = json.loads(after.out)
    assert set(doc) == ENVELOPE_KEYS and doc["command"] == "list" and doc["ok"] is True and doc["error"] is None
    assert [e["id"] for e in doc["result"]] == ["one", "clash"]


def test_errors_in_json_mode_are_json_on_stdout_with_the_same_exit_code(ws, patchq):
    plain = patchq("show", "nosuch", cwd=ws)
    as_json = patchq("show", "nosuch", "--json", cwd=ws)
    assert plain.code == as_json.code == 2
    doc = json.loads(as_json.out)
    assert set(doc) == ENVELOPE_KEYS and doc["ok"] is False and doc["result"] is None and doc["command"] == "show"
    assert doc["error"]["kind"] == "bad-input" and doc["error"]["exit_code"] == 2
    assert "unknown patch 'nosuch'" in doc["error"]["message"] and "unknown patch" in plain.err
    usage = patchq("--json", "list", "--no-such-option", cwd=ws)
    assert usage.code == 2 and json.loads(usage.out)["error"]["kind"] == "usage"
    assert json.loads(usage.out)["command"] == "list"
    outside = patchq("--json", "list", cwd=ws.parent)          # no workspace here: exit 2, still an envelope
    assert outside.code == 2 and json.loads(outside.out)["error"]["exit_code"] == 2


def test_apply_check_has_the_shape_of_apply(ws, patchq):
    checked = json.loads(patchq("apply", "s", "--check", "--json", cwd=ws).out)
    applied = json.loads(patchq("apply", "s", "--json", cwd=ws).out)
    assert checked["command"] == applied["command"] == "apply"
    assert set(checked["result"]) == set(applied["result"]) == {"apply", "build"}
    assert checked["result"]["build"] is None and applied["result"]["build"] is not None
    assert checked["result"]["apply"]["checked_only"] is True and applied["result"]["apply"]["checked_only"] is False
    assert set(checked["result"]["apply"]) == set(applied["result"]["apply"])


def test_ok_follows_the_exit_code(ws, patchq):
    res = patchq("--json", "apply", "s", "--with", "diagnostic:clash", "--check", cwd=ws)
    doc = json.loads(res.out)
    assert res.code == 0 and doc["ok"] is True


def test_color_only_when_asked_and_never_with_no_color(ws, patchq):
    assert "\x1b[" not in patchq("list", cwd=ws).out                                  # piped, auto
    assert "\x1b[" in patchq("list", "--color", "always", cwd=ws).out
    assert "\x1b[" not in patchq("--color", "never", "list", cwd=ws).out


def test_help_lines_are_whole_and_name_the_shared_options(patchq):
    res = patchq("--help")
    commands = res.out.split("Commands:", 1)[1]
    assert res.code == 0 and "..." not in commands and "a stack's profile fits them." in " ".join(commands.split())
    sub = patchq("apply", "--help")
    for option in ("--json", "--quiet", "--verbose", "--color"):
        assert option in sub.out


HEAVY = ("patchq.workspace", "patchq.apply", "patchq.model", "ruamel", "rich", "urllib.request", "patchq.build",
         "patchq.overlay", "yaml")


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["apply", "--help"]])
def test_help_and_version_do_not_import_the_engine(args, tmp_path):
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "patchq", *args], capture_output=True,
                          text=True, cwd=tmp_path)
    assert proc.returncode == 0
    imported = {m.group(1) for m in re.finditer(r"\|\s+([\w.]+)\s*$", proc.stderr, re.MULTILINE)}
    assert "click" in imported and not {m for m in imported if m.split(".")[0] in HEAVY or m in HEAVY}


def test_completion_offers_stacks_ids_and_upstreams_without_the_engine(ws):
    def complete(words: str) -> list[str]:
        cword = len(words.split()) - (not words.endswith(" "))
        env = {"_PATCHQ_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
        import os
        proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "patchq"], capture_output=True, text=True,
                              cwd=ws, env={**os.environ, **env})
        assert proc.returncode == 0, proc.stderr
        assert "ruamel" not in proc.stderr and "patchq.workspace" not in proc.stderr
        return [line.split(",", 1)[1] for line in proc.stdout.splitlines()]
    assert complete("patchq apply ") == ["s"]
    assert complete("patchq show o") == ["one"]
    assert complete("patchq list -u ") == ["vllm"]
    assert complete("patchq flags ") == ["s", "one", "clash"]


# ---- progress ------------------------------------------------------------------------------------------------------

class _Tty(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_download_progress_shows_bytes_and_speed():
    from patchq.progress import Terminal
    screen = _Tty(True)
    reporter = Terminal(screen, after=600)
    with reporter.transfer("downloading vllm-0.20.1.tar.gz", 4 * 1024 * 1024) as bar:
        for _ in range(4):
            bar.drawn = 0.0                       # redraw on every block
            bar.advance(1024 * 1024)
    text = screen.getvalue()
    assert "downloading vllm-0.20.1.tar.gz 100% 4.0 MiB / 4.0 MiB" in text and "/s" in text
    assert text.rstrip().rsplit("\r\x1b[K", 1)[-1].startswith("downloading vllm-0.20.1.tar.gz: 4.0 MiB in ")
    piped = _Tty(False)
    with Terminal(piped, after=0).transfer("downloading x.tar.gz", 2048) as bar:
        bar.advance(2048)
    assert piped.getvalue().splitlines()[0] == "downloading x.tar.gz (2.0 KiB)"   # one line per phase, no redraws
    assert "\r" not in piped.getvalue()
    quick = _Tty(False)
    with Terminal(quick, after=600).transfer("downloading y.tar.gz", 10) as bar:
        bar.advance(10)
    assert quick.getvalue() == ""                 # piped and fast: nothing


def test_piped_phases_are_one_line_each_and_quiet_silences_them(ws, patchq):
    res = patchq("apply", "s", cwd=ws, env={"PATCHQ_PROGRESS_AFTER": "0"})
    assert res.code == 0 and f"cloning vllm from {ws.parent / 'src' / 'vllm'}" in res.err.splitlines()
    assert "\r" not in res.err
    quiet = patchq("apply", "s", "-q", cwd=ws, env={"PATCHQ_PROGRESS_AFTER": "0"})
    assert quiet.code == 0 and quiet.err == ""


def test_verbose_streams_the_build_log_and_names_it(tmp_path, patchq):
    from patchq.demo import build_demo
    demo = build_demo(tmp_path / "demo")
    res = patchq("apply", "promoted-demo", "-v", cwd=demo, env={"PATCHQ_PROGRESS_AFTER": "0"})
    assert res.code == 0, res.err
    lines = res.err.splitlines()
    at = lines.index("building demo-ggml-cpu, log:")
    log = Path(lines[at + 1].strip())
    assert log.is_file() and log.parent.name == "demo-ggml-cpu"
    streamed = [line[2:] for line in lines[at + 2:] if line.startswith("  ")]
    assert streamed and set(streamed) <= set(log.read_text().splitlines())     # the log's own lines, as they came
