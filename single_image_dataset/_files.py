"""Opening the files the library reads (source images, TOML presets): regular files only, and never blocking."""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

__all__ = ["open_regular_file"]

# Opening a FIFO for reading waits for a writer, and a terminal may become the controlling one: neither may happen.
_FLAGS = getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)

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
        file = open(text, "rb", opener=lambda name, flags: os.open(name, flags | _FLAGS))
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
