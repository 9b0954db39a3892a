"""capture: a live tree (an installed package in a real venv, a plain source tree) back into patches.

The package is a real git tree with its own tiny PEP 517 backend, installed by pip into a venv made by
`python -m venv`, and run once so its folder holds `__pycache__`. Queue patches are git diffs of that tree; the
"lab" applies them to the installed copy with `git apply` and then edits it by hand.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import result_of
from patchq.errors import NeedsYou
from patchq.git import Repo, run_git
from patchq.model import Status

BACKEND = '''\
"""Builds a pure wheel of python/tinypkg (no *.md), plus a generated _version.py, with a hashed RECORD."""
import base64, hashlib, os, zipfile

ROOT = os.path.join("python", "tinypkg")


def _hash(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    files = {}
    for here, dirs, names in os.walk(ROOT):
        dirs.sort()
        for name in sorted(names):
            if name.endswith(".md") or "__pycache__" in here:
                continue
            with open(os.path.join(here, name), "rb") as fh:
                files["tinypkg/" + os.path.relpath(os.path.join(here, name), ROOT).replace(os.sep, "/")] = fh.read()
    files["tinypkg/_version.py"] = b'version = "0.3.1"\\n'
    info = "tinypkg-0.3.1.dist-info"
    files[info + "/METADATA"] = b"Metadata-Version: 2.1\\nName: tinypkg\\nVersion: 0.3.1\\n"
    files[info + "/WHEEL"] = b"Wheel-Version: 1.0\\nGenerator: tiny\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
    record = "".join("%s,%s,%d\\n" % (p, _hash(d), len(d)) for p, d in files.items()) + info + "/RECORD,,\\n"
    name = "tinypkg-0.3.1-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
        zf.writestr(info + "/RECORD", record)
    return name
'''

ENGINE = "".join(f"def step_{i}(x):\n    return x + {i}\n\n\n" for i in range(12)) + \
    "def run():\n    return sum(step_0(i) for i in range(3))\n"
SCHED = "".join(f"BATCH_{i} = {i * 8}\n" for i in range(20)) + "\n\ndef pick():\n    return BATCH_4\n"
ENV = 'import os\n\n\ndef flag(name):\n    return os.environ.get(name, "0") == "1"\n'
KERNEL = "".join(f"int k{i}(int x) {{ return x * {i}; }}\n" for i in range(10))


def _tiny_source(make_upstream):
    up = make_upstream("tiny")
    up.write("_build/tiny_backend.py", BACKEND)
    up.write("pyproject.toml", '[build-system]\nrequires = []\nbuild-backend = "tiny_backend"\n'
                               'backend-path = ["_build"]\n')
    up.write("README.md", "tiny\n").write("csrc/kernel.c", KERNEL)
    up.write("python/tinypkg/__init__.py", "from .engine import run\n")
    up.write("python/tinypkg/engine.py", ENGINE).write("python/tinypkg/sched.py", SCHED)
    up.write("python/tinypkg/utils/__init__.py", "").write("python/tinypkg/utils/env.py", ENV)
    up.write("python/tinypkg/NOTES.md", "not shipped in the wheel\n")
    up.write("tests/test_engine.py", "from tinypkg import run\n\n\ndef test_run():\n    assert run() == 3\n")
    return up, up.commit("tinypkg 0.3.1")


def _venv_with(tmp_path: Path, source: Path) -> Path:
    """A real venv (python -m venv) with the package pip-installed from its folder, offline, run once."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                    "--no-index", "--no-build-isolation", "--disable-pip-version-check", str(source)],
                   check=True, capture_output=True)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    return site


def _run_package(site: Path) -> str:
    python = site.parents[2] / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE")}
    code = "import tinypkg, tinypkg.sched, tinypkg.utils.env as e; print(tinypkg.run(), tinypkg.sched.pick(), " \
        "e.flag('X'))"
    return subprocess.run([str(python), "-c", code],
                          check=True, capture_output=True, text=True, env=env, cwd=site.parents[3]).stdout.strip()


