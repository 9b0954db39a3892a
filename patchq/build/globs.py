"""The glob language of recipes: `**` spans folders, `*` and `?` stay within one, a folder covers all under it.

Kept apart from `fnmatch` (whose `*` crosses `/`) so that `csrc/*.cu` never feeds a target from `csrc/sub/`.
"""

from __future__ import annotations

import functools
import re


def glob_problem(pattern: str) -> str:
    """Why a glob is unusable, or "" when it is fine."""
    if not pattern.strip():
        return "empty glob"
    if pattern.startswith("/"):
        return "globs are relative to the upstream's root, not absolute"
    segments = pattern.strip("/").split("/")
    if ".." in segments:
        return "'..' would leave the upstream"
    if any("**" in s and s != "**" for s in segments):
        return "'**' must be a whole path segment, as in 'csrc/**/*.cu'"
    return ""


@functools.lru_cache(maxsize=4096)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """`**` spans folders, `*` and `?` stay within one, and a pattern naming a folder covers all under it."""
    segments = pattern.strip("/").split("/")
    body = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            body.append(".*" if last else "(?:[^/]+/)*")
        else:
            body.append(_segment_regex(segment) + ("" if last else "/"))
    return re.compile("^" + "".join(body) + "(?:/.*)?$", re.DOTALL)


def _segment_regex(segment: str) -> str:
    out, i = [], 0
    while i < len(segment):
        char = segment[i]
        close = segment.find("]", i + 2) if char == "[" else -1
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif close != -1:
            inner = segment[i + 1:close]
            negate = inner.startswith("!")
            out.append("[" + ("^" if negate else "") + re.escape(inner[1:] if negate else inner)
                       .replace("\\-", "-") + "]")
            i = close
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def matches_any(patterns: tuple[str, ...], path: str) -> bool:
    return any(compile_glob(p).match(path) for p in patterns)
