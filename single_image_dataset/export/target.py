"""The export's folder on disk: file names, what a target may hold, preparing it under the lock, missing files.

An export's items are images (``patch_<i>.jpg`` or ``.png``) or fake-video clips (``clip_<i>.mp4``); the file
format decides which, and every check here is written once for both.
"""

from __future__ import annotations

import errno
import os
import re
import time
from array import array
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, overload

import numpy as np

from .._files import Dir, temp_pattern
from ..video.encode import is_whole_mp4
from .lock import TargetLock
from .manifest import MANIFEST_NAME, RECORD_PATTERN, SHARDS_DIR, differences, read_manifest, write_json

__all__ = [
    "FORMATS",
    "Missing",
    "file_range",
    "holds",
    "image_folder",
    "image_name",
    "is_complete",
    "layout",
    "open_target",
    "prepare",
    "remove_temp_files",
]

#: Image file extension -> Pillow format name.
FORMATS = {"jpg": "JPEG", "png": "PNG"}
#: Every file extension an export writes -> the prefix of its files' names: images, or clips (``mp4``).
PREFIXES = {"jpg": "patch", "png": "patch", "mp4": "clip"}

_TRAIN, _CLASS = "train", "dummy"
# What every complete image file of the format starts and ends with: JPEG's SOI and the next marker's
# 0xFF, its EOI; PNG's signature, its empty IEND chunk with the chunk's CRC.
_SIGNATURES = {"jpg": (b"\xff\xd8\xff", b"\xff\xd9"), "png": (b"\x89PNG\r\n\x1a\n", b"\x00\x00\x00\x00IEND\xaeB`\x82")}
_LAYOUT_RE = re.compile(rf"^train/dummy/({'|'.join(sorted(set(PREFIXES.values())))})_\{{index:0(\d{{1,2}})d\}}\.(\w+)$")
# Any item file of any format, as the pattern of its name.
_ANY_ITEM = "(?:" + "|".join(rf"{prefix}_\d+\.{ext}" for ext, prefix in PREFIXES.items()) + ")"
# How often a run that finds another dataset's run in the target looks again before it is refused.
_ATTEMPTS = 3
_RETRY_SECONDS = 0.2


def image_folder(target: Path) -> Path:
    """``target/train/dummy``: the one class folder that ``ImageFolder(target/train)`` reads."""
    return target / _TRAIN / _CLASS


def image_name(index: int, num_imgs: int, image_format: str) -> str:
    """File name of sample ``index`` (an image, or a clip for ``"mp4"``): zero-padded so that sorted names are
    in index order.

    Example:
        >>> image_name(7, 300, "png"), image_name(7, 1_281_167, "jpg"), image_name(7, 200_000, "mp4")
        ('patch_007.png', 'patch_0000007.jpg', 'clip_000007.mp4')
    """
    return f"{PREFIXES[image_format]}_{index:0{_digits(num_imgs)}d}.{image_format}"


def layout(num_imgs: int, image_format: str) -> str:
    """Where sample ``{index}`` is under the export root, as a format string.

    Example:
        >>> layout(300, "png"), layout(16, "mp4")
        ('train/dummy/patch_{index:03d}.png', 'train/dummy/clip_{index:02d}.mp4')
    """
    return f"{_TRAIN}/{_CLASS}/{PREFIXES[image_format]}_{{index:0{_digits(num_imgs)}d}}.{image_format}"


def _digits(num_imgs: int) -> int:
    return len(str(max(num_imgs - 1, 0)))


