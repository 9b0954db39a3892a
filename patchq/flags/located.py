"""A found read and where it sits: the type every language module returns and the flag cache stores.

`Located` carries the lines the read's whole expression spans, so a patch that touches any of them (the `== "1"` on
the next line, say) counts as touching the read; `Lines` turns the lexers' offsets into those line numbers.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from ..model import FlagRead

DYNAMIC = "<dynamic>"


@dataclass(frozen=True)
class Located:
    """A read and the lines its expression spans, so a patch that touches any of them counts."""

    read: FlagRead
    first: int
    last: int
    column: int = 0

    def touches(self, lines: set[int]) -> bool:
        if self.last - self.first < len(lines):
            return any(line in lines for line in range(self.first, self.last + 1))
        return any(self.first <= line <= self.last for line in lines)


class Lines:
    """Offset -> 1-based line number."""

    def __init__(self, text: str) -> None:
        self._starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def of(self, offset: int) -> int:
        return bisect.bisect_right(self._starts, offset)

    def start(self, line: int) -> int:
        return self._starts[line - 1]


def located(read: FlagRead, first: int, last: int, column: int = 0) -> Located:
    return Located(read, min(first, read.line), max(last, read.line), column)
