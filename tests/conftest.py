"""Shared fixtures: real git upstreams with history, workspaces with annotated queues, and a CLI runner.

Nothing here is mocked: upstreams are git repositories in tmp_path, patches are diffs git made, and the CLI runs
as a subprocess so exit codes and stderr are what a user sees.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from patchq.git import Repo, run_git
from patchq.model import PatchEntry, Status
from patchq.patchfile import render_patch_file

_TICK = [0]


class Upstream:
    """A real upstream repository with a growing history."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.repo = Repo.init(path)

    def write(self, rel: str, text: str) -> Upstream:
        target = self.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        return self

    def edit(self, rel: str, old: str, new: str) -> Upstream:
        target = self.path / rel
        text = target.read_text()
        assert old in text, f"{old!r} not in {rel}"
        target.write_text(text.replace(old, new, 1))
        return self

    def remove(self, rel: str) -> Upstream:
        (self.path / rel).unlink()
        return self

    def commit(self, message: str) -> str:
        _TICK[0] += 1
        stamp = f"{1_700_000_000 + _TICK[0] * 60} +0000"
        env = {"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}
        self.repo.run("add", "-A", env=env)
        self.repo.run("commit", "-q", "--allow-empty", "-m", message, env=env)
        return self.repo.out("rev-parse", "HEAD")

    def diff(self, base: str, edits: list[tuple[str, str, str]]) -> bytes:
        """A real diff of `edits` made on `base` in a scratch clone; (path, old, new), old '' creates a file."""
        scratch = self.path.parent / f".scratch-{self.path.name}-{_TICK[0]}"
        _TICK[0] += 1
        run_git(["clone", "-q", "--no-checkout", str(self.path), str(scratch)])
        repo = Repo(scratch)
        repo.run("checkout", "-q", "--detach", base)
        for rel, old, new in edits:
            target = scratch / rel
            if old == "" and not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(new)
            elif new is None:
                target.unlink()
            else:
                text = target.read_text()
                assert old in text, f"{old!r} not in {rel} at {base[:8]}"
                target.write_text(text.replace(old, new, 1))
        repo.run("add", "-A")
        out = repo.run("diff", "--cached", "--full-index", "--binary", base).stdout
        import shutil
        shutil.rmtree(scratch)
        return out


@dataclass
class Lab:
    """A workspace under construction: upstreams, queues and stacks, saved as real files."""

    root: Path
    upstreams: dict[str, tuple[Upstream, str]] = field(default_factory=dict)
    queues: dict[str, list[PatchEntry]] = field(default_factory=dict)
    stacks: dict[str, dict] = field(default_factory=dict)

    def upstream(self, name: str, source: Upstream, pin: str) -> Lab:
        self.upstreams[name] = (source, pin)
        self.queues.setdefault(name, [])
        return self

    def patch(self, upstream: str, patch_id: str, diff: bytes, status: Status = Status.PROMOTED,
              **meta) -> PatchEntry:
        number = len(self.queues[upstream]) + 1
        entry = PatchEntry(id=patch_id, upstream=upstream, file=f"{number:04d}-{patch_id}.patch", status=status,
                           title=meta.pop("title", f"Patch {patch_id}"), author="Lab <lab@example.com>",
                           date=meta.pop("date", "2026-05-19"), **meta)
        folder = self.root / "queues" / upstream
        folder.mkdir(parents=True, exist_ok=True)
        (folder / entry.file).write_bytes(render_patch_file(entry, diff))
        self.queues[upstream].append(entry)
        return entry

    def stack(self, name: str, upstreams: list[str], **opts) -> Lab:
        self.stacks[name] = {"upstreams": upstreams, **opts}
        return self

    def save(self) -> Path:
        from ruamel.yaml.comments import CommentedMap, CommentedSeq

        from patchq.workspace import dump_yaml, entry_to_yaml, new_lock_doc
        doc = new_lock_doc()
        for name, (source, pin) in self.upstreams.items():
            node = CommentedMap()
            node["url"] = str(source.path)
            node["pin"] = pin
            doc["upstreams"][name] = node
        for name, opts in self.stacks.items():
            node = CommentedMap()
            node["upstreams"] = list(opts["upstreams"])
            for key in ("include", "extra", "exclude"):
                if key in opts:
                    node[key] = list(opts[key])
            if "patches" in opts:
                node["patches"] = CommentedSeq(opts["patches"])
                node["patches"].fa.set_flow_style()
            for key in ("profile", "pins", "trees", "result"):
                if key in opts:
                    node[key] = dict(opts[key])
            doc["stacks"][name] = node
        (self.root / "pins.lock").write_bytes(dump_yaml(doc))
        for upstream, entries in self.queues.items():
            series = CommentedMap()
            series["patches"] = CommentedSeq([entry_to_yaml(e) for e in entries])
            folder = self.root / "queues" / upstream
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "series.yaml").write_bytes(dump_yaml(series))
        return self.root

    def load(self):
        from patchq.workspace import load_workspace
        return load_workspace(self.save())


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own mirror cache: nothing is read from or written to the user's ~/.cache."""
    monkeypatch.setenv("PATCHQ_CACHE", str(tmp_path_factory.mktemp("cache")))
    # piped progress lines appear only for steps slower than this: timing-dependent, so off unless a test asks
    monkeypatch.setenv("PATCHQ_PROGRESS_AFTER", "600")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Test")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "test@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Test")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "test@example.com")


@pytest.fixture
def make_upstream(tmp_path):
    def make(name: str = "up") -> Upstream:
        return Upstream(tmp_path / "src" / name)
    return make


@pytest.fixture
def lab(tmp_path) -> Lab:
    root = tmp_path / "ws"
    root.mkdir()
    return Lab(root)


MODEL_PY = "".join(f"def layer_{i}(x):\n    return x * {i}\n\n\n" for i in range(40))


@pytest.fixture
def pyupstream(make_upstream) -> tuple[Upstream, str]:
    """An upstream with a 40-function module and a README, one commit; returns (upstream, commit)."""
    up = make_upstream("vllm")
    up.write("vllm/model.py", MODEL_PY).write("README.md", "demo\n")
    return up, up.commit("initial")


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def patchq():
    """Run the real CLI in a subprocess: exit code, stdout and stderr as a user sees them."""
    def run(*args: str, cwd: Path | None = None, env: dict | None = None) -> CliResult:
        full_env = dict(os.environ, COLUMNS="200", **(env or {}))
        proc = subprocess.run([sys.executable, "-m", "patchq", *args], cwd=cwd, capture_output=True, text=True,
                              env=full_env)
        return CliResult(proc.returncode, proc.stdout, proc.stderr)
    return run


def result_of(text: str):
    """The `result` of a `--json` envelope, after checking the envelope's fixed keys."""
    import json
    doc = json.loads(text)
    assert set(doc) == {"version", "command", "ok", "result", "error"}, doc
    assert doc["version"] == 1 and doc["error"] is None, doc
    return doc["result"]
