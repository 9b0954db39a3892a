"""The only module that runs git: one runner, one error type that carries the command and stderr, and a named
`Repo` method (or a module function, for calls without a repository) for every git operation patchq performs.

Why one door:
- **Output pinned once.** Every diff patchq stores or compares is made by `Repo.diff`/`Repo.log_patches` with
  DIFF_CONFIG + DIFF_FLAGS, so a user's `diff.noprefix`, `diff.mnemonicPrefix`, `diff.algorithm`, external diff
  tool or textconv never ends up inside a patch file; git's messages are parsed in places (apply's hunk reports), so
  every call runs with LC_ALL=C.
- **Environment as an allowlist.** Of the caller's GIT_* variables only those for reaching a remote (ssh, proxy,
  TLS, askpass), locating git and the user's identity/global config pass; GIT_DIR, GIT_WORK_TREE, GIT_INDEX_FILE,
  GIT_INDEX_VERSION, GIT_CONFIG_PARAMETERS, GIT_TRACE* and every other one are dropped, so nothing in the shell can
  point patchq's git at another repository, index or stderr format. Other variables pass (PATH, HOME, LD_*, proxies,
  the tokens credential helpers read), as in pre-commit's `no_git_env`.
- **One trace.** `PATCHQ_TRACE_GIT=1` writes one line per git process to stderr (milliseconds, exit code, folder,
  argv less the NO_FILTERS settings every call carries); a value holding a `/` is a file to append those lines to
  instead (for runs whose stderr is captured, and tests that count git commands). Unset, empty or 0: off.
- **One version check.** The first git call checks `git --version` against MIN_GIT once per process.

The index-file reader/writer (pure Python, no git) lives in gitindex.py. This module is past ~900 lines on purpose:
it is the one door, a list of small named operations; split in two it would be two doors again.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, cast, overload

from .errors import EnvironmentFailure
from .signals import deferred

# The oldest git patchq runs on. Features it relies on: `fetch --no-write-fetch-head` (2.29), `init -b` (2.28),
# `rev-parse --end-of-options` (2.24), `status --porcelain=v1 --no-optional-locks` (2.15), `patch-id --stable`.
# `checkout.workers` (2.31) is a tuning knob older gits ignore. 2.30 is the floor the README has always promised.
MIN_GIT = (2, 30)

# The caller's GIT_* variables that reach git: how to reach a remote, where git's programs are, who the user is.
# Everything else named GIT_* is dropped (see the module docstring).
_GIT_KEEP = frozenset({
    "GIT_EXEC_PATH", "GIT_SSH", "GIT_SSH_COMMAND", "GIT_SSH_VARIANT", "GIT_ASKPASS", "GIT_PROXY_COMMAND",
    "GIT_ALLOW_PROTOCOL", "GIT_PROTOCOL_FROM_USER", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM",
    "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"})
# Families kept whole: TLS and HTTP transport settings, and `GIT_CONFIG_COUNT`/`_KEY_n`/`_VALUE_n` (CI systems pass
# credentials that way; the `-c` pins below still win over them).
_GIT_KEEP_PREFIXES = ("GIT_SSL_", "GIT_HTTP_", "GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_")

PATCHQ_IDENT = {"GIT_COMMITTER_NAME": "patchq", "GIT_COMMITTER_EMAIL": "patchq@localhost",
                "GIT_AUTHOR_NAME": "patchq", "GIT_AUTHOR_EMAIL": "patchq@localhost"}

# Settings that change what `git diff`/`git log -p` print, pinned for every diff patchq makes.
DIFF_CONFIG = ("-c", "diff.noprefix=false", "-c", "diff.mnemonicPrefix=false", "-c", "diff.suppressBlankEmpty=false",
               "-c", "diff.relative=false", "-c", "core.quotePath=true", "-c", "diff.algorithm=myers",
               "-c", "diff.interHunkContext=0", "-c", "diff.orderFile=/dev/null", "-c", "diff.submodule=short",
               "-c", "log.showSignature=false")
DIFF_FLAGS = ("--src-prefix=a/", "--dst-prefix=b/", "--no-ext-diff", "--no-textconv", "--no-color", "--full-index")


def patch_flags(*, renames: bool = False, binary: bool = True, context: int = 3) -> list[str]:
    """DIFF_FLAGS plus the three choices a caller makes: rename detection, binary bodies, context lines."""
    return [*DIFF_FLAGS, "-M" if renames else "--no-renames", *(["--binary"] if binary else []), f"-U{context}"]


MACHINE_FAILURES = ("No space left on device", "Disk quota exceeded", "Read-only file system", "File too large",
                    "Permission denied")   # git's stderr lines that name the real cause when the machine refused


SIGNAL_CAUSES: dict[int, str] = {signal.SIGXFSZ: "File too large (the process file-size limit, ulimit -f, was reached)",
                 signal.SIGKILL: "killed from outside (out of memory, or kill -9)"}


# A patch that adds `.gitattributes`/`.lfsconfig` must not make git-lfs (when the user has it) fetch from a server the
# patch names: every git patchq runs has the lfs filter switched off (an empty command disables a filter driver).
FULL_ID = re.compile(r"[0-9a-f]{40}")
_TREES: dict[tuple[str, str], str] = {}      # (repository, commit id) -> tree id, for Repo.tree_of

NO_FILTERS = ("-c", "filter.lfs.smudge=", "-c", "filter.lfs.clean=", "-c", "filter.lfs.process=",
              "-c", "filter.lfs.required=false")

_STALE_LOCK = re.compile(r"Unable to create '([^']+\.lock)': File exists")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _command_words(args: Sequence[str]) -> list[str]:
    """The arguments without `-c key=value` pairs: what a message names as the command."""
    words, skip = [], False
    for arg in args:
        if skip or arg == "-c":
            skip = not skip
            continue
        words.append(arg)
    return words


class GitError(EnvironmentFailure):
    """git exited non-zero where patchq expected success."""

    def __init__(self, args: list[str], returncode: int, stderr: str, cwd: str | None = None) -> None:
        lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
        machine = [ln for ln in lines if any(m in ln for m in MACHINE_FAILURES)]
        first = (machine or lines or ["no message"])[0]
        if returncode < 0:
            how = f"was killed by {_signal_name(-returncode)}"
            first = SIGNAL_CAUSES.get(-returncode, first if lines else "")
        else:
            how = f"failed (exit {returncode})"
        stale = _STALE_LOCK.search(stderr)
        if stale and not machine:
            first = (f"{stale.group(1)} exists: another git is running there, or one was killed and left it; "
                     "if no git runs in that repository, delete that file and run again")
        super().__init__(f"git {' '.join(_command_words(args)[:3])} {how}" + (f": {first}" if first else ""))
        self.args_list = args
        self.returncode = returncode
        self.stderr = stderr
        self.cwd = cwd


@dataclass(frozen=True)
class GitResult:
    returncode: int
    stdout: bytes
    stderr: str

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", "surrogateescape")

    @property
    def ok(self) -> bool:
        return self.returncode == 0


# ---- the runner -------------------------------------------------------------------------------------------------

def _base_env(extra: Mapping[str, str] | None, *, ident: bool = True) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("GIT_") or k in _GIT_KEEP or k.startswith(_GIT_KEEP_PREFIXES)}
    env["LC_ALL"] = "C"
    env["LANGUAGE"] = "C"
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["GIT_LFS_SKIP_SMUDGE"] = "1"
    env.setdefault("GIT_CONFIG_NOSYSTEM", "1")
    if ident:
        for key, value in PATCHQ_IDENT.items():
            env.setdefault(key, value)
    if extra:
        env.update(extra)
    return env


def _heap_kept() -> dict[str, str]:
    """glibc's malloc settings for a fast-import run: keep freed heap instead of handing it back to the kernel.

    fast-import allocates and frees a buffer per object; with glibc's default trimming that cost 81,000 minor
    page faults for the 4,375 small files of the benchmark sdist (540 with the heap kept) and the run took 0.29 s
    instead of 0.11 s. The process is short-lived, so the kept heap is returned when it exits. A setting the
    user made (either variable) is left as it is; other C libraries ignore the variable."""
    if "MALLOC_TRIM_THRESHOLD_" in os.environ or "malloc.trim" in os.environ.get("GLIBC_TUNABLES", ""):
        return {}
    return {"MALLOC_TRIM_THRESHOLD_": str(64 << 20)}


_trace_lock = threading.Lock()
_trace_unwritable: list[str] = []        # a trace file that could not be written: said once, then stderr


def _trace(argv: Sequence[str], cwd: str | Path | None, returncode: int | None, started: float) -> None:
    """One PATCHQ_TRACE_GIT line: elapsed milliseconds, exit code, folder, argv."""
    where = os.environ.get("PATCHQ_TRACE_GIT", "")
    if where in ("", "0"):
        return
    line = (f"patchq git: {(time.monotonic() - started) * 1000:.1f}ms exit={returncode} "
            f"cwd={cwd or os.getcwd()} {shlex.join(argv)}\n")
    with _trace_lock:
        if "/" in where and where not in _trace_unwritable:
            try:
                with open(where, "a", encoding="utf-8", errors="surrogateescape") as fh:
                    fh.write(line)
                return
            except OSError as exc:
                _trace_unwritable.append(where)
                sys.stderr.write(f"patchq: cannot write the PATCHQ_TRACE_GIT file {where} ({exc.strerror}); "
                                 "tracing to stderr instead\n")
        sys.stderr.write(line)
        sys.stderr.flush()


def parse_git_version(text: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) from `git --version` output ('git version 2.39.5', '... 2.45.1.windows.1',
    '... 2.40.0.rc1', Apple's '2.39.3 (Apple Git-146)'); None when it names no version."""
    m = re.match(r"\s*git version (\d+)\.(\d+)(?:\.(\d+))?", text)
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


