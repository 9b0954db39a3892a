"""patchq's own checkouts and the work in them that patchq did not write.

`patchq apply` regenerates `.patchq/checkouts/<stack>/<upstream>` from the queue every time. Before it moves one,
this module says what the move would lose — uncommitted changes, and commits made on top of what patchq last wrote
there — so that apply can refuse, naming them, or with `--force` keep them under `refs/patchq/saved/...` first.

A commit counts as patchq's own when patchq's committer identity made it (fast-import, refresh's amend) or when it
is reachable from `refs/patchq/applied`, the head patchq last moved the checkout to. A user's commit whose
`Patchq-Id` names a queue patch with the very same change (after `git am` + `patchq refresh`, or `patchq sync`) is
already kept by the queue and does not count either.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from .git import PATCHQ_IDENT, Pending, Repo
from .txn import atomic_write

APPLIED_REF = "refs/patchq/applied"          # in the checkout: the head patchq last moved it to
SAVED_PREFIX = "refs/patchq/saved"           # in the checkout: work set aside by 'apply --force'
OWNER_MARK = "patchq-checkout"               # same name as sources.OWNER_MARK (kept here to avoid an import cycle)
CHECKOUT_IDENT = ("patchq checkout", "patchq-checkout@localhost")   # local identity when git knows none
_FIELDS = ("%H", "%ce", "%s", "%(trailers:key=Patchq-Id,valueonly,separator=%x2C)")
_IN_PROGRESS = (("rebase-apply/applying", "git am"), ("rebase-apply", "git rebase"), ("rebase-merge", "git rebase"),
                ("MERGE_HEAD", "git merge"), ("CHERRY_PICK_HEAD", "git cherry-pick"), ("REVERT_HEAD", "git revert"))


@dataclass(frozen=True)
class LocalCommit:
    """A commit in a checkout: its id, subject, and the patch its Patchq-Id trailer names ("" when none)."""

    sha: str
    subject: str
    patch_id: str = ""
    by_patchq: bool = False

    @property
    def label(self) -> str:
        return f"{self.sha[:10]} {self.subject!r}"


@dataclass(frozen=True)
class LocalWork:
    """What moving a checkout would lose: changed files, commits patchq did not write, a git operation underway."""

    checkout: str
    upstream: str
    dirty: tuple[str, ...] = ()
    commits: tuple[LocalCommit, ...] = ()      # newest first
    in_progress: str = ""                      # "git am", "git rebase", ... stopped in the checkout

    @property
    def empty(self) -> bool:
        return not (self.dirty or self.commits or self.in_progress)

    def describe(self) -> str:
        parts = []
        if self.commits:
            shown = ", ".join(c.label for c in self.commits[:3])
            more = f" and {len(self.commits) - 3} more" if len(self.commits) > 3 else ""
            parts.append(f"{len(self.commits)} commit{'s' if len(self.commits) > 1 else ''} patchq did not write "
                         f"({shown}{more})")
        if self.dirty:
            parts.append(f"uncommitted changes ({', '.join(self.dirty[:3])}{', ...' if len(self.dirty) > 3 else ''})")
        if self.in_progress:
            parts.append(f"a stopped '{self.in_progress}'")
        return " and ".join(parts)


@dataclass(frozen=True)
class SavedWork:
    """Work set aside before a forced apply: the ref that keeps it, in the checkout's own repository."""

    checkout: str
    upstream: str
    ref: str
    commit: str
    commits: tuple[LocalCommit, ...]
    dirty: tuple[str, ...]

    def sentence(self) -> str:
        what = []
        if self.commits:
            what.append(f"{len(self.commits)} commit{'s' if len(self.commits) > 1 else ''}")
        if self.dirty:
            what.append("uncommitted changes")
        return (f"{self.upstream}: saved {' and '.join(what)} under {self.ref} before resetting; "
                f"see them with: git -C {self.checkout} log -p {self.ref}")


def is_patchq_checkout(path: Path) -> bool:
    return (path / ".git" / OWNER_MARK).is_file()


def operation_in_progress(path: Path) -> str:
    """The git operation stopped in a checkout ('git am', 'git rebase', ...), or ''."""
    git_dir = path / ".git"
    for name, what in _IN_PROGRESS:
        if (git_dir / name).exists():
            return what
    return ""


def _has_ref(path: Path, ref: str) -> bool:
    git_dir = path / ".git"
    if (git_dir / ref).is_file():
        return True
    packed = git_dir / "packed-refs"
    return packed.is_file() and f" {ref}\n" in packed.read_text(errors="replace")


def _local_revs(path: Path) -> list[str]:
    """The checkout's own commits: from HEAD, less what any remote or patchq's last apply has."""
    return ["HEAD", "--not", "--remotes", *([APPLIED_REF] if _has_ref(path, APPLIED_REF) else [])]


def start_local_commits(path: Path) -> Pending | None:
    """Start listing a patchq checkout's own commits in the background (they run while queues are judged)."""
    if is_patchq_checkout(path) and (path / ".git" / "HEAD").is_file():
        return Repo(path).start_log_records(*_local_revs(path), fields=_FIELDS)
    return None


