"""Stack-level builds, overlay and wheel through the CLI, on the demo workspace (real gcc, make, git)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import result_of
from patchq.demo import build_demo
from patchq.git import Repo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return build_demo(tmp_path_factory.mktemp("d") / "demo")


def _tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _installed_vllm(demo: Path, site: Path, version: str = "0.20.1") -> None:
    """What pip leaves in site-packages for the demo vllm at its pin: the package files and a dist-info."""
    pin = next(line.split()[1] for line in (demo / "pins.lock").read_text().splitlines()
               if line.strip().startswith("pin:"))
    repo = Repo(demo / "upstreams" / "vllm.git")
    for path in repo.ls_tree_paths(pin):
        if path.startswith("vllm/"):
            target = site / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(repo.read_blob(pin, path))
    info = site / f"vllm-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: vllm\nVersion: {version}\n")
    rows = [f"{p.relative_to(site)},," for p in sorted(site.rglob("*.py"))]
    (info / "RECORD").write_text("\n".join(rows + [f"vllm-{version}.dist-info/METADATA,,",
                                                  f"vllm-{version}.dist-info/RECORD,,"]) + "\n")


def test_apply_builds_the_affected_target_then_reuses_the_cache(demo, patchq):
    first = patchq("--json", "apply", "promoted-demo", cwd=demo)
    assert first.code == 0, first.err
    builds = {b["target"]: b["kind"] for b in result_of(first.out)["build"]["builds"]}
    assert builds == {"demo-ggml-cpu": "built"}          # only the C library: the vllm patches are Python-only
    again = patchq("--json", "build", "promoted-demo", cwd=demo)
    assert again.code == 0, again.err
    assert {b["target"]: b["kind"] for b in result_of(again.out)["builds"]} == {"demo-ggml-cpu": "cached"}
    dry = patchq("--json", "build", "promoted-demo", "--target", "demo-vllm-ext", "--dry-run", cwd=demo)
    assert [b["kind"] for b in result_of(dry.out)["builds"]] == ["would-build"]
    unknown = patchq("build", "promoted-demo", "--target", "nope", cwd=demo)
    assert unknown.code == 2 and "unknown build target" in unknown.err


def test_overlay_then_revert_is_byte_exact(demo, patchq, tmp_path):
    site = tmp_path / "site-packages"
    _installed_vllm(demo, site)
    before = _tree_hashes(site)
    done = patchq("overlay", "promoted-demo", "--site-packages", str(site), cwd=demo)
    assert done.code == 0, done.err
    text = (site / "vllm/model_executor/models/minimax_m2.py").read_text()
    assert 'os.environ.get("VLLM_MINIMAX_FUSED_QK_NORM", "0") == "1"' in text
    assert _tree_hashes(site) != before
    undone = patchq("overlay", "--revert", "--site-packages", str(site), cwd=demo)
    assert undone.code == 0, undone.err
    assert "verified" in undone.out
    assert _tree_hashes(site) == before


def test_overlay_refuses_another_installed_version(demo, patchq, tmp_path):
    site = tmp_path / "site-packages"
    _installed_vllm(demo, site, version="0.19.0")
    before = _tree_hashes(site)
    refused = patchq("overlay", "promoted-demo", "--site-packages", str(site), cwd=demo)
    assert refused.code == 2
    assert "0.19.0" in refused.err and "0.20.1" in refused.err
    assert _tree_hashes(site) == before


def test_wheel_for_python_only_changes(demo, patchq, tmp_path):
    site = tmp_path / "unpacked"
    _installed_vllm(demo, site)
    wheel = tmp_path / "vllm-0.20.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path in sorted(site.rglob("*")):
            if path.is_file():
                zf.write(path, str(path.relative_to(site)))
    out = tmp_path / "out"
    made = patchq("--json", "wheel", "promoted-demo", "--wheel", str(wheel), "-o", str(out), cwd=demo)
    assert made.code == 0, made.err
    report = result_of(made.out)
    assert "vllm/model_executor/models/minimax_m2.py" in report["replaced"]
    version = report["version"]
    assert re.fullmatch(r"0\.20\.1\+pq\.[0-9a-f]{12}", version), version        # PEP 440 local version
    assert Path(report["wheel"]).name == f"vllm-{version}-py3-none-any.whl"
    with zipfile.ZipFile(report["wheel"]) as zf:
        patched = zf.read("vllm/model_executor/models/minimax_m2.py")
        record = zf.read(f"vllm-{version}.dist-info/RECORD").decode()
        metadata = zf.read(f"vllm-{version}.dist-info/METADATA").decode()
        assert not [n for n in zf.namelist() if n.startswith("vllm-0.20.1.dist-info/")]
    assert f"Version: {version}\n" in metadata
    assert f"vllm-{version}.dist-info/METADATA,sha256=" in record
    assert b"VLLM_MINIMAX_FUSED_QK_NORM" in patched
    digest = base64.urlsafe_b64encode(hashlib.sha256(patched).digest()).rstrip(b"=").decode()
    assert f"vllm/model_executor/models/minimax_m2.py,sha256={digest},{len(patched)}" in record


def _record_rows(dist_info: Path) -> dict[str, tuple[str, str]]:
    import csv
    return {r[0]: (r[1], r[2]) for r in csv.reader((dist_info / "RECORD").read_text().splitlines()) if r}


def _hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def test_overlay_of_a_real_pip_install_of_the_demo_through_python(demo, patchq, tmp_path):
    """pip installs the demo's vllm (every subpackage) into a venv; overlay --python patches it, RECORD follows,
    patchq.json marks it, --status reports it, and --revert restores every byte."""
    pin = next(line.split()[1] for line in (demo / "pins.lock").read_text().splitlines()
               if line.strip().startswith("pin:"))
    src = tmp_path / "src"
    subprocess.run(["git", "clone", "-q", str(demo / "upstreams" / "vllm.git"), str(src)], check=True)
    Repo(src).run("checkout", "-q", "--detach", pin)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "-w", str(tmp_path / "dist"), str(src)], check=True, env=env, capture_output=True)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    wheel = next((tmp_path / "dist").glob("vllm-0.20.1-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                    "--no-index", str(wheel)], check=True, env=env, capture_output=True)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    assert (site / "vllm/model_executor/models/minimax_m2.py").is_file()      # subpackages installed too
    before = _tree_hashes(site)

    done = patchq("--json", "overlay", "promoted-demo", "--python", str(python), cwd=demo)
    assert done.code == 0, done.err
    applied = result_of(done.out)["result"]
    assert "vllm/model_executor/models/minimax_m2.py" in applied["modified"] and applied["deleted"] == []
    info = site / "vllm-0.20.1.dist-info"
    rows = _record_rows(info)
    for rel in applied["modified"]:
        data = (site / rel).read_bytes()
        assert rows[rel] == (_hash(data), str(len(data)))                     # RECORD holds the new bytes
    mark = json.loads((info / "patchq.json").read_text())
    assert mark["stack"] == "promoted-demo" and mark["files"]["modified"] == applied["modified"]
    assert rows["vllm-0.20.1.dist-info/patchq.json"][0] == _hash((info / "patchq.json").read_bytes())
    shown = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "show", "-f", "vllm"],
                           capture_output=True, text=True, env=env)
    assert shown.returncode == 0 and "Version: 0.20.1" in shown.stdout and "patchq.json" in shown.stdout

    status = patchq("--json", "overlay", "--status", "--python", str(python), cwd=demo)
    state = result_of(status.out)
    assert status.code == 0 and state["overlaid"] is True and state["drifted"] == [] and state["ok"] is True
    assert state["mark"]["stack"] == "promoted-demo" and state["journal_state"] == "applied"
    human = patchq("overlay", "--status", "--python", str(python), cwd=demo)
    assert "promoted-demo" in human.out and "matches its RECORD hash" in human.out

    undone = patchq("overlay", "--revert", "--python", str(python), cwd=demo)
    assert undone.code == 0, undone.err
    assert _tree_hashes(site) == before
    after = result_of(patchq("--json", "overlay", "--status", "--python", str(python), cwd=demo).out)
    assert after["overlaid"] is False and after["journal_state"] == "reverted"


def test_overlay_needs_exactly_one_place(demo, patchq, tmp_path):
    res = patchq("overlay", "promoted-demo", cwd=demo)
    assert res.code == 2 and "--site-packages DIR or --python" in res.err
