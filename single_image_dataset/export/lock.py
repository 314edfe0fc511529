"""The export's lock: ``flock`` on ``TARGET/.lock``, held by every export run from its checks to its end.

The protocol (an advisory lock: it binds the runs of this library, not other programs):

- A run first tries the lock **exclusively**, without waiting. If it gets it, no other run is
  there: it checks the target, deletes the old export if ``overwrite`` asks so, removes stale
  temporary files, checks the free space and writes the manifest if there is none. Then it turns
  the lock into a **shared** one and reads the manifest again: the conversion is not atomic, and a
  run that replaced the manifest in between makes this one stop.
- If the exclusive lock is taken, other runs are there. The run waits (at most :data:`WAIT_SECONDS`)
  for a shared lock, which it gets as soon as no run holds the lock exclusively (a preparing run
  holds it for seconds), then proceeds only if the manifest describes its own dataset. Otherwise it
  releases the lock and starts over, twice (the other run may be one that is being refused, or one
  that gave up before writing a manifest), and is then refused with a message naming the holder.
  So runs of the same dataset and shards write together, while a run of another dataset, or an
  ``overwrite`` while others write, is refused: whichever run takes the exclusive lock first and
  proceeds decides what the target holds.
- Every run keeps its shared lock until it ends. The kernel releases the lock of a process that
  dies, so a crashed run never blocks a later one; worker processes inherit the lock and die with
  their parent.

Each run records its process id, host, shard and start time in the lock file (one fixed-size record
overwritten in place), so that a refused run can name the process that holds the target.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
import warnings
from datetime import datetime, timezone

from .._files import Dir

try:
    import fcntl
except ImportError:  # Windows: Dir.open refuses to open a target there, so no lock is ever taken
    fcntl = None

__all__ = ["LOCK_NAME", "WAIT_SECONDS", "TargetLock"]

LOCK_NAME = ".lock"
#: How long a run waits for another run to finish preparing the target (deleting an old export,
#: writing the manifest) before it gives up.
WAIT_SECONDS = 60.0

_POLL_SECONDS = 0.05
_RECORD_BYTES = 512
# Filesystems without flock (NFS without a lock daemon, Lustre mounted without -o flock).
_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS}


class TargetLock:
    """The open lock file of a target; see the module docstring for how runs use it.

    Args:
        root: the target folder.

    Raises:
        OSError: ``.lock`` is a symlink, not a regular file, has other hard links, or cannot be
            created; the message names it.
    """

    def __init__(self, root: Dir) -> None:
        self.path = root.path / LOCK_NAME
        self.fd = root.open_file(LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
        self.supported = True
        if os.fstat(self.fd).st_nlink != 1:
            self.close()
            raise OSError(errno.EMLINK, f"{self.path} has other hard links, so the export cannot write it; remove it")

    def try_exclusive(self) -> bool:
        """Take the lock exclusively if no other run holds it; whether it was taken."""
        return self._flock(fcntl.LOCK_EX)

    def share(self) -> None:
        """Hold the lock shared (converting an exclusive lock), waiting for a run that holds it exclusively.

        Raises:
            BlockingIOError: another run held it exclusively for :data:`WAIT_SECONDS`.
        """
        deadline = time.monotonic() + WAIT_SECONDS
        while not self._flock(fcntl.LOCK_SH):
            if time.monotonic() > deadline:
                raise BlockingIOError(
                    errno.EWOULDBLOCK,
                    f"{self.path.parent} is being prepared by another export ({self.holder()}) for more than "
                    f"{WAIT_SECONDS:g} s; wait for it to finish, or choose another target",
                )
            time.sleep(_POLL_SECONDS)

    def release(self) -> None:
        """Release the lock, keeping the file open to take it again."""
        if self.supported:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def claim(self, shard: tuple[int, int]) -> None:
        """Record this process as a holder, for the messages of runs that are refused."""
        facts = {"pid": os.getpid(), "host": socket.gethostname()[:200], "shard": f"{shard[0]}/{shard[1]}"}
        facts["since"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        record = json.dumps(facts).encode()[: _RECORD_BYTES - 1].ljust(_RECORD_BYTES - 1) + b"\n"
        try:
            os.pwrite(self.fd, record, 0)
        except OSError:
            pass  # the record only names us in others' messages; the lock itself holds without it

    def holder(self) -> str:
        """The last run that recorded itself, e.g. ``"pid 4242 on node7, shard 0/4, since 2025-..."``."""
        try:
            facts = json.loads(os.pread(self.fd, _RECORD_BYTES, 0))
            text = f"pid {int(facts['pid'])} on {facts['host']}, shard {facts['shard']}, since {facts['since']}"
        except (OSError, ValueError, TypeError, KeyError):
            return "another process"
        # Anyone may have written it: keep the message on one line, without control characters.
        return "".join(c if c.isprintable() else "?" for c in " ".join(text.split()))[:300]

    def close(self) -> None:
        """Release the lock (idempotent); forked workers still holding the file keep it until they exit."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> TargetLock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _flock(self, operation: int) -> bool:
        if not self.supported:
            return True
        try:
            fcntl.flock(self.fd, operation | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED:
                raise type(exc)(exc.errno, f"cannot lock {self.path}: {exc.strerror}") from None
            self.supported = False
            warnings.warn(
                f"the filesystem of {self.path.parent} does not support file locks ({exc.strerror}); "
                "concurrent exports into it are not detected",
                RuntimeWarning,
                stacklevel=4,
            )
        return True