def parse_commits(records: list[list[str]]) -> list[LocalCommit]:
    commits = []
    for fields in records:
        if len(fields) < 4:
            continue
        sha, committer, subject, trailer = fields[:4]
        commits.append(LocalCommit(sha, subject, trailer.split(",")[0].strip(),
                                   committer == PATCHQ_IDENT["GIT_COMMITTER_EMAIL"]))
    return commits


def list_commits(repo: Repo, *revs: str) -> list[LocalCommit]:
    """Commits of `revs` (git log arguments), newest first, with their Patchq-Id trailers."""
    return parse_commits(repo.log_records(*revs, fields=_FIELDS))


def local_work(path: Path, upstream: str, *, pending_status: Pending | None = None,
               pending_log: Pending | None = None, queue_diffs: dict[str, bytes] | None = None) -> LocalWork:
    """What a patchq checkout holds that patchq did not write; `queue_diffs` (id -> diff) exempts commits the queue
    already holds."""
    repo = Repo(path)
    dirty = Repo.parse_status(pending_status.result().out) if pending_status is not None \
        else repo.status_porcelain()
    if pending_log is not None:
        done = pending_log.result(check=False)
        records = Repo.parse_log_records(done.out) if done.ok else []
    else:
        records = repo.log_records(*_local_revs(path), fields=_FIELDS, check=False)
    commits = [c for c in parse_commits(records) if not c.by_patchq]
    if commits and queue_diffs:
        commits = [c for c in commits if not _kept_by_queue(repo, c, queue_diffs)]
    return LocalWork(str(path), upstream, tuple(sorted(dirty)), tuple(commits), operation_in_progress(path))


def _kept_by_queue(repo: Repo, commit: LocalCommit, queue_diffs: dict[str, bytes]) -> bool:
    diff = queue_diffs.get(commit.patch_id)
    if diff is None:
        return False
    ours = repo.patch_id(repo.commit_diff(commit.sha))
    return ours is not None and ours == repo.patch_id(diff)


def save_local_work(work: LocalWork, stack: str) -> SavedWork:
    """Keep a checkout's commits and uncommitted changes under refs/patchq/saved/<stack>/<upstream>/<time>."""
    repo = Repo(work.checkout)
    head = repo.head() or ""
    top = head
    now = datetime.datetime.now(datetime.timezone.utc)
    if work.dirty:
        tree = repo.worktree_tree("HEAD")
        top = repo.commit_tree(tree, [head], f"patchq: uncommitted changes in {work.checkout}, saved before "
                               f"'patchq apply {stack} --force'\n", date=now.strftime("%Y-%m-%dT%H:%M:%S+0000"))
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    ref = f"{SAVED_PREFIX}/{stack}/{work.upstream}/{stamp}"
    n = 1
    while _has_ref(Path(work.checkout), ref):
        n += 1
        ref = f"{SAVED_PREFIX}/{stack}/{work.upstream}/{stamp}-{n}"
    repo.update_ref(ref, top, "patchq apply --force: saved local work")
    if work.in_progress == "git am":
        repo.quit_operation("am")
    elif work.in_progress == "git rebase":
        repo.quit_operation("rebase")
    elif work.in_progress:
        for name in ("MERGE_HEAD", "CHERRY_PICK_HEAD", "REVERT_HEAD"):
            (Path(work.checkout) / ".git" / name).unlink(missing_ok=True)
    return SavedWork(work.checkout, work.upstream, ref, top, work.commits, work.dirty)


def move_applied(repo: Repo, head: str, message: str) -> None:
    """Point refs/patchq/applied at `head`. The ref is patchq's alone and moves only under the workspace lock, so a
    lock file left for it is a killed run's (git cannot remove its lock when killed by SIGKILL) and goes first:
    otherwise every later apply of the stack would stop on it."""
    repo.drop_ref_lock(APPLIED_REF)
    repo.update_ref(APPLIED_REF, head, message)


def record_applied(path: Path, head: str, *, created: bool) -> None:
    """Remember the head patchq moved a checkout to, and give the checkout a committer identity when git has none
    (so the `git am -3` recipe of a conflict works in a container without a global git identity)."""
    repo = Repo(path)
    move_applied(repo, head, "patchq apply")
    checked = path / ".git" / "patchq-identity"
    if created or not checked.exists():
        if not repo.has_user_identity():
            repo.config("user.name", CHECKOUT_IDENT[0])
            repo.config("user.email", CHECKOUT_IDENT[1])
        atomic_write(checked, b"identity checked\n")


def checkout_base(path: Path, pin: str, archive_sha256: str = "") -> str:
    """The commit a patchq checkout's queue sits on: the pin, or the archive commit that stood in for it ('' when
    the checkout is on neither, e.g. after pins.lock moved)."""
    repo = Repo(path)
    if repo.has_commit(pin) and repo.is_ancestor(pin, "HEAD"):
        return pin
    mark = path / ".git" / OWNER_MARK
    if archive_sha256 and mark.is_file():
        mirror = Repo(mark.read_text().strip())
        commit = mirror.rev_parse(f"refs/patchq/archive/{archive_sha256[:16]}") if mirror.path.is_dir() else None
        if commit and repo.has_commit(commit) and repo.is_ancestor(commit, "HEAD"):
            return commit
    return ""
