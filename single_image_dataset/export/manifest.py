"""The export's records: ``TARGET/manifest.json`` (what the files are) and ``TARGET/shards/<K>-of-<N>.json``.

The manifest's ``"dataset"`` section holds everything that decides the files' content, so that a
resumed run or another shard can be compared with it; the rest (the source file, the library
versions, the date) is for the reader.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from typing import Any

from .._files import Dir
from ..dataset import SingleImageDataset
from ..source import pixel_sha256
from ..version import __version__

__all__ = [
    "MANIFEST_NAME",
    "RECORD_PATTERN",
    "SHARDS_DIR",
    "ShardRecord",
    "build_manifest",
    "differences",
    "read_manifest",
    "write_json",
]

MANIFEST_NAME = "manifest.json"
SHARDS_DIR = "shards"
#: The names of the shard records in SHARDS_DIR (``<K>-of-<N>.json``), as a regular expression.
RECORD_PATTERN = r"\d+-of-\d+\.json"
# 2: the renderer's identity replaced the backend name in the "dataset" section.
# 3: "sources" (every source, in order) and "source_files" replaced "source" and "source_file".
_MANIFEST_VERSION = 3
# A manifest is a few KB; a larger file there is not one.
_MANIFEST_LIMIT = 1 << 20


def build_manifest(
    dataset: SingleImageDataset,
    file_format: str,
    layout: str,
    encoding: Mapping[str, Any],
    encoder_versions: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The manifest of exporting ``dataset`` as ``file_format`` files named after ``layout``.

    Args:
        dataset: the image dataset, or a :class:`~single_image_dataset.video.FakeVideoDataset`.
        file_format: the files' extension.
        layout: where sample ``{index}`` is, as :func:`~.target.layout` gives it.
        encoding: what decides the files' bytes besides the samples (the JPEG quality; a video's
            codec, fps and crf), added to the ``"dataset"`` section after ``"format"``.
        encoder_versions: versions of the encoder's libraries to record beside the others.
    """
    config = dataset.config
    source_files = [
        None if path is None or not path.is_file()
        else {"path": os.path.abspath(path), "sha256": _file_sha256(str(path)), "bytes": path.stat().st_size}
        for path in dataset.source_paths
    ]
    return {
        "manifest_version": _MANIFEST_VERSION,
        # Everything that determines the files' content; a re-run must match it exactly.
        "dataset": {
            "num_imgs": config.num_imgs,
            "seed": config.seed,
            "epoch": dataset.epoch,
            "renderer": dataset.renderer_identity(),
            "format": file_format,
            **encoding,
            "layout": layout,
            # Every source, in order: a changed list (another image, another order) is another dataset.
            "sources": [{"pixel_sha256": pixel_sha256(src), "width": src.width, "height": src.height}
                        for src in dataset.sources],
            "config": config.to_dict(),
        },
        "source_files": source_files,
        "versions": {**_versions(), **(encoder_versions or {})},
        "created": _now(),
    }


def differences(old: Any, new: dict[str, Any]) -> list[str]:
    """How the ``"dataset"`` section ``old`` of an existing manifest differs from ``new``.

    Each differing fact is named once: ``seed``, which the section also holds inside ``config``,
    is not reported again as ``config.seed``.

    Example:
        >>> differences({"seed": 0, "config": {"seed": 0, "deg": 30}}, {"seed": 1, "config": {"seed": 1, "deg": 15}})
        ['seed 0 there, 1 now', 'config.deg 30 there, 15 now']
    """
    if not isinstance(old, dict):
        return ["manifest: unreadable"]
    out, seen = [], set()
    for path, before, after in _changes(old, new):
        fact = (path[-1], repr(before), repr(after))
        if fact not in seen:
            seen.add(fact)
            out.append(f"{'.'.join(path)} {before!r} there, {after!r} now")
    return out


