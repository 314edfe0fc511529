"""The export's folder on disk: file names, what a target may already hold, leftovers and missing files."""

from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path
from typing import Any

from .manifest import MANIFEST_NAME, SHARDS_DIR, differences, read_manifest

__all__ = [
    "check_target",
    "create_folder",
    "image_folder",
    "image_name",
    "layout",
    "missing_indices",
    "remove_temp_files",
    "temp_name",
]

_FOLDER = "train/dummy"
_FINAL_RE = re.compile(r"^patch_(\d+)\.(jpg|png)$")
_TEMP_RE = re.compile(r"^\.patch_(\d+)\.(jpg|png)\.\d+\.tmp$")


def image_folder(target: Path) -> Path:
    """``target/train/dummy``: the one class folder that ``ImageFolder(target/train)`` reads."""
    return target / _FOLDER


def image_name(index: int, num_imgs: int, image_format: str) -> str:
    """File name of sample ``index``: zero-padded so that sorted names are in index order.

    Example:
        >>> image_name(7, 300, "png"), image_name(7, 1_281_167, "jpg")
        ('patch_007.png', 'patch_0000007.jpg')
    """
    return f"patch_{index:0{_digits(num_imgs)}d}.{image_format}"


def temp_name(name: str) -> str:
    """The hidden name, unique to this process, under which the file ``name`` is written before its rename."""
    return f".{name}.{os.getpid()}.tmp"


def layout(num_imgs: int, image_format: str) -> str:
    """Where sample ``{index}`` is under the export root, as a format string.

    Example:
        >>> layout(300, "png")
        'train/dummy/patch_{index:03d}.png'
    """
    return f"{_FOLDER}/patch_{{index:0{_digits(num_imgs)}d}}.{image_format}"


def _digits(num_imgs: int) -> int:
    return len(str(max(num_imgs - 1, 0)))


def check_target(target: Path, manifest: dict[str, Any], overwrite: bool) -> None:
    """Refuse a ``target`` that holds something other than (part of) the export ``manifest`` describes.

    With ``overwrite``, delete a different export found there instead, but never files this
    library did not write.

    Raises:
        NotADirectoryError: ``target`` is a file.
        FileExistsError: ``target`` holds another ImageFolder class, a different export, or files
            without a manifest; or, with ``overwrite``, files this library did not write.
        ValueError: the manifest in ``target`` cannot be read.
    """
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"target {target} exists and is not a directory")
    manifest_path = target / MANIFEST_NAME
    folder = image_folder(target)
    train = folder.parent
    foreign = sorted(p.name for p in _listdir(train) if p.name != folder.name and p.is_dir())
    if foreign:
        raise FileExistsError(
            errno.EEXIST,
            f"{train} holds {foreign[0]!r}, which ImageFolder would read as a class; "
            "remove it or choose another target",
        )
    if manifest_path.exists():
        found = differences(read_manifest(manifest_path).get("dataset"), manifest["dataset"])
        if not found:
            return
        if not overwrite:
            raise FileExistsError(
                errno.EEXIST,
                f"{target} already holds a different export ({'; '.join(found[:3])}); "
                "use --overwrite (overwrite=True) to replace it, or choose another target",
            )
        _remove_export(target)
        return
    entries = sorted(p.name for p in _listdir(folder) if not _TEMP_RE.match(p.name))
    if entries:
        if not overwrite:
            raise FileExistsError(
                errno.EEXIST,
                f"{folder} already holds {len(entries)} files but {target} has no {MANIFEST_NAME} "
                f"(e.g. {entries[0]!r}, perhaps the original script's output); use --overwrite "
                "(overwrite=True) to replace them, or choose another target",
            )
        _remove_export(target)


def _remove_export(target: Path) -> None:
    """Delete a previous export: its images, temp files, manifest and shard records, nothing else."""
    folder = image_folder(target)
    unknown = [p.name for p in _listdir(folder) if not (_FINAL_RE.match(p.name) or _TEMP_RE.match(p.name))]
    if unknown:
        raise FileExistsError(
            errno.EEXIST,
            f"{folder} holds {unknown[0]!r}, which this library did not write; remove it yourself "
            "or choose another target",
        )
    for path in _listdir(folder):
        path.unlink()
    (target / MANIFEST_NAME).unlink(missing_ok=True)
    shutil.rmtree(target / SHARDS_DIR, ignore_errors=True)


def create_folder(folder: Path) -> None:
    """Create ``folder`` and check that it can be written.

    Raises:
        OSError: it cannot be created or written; the message names the folder.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # mkdir succeeds on an existing read-only folder; a probe file finds out before any work.
        probe = folder / f".write-test.{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise type(exc)(exc.errno, f"cannot write to {folder}: {exc.strerror}") from None


def remove_temp_files(folder: Path, indices: range) -> None:
    """Delete the temporary files an interrupted run left for ``indices`` (other shards may be writing theirs)."""
    for path in _listdir(folder):
        match = _TEMP_RE.match(path.name)
        if match and int(match.group(1)) in indices:
            path.unlink(missing_ok=True)


def missing_indices(folder: Path, indices: range, num_imgs: int, image_format: str) -> list[int]:
    """The ``indices`` whose file in ``folder`` is absent or empty."""
    digits = _digits(num_imgs)
    present = set()
    with os.scandir(folder) as entries:
        for entry in entries:
            match = _FINAL_RE.match(entry.name)
            # Only complete files ever get a final name; an empty one can only come from a crash
            # of the whole machine before the data reached the disk, so it is written again.
            if (
                match
                and match.group(2) == image_format
                and len(match.group(1)) == digits
                and int(match.group(1)) in indices
                and entry.stat().st_size > 0
            ):
                present.add(int(match.group(1)))
    return [i for i in indices if i not in present]


def _listdir(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as entries:
            return [Path(e.path) for e in entries]
    except (FileNotFoundError, NotADirectoryError):
        return []
