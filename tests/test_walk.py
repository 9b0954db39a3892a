"""Every command of the README, run as a user runs it: in a pseudo-terminal 80 and 160 columns wide, and piped.

Whatever the width, no id, flag, path or suggested command may come out cut: a word that is a strict prefix of
a known id or flag, a path (under the test's folder) that does not exist, an ellipsis, or a quoted command of a
`next:` line that is not also printed whole on a line of its own, all fail the walk.
"""

from __future__ import annotations

import fcntl
import os
import re
import shlex
import struct
import subprocess
import sys
import termios
import zipfile
from pathlib import Path

import pytest

from patchq.report import commands_in

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
MODES = ["pty80", "pty160", "piped"]


def run_in(mode: str, args: list[str], cwd: Path) -> tuple[int, str]:
    """stdout and stderr together, as the user sees them (terminal escapes and redrawn lines resolved)."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR", "PATCHQ_WIDTH")}
    argv = [sys.executable, "-m", "patchq", *args]
    if mode == "piped":
        proc = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, check=False)
        return proc.returncode, proc.stdout.decode()
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, int(mode[3:]), 0, 0))
    proc = subprocess.Popen(argv, cwd=cwd, env={**env, "TERM": "xterm"}, stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    code = proc.wait()
    os.close(master)
    text = ANSI.sub("", b"".join(chunks).decode("utf-8", "replace")).replace("\r\n", "\n")
    return code, "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


def known_words(root: Path) -> set[str]:
    """Every patch id (bare and upstream:id), flag, stack and upstream name of the workspace."""
    from patchq.workspace import load_workspace
    ws = load_workspace(root)
    words = set(ws.stacks) | set(ws.upstreams)
    for name in ws.upstreams:
        for entry in ws.queue(name).entries:
            words |= {entry.id, f"{name}:{entry.id}", *entry.flags}
    for stack in ws.stacks.values():
        words |= set(stack.profile)
    return words


GIT_PROGRESS = re.compile(r"^(Cloning into|remote:|Receiving objects|Resolving deltas|From |done\.)")


def assert_nothing_cut(out: str, words: set[str], base: Path, label: str) -> None:
    """No ellipsis, no cut id, flag or path, and every suggested command whole on a line (git's own progress
    lines, passed through on a terminal, are git's: not checked)."""
    ours = "\n".join(line for line in out.splitlines() if not GIT_PROGRESS.match(line.strip()))
    assert "…" not in ours, f"{label}: ellipsis\n{out}"
    for raw in re.split(r"[\s,;()'\"=]+", ours):
        word = raw.rstrip(".:")
        if not word:
            continue
        looks_cut = ("_" in word or "-" in word) and len(word) >= 4      # a fragment of an id or a flag
        if looks_cut and word not in words and any(w.startswith(word) for w in words):
            raise AssertionError(f"{label}: {word!r} is a cut id or flag\n{out}")
        if word.startswith(str(base)):
            path = Path(word.split("@", 1)[0])
            assert path.exists() or path.parent.exists() and not any(
                p.name.startswith(path.name) and p.name != path.name for p in path.parent.iterdir()), \
                f"{label}: {word!r} is a cut path\n{out}"
    lines = {line.strip() for line in out.splitlines()}
    for line in out.splitlines():
        if line.startswith("next:"):
            for command in commands_in(line):
                assert command in lines, f"{label}: {command!r} is not printed whole on its own line\n{out}"


def _site_packages(demo: Path, site: Path) -> None:
    """An installed copy of the demo vllm at its pin (files and a dist-info), for overlay."""
    from patchq.git import Repo
    pin = next(line.split()[1] for line in (demo / "pins.lock").read_text().splitlines()
               if line.strip().startswith("pin:"))
    repo = Repo(demo / "upstreams" / "vllm.git")
    for path in repo.ls_tree_paths(pin):
        if path.startswith("vllm/"):
            (site / path).parent.mkdir(parents=True, exist_ok=True)
            (site / path).write_bytes(repo.read_blob(pin, path))
    info = site / "vllm-0.20.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: vllm\nVersion: 0.20.1\n")
    (info / "RECORD").write_text("".join(f"{p.relative_to(site)},,\n" for p in sorted(site.rglob("*.py"))))


