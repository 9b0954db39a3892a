"""What /proc says about running processes: the tests that interrupt patchq wait on its git children with this."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple


class Proc(NamedTuple):
    pid: int
    state: str          # R, S, D, Z (zombie), ...
    ppid: int
    pgid: int


def processes() -> Iterator[Proc]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                yield Proc(int(entry.name), fields[0], int(fields[1]), int(fields[2]))
            except (OSError, IndexError, ValueError):
                continue
