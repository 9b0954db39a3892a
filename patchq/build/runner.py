"""Running a recipe's commands: the environment (recipe variables, a sourced setup script), toolchain facts, and
the build itself in its own process group, all output in its log, watched line by line.

An interrupt stops the whole process group (compilers included); an exit status becomes one line of cause.
"""

from __future__ import annotations

import contextlib
import os
import signal
import string
import subprocess
from collections.abc import Mapping
from pathlib import Path

from .recipe import Recipe

LOG_TAIL_LINES = 30
FACT_TIMEOUT_S = 120


# ---- the environment a recipe runs in --------------------------------------------------------------------------

# Sources the setup script with only its own arguments (bash hands the caller's "$@" to a sourced script given none,
# which oneAPI's scripts would read as options), silences its banner, then replaces itself with the build command.
# argv: setup-script, number of setup arguments, the setup arguments, the command's argv.
_SOURCE_THEN_EXEC = ('setup_script=$0; count=$1; shift; setup_args=("${@:1:$count}"); shift "$count"; '
                     'build=("$@"); set -- "${setup_args[@]}"; '
                     'source "$setup_script" >/dev/null '
                     '|| { echo "patchq: sourcing $setup_script failed" >&2; exit 97; }; '
                     'exec "${build[@]}"')


def recipe_env(recipe: Recipe, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment (or ours) with the recipe's variables on top."""
    merged = dict(os.environ if env is None else env)
    merged.update(recipe.env)
    return merged


def setup_script(recipe: Recipe, env: Mapping[str, str]) -> str:
    """The recipe's setup path with `~` and `$VAR` expanded against the build environment."""
    if not recipe.setup:
        return ""
    return os.path.expanduser(string.Template(recipe.setup).safe_substitute(env))


def shell_argv(recipe: Recipe, command: str | tuple[str, ...], env: Mapping[str, str]) -> list[str]:
    """argv that runs `command` (a bash script, or an argv as is), after the recipe's setup script when it has one."""
    argv = ["bash", "-eo", "pipefail", "-c", command] if isinstance(command, str) else list(command)
    if not recipe.setup:
        return argv
    return ["bash", "-c", _SOURCE_THEN_EXEC, setup_script(recipe, env), str(len(recipe.setup_args)),
            *recipe.setup_args, *argv]



# ---- toolchain facts ------------------------------------------------------------------------------------------

def probe_toolchain(recipe: Recipe, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Each fact command's output; a command that fails records its error text instead of stopping the build."""
    if not recipe.toolchain:
        return {}
    ready = environment_after_setup(recipe, recipe_env(recipe, env))
    if ready is None:
        reason = f"error: sourcing {setup_script(recipe, recipe_env(recipe, env))} failed"
        return {name: reason for name in sorted(recipe.toolchain)}
    return {name: _run_fact(recipe.toolchain[name], ready) for name in sorted(recipe.toolchain)}


def environment_after_setup(recipe: Recipe, env: Mapping[str, str]) -> dict[str, str] | None:
    """The variables the setup script leaves, from one sourcing (they are slow); None when sourcing fails."""
    if not recipe.setup:
        return dict(env)
    try:
        proc = subprocess.run(shell_argv(recipe, ("env", "-0"), env), env=dict(env), capture_output=True, check=False,
                              stdin=subprocess.DEVNULL, timeout=FACT_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    pairs = (item.split("=", 1) for item in proc.stdout.decode("utf-8", "surrogateescape").split("\0"))
    return {pair[0]: pair[1] for pair in pairs if len(pair) == 2}


def _run_fact(command: str, env: Mapping[str, str]) -> str:
    try:
        proc = subprocess.run(["bash", "-eo", "pipefail", "-c", command], env=dict(env), capture_output=True,
                              check=False, stdin=subprocess.DEVNULL, timeout=FACT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"error: timed out after {FACT_TIMEOUT_S}s"
    except OSError as exc:
        return f"error: {exc.strerror}"
    out = proc.stdout.decode("utf-8", "replace").replace("\r\n", "\n").strip()
    if proc.returncode == 0:
        return out
    errors = [ln for ln in proc.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    return f"error (exit {proc.returncode}): {errors[-1].strip() if errors else out[-200:]}"


# ---- running a build command ----------------------------------------------------------------------------------

def run_logged(argv: list[str], cwd: Path, env: Mapping[str, str], log: Path, *, header: str,
                label: str = "build") -> int:
    """Run the build in its own process group with all output in the log; an interrupt stops the whole group."""
    with log.open("wb") as sink:
        sink.write(header.encode())
        sink.flush()
        try:
            proc = subprocess.Popen(argv, cwd=cwd, env=dict(env), stdout=sink, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            sink.write(f"patchq: cannot start the build: {exc}\n".encode())
            return 127
        try:
            returncode = _wait_watching(proc, log, label)
        except BaseException:
            _stop_group(proc)
            raise
        sink.write(f"# exit {returncode}\n".encode())
    return returncode


def _wait_watching(proc: subprocess.Popen[bytes], log: Path, label: str) -> int:
    """Wait for the build, handing each new log line to the progress reporter (spinner, or -v streaming)."""
    from .. import progress
    with progress.current().build(label, str(log)) as watch, log.open("rb") as tail:
        pending = b""
        while True:
            try:
                returncode = proc.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                returncode = None
            pending += tail.read()
            *lines, pending = pending.split(b"\n")
            for line in lines:
                watch.line(line.decode("utf-8", "replace"))
            watch.tick()
            if returncode is not None:
                if pending:
                    watch.line(pending.decode("utf-8", "replace"))
                return returncode


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def exit_reason(returncode: int) -> str:
    """A one-line cause; a SIGKILL is usually the kernel's OOM killer on these builds."""
    if returncode == 97:
        return "exit 97: sourcing the setup script failed"
    signum = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else 0
    name = _signal_name(signum) if signum else ""
    if not name:
        return f"exit {returncode}"
    oom = " (out of memory?)" if signum == signal.SIGKILL else ""
    return f"killed by {name}{oom}" if returncode < 0 else f"exit {returncode}: a step was killed by {name}{oom}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return ""


def log_tail(log: Path, count: int = LOG_TAIL_LINES) -> tuple[str, ...]:
    try:
        with log.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ()
    return tuple(text.splitlines()[-count:])


def append_log(log: Path, line: str) -> None:
    with log.open("a", encoding="utf-8") as fh:
        fh.write(line + "\n")