@dataclass(frozen=True)
class _ImageNames:
    """The files of one export: ``<prefix>_<index>.<ext>`` with a fixed width (or none), ``index < count``."""

    final: re.Pattern[str]
    temp: re.Pattern[str]
    count: int | None

    @classmethod
    def of(cls, width: int | None, ext: str, count: int | None) -> _ImageNames:
        digits = rf"\d{{{width}}}" if width is not None else r"0|[1-9]\d*"
        prefix = PREFIXES[ext]
        final = rf"{prefix}_(?:{digits})\.{ext}"
        return cls(re.compile(rf"^{prefix}_({digits})\.{ext}$"), temp_pattern(final), count)

    def index(self, name: str) -> int | None:
        """The index of the final file ``name``, ``None`` if it is not one of this export's."""
        match = self.final.match(name)
        if match is None:
            return None
        index = int(match.group(1))
        return index if self.count is None or index < self.count else None

    def is_temp(self, name: str) -> bool:
        match = self.temp.match(name)
        return match is not None and self.index(match.group(1)) is not None


def _current_names(dataset: dict[str, Any]) -> _ImageNames:
    return _ImageNames.of(_digits(dataset["num_imgs"]), dataset["format"], dataset["num_imgs"])


def _old_names(old: dict[str, Any] | None, target: Path) -> _ImageNames:
    """The files an old export wrote, from its manifest; without one, the original script's ``patch_<n>.jpg``."""
    if old is None:
        return _ImageNames.of(None, "jpg", None)
    section = old.get("dataset")
    section = section if isinstance(section, dict) else {}
    found = _LAYOUT_RE.match(section.get("layout")) if isinstance(section.get("layout"), str) else None
    count = section.get("num_imgs")
    if found is not None and PREFIXES.get(found.group(3)) != found.group(1):
        found = None
    if found is None or isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise FileExistsError(
            errno.EEXIST,
            f"cannot tell which files the export in {target} wrote: its {MANIFEST_NAME} has no valid layout "
            "and num_imgs; delete the old export yourself, or choose another target",
        )
    return _ImageNames.of(int(found.group(2)), found.group(3), count)


class Missing(Sequence[int]):
    """The indices of a contiguous range whose file is not on disk, without listing them.

    Holds the sorted indices that *are* present, so its memory grows with the files on disk, not
    with the range: a shard of 10^9 images with nothing written yet takes a few bytes. The ``r``-th
    missing index is ``start + r`` plus the number of present indices below it, found by bisection.

    Example:
        >>> missing = Missing(range(10, 20), np.array([11, 12, 15]))
        >>> len(missing), list(missing), missing[2:4]
        (7, [10, 13, 14, 16, 17, 18, 19], [14, 16])
    """

    def __init__(self, indices: range, present: np.ndarray) -> None:
        self.indices = indices
        present = np.asarray(present, dtype=np.int64)
        # _before[j]: how many indices of the range below present[j] are missing; non-decreasing.
        self._before = present - indices.start - np.arange(len(present), dtype=np.int64)
        self._len = len(indices) - len(present)

    def __len__(self) -> int:
        return self._len

    @overload
    def __getitem__(self, key: int) -> int: ...

    @overload
    def __getitem__(self, key: slice) -> list[int]: ...

    def __getitem__(self, key: int | slice) -> int | list[int]:
        if isinstance(key, slice):
            ranks = range(self._len)[key]
            return self._at(np.arange(ranks.start, ranks.stop, ranks.step, dtype=np.int64)).tolist()
        rank = range(self._len)[key]  # IndexError past the end, as for a list
        return int(self._at(np.array([rank], dtype=np.int64))[0])

    def _at(self, ranks: np.ndarray) -> np.ndarray:
        return self.indices.start + ranks + np.searchsorted(self._before, ranks, side="right")


def is_complete(folder: Dir, name: str, image_format: str) -> bool:
    """Whether ``folder/name`` is a whole ``image_format`` file, as far as its structure tells (a few small reads).

    A non-empty regular file with the format's structure: an image starts with the format's header
    and ends with its trailer; an MP4's boxes tile the file
    (:func:`~single_image_dataset.video.encode.is_whole_mp4`). Damage inside a file is not seen:
    :func:`holds` compares the bytes.

    Raises:
        OSError: ``name`` is a symlink (dangling or not) or not a regular file, which the export
            never writes; the message names it.
    """
    try:
        fd = folder.open_file(name)
    except FileNotFoundError:
        return False
    with open(fd, "rb") as f:
        return _WHOLE[image_format](f, os.fstat(fd).st_size)


