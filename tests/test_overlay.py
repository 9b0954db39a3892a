"""overlay: a real wheel built by pip, installed by pip, overlaid, reverted byte for byte, and repacked.

The generated package carries its own tiny PEP 517 backend (so `pip wheel --no-build-isolation` needs nothing that
is not installed) and a binary blob standing in for compiled kernels. Patches are real git diffs of its repository.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from patchq.errors import BadInput, NeedsYou
from patchq.git import Repo
from patchq.overlay import overlay_apply, overlay_revert, python_changes_between, repack_wheel

REPO_ROOT = Path(__file__).resolve().parents[1]

BACKEND = '''\
"""A minimal PEP 517 backend: a pure wheel of labpkg/, with METADATA, WHEEL and RECORD."""
import base64, hashlib, os, zipfile

NAME, VERSION = "labpkg", "1.0"


def _digest(data):
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    info = f"{NAME}-{VERSION}.dist-info"
    files = {}
    for folder, dirs, names in sorted(os.walk(NAME)):
        dirs.sort()
        for name in sorted(names):
            if "__pycache__" not in folder:
                path = os.path.join(folder, name)
                with open(path, "rb") as fh:
                    files[path.replace(os.sep, "/")] = fh.read()
    files[f"{info}/METADATA"] = f"Metadata-Version: 2.1\\nName: {NAME}\\nVersion: {VERSION}\\n".encode()
    files[f"{info}/WHEEL"] = (b"Wheel-Version: 1.0\\nGenerator: lab-backend\\nRoot-Is-Purelib: true\\n"
                              b"Tag: py3-none-any\\n")
    record = "".join(f"{p},sha256={_digest(d)},{len(d)}\\n" for p, d in files.items()) + f"{info}/RECORD,,\\n"
    wheel = f"{NAME}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel), "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in files.items():
            zf.writestr(path, data)
        zf.writestr(f"{info}/RECORD", record)
    return wheel
'''

DECODE_PY = '''\
import os


def batch_size():
    return int(os.environ.get("LABPKG_BATCH", "4"))


def fast_path_enabled():
    return os.environ.get("LABPKG_FAST", "0") == "1"
'''

PROBE = ("import labpkg.decode as d, importlib.util as u; "
         "print(d.batch_size(), d.fast_path_enabled(), u.find_spec('labpkg.extra') is not None, "
         "u.find_spec('labpkg.legacy') is not None)")


def pip(*args: str, env: dict | None = None) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args, "--quiet", "--no-input", "--disable-pip-version-check"],
                   check=True, capture_output=True, env=env)


def probe(site: Path, env: dict | None = None) -> str:
    run_env = dict(env or os.environ, PYTHONPATH=str(site))
    run_env.pop("LABPKG_BATCH", None)
    return subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True,
                          env=run_env).stdout.strip()


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file's bytes and mode, __pycache__ included: what "byte-identical" is checked against."""
    return {p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mode)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def labpkg(tmp_path_factory):
    """(source repo, pin, wheel, installed site-packages template), made once for the module."""
    root = tmp_path_factory.mktemp("labpkg")
    src = root / "src"
    (src / "labpkg").mkdir(parents=True)
    (src / "_backend").mkdir()
    (src / "_backend" / "lab_backend.py").write_text(BACKEND)
    (src / "pyproject.toml").write_text('[build-system]\nrequires = []\nbuild-backend = "lab_backend"\n'
                                        'backend-path = ["_backend"]\n')
    (src / "labpkg" / "__init__.py").write_text('VERSION = "1.0"\n')
    (src / "labpkg" / "decode.py").write_text(DECODE_PY)
    (src / "labpkg" / "legacy.py").write_text("OLD = True\n")
    (src / "labpkg" / "kernels.bin").write_bytes(hashlib.sha256(b"seed").digest() * 4096)
    repo = Repo.init(src)
    repo.run("add", "-A")
    repo.run("commit", "-q", "-m", "labpkg 1.0")
    pin = repo.head()
    pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(root / "dist"), str(src))
    wheel = next((root / "dist").glob("labpkg-1.0-*.whl"))
    template = root / "site-template"
    pip("install", "--no-deps", "--no-index", "--target", str(template), str(wheel))
    return repo, pin, wheel, template


