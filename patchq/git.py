"""The only module that runs git: one small runner, one error type that carries the command and stderr.

Everything else asks `Repo` for what it needs. git's messages are parsed in places (apply's hunk reports), so every
call runs with LC_ALL=C and without the caller's GIT_* variables leaking in.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

from .errors import EnvironmentFailure
from .signals import deferred

# Variables that would redirect git to another repository or identity if inherited from the user's shell.
_LEAKY = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES",
          "GIT_NAMESPACE", "GIT_CEILING_DIRECTORIES", "GIT_COMMON_DIR", "GIT_PREFIX")

PATCHQ_IDENT = {"GIT_COMMITTER_NAME": "patchq", "GIT_COMMITTER_EMAIL": "patchq@localhost",
                "GIT_AUTHOR_NAME": "patchq", "GIT_AUTHOR_EMAIL": "patchq@localhost"}


# Settings that change what `git diff` prints, pinned for every diff patchq stores: a user's `diff.noprefix`,
# `diff.mnemonicPrefix`, `diff.context` or external diff tool must not end up inside a patch file.
DIFF_CONFIG = ("-c", "diff.noprefix=false", "-c", "diff.mnemonicPrefix=false", "-c", "diff.suppressBlankEmpty=false",
               "-c", "diff.relative=false", "-c", "core.quotePath=true")
DIFF_FLAGS = ("--src-prefix=a/", "--dst-prefix=b/", "--no-ext-diff", "--no-textconv", "--no-color", "--full-index",
              "--no-renames", "-U3")


MACHINE_FAILURES = ("No space left on device", "Disk quota exceeded", "Read-only file system", "File too large",
                    "Permission denied")   # git's stderr lines that name the real cause when the machine refused


SIGNAL_CAUSES = {signal.SIGXFSZ: "File too large (the process file-size limit, ulimit -f, was reached)",
                 signal.SIGKILL: "killed from outside (out of memory, or kill -9)"}


# A patch that adds `.gitattributes`/`.lfsconfig` must not make git-lfs (when the user has it) fetch from a server the
# patch names: every git patchq runs has the lfs filter switched off (an empty command disables a filter driver).
NO_FILTERS = ("-c", "filter.lfs.smudge=", "-c", "filter.lfs.clean=", "-c", "filter.lfs.process=",
              "-c", "filter.lfs.required=false")

_STALE_LOCK = re.compile(r"Unable to create '([^']+\.lock)': File exists")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


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
        super().__init__(f"git {' '.join(args[:3])} {how}" + (f": {first}" if first else ""))
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


def _base_env(extra: Mapping[str, str] | None, *, ident: bool = True) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _LEAKY}
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


def run_git(args: list[str], *, cwd: str | Path | None = None, input: bytes | str | None = None,
            env: Mapping[str, str] | None = None, check: bool = True, ident: bool = True,
            stderr_to=None) -> GitResult:
    """Run git once. `check=False` returns failures as data (apply checks); otherwise they raise GitError.

    `stderr_to` (a binary stream) also receives git's stderr as it comes: `--progress` on a terminal."""
    if shutil.which("git") is None:
        raise EnvironmentFailure("git is not installed or not on PATH; patchq needs git >= 2.30")
    data = input.encode("utf-8", "surrogateescape") if isinstance(input, str) else input
    proc = None
    try:
        with deferred():         # a signal landing while git starts waits until `proc` can be stopped
            proc = subprocess.Popen(["git", *NO_FILTERS, *args], cwd=str(cwd) if cwd else None,
                                    env=_base_env(env, ident=ident),
                                    stdin=subprocess.DEVNULL if data is None else subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if stderr_to is not None and data is None:
            stdout, stderr = _tee_stderr(proc, stderr_to)
        else:
            stdout, stderr = proc.communicate(data)
    except BaseException:        # Ctrl-C or SIGTERM of patchq: let git remove its lock files before going
        if proc is not None:
            _stop(proc)
        raise
    result = GitResult(proc.returncode, stdout, stderr.decode("utf-8", "replace"))
    if check and proc.returncode != 0:
        raise GitError(list(args), proc.returncode, result.stderr, str(cwd) if cwd else None)
    return result


def _tee_stderr(proc: subprocess.Popen, sink) -> tuple[bytes, bytes]:
    """stdout kept; stderr kept and passed through as it arrives (git's progress meter redraws with \\r)."""
    import threading
    kept: list[bytes] = []

    def pump() -> None:
        assert proc.stderr is not None
        for chunk in iter(lambda: proc.stderr.read1(4096), b""):
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


def _stop(proc: subprocess.Popen) -> None:
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
    """A git process started in the background; `result()` waits for it (used to overlap independent git work)."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        if shutil.which("git") is None:
            raise EnvironmentFailure("git is not installed or not on PATH; patchq needs git >= 2.30")
        self.args, self.cwd, self.finished = args, cwd, False
        self.proc = None
        try:
            with deferred():
                self.proc = subprocess.Popen(["git", *NO_FILTERS, *args], cwd=str(cwd), stdin=subprocess.DEVNULL,
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_base_env(None))
        except BaseException:
            if self.proc is not None:
                _stop(self.proc)
                self.proc.communicate()
            raise

    def result(self, *, check: bool = True) -> GitResult:
        out, err = self.proc.communicate()
        self.finished = True
        result = GitResult(self.proc.returncode, out, err.decode("utf-8", "replace"))
        if check and self.proc.returncode != 0:
            raise GitError(self.args, self.proc.returncode, result.stderr, str(self.cwd))
        return result

    def cancel(self) -> None:
        """Stop it if it still runs, and reap it (when the caller no longer needs the answer)."""
        if self.finished:
            return
        _stop(self.proc)
        self.proc.communicate()
        self.finished = True


class ObjectReader:
    """A running `git cat-file --batch`: objects read on demand without a process each (thread-safe)."""

    def __init__(self, repo_path: Path) -> None:
        if shutil.which("git") is None:
            raise EnvironmentFailure("git is not installed or not on PATH; patchq needs git >= 2.30")
        self.repo_path = repo_path
        self.proc = subprocess.Popen(["git", "cat-file", "--batch"], cwd=str(repo_path), env=_base_env(None),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.lock = threading.Lock()

    def read(self, spec: str) -> bytes | None:
        """The blob that `spec` (an id or `rev:path`) names; None when it names nothing or not a blob."""
        if "\n" in spec:
            raise ValueError("object names cannot contain newlines")
        assert self.proc.stdin is not None and self.proc.stdout is not None
        with self.lock:
            self.proc.stdin.write(spec.encode("utf-8", "surrogateescape") + b"\n")
            self.proc.stdin.flush()
            header = self.proc.stdout.readline()
            if not header:
                raise GitError(["cat-file", "--batch"], self.proc.poll() or -1, "cat-file --batch ended early",
                               str(self.repo_path))
            parts = header.split()
            if len(parts) != 3:
                return None
            data = self.proc.stdout.read(int(parts[2]) + 1)[:-1]
        return data if parts[1] == b"blob" else None

    def close(self) -> None:
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _stop(self.proc)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class Repo:
    """A git repository (bare or with a work tree) and the git operations patchq performs on it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def run(self, *args: str, input: bytes | str | None = None, env: Mapping[str, str] | None = None,
            check: bool = True) -> GitResult:
        return run_git(list(args), cwd=self.path, input=input, env=env, check=check)

    def out(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        return self.run(*args, env=env).out.strip()

    # ---- creation ---------------------------------------------------------------------------------------------
    @classmethod
    def init(cls, path: str | Path, *, bare: bool = False) -> Repo:
        Path(path).mkdir(parents=True, exist_ok=True)
        run_git(["init", "-q", "-b", "main", *(["--bare"] if bare else []), str(path)])
        return cls(path)

    # ---- refs and objects -------------------------------------------------------------------------------------
    def rev_parse(self, rev: str) -> str | None:
        """Full id of `rev` as a commit, or None when it does not name one."""
        res = self.run("rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}", check=False)
        return res.out.strip() if res.ok else None

    def has_commit(self, sha: str) -> bool:
        return self.run("cat-file", "-e", f"{sha}^{{commit}}", check=False).ok

    def has_objects(self, names: list[str]) -> bool:
        """Whether every object (full or abbreviated id) exists, in one `cat-file --batch-check`."""
        res = self.run("cat-file", "--batch-check", input="".join(f"{n}\n" for n in names), check=False)
        return res.ok and "missing" not in res.out and "ambiguous" not in res.out

    def tree_of(self, rev: str) -> str:
        return self.out("rev-parse", "--verify", f"{rev}^{{tree}}")

    def head(self) -> str | None:
        return self.rev_parse("HEAD")

    def subject(self, rev: str) -> str:
        return self.out("log", "-1", "--format=%s", rev)

    def refs(self, pattern: str = "") -> list[str]:
        args = ["for-each-ref", "--format=%(refname:short)"]
        if pattern:
            args.append(pattern)
        return [ln for ln in self.out(*args).splitlines() if ln]

    def rev_list(self, *args: str) -> list[str]:
        return [ln for ln in self.out("rev-list", *args).splitlines() if ln]

    def is_ancestor(self, older: str, newer: str) -> bool:
        return self.run("merge-base", "--is-ancestor", older, newer, check=False).ok

    def ls_tree_paths(self, rev: str) -> list[str]:
        return self.run("ls-tree", "-r", "-z", "--name-only", rev).out.split("\0")[:-1]

    def ls_tree_entries(self, rev: str) -> list[tuple[str, str, str]]:
        """(mode, object id, path) of every file of `rev`'s tree, recursively (submodules as mode 160000)."""
        out = []
        for record in self.run("ls-tree", "-r", "-z", "--full-tree", rev).out.split("\0"):
            if record:
                meta, _, path = record.partition("\t")
                mode, _, sha = meta.split(" ")
                out.append((mode, sha, path))
        return out

    def ignored_files(self) -> list[str]:
        """Untracked files the work tree's ignore rules exclude, relative to `self.path`."""
        return self.run("ls-files", "-z", "--others", "--ignored", "--exclude-standard").out.split("\0")[:-1]

    def write_blobs(self, blobs: list[bytes]) -> list[str]:
        """Store contents as blobs; their ids in the same order."""
        return [self.hash_object(data, write=True) for data in blobs]

    def update_index(self, records: list[tuple[str, str, str]], env: Mapping[str, str]) -> None:
        """Set (mode, blob id, path) entries in the index `env` names."""
        listing = "".join(f"{mode} {sha}\t{path}\0" for mode, sha, path in records)
        self.run("update-index", "-z", "--index-info", input=listing.encode("utf-8", "surrogateescape"), env=env)

    def diff_paths(self, old: str, new: str, paths: list[str]) -> bytes:
        """The binary-safe diff of `paths` between two trees, with output settings pinned against user config."""
        out, paths = [], sorted(paths)
        for start in range(0, len(paths), 500):        # in slices: a command line has a length limit
            out.append(self.run("-c", "diff.noprefix=false", "--literal-pathspecs", "diff", "--src-prefix=a/",
                                "--dst-prefix=b/", "--no-ext-diff", "--no-color", "--full-index", "--binary",
                                "--no-renames", old, new, "--", *paths[start:start + 500]).stdout)
        return b"".join(out)

    def delete_ref(self, ref: str) -> None:
        self.run("update-ref", "-d", ref, check=False)

    def path_exists(self, rev: str, path: str) -> bool:
        return self.run("cat-file", "-e", f"{rev}:{path}", check=False).ok

    def read_blob(self, rev: str, path: str) -> bytes | None:
        res = self.run("cat-file", "blob", f"{rev}:{path}", check=False)
        return res.stdout if res.ok else None

    def read_blobs(self, specs: list[str]) -> dict[str, bytes | None]:
        """Many `rev:path` contents in one `git cat-file --batch` process; None where a spec names nothing."""
        if not specs:
            return {}
        unique = list(dict.fromkeys(specs))
        if any("\n" in spec for spec in unique):
            raise ValueError("object names cannot contain newlines")
        raw = self.run("cat-file", "--batch", input="\n".join(unique) + "\n").stdout
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

    @contextlib.contextmanager
    def object_reader(self) -> Iterator["ObjectReader"]:
        """One long-lived `git cat-file --batch` for reading many objects one at a time (ends with the block)."""
        reader = ObjectReader(self.path)
        try:
            yield reader
        finally:
            reader.close()

    def diff_blobs_zero_context(self, old: str, new: str) -> bytes:
        """`git diff -U0` of two blob ids: the hunk headers say which lines changed."""
        return self.run(*DIFF_CONFIG, "diff", *DIFF_FLAGS, "-U0", old, new).stdout

    def grep_fixed_lines(self, rev: str, words: list[str]) -> bytes:
        """The lines of `rev`'s tree that contain any of `words` (one process for many words; empty when none)."""
        if not words:
            return b""
        args = ["grep", "-h", "-I", "-F"]
        for word in words:
            args += ["-e", word]
        return self.run(*args, rev, "--", check=False).stdout

    def hash_object(self, data: bytes, *, write: bool = False) -> str:
        return self.run("hash-object", "--stdin", *(["-w"] if write else []), input=data).out.strip()

    def diff_trees(self, old: str, new: str, *, binary: bool = True) -> bytes:
        """The diff between two trees or commits as patch files carry it, whatever the user's diff settings."""
        args = [*DIFF_CONFIG, "diff", *DIFF_FLAGS]
        if binary:
            args.append("--binary")
        return self.run(*args, old, new, "--").stdout

    def commit_diff(self, commit: str) -> bytes:
        """The diff one commit introduces against its first parent (pinned output, see DIFF_FLAGS)."""
        return self.diff_trees(f"{commit}^", commit)

    def worktree_tree(self, base: str = "HEAD") -> str:
        """The tree of the work tree as it is (untracked, not ignored files included), via a throw-away index:
        neither the checkout's index nor its files are touched."""
        with self.temp_index(base) as env:
            self.run("add", "-A", ".", env=env)
            return self.write_tree(env=env)

    def log_records(self, *args: str, fields: tuple[str, ...]) -> list[list[str]]:
        """`git log` with one record per commit, `fields` being pretty-format placeholders (%H, %s, ...)."""
        fmt = "%x1e" + "%x1f".join(fields)
        out = self.run("log", f"--format={fmt}", *args).out
        return [rec.rstrip("\n").split("\x1f") for rec in out.split("\x1e")[1:]]

    def update_ref(self, ref: str, sha: str, message: str = "patchq") -> None:
        self.run("update-ref", "-m", message, ref, sha)

    def config_get(self, key: str) -> str | None:
        res = self.run("config", "--get", key, check=False)
        return res.out.strip() if res.ok else None

    def has_user_identity(self) -> bool:
        """Whether git run by the user here (not by patchq, which supplies its own) knows who commits."""
        return run_git(["var", "GIT_COMMITTER_IDENT"], cwd=self.path, check=False, ident=False).ok

    def git_dir(self) -> Path:
        return Path(self.out("rev-parse", "--absolute-git-dir"))

    def name_status(self, old: str, new: str, *, renames: bool = False) -> list[tuple[str, list[str]]]:
        """(status, paths) per changed file between two commits; with `renames`, git's rename detection (R<score>
        with the old and the new path)."""
        out = self.run("-c", "diff.renameLimit=0", "diff", "--name-status", "-z", "--no-ext-diff", "--no-color",
                       "-M" if renames else "--no-renames", old, new, "--").out.split("\0")
        fields: list[tuple[str, list[str]]] = []
        pos = 0
        while pos < len(out) and out[pos]:
            status = out[pos]
            count = 2 if status[:1] in ("R", "C") else 1
            fields.append((status, out[pos + 1: pos + 1 + count]))
            pos += 1 + count
        return fields

    def first_removal(self, old: str, new: str, path: str) -> tuple[str, str] | None:
        """The first first-parent commit of old..new where `path` goes away (deleted, or renamed: without rename
        detection a rename is the old path's deletion): (id, subject)."""
        res = self.run("log", "--first-parent", "--reverse", "--no-renames", "--format=%H %s", "--diff-filter=D",
                       f"{old}..{new}", "--", path, check=False)
        line = res.out.splitlines()[0] if res.ok and res.out.strip() else ""
        sha, _, subject = line.partition(" ")
        return (sha, subject) if sha else None

    def changed_paths(self, old: str, new: str) -> list[str]:
        return self.run("diff", "--name-only", "-z", "--no-renames", old, new, "--").out.split("\0")[:-1]

    def patch_id(self, diff: bytes) -> str | None:
        """git's stable patch-id of a diff: equal for the same change whatever its line numbers."""
        res = self.run("patch-id", "--stable", input=diff)
        parts = res.out.split()
        return parts[0] if parts else None

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
        return self.run(*args, input=message.encode(), env=env).out.strip()

    # ---- index and work tree -----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def temp_index(self, tree: str) -> Iterator[dict[str, str]]:
        """An index file outside the repository loaded with `tree`: apply checks without touching a work tree."""
        tmp = tempfile.mkdtemp(prefix="patchq-index-")
        try:
            env = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
            self.run("read-tree", tree, env=env)
            yield env
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def write_tree(self, env: Mapping[str, str] | None = None) -> str:
        return self.out("write-tree", env=env)

    def apply(self, patch: bytes, *, cached: bool = False, index: bool = False, threeway: bool = False,
              check: bool = False, reverse: bool = False, verbose: bool = False, context: int | None = None,
              env: Mapping[str, str] | None = None) -> GitResult:
        """`git apply` with failures returned as data; patchq classifies them."""
        args = ["apply", "--whitespace=nowarn"]
        if cached:
            args.append("--cached")
        if index:
            args.append("--index")
        if threeway:
            args.append("--3way")
        if check:
            args.append("--check")
        if reverse:
            args.append("--reverse")
        if verbose:
            args.append("-v")
        if context is not None:
            args.append(f"-C{context}")
        return self.run(*args, "-", input=patch, env=env, check=False)

    # --no-optional-locks: status would otherwise take index.lock to save refreshed stat data, and a status
    # cancelled or killed mid-way must not leave a lock behind in the checkout.
    STATUS_ARGS = ("--no-optional-locks", "status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames")

    def start_status(self) -> Pending:
        """`status_porcelain()` started in the background; read it with `parse_status(pending.result().out)`."""
        return Pending(list(self.STATUS_ARGS), self.path)

    @staticmethod
    def parse_status(out: str) -> list[str]:
        return [e[3:] for e in out.split("\0") if len(e) > 3]

    def status_porcelain(self, *, ignored: bool = False) -> list:
        """Changed and untracked files of the work tree; with `ignored`, (path, is_ignored) pairs including them."""
        args = list(self.STATUS_ARGS)
        if ignored:
            args.append("--ignored")
        entries = [e for e in self.run(*args).out.split("\0") if len(e) > 3]
        if ignored:
            return [(e[3:], e.startswith("!!")) for e in entries]
        return [e[3:] for e in entries]

    def unmerged_paths(self) -> list[str]:
        out = self.run("diff", "--name-only", "--diff-filter=U", "-z").out
        return sorted(set(p for p in out.split("\0") if p))

    def reset_hard(self, rev: str) -> None:
        self.run("reset", "-q", "--hard", rev)
        self.run("clean", "-q", "-fdx")

    def checkout_detached(self, rev: str) -> None:
        self.run("checkout", "-q", "-f", "--detach", rev)
        self.run("clean", "-q", "-fdx")

    def config(self, key: str, value: str) -> None:
        self.run("config", key, value)

    # used by build/
    def work_tree_top(self) -> Path | None:
        """The top folder of the work tree this path is in; None outside any (or in a bare repository)."""
        res = self.run("rev-parse", "--show-toplevel", check=False)
        return Path(res.out.strip()) if res.ok and res.out.strip() else None

    def tracked_and_untracked_files(self) -> list[str]:
        """Files git tracks or would track (untracked, not ignored), sorted, relative to the work tree's top."""
        out = self.run("ls-files", "-z", "--cached", "--others", "--exclude-standard").out
        return sorted({p for p in out.split("\0") if p})


def _split_ident(ident: str) -> tuple[str, str]:
    """'Name <email>' -> (name, email); a bare name gets a placeholder address."""
    ident = ident.strip()
    if not ident:
        return "", ""
    if "<" in ident and ident.endswith(">"):
        name, _, email = ident[:-1].partition("<")
        return name.strip() or email.strip(), email.strip()
    return ident, "unknown@localhost"


def git_version() -> tuple[int, int]:
    out = run_git(["--version"]).out.split()
    nums = out[2].split(".") if len(out) > 2 else ["0", "0"]
    return int(nums[0]), int(nums[1]) if len(nums) > 1 and nums[1].isdigit() else 0


def read_index_entries(index_file: str | Path) -> dict[str, tuple[str, str, int]]:
    """path -> (mode, blob id, stage) read straight from an index file (version 2 or 3).

    patchq's temporary indexes are written with GIT_INDEX_VERSION=2; reading them here saves one git process per
    patch on the hot path of `apply`.
    """
    data = Path(index_file).read_bytes()
    if data[:4] != b"DIRC":
        raise EnvironmentFailure(f"{index_file} is not a git index")
    version = int.from_bytes(data[4:8], "big")
    if version not in (2, 3):
        raise EnvironmentFailure(f"index version {version} is not readable here")
    count = int.from_bytes(data[8:12], "big")
    pos = 12
    out: dict[str, tuple[str, str, int]] = {}
    for _ in range(count):
        mode = int.from_bytes(data[pos + 24:pos + 28], "big")
        sha = data[pos + 40:pos + 60].hex()
        flags = int.from_bytes(data[pos + 60:pos + 62], "big")
        header = 62
        if version == 3 and flags & 0x4000:
            header += 2
        name_start = pos + header
        name_end = data.index(b"\0", name_start)
        name = data[name_start:name_end].decode("utf-8", "surrogateescape")
        stage = (flags >> 12) & 0x3
        entry_len = header + (name_end - name_start)
        pos += (entry_len + 8) & ~7
        key = name if stage == 0 else f"{name}\0{stage}"
        out[key] = (f"{mode:06o}", sha, stage)
    return out


def write_index_file(path: str | Path, entries: list[tuple[str, str, str]]) -> None:
    """Write a version-2 index of (mode, blob id, path) entries at stage 0, stat data zero.

    For patchq's temporary indexes only (`git apply --cached` reads modes and blob ids, never stat data): loading
    a few paths this way costs no git process, where `ls-tree` + `update-index` cost two.
    """
    body = bytearray(b"DIRC" + (2).to_bytes(4, "big") + len(entries).to_bytes(4, "big"))
    for mode, sha, name in sorted(entries, key=lambda e: e[2].encode("utf-8", "surrogateescape")):
        raw = name.encode("utf-8", "surrogateescape")
        entry = bytes(24) + int(mode, 8).to_bytes(4, "big") + bytes(12) + bytes.fromhex(sha) + \
            min(len(raw), 0xFFF).to_bytes(2, "big") + raw
        body += entry + bytes(((len(entry) + 8) & ~7) - len(entry))
    body += hashlib.sha1(body).digest()
    with open(path, "wb") as fh:
        fh.write(body)


class TreeReader:
    """One long-lived `git cat-file --batch` for reading many trees (the bisection's index entries) without a
    process each (ObjectReader above reads blobs only). Close it (or use it as a context manager) when done."""

    def __init__(self, repo: "Repo") -> None:
        if shutil.which("git") is None:
            raise EnvironmentFailure("git is not installed or not on PATH; patchq needs git >= 2.30")
        self.proc = subprocess.Popen(["git", "cat-file", "--batch"], cwd=str(repo.path), env=_base_env(None),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.trees: dict[str, dict[str, tuple[str, str]]] = {}

    def read(self, name: str) -> tuple[str, str, bytes] | None:
        """(id, type, content) of an object name such as `commit:dir/file`; None when it names nothing."""
        if "\n" in name:
            raise ValueError("object names cannot contain newlines")
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(name.encode("utf-8", "surrogateescape") + b"\n")
        self.proc.stdin.flush()
        header = self.proc.stdout.readline().split()
        if len(header) != 3:
            return None
        size = int(header[2])
        data = self.proc.stdout.read(size + 1)[:size]
        return header[0].decode(), header[1].decode(), data

    def tree(self, commit: str, folder: str) -> dict[str, tuple[str, str]]:
        """name -> (mode, id) of the entries of `folder` ("" = the root) at `commit`; {} when it is no folder."""
        key = f"{commit}:{folder}"
        if key not in self.trees:
            found = self.read(key)
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
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _stop(self.proc)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> "TreeReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def objects_dir(repo_path: Path) -> Path:
    """The object store of a bare repository or of a work tree's .git."""
    dot_git = repo_path / ".git"
    return dot_git / "objects" if dot_git.is_dir() else repo_path / "objects"