def holds(folder: Dir, name: str, data: bytes) -> bool:
    """Whether ``folder/name`` is a regular file whose content is exactly ``data``.

    Raises:
        OSError: ``name`` is a symlink or not a regular file, which the export never writes, or
            cannot be read; the message names it.
    """
    try:
        fd = folder.open_file(name)
    except FileNotFoundError:
        return False
    with open(fd, "rb") as f:
        if os.fstat(fd).st_size != len(data):
            return False
        try:
            return f.read(len(data) + 1) == data
        except OSError as exc:
            raise type(exc)(exc.errno, f"cannot read {folder.path / name}: {exc.strerror}") from None


def file_range(target: Path, indices: range, num_imgs: int, file_format: str) -> str:
    """Where the files of ``indices`` are, as ``TARGET/train/dummy/{first .. last}``.

    Example:
        >>> file_range(Path("out"), range(3, 10), 300, "png")
        'out/train/dummy/{patch_003.png .. patch_009.png}'
    """
    if not len(indices):
        return "nothing (empty shard)"
    first, last = (image_name(i, num_imgs, file_format) for i in (indices[0], indices[-1]))
    return f"{image_folder(target)}/{{{first} .. {last}}}"


def _has_signatures(image_format: str, f: BinaryIO, size: int) -> bool:
    head, tail = _SIGNATURES[image_format]
    if size < len(head) + len(tail) or f.read(len(head)) != head:
        return False
    f.seek(size - len(tail))
    return f.read(len(tail)) == tail


# Per format: whether a file has the format's structure.
_WHOLE: dict[str, Callable[[BinaryIO, int], bool]] = {
    "jpg": partial(_has_signatures, "jpg"), "png": partial(_has_signatures, "png"), "mp4": is_whole_mp4,
}


def open_target(target: Path) -> Dir:
    """Create (if needed) and open the export root.

    Raises:
        NotADirectoryError: ``target`` is a file.
        OSError: it cannot be created; the message names the image folder.
    """
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"target {target} exists and is not a directory")
    try:
        return Dir.open(target, create=True)
    except OSError as exc:
        raise type(exc)(exc.errno, f"cannot write to {image_folder(target)}: {exc.strerror}") from None


def prepare(
    root: Dir,
    lock: TargetLock,
    manifest: dict[str, Any],
    overwrite: bool,
    shard: tuple[int, int],
    indices: range,
    check_space: Callable[[Dir, Missing], None],
) -> tuple[Dir, Dir, Missing]:
    """Make the target hold the export ``manifest`` describes, under ``lock`` (see :mod:`.lock`).

    Returns with the lock held shared: the image folder, the shard records' folder, and the
    indices of the shard whose file is missing or incomplete (see :func:`is_complete`).
    ``check_space`` is called with the image folder and the missing indices before the manifest
    of a new export is written.

    Raises:
        FileExistsError: ``target`` holds another ImageFolder class, a different export, or files
            without a manifest; or, with ``overwrite``, files the old export did not write.
        BlockingIOError: another run holds the target for a different dataset, or prepares it for too long.
        OSError: a folder or file of the target is a symlink or of the wrong type, or cannot be written.
        ValueError: the manifest in ``target`` cannot be read.
    """
    retries = _ATTEMPTS - 1
    while (prepared := _attempt(root, lock, manifest, overwrite, shard, indices, check_space, retries > 0)) is None:
        retries -= 1
        time.sleep(_RETRY_SECONDS)
    return prepared


