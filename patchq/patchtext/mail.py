"""Mail around patches: the header block of one message (RFC 2047 words decoded) and the mbox splitter.

`git format-patch` writes each patch as a message that starts with a `From <sha> Mon Sep 17 00:00:00 2001` line;
mail archives use `From <sender> <asctime>`. Both are mbox separator lines. A message is cut at a separator line
only when a header line follows it, so a `From ` line inside a description does not split a patch.
"""

from __future__ import annotations

import email.errors
import email.header
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

MBOX_FROM = re.compile(rb"^From \S+ +(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|"
                       rb"Nov|Dec) +\d{1,2} \d\d:\d\d:\d\d \d{4}")
HEADER_LINE = re.compile(rb"^[A-Za-z][A-Za-z0-9-]*: ")
_HEADER = re.compile(r"^([A-Za-z][A-Za-z0-9-]*): ?(.*)$")
_PATCH_TAG = re.compile(r"^\s*\[PATCH[^\]]*\]\s*")


@dataclass(frozen=True)
class MailHead:
    """What the header block of a message says. `body` is every line after it (all lines when not mail)."""

    is_mail: bool
    author: str = ""
    date: str = ""
    subject: str = ""
    headers: dict[str, str] = field(default_factory=dict)   # lower-case name -> first value, unfolded, raw
    body: tuple[str, ...] = ()
    from_line: bool = False                                  # the text started with an mbox separator line


def decode_words(value: str) -> str:
    """RFC 2047 encoded words (`=?UTF-8?q?J=C3=B6rg?=`) as text; the value itself when it cannot be decoded."""
    if "=?" not in value:
        return value
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (email.errors.HeaderParseError, LookupError, UnicodeDecodeError, ValueError):
        return value


def is_separator(line: bytes) -> bool:
    return bool(MBOX_FROM.match(line))


def parse_mail_head(lines: Sequence[str]) -> MailHead:
    """Read `From:`, `Date:`, `Subject:` (and any other header) from the start of a message.

    The block counts as mail headers only when it has one of those three; otherwise it is prose and `body` holds
    every line. Folded lines are joined; `[PATCH n/m]` is dropped from the subject.
    """
    i = 0
    from_line = bool(lines) and bool(MBOX_FROM.match(lines[0].encode("utf-8", "replace")))
    if from_line:
        i = 1
    headers: dict[str, str] = {}
    j = i
    while j < len(lines):
        m = _HEADER.match(lines[j])
        if not m:
            break
        key, value = m.group(1).lower(), m.group(2)
        j += 1
        while j < len(lines) and lines[j][:1] in (" ", "\t") and lines[j].strip():
            value += " " + lines[j].strip()
            j += 1
        headers.setdefault(key, value)
    if not ({"from", "subject", "date"} & set(headers)):
        return MailHead(False, body=tuple(lines[i:]), from_line=from_line)
    subject = _PATCH_TAG.sub("", decode_words(headers.get("subject", "")).strip())
    return MailHead(True, decode_words(headers.get("from", "")).strip(), headers.get("date", "").strip(), subject,
                    headers, tuple(lines[j:]), from_line)


def _starts(lines: list[bytes]) -> list[int]:
    return [i for i, ln in enumerate(lines) if ln.startswith(b"From ") and MBOX_FROM.match(ln)
            and i + 1 < len(lines) and HEADER_LINE.match(lines[i + 1])]


def is_mbox(data: bytes) -> bool:
    """The text starts (after blank lines) with an mbox separator followed by a header line."""
    stripped = data.lstrip(b"\n\r\t ")
    first, _, rest = stripped.partition(b"\n")
    return bool(MBOX_FROM.match(first)) and bool(HEADER_LINE.match(rest))


def split_mbox(data: bytes) -> list[tuple[int, bytes]]:
    """(1-based first line, bytes) of each message. Text before the first separator is a piece of its own when
    it is not blank; text without separators is one piece."""
    lines = data.split(b"\n")
    starts = _starts(lines)
    if not starts or starts[0] != 0:
        starts = [0, *starts]
    offsets = [0]
    for ln in lines:
        offsets.append(offsets[-1] + len(ln) + 1)
    pieces = []
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(lines)
        chunk = data[offsets[start]:min(offsets[end], len(data))]
        if k == 0 and len(starts) > 1 and not chunk.strip():
            continue                     # nothing before the first separator
        pieces.append((start + 1, chunk))
    return pieces
