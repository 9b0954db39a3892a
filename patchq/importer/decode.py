"""Decoding inputs: bundles (base64, gzip) into text, line endings checked, damaged bundles measured or salvaged.

A `.gz.b64`/`.b64` that is truncated or fails its gzip check is refused, but the refusal says how many complete
file sections decode before the damage; with `--salvage` those sections are imported as one `diagnostic` patch
whose remark (and `salvaged` field) names what was lost. A section counts as complete only when more decoded text
follows it: a cut that falls exactly between two hunks cannot be told from the end of a file.
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from dataclasses import dataclass, field

from ..bundle import decode_b64, decode_gz_b64, gunzip_bounded
from ..errors import BadInput
from ..patchtext.lenient import RawSection, Unreadable, read_lenient
from ..patchtext.lexer import lex
from .inputs import InputFile
from .items import Refused


@dataclass
class Decoded:
    data: bytes
    remarks: list[str] = field(default_factory=list)
    bundle: bool = False
    salvaged: str = ""               # what was lost (a salvaged bundle), else ""


def read_bytes(item: InputFile, limit: int, *, salvage: bool = False) -> Decoded:
    """The text of an input, decoded from a bundle when its name says so."""
    name = item.path.name.lower()
    size = item.path.stat().st_size
    encoded = name.endswith(".b64")
    if size > (2 * limit + 4096 if encoded else limit):
        raise Refused(f"file is {size} bytes, over the size limit of {limit} bytes (--max-size)")
    raw = item.path.read_bytes()
    out = Decoded(raw, bundle=encoded or name.endswith(".gz"))
    try:
        if name.endswith(".gz.b64"):
            out.data = decode_gz_b64(raw, source=item.source, limit=limit)
            out.remarks.append("decoded a base64 gzip bundle")
        elif encoded:
            data = decode_b64(raw, source=item.source)
            if data[:2] == b"\x1f\x8b":
                out.data = gunzip_bounded(data, source=item.source, limit=limit)
                out.remarks.append("decoded a base64 gzip bundle")
            else:
                if len(data) > limit:
                    raise Refused(f"decodes to {len(data)} bytes, over the size limit of {limit} bytes")
                out.data = data
                out.remarks.append("decoded a base64 bundle")
        elif name.endswith(".gz"):
            out.data = gunzip_bounded(raw, source=item.source, limit=limit)
            out.remarks.append("decompressed gzip")
    except BadInput as exc:
        reason = f"line {exc.line}: {exc.message}" if exc.line else exc.message
        if not _damage(exc.message) or not out.bundle:
            raise Refused(reason) from None
        return _salvage(raw, name, limit, reason, salvage)
    return out


def _damage(message: str) -> bool:
    """Refusals that mean a bundle was cut or corrupted in transit (not a bomb, not a different format)."""
    return bool(re.search(r"truncated|corrupt gzip|invalid base64|not base64|trailing bytes", message))


def partial_decode(raw: bytes, name: str, limit: int) -> bytes:
    """As much decoded text as the damaged bundle gives before the damage (never more than `limit` bytes)."""
    data = raw
    if name.endswith(".b64"):
        good = re.match(rb"^[A-Za-z0-9+/=\s]*", raw)
        compact = re.sub(rb"\s+", b"", good.group(0) if good else b"")
        if b"=" in compact:
            compact = compact[:compact.index(b"=")]
        compact = compact[:len(compact) - len(compact) % 4]
        try:
            data = base64.b64decode(compact)
        except (binascii.Error, ValueError):
            return b""
    if name.endswith(".gz.b64") or name.endswith(".gz") or data[:2] == b"\x1f\x8b":
        out = bytearray()
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        for start in range(0, len(data), 4096):
            try:
                out += inflater.decompress(data[start:start + 4096], limit + 1 - len(out))
            except zlib.error:
                break
            if len(out) > limit or inflater.eof:
                break
        return bytes(out[:limit])
    return data[:limit]


def complete_sections(text: bytes) -> tuple[list[RawSection], int, str]:
    """The file sections of decoded text that end before its last line, the line where they end (1-based,
    exclusive) and what comes after them; a cut inside the last line is dropped first."""
    cut = text[:text.rfind(b"\n") + 1] if b"\n" in text else b""
    lines = lex(cut, trust_counts=False)
    n = len(lines.lines)
    keep = [s for s in lines.sections if s.end < n and not any(h.cut_off for h in s.hunks)]
    if not keep:
        return [], 1, ""
    end = keep[-1].end
    try:
        sections = list(read_lenient(b"\n".join(lines.lines[:end]) + b"\n").sections)
    except Unreadable:
        return [], 1, ""
    rest = lines.sections[len(keep)] if len(lines.sections) > len(keep) else None
    lost = ""
    if rest is not None:
        first = lines.lines[rest.start].decode("utf-8", "replace")
        lost = f"the section at line {rest.start + 1} ({first[:80]}) and everything after it"
    return sections, end + 1, lost


def _salvage(raw: bytes, name: str, limit: int, reason: str, salvage: bool) -> Decoded:
    text = partial_decode(raw, name, limit)
    sections, end, lost = complete_sections(text)
    shown = ", ".join(s.shown for s in sections[:3]) + (" …" if len(sections) > 3 else "")
    count = f"{len(sections)} complete file section(s) decode before the damage" + (f" ({shown})" if shown else "")
    if not salvage or not sections:
        advice = "; --salvage imports them as a diagnostic patch" if sections else ""
        raise Refused(f"{reason}; {count}{advice}")
    lost = lost or f"everything after line {end - 1} of the decoded text"
    what = f"damaged bundle ({reason}): kept {len(sections)} complete file section(s); lost {lost}"
    data = b"\n".join(text.split(b"\n")[:end - 1]) + b"\n"
    return Decoded(data, [f"salvaged from a {what}"], True, what)


def clean_text(data: bytes) -> tuple[bytes, list[str]]:
    """Refuse binary files and mixed line endings; repair a CRLF-only file and a missing final newline."""
    remarks: list[str] = []
    if b"\0" in data:
        raise Refused("binary file (NUL bytes), not a text patch")
    crlf = data.count(b"\r\n")
    if crlf:
        lf = data.count(b"\n")
        if crlf == lf:
            data = data.replace(b"\r\n", b"\n")
            remarks.append("CRLF line endings converted to LF (every line had them: transport damage, not content)")
        else:
            first = data.index(b"\r\n")
            mixed_line = data[:first].count(b"\n") + 1
            raise Refused(f"mixed CRLF and LF line endings (first CRLF on line {mixed_line}): cannot tell a CRLF "
                          "source file from transport damage; convert it yourself (dos2unix) if it is damage")
    if data and not data.endswith(b"\n"):
        data += b"\n"
        remarks.append("the file did not end with a newline; one was added")
    return data, remarks
