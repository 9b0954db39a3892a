"""The repository is itself a workspace pinning the real upstreams; its example queues apply to real release sources.

The offline tests check that the root workspace loads and is consistent. The network tests (deselected by default;
run with `-m network`) fetch the pinned release sdists from the package registry once into a stable cache
(`$PATCHQ_TEST_CACHE`, default `~/.cache/patchq-test`) and apply the queues through the archive path, since git
hosting is not reachable from the test machines.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import result_of
from patchq.apply import apply_stack
from patchq.check import check_workspace
from patchq.git import Repo
from patchq.model import FULL_SHA, OutcomeKind, Status
from patchq.patchfile import read_patch_file
from patchq.workspace import load_workspace

REPO = Path(__file__).resolve().parents[1]


def test_root_workspace_loads_with_full_pins_and_all_statuses():
    ws = load_workspace(REPO)
    assert set(ws.upstreams) == {"vllm", "llm-scaler", "llama-cpp"}
    for upstream in ws.upstreams.values():
        assert FULL_SHA.match(upstream.pin), upstream.name
        assert upstream.url.startswith("https://github.com/")
    assert ws.upstream("vllm").archive.pypi == "vllm==0.28.0"
    assert ws.upstream("llama-cpp").archive.subdir == "vendor/llama.cpp"
    for name in ws.upstreams:
        statuses = {e.status for e in ws.queue(name).entries}
        assert statuses == set(Status), name
    assert ws.stack("promoted-example").upstreams == ("vllm", "llm-scaler", "llama-cpp")


def test_root_workspace_check_is_clean():
    ws = load_workspace(REPO)
    assert check_workspace(ws, flags=False) == []


def test_every_example_patch_is_env_gated_by_its_declared_flags():
    ws = load_workspace(REPO)
    gates = {"vllm": 'os.environ.get("', "llm-scaler": 'std::getenv("', "llama-cpp": 'getenv("'}
    for name, queue in ws.queues.items():
        for entry in queue.entries:
            patch = read_patch_file(ws.patch_path(entry).read_bytes(), source=entry.file)
            added = b"\n".join(line for f in patch.files for h in f.hunks for line in h.lines
                               if line.startswith(b"+")).decode()
            assert entry.flags, entry.ref
            for flag in entry.flags:
                assert f'{gates[name]}{flag}"' in added, (entry.ref, flag)


def test_root_workspace_through_the_cli(patchq):
    listed = patchq("--json", "--workspace", str(REPO), "list", "--status", "promoted")
    assert listed.code == 0, listed.err
    assert {e["upstream"] for e in result_of(listed.out)} == {"vllm", "llm-scaler", "llama-cpp"}
    shown = patchq("--json", "--workspace", str(REPO), "show", "vllm:minimax-m2-router-bf16")
    assert shown.code == 0, shown.err
    assert result_of(shown.out)["patch"]["status"] == "negative-archived"


# ---- network: real release sources through the archive path ------------------------------------------------------

def _stable_cache(monkeypatch) -> Path:
    root = Path(os.environ.get("PATCHQ_TEST_CACHE") or Path.home() / ".cache" / "patchq-test").expanduser()
    cache = root / "patchq-cache"
    monkeypatch.setenv("PATCHQ_CACHE", str(cache))
    return cache


@pytest.mark.network
def test_vllm_queue_applies_to_the_vllm_release_sdist(tmp_path, monkeypatch):
    cache = _stable_cache(monkeypatch)
    ws = load_workspace(REPO)
    report = apply_stack(ws, "promoted-example", only=("vllm",), into=tmp_path / "co", keep_going=True,
                         extra=("negative-archived:minimax-m2-router-bf16", "diagnostic:minimax-m2-moe-trace"))
    (up,) = report.upstreams
    assert [(o.patch_id, o.kind) for o in up.outcomes] == [
        ("minimax-m2-moe-contiguous", OutcomeKind.CLEAN),
        ("xpu-arc-pro-as-datacenter", OutcomeKind.CLEAN),
        ("minimax-m2-router-bf16", OutcomeKind.CLEAN),
        ("minimax-m2-moe-trace", OutcomeKind.OFFSET),      # written without the rejected patch under it
    ]
    assert report.ok
    assert any("vllm==0.28.0" in step and "out of reach" in step for step in report.next_steps)
    assert list((cache / "archives" / ws.upstream("vllm").archive.sha256).glob("vllm-0.28.0.tar.gz"))
    checkout = Repo(up.checkout)
    assert checkout.status_porcelain() == []
    subjects = checkout.out("log", "--format=%s", "-5").splitlines()
    assert subjects[0].startswith("Diagnostic: print the MoE input shape")
    assert subjects[4].startswith("vllm from archive sha256:")
    model = (checkout.path / "vllm/model_executor/models/minimax_m2.py").read_text()
    assert 'os.environ.get("VLLM_MINIMAX_M2_MOE_CONTIGUOUS", "0") == "1"' in model
    assert "class MiniMaxM2MoE(nn.Module):" in model
    assert (checkout.path / "vllm/_version.py").read_text().count("g2cf0a6915") == 1


@pytest.mark.network
def test_llama_cpp_queue_applies_to_the_vendored_release_tree(tmp_path, monkeypatch):
    _stable_cache(monkeypatch)
    ws = load_workspace(REPO)
    report = apply_stack(ws, "promoted-example", only=("llama-cpp",), check_only=True, keep_going=True,
                         extra=("negative-archived:sycl-no-mmap", "diagnostic:sycl-reg-trace"))
    kinds = {o.patch_id: o.kind for o in report.upstreams[0].outcomes}
    assert kinds == {"sycl-disable-events": OutcomeKind.CLEAN, "sycl-no-mmap": OutcomeKind.CLEAN,
                     "sycl-reg-trace": OutcomeKind.CLEAN}


@pytest.mark.network
def test_overlay_onto_the_real_vllm_release_wheel_and_back(tmp_path, monkeypatch):
    """The pinned vLLM release wheel installed by pip (--no-deps) into a venv kept in the cache; the example
    stack's Python-only vllm patches overlaid onto it through the CLI: RECORD holds the new hashes, `pip show`
    lists the mark, and --revert restores every byte of site-packages."""
    import base64
    import csv
    import hashlib
    import subprocess
    import sys
    cache = _stable_cache(monkeypatch)
    ws = load_workspace(REPO)
    version = ws.upstream("vllm").archive.pypi.split("==")[1]
    venv = cache / "venvs" / f"vllm-{version}"
    python = venv / "bin" / "python"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    if not (venv / "installed").exists():
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                        f"vllm=={version}"], check=True, env=env)
        (venv / "installed").write_text(version + "\n")
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())

    def hashes() -> dict[str, str]:
        return {str(p.relative_to(site)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(site.rglob("*")) if p.is_file()}

    # a workspace copy keeps the overlay's backup out of the repository
    import shutil
    work = tmp_path / "ws"
    shutil.copytree(REPO, work, ignore=shutil.ignore_patterns(".git", ".patchq", "__pycache__", "*.egg-info"))
    before = hashes()
    done = subprocess.run([sys.executable, "-m", "patchq", "--json", "overlay", "promoted-example", "-u", "vllm",
                           "--python", str(python)], capture_output=True, text=True, cwd=work,
                          env={**env, "PATCHQ_CACHE": str(cache)})
    assert done.returncode == 0, done.stderr
    applied = result_of(done.stdout)["result"]
    info = site / f"vllm-{version}.dist-info"
    rows = {r[0]: r for r in csv.reader((info / "RECORD").read_text().splitlines()) if r}
    for rel in applied["modified"]:
        data = (site / rel).read_bytes()
        digest = "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        assert rows[rel][1:] == [digest, str(len(data))]
    shown = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "show", "-f", "vllm"],
                           capture_output=True, text=True, env=env)
    assert f"Version: {version}" in shown.stdout and "patchq.json" in shown.stdout
    undone = subprocess.run([sys.executable, "-m", "patchq", "overlay", "--revert", "--python", str(python)],
                            capture_output=True, text=True, cwd=work, env={**env, "PATCHQ_CACHE": str(cache)})
    assert undone.returncode == 0, undone.stderr
    assert hashes() == before
