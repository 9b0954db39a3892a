"""Driver for tests/test_diskfull.py, run inside `unshare --user --map-root-user --mount`: real small file systems.

In its own mount namespace an unprivileged user may mount tmpfs. The driver mounts one, copies a workspace into
it, fills the file system until exactly FREE bytes are left, runs a patchq command and records what a user would
see: the exit code, stderr, whether any workspace file changed, and whether the same command works once space
is freed again. A second tmpfs is remounted read-only for the read-only cases. Results go to a JSON file, which
the test reads and judges; the driver itself asserts nothing.

    python fullfs.py PLAN.json RESULT.json
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from test_hostile import snapshot


def user_state(root: Path) -> dict[str, list]:
    """What the user owns in the workspace: everything but patchq's scratch folder and atomic_write temp files."""
    return {k: list(v) for k, v in snapshot(root).items()
            if not k.startswith(".patchq") and not Path(k).name.endswith(".tmp")}


def mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)], check=True)


def fill(mount: Path, free: int) -> Path:
    """Write a filler file until the file system is full, then give back `free` bytes."""
    filler = mount / "filler"
    block = b"\0" * (1 << 20)
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for chunk in (block, block[:4096], block[:512], block[:1]):
            while True:
                try:
                    if os.write(fd, chunk) == 0:
                        break
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    os.truncate(filler, max(0, size - free))
    return filler


def patchq(args: list[str]) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-m", "patchq", *args], capture_output=True, text=True,
                          env=dict(os.environ, COLUMNS="200"))
    return proc.returncode, proc.stderr


def fresh(template: Path, ws: Path) -> None:
    shutil.rmtree(ws, ignore_errors=True)
    shutil.copytree(template, ws, symlinks=True)


def expand(args: list[str], ws: Path, mount: Path) -> list[str]:
    return [a.replace("{ws}", str(ws)).replace("{mnt}", str(mount)) for a in args]


def disk_full(plan: dict) -> list[dict]:
    mount = Path(plan["mount"])
    mount_tmpfs(mount, plan["size"])
    template = Path(plan["template"])
    ws = mount / "ws"
    results = []
    for command in plan["commands"]:
        fresh(template, ws)
        code, err = patchq(expand(command["args"], ws, mount))
        reference = user_state(ws) if code == 0 else None
        for extra in command.get("outputs", []):
            shutil.rmtree(mount / extra, ignore_errors=True)
        for free in plan["free"]:
            fresh(template, ws)
            before = user_state(ws)
            filler = fill(mount, free)
            code, err = patchq(expand(command["args"], ws, mount))
            after = user_state(ws)
            filler.unlink()
            changed = sorted(k for k in {*before, *after} if before.get(k) != after.get(k))
            recovery = []
            if code != 0:
                if (ws / ".patchq" / "rebase" / "state.json").exists():
                    recovery.append(patchq(["-w", str(ws), "rebase", "--abort"]))
                recovery.append(patchq(expand(command["args"], ws, mount)))
            results.append({"name": command["name"], "free": free, "code": code, "stderr": err,
                            "changed": changed, "old_or_new": after in (before, reference),
                            "recovery": [{"code": c, "stderr": e} for c, e in recovery],
                            "recovered_to_reference": user_state(ws) == reference})
            for extra in command.get("outputs", []):
                shutil.rmtree(mount / extra, ignore_errors=True)
    subprocess.run(["umount", str(mount)], check=True)
    return results


def read_only(plan: dict) -> list[dict]:
    mount = Path(plan["ro_mount"])
    mount_tmpfs(mount, plan["size"])
    ws = mount / "ws"
    fresh(Path(plan["template"]), ws)
    before = user_state(ws)
    subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
    results = []
    for command in plan["ro_commands"]:
        code, err = patchq(expand(command["args"], ws, mount))
        results.append({"name": command["name"], "writes": command["writes"], "code": code, "stderr": err,
                        "unchanged": user_state(ws) == before})
    subprocess.run(["umount", str(mount)], check=True)
    return results


def main() -> None:
    plan = json.loads(Path(sys.argv[1]).read_text())
    result = {"disk_full": disk_full(plan), "read_only": read_only(plan)}
    Path(sys.argv[2]).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
