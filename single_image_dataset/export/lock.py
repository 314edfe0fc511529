"""The export's lock: ``flock`` on ``TARGET/.lock`` and on ``TARGET`` itself, held by every run from its checks
to its end.

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

The lock file can be deleted, replaced or renamed while a run holds it; a later run would then lock
another file. So each lock is taken on the target folder too (one ``flock`` per descriptor, the same
protocol), which no file operation inside the target can swap: a later run is refused as before. And a
run checks that ``TARGET/.lock`` is still the file it locked (:meth:`TargetLock.check`) once it holds
the lock, and before each file and record it renames into the target, stopping with :class:`LockLost`
when it is not. Where a filesystem cannot lock a folder (NFS emulates ``flock`` with byte-range locks,
which need a file opened for writing), that check alone keeps the holder from writing into a target that
a later run has taken over; elsewhere it tells the user that something removed the lock.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone

from .._files import Dir

try:
    import fcntl
except ImportError:  # Windows: Dir.open refuses to open a target there, so no lock is ever taken
    fcntl = None

__all__ = ["LOCK_NAME", "WAIT_SECONDS", "LockLost", "LockWitness", "TargetLock"]

LOCK_NAME = ".lock"
#: How long a run waits for another run to finish preparing the target (deleting an old export,
#: writing the manifest) before it gives up.
WAIT_SECONDS = 60.0

_POLL_SECONDS = 0.05
_RECORD_BYTES = 512
# Filesystems without flock (NFS without a lock daemon, Lustre mounted without -o flock).
_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS}
# ... and, for a folder, those that lock files only (NFS: EBADF, an exclusive lock needs a file open for writing).
_FOLDER_UNSUPPORTED = _UNSUPPORTED | {errno.EBADF, errno.EINVAL}


class LockLost(OSError):
    """The lock file of a run was deleted, replaced or renamed while the run held it."""


@dataclass(frozen=True)
class LockWitness:
    """What tells whether ``root/.lock`` is still the file a run locked; it pickles, for worker processes.

    Args:
        root: the target folder.
        identity: ``(st_dev, st_ino)`` of the locked file.
    """

    root: Dir
    identity: tuple[int, int]

    def check(self) -> None:
        """Return if ``.lock`` in the target is the locked file.

        Raises:
            LockLost: it was deleted, replaced or renamed; the message says so and what to do.
        """
        try:
            found = os.stat(LOCK_NAME, dir_fd=self.root.fd, follow_symlinks=False)
        except FileNotFoundError:
            found = None
        if found is None or (found.st_dev, found.st_ino) != self.identity:
            path = self.root.path / LOCK_NAME
            raise LockLost(
                errno.ESTALE,
                f"{path} is no longer the lock file this export holds (it was deleted, replaced or renamed), so "
                f"another export may be writing into {self.root.path}; stopped before the next file; when no other "
                "export runs there, run again to resume",
            )


class TargetLock:
    """The open lock file of a target, and the target folder locked with it; see the module docstring.

    Args:
        root: the target folder.

    Raises:
        OSError: ``.lock`` is a symlink, not a regular file, has other hard links, or cannot be
            created; the message names it.
    """

    def __init__(self, root: Dir) -> None:
        self.path = root.path / LOCK_NAME
        self._folder: Dir | None = None
        self.fd = root.open_file(LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
        self.supported = True
        found = os.fstat(self.fd)
        if found.st_nlink != 1:
            self.close()
            raise OSError(errno.EMLINK, f"{self.path} has other hard links, so the export cannot write it; remove it")
        self.witness = LockWitness(root, (found.st_dev, found.st_ino))
        # A descriptor of its own: flock locks belong to the open file, not to the folder's other descriptors.
        self._folder = root.reopen()

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
        if self._folder is not None:
            fcntl.flock(self._folder.fd, fcntl.LOCK_UN)

    def check(self) -> None:
        """Return if ``.lock`` in the target is still the file this run locked (:meth:`LockWitness.check`).

        Raises:
            LockLost: it was deleted, replaced or renamed.
        """
        self.witness.check()

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
        if self._folder is not None:
            self._folder.close()
            self._folder = None

    def __enter__(self) -> TargetLock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _flock(self, operation: int) -> bool:
        """Apply ``operation`` without waiting to the lock file, then to the folder; whether both took it."""
        if self.supported:
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
        if self._folder is None:
            return True
        try:
            fcntl.flock(self._folder.fd, operation | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError as exc:
            if exc.errno not in _FOLDER_UNSUPPORTED:
                raise type(exc)(exc.errno, f"cannot lock {self.path.parent}: {exc.strerror}") from None
            # Only the lock file, then, and the checks before each file (see the module docstring).
            self._folder.close()
            self._folder = None
        return True
