"""The export's progress report: a redrawn bar on a terminal, sparse log lines otherwise."""

from __future__ import annotations

import math
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """Counts written files (images or clips) and reports them on ``stream``, without dependencies.

    On a terminal, a bar with the rate and the ETA, redrawn at most every 0.2 s; elsewhere (a log
    file, a batch job), a ``materialize: ...`` line at each 10% step, or after a minute without one.

    Args:
        total: the number of files to write (or verify); no bar or progress line is drawn when it is 0.
        stream: where to report.
        enabled: ``False`` counts without reporting (:meth:`announce` included).
        unit: what is counted, in the rate (``img/s``).
    """

    _REDRAW_SECONDS = 0.2
    _LOG_SECONDS = 60.0

    def __init__(self, total: int, stream: TextIO, enabled: bool = True, unit: str = "img") -> None:
        self.total = total
        self.unit = unit
        self.stream = stream
        self.announcing = enabled
        self.enabled = enabled and total > 0
        self.tty = self.enabled and _isatty(stream)
        self.done = 0
        self.start = time.perf_counter()
        self._last_draw = -math.inf
        self._last_decile = 0

    def announce(self, text: str) -> None:
        """Write ``materialize: text`` as a line of its own (what the run is about to do)."""
        if self.announcing:
            self.stream.write(f"materialize: {text}\n")
            self.stream.flush()

    def update(self, n: int) -> None:
        """Count ``n`` more files written."""
        self.done += n
        if not self.enabled:
            return
        now = time.perf_counter()
        if self.tty:
            if now - self._last_draw >= self._REDRAW_SECONDS or self.done == self.total:
                self._last_draw = now
                self.stream.write("\r" + self._bar(now) + "\x1b[K")  # clear what a longer line left
                self.stream.flush()
            return
        decile = 10 * self.done // self.total
        if decile > self._last_decile or now - self._last_draw >= self._LOG_SECONDS:
            self._last_decile, self._last_draw = decile, now
            self.stream.write(f"materialize: {self._status(now)}\n")
            self.stream.flush()

    def close(self) -> None:
        """End the bar's line on a terminal."""
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def _status(self, now: float) -> str:
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        eta = _duration((self.total - self.done) / rate) if rate > 0 else "?"
        return f"{self.done}/{self.total} ({self.done / self.total:.0%}), {rate:.0f} {self.unit}/s, ETA {eta}"

    def _bar(self, now: float) -> str:
        width = 30
        filled = width * self.done // self.total
        return f"[{'#' * filled}{'.' * (width - filled)}] {self._status(now)} "


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