def _apply_to_installed(diff: bytes, site: Path) -> None:
    """The lab's way: `git apply` of a repository patch onto the installed package (python/ stripped)."""
    sections = [b"diff --git " + s for s in diff.split(b"diff --git ")[1:] if s.startswith(b"a/python/tinypkg/")]
    run_git(["apply", "-p3", "-"], cwd=site, input=b"".join(sections),
            env={"GIT_CEILING_DIRECTORIES": str(site.parent)})


def _tree_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _digest(folder: Path, skip: str = ".patchq") -> str:
    h = hashlib.sha256()
    for rel, data in _tree_files(folder).items():
        if not rel.startswith(skip + "/"):
            h.update(rel.encode() + b"\0" + data)
    return h.hexdigest()


HAND_OLD, HAND_NEW = "def pick():\n    return BATCH_4\n", "def pick():\n    return BATCH_6  # tuned by hand\n"
HACK = "TRACE = False\n"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """Made once: the package's repository, its queue diffs, and a venv where the lab applied three and edited."""
    from conftest import Upstream
    tmp = tmp_path_factory.mktemp("capture")
    up, pin = _tiny_source(lambda name: Upstream(tmp / "src" / name))
    diffs = {
        "never-applied": up.diff(pin, [("python/tinypkg/sched.py", "BATCH_1 = 8\n", "BATCH_1 = 12\n")]),
        "fast-step": up.diff(pin, [("python/tinypkg/engine.py", "    return x + 2\n", "    return x + 2 * 1\n"),
                                   ("csrc/kernel.c", "return x * 3;", "return x * 3 + 0;")]),
        "sched-batch": up.diff(pin, [("python/tinypkg/sched.py", "BATCH_15 = 120\n", "BATCH_15 = 128\n")]),
        "env-flags": up.diff(pin, [("python/tinypkg/engine.py", "    return x + 10\n", "    return x + 10  # v2\n"),
                                   ("python/tinypkg/utils/env.py", '"0") == "1"', '"0") in ("1", "true")')]),
    }
    site = _venv_with(tmp, up.path)
    assert (site / "tinypkg-0.3.1.dist-info" / "RECORD").is_file()
    package = site / "tinypkg"
    for name in APPLIED:
        _apply_to_installed(diffs[name], package)
    sched_py = package / "sched.py"
    sched_py.write_text(sched_py.read_text().replace(HAND_OLD, HAND_NEW))
    (package / "hack.py").write_text(HACK)
    (package / "engine.py~").write_text("backup\n")
    (package / ".sched.py.swp").write_bytes(b"\0swap")
    assert _run_package(site) == "3 48 False"            # the edited package runs; __pycache__ appears
    assert list((package / "__pycache__").glob("*.pyc"))
    return up, pin, diffs, site, package


APPLIED = ("fast-step", "sched-batch", "env-flags")


@pytest.fixture
def tinylab(installed, lab):
    """A workspace whose queue holds the four patches (one never applied), with a comment in pins.lock."""
    up, pin, diffs, site, package = installed
    lab.upstream("tiny", up, pin)
    for name, status in (("never-applied", Status.NEGATIVE_ARCHIVED), ("fast-step", Status.PROMOTED),
                         ("sched-batch", Status.DIAGNOSTIC), ("env-flags", Status.PROMOTED)):
        lab.patch("tiny", name, diffs[name], status)
    root = lab.save()
    lock = root / "pins.lock"
    lock.write_text(lock.read_text() + "# the lab's own comment, kept\n")
    return up, pin, root, site, package, tuple(diffs[n] for n in APPLIED)