def _attempt(
    root: Dir,
    lock: TargetLock,
    manifest: dict[str, Any],
    overwrite: bool,
    shard: tuple[int, int],
    indices: range,
    check_space: Callable[[Dir, Missing], None],
    may_retry: bool,
) -> tuple[Dir, Dir, Missing] | None:
    """One try of :func:`prepare`; ``None`` (lock released) if it should be tried again."""
    dataset = manifest["dataset"]
    names = _current_names(dataset)
    with ExitStack() as stack:
        exclusive = lock.try_exclusive()
        if not exclusive:
            lock.share()
        lock.check()  # the file locked is the one at the path, not one deleted or replaced since it was opened
        folder = stack.enter_context(_image_folder(root))
        old = read_manifest(root)
        if exclusive:
            lock.claim(shard)
            new = _make_room(root, folder, old, dataset, names, overwrite)
        elif may_retry and (old is None or differences(old.get("dataset"), dataset)):
            # The other run may be on its way out (one that is refused holds the lock for an instant,
            # one that gave up before writing a manifest is gone): look again before refusing.
            lock.release()
            return None
        else:
            _check_joinable(root, lock, old, dataset)
            lock.claim(shard)
        shards = stack.enter_context(root.sub(SHARDS_DIR, create=True))
        missing = _scan(folder, indices, names, dataset["format"])
        check_space(folder, missing)
        if exclusive:
            if new:
                write_json(root, MANIFEST_NAME, manifest, lock.check)
            lock.share()
            # Converting the lock may let another run in for an instant: it must not have replaced ours.
            if differences((read_manifest(root) or {}).get("dataset"), dataset):
                raise BlockingIOError(
                    errno.EWOULDBLOCK,
                    f"another export ({lock.holder()}) replaced the manifest of {root.path} while this one "
                    "started; wait for it to finish, or choose another target",
                )
        stack.pop_all()
        return folder, shards, missing


def _image_folder(root: Dir) -> Dir:
    """``train/dummy``, created if needed; ``train`` must hold no other class."""
    with root.sub(_TRAIN, create=True) as train:
        # ImageFolder follows links, so a link to a folder is a class too.
        other = sorted(e.name for e in train.entries() if e.name != _CLASS and e.is_dir())
        if other:
            raise FileExistsError(
                errno.EEXIST,
                f"{train.path} holds {other[0]!r}, which ImageFolder would read as a class; "
                "remove it or choose another target",
            )
        return train.sub(_CLASS, create=True)


def _make_room(
    root: Dir, folder: Dir, old: dict[str, Any] | None, dataset: dict[str, Any], names: _ImageNames, overwrite: bool
) -> bool:
    """With no other run there: refuse a different export, or delete it with ``overwrite``; remove leftovers.

    Returns whether the manifest has to be written.
    """
    if old is None:
        _check_unmanifested(root, folder, names, overwrite)
    elif differences(old.get("dataset"), dataset):
        if not overwrite:
            found = differences(old.get("dataset"), dataset)
            raise FileExistsError(
                errno.EEXIST,
                f"{root.path} already holds a different export ({'; '.join(found[:3])}); "
                "use --overwrite (overwrite=True) to replace it, or choose another target",
            )
        _remove_export(root, folder, _old_names(old, root.path))
        old = None
    _remove_stale_temps(root, folder, names)
    return old is None


def _check_joinable(root: Dir, lock: TargetLock, old: dict[str, Any] | None, dataset: dict[str, Any]) -> None:
    """With other runs there: refuse unless they write the same dataset."""
    found = ["no manifest yet"] if old is None else differences(old.get("dataset"), dataset)
    if found:
        raise BlockingIOError(
            errno.EWOULDBLOCK,
            f"{root.path} is in use by another export ({lock.holder()}) of a different dataset "
            f"({'; '.join(found[:3])}); wait for it to finish, or choose another target",
        )


