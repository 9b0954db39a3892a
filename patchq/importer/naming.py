"""Naming: the verdict, date and id a lab's file name (or text) carries, and the --map file that overrides them."""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInput
from ..model import PATCH_ID, Status
from ..workspace import Workspace
from ..yamlio import line_of, load as load_yaml

VERDICT_WORDS: dict[str, Status] = {
    **{w: Status.NEGATIVE_ARCHIVED for w in ("negative", "rejected", "quality-fail", "neutral", "no-improvement",
                                             "no-uplift")},
    **{w: Status.DIAGNOSTIC for w in ("diagnostic", "timing", "trace", "probe", "screen", "debug", "logger")},
    **{w: Status.PROMOTED for w in ("promoted", "active", "current")},
}
TWO_WORD_VERDICTS = {("quality", "fail"): "quality-fail", ("no", "improvement"): "no-improvement",
                     ("no", "uplift"): "no-uplift"}
NEGATIVE_IN_PROSE = re.compile(r"(?<![\w-])(negative|rejected|quality[- ]fail(?:ed|s)?|neutral|no[- ]improvement|"
                               r"no[- ]uplift)(?![\w-])", re.IGNORECASE)
VERDICT_LINE = re.compile(r"^\s*(?:[-*]\s*)?(?:\*\*)?(verdict|status|outcome|decision)(?:\*\*)?\s*[:=]\s*(.+?)\s*$",
                          re.IGNORECASE | re.MULTILINE)
DEFAULT_RULE = "default: no verdict in the name or text; import never promotes by guess"
NAME_DATE = re.compile(r"(?<!\d)(20\d\d)[-_]?(\d\d)[-_]?(\d\d)(?!\d)")
PATCH_SUFFIXES = (".patch", ".diff", ".gz", ".b64", ".txt", ".mbox", ".mbx", ".eml", ".md", ".markdown")
NOTE_SUFFIXES = (".md", ".markdown")

SAFETY = {Status.NEGATIVE_ARCHIVED: 0, Status.DIAGNOSTIC: 1, Status.PROMOTED: 2}


@dataclass(frozen=True)
class MapRule:
    """One entry of a --map file: inputs matching `pattern` (glob on the path or file name, or an id) get these."""

    pattern: str
    status: Status | None = None
    upstream: str | None = None
    id: str | None = None
    line: int | None = None
    source: str = ""

    def describe(self) -> str:
        return f"map: {self.pattern!r} ({self.source}:{self.line})" if self.line else f"map: {self.pattern!r}"


def load_map(path: Path, ws: Workspace) -> tuple[MapRule, ...]:
    """Read a --map YAML file: `PATTERN: STATUS` or `PATTERN: {status: S, upstream: U, id: ID}` per line."""
    doc = load_yaml(path, what="map file")
    if doc is None:
        return ()
    if not isinstance(doc, dict):
        raise BadInput("a map file is a mapping of glob or id to status/upstream/id", path=str(path), line=1)
    rules = []
    for pattern, value in doc.items():
        line = line_of(doc, pattern)
        if isinstance(value, str):
            value = {"status": value}
        if not isinstance(value, dict) or not value:
            raise BadInput(f"{pattern!r} must map to a status or to {{status:, upstream:, id:}}", path=str(path),
                           line=line)
        unknown = set(value) - {"status", "upstream", "id"}
        if unknown:
            raise BadInput(f"unknown key {sorted(unknown)[0]!r} for {pattern!r} (known: id, status, upstream)",
                           path=str(path), line=line)
        status = None
        if value.get("status") is not None:
            try:
                status = Status.parse(str(value["status"]))
            except ValueError as exc:
                raise BadInput(str(exc), path=str(path), line=line) from None
        upstream = str(value["upstream"]) if value.get("upstream") is not None else None
        if upstream is not None and upstream not in ws.upstreams:
            raise BadInput(f"unknown upstream {upstream!r} for {pattern!r} (known: {', '.join(ws.upstreams)})",
                           path=str(path), line=line)
        new_id = str(value["id"]) if value.get("id") is not None else None
        if new_id is not None and not PATCH_ID.match(new_id):
            raise BadInput(f"id {new_id!r} must be lower-case letters, digits, '.', '_' or '-'", path=str(path),
                           line=line)
        rules.append(MapRule(str(pattern), status, upstream, new_id, line, str(path)))
    return tuple(rules)