_git_checked = False


def _ensure_git() -> None:
    """Once per process: git is on PATH and at least MIN_GIT. Below it, one line and exit 3 (EnvironmentFailure)."""
    global _git_checked
    if _git_checked:
        return
    need = ".".join(map(str, MIN_GIT))
    if shutil.which("git") is None:
        raise EnvironmentFailure(f"git is not installed or not on PATH; patchq needs git >= {need}")
    started = time.monotonic()
    proc = subprocess.run(["git", "--version"], env=_base_env(None), stdin=subprocess.DEVNULL,
                          capture_output=True, check=False)
    _trace(["git", "--version"], None, proc.returncode, started)
    text = proc.stdout.decode("utf-8", "replace").strip()
    found = parse_git_version(text)
    if found is None:
        raise EnvironmentFailure(f"cannot tell git's version from {text or 'nothing'!r}; patchq needs git >= {need}")
    if found[:2] < MIN_GIT:
        raise EnvironmentFailure(f"git {'.'.join(map(str, found))} is too old: patchq needs git >= {need} "
                                 f"({shutil.which('git')})")
    _git_checked = True


def _popen(args: Sequence[str], cwd: str | Path | None, env: dict[str, str], *, stdin_pipe: bool,
           stderr: int = subprocess.PIPE) -> subprocess.Popen[bytes]:
    _ensure_git()
    return subprocess.Popen(["git", *NO_FILTERS, *args], cwd=str(cwd) if cwd else None, env=env,
                            stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=stderr)