def _check_unmanifested(root: Dir, folder: Dir, names: _ImageNames, overwrite: bool) -> None:
    """Files in the image folder without a manifest (the original script's output): refuse, or delete them."""
    count, first = 0, None
    for entry in folder.entries():
        if not names.is_temp(entry.name):
            count, first = count + 1, entry.name if first is None else min(first, entry.name)
    if not count:
        return
    if not overwrite:
        raise FileExistsError(
            errno.EEXIST,
            f"{folder.path} already holds {count} files but {root.path} has no {MANIFEST_NAME} "
            f"(e.g. {first!r}, perhaps the original script's output); use --overwrite "
            "(overwrite=True) to replace them, or choose another target",
        )
    _remove_stale_temps(root, folder, names)
    _remove_export(root, folder, _old_names(None, root.path))


def _remove_export(root: Dir, folder: Dir, names: _ImageNames) -> None:
    """Delete an old export: exactly its images (``names``), temporary files, shard records and manifest.

    Everything is checked before anything is deleted; the manifest goes last, so that an
    interrupted deletion can be finished by running again.

    Raises:
        FileExistsError: the image folder or the records' folder holds anything else; it is named.
    """
    record_names, record_temps = re.compile(rf"^{RECORD_PATTERN}$"), temp_pattern(RECORD_PATTERN)

    def image_or_temp(name: str) -> bool:
        return names.index(name) is not None or names.is_temp(name)

    def record_or_temp(name: str) -> bool:
        return bool(record_names.match(name) or record_temps.match(name))

    manifest_temps = temp_pattern(re.escape(MANIFEST_NAME))
    with ExitStack() as stack:
        places = [(folder, image_or_temp)]
        shards = _existing(root, SHARDS_DIR)
        if shards is not None:
            places.append((stack.enter_context(shards), record_or_temp))
        for where, ours in places:
            for entry in where.entries():
                if not (entry.is_file(follow_symlinks=False) and ours(entry.name)):
                    raise FileExistsError(
                        errno.EEXIST,
                        f"{where.path} holds {entry.name!r}, which this library did not write; remove it "
                        "yourself or choose another target",
                    )
        for where, ours in [*places, (root, manifest_temps.match)]:
            _delete_files(where, ours)
    root.unlink(MANIFEST_NAME, missing_ok=True)


def _delete_files(where: Dir, ours: Callable[[str], Any]) -> None:
    """Delete the regular files in ``where`` whose name ``ours`` accepts, without listing them in memory."""
    # Entries deleted while a directory is read may make the reading skip others: read until none is left.
    deleted = True
    while deleted:
        deleted = False
        for entry in where.entries():
            if ours(entry.name) and entry.is_file(follow_symlinks=False):
                where.unlink(entry.name, missing_ok=True)
                deleted = True


def _existing(root: Dir, name: str) -> Dir | None:
    try:
        return root.sub(name)
    except FileNotFoundError:
        return None


def _remove_stale_temps(root: Dir, folder: Dir, names: _ImageNames) -> None:
    """Delete the temporary files that killed runs left; only called while no other run holds the target."""
    with ExitStack() as stack:
        places = [(folder, names.is_temp), (root, temp_pattern(re.escape(MANIFEST_NAME)).match)]
        shards = _existing(root, SHARDS_DIR)
        if shards is not None:
            places.append((stack.enter_context(shards), temp_pattern(RECORD_PATTERN).match))
        for where, ours in places:
            _delete_files(where, ours)


def remove_temp_files(folder: Dir, run: str) -> None:
    """Delete the temporary files of the run ``run`` (those its stopped workers left)."""
    pattern = temp_pattern(_ANY_ITEM)

    def of_the_run(name: str) -> bool:
        match = pattern.match(name)
        return match is not None and match.group(2) == run

    _delete_files(folder, of_the_run)


def _scan(folder: Dir, indices: range, names: _ImageNames, image_format: str) -> Missing:
    """The ``indices`` whose file in ``folder`` is absent or incomplete; a symlink or odd file there is refused."""
    present = array("q")
    for entry in folder.entries():
        index = names.index(entry.name)
        if index is not None and index in indices and is_complete(folder, entry.name, image_format):
            present.append(index)
    return Missing(indices, np.sort(np.frombuffer(present, dtype=np.int64)))
