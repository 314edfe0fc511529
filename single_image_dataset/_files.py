"""The files the library reads and writes: regular files only, never blocking, never through a symlink.

Reading (source images, TOML presets): :func:`open_regular_file` refuses special files before and after
opening them. Writing (previews, the export): every file goes through :meth:`Dir.write` (or
:func:`write_atomic`): the data goes to a new hidden file, created exclusively
(``O_CREAT | O_EXCL | O_NOFOLLOW``) under an unpredictable name, and is renamed over the final name once
complete. A symlink planted at a temporary name makes the creation fail instead of redirecting it; one
planted at the final name is replaced, never written through. A failed write (a full disk) removes its
temporary file and names the final path.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["Dir", "new_run_token", "open_regular_file", "temp_name", "temp_pattern", "write_atomic"]

# Opening a FIFO for reading waits for a writer, and a terminal may become the controlling one: neither may happen.
_READ_FLAGS = getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)

_KINDS = (
    (stat.S_ISFIFO, "FIFO (named pipe)"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
)


def open_regular_file(path: str | os.PathLike[str], what: str) -> BinaryIO:
    """``path`` opened for binary reading, provided it is a regular file (or a symlink to one).

    A special file is refused before it is opened, with a message naming its kind: a FIFO would block
    the read until a writer comes, a device such as ``/dev/zero`` never ends. The file is opened without
    blocking and checked again, so a special file swapped in between cannot block either.

    Args:
        path: the path.
        what: what the file is for, named in the messages: ``"image file"``, ``"config file"``.

    Raises:
        ValueError: the path is empty, holds a NUL character, or names a special file.
        FileNotFoundError: nothing exists at the path.
        IsADirectoryError: the path is a directory.
        PermissionError: the file may not be read.
        OSError: another reason the path cannot be read (a symlink loop, a name too long); the
            message names the path.

    Example:
        >>> open_regular_file("/dev/null", "image file")
        Traceback (most recent call last):
            ...
        ValueError: image file /dev/null is a character device, not a regular file; pass the path of an image file
    """
    text = os.fsdecode(path)
    hint = f"pass the path of {'an' if what[0] in 'aeiou' else 'a'} {what}"
    if not text:
        raise ValueError(f"{what} path is empty; {hint}")
    if "\0" in text:
        raise ValueError(f"{what} path {text!r} holds a NUL character; {hint}")
    try:
        _check_kind(os.stat(text).st_mode, text, what, hint)
        file = open(text, "rb", opener=lambda name, flags: os.open(name, flags | _READ_FLAGS))
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(f"{what} not found: {text}") from None
    except PermissionError:
        raise PermissionError(f"{what} {text} cannot be read: permission denied; check its permissions") from None
    except IsADirectoryError:
        raise
    except OSError as exc:
        raise OSError(f"{what} {text} cannot be read: {exc.strerror or exc}") from None
    try:
        _check_kind(os.fstat(file.fileno()).st_mode, text, what, hint)
    except BaseException:
        file.close()
        raise
    return file


def _check_kind(mode: int, text: str, what: str, hint: str) -> None:
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(f"{text} is a directory; {hint}")
    kind = next((name for test, name in _KINDS if test(mode)), "special file")
    raise ValueError(f"{what} {text} is a {kind}, not a regular file; {hint}")


_TOKEN_BYTES = 6
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_FILE_FLAGS = _NOFOLLOW | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)


def new_run_token() -> str:
    """A random token naming one run's temporary files, so that the run can remove exactly its own."""
    return secrets.token_hex(_TOKEN_BYTES)


def temp_name(name: str, run: str) -> str:
    """A new hidden name, unpredictable, under which the file ``name`` of the run ``run`` is written."""
    return f".{name}.{run}.{new_run_token()}.tmp"


def temp_pattern(final: str) -> re.Pattern[str]:
    """The temporary names (:func:`temp_name`) of the final names matched by the regular expression ``final``.

    Group 1 is the final name, group 2 the run token (or the process id that older versions used).

    Example:
        >>> temp_pattern(r"manifest\\.json").match(temp_name("manifest.json", "1a2b3c4d5e6f")).group(1, 2)
        ('manifest.json', '1a2b3c4d5e6f')
    """
    return re.compile(rf"^\.({final})\.([0-9a-f]+)(?:\.[0-9a-f]+)?\.tmp$")