def _changes(
    old: dict[str, Any], new: dict[str, Any], path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Any, Any]]:
    """The ``(path, old value, new value)`` of each leaf of ``new`` that ``old`` does not hold."""
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            yield from _changes(before, value, (*path, key))
        elif isinstance(value, list) and isinstance(before, list) and before != value:
            # A list (the sources) differs by its length, or item by item.
            if len(before) != len(value):
                yield (*path, key, "length"), len(before), len(value)
            else:
                items = {str(k): v for k, v in enumerate(value)}
                yield from _changes({str(k): v for k, v in enumerate(before)}, items, (*path, key))
        elif before != value:
            yield (*path, key), before, value


def read_manifest(root: Dir) -> dict[str, Any] | None:
    """The manifest in the export root ``root``, or ``None`` if there is none.

    Raises:
        ValueError: it cannot be read (a symlink, not a regular file, too large, not JSON) or is not
            a JSON object.
    """
    path = root.path / MANIFEST_NAME
    try:
        data = root.read(MANIFEST_NAME, _MANIFEST_LIMIT)
    except OSError as exc:
        raise ValueError(f"cannot read the existing manifest: {exc.strerror}") from None
    if data is None:
        return None
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read the existing manifest {path}: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"cannot read the existing manifest {path}: not a JSON object")
    return value


def write_json(folder: Dir, name: str, value: dict[str, Any], check: Callable[[], None] | None = None) -> None:
    """Write ``value`` to ``folder/name`` atomically, calling ``check`` before the rename (see :meth:`Dir.write`)."""
    folder.write(name, (json.dumps(value, indent=2) + "\n").encode("utf-8"), check=check)


class ShardRecord:
    """``TARGET/shards/<K>-of-<N>.json``: a shard's range, host, status and counts.

    The status is ``running`` while the shard writes, then ``complete``, ``interrupted`` (Ctrl-C),
    ``terminated`` (SIGTERM) or ``failed: <reason>``; only a run killed outright (SIGKILL, a
    machine crash), or one whose lock file was swapped (it may no longer own the target), leaves
    ``running``. Every record the run writes holds its counts so far:
    ``written`` (files this run wrote), ``skipped`` (files of the shard found complete, or with the
    right bytes under ``verify``), ``bytes_written`` and ``seconds``.

    Args:
        shards: the ``TARGET/shards`` folder.
        shard: ``(K, N)``.
        indices: the shard's index range.
        processes: its worker processes.
        versions: the manifest's ``"versions"``.
        check: called before each write of the record (the lock's check: :meth:`.TargetLock.check`).
    """

    def __init__(
        self,
        shards: Dir,
        shard: tuple[int, int],
        indices: range,
        processes: int,
        versions: dict[str, str],
        check: Callable[[], None] | None = None,
    ) -> None:
        self.folder = shards
        self.name = f"{shard[0]}-of-{shard[1]}.json"
        self.check = check
        self.fields: dict[str, Any] = {
            "shard": shard[0],
            "num_shards": shard[1],
            "start": indices.start,
            "stop": indices.stop,
            "status": "running",
            "processes": processes,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": _now(),
            "versions": versions,
        }

    def write(self, **counts: Any) -> None:
        """Write the record with ``counts`` (``written``, ``skipped``, ``bytes_written``, ``seconds``) updated."""
        self.fields.update(counts)
        write_json(self.folder, self.name, self.fields, self.check)

    def complete(self, **counts: Any) -> None:
        """Mark the shard complete with its final ``counts`` and write the record."""
        self.fields.update(status="complete", finished=_now())
        self.write(**counts)

    def stopped(self, status: str, **counts: Any) -> None:
        """Record how the shard stopped early (``interrupted``, ``failed: ...``) and its counts so far, if it can.

        A failure to write the record (a full disk, a lost lock) is ignored: the error that stopped the
        shard is the one to report.
        """
        self.fields.update(status=status, finished=_now())
        try:
            self.write(**counts)
        except OSError:
            pass


def _versions() -> dict[str, str]:
    # The renderer's own identity, OpenCV's version included, is in the manifest's "dataset" section.
    import numpy
    import PIL
    import torch
    import torchvision

    return {
        "single_image_dataset": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "Pillow": PIL.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