def rules_for(rules: Sequence[MapRule], rel: str, name: str, source: str, ids: Sequence[str]) -> list[MapRule]:
    """The --map rules that match an input: by its path under the folder given, its file name, report name or id."""
    out = []
    for rule in rules:
        if any(fnmatch.fnmatchcase(n, rule.pattern) for n in (rel, name, source, *ids)):
            out.append(rule)
    return out


def strip_fences(text: str) -> str:
    return re.sub(r"(?ms)^\s*(```|~~~).*?^\s*\1[^\n]*$", "", text)



# ---- names: slug, status, date -----------------------------------------------------------------------------------

def stem_of(name: str) -> str:
    """A file name without the extensions patch files and notes carry (`x.patch.gz.b64` -> `x`)."""
    stem = name
    changed = True
    while changed:
        changed = False
        for suffix in PATCH_SUFFIXES:
            if stem.lower().endswith(suffix) and len(stem) > len(suffix):
                stem = stem[: -len(suffix)]
                changed = True
    return stem


def _tokens(stem: str) -> list[str]:
    return [t for t in re.split(r"[-_.\s]+", stem.lower()) if t]


def _verdicts(tokens: list[str]) -> list[tuple[int, str]]:
    """(position, verdict word) in `tokens`, two-word verdicts at the position of their second word."""
    found = []
    for pos, token in enumerate(tokens):
        if pos and (tokens[pos - 1], token) in TWO_WORD_VERDICTS:
            found.append((pos, TWO_WORD_VERDICTS[(tokens[pos - 1], token)]))
        elif token in VERDICT_WORDS:
            found.append((pos, token))
    return found


def _is_suffix_token(token: str) -> bool:
    return (token in VERDICT_WORDS or bool(re.fullmatch(r"\d+|v\d+|20\d{6}", token))
            or token in ("quality", "fail", "no", "improvement", "uplift"))


SLUG_DROPS = {w for w, st in VERDICT_WORDS.items() if st != Status.DIAGNOSTIC} | {
    "diagnostic", "experiment", "quality", "fail", "improvement", "uplift"}


def _is_slug_suffix(token: str) -> bool:
    """Verdicts and dates leave the id; descriptive probe words (timing, trace, ...) stay: they name the change."""
    return token in SLUG_DROPS or token == "no"


def status_from_name(stem: str) -> tuple[Status, str] | None:
    """The verdict a file name carries: the last verdict word wins; promotion words count only as a suffix."""
    tokens = _tokens(stem)
    suffix_start = len(tokens)
    while suffix_start > 0 and _is_suffix_token(tokens[suffix_start - 1]):
        suffix_start -= 1
    found = [(pos, word) for pos, word in _verdicts(tokens)
             if VERDICT_WORDS[word] != Status.PROMOTED or pos >= suffix_start]
    if not found:
        return None
    word = found[-1][1]
    return VERDICT_WORDS[word], f"name: {word!r} in {stem!r}"


def status_from_text(text: str) -> tuple[Status, str] | None:
    """An explicit `Verdict:`/`Status:` line, else a rejection word anywhere in the prose (never a promotion)."""
    prose = strip_fences(text)
    for m in VERDICT_LINE.finditer(prose):
        found = _verdicts(_tokens(m.group(2)))
        if found:
            word = found[0][1]
            return VERDICT_WORDS[word], f"text: {m.group(0).strip()[:80]!r}"
    negative = NEGATIVE_IN_PROSE.search(prose)
    if negative:
        return Status.NEGATIVE_ARCHIVED, f"text: {negative.group(1)!r} in the description"
    return None


def date_from_name(stem: str) -> str:
    for m in NAME_DATE.finditer(stem):
        try:
            return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3))).isoformat()
        except ValueError:
            continue
    return ""


def slug_of(text: str, *, from_name: bool = True) -> str:
    """An id from a file name (numbering, dates and verdict suffixes dropped) or from a subject line."""
    tokens = _tokens(NAME_DATE.sub("", text)) if from_name else \
        [t for t in re.split(r"[^a-z0-9]+", text.lower()) if t]
    if from_name:
        kept = list(tokens)
        while kept and _is_slug_suffix(kept[-1]):
            kept.pop()
        while kept and re.fullmatch(r"\d{1,4}|20\d{6}", kept[0]):
            kept.pop(0)
        tokens = kept or tokens
    slug = re.sub(r"[^a-z0-9._]+", "-", "-".join(tokens)).strip("-._")
    slug = re.sub(r"-{2,}", "-", slug)[:60].strip("-._")
    return slug if slug and PATCH_ID.match(slug) else "patch"

