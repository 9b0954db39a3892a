"""Authoring a new patch from a checkout: which queue, whose name, which date, where in the queue.

`patchq new` run inside a checkout patchq made needs neither `-u` nor `--from`; the author comes from `--author`,
else from git's own identity settings; the date from `--date`, else today. A date that cannot be read is an error
(it used to become 1970 silently).
"""

from __future__ import annotations

import datetime
import email.utils
import re
from pathlib import Path

from .editloop import checkout_ref, here_checkout
from .errors import BadInput
from .git import Repo
from .model import PatchEntry, Status
from .patchfile import commit_message, date_to_git, format_date
from .queue import add_patch, worktree_diff
from .txn import Txn
from .workspace import Workspace

_IDENT = re.compile(r"^(.*?) <([^<>]*)>")


def parse_date(text: str, *, what: str = "--date") -> str:
    """`text` if it is a date patchq can write into a Date: header (YYYY-MM-DD, ISO 8601, RFC 2822), else an error."""
    text = text.strip()
    try:
        datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        return text
    except ValueError:
        pass
    try:
        if email.utils.parsedate_to_datetime(text) is not None:
            return text
    except (TypeError, ValueError, IndexError):
        pass
    raise BadInput(f"{what} {text!r} is not a date (write YYYY-MM-DD, an ISO 8601 time or an RFC 2822 date)")


def today() -> str:
    return datetime.datetime.now(datetime.timezone.utc).date().isoformat()


def parse_author(text: str) -> str:
    text = text.strip()
    m = _IDENT.match(text)
    if not m or not m.group(1).strip() or "@" not in m.group(2) or "\n" in text:
        raise BadInput(f"--author {text!r} is not 'Name <email>'")
    return f"{m.group(1).strip()} <{m.group(2).strip()}>"


def git_author(folder: Path) -> str:
    """'Name <email>' from git's settings as the user has them (config, GIT_AUTHOR_* variables), or ''."""
    ident = Repo(folder).user_ident("AUTHOR")
    m = _IDENT.match(ident) if ident else None
    return f"{m.group(1).strip()} <{m.group(2).strip()}>" if m else ""


def new_patch(ws: Workspace, t: Txn, patch_id: str, *, upstream: str | None, from_dir: Path | None, status: Status,
              title: str = "", why: str = "", flags: tuple[str, ...] = (), result: str = "", date: str = "",
              base: str = "", author: str = "", after: str | None = None, cwd: Path | None = None) -> PatchEntry:
    """A new annotated patch from a checkout's uncommitted changes, placed at the end of its queue or after `after`."""
    where = checkout_ref(ws, from_dir) if from_dir is not None else here_checkout(ws, cwd)
    if where is None:
        raise BadInput("say --from CHECKOUT (or run 'patchq new' inside a checkout 'patchq apply' made)")
    upstream = upstream or where.upstream
    if not upstream:
        raise BadInput(f"{where.path} is not a patchq checkout: say which queue with -u UPSTREAM")
    if where.upstream and upstream != where.upstream:
        raise BadInput(f"{where.path} is a checkout of upstream {where.upstream!r}, not {upstream!r}")
    ws.upstream(upstream)
    date = parse_date(date) if date else today()
    author = parse_author(author) if author else git_author(where.path)
    repo = Repo(where.path)
    diff = worktree_diff(where.path)
    entry = PatchEntry(id=patch_id, upstream=upstream, file="", status=status, title=title or patch_id, why=why,
                       flags=flags, result=result, date=date, base=base, author=author)
    entry = add_patch(ws, t, entry, diff, after=after)
    t.commit()                 # the queue holds the patch before its commit is made in the checkout
    if where.stack:            # patchq's own checkout: the recorded changes become the new patch's commit there
        head = repo.head() or ""
        tree = repo.worktree_tree(head)
        when = date_to_git(format_date(entry.date)).split()[0]
        commit = repo.commit_tree(tree, [head], commit_message(entry), author=entry.author,
                                  date=f"@{when} +0000")
        repo.reset_mixed(commit)
    return entry
