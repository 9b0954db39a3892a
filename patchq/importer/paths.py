"""Path mapping: the paths a lab wrote (absolute, venv, /tmp, a/ b/) made repo-relative against a pinned tree."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..git import Repo
from ..patchtext.lenient import RawSection
from ..sources import ensure_base
from ..workspace import Workspace
from .anchor import Placed
from .items import Refused


@dataclass
class UpstreamView:
    """One pinned upstream as import sees it: its mirror, the base commit, and which paths exist there."""

    name: str
    repo: Repo
    commit: str
    files: frozenset[str]
    dirs: frozenset[str]
    symlinks: frozenset[str]

    def symlink_above(self, path: str) -> str | None:
        """A folder of `path` that is a symlink at the pin: writing below it would leave the tree."""
        parts = path.split("/")
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in self.symlinks:
                return "/".join(parts[:depth])
        return None


def view_of(ws: Workspace, name: str) -> UpstreamView:
    """The pin of upstream `name`: its mirror and every path (files, folders, symlinks) in its tree."""
    base = ensure_base(ws.upstream(name), ws.upstream(name).pin, workspace=ws.root)
    files, links = set(), set()
    for mode, _, path in base.repo.ls_tree_entries(base.commit):
        files.add(path)
        if mode == "120000":
            links.add(path)
    dirs = {""}
    for path in files:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            dirs.add("/".join(parts[:depth]))
    return UpstreamView(name, base.repo, base.commit, frozenset(files), frozenset(dirs), frozenset(links))


@dataclass(frozen=True)
class Mapped:
    old: str | None
    new: str | None
    strength: int        # 3: the file exists there; 2: a new file in an existing folder; 1: placed by convention
    dropped: int = 0     # leading components removed from the new side


def _comps(raw: str) -> list[str]:
    return [c for c in raw.split("/") if c not in ("", ".")]


def _join(comps: list[str]) -> str:
    return "/".join(comps)


def _strip_p(raw: str, n: int) -> str:
    """`patch -pN`: drop the first N slash-separated pieces (a leading '/' counts as one)."""
    return _join([c for c in raw.split("/")[n:] if c not in ("", ".")])


def _longest_existing(comps: list[str], exists: Callable[[str], bool]) -> str | None:
    for k in range(len(comps)):
        rel = _join(comps[k:])
        if exists(rel):
            return rel
    return None


def check_components(section: RawSection) -> None:
    for raw in (section.old, section.new):
        if raw is None:
            continue
        parts = raw.replace("\\", "/").split("/")
        if ".." in parts:
            raise Refused(f"unsafe path {raw!r} (climbs out of the tree with '..')")
        if any(p.lower() == ".git" for p in parts):
            raise Refused(f"unsafe path {raw!r} (points into git's own .git directory)")
        if any(ord(c) < 32 for c in raw):
            raise Refused(f"unsafe path {raw!r} (control characters)")


def map_section(section: RawSection, view: UpstreamView, *, strip: int | None = None,
                created_before: frozenset[str] = frozenset()) -> Mapped | None:
    """Repo-relative paths of one file section in `view`: the longest tail of the written path that exists there.

    Returns None when the section cannot be placed in this upstream, or when it creates a file whose folder exists
    nowhere (the caller then places it like its sibling sections, or by the a/ b/ convention).
    """
    def exists(path: str) -> bool:
        return path in view.files or path in created_before

    old_c = _comps(section.old) if section.old is not None else None
    new_c = _comps(section.new) if section.new is not None else None
    if strip is not None:
        old = _strip_p(section.old, strip) if section.old is not None else None
        new = _strip_p(section.new, strip) if section.new is not None else None
        if (old_c is not None and not old) or (new_c is not None and not new):
            return None
        if old is not None:
            return Mapped(old, new, 3, strip) if exists(old) else None
        if new is None:                       # a section names at least one side; nothing to place without it
            return None
        parent = new.rpartition("/")[0]
        return Mapped(None, new, 2 if parent in view.dirs and parent else 1, strip)
    if old_c is not None and new_c is not None and not (section.rename or section.copy):
        tail = _common_tail(old_c, new_c)
        for k in range(len(tail)):
            rel = _join(tail[k:])
            if exists(rel):
                return Mapped(rel, rel, 3, len(new_c) - len(tail) + k)
        # `diff -u x.py.orig x.py`: the two names differ; like GNU patch, take the one that exists
        for comps in (new_c, old_c):
            found = _longest_existing(comps, exists)
            if found is not None:
                return Mapped(found, found, 3, len(new_c) - len(found.split("/")))
        return None
    if old_c is not None:
        found = _longest_existing(old_c, exists)
        if found is None:
            return None
        k = len(old_c) - len(found.split("/"))
        if new_c is None:
            return Mapped(found, None, 3, k)
        new = _join(new_c[k:])
        return Mapped(found, new, 3, k) if new else None
    assert new_c is not None
    for k in range(len(new_c)):
        rel = _join(new_c[k:])
        parent = rel.rpartition("/")[0]
        if parent and parent in view.dirs:
            return Mapped(None, rel, 2, k)
    return None


def _common_tail(a: list[str], b: list[str]) -> list[str]:
    n = 0
    while n < min(len(a), len(b)) and a[len(a) - 1 - n] == b[len(b) - 1 - n]:
        n += 1
    return a[len(a) - n:]


def map_sections(sections: Sequence[RawSection], view: UpstreamView, *, strip: int | None = None,
                 created_before: frozenset[str] = frozenset()) -> list[Mapped | None]:
    """Every section of a patch in one upstream; created files in unknown folders follow their siblings."""
    out = [map_section(s, view, strip=strip, created_before=created_before) for s in sections]
    drops = {m.dropped for m, s in zip(out, sections) if m is not None and s.new is not None}
    for index, (m, section) in enumerate(zip(out, sections)):
        if m is not None or not section.created or section.new is None:
            continue
        new_c = _comps(section.new)
        if len(drops) == 1:
            k = next(iter(drops))
        elif section.new.startswith("/") and not section.git:
            continue
        else:
            k = 1 if len(new_c) > 1 else 0
        if k < len(new_c):
            out[index] = Mapped(None, _join(new_c[k:]), 1, k)
    return out


def path_remarks(sections: Sequence[RawSection], mapped: Sequence[Mapped | None]) -> list[str]:
    """What normalisation did, for the report: the prefixes dropped from the written paths."""
    prefixes: list[str] = []
    for section, m in zip(sections, mapped):
        if m is None:
            continue
        for raw, rel in ((section.old, m.old), (section.new, m.new)):
            if raw is not None and rel is not None and raw.endswith(rel):
                prefix = raw[: len(raw) - len(rel)]
                if prefix not in ("", "a/", "b/") and prefix not in prefixes:
                    prefixes.append(prefix)
    if not prefixes:
        return []
    shown = ", ".join(repr(p) for p in prefixes[:4]) + (" …" if len(prefixes) > 4 else "")
    return [f"paths made repo-relative by dropping {shown}"]


def _quote(path: str) -> str:
    if not re.search(r'[\s"\\\x00-\x1f\x7f]', path):
        return path
    escaped = path.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t").replace("\n", "\\n")
    return f'"{escaped}"'


def canonical_diff(sections: Sequence[RawSection], mapped: Sequence[Mapped],
                   hunks: Sequence[Sequence[Placed]]) -> bytes:
    """A git-style diff with repo-relative `a/` `b/` paths and exact hunk headers: what `git apply` and `git am`
    read without options, and what the strict validator reads back."""
    out: list[bytes] = []
    for section, m, placed in zip(sections, mapped, hunks):
        a = m.old or m.new or ""
        b = m.new or m.old or ""
        out.append(f"diff --git {_quote('a/' + a)} {_quote('b/' + b)}".encode())
        if section.git:
            for ext in section.extended:
                if ext.startswith((b"rename from ", b"copy from ")) and m.old:
                    ext = ext.split(b" ", 2)[0] + b" from " + _quote(m.old).encode()
                elif ext.startswith((b"rename to ", b"copy to ")) and m.new:
                    ext = ext.split(b" ", 2)[0] + b" to " + _quote(m.new).encode()
                out.append(ext)
        elif section.created:
            out.append(b"new file mode 100644")
        elif section.deleted:
            out.append(b"deleted file mode 100644")
        if section.hunks:
            out.append(b"--- " + (_quote("a/" + m.old).encode() if m.old else b"/dev/null"))
            out.append(b"+++ " + (_quote("b/" + m.new).encode() if m.new else b"/dev/null"))
            for hunk in placed:
                out.extend(hunk.lines())
    return b"\n".join(out) + b"\n"
