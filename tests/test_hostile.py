"""Every case of the hostile corpus is refused: patchq's own error, a one-line message, nothing written anywhere.

Each case runs twice: in-process through the same function the command uses (the exception must be a PatchqError
subclass, never anything else), then through the real CLI in a subprocess (non-zero exit, exactly one `error:`
line on stderr for the commands that stop on bad input). Around both, every file under the test folder is hashed:
the workspace, the upstream, a sentinel folder beside them and the folder the symlinks point at must be byte for
byte what they were, no file named `pwned` may appear anywhere, and the absolute escape folder must not exist.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path

import pytest

from hostile.corpus import BASE_FILES, BUNDLE_LIMIT, ESCAPE_DIR, PIN_A, Case, all_cases, patch_file
from patchq.errors import BadInput, PatchqError
from patchq.git import Repo

CASES = all_cases()
FINE_DIFF = (b"diff --git a/README.md b/README.md\nindex 1111111..2222222 100644\n--- a/README.md\n"
             b"+++ b/README.md\n@@ -1 +1 @@\n-demo\n+fine\n")


def snapshot(root: Path) -> dict[str, tuple]:
    """Every file, symlink and folder under `root`: content hash and mode, or link target."""
    out: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            path = Path(folder) / name
            rel = str(path.relative_to(root))
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                if any(path.iterdir()):           # empty folders (a lock's .patchq/) are not state
                    out[rel] = ("dir",)
            else:
                out[rel] = ("file", stat.S_IMODE(st.st_mode), hashlib.sha256(path.read_bytes()).hexdigest())
    return out


def make_upstream(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "upstream"
    repo = Repo.init(path)
    for rel, text in BASE_FILES.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text)
    (path / "run.sh").chmod(0o755)
    os.symlink(tmp_path / "sentinel", path / "escape")
    repo.run("add", "-A")
    repo.run("commit", "-q", "-m", "base")
    return path, repo.out("rev-parse", "HEAD")


def write_workspace(tmp_path: Path, case: Case) -> tuple[Path, list[str]]:
    """The workspace a case is tried on, and the CLI arguments that read the hostile input."""
    upstream, sha = make_upstream(tmp_path)
    ws = tmp_path / "ws"
    queue = ws / "queues" / "up"
    queue.mkdir(parents=True)
    lock = (f"version: 1\nupstreams:\n  up:\n    url: {upstream}\n    pin: {sha}\n"
            "stacks:\n  s:\n    upstreams: [up]\n").encode()
    patches = [patch_file(FINE_DIFF, pid="fine")]
    if case.kind in ("patch", "queue"):
        patches = list(case.data)
    for number, data in enumerate(patches, 1):
        (queue / f"{number:04d}-p{number}.patch").write_bytes(data)
    series = b"patches:\n" + b"".join(f"  - id: p{n}\n    file: {n:04d}-p{n}.patch\n".encode()
                                      for n in range(1, len(patches) + 1))
    args = ["-w", str(ws), "apply", "s"]
    if case.kind == "lock":
        lock = case.data[0].replace(b"UPSTREAM_URL", str(upstream).encode()).replace(PIN_A.encode(), sha.encode())
    elif case.kind in ("series", "series-link"):
        (queue / "0001-fine.patch").write_bytes(patch_file(FINE_DIFF, pid="fine"))
        series = case.data[0]
        if case.kind == "series-link":
            (tmp_path / "outside.patch").write_bytes(patch_file(FINE_DIFF, pid="fine"))
            os.symlink(tmp_path / "outside.patch", queue / "0002-link.patch")
    elif case.kind == "archive":
        archive = tmp_path / "incoming" / case.file_name
        archive.parent.mkdir()
        archive.write_bytes(case.data[0])
        digest = hashlib.sha256(case.data[0]).hexdigest()
        lock = (f"version: 1\nupstreams:\n  up:\n    url: {tmp_path / 'unreachable.git'}\n    pin: {PIN_A}\n"
                f"    archive:\n      sha256: {digest}\n      url: {archive}\nstacks:\n  s:\n    upstreams: [up]\n"
                ).encode()
    elif case.kind == "bundle":
        bundle = tmp_path / "incoming" / case.file_name
        bundle.parent.mkdir()
        bundle.write_bytes(case.data[0])
        args = ["-w", str(ws), "--json", "import", str(bundle), "-u", "up", "--max-size", str(BUNDLE_LIMIT)]
    (ws / "pins.lock").write_bytes(lock)
    (queue / "series.yaml").write_bytes(series)
    if case.kind in ("queue-link", "queues-link"):      # the folder lives elsewhere, reached through a symlink
        moved = queue if case.kind == "queue-link" else ws / "queues"
        elsewhere = tmp_path / "elsewhere" / moved.name
        elsewhere.parent.mkdir()
        moved.rename(elsewhere)
        os.symlink(elsewhere, moved)
    elif case.kind == "state-link":
        (tmp_path / "elsewhere").mkdir()
        os.symlink(tmp_path / "elsewhere", ws / ".patchq")
    return ws, args


def run_in_process(ws: Path, case: Case, tmp_path: Path) -> PatchqError:
    from patchq.apply import apply_stack
    from patchq.bundle import read_bundle
    from patchq.workspace import load_workspace
    with pytest.raises(PatchqError) as caught:
        if case.kind == "bundle":
            read_bundle(tmp_path / "incoming" / case.file_name, limit=BUNDLE_LIMIT)
        else:
            apply_stack(load_workspace(ws), "s")
    return caught.value


def assert_nothing_escaped(tmp_path: Path) -> None:
    assert not os.path.lexists(ESCAPE_DIR), f"{ESCAPE_DIR} was created"
    assert not list(tmp_path.rglob("pwned*")), "a file written by a hostile input appeared"
    assert list((tmp_path / "sentinel").iterdir()) == [tmp_path / "sentinel" / "keep"]


@pytest.fixture
def sentinel(tmp_path):
    (tmp_path / "sentinel").mkdir()
    (tmp_path / "sentinel" / "keep").write_text("untouched\n")
    assert not os.path.lexists(ESCAPE_DIR), f"{ESCAPE_DIR} exists before the test: remove it"


def test_corpus_is_large_and_varied():
    kinds = {c.kind for c in CASES}
    assert len(CASES) >= 150
    assert {"patch", "queue", "bundle", "lock", "series", "series-link", "archive"} <= kinds


SUBPROCESS_SAMPLE = {c.name for i, c in enumerate(CASES) if i % 6 == 0}


def run_cli_in_process(args: list[str], capsys) -> tuple[int, str, str]:
    """The real CLI entry point (`patchq.cli.main`) in this process: exit code, stdout, stderr."""
    from patchq.cli import main
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(args)
    captured = capsys.readouterr()
    return exited.value.code, captured.out, captured.err


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input_is_refused(case: Case, tmp_path: Path, sentinel, patchq, capsys):
    ws, args = write_workspace(tmp_path, case)
    before = snapshot(tmp_path)

    error = run_in_process(ws, case, tmp_path)
    assert isinstance(error, BadInput), f"{type(error).__name__}: {error}"
    assert re.search(case.expect, str(error), re.I), str(error)

    runs = [run_cli_in_process(args, capsys)]
    if case.name in SUBPROCESS_SAMPLE:
        result = patchq(*args)
        runs.append((result.code, result.out, result.err))
    for code, out, err in runs:
        assert code != 0
        assert "Traceback" not in err and "internal error" not in err
        if case.kind == "bundle":
            # import accounts for every input: the refused bundle is named in its report, with the reason
            assert code in (1, 2)
            assert re.search(case.expect, out + err, re.I), out + err
        else:
            assert code == 2, err
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), err
            assert re.search(case.expect, lines[0], re.I), lines[0]

    assert_nothing_escaped(tmp_path)
    assert snapshot(tmp_path) == before
