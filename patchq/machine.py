"""Facts about the machine a trial ran on, cheap to read and recorded beside its numbers.

A number without its machine cannot be compared with anything later. Only what is quick and harmless to read is
taken: /proc files, `platform`, and `nvidia-smi` when it is installed (bounded by a short timeout, skipped when
absent). Nothing from the environment is recorded here: it may hold credentials.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

NVIDIA_SMI_TIMEOUT = 5.0


def _cpuinfo(field: str) -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == field:
                return value.strip()
    except OSError:
        pass
    return ""


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def gpus() -> list[dict[str, str]] | str:
    """GPU names and driver versions from nvidia-smi, or why there are none."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return "no nvidia-smi on PATH"
    try:
        proc = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"nvidia-smi failed: {exc}"
    if proc.returncode != 0:
        return f"nvidia-smi exit {proc.returncode}: {(proc.stderr or proc.stdout).strip()[:200]}"
    out = []
    for line in proc.stdout.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        out.append(dict(zip(("name", "driver", "memory"), parts)))
    return out


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the system reports one): how many git checkout
    workers, analysis processes and archive import runs go side by side."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine_facts() -> dict[str, Any]:
    import platform  # 6 ms to import: only for a trial's record, not on every command's path
    uname = platform.uname()
    return {
        "cpu": _cpuinfo("model name") or uname.processor or uname.machine,
        "cpus": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "os": f"{uname.system} {uname.release}",
        "arch": uname.machine,
        "python": platform.python_version(),
        "gpus": gpus(),
        "load_average": load_average(),
    }