def run_git(args: list[str], *, cwd: str | Path | None = None, input: bytes | str | None = None,
            env: Mapping[str, str] | None = None, check: bool = True, ident: bool = True,
            stderr_to: IO[bytes] | None = None) -> GitResult:
    """Run git once. `check=False` returns failures as data (apply checks); otherwise they raise GitError.

    `stderr_to` (a binary stream) also receives git's stderr as it comes: `--progress` on a terminal. Only this
    module calls it (and the tests, to build fixtures): patchq's other modules use the named operations below."""
    data = input.encode("utf-8", "surrogateescape") if isinstance(input, str) else input
    proc = None
    started = time.monotonic()
    try:
        with deferred():         # a signal landing while git starts waits until `proc` can be stopped
            proc = _popen(args, cwd, _base_env(env, ident=ident), stdin_pipe=data is not None)
        if stderr_to is not None and data is None:
            stdout, stderr = _tee_stderr(proc, stderr_to)
        else:
            stdout, stderr = proc.communicate(data)
    except BaseException:        # Ctrl-C or SIGTERM of patchq: let git remove its lock files before going
        if proc is not None:
            _stop(proc)
        raise
    _trace(["git", *args], cwd, proc.returncode, started)
    result = GitResult(proc.returncode, stdout, stderr.decode("utf-8", "replace"))
    if check and proc.returncode != 0:
        raise GitError(list(args), proc.returncode, result.stderr, str(cwd) if cwd else None)
    return result


def _tee_stderr(proc: subprocess.Popen[bytes], sink: IO[bytes]) -> tuple[bytes, bytes]:
    """stdout kept; stderr kept and passed through as it arrives (git's progress meter redraws with \\r)."""
    kept: list[bytes] = []

    stream = cast(io.BufferedReader, proc.stderr)

    def pump() -> None:
        for chunk in iter(lambda: stream.read1(4096), b""):
            kept.append(chunk)
            try:
                sink.write(chunk)
                sink.flush()
            except (OSError, ValueError):
                pass

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    assert proc.stdout is not None
    stdout = proc.stdout.read()
    proc.wait()
    reader.join()
    return stdout, b"".join(kept)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End a git process the way git expects: SIGTERM first, so it deletes its `*.lock` files (a SIGKILL would
    leave `index.lock` behind and the next git in that repository would refuse to run)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Pending:
    """A git process started in the background; `result()` waits for it (used to overlap independent git work).
    Made by Repo's `start_*` methods."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        self.args, self.cwd, self.finished = args, cwd, False
        self.started = time.monotonic()
        self.proc: subprocess.Popen[bytes] | None = None
        try:
            with deferred():
                self.proc = _popen(args, cwd, _base_env(None), stdin_pipe=False)
        except BaseException:
            if self.proc is not None:
                _stop(self.proc)
                self.proc.communicate()
            raise

    def result(self, *, check: bool = True) -> GitResult:
        assert self.proc is not None
        out, err = self.proc.communicate()
        if not self.finished:
            _trace(["git", *self.args], self.cwd, self.proc.returncode, self.started)
        self.finished = True
        result = GitResult(self.proc.returncode, out, err.decode("utf-8", "replace"))
        if check and self.proc.returncode != 0:
            raise GitError(self.args, self.proc.returncode, result.stderr, str(self.cwd))
        return result

    def cancel(self) -> None:
        """Stop it if it still runs, and reap it (when the caller no longer needs the answer)."""
        if self.finished or self.proc is None:
            return
        _stop(self.proc)
        self.proc.communicate()
        _trace(["git", *self.args], self.cwd, self.proc.returncode, self.started)
        self.finished = True


class ObjectReader:
    """One long-lived `git cat-file --batch`: blobs and trees read on demand without a process each (thread-safe).

    Trees are parsed once per (commit, folder) and kept, for the bisection's index entries. Close it, or use it as
    a context manager."""

    def __init__(self, repo_path: Path) -> None:
        self.repo_path = repo_path
        self.started = time.monotonic()
        self.proc = _popen(["cat-file", "--batch"], repo_path, _base_env(None), stdin_pipe=True,
                           stderr=subprocess.DEVNULL)
        self.lock = threading.Lock()
        self.trees: dict[str, dict[str, tuple[str, str]]] = {}

    def read_object(self, name: str) -> tuple[str, str, bytes] | None:
        """(id, type, content) of an object name (an id, `rev:path`); None when it names nothing."""
        if "\n" in name:
            raise ValueError("object names cannot contain newlines")
        assert self.proc.stdin is not None and self.proc.stdout is not None
        with self.lock:
            self.proc.stdin.write(name.encode("utf-8", "surrogateescape") + b"\n")
            self.proc.stdin.flush()
            header = self.proc.stdout.readline()
            if not header:
                raise GitError(["cat-file", "--batch"], self.proc.poll() or -1, "cat-file --batch ended early",
                               str(self.repo_path))
            parts = header.split()
            if len(parts) != 3:
                return None
            data = self.proc.stdout.read(int(parts[2]) + 1)[:-1]
        return parts[0].decode(), parts[1].decode(), data

    def read(self, spec: str) -> bytes | None:
        """The blob that `spec` names; None when it names nothing or not a blob."""
        found = self.read_object(spec)
        return found[2] if found is not None and found[1] == "blob" else None

    def tree(self, commit: str, folder: str) -> dict[str, tuple[str, str]]:
        """name -> (mode, id) of the entries of `folder` ("" = the root) at `commit`; {} when it is no folder."""
        key = f"{commit}:{folder}"
        if key not in self.trees:
            found = self.read_object(key)
            entries: dict[str, tuple[str, str]] = {}
            if found and found[1] == "tree":
                data, pos = found[2], 0
                while pos < len(data):
                    space = data.index(b" ", pos)
                    nul = data.index(b"\0", space)
                    mode = data[pos:space].decode()
                    entries[data[space + 1:nul].decode("utf-8", "surrogateescape")] = (
                        mode.rjust(6, "0"), data[nul + 1:nul + 21].hex())
                    pos = nul + 21
            self.trees[key] = entries
        return self.trees[key]

    def entries(self, commit: str, paths: list[str]) -> list[tuple[str, str, str]]:
        """(mode, id, path) of the files among `paths` that exist at `commit` (index entries for them)."""
        out = []
        for path in paths:
            folder, _, name = path.rpartition("/")
            found = self.tree(commit, folder).get(name)
            if found and found[0] not in ("040000", "160000"):
                out.append((found[0], found[1], path))
        return out

    def close(self) -> None:
        """End the process: its stdin closed, it exits; waiting for its stdout to end first means the wait below
        finds it gone instead of polling with sleeps (a few milliseconds per reader)."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        if self.proc.stdout is not None:
            deadline = time.monotonic() + 10
            with contextlib.suppress(OSError, ValueError):
                while (left := deadline - time.monotonic()) > 0 and select.select([self.proc.stdout], [], [], left)[0]:
                    if not os.read(self.proc.stdout.fileno(), 65536):
                        break
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _stop(self.proc)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        _trace(["git", "cat-file", "--batch"], self.repo_path, self.proc.returncode, self.started)

    def __enter__(self) -> ObjectReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- calls without a repository -------------------------------------------------------------------------------

