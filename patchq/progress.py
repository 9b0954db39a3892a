"""Feedback on long work: phases, byte counts of downloads, git's own progress, a spinner with a build's last line.

The core never prints, so it reports through `current()`, which is a do-nothing reporter unless the CLI installed a
`Terminal` (not with -q). Everything goes to stderr: stdout stays the report (or the JSON envelope). On a terminal,
each step is announced as it starts, and bars and the spinner redraw one line. Piped, a step gets one plain line
once it has run for `PATCHQ_PROGRESS_AFTER` seconds (default 1): a log shows the slow phases, and a command that
fails fast still prints its error as its only line.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import IO, Any

SPIN = "|/-\\"
REDRAW_S = 0.1


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"


class Transfer:
    """Bytes moved so far; `advance` as data arrives."""

    def __init__(self, owner: Reporter, label: str, total: int | None) -> None:
        self.owner, self.label, self.total = owner, label, total
        self.done, self.started, self.drawn = 0, time.monotonic(), 0.0

    def advance(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if now - self.drawn >= REDRAW_S:
            self.drawn = now
            self.owner.draw_transfer(self, final=False)

    def rate(self) -> float:
        return self.done / max(time.monotonic() - self.started, 1e-6)


class BuildWatch:
    """A running build: `line` for each new log line, `tick` while waiting."""

    def __init__(self, owner: Reporter, target: str, log: str) -> None:
        self.owner, self.target, self.log = owner, target, log
        self.last, self.turn, self.drawn = "", 0, 0.0

    def line(self, text: str) -> None:
        self.last = text.rstrip()
        self.owner.build_line(self, text)

    def tick(self) -> None:
        now = time.monotonic()
        if now - self.drawn >= REDRAW_S:
            self.drawn, self.turn = now, self.turn + 1
            self.owner.draw_build(self)


class Reporter:
    """Says nothing: what the core sees when no command installed a terminal reporter (tests, the library)."""

    verbose = 0

    @contextlib.contextmanager
    def step(self, text: str) -> Iterator[None]:
        yield

    @contextlib.contextmanager
    def transfer(self, label: str, total: int | None) -> Iterator[Transfer]:
        yield Transfer(self, label, total)

    @contextlib.contextmanager
    def build(self, target: str, log: str) -> Iterator[BuildWatch]:
        yield BuildWatch(self, target, log)

    def git_stderr(self) -> IO[bytes] | None:
        """Where git's `--progress` output should go (a terminal), or None for `--quiet`."""
        return None

    def draw_transfer(self, transfer: Transfer, *, final: bool) -> None:
        pass

    def build_line(self, watch: BuildWatch, text: str) -> None:
        pass

    def draw_build(self, watch: BuildWatch) -> None:
        pass


class Terminal(Reporter):
    """Progress on stderr: live lines on a terminal, one line per phase when piped; -v streams build logs."""

    def __init__(self, stream: Any = None, *, tty: bool | None = None, verbose: int = 0, width: int = 80,
                 after: float | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.verbose = verbose
        self.width = width
        self.live = False
        if after is None:
            try:
                after = float(os.environ.get("PATCHQ_PROGRESS_AFTER", "1"))
            except ValueError:
                after = 1.0
        self.after = after
        self.lock = threading.Lock()

    def _write(self, text: str) -> None:
        with self.lock:
            try:
                self.stream.write(text)
                self.stream.flush()
            except (OSError, ValueError):
                pass

    @contextlib.contextmanager
    def _announce(self, text: str) -> Iterator[list[bool]]:
        """Say `text` now on a terminal; piped, only once the step has run `after` seconds. Yields [said]."""
        said = [False]

        def say() -> None:
            said[0] = True
            self._clear()
            self._write(text + "\n")

        if self.tty or self.after <= 0:
            say()
            yield said
            return
        timer = threading.Timer(self.after, say)
        timer.daemon = True
        timer.start()
        try:
            yield said
        finally:
            timer.cancel()

    def _clear(self) -> None:
        if self.live:
            self._write("\r\x1b[K")
            self.live = False

    def _redraw(self, text: str) -> None:
        self._write("\r\x1b[K" + text[: max(10, self.width - 1)])
        self.live = True

    @contextlib.contextmanager
    def step(self, text: str) -> Iterator[None]:
        with self._announce(text):
            yield

    @contextlib.contextmanager
    def transfer(self, label: str, total: int | None) -> Iterator[Transfer]:
        bar = Transfer(self, label, total)
        with self._announce(f"{label}" + (f" ({human_bytes(total)})" if total else "")) as said:
            try:
                yield bar
            finally:
                if said[0]:
                    self.draw_transfer(bar, final=True)

    def draw_transfer(self, transfer: Transfer, *, final: bool) -> None:
        seconds = time.monotonic() - transfer.started
        if final:
            self._clear()
            self._write(f"{transfer.label}: {human_bytes(transfer.done)} in {seconds:.1f} s "
                        f"({human_bytes(transfer.rate())}/s)\n")
            return
        if not self.tty:
            return
        share = f" {100 * transfer.done / transfer.total:3.0f}%" if transfer.total else ""
        of = f" / {human_bytes(transfer.total)}" if transfer.total else ""
        self._redraw(f"{transfer.label}{share} {human_bytes(transfer.done)}{of} {human_bytes(transfer.rate())}/s")

    @contextlib.contextmanager
    def build(self, target: str, log: str) -> Iterator[BuildWatch]:
        watch = BuildWatch(self, target, log)
        with self._announce(f"building {target}, log:\n  {log}"):
            try:
                yield watch
            finally:
                self._clear()

    def build_line(self, watch: BuildWatch, text: str) -> None:
        if self.verbose:
            self._clear()
            self._write(f"  {text.rstrip()}\n")
        elif self.tty:
            watch.tick()

    def draw_build(self, watch: BuildWatch) -> None:
        if self.tty and not self.verbose:
            self._redraw(f"{SPIN[watch.turn % len(SPIN)]} {watch.target}: {watch.last}")

    def git_stderr(self) -> IO[bytes] | None:
        if not self.tty:
            return None
        self._clear()
        return getattr(self.stream, "buffer", None)


_current: Reporter = Reporter()


def current() -> Reporter:
    return _current


def install(reporter: Reporter) -> Reporter:
    """Make `reporter` the one the core reports to; returns the previous one."""
    global _current
    previous, _current = _current, reporter
    return previous