@pytest.mark.parametrize("mode", MODES)
def test_readme_commands_never_cut_ids_flags_paths_or_commands(mode, tmp_path):
    base = tmp_path
    demo = base / "demo"
    steps: list[tuple[list[str], Path, tuple[int, ...]]] = []

    def walk(args: str, cwd: Path = demo, codes: tuple[int, ...] = (0,)) -> str:
        argv = shlex.split(args)
        code, out = run_in(mode, argv, cwd)
        assert code in codes, f"{mode}: patchq {args} exited {code}\n{out}"
        steps.append((argv, cwd, codes))
        assert_nothing_cut(out, words, base, f"{mode}: patchq {args}")
        return out

    words: set[str] = set()
    out = walk(f"demo {demo}", cwd=base)
    assert "  patchq flags promoted-demo" in out.splitlines()
    words = known_words(demo)
    walk(f"init {base / 'empty'}", cwd=base)
    walk("list")
    walk("list --stack promoted-demo --status promoted")
    walk("show vllm:moe-ws-dispatch")
    walk("apply promoted-demo --check --with negative-archived:mtp-spec-decode", codes=(1,))
    walk("apply promoted-demo --keep-going --with diagnostic:decode-timing")
    walk(f"apply promoted-demo -u vllm --into {base / 'fresh'}")
    walk("lock promoted-demo")
    walk("apply promoted-demo --verify")
    checkout = demo / ".patchq" / "checkouts" / "promoted-demo" / "vllm"
    (checkout / "vllm" / "envs.py").write_text((checkout / "vllm" / "envs.py").read_text() + "# walk\n")
    walk(f"new walk-note -u vllm --from {checkout} --title 'A note the walk adds' --flag VLLM_WALK_NOTE")
    words |= {"walk-note", "vllm:walk-note", "VLLM_WALK_NOTE"}
    walk("apply promoted-demo --force")
    walk(f"refresh walk-note --from {checkout}")
    walk("edit walk-note --why 'The walk edits its note' --result '+0.0 tok/s'")
    walk("status")
    walk("status promoted-demo")
    walk("sync promoted-demo --dry-run", codes=(0, 1))
    walk("mark walk-note diagnostic")
    walk("upstream list")
    empty = base / "empty"
    walk(f"upstream add extra {demo / 'upstreams' / 'llama-cpp.git'} --pin main", cwd=empty)
    walk("stack add walk-stack -u extra", cwd=empty)
    walk("stack set walk-stack --include promoted", cwd=empty)
    walk("stack list", cwd=empty)
    words |= {"extra", "walk-stack"}
    walk("flags promoted-demo")
    walk("flags")
    walk("flags moe-ws-dispatch")
    walk(f"export promoted-demo -o {base / 'bundles'}", codes=(1,))      # the 3-way patch cannot be exported
    walk(f"export promoted-demo -u llama-cpp -o {base / 'bundles'}")
    walk(f"export --check {base / 'bundles'}")
    walk(f"import {base / 'bundles'} --dry-run", codes=(0, 1))
    walk("build promoted-demo")
    site = base / "site-packages"
    _site_packages(demo, site)
    walk(f"overlay promoted-demo --site-packages {site}")
    walk(f"overlay --status --site-packages {site}")
    walk(f"overlay --revert --site-packages {site}")
    (site / "vllm" / "envs.py").write_text((site / "vllm" / "envs.py").read_text() + "# edited in place\n")
    walk(f"capture vllm --from {site / 'vllm'} --decompose --dry-run", codes=(0, 1))
    upstream_wheel = base / "vllm-0.20.1-py3-none-any.whl"
    with zipfile.ZipFile(upstream_wheel, "w") as zf:
        for path in sorted(site.rglob("*")):
            if path.is_file():
                zf.write(path, str(path.relative_to(site)))
    out = walk(f"wheel promoted-demo -u vllm --wheel {upstream_wheel} -o {base / 'wheels'}")
    assert re.search(r"wheel 0\.20\.1\+pq\.[0-9a-f]{12} ", out)
    walk("trial measured-demo --with argmax-sampling --repeats 2", codes=(0, 1))
    walk("results")
    walk("rebase --onto vllm@latest promoted-demo --dry-run", codes=(0, 1))
    walk("pin vllm@latest")
    walk("check")
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    in_readme = set(re.findall(r"`patchq ([a-z][a-z-]*)", readme))
    assert in_readme and in_readme <= {argv[0] for argv, _, _ in steps}, in_readme - {a[0] for a, _, _ in steps}