def _progress(stderr_to: IO[bytes] | None) -> list[str]:
    return ["--progress"] if stderr_to is not None else ["--quiet"]


def clone_shared(source: Path, dest: Path) -> Repo:
    """A clone without a checkout that borrows `source`'s objects (alternates): instant, nothing copied."""
    run_git(["clone", "--quiet", "--shared", "--no-checkout", str(source), str(dest)])
    return Repo(dest)


def clone_bare(source: Path, dest: Path) -> Repo:
    run_git(["clone", "--quiet", "--bare", str(source), str(dest)])
    return Repo(dest)


def clone_mirror(url: str, dest: Path, *, stderr_to: IO[bytes] | None = None) -> Repo:
    """`git clone --mirror`; `stderr_to` shows git's progress meter as it comes (raises GitError on failure)."""
    run_git(["clone", "--mirror", *_progress(stderr_to), url, str(dest)], stderr_to=stderr_to)
    return Repo(dest)


def remote_reachable(url: str) -> bool:
    """Whether `git ls-remote` gets an answer from `url` (no prompt: GIT_TERMINAL_PROMPT is 0)."""
    return run_git(["ls-remote", "--heads", url], check=False).ok


def toplevel(folder: Path) -> Path | None:
    """The work tree `folder` is inside, or None when it is in none."""
    res = run_git(["rev-parse", "--show-toplevel"], cwd=folder, check=False)
    return Path(res.out.strip()) if res.ok else None


def patch_ids(diffs: Sequence[bytes]) -> list[str | None]:
    """git's stable patch-id of each diff (equal for the same change whatever its line numbers), in one process;
    None for a diff that changes nothing."""
    if not diffs:
        return []
    feed = b"".join(f"commit {n + 1:040x}\n\n".encode() + d + (b"" if d.endswith(b"\n") else b"\n")
                    for n, d in enumerate(diffs))
    found: dict[int, str] = {}
    for line in run_git(["patch-id", "--stable"], input=feed).out.splitlines():
        pid, _, commit = line.partition(" ")
        found[int(commit, 16) - 1] = pid
    return [found.get(n) for n in range(len(diffs))]


def apply_outside_repo(folder: Path, diff: bytes, *, strip: int, check_only: bool = False,
                       numstat: bool = False) -> GitResult:
    """`git apply` as a plain patch program on a folder that is no repository (an installed package).

    git must not find a repository above it (a venv inside a checkout) and apply there: the search stops at the
    folder's parent. `check_only` answers as data; `numstat` (the paths, `-z`) and applying raise GitError."""
    env = {"GIT_CEILING_DIRECTORIES": str(folder.parent)}
    if check_only:
        return run_git(["apply", "--check", f"-p{strip}", "-"], cwd=folder, input=diff, env=env, check=False)
    if numstat:
        return run_git(["apply", "--numstat", "-z", f"-p{strip}", "-"], cwd=folder, input=diff, env=env)
    return run_git(["apply", f"-p{strip}", "--whitespace=nowarn", "-"], cwd=folder, input=diff, env=env)