class Dir:
    """A directory opened once; files in it are opened, created, renamed and removed relative to it.

    Opening a subdirectory refuses a symlink, so that replacing a folder of the target by a link
    cannot redirect a write, even after the checks. Pickles by path (re-opened on unpickling) for
    worker processes that are spawned rather than forked.

    Args:
        path: the directory, for messages and re-opening.
        fd: its open descriptor, owned by this object.
        base: the directory opened by path (following links) that ``path`` is reached from.
        parts: the components from ``base`` to ``path``, each opened without following links.
    """

    def __init__(self, path: Path, fd: int, base: Path, parts: tuple[str, ...]) -> None:
        self.path = path
        self.fd = fd
        self._base = base
        self._parts = parts

    @classmethod
    def open(cls, path: str | os.PathLike, create: bool = False) -> Dir:
        """Open ``path`` (links in it are followed: it is the caller's choice), creating it if asked.

        Raises:
            OSError: it cannot be created or opened, or is not a directory.
        """
        if os.open not in os.supports_dir_fd or not _NOFOLLOW:
            raise OSError(errno.ENOSYS, "writing files safely needs openat() and O_NOFOLLOW (Linux, macOS, BSD)")
        path = Path(path)
        if create:
            path.mkdir(parents=True, exist_ok=True)
        return cls(path, os.open(path, _DIR_FLAGS), path, ())

    def sub(self, name: str, create: bool = False) -> Dir:
        """The subdirectory ``name``, created if asked; a symlink there is refused.

        Raises:
            OSError: ``name`` is a symlink or not a directory, or cannot be created or opened.
        """
        path = self.path / name
        if create:
            try:
                os.mkdir(name, dir_fd=self.fd)
            except FileExistsError:
                pass
            except OSError as exc:
                raise type(exc)(exc.errno, f"cannot create {path}: {exc.strerror}") from None
        try:
            fd = os.open(name, _DIR_FLAGS | _NOFOLLOW, dir_fd=self.fd)
        except OSError as exc:
            self._refuse_link(name)
            if exc.errno == errno.ENOTDIR:
                raise NotADirectoryError(errno.ENOTDIR, f"{path} is not a directory; remove it") from None
            raise type(exc)(exc.errno, f"cannot open {path}: {exc.strerror}") from None
        return Dir(path, fd, self._base, (*self._parts, name))

    def reopen(self) -> Dir:
        """The same directory opened again: a descriptor of its own, e.g. for a lock of its own (``flock``)."""
        return Dir(self.path, os.open(".", _DIR_FLAGS, dir_fd=self.fd), self._base, self._parts)

    def entries(self) -> Iterator[os.DirEntry[str]]:
        """The directory's entries, read lazily; :meth:`os.DirEntry.is_file` and the like work on them."""
        with os.scandir(self.fd) as it:
            yield from it

    def open_file(self, name: str, flags: int = os.O_RDONLY, mode: int = 0o666) -> int:
        """A descriptor of the regular file ``name``, never through a symlink, never blocking on a FIFO.

        Raises:
            OSError: ``name`` is a symlink or not a regular file, or cannot be opened.
        """
        try:
            fd = os.open(name, flags | _FILE_FLAGS, mode, dir_fd=self.fd)
        except FileNotFoundError:
            raise
        except OSError as exc:
            self._refuse_link(name)
            raise type(exc)(exc.errno, f"cannot open {self.path / name}: {exc.strerror}") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(errno.EINVAL, f"{self.path / name} is not a regular file; remove it")
        return fd

    def read(self, name: str, limit: int) -> bytes | None:
        """The content of the regular file ``name``, or ``None`` if nothing is there.

        Raises:
            OSError: ``name`` is a symlink, not a regular file, larger than ``limit`` bytes, or unreadable.
        """
        try:
            fd = self.open_file(name)
        except FileNotFoundError:
            return None
        try:
            with open(fd, "rb", closefd=False) as f:
                data = f.read(limit + 1)
        except OSError as exc:
            raise type(exc)(exc.errno, f"cannot read {self.path / name}: {exc.strerror}") from None
        finally:
            os.close(fd)
        if len(data) > limit:
            raise OSError(errno.EFBIG, f"{self.path / name} is larger than {limit} bytes")
        return data

    def write(
        self, name: str, data: bytes, run: str | None = None, check: Callable[[], None] | None = None
    ) -> None:
        """Write ``data`` to ``name`` atomically; ``run`` names the temporary file (a new token by default).

        ``check``, if given, is called just before the complete file is renamed to ``name``; what it
        raises stops the write (the temporary file is removed).

        Raises:
            OSError: the write failed (its temporary file is removed); the message names ``name``'s path.
        """
        temp = temp_name(name, run or new_run_token())
        path = self.path / name
        with _naming_failures(path):
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _FILE_FLAGS, 0o666, dir_fd=self.fd)
        try:
            with _naming_failures(path):
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                finally:
                    os.close(fd)
            if check is not None:
                check()
            with _naming_failures(path):
                os.replace(temp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            self.unlink(temp, missing_ok=True)
            raise

    def unlink(self, name: str, missing_ok: bool = False) -> None:
        """Remove the file or link ``name`` (a link is removed, never its target)."""
        try:
            os.unlink(name, dir_fd=self.fd)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def close(self) -> None:
        """Close the descriptor (idempotent)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Dir:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "base": self._base, "parts": self._parts}

    def __setstate__(self, state: dict[str, Any]) -> None:
        opened = Dir.open(state["base"])
        for part in state["parts"]:
            inner = opened.sub(part)
            opened.close()
            opened = inner
        self.__dict__.update(opened.__dict__)

    def _refuse_link(self, name: str) -> None:
        try:
            is_link = stat.S_ISLNK(os.stat(name, dir_fd=self.fd, follow_symlinks=False).st_mode)
        except OSError:
            return
        if is_link:
            raise OSError(
                errno.ELOOP,
                f"{self.path / name} is a symbolic link, which the export never writes or follows; remove it",
            )


@contextmanager
def _naming_failures(path: Path) -> Iterator[None]:
    """Re-raise an ``OSError`` of writing ``path`` with a message that names it."""
    try:
        yield
    except OSError as exc:
        raise type(exc)(exc.errno, f"writing {path} failed: {exc.strerror}") from None


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file renamed into place (see :meth:`Dir.write`).

    Raises:
        OSError: the folder cannot be opened or the write failed; the message names ``path``.
    """
    path = Path(path)
    with _naming_failures(path):
        folder = Dir.open(path.parent)
    with folder:
        folder.write(path.name, data)