@pytest.fixture
def site(labpkg, tmp_path):
    target = tmp_path / "site-packages"
    shutil.copytree(labpkg[3], target)
    return target


def stack_diff(repo: Repo, pin: str, tmp_path: Path, edits: dict[str, str | None]) -> bytes:
    """A patched head on a branch of the package's repository; the Python part of pin..head."""
    scratch = tmp_path / "scratch"
    repo.run("worktree", "add", "-q", "--detach", str(scratch), pin)
    for rel, text in edits.items():
        if text is None:
            (scratch / rel).unlink()
        else:
            (scratch / rel).parent.mkdir(parents=True, exist_ok=True)
            (scratch / rel).write_text(text)
    work = Repo(scratch)
    work.run("add", "-A")
    work.run("commit", "-q", "-m", "stack")
    head = work.head()
    repo.run("worktree", "remove", "--force", str(scratch))
    return python_changes_between(repo, pin, head).diff


BIGGER_BATCH = {"labpkg/decode.py": DECODE_PY.replace('"4"', '"8"'), "labpkg/extra.py": "EXTRA = 1\n"}


# ---- overlay -----------------------------------------------------------------------------------------------------

def test_overlay_then_revert_is_byte_exact(labpkg, site, tmp_path):
    repo, pin, _, _ = labpkg
    diff = stack_diff(repo, pin, tmp_path, BIGGER_BATCH)
    probe(site)                                    # compiled caches exist before, as in a used venv
    before = snapshot(site)
    assert any("__pycache__/decode." in p for p in before)

    (tmp_path / "bk").mkdir()
    (tmp_path / "bk" / "other-tool-state.txt").write_text("not the overlay's\n")
    result = overlay_apply(site, diff, package="labpkg", expected_version="1.0", backup_root=tmp_path / "bk")
    assert (tmp_path / "bk" / "other-tool-state.txt").exists()
    assert result.modified == ("labpkg/decode.py",) and result.created == ("labpkg/extra.py",)
    assert result.compiled == ("labpkg/decode.py", "labpkg/extra.py")
    assert probe(site) == "8 False True True"

    reverted = overlay_revert(site, tmp_path / "bk")
    assert reverted.verified and reverted.deleted == ("labpkg/extra.py",)
    assert snapshot(site) == before
    assert probe(site) == "4 False False True"
    assert json.loads((tmp_path / "bk" / "journal.json").read_text())["state"] == "reverted"


def test_overlay_refuses_another_installed_version(labpkg, site, tmp_path):
    repo, pin, _, _ = labpkg
    diff = stack_diff(repo, pin, tmp_path, BIGGER_BATCH)
    before = snapshot(site)
    with pytest.raises(BadInput) as err:
        overlay_apply(site, diff, package="labpkg", expected_version="1.1", backup_root=tmp_path / "bk")
    assert "installed labpkg is 1.0 but the stack is pinned to 1.1" in str(err.value)
    assert snapshot(site) == before and not (tmp_path / "bk").exists()
    with pytest.raises(BadInput, match="not installed"):
        overlay_apply(site, diff, package="vllm", expected_version="1.0", backup_root=tmp_path / "bk")