def test_capture_decompose_round_trip_through_a_real_venv(tinylab, patchq, tmp_path):
    up, _, root, site, package, _ = tinylab
    before_site = _tree_files(site)
    res = patchq("--json", "capture", "tiny", "--from", str(package), "--decompose", "--stack", "live-s", cwd=root)
    assert res.code == 0, res.err
    report = result_of(res.out)
    assert report["kind"] == "installed package" and (report["package"], report["version"]) == ("tinypkg", "0.3.1")
    assert report["repo_folder"] == "python/tinypkg/"
    assert [a["patch"] for a in report["attributed"]] == ["fast-step", "sched-batch", "env-flags"]
    assert [n["patch"] for n in report["not_attributed"]] == ["never-applied"]
    assert report["unseen"] == ["csrc/kernel.c"]
    assert report["missing"] == ["python/tinypkg/NOTES.md"]
    assert report["ignored"]["editor backups"] == 2 and report["ignored"]["installed as built"] == 1
    assert report["ignored"]["__pycache__"] == len(list(package.rglob("__pycache__/*.pyc")))
    assert sorted(report["changed"]) == ["python/tinypkg/engine.py", "python/tinypkg/sched.py",
                                         "python/tinypkg/utils/env.py"]
    assert report["new"] == ["python/tinypkg/hack.py"]
    assert report["residual_files"] == ["python/tinypkg/hack.py", "python/tinypkg/sched.py"]
    assert _tree_files(site) == before_site                           # the venv is only read

    # the residual holds exactly the hand edit: the same diff git makes between the stack and stack + hand edit
    scratch = tmp_path / "expect"
    run_git(["clone", "-q", str(up.path), str(scratch)])
    for diff in tinylab[5]:
        run_git(["apply", "-"], cwd=scratch, input=diff)
    Repo(scratch).run("add", "-A")
    Repo(scratch).run("commit", "-q", "-m", "stack")
    (scratch / "python/tinypkg/sched.py").write_text(
        (scratch / "python/tinypkg/sched.py").read_text().replace(HAND_OLD, HAND_NEW))
    (scratch / "python/tinypkg/hack.py").write_text(HACK)
    Repo(scratch).run("add", "-A")
    expected = Repo(scratch).run("diff", "--cached", "--full-index", "--binary", "HEAD").stdout
    patch_text = (root / report["patch_file"]).read_bytes()
    assert expected in patch_text
    assert patch_text.count(b"diff --git") == 2
    assert str(tmp_path).encode() not in patch_text                  # no path of this machine in the patch
    assert b"tinypkg 0.3.1" in patch_text and b"Patchq-Date:" in patch_text

    lock = (root / "pins.lock").read_text()
    assert "# the lab's own comment, kept" in lock
    assert "patches: [fast-step, sched-batch, env-flags, " + report["patch"] + "]" in lock

    res = patchq("--json", "apply", "live-s", "--verify", cwd=root)
    assert res.code == 0, res.err + res.out
    applied = result_of(res.out)["apply"]["upstreams"][0]
    assert [o["patch_id"] for o in applied["outcomes"]] == ["fast-step", "sched-batch", "env-flags",
                                                           report["patch"]]
    assert applied["tree"] == report["result_tree"] and applied["verified"] is True
    checkout = Path(applied["checkout"])
    for path in (*report["changed"], *report["new"]):
        assert (checkout / path).read_bytes() == (package / path[len("python/tinypkg/"):]).read_bytes(), path
    for rel, data in _tree_files(package).items():                  # every source file of the live tree
        if "__pycache__" not in rel and rel not in ("engine.py~", ".sched.py.swp", "_version.py"):
            assert (checkout / "python/tinypkg" / rel).read_bytes() == data, rel
    assert "return x * 3 + 0;" in (checkout / "csrc/kernel.c").read_text()


def test_capture_without_decompose_writes_one_snapshot(tinylab, patchq):
    _, _, root, _, package, _ = tinylab
    res = patchq("--json", "capture", "tiny", "--from", str(package), "--id", "live-all", "--stack", "snap",
                 cwd=root)
    assert res.code == 0, res.err
    report = result_of(res.out)
    assert report["attributed"] == [] and report["patch"] == "live-all"
    assert report["residual_files"] == sorted((*report["changed"], *report["new"]))
    series = (root / "queues/tiny/series.yaml").read_text()
    assert "id: live-all" in series and "status: diagnostic" in series
    res = patchq("--json", "apply", "snap", cwd=root)
    assert res.code == 0, res.err
    checkout = Path(result_of(res.out)["apply"]["upstreams"][0]["checkout"])
    assert (checkout / "python/tinypkg/hack.py").read_text() == HACK
    assert "return x * 3;" in (checkout / "csrc/kernel.c").read_text()     # unseen files stay as at the pin


