"""CPU contention on purpose: this process pinned to one CPU beside a busy process.

Read by ``benchmarks/bench_mp4_settings.py`` (``--contention``) and ``tests/test_video.py``: x264's
macroblock-tree rate control gave other bytes for about one clip in six under such contention, the
condition in which the scheduler preempts the encoder often. Linux only (``os.sched_setaffinity``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["cpu_contention"]


@contextmanager
def cpu_contention() -> Iterator[None]:
    """Run the block pinned to one CPU that a busy process shares; the affinity is restored after it."""
    saved = os.sched_getaffinity(0)
    cpu = min(saved)
    os.sched_setaffinity(0, {cpu})
    busy = subprocess.Popen([sys.executable, "-c", f"import os\nos.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"])
    try:
        yield
    finally:
        busy.kill()
        busy.wait()
        os.sched_setaffinity(0, saved)