def test_overlay_refuses_native_and_foreign_files(labpkg, site, tmp_path):
    native = (b"diff --git a/labpkg/ops.c b/labpkg/ops.c\nnew file mode 100644\n--- /dev/null\n"
              b"+++ b/labpkg/ops.c\n@@ -0,0 +1 @@\n+int x;\n")
    with pytest.raises(BadInput) as err:
        overlay_apply(site, native, package="labpkg", expected_version="1.0", backup_root=tmp_path / "bk")
    assert "Python changes only; labpkg/ops.c needs a build" in str(err.value)
    foreign = (b"diff --git a/setup.py b/setup.py\nnew file mode 100644\n--- /dev/null\n"
               b"+++ b/setup.py\n@@ -0,0 +1 @@\n+x = 1\n")
    with pytest.raises(BadInput, match="setup.py is not part of the installed labpkg"):
        overlay_apply(site, foreign, package="labpkg", expected_version="1.0", backup_root=tmp_path / "bk")


def test_compile_failure_reverts_and_names_the_line(labpkg, site, tmp_path):
    repo, pin, _, _ = labpkg
    broken = DECODE_PY.replace('return os.environ.get("LABPKG_FAST", "0") == "1"', "return (")
    diff = stack_diff(repo, pin, tmp_path, {"labpkg/decode.py": broken, "labpkg/extra.py": "EXTRA = 1\n"})
    before = snapshot(site)
    with pytest.raises(NeedsYou) as err:
        overlay_apply(site, diff, package="labpkg", expected_version="1.0", backup_root=tmp_path / "bk")
    assert err.value.path == "labpkg/decode.py" and err.value.line == 9
    assert "the overlay was reverted" in str(err.value)
    assert snapshot(site) == before
    again = overlay_apply(site, stack_diff(repo, pin, tmp_path, BIGGER_BATCH), package="labpkg",
                          expected_version="1.0", backup_root=tmp_path / "bk")
    assert again.created == ("labpkg/extra.py",)


def test_interrupted_overlay_is_still_reverted(labpkg, site, tmp_path):
    repo, pin, _, _ = labpkg
    diff_file = tmp_path / "stack.diff"
    diff_file.write_bytes(stack_diff(repo, pin, tmp_path, BIGGER_BATCH))
    before = snapshot(site)
    dies_after_applying = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "import patchq.overlay as overlay\n"
        "real_apply = overlay._apply_diff\n"
        "def apply_then_die(*args):\n"
        "    real_apply(*args)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "overlay._apply_diff = apply_then_die\n"
        "overlay.overlay_apply(sys.argv[1], Path(sys.argv[2]).read_bytes(), package='labpkg',\n"
        "                      expected_version='1.0', backup_root=sys.argv[3])\n")
    proc = subprocess.run([sys.executable, "-c", dies_after_applying, str(site), str(diff_file), str(tmp_path / "bk")],
                          env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)), capture_output=True)
    assert proc.returncode == -9
    assert snapshot(site) != before and (site / "labpkg" / "extra.py").exists()
    assert json.loads((tmp_path / "bk" / "journal.json").read_text())["state"] == "applying"
    with pytest.raises(NeedsYou, match="an interrupted overlay of labpkg is recorded here"):
        overlay_apply(site, diff_file.read_bytes(), package="labpkg", expected_version="1.0",
                      backup_root=tmp_path / "bk")

    assert overlay_revert(site, tmp_path / "bk").verified
    assert snapshot(site) == before
    assert probe(site) == "4 False False True"


def test_revert_without_a_journal_is_refused(site, tmp_path):
    with pytest.raises(BadInput, match="no overlay is recorded"):
        overlay_revert(site, tmp_path / "nothing-here")


# ---- wheel repack ------------------------------------------------------------------------------------------------

def record_mismatches(wheel: Path) -> list[str]:
    """Entries whose bytes differ from RECORD's sha256 and size, or that RECORD does not list."""
    with zipfile.ZipFile(wheel) as zf:
        assert zf.testzip() is None
        record_name = next(n for n in zf.namelist() if n.endswith(".dist-info/RECORD"))
        rows = {r[0]: r for r in csv.reader(io.StringIO(zf.read(record_name).decode()))}
        wrong = []
        for name in zf.namelist():
            if name == record_name or name.endswith("/"):
                continue
            data = zf.read(name)
            digest = "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            if rows.get(name, [None, None, None])[1:3] != [digest, str(len(data))]:
                wrong.append(name)
        return wrong + [n for n in rows if n not in zf.namelist()]


