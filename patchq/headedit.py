"""Edit one trailer line of a patch file and keep every other byte.

A patch file's author, date, subject, description, sign-offs, diffstat and signature belong to whoever wrote it;
patchq owns only its `Patchq-*` trailers. Changing a status therefore rewrites the one `Patchq-Status:` line (or
adds it, next to the other Patchq trailers), never re-renders the file.
"""

from __future__ import annotations

import re

TRAILER_LINE = re.compile(rb"^([A-Za-z][A-Za-z0-9-]*): ")


def _message_end(lines: list[bytes]) -> int:
    """Index of the `---` line that ends the commit message (before the diffstat), or len(lines)."""
    for idx, line in enumerate(lines):
        if line == b"---":
            return idx
    return len(lines)


def set_trailer(head: bytes, name: str, value: str) -> bytes:
    """`head` (the part of a patch file before its diff) with trailer `name` set to `value`, all else unchanged."""
    lines = head.split(b"\n")
    end = _message_end(lines)
    key = name.lower().encode()
    new_line = f"{name}: {value}".encode()
    for idx in range(end - 1, -1, -1):
        m = TRAILER_LINE.match(lines[idx])
        if m and m.group(1).lower() == key:
            lines[idx] = new_line
            return b"\n".join(lines)
    # no such trailer yet: after the last Patchq- trailer, else at the end of the message's trailer block (the
    # Signed-off-by lines, as `git interpret-trailers` would), else as a paragraph of its own
    last_ours = max((i for i in range(end) if lines[i].lower().startswith(b"patchq-")
                     and TRAILER_LINE.match(lines[i])), default=None)
    if last_ours is not None:
        lines.insert(last_ours + 1, new_line)
        return b"\n".join(lines)
    stop = end
    while stop > 0 and lines[stop - 1] == b"":
        stop -= 1
    block = stop
    while block > 0 and TRAILER_LINE.match(lines[block - 1]):
        block -= 1
    if block < stop and block > 0 and lines[block - 1] == b"" and not _mail_headers(lines[block:stop]):
        lines.insert(stop, new_line)
    else:
        lines[stop:stop] = [b"", new_line] if stop else [new_line, b""]
    return b"\n".join(lines)


def _mail_headers(block: list[bytes]) -> bool:
    """Whether a trailer-looking block is really the mail header (a message with no body)."""
    return any(line.startswith((b"From: ", b"Date: ", b"Subject: ")) for line in block)