def test_updating_a_status_selected_stack_keeps_its_other_upstreams(installed, lab, make_upstream, patchq):
    up, pin, diffs, _, package = installed
    other = make_upstream("other")
    other.write("main.c", "int main(void) { return 0; }\n")
    other_pin = other.commit("other 1.0")
    lab.upstream("other", other, other_pin)
    lab.patch("other", "other-fix", other.diff(other_pin, [("main.c", "return 0;", "return 1;")]))
    lab.upstream("tiny", up, pin)
    for name in APPLIED:
        lab.patch("tiny", name, diffs[name])
    lab.stack("lab-best", ["other", "tiny"], include=["promoted"])
    root = lab.save()
    lock = root / "pins.lock"
    lock.write_text(lock.read_text().replace("  lab-best:\n", "  # the stack that gave 89 tok/s\n  lab-best:\n"))
    res = patchq("--json", "capture", "tiny", "--from", str(package), "--decompose", "--stack", "lab-best",
                 "--id", "hand-edit", cwd=root)
    assert res.code == 0, res.err
    text = lock.read_text()
    assert "# the stack that gave 89 tok/s\n  lab-best:" in text and "include" not in text
    assert "patches: [other-fix, fast-step, sched-batch, env-flags, hand-edit]" in text
    tree = result_of(res.out)["result_tree"]
    res = patchq("--json", "apply", "lab-best", cwd=root)
    assert res.code == 0, res.err + res.out
    ups = {u["upstream"]: u for u in result_of(res.out)["apply"]["upstreams"]}
    assert {name: [o["patch_id"] for o in u["outcomes"]] for name, u in ups.items()} == {
        "other": ["other-fix"], "tiny": [*APPLIED, "hand-edit"]}
    assert ups["tiny"]["tree"] == tree


def test_a_patch_is_attributed_with_the_patch_it_requires(make_upstream, lab, patchq, tmp_path):
    """B rewrites the lines A adds: A alone is not in the live tree, B alone does not apply; together they are."""
    up, pin = _tiny_source(make_upstream)
    a = up.diff(pin, [("python/tinypkg/sched.py", "BATCH_2 = 16\n", "BATCH_2 = 16\nBATCH_2X = 32\n")])
    scratch = tmp_path / "chain"
    run_git(["clone", "-q", str(up.path), str(scratch)])
    run_git(["apply", "-"], cwd=scratch, input=a)
    Repo(scratch).run("commit", "-qam", "a")
    sched = scratch / "python/tinypkg/sched.py"
    sched.write_text(sched.read_text().replace("BATCH_2X = 32\n", "BATCH_2X = 64\n"))
    b = Repo(scratch).run("diff", "--full-index", "HEAD").stdout  # B, cut on top of A
    assert b"-BATCH_2X = 32" in b
    (scratch / "python/tinypkg/engine.py").write_text(ENGINE + "\nHAND = 1\n")
    lab.upstream("tiny", up, pin)
    lab.patch("tiny", "wider-batch", a)
    lab.patch("tiny", "wider-batch-2", b, requires=("wider-batch",))
    root = lab.save()
    res = patchq("--json", "capture", "tiny", "--from", str(scratch), "--decompose", "--stack", "chain",
                 "--id", "hand", cwd=root)
    assert res.code == 0, res.err
    report = result_of(res.out)
    assert [x["patch"] for x in report["attributed"]] == ["wider-batch", "wider-batch-2"]
    assert report["residual_files"] == ["python/tinypkg/engine.py"]
    assert "patches: [wider-batch, wider-batch-2, hand]" in (root / "pins.lock").read_text()


