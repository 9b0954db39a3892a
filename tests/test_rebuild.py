"""Stack-level builds, overlay and wheel through the CLI, on the demo workspace (real gcc, make, git)."""

from __future__ import annotations

import base64
import hashlib
import json
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
    with zipfile.ZipFile(report["wheel"]) as zf:
        patched = zf.read("vllm/model_executor/models/minimax_m2.py")
        record = zf.read("vllm-0.20.1.dist-info/RECORD").decode()
    assert b"VLLM_MINIMAX_FUSED_QK_NORM" in patched
    digest = base64.urlsafe_b64encode(hashlib.sha256(patched).digest()).rstrip(b"=").decode()
    assert f"vllm/model_executor/models/minimax_m2.py,sha256={digest},{len(patched)}" in record