def test_python_only_stack_yields_a_working_wheel_without_a_compiler(labpkg, tmp_path):
    repo, pin, wheel, _ = labpkg
    scratch = tmp_path / "scratch"
    repo.run("worktree", "add", "-q", "--detach", str(scratch), pin)
    (scratch / "labpkg" / "decode.py").write_text(DECODE_PY.replace('"0") == "1"', '"1") == "1"'))
    (scratch / "labpkg" / "extra.py").write_text("EXTRA = 1\n")
    (scratch / "labpkg" / "legacy.py").unlink()
    (scratch / "README.md").write_text("not Python: reported, not packed\n")
    work = Repo(scratch)
    work.run("add", "-A")
    work.run("commit", "-q", "-m", "python-only stack")
    changes = python_changes_between(repo, pin, work.head())
    repo.run("worktree", "remove", "--force", str(scratch))
    assert sorted(changes.replacements) == ["labpkg/decode.py", "labpkg/extra.py"]
    assert changes.deletions == ("labpkg/legacy.py",) and changes.other_paths == ("README.md",)

    # Repack and install with no compiler reachable: PATH holds only python, CC/CXX fail if anything calls them.
    bare_bin = tmp_path / "bare-bin"
    bare_bin.mkdir()
    (bare_bin / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')   # keeps a venv a venv
    (bare_bin / "python").chmod(0o755)
    assert shutil.which("gcc", path=str(bare_bin)) is None and shutil.which("cc", path=str(bare_bin)) is None
    no_compiler = {"PATH": str(bare_bin), "CC": "false", "CXX": "false", "HOME": str(tmp_path),
                   "PYTHONPATH": str(REPO_ROOT)}
    payload = tmp_path / "changes.json"
    payload.write_text(json.dumps({"replacements": {k: v.decode() for k, v in changes.replacements.items()},
                                   "deletions": list(changes.deletions)}))
    repack = ("import json, sys\nfrom patchq.overlay import repack_wheel\n"
              "c = json.load(open(sys.argv[2]))\n"
              "print(repack_wheel(sys.argv[1], {k: v.encode() for k, v in c['replacements'].items()}, sys.argv[3],"
              " deletions=c['deletions']))\n")
    out = subprocess.run(["python", "-c", repack, str(wheel), str(payload), str(tmp_path / "out")], env=no_compiler,
                         capture_output=True, text=True, check=True).stdout.strip()
    patched = Path(out)
    assert patched == tmp_path / "out" / wheel.name
    assert record_mismatches(patched) == []
    site = tmp_path / "patched-site"
    subprocess.run(["python", "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target", str(site),
                    str(patched)], env=no_compiler, check=True, capture_output=True)
    assert probe(site, env=no_compiler) == "4 True True False"

    with zipfile.ZipFile(wheel) as old, zipfile.ZipFile(patched) as new:
        assert new.read("labpkg/kernels.bin") == old.read("labpkg/kernels.bin")
        assert new.namelist()[-1].endswith(".dist-info/RECORD")
        assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in new.infolist())
    again = repack_wheel(wheel, changes.replacements, tmp_path / "again", deletions=changes.deletions)
    assert again.read_bytes() == patched.read_bytes()          # deterministic


def test_repack_refuses_impossible_edits(labpkg, tmp_path):
    _, _, wheel, _ = labpkg
    with pytest.raises(BadInput, match="the wheel has no such file"):
        repack_wheel(wheel, {}, tmp_path, deletions=["labpkg/nope.py"])
    with pytest.raises(BadInput, match="is written by patchq"):
        repack_wheel(wheel, {"labpkg-1.0.dist-info/RECORD": b""}, tmp_path)
    with pytest.raises(BadInput, match="not a relative archive path"):
        repack_wheel(wheel, {"../evil.py": b""}, tmp_path)