def test_refuses_a_stack_that_does_not_reproduce_the_captured_files(tinylab):
    """verify_reproduction is the gate before any write: the queue patches alone lack the hand edit."""
    from patchq.capture import read_live_tree, verify_reproduction
    from patchq.queuerun import load_patch
    from patchq.sources import ensure_base
    from patchq.workspace import load_workspace
    _, pin, root, _, package, _ = tinylab
    ws = load_workspace(root)
    base = ensure_base(ws.upstream("tiny"), pin, workspace=root)
    live = read_live_tree(package)
    contents = {"python/tinypkg/" + rel: data for rel, data in live.files.items() if rel != "_version.py"}
    patches = [load_patch(ws, ws.queue("tiny").get(i)) for i in ("fast-step", "sched-batch", "env-flags")]
    with pytest.raises(NeedsYou) as err:
        verify_reproduction(base.repo, base.commit, patches, contents, "tiny")
    assert "does not reproduce 2 captured file(s): python/tinypkg/hack.py, python/tinypkg/sched.py" \
        in str(err.value)
    assert verify_reproduction(base.repo, base.commit, patches, {
        p: d for p, d in contents.items() if p not in ("python/tinypkg/hack.py", "python/tinypkg/sched.py")}, "tiny")


def test_dry_run_writes_nothing(tinylab, patchq):
    _, _, root, site, package, _ = tinylab
    before, before_site = _digest(root), _tree_files(site)
    res = patchq("--json", "capture", "tiny", "--from", str(package), "--decompose", "--stack", "s2", "--dry-run",
                 cwd=root)
    assert res.code == 0, res.err
    report = result_of(res.out)
    assert report["dry_run"] is True and report["written"] == [] and len(report["result_tree"]) == 40
    assert report["patch"] and [a["patch"] for a in report["attributed"]] == ["fast-step", "sched-batch",
                                                                               "env-flags"]
    assert _digest(root) == before and _tree_files(site) == before_site


def test_non_git_source_tree_and_ignored_counts(make_upstream, lab, patchq, tmp_path):
    up, pin = _tiny_source(make_upstream)
    lab.upstream("tiny", up, pin)
    root = lab.save()
    tree = tmp_path / "unpacked-tiny"
    shutil.copytree(up.path, tree, ignore=shutil.ignore_patterns(".git"))
    (tree / "README.md").write_text("tiny, edited\n")
    (tree / "csrc" / "extra.c").write_text("int extra(void) { return 1; }\n")
    (tree / "python" / "tinypkg" / "__pycache__").mkdir()
    (tree / "python" / "tinypkg" / "__pycache__" / "engine.cpython-311.pyc").write_bytes(b"\x00pyc")
    (tree / "python" / "tinypkg" / "_fast.cpython-311-x86_64-linux-gnu.so").write_bytes(b"\x7fELF")
    (tree / "python" / "tinypkg" / "old.pyc").write_bytes(b"\x00")
    (tree / "tinypkg.egg-info").mkdir()
    (tree / "tinypkg.egg-info" / "PKG-INFO").write_text("Name: tinypkg\n")
    (tree / "README.md.orig").write_text("tiny\n")
    (tree / "logo.png").write_bytes(b"\x89PNG\0\0")
    (tree / "tests" / "test_engine.py").unlink()
    res = patchq("--json", "capture", "tiny", "--from", str(tree), "--stack", "from-src", cwd=root)
    assert res.code == 0, res.err
    report = result_of(res.out)
    assert report["kind"] == "source tree" and report["repo_folder"] == ""
    assert report["changed"] == ["README.md"] and report["new"] == ["csrc/extra.c"]
    assert report["ignored"] == {"*.pyc": 1, "__pycache__": 1, "compiled extensions": 1, "dist-info/egg-info": 1,
                                 "editor backups": 1, "new binary files": 1}
    assert report["missing"] == ["tests/test_engine.py"]             # reported, not a deletion
    text = (root / report["patch_file"]).read_text()
    assert "deleted file" not in text and "a source tree (unpacked-tiny)" in text
    res = patchq("apply", "from-src", "--verify", cwd=root)
    assert res.code == 0, res.err + res.out


