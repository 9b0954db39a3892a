"""Packaging: the license is stated (SPDX) and shipped, package-data names nothing missing, the sdist carries what
the test suite needs, and the cache folder follows the platform's rules (XDG_CACHE_HOME) unless PATCHQ_CACHE."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    """pyproject.toml as data: tomllib from Python 3.11, setuptools' own reader on 3.10 (no test is skipped)."""
    try:
        import tomllib
    except ImportError:
        from setuptools.config.pyprojecttoml import load_file
        return load_file(REPO / "pyproject.toml")
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_license_is_an_spdx_string_and_its_file_exists():
    meta = _pyproject()
    assert meta["project"]["license"] == "Apache-2.0"
    for name in meta["project"]["license-files"]:
        assert "Apache License" in (REPO / name).read_text()
    data = meta.get("tool", {}).get("setuptools", {}).get("package-data", {})
    for package, patterns in data.items():
        for pattern in patterns:
            assert list((REPO / package).glob(pattern)), f"package-data {package}/{pattern} names no file"
    deps = " ".join(meta["project"]["dependencies"])
    assert "platformdirs" in deps and "packaging" in deps


_NEVER_COPIED = shutil.ignore_patterns(".git", "__pycache__", ".patchq", "*.egg-info", ".hypothesis", ".pytest_cache")


def _ignore_outputs(folder: str, names: list[str]) -> set[str]:
    """Caches anywhere, and build outputs only at the top (patchq/build/ is a package, not an output)."""
    top = {"build", "dist"} & set(names) if Path(folder) == REPO else set()
    return set(_NEVER_COPIED(folder, names)) | top


def test_sdist_carries_the_tests_and_their_data(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=_ignore_outputs)
    out = tmp_path / "dist"
    proc = subprocess.run([sys.executable, "-c", f"from setuptools import build_meta as b; "
                           f"print(b.build_sdist({str(out)!r}))"], cwd=src, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    sdist = out / proc.stdout.strip().splitlines()[-1]
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
        pkg_info = tar.extractfile(next(m for m in tar.getmembers() if m.name.endswith("/PKG-INFO"))).read().decode()
    wanted = {"LICENSE", "README.md", "pins.lock", "tests/conftest.py", "tests/procs.py", "tests/hostile/corpus.py",
              "queues/vllm/series.yaml", "kernels", "docs/design.md", "benchmarks", "patchq/cli.py",
              "patchq/build/recipe.py"}
    tracked = {str(p.relative_to(REPO)) for p in (REPO / "tests").rglob("*.py")}
    missing = {w for w in wanted | tracked if not any(n == w or n.startswith(w + "/") for n in names)}
    assert not missing, missing
    assert "License-Expression: Apache-2.0" in pkg_info
    assert not [n for n in names if "__pycache__" in n]


def _cache_root(env: dict[str, str]) -> str:
    import os
    clean = {k: v for k, v in os.environ.items() if k not in ("PATCHQ_CACHE", "XDG_CACHE_HOME")}
    proc = subprocess.run([sys.executable, "-c", "from patchq.sources import cache_root; print(cache_root())"],
                          capture_output=True, text=True, env={**clean, **env}, check=True)
    return proc.stdout.strip()


def test_cache_folder_follows_xdg_unless_patchq_cache_says(tmp_path):
    assert _cache_root({"XDG_CACHE_HOME": str(tmp_path / "xdg")}) == str(tmp_path / "xdg" / "patchq")
    assert _cache_root({"XDG_CACHE_HOME": str(tmp_path / "xdg"), "PATCHQ_CACHE": str(tmp_path / "mine")}) == \
        str(tmp_path / "mine")
    assert _cache_root({"HOME": str(tmp_path)}) == str(tmp_path / ".cache" / "patchq")


def test_versions_compare_as_pep440():
    from patchq.overlay import local_version, version_matches
    assert version_matches("0.20.0", "0.20") and version_matches("0.20", "0.20.0")
    assert version_matches("0.11.0+xpu", "0.11.0") and not version_matches("0.11.0", "0.11.0+xpu")
    assert version_matches("0.20.1+pq.0123456789ab", "0.20.1") and not version_matches("0.20.1", "0.20")
    assert local_version("0.20.1", "pq.abc") == "0.20.1+pq.abc"
    assert local_version("0.11.0+xpu", "pq.abc") == "0.11.0+xpu.pq.abc"
