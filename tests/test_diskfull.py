"""Disk full and read-only workspaces on real small file systems: a clear error, nothing lost, and recovery.

The file systems are tmpfs mounts made inside a user and mount namespace (`unshare --user --map-root-user
--mount`), which needs no privileges where the kernel allows unprivileged user namespaces; the driver is
tests/hostile/fullfs.py. Each writing command runs on a workspace whose file system has exactly 0, 4 KiB, 64 KiB
or 512 KiB left. Where the machine forbids user namespaces the tmpfs tests are skipped (and say so), and the
process file-size limit test below still runs everywhere.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from test_crash import _queue_workspace, state

DRIVER = Path(__file__).parent / "hostile" / "fullfs.py"
FREE = [0, 4096, 65536, 524288]
WRITERS = [
    {"name": "apply", "args": ["-w", "{ws}", "apply", "s"]},
    {"name": "lock", "args": ["-w", "{ws}", "lock", "s"]},
    {"name": "mark", "args": ["-w", "{ws}", "mark", "p1", "diagnostic"]},
    {"name": "export", "args": ["-w", "{ws}", "export", "s", "-o", "{mnt}/out"], "outputs": ["out"]},
    {"name": "import", "args": ["-w", "{ws}", "import", "INCOMING"]},
    {"name": "rebase", "args": ["-w", "{ws}", "rebase", "--onto", "vllm@latest"]},
]
READ_ONLY = [
    {"name": "list", "args": ["-w", "{ws}", "list"], "writes": False},
    {"name": "check", "args": ["-w", "{ws}", "check"], "writes": False},
    {"name": "show", "args": ["-w", "{ws}", "show", "p0"], "writes": False},
    {"name": "flags", "args": ["-w", "{ws}", "flags", "s"], "writes": False},
    {"name": "export --check", "args": ["-w", "{ws}", "export", "--check", "REPRO"], "writes": False},
    {"name": "apply", "args": ["-w", "{ws}", "apply", "s"], "writes": True},
    {"name": "mark", "args": ["-w", "{ws}", "mark", "p1", "diagnostic"], "writes": True},
    {"name": "rebase", "args": ["-w", "{ws}", "rebase", "--onto", "vllm@latest"], "writes": True},
    {"name": "import", "args": ["-w", "{ws}", "import", "INCOMING"], "writes": True},
]
MACHINE_WORDS = ("no space left", "file too large", "disk quota")


def _namespaces_work() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                            "mount -t tmpfs -o size=64k tmpfs /mnt 2>/dev/null || "
                            "mount -t tmpfs -o size=64k tmpfs /tmp"], capture_output=True)
    return probe.returncode == 0


NAMESPACES = _namespaces_work()
needs_tmpfs = pytest.mark.skipif(not NAMESPACES, reason="this machine forbids unprivileged user namespaces, so "
                                 "no small tmpfs can be mounted; the file-size-limit test still ran")


def one_error_line(err: str) -> bool:
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("hint: ")]
    return len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err \
        and "internal error" not in err


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Run the whole plan once in a namespace: the figures every test below judges."""
    if not NAMESPACES:
        pytest.skip("this machine forbids unprivileged user namespaces (no tmpfs to fill)")
    from conftest import Lab, Upstream
    tmp = tmp_path_factory.mktemp("fullfs")
    os.environ["PATCHQ_CACHE"] = str(tmp / "cache")
    lab = Lab(tmp / "template")
    lab.root.mkdir()
    up, base = _queue_workspace(lab, lambda name: Upstream(tmp / "src" / name))
    template = lab.save()
    incoming = tmp / "incoming"
    incoming.mkdir()
    diff = up.diff(base, [("vllm/model.py", "return x * 20\n", "return x * 20 - 1\n")])
    (incoming / "0001-tweak-promoted.patch").write_bytes(diff)
    up.edit("README.md", "demo", "demo v2").commit("upstream moves on")
    repro = tmp / "repro"
    subprocess.run([sys.executable, "-m", "patchq", "-w", str(template), "export", "s", "-o", str(repro)],
                   check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "patchq", "-w", str(template), "check"], check=True, capture_output=True)
    swap = lambda cmds: [{**c, "args": [str(incoming) if a == "INCOMING" else str(repro) if a == "REPRO" else a
                                        for a in c["args"]]} for c in cmds]
    plan = {"mount": str(tmp / "full"), "ro_mount": str(tmp / "ro"), "size": "8m", "template": str(template),
            "free": FREE, "commands": swap(WRITERS), "ro_commands": swap(READ_ONLY)}
    (tmp / "plan.json").write_text(json.dumps(plan))
    proc = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", sys.executable, str(DRIVER),
                           str(tmp / "plan.json"), str(tmp / "result.json")], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads((tmp / "result.json").read_text())


@needs_tmpfs
@pytest.mark.parametrize("name", [c["name"] for c in WRITERS])
def test_disk_full_gives_one_clear_line_and_keeps_the_workspace(results, name):
    runs = [r for r in results["disk_full"] if r["name"] == name]
    assert len(runs) == len(FREE)
    failed = [r for r in runs if r["code"] != 0]
    assert failed, f"{name} never ran out of space; the test file system is too big to test it"
    for r in failed:
        assert r["code"] == 3, (r["free"], r["stderr"])
        assert one_error_line(r["stderr"]), r["stderr"]
        assert any(word in r["stderr"].lower() for word in MACHINE_WORDS), r["stderr"]
        assert r["old_or_new"], (r["free"], r["changed"])


@needs_tmpfs
@pytest.mark.parametrize("name", [c["name"] for c in WRITERS])
def test_after_disk_full_the_same_command_works_once_space_is_back(results, name):
    for r in results["disk_full"]:
        if r["name"] == name and r["code"] != 0:
            assert r["recovery"] and all(x["code"] == 0 for x in r["recovery"]), (r["free"], r["recovery"])
            assert r["recovered_to_reference"], r["free"]


@needs_tmpfs
def test_read_only_workspace_reads_work_and_writes_are_refused_clearly(results):
    for r in results["read_only"]:
        assert r["unchanged"], r["name"]
        if r["writes"]:
            assert r["code"] == 3, (r["name"], r["stderr"])
            assert one_error_line(r["stderr"]) and "read-only file system" in r["stderr"], r["stderr"]
        else:
            assert r["code"] == 0, (r["name"], r["stderr"])


def test_file_size_limit_is_reported_not_a_traceback(lab, make_upstream, tmp_path):
    """Everywhere, without namespaces: RLIMIT_FSIZE makes every write past N bytes fail (EFBIG)."""
    _queue_workspace(lab, make_upstream)
    template = lab.save()
    warm = subprocess.run([sys.executable, "-m", "patchq", "-w", str(template), "apply", "s"], capture_output=True)
    assert warm.returncode == 0, warm.stderr                     # the mirror exists; the limit hits patchq's writes
    old = state(template)

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))

    for args in (["mark", "p1", "diagnostic"], ["export", "s", "-o", str(tmp_path / "out")], ["apply", "s"]):
        proc = subprocess.run([sys.executable, "-m", "patchq", "-w", str(template), *args], capture_output=True,
                              text=True, preexec_fn=limited)
        assert proc.returncode == 3, proc.stderr
        assert one_error_line(proc.stderr) and "file too large" in proc.stderr.lower(), proc.stderr
        assert state(template) == old
        written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()] if (tmp_path / "out").exists() else []
        assert written == []                                   # no bundle, no half bundle, no temp file
