"""Exact-context hunks put into a file's bytes in Python, each at the matching position nearest to where it says.

The fast path of a queue that applies as is: its commits are replayed without a `git apply` per patch
(`queuerun`), and the flag audit learns which lines each patch added and removed. Anything inexact (a hunk whose
context is not found, hunks that would land out of order) returns None, and git decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .patchtext import Hunk


def splice(old: bytes, hunks: Sequence[Hunk]) -> bytes | None:
    """Apply exact-context hunks to a file's bytes, each at the matching position nearest to where it says."""
    spliced = splice_lines(old, hunks)
    return None if spliced is None else spliced.data


@dataclass(frozen=True)
class Spliced:
    """A file after exact-context hunks were put in place, and which lines they added and removed (1-based)."""

    data: bytes
    added: tuple[int, ...]          # post-image lines
    removed: tuple[int, ...]        # pre-image lines


def splice_lines(old: bytes, hunks: Sequence[Hunk]) -> Spliced | None:
    """`splice` that also says where each hunk landed; None where a hunk's exact context is not found, or where
    hunks would land out of order (then only git can say what happens)."""
    lines = old.splitlines(keepends=True)
    shift = 0
    floor = 0
    added: list[int] = []
    removed: list[int] = []
    for hunk in hunks:
        pre: list[bytes] = []
        post: list[bytes] = []
        pre_tags: list[bytes] = []
        post_tags: list[bytes] = []
        last = ""
        for raw in hunk.lines:
            tag, text = raw[:1], raw[1:]
            if tag == b"\\":
                for side in ((pre, post) if last == "both" else (pre,) if last == "pre" else (post,)):
                    if side and side[-1].endswith(b"\n"):
                        side[-1] = side[-1][:-1]
                continue
            line = text + b"\n"
            if tag == b"-":
                pre.append(line)
                pre_tags.append(tag)
                last = "pre"
            elif tag == b"+":
                post.append(line)
                post_tags.append(tag)
                last = "post"
            else:
                pre.append(line)
                post.append(line)
                pre_tags.append(tag)
                post_tags.append(tag)
                last = "both"
        want = (hunk.old_start if hunk.old_count == 0 else hunk.old_start - 1) + shift
        pos = _find_block(lines, pre, max(0, want))
        if pos is None or pos < floor:
            return None
        removed.extend(pos - shift + k + 1 for k, tag in enumerate(pre_tags) if tag == b"-")
        added.extend(pos + k + 1 for k, tag in enumerate(post_tags) if tag == b"+")
        lines[pos:pos + len(pre)] = post
        shift += len(post) - len(pre)
        floor = pos + len(post)
    return Spliced(b"".join(lines), tuple(added), tuple(removed))


def _find_block(lines: list[bytes], block: list[bytes], want: int) -> int | None:
    n, size = len(lines), len(block)
    if size == 0:
        return min(want, n)
    for distance in range(0, n + 1):
        for pos in ((want,) if distance == 0 else (want - distance, want + distance)):
            if 0 <= pos <= n - size and lines[pos:pos + size] == block:
                return pos
        if want - distance < 0 and want + distance > n - size:
            break
    return None




# ---- what `git apply` would do, predicted (the bisection's guide) ---------------------------------------------------

class Unsure(Exception):
    """The prediction cannot follow git here (hunks that overlap once moved, a line without its newline inside a
    file, ...): git must be asked."""


def _sides(hunk: Hunk) -> tuple[list[bytes], list[bytes], int]:
    """Pre-image and post-image lines of a hunk, and how many context lines follow its last change."""
    pre: list[bytes] = []
    post: list[bytes] = []
    tags = []
    for raw in hunk.lines:
        tag, text = raw[:1], raw[1:]
        if tag == b"\\":        # git matches a line without its newline byte by byte, inside other lines too
            raise Unsure("a line without a final newline")
        line = text + b"\n"
        if tag != b"+":
            pre.append(line)
        if tag != b"-":
            post.append(line)
        tags.append(tag)
    trailing = next((k for k, tag in enumerate(reversed(tags)) if tag in (b"-", b"+")), len(tags))
    return pre, post, trailing


def git_would_apply(old: bytes, hunks: Sequence[Hunk]) -> bytes | None:
    """The file after `git apply` (no fuzz, exact whitespace) puts `hunks` into `old`, or None where git would refuse.

    Follows git's placement rules: each hunk searched from its new-side start line, at that line first and then one
    line further forward and one back alternately; a hunk starting at line 0 or 1 only at the top of the file, one
    with no trailing context only at its end. Raises Unsure where the rules are not followed here.
    """
    lines = old.splitlines(keepends=True)
    if any(not line.endswith(b"\n") for line in lines[:-1]):
        raise Unsure("a line break that is not a newline")
    for hunk in hunks:
        pre, post, trailing = _sides(hunk)
        pos = _git_find(lines, pre, hunk.new_start - 1 if hunk.new_start else 0, hunk.old_start <= 1, trailing == 0)
        if pos is None:
            return None
        lines[pos:pos + len(pre)] = post
    return b"".join(lines)


def _git_find(lines: list[bytes], block: list[bytes], start: int, begin: bool, end: bool) -> int | None:
    count, size = len(lines), len(block)
    if size > count:
        return None
    if begin:
        return 0 if lines[:size] == block and (not end or size == count) else None
    if end:
        return count - size if lines[count - size:] == block else None
    start = min(max(start, 0), count - size)
    if lines[start:start + size] == block:
        return start
    forward = backward = start
    while forward < count - size or backward > 0:
        if forward < count - size:
            forward += 1
            if lines[forward:forward + size] == block:
                return forward
        if backward > 0:
            backward -= 1
            if lines[backward:backward + size] == block:
                return backward
    return None