def test_git_checkout_counts_git_ignored_files(make_upstream, lab, patchq, tmp_path):
    up, pin = _tiny_source(make_upstream)
    lab.upstream("tiny", up, pin)
    root = lab.save()
    checkout = tmp_path / "work"
    run_git(["clone", "-q", str(up.path), str(checkout)])
    (checkout / ".git" / "info" / "exclude").write_text("build/\n")
    (checkout / "build").mkdir()
    (checkout / "build" / "out.txt").write_text("generated\n")
    (checkout / "python" / "tinypkg" / "engine.py").write_text(ENGINE + "\nLIVE = 1\n")
    res = patchq("capture", "tiny", "--from", str(checkout), "--dry-run", cwd=root)      # the table
    assert res.code == 0, res.err
    lines = [" ".join(line.replace("│", " ").split()) for line in res.out.splitlines()]
    assert any("(git checkout)" in line and "mapped onto the repository root" in line for line in lines), res.out
    assert "captured 1 (1 changed, 0 new)" in lines and "ignored 1 (1 git-ignored)" in lines, res.out
    assert "written nothing (dry run)" in lines and any(line.startswith("result tree ") for line in lines)


def test_bad_input_is_one_line_exit_2(tinylab, patchq, tmp_path, capsys, monkeypatch):
    """Two cases as a user runs them (a subprocess), the rest through the same entry point in this process."""
    from patchq.cli import main
    up, _, root, _, _, _ = tinylab
    foreign = tmp_path / "other"
    foreign.mkdir()
    (foreign / "unrelated_module.py").write_text("print('not tiny')\n")
    before = _digest(root)
    for upstream, source, message in (("tiny", tmp_path / "nowhere", "no such folder"),
                                      ("vllm", up.path, "unknown upstream 'vllm'")):
        res = patchq("capture", upstream, "--from", str(source), cwd=root)
        assert res.code == 2, (message, res.out + res.err)
        assert len(res.err.strip().splitlines()) == 1 and res.err.startswith("error: "), res.err
        assert message in res.err, res.err
    monkeypatch.chdir(root)
    for source, extra, message in ((up.path / "README.md", [], "is not a folder"),
                                   (foreign, [], "no file of 'other' matches"),
                                   (up.path, [], "nothing to capture"),
                                   (up.path, ["--id", "Bad Id"], "must be lower-case")):
        with pytest.raises(SystemExit) as code:
            main(["capture", "tiny", "--from", str(source), *extra])
        err = capsys.readouterr().err
        assert code.value.code == 2, (message, err)
        assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and message in err, err
    assert _digest(root) == before


def test_stack_patches_list_is_validated_and_selects(make_upstream, lab, patchq):
    up, pin = _tiny_source(make_upstream)
    a = up.diff(pin, [("README.md", "tiny\n", "tiny a\n")])
    b = up.diff(pin, [("csrc/kernel.c", "return x * 3;", "return x * 4;")])
    lab.upstream("tiny", up, pin)
    lab.patch("tiny", "a", a)
    lab.patch("tiny", "b", b, Status.NEGATIVE_ARCHIVED)
    lab.stack("explicit", ["tiny"], patches=["b", "a"])
    root = lab.save()
    res = patchq("--json", "list", "--stack", "explicit", cwd=root)
    assert res.code == 0, res.err
    assert [e["id"] for e in result_of(res.out)] == ["a", "b"]              # the series decides the order
    lock = root / "pins.lock"
    text = lock.read_text()
    lock.write_text(text.replace("patches: [b, a]", "patches: [b, zz]"))
    res = patchq("check", cwd=root)
    assert res.code == 2 and "unknown patch 'zz'" in res.err and "pins.lock:" in res.err
    lock.write_text(text.replace("patches: [b, a]", "patches: [b, a]\n    include: [promoted]"))
    res = patchq("check", cwd=root)
    assert res.code == 2 and "keep one of the two" in res.err