class Repo:
    """A git repository (bare or with a work tree) and the git operations patchq performs on it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def _run(self, *args: str, input: bytes | str | None = None, env: Mapping[str, str] | None = None,
             check: bool = True) -> GitResult:
        return run_git(list(args), cwd=self.path, input=input, env=env, check=check)

    def _out(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        return self._run(*args, env=env).out.strip()

    # Raw git, for tests that build fixtures (commits, tags, worktrees) and for the build package until it has its
    # named methods. patchq's modules use the named operations: test_git_runner fails on any other caller.
    run = _run
    out = _out

    # ---- creation ---------------------------------------------------------------------------------------------
    @classmethod
    def init(cls, path: str | Path, *, bare: bool = False) -> Repo:
        Path(path).mkdir(parents=True, exist_ok=True)
        run_git(["init", "-q", "-b", "main", *(["--bare"] if bare else []), str(path)])
        return cls(path)

    def config(self, key: str, value: str) -> None:
        self._run("config", key, value)

    # ---- refs and objects -------------------------------------------------------------------------------------
    def rev_parse(self, rev: str) -> str | None:
        """Full id of `rev` as a commit, or None when it does not name one."""
        res = self._run("rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}", check=False)
        return res.out.strip() if res.ok else None

    def has_commit(self, sha: str) -> bool:
        return self._run("cat-file", "-e", f"{sha}^{{commit}}", check=False).ok

    def has_tree(self, rev: str) -> bool:
        """Whether `rev`'s tree is in the object store (a checkout whose borrowed objects went away has none)."""
        return self._run("cat-file", "-e", f"{rev}^{{tree}}", check=False).ok

    def has_objects(self, names: list[str]) -> bool:
        """Whether every object (full or abbreviated id) exists, in one `cat-file --batch-check`."""
        res = self._run("cat-file", "--batch-check", input="".join(f"{n}\n" for n in names), check=False)
        return res.ok and "missing" not in res.out and "ambiguous" not in res.out

    def tree_of(self, rev: str) -> str:
        """The tree of a commit; remembered for full commit ids (an object never changes), so asking again for
        the same commit in one command starts no process."""
        key = (str(self.path), rev)
        if key in _TREES:
            return _TREES[key]
        tree = self._out("rev-parse", "--verify", f"{rev}^{{tree}}")
        if FULL_ID.fullmatch(rev):
            if len(_TREES) > 4096:
                _TREES.clear()
            _TREES[key] = tree
        return tree

    def head(self) -> str | None:
        return self.rev_parse("HEAD")

    def branch_name(self) -> str:
        """The branch HEAD is on, '' when detached."""
        return self._run("symbolic-ref", "--short", "-q", "HEAD", check=False).out.strip()

    def subject(self, rev: str) -> str:
        return self._out("log", "-1", "--format=%s", rev)

    def refs(self, pattern: str = "") -> list[str]:
        args = ["for-each-ref", "--format=%(refname:short)"]
        if pattern:
            args.append(pattern)
        return [ln for ln in self._out(*args).splitlines() if ln]

    def rev_list(self, *args: str) -> list[str]:
        return [ln for ln in self._out("rev-list", *args).splitlines() if ln]

    def parents_of(self, commit: str) -> list[str]:
        return self._out("rev-list", "--parents", "-n", "1", commit).split()[1:]

    def is_ancestor(self, older: str, newer: str) -> bool:
        return self._run("merge-base", "--is-ancestor", older, newer, check=False).ok

    def merge_base(self, one: str, other: str) -> str | None:
        """The best common ancestor of two commits; None when they share no history."""
        res = self._run("merge-base", one, other, check=False)
        return res.out.strip() if res.ok else None

    def update_ref(self, ref: str, sha: str, message: str = "patchq") -> None:
        self._run("update-ref", "-m", message, ref, sha)

    def drop_ref_lock(self, ref: str) -> None:
        """Remove the lock file of `ref`. Only for a ref nothing else may move now (the caller holds the lock that
        guards it): there a lock file is one a git killed by SIGKILL could not remove, and it would refuse every
        later update of the ref."""
        dot_git = self.path / ".git"
        ((dot_git if dot_git.is_dir() else self.path) / f"{ref}.lock").unlink(missing_ok=True)

    def delete_ref(self, ref: str) -> None:
        self._run("update-ref", "-d", ref, check=False)

    def delete_refs_under(self, prefix: str) -> None:
        """Every ref below `prefix/` gone, in one `update-ref --stdin` transaction."""
        refs = self._run("for-each-ref", "--format=%(refname)", prefix + "/", check=False).out.split()
        if refs:
            self._run("update-ref", "--stdin", input="".join(f"delete {r}\n" for r in refs))

    def ls_tree_paths(self, rev: str) -> list[str]:
        return self._run("ls-tree", "-r", "-z", "--name-only", rev).out.split("\0")[:-1]

    def ls_tree_entries(self, rev: str) -> list[tuple[str, str, str]]:
        """(mode, object id, path) of every file of `rev`'s tree, recursively (submodules as mode 160000)."""
        out = []
        for record in self._run("ls-tree", "-r", "-z", "--full-tree", rev).out.split("\0"):
            if record:
                meta, _, path = record.partition("\t")
                mode, _, sha = meta.split(" ")
                out.append((mode, sha, path))
        return out

    def ls_tree_raw(self, rev: str, paths: list[str], *, recursive: bool = False) -> bytes:
        """`git ls-tree -z --full-tree` of `paths` at `rev` as git prints it (the `--index-info` input format)."""
        return self._run("ls-tree", *(["-r"] if recursive else []), "-z", "--full-tree", rev, "--", *paths).stdout

    def hash_object(self, data: bytes, *, write: bool = False) -> str:
        return self._run("hash-object", "--stdin", *(["-w"] if write else []), input=data).out.strip()

    def write_blobs(self, blobs: list[bytes]) -> list[str]:
        """Store contents as blobs; their ids in the same order."""
        return [self.hash_object(data, write=True) for data in blobs]

    def read_blob(self, rev: str, path: str) -> bytes | None:
        res = self._run("cat-file", "blob", f"{rev}:{path}", check=False)
        return res.stdout if res.ok else None

    def read_blobs(self, specs: list[str]) -> dict[str, bytes | None]:
        """Many `rev:path` contents in one `git cat-file --batch` process; None where a spec names nothing."""
        if not specs:
            return {}
        unique = list(dict.fromkeys(specs))
        if any("\n" in spec for spec in unique):
            raise ValueError("object names cannot contain newlines")
        raw = self._run("cat-file", "--batch", input="\n".join(unique) + "\n").stdout
        out: dict[str, bytes | None] = {}
        pos = 0
        for spec in unique:
            end = raw.index(b"\n", pos)
            header = raw[pos:end].split()
            pos = end + 1
            if len(header) == 3 and header[1] == b"blob":
                size = int(header[2])
                out[spec] = raw[pos:pos + size]
                pos += size + 1
            elif len(header) == 3:
                pos += int(header[2]) + 1
                out[spec] = None
            else:
                out[spec] = None
        return out

    def object_reader(self) -> ObjectReader:
        """One long-lived `git cat-file --batch` for many objects one at a time (use it in a `with` block)."""
        return ObjectReader(self.path)

    def grep_fixed_lines(self, rev: str, words: list[str]) -> bytes:
        """The lines of `rev`'s tree that contain any of `words` (one process for many words; empty when none)."""
        if not words:
            return b""
        args = ["grep", "-h", "-I", "-F"]
        for word in words:
            args += ["-e", word]
        return self._run(*args, rev, "--", check=False).stdout

    def fast_import(self, stream: bytes, *, bulk: bool = False) -> dict[int, str]:
        """Feed a `git fast-import` stream (objects packed, no loose files); mark number -> object id.

        `bulk` is for many unrelated files (a release archive): no delta search against the previous blob (on the
        vLLM 0.28.0 sdist it halved the run and the pack was the same size) and zlib level 1, the level git uses
        for loose objects (the pack 7% bigger, the run a quarter shorter again)."""
        tuning = ["-c", "pack.compression=1"] if bulk else []
        with tempfile.TemporaryDirectory(prefix="patchq-marks-") as tmp:
            marks = os.path.join(tmp, "marks")
            run_git([*tuning, "fast-import", "--quiet", "--force", *(["--depth=0"] if bulk else []),
                     f"--export-marks={marks}"], cwd=self.path, input=stream, env=_heap_kept())
            with open(marks) as fh:
                return {int(num[1:]): sha for num, sha in (line.split() for line in fh)}

    def fast_import_at_once(self, streams: list[bytes], *, bulk: bool = False) -> list[dict[int, str]]:
        """Several independent fast-import streams run side by side (one process each, one pack each): a
        fast-import run is single-threaded and most of a big archive's import is compressing its files."""
        if len(streams) < 2:
            return [self.fast_import(stream, bulk=bulk) for stream in streams]
        import concurrent.futures
        with concurrent.futures.ThreadPoolExecutor(len(streams)) as pool:
            return list(pool.map(lambda stream: self.fast_import(stream, bulk=bulk), streams))

    def commit_tree(self, tree: str, parents: list[str], message: str, *,
                    author: str = "", date: str = "") -> str:
        """Make a commit object. Author/committer dates are fixed so the same queue gives the same ids."""
        env = dict(PATCHQ_IDENT)
        name, email = _split_ident(author)
        if name:
            env["GIT_AUTHOR_NAME"] = name
            env["GIT_AUTHOR_EMAIL"] = email
        stamp = date or "1970-01-01T00:00:00+0000"
        env["GIT_AUTHOR_DATE"] = stamp
        env["GIT_COMMITTER_DATE"] = stamp
        args = ["commit-tree", tree]
        for parent in parents:
            args += ["-p", parent]
        return self._run(*args, input=message.encode(), env=env).out.strip()

    def commit_all(self, message: str, env: Mapping[str, str]) -> str:
        """Stage everything and commit it (identity and dates from `env`): building demo upstreams."""
        self._run("add", "-A", env=env)
        self._run("commit", "-q", "--allow-empty", "-m", message, env=env)
        return self._out("rev-parse", "HEAD")

    def commit_folder(self, folder: Path, message: str, env: Mapping[str, str]) -> str:
        """Commit a plain folder's files (all of them, ignore rules aside) as a parentless commit, through a
        throw-away index: no work tree of this repository is used. `env` gives identity and dates."""
        with tempfile.TemporaryDirectory(prefix="patchq-idx-") as tmp:
            full = {**env, "GIT_INDEX_FILE": os.path.join(tmp, "index"), "GIT_WORK_TREE": str(folder)}
            where = ["--git-dir", str(self.path)]
            run_git([*where, "add", "-A", "-f", "."], cwd=folder, env=full)
            tree = run_git([*where, "write-tree"], cwd=folder, env=full).out.strip()
            return run_git([*where, "commit-tree", tree], cwd=folder, env=full, input=message.encode()).out.strip()

    def user_ident(self, who: str = "AUTHOR") -> str | None:
        """git's `GIT_AUTHOR_IDENT`/`GIT_COMMITTER_IDENT` as the user has them (config, GIT_* name variables), not
        patchq's own; None when git knows no identity here."""
        res = run_git(["var", f"GIT_{who}_IDENT"], cwd=self.path, check=False, ident=False)
        return res.out.strip() if res.ok else None

    def has_user_identity(self) -> bool:
        """Whether git run by the user here (not by patchq, which supplies its own) knows who commits."""
        return self.user_ident("COMMITTER") is not None

    # ---- log ---------------------------------------------------------------------------------------------------
    @staticmethod
    def _log_format(fields: tuple[str, ...]) -> str:
        return "--format=%x1e" + "%x1f".join(fields)

    @staticmethod
    def parse_log_records(out: str) -> list[list[str]]:
        return [rec.rstrip("\n").split("\x1f") for rec in out.split("\x1e")[1:]]

    def log_records(self, *args: str, fields: tuple[str, ...], check: bool = True) -> list[list[str]]:
        """`git log` with one record per commit, `fields` being pretty-format placeholders (%H, %s, ...); with
        `check=False`, [] when git fails."""
        res = self._run("log", self._log_format(fields), *args, check=check)
        return self.parse_log_records(res.out) if res.ok else []

    def start_log_records(self, *args: str, fields: tuple[str, ...]) -> Pending:
        """`log_records` started in the background; read it with `parse_log_records(pending.result().out)`."""
        return Pending(["log", self._log_format(fields), *args], self.path)

    def first_removal(self, old: str, new: str, path: str) -> tuple[str, str] | None:
        """The first first-parent commit of old..new where `path` goes away (deleted, or renamed: without rename
        detection a rename is the old path's deletion): (id, subject)."""
        res = self._run("log", "--first-parent", "--reverse", "--no-renames", "--format=%H %s", "--diff-filter=D",
                        f"{old}..{new}", "--", path, check=False)
        line = res.out.splitlines()[0] if res.ok and res.out.strip() else ""
        sha, _, subject = line.partition(" ")
        return (sha, subject) if sha else None

    # ---- diffs: every patch text patchq makes comes from `diff` or `log_patches` -------------------------------
    def diff(self, old: str, new: str | None = None, paths: Sequence[str] = (), *, cached: bool = False,
             renames: bool = False, binary: bool = True, context: int = 3,
             env: Mapping[str, str] | None = None) -> bytes:
        """The patch text from `old` to `new` (trees, commits or blob ids); `new` None: to the index (`cached`) or
        the work tree. Output settings pinned (DIFF_CONFIG, DIFF_FLAGS); `paths` literal, in slices of 500 (a
        command line has a length limit)."""
        args = [*DIFF_CONFIG, "--literal-pathspecs", "diff", *patch_flags(renames=renames, binary=binary,
                                                                           context=context)]
        if cached:
            args.append("--cached")
        revs = [old] if new is None else [old, new]
        if not paths:
            return self._run(*args, *revs, "--", env=env).stdout
        ordered = sorted(paths)
        return b"".join(self._run(*args, *revs, "--", *ordered[start:start + 500], env=env).stdout
                        for start in range(0, len(ordered), 500))

    def diff_trees(self, old: str, new: str, *, binary: bool = True) -> bytes:
        """The diff between two trees or commits as patch files carry it, whatever the user's diff settings."""
        return self.diff(old, new, binary=binary)

    def commit_diff(self, commit: str) -> bytes:
        """The diff one commit introduces against its first parent."""
        return self.diff(f"{commit}^", commit)

    def diff_paths(self, old: str, new: str, paths: list[str]) -> bytes:
        """The binary-safe diff of `paths` between two trees."""
        return self.diff(old, new, paths)

    def staged_diff(self, base: str) -> bytes:
        """What the index holds against `base`."""
        return self.diff(base, cached=True)

    def worktree_diff(self, base: str, *, binary: bool = True) -> bytes:
        """The tracked files of the work tree against `base` (untracked files: `worktree_tree` first)."""
        return self.diff(base, binary=binary)

    def diff_blobs_zero_context(self, old: str, new: str) -> bytes:
        """`git diff -U0` of two blob ids: the hunk headers say which lines changed."""
        return self.diff(old, new, binary=False, context=0)

    def log_patches(self, *revs: str, first_parent: bool = False, no_merges: bool = False,
                    touching: Sequence[str] = ()) -> bytes:
        """`git log -p` of `revs`, each commit as `commit <id>` + a blank line + its pinned diff (the form
        `git patch-id` reads). Diff bodies never start a line with 'commit <40 hex>', so a split is unambiguous.
        With `touching`, only the commits that change one of those paths, each with its whole diff."""
        limit = ["--full-diff", "--", *touching] if touching else []
        return self._run(*DIFF_CONFIG, "--literal-pathspecs", "log", "-p", "--format=commit %H", *patch_flags(),
                         *(["--first-parent"] if first_parent else []), *(["--no-merges"] if no_merges else []),
                         *revs, *limit).stdout

    def log_patch_ids(self, *revs: str, no_merges: bool = False, touching: Sequence[str] = ()
                      ) -> list[tuple[str, str]]:
        """(commit, stable patch-id) of every commit of `revs` with a diff, in log order, in two processes;
        `touching` as in `log_patches`."""
        stream = self.log_patches(*revs, no_merges=no_merges, touching=touching)
        if not stream.strip():
            return []
        pairs = (line.split() for line in self._run("patch-id", "--stable", input=stream).out.splitlines())
        return [(p[1], p[0]) for p in pairs if len(p) == 2]

    def patch_id(self, diff: bytes) -> str | None:
        """git's stable patch-id of one diff."""
        return patch_ids([diff])[0]

    def name_status(self, old: str, new: str, *, renames: bool = False) -> list[tuple[str, list[str]]]:
        """(status, paths) per changed file between two commits; with `renames`, git's rename detection (R<score>
        with the old and the new path)."""
        out = self._run("-c", "diff.renameLimit=0", "diff", "--name-status", "-z", "--no-ext-diff", "--no-color",
                        "-M" if renames else "--no-renames", old, new, "--").out.split("\0")
        fields: list[tuple[str, list[str]]] = []
        pos = 0
        while pos < len(out) and out[pos]:
            status = out[pos]
            count = 2 if status[:1] in ("R", "C") else 1
            fields.append((status, out[pos + 1: pos + 1 + count]))
            pos += 1 + count
        return fields

    def changed_paths(self, old: str, new: str) -> list[str]:
        return self._run("diff", "--name-only", "-z", "--no-renames", old, new, "--").out.split("\0")[:-1]

    def index_changed_paths(self, commit: str, env: Mapping[str, str] | None = None) -> list[str]:
        """Paths where the index (`env` names which) differs from `commit`."""
        out = self._run("diff-index", "--cached", "-z", "--name-only", "--no-renames", commit, "--", env=env).out
        return [p for p in out.split("\0") if p]

    def unstaged_paths(self) -> list[str]:
        """Tracked files whose work-tree content differs from the index."""
        return [p for p in self._run("diff", "--name-only", "-z").out.split("\0") if p]

    def unmerged_paths(self) -> list[str]:
        out = self._run("diff", "--name-only", "--diff-filter=U", "-z").out
        return sorted({p for p in out.split("\0") if p})

    # ---- index and work tree -----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def temp_index(self, tree: str) -> Iterator[dict[str, str]]:
        """An index file outside the repository loaded with `tree`: apply checks without touching a work tree."""
        tmp = tempfile.mkdtemp(prefix="patchq-index-")
        try:
            env = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
            self.read_tree(tree, env)
            yield env
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def read_tree(self, tree: str, env: Mapping[str, str]) -> None:
        """Load `tree` ("" = the empty tree) into the index `env` names."""
        self._run("read-tree", *([tree] if tree else ["--empty"]), env=env)

    def index_info(self, listing: bytes, env: Mapping[str, str]) -> None:
        """Add `ls-tree -z` style records to the index `env` names (`update-index --index-info`)."""
        self._run("update-index", "-z", "--index-info", input=listing, env=env)

    def update_index(self, records: list[tuple[str, str, str]], env: Mapping[str, str]) -> None:
        """Set (mode, blob id, path) entries in the index `env` names."""
        listing = "".join(f"{mode} {sha}\t{path}\0" for mode, sha, path in records)
        self.index_info(listing.encode("utf-8", "surrogateescape"), env)

    def index_blobs(self, env: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
        """(path, blob id) of every entry of the index `env` names."""
        out = []
        for record in self._run("ls-files", "-s", "-z", env=env).out.split("\0"):
            meta, _, path = record.partition("\t")
            if path:
                out.append((path, meta.split()[1]))
        return out

    def write_tree(self, env: Mapping[str, str] | None = None) -> str:
        return self._out("write-tree", env=env)

    def add(self, paths: Sequence[str]) -> None:
        self._run("add", "--", *paths)

    def add_all(self, env: Mapping[str, str] | None = None) -> None:
        """Stage every change of the work tree, untracked files included (into the index `env` names)."""
        self._run("add", "-A", "--", ".", env=env)

    def worktree_tree(self, base: str = "HEAD") -> str:
        """The tree of the work tree as it is (untracked, not ignored files included), via a throw-away index:
        neither the checkout's index nor its files are touched."""
        with self.temp_index(base) as env:
            self.add_all(env)
            return self.write_tree(env=env)

    def untracked_files(self) -> list[str]:
        return [p for p in self._run("ls-files", "-z", "--others", "--exclude-standard").out.split("\0") if p]

    def tracked_and_untracked_files(self) -> list[str]:
        """Files git tracks or would track (untracked, not ignored), sorted, relative to the work tree's top."""
        out = self._run("ls-files", "-z", "--cached", "--others", "--exclude-standard").out
        return sorted({p for p in out.split("\0") if p})

    def ignored_files(self) -> list[str]:
        """Untracked files the work tree's ignore rules exclude, relative to `self.path`."""
        return self._run("ls-files", "-z", "--others", "--ignored", "--exclude-standard").out.split("\0")[:-1]

    def apply(self, patch: bytes, *, cached: bool = False, index: bool = False, threeway: bool = False,
              check: bool = False, reverse: bool = False, verbose: bool = False, context: int | None = None,
              reject: bool = False, env: Mapping[str, str] | None = None) -> GitResult:
        """`git apply` with failures returned as data; patchq classifies them."""
        args = ["apply", "--whitespace=nowarn"]
        for on, flag in ((cached, "--cached"), (index, "--index"), (threeway, "--3way"), (check, "--check"),
                         (reverse, "--reverse"), (verbose, "-v"), (reject, "--reject")):
            if on:
                args.append(flag)
        if context is not None:
            args.append(f"-C{context}")
        return self._run(*args, "-", input=patch, env=env, check=False)

    # --no-optional-locks: status would otherwise take index.lock to save refreshed stat data, and a status
    # cancelled or killed mid-way must not leave a lock behind in the checkout.
    STATUS_ARGS = ("--no-optional-locks", "status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames")

    def start_status(self) -> Pending:
        """`status_porcelain()` started in the background; read it with `parse_status(pending.result().out)`."""
        return Pending(list(self.STATUS_ARGS), self.path)

    @staticmethod
    def parse_status(out: str) -> list[str]:
        return [e[3:] for e in out.split("\0") if len(e) > 3]

    @overload
    def status_porcelain(self, *, ignored: Literal[False] = False) -> list[str]: ...
    @overload
    def status_porcelain(self, *, ignored: Literal[True]) -> list[tuple[str, bool]]: ...

    def status_porcelain(self, *, ignored: bool = False) -> list[str] | list[tuple[str, bool]]:
        """Changed and untracked files of the work tree; with `ignored`, (path, is_ignored) pairs including them."""
        args = list(self.STATUS_ARGS)
        if ignored:
            args.append("--ignored")
        entries = [e for e in self._run(*args).out.split("\0") if len(e) > 3]
        if ignored:
            return [(e[3:], e.startswith("!!")) for e in entries]
        return [e[3:] for e in entries]

    def reset_mixed(self, commit: str) -> None:
        """HEAD and the index to `commit`; the work tree's files stay as they are."""
        self._run("reset", "-q", commit, "--")

    def reset_hard(self, rev: str) -> None:
        """HEAD, index and files to `rev`, and every untracked or ignored file removed."""
        self._run("reset", "-q", "--hard", rev)
        self._run("clean", "-q", "-fdx")

    def checkout(self, commit: str, *, branch: str | None = None, force: bool = False,
                 workers: int | None = None) -> None:
        """Move the work tree to `commit`: detached, or on `branch` (made or reset there). `workers` spreads a
        fresh checkout's writes over processes (`checkout.workers`, for this run only, not stored in the config)."""
        args = [*(["-c", f"checkout.workers={workers}"] if workers is not None else []), "checkout", "-q"]
        if force:
            args.append("-f")
        self._run(*args, *(["-B", branch, commit] if branch else ["--detach", commit]))

    def clean(self) -> None:
        """Remove untracked files and folders (ignored ones stay)."""
        self._run("clean", "-q", "-fd")

    def quit_operation(self, command: str) -> None:
        """Forget an interrupted `git am` or `git rebase` (its state files), leaving HEAD and files as they are."""
        if command not in ("am", "rebase"):
            raise ValueError(f"no --quit for git {command}")
        self._run(command, "--quit", check=False)

    def rerere_record(self) -> None:
        """Let rerere record the resolution now in the work tree, to replay it next time."""
        self._run("rerere", check=False)

    def rerere_clear(self) -> None:
        """Drop rerere's state for a conflict being abandoned (recorded resolutions stay)."""
        self._run("rerere", "clear", check=False)

    # ---- other repositories ------------------------------------------------------------------------------------
    def fetch_ref(self, source: Path, refspec: str) -> None:
        """Copy a ref (and what it needs) from a local repository, e.g. `+refs/x:refs/y`."""
        self._run("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", str(source), refspec)

    def fetch_commits(self, url: str, commits: Sequence[str], *, stderr_to: IO[bytes] | None = None) -> bool:
        """Fetch exactly these commits (and their history) by id, no branch listing; False when it did not work."""
        return run_git(["--git-dir", str(self.path), "fetch", *_progress(stderr_to), "--no-tags",
                        "--no-write-fetch-head", url, *commits], check=False, stderr_to=stderr_to).ok

    def fetch_mirror(self, url: str, *, stderr_to: IO[bytes] | None = None) -> GitResult:
        """Bring a mirror's branches and tags up to `url`'s (pruning what went away); failure as data."""
        return run_git(["--git-dir", str(self.path), "fetch", *_progress(stderr_to), "--prune", url,
                        "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"], check=False, stderr_to=stderr_to)


def _split_ident(ident: str) -> tuple[str, str]:
    """'Name <email>' -> (name, email); a bare name gets a placeholder address."""
    ident = ident.strip()
    if not ident:
        return "", ""
    if "<" in ident and ident.endswith(">"):
        name, _, email = ident[:-1].partition("<")
        return name.strip() or email.strip(), email.strip()
    return ident, "unknown@localhost"


def objects_dir(repo_path: Path) -> Path:
    """The object store of a bare repository or of a work tree's .git."""
    dot_git = repo_path / ".git"
    return dot_git / "objects" if dot_git.is_dir() else repo_path / "objects"
