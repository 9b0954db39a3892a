"""What this machine offers a recipe: its toolkits and hardware (`requires:`), memory for parallel jobs, and a
compiler launcher (ccache, sccache). These shape whether and how a build runs, never what it produces.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .recipe import Recipe, Resources
from .runner import environment_after_setup, recipe_env, setup_script


def missing_requirements(recipe: Recipe, env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Why this machine cannot build the recipe (missing toolkit, setup script or hardware); empty when it can."""
    build_env = recipe_env(recipe, env)
    reasons = []
    search_path = build_env.get("PATH", os.defpath)
    script = setup_script(recipe, build_env)
    if script and not Path(script).is_file():
        reasons.append(f"setup script {script} not found")
    elif script and recipe.requires:
        search_path = (environment_after_setup(recipe, build_env) or {}).get("PATH") or search_path
    for name in recipe.requires:
        reason = _requirement_gap(name, search_path, build_env)
        if reason and reason not in reasons:
            reasons.append(reason)
    return tuple(reasons)


def _requirement_gap(name: str, search_path: str, env: Mapping[str, str]) -> str:
    if name in ("oneapi", "sycl"):
        if shutil.which("icpx", path=search_path):
            return ""
        return f"{'oneAPI' if name == 'oneapi' else 'SYCL'} compiler icpx not found on PATH"
    if name == "cuda":
        cuda_home = env.get("CUDA_HOME") or env.get("CUDA_PATH") or ""
        if shutil.which("nvcc", path=search_path) or (cuda_home and Path(cuda_home, "bin", "nvcc").is_file()):
            return ""
        return "CUDA compiler nvcc not found (PATH, CUDA_HOME)"
    if name == "xpu":
        return "" if _has_intel_gpu() else "no Intel GPU (no /dev/dri render node of vendor 0x8086)"
    tool = name.split(":", 1)[1]
    return "" if shutil.which(tool, path=search_path) else f"{tool} not found on PATH"


def _has_intel_gpu() -> bool:
    for node in Path("/sys/class/drm").glob("renderD*"):
        vendor = node / "device" / "vendor"
        with contextlib.suppress(OSError):
            if vendor.read_text().strip().lower() == "0x8086":
                return True
    return False


@dataclass(frozen=True)
class MachineMemory:
    available_gb: float
    swap_total_gb: float


def read_machine_memory() -> MachineMemory:
    """MemAvailable and SwapTotal from /proc/meminfo (total physical memory where that is missing)."""
    values: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            name, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                values[name] = int(parts[0]) / (1024 * 1024)
    if "MemAvailable" not in values:
        values["MemAvailable"] = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024 ** 3
    return MachineMemory(values["MemAvailable"], values.get("SwapTotal", 0.0))


@dataclass(frozen=True)
class JobPlan:
    jobs: int
    notes: tuple[str, ...] = ()


def plan_jobs(resources: Resources, requested: int | None, *, cpu_count: int, memory: MachineMemory) -> JobPlan:
    """min(jobs, floor(available memory / memory per job)), at least 1; says when swap the recipe wants is absent."""
    wanted = requested or resources.jobs or cpu_count
    jobs, notes = wanted, []
    if resources.mem_per_job_gb:
        fit = max(1, math.floor(memory.available_gb / resources.mem_per_job_gb))
        if fit < wanted:
            jobs = fit
            notes.append(f"{wanted} jobs reduced to {fit}: {memory.available_gb:.1f} GB available at "
                         f"{resources.mem_per_job_gb:g} GB per job")
    if resources.swap_gb and memory.swap_total_gb < resources.swap_gb:
        notes.append(f"the recipe wants {resources.swap_gb:g} GB of swap and this machine has "
                     f"{memory.swap_total_gb:.1f} GB: a compile may be killed for memory; add temporary swap "
                     f"(docs/kernels.md)")
    return JobPlan(max(1, jobs), tuple(notes))


def launcher_env(launcher: str, env: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """Variables that route compiles through ccache/sccache (CMake launchers, prefixed CC/CXX), or a note why not."""
    if not launcher:
        return {}, ""
    if not shutil.which(launcher.split()[0], path=env.get("PATH", os.defpath)):
        return {}, f"launcher {launcher} not found on PATH; building without it"
    routed = {f"CMAKE_{lang}_COMPILER_LAUNCHER": launcher for lang in ("C", "CXX", "CUDA")}
    for var, default in (("CC", "cc"), ("CXX", "c++")):
        compiler = env.get(var, default)
        routed[var] = compiler if compiler.startswith(launcher + " ") else f"{launcher} {compiler}"
    return routed, ""
