"""A progress line on stderr for work that turns out to be long; silent otherwise.

Nothing is written until ``delay`` seconds have passed, and nothing at all unless stderr is
a terminal (logs and pipes stay clean). No dependencies: one carriage-returned line.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``with Progress("method='piecewise'", unit="pieces") as p: p.update(done, total)``."""

    def __init__(self, label: str, *, unit: str = "", delay: float = 2.0, stream: TextIO | None = None):
        self.label, self.unit, self.delay = label, unit, delay
        self.stream = sys.stderr if stream is None else stream
        self.start = self.last = time.perf_counter()
        self.shown = False
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())

    def update(self, done: int, total: int | None = None, note: str = "") -> None:
        now = time.perf_counter()
        if not self.live or now - self.start < self.delay or (self.shown and now - self.last < 0.5):
            return
        self.last, self.shown = now, True
        of = f" of {total}" if total is not None else ""
        self.stream.write(f"\r{self.label}: {done}{of} {self.unit}{note} ({now - self.start:.0f} s)\x1b[K")
        self.stream.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
