"""Writing a dataset to disk as the ``TARGET/train/dummy`` ImageFolder tree of the original script.

:func:`materialize` writes an image dataset as JPEG or PNG files, :func:`materialize_video` a fake-video
dataset as MP4 clips; both are the same export, which differs only in how a sample becomes a file's bytes.
The export is parallel over processes, resumable (only missing or incomplete files are written),
safe to interrupt (files appear under their final name only once complete), shardable over
machines, and safe in a hostile or busy target: it never follows a symlink when it creates a file
(``single_image_dataset._files``) and takes a lock that lets runs of one dataset write together while refusing a
conflicting one (:mod:`.lock`). This module holds the public functions; :mod:`.target` the folder's
names and checks, :mod:`.manifest` the records written beside the images, :mod:`.pool` the worker
processes and :mod:`.progress` the progress report.
"""

from __future__ import annotations

import errno
import io
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import torch
from PIL import Image

from .._files import Dir, new_run_token
from ..dataset import SingleImageDataset
from ..video.encode import (
    CODEC,
    DEFAULT_CRF,
    DEFAULT_FPS,
    X264_OPTIONS,
    check_encodable,
    encode_mp4,
    encoder_versions,
)
from . import pool
from .lock import LockWitness, TargetLock
from .manifest import MANIFEST_NAME, ShardRecord, build_manifest, read_manifest
from .progress import Progress
from .target import (
    FORMATS,
    Missing,
    file_range,
    holds,
    image_name,
    layout,
    open_target,
    prepare,
    remove_temp_files,
)

if TYPE_CHECKING:
    from ..video.dataset import FakeVideoDataset

__all__ = [
    "DEFAULT_QUALITY",
    "FORMATS",
    "MANIFEST_NAME",
    "ExportResult",
    "Terminated",
    "available_cpus",
    "estimate_bytes",
    "estimate_video_bytes",
    "file_range",
    "format_bytes",
    "image_name",
    "materialize",
    "materialize_video",
    "shard_range",
]

#: JPEG quality: Pillow's default, which the original script wrote.
DEFAULT_QUALITY = 75

# PNG is lossless, so the zlib level only trades size for time: level 1 encodes a 256 px sample
# about 3x faster than Pillow's default 6 for ~12% larger files.
_PNG_COMPRESS_LEVEL = 1
# Files occupy whole filesystem blocks; JPEG sizes vary from sample to sample, hence the margin.
_BLOCK_BYTES = 4096
_SIZE_MARGIN = 1.15
_ESTIMATE_SAMPLES = 8


class Terminated(KeyboardInterrupt):
    """SIGTERM (e.g. from Slurm), raised by the handler a program installs (the CLI does).

    An export stops as on Ctrl-C, and its shard record says ``"terminated"`` instead of ``"interrupted"``.
    """


@dataclass(frozen=True)
class ExportResult:
    """What one :func:`materialize` (or :func:`materialize_video`) call did.

    Attributes:
        target: the export root (``TARGET``); images (or clips) are in ``TARGET/train/dummy``.
        indices: the sample indices this call was responsible for (its shard).
        written: files written by this call.
        skipped: files of the shard that were already there and complete (a resumed export), or,
            with ``verify``, whose bytes were right.
        bytes_written: total size of the files written.
        seconds: wall time of the writing phase.
    """

    target: Path
    indices: range
    written: int
    skipped: int
    bytes_written: int
    seconds: float


def shard_range(num_imgs: int, shard: int, num_shards: int) -> range:
    """The contiguous index range of shard ``shard`` (0-based) of ``num_shards``.

    The ranges of all shards are disjoint, cover ``range(num_imgs)`` and differ in length by at
    most one.

    Example:
        >>> [shard_range(10, k, 3) for k in range(3)]
        [range(0, 3), range(3, 6), range(6, 10)]
    """
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise ValueError(f"shard should be K/N with 0 <= K < N (K counts from 0), got {shard}/{num_shards}")
    return range(shard * num_imgs // num_shards, (shard + 1) * num_imgs // num_shards)


def estimate_bytes(
    dataset: SingleImageDataset, indices: Sequence[int], image_format: str = "jpg", quality: int = DEFAULT_QUALITY
) -> int:
    """Disk space that writing the samples ``indices`` will take, from encoding a few of them.

    Each sampled file is rounded up to whole 4 KiB blocks and a 15% margin is added for the
    variation of JPEG sizes between samples.
    """
    return _estimate(dataset, indices, _ImageEncoding(image_format, quality))


def estimate_video_bytes(
    dataset: FakeVideoDataset, indices: Sequence[int], fps: int = DEFAULT_FPS, crf: int = DEFAULT_CRF
) -> int:
    """:func:`estimate_bytes` for the MP4 clips of :func:`materialize_video`.

    Raises:
        ImportError: PyAV is not installed.
    """
    return _estimate(dataset, indices, _ClipEncoding(fps, crf))


def _estimate(dataset: Any, indices: Sequence[int], encoding: _Encoding) -> int:
    if len(indices) == 0:
        return 0
    step = max(1, len(indices) // _ESTIMATE_SAMPLES)
    probe = [indices[k] for k in range(0, len(indices), step)][:_ESTIMATE_SAMPLES]
    sizes = [len(encoding.encode(dataset, i)) for i in probe]
    per_file = sum(math.ceil(s / _BLOCK_BYTES) * _BLOCK_BYTES for s in sizes) / len(sizes)
    return int(per_file * _SIZE_MARGIN * len(indices))


def format_bytes(nbytes: float) -> str:
    """``nbytes`` in decimal units with three significant digits, e.g. ``"25.3 GB"``."""
    for unit in ("B", "KB", "MB", "GB"):
        if nbytes < 1000:
            return f"{nbytes:.3g} {unit}"
        nbytes /= 1000
    return f"{nbytes:.3g} TB"


def available_cpus() -> int:
    """The CPUs this process may run on (a Slurm allocation, a cpuset, ``taskset``), not the machine's count.

    The default of the CLI's ``--threads``; pass it as ``processes`` to :func:`materialize` for the same.
    """
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def materialize(
    dataset: SingleImageDataset,
    target: str | os.PathLike,
    *,
    image_format: str = "jpg",
    quality: int = DEFAULT_QUALITY,
    processes: int = 1,
    shard: tuple[int, int] = (0, 1),
    overwrite: bool = False,
    verify: bool = False,
    chunk_size: int = 32,
    progress: bool = True,
    progress_stream: TextIO | None = None,
) -> ExportResult:
    """Write ``dataset`` to ``target/train/dummy/patch_<i>.<ext>``, readable by ``ImageFolder(target/train)``.

    File ``i`` holds ``dataset.render(dataset.params(i))`` (the dataset's ``transform`` is not
    applied), so ``ImageFolder(target/train)[i]`` equals ``dataset[i]``: pixel for pixel as PNG,
    its JPEG encoding as JPEG. A ``manifest.json`` in ``target`` records the config, epoch,
    renderer (:meth:`SingleImageDataset.renderer_identity`), file format, the source image's
    hashes and size, and library versions; each shard records its range and status in
    ``target/shards/<K>-of-<N>.json``.

    Files are written to a hidden temporary name in the same folder and renamed when complete,
    so an interrupted export leaves no partial file, and calling again with the same arguments
    writes only the missing ones. A file already there counts as written if it is a regular file
    with the format's header and trailer; otherwise it is written again. ``verify`` compares every
    file's bytes with the sample rendered and encoded again. Runs of the same dataset may write into
    one target at once (shards, or the same shard twice); a run of another dataset, or an
    ``overwrite``, while one writes is refused, also if the lock file was deleted or replaced
    (:mod:`.lock`).

    Args:
        dataset: the dataset to write (its config, epoch, backend and source).
        target: the export root.
        image_format: ``"jpg"`` or ``"png"``.
        quality: JPEG quality (1-100); the default, :data:`DEFAULT_QUALITY`, is what the original
            script wrote.
        processes: worker processes; 1 (the default) writes in this process. The CLI's ``--threads``
            defaults to :func:`available_cpus` instead: a program owns its process, while a library
            call that started processes by default would need the ``if __name__ == "__main__":``
            guard where they are spawned (macOS, Windows); ``DataLoader`` defaults to ``num_workers=0``
            for the same reason.
        shard: ``(K, N)``: write only the ``K``-th (0-based) of ``N`` contiguous index ranges, so
            ``N`` machines can export one dataset into one folder without coordinating.
        overwrite: replace an existing export of a different dataset in ``target`` instead of
            refusing: delete exactly the files its manifest says it wrote, refusing if anything
            else is in the way. Not allowed with ``N > 1`` shards, whose runs would delete each
            other's files.
        verify: render and encode every sample of the shard again and compare the bytes with its
            file; write again every file that differs in any byte or is missing (as slow as writing
            the shard: it renders every sample). The export is deterministic, so only damage (or
            files written with other library versions, which a progress line names) differs.
        chunk_size: indices handed to a worker at a time.
        progress: report progress on ``progress_stream``: a bar with rate and ETA on a terminal,
            a line every 10% otherwise.
        progress_stream: defaults to ``sys.stderr``.

    Returns:
        What was written and skipped, and how long it took.

    Raises:
        ValueError: invalid arguments (an empty ``target`` included), a dataset with views or
            ``per_source_classes``, or an unreadable manifest in ``target``.
        FileExistsError: ``target`` holds a different export (one rendered by a different renderer
            included), or files this library did not write.
        BlockingIOError: another export of a different dataset is writing into ``target``.
        OSError: ``target`` cannot be created or written, a folder or file in it is a symlink or
            of the wrong type, the disk is too small for the export (``errno.ENOSPC``), a write
            failed, or the lock file was deleted or replaced during the run
            (:class:`~.lock.LockLost`); the message names the path.
        KeyboardInterrupt: Ctrl-C (or :class:`Terminated`); the shard record says so.
    """
    _check_image_format(image_format, quality)
    if getattr(dataset, "per_source_classes", False):
        raise ValueError(
            "materialize writes the paper's single class train/dummy, which would drop per_source_classes' targets; "
            "export a dataset with per_source_classes=False (the sources and their order are in the manifest)"
        )
    if getattr(dataset, "views", None) is not None:
        raise ValueError(
            "materialize writes one image per sample and would drop the dataset's views; export the dataset without "
            "views= (a view is a function of its sample, views.ViewParams says which)"
        )
    encoding = _ImageEncoding(image_format, quality)
    return _export(
        dataset, target, encoding, processes, shard, overwrite, verify, chunk_size, progress, progress_stream
    )


def materialize_video(
    dataset: FakeVideoDataset,
    target: str | os.PathLike,
    *,
    fps: int = DEFAULT_FPS,
    crf: int = DEFAULT_CRF,
    processes: int = 1,
    shard: tuple[int, int] = (0, 1),
    overwrite: bool = False,
    verify: bool = False,
    chunk_size: int = 4,
    progress: bool = True,
    progress_stream: TextIO | None = None,
) -> ExportResult:
    """Write the clips of ``dataset`` to ``target/train/dummy/clip_<i>.mp4``, as ``make_fakevideo_dataset.py`` did.

    File ``i`` is ``encode_mp4(dataset.render(dataset.params(i)), fps, crf)``
    (:func:`~single_image_dataset.video.encode_mp4`, whose bytes are a function of the frames; the dataset's
    ``transform`` and ``layout`` are not applied). Everything else is :func:`materialize`'s export: the
    manifest (which records the codec, ``fps``, ``crf`` and x264's other settings too, and PyAV's version
    with the others), resuming (a file there counts if its MP4 boxes are whole), ``verify`` (the bytes
    compared with the clip encoded again), atomic files, the lock and the shards. The encoder is tried
    on a small clip before ``target`` is touched.

    Args:
        dataset: the fake-video dataset to write (its config, epoch, backend and source); its
            ``img_size`` must be even (H.264 in 4:2:0).
        target: the export root.
        fps: frames per second written in the files, 1 to :data:`~single_image_dataset.video.encode.MAX_FPS`.
        crf: x264's constant rate factor, 0 (lossless) to 51.
        processes, shard, overwrite, verify, chunk_size, progress, progress_stream: as for :func:`materialize`.

    Returns:
        What was written and skipped, and how long it took.

    Raises:
        ImportError: PyAV is not installed; the message names the pip command.
        ValueError, FileExistsError, BlockingIOError, OSError, KeyboardInterrupt: as for :func:`materialize`;
            an ``OSError`` also if the encoder cannot open (e.g. out of memory).
    """
    check_encodable(dataset.config.img_size, dataset.config.img_size, fps, crf)
    encoding = _ClipEncoding(fps, crf)
    return _export(
        dataset, target, encoding, processes, shard, overwrite, verify, chunk_size, progress, progress_stream
    )


@dataclass(frozen=True)
class _ImageEncoding:
    """An image sample as a JPEG or PNG file."""

    file_format: str
    quality: int
    noun = "images"
    unit = "img"

    def encode(self, dataset: SingleImageDataset, index: int) -> bytes:
        return _encode(dataset.render(dataset.params(index)), self.file_format, self.quality)

    def try_encoder(self, dataset: SingleImageDataset) -> None:
        """Nothing to try: Pillow's encoders open no resources."""

    def manifest_fields(self) -> dict[str, Any]:
        """What decides the files' bytes besides the samples, for the manifest's ``"dataset"`` section."""
        return {"quality": self.quality if self.file_format == "jpg" else None}

    def versions(self) -> dict[str, str]:
        """The encoder's library versions beyond the manifest's usual ones (Pillow's is one of those)."""
        return {}


@dataclass(frozen=True)
class _ClipEncoding:
    """A clip as an MP4 file (:func:`~single_image_dataset.video.encode_mp4`)."""

    fps: int
    crf: int
    file_format = "mp4"
    noun = "clips"
    unit = "clip"

    def encode(self, dataset: FakeVideoDataset, index: int) -> bytes:
        return encode_mp4(dataset.render(dataset.params(index)), self.fps, self.crf)

    def try_encoder(self, dataset: FakeVideoDataset) -> None:
        """Encode a black two-frame clip of the dataset's size, so that an encoder that cannot open fails early."""
        side = dataset.config.img_size
        encode_mp4(torch.zeros(2, 3, side, side, dtype=torch.uint8), self.fps, self.crf)

    def manifest_fields(self) -> dict[str, Any]:
        """What decides the files' bytes besides the clips, for the manifest's ``"dataset"`` section."""
        return {"codec": CODEC, "fps": self.fps, "crf": self.crf, "x264_options": X264_OPTIONS}

    def versions(self) -> dict[str, str]:
        """PyAV's version and that of the FFmpeg it bundles; raises ``ImportError`` without PyAV."""
        return encoder_versions()


_Encoding = _ImageEncoding | _ClipEncoding


def _export(
    dataset: Any,
    target: str | os.PathLike,
    encoding: _Encoding,
    processes: int,
    shard: tuple[int, int],
    overwrite: bool,
    verify: bool,
    chunk_size: int,
    progress: bool,
    progress_stream: TextIO | None,
) -> ExportResult:
    """The export of :func:`materialize` and :func:`materialize_video`, with ``encoding`` making the files."""
    target = _check_target(target)
    _check_arguments(processes, chunk_size, shard, overwrite)
    num_imgs = dataset.config.num_imgs
    indices = shard_range(num_imgs, *shard)
    file_format = encoding.file_format
    manifest = build_manifest(
        dataset, file_format, layout(num_imgs, file_format), encoding.manifest_fields(), encoding.versions()
    )
    encoding.try_encoder(dataset)

    def check_space(folder: Dir, missing: Missing) -> None:
        _check_free_space(folder, dataset, missing, encoding)

    with ExitStack() as stack:
        root = stack.enter_context(open_target(target))
        lock = stack.enter_context(TargetLock(root))
        folder, shards, missing = prepare(root, lock, manifest, overwrite, shard, indices, check_space)
        stack.enter_context(folder)
        stack.enter_context(shards)

        tally = _Tally(already=0 if verify else len(indices) - len(missing))
        record = ShardRecord(shards, shard, indices, processes, manifest["versions"], lock.check)
        record.write(**tally.counts())
        run = new_run_token()
        writer = _Writer(dataset, folder, encoding, run, verify, lock.witness)
        work = indices if verify else missing
        bar = Progress(len(work), progress_stream or sys.stderr, enabled=progress, unit=encoding.unit)
        bar.announce(_plan(target, indices, len(work), processes, encoding, verify, read_manifest(root), manifest))
        try:
            pool.run(writer.write, work, chunk_size, processes, tally.chunk_done(bar.update))
        except BaseException as exc:
            record.stopped(_outcome(exc), **tally.counts())
            raise
        finally:
            bar.close()
            remove_temp_files(folder, run)

        result = ExportResult(target, indices, tally.written, tally.skipped, tally.nbytes, tally.seconds())
        record.complete(**tally.counts())
    return result


class _Tally:
    """The counts of a run so far, for its shard record and its result."""

    def __init__(self, already: int) -> None:
        self.written = self.nbytes = 0
        self.skipped = already
        self.start = time.perf_counter()

    def chunk_done(self, update: Callable[[int], None]) -> Callable[[int, tuple[int, int]], None]:
        """The callback of :func:`.pool.run`: counts a chunk's files, then calls ``update`` with their number."""

        def done(size: int, result: tuple[int, int]) -> None:
            written, nbytes = result
            self.written += written
            self.skipped += size - written
            self.nbytes += nbytes
            update(size)

        return done

    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def counts(self) -> dict[str, Any]:
        return {
            "written": self.written, "skipped": self.skipped, "bytes_written": self.nbytes,
            "seconds": round(self.seconds(), 3),
        }


def _plan(
    target: Path,
    indices: range,
    todo: int,
    processes: int,
    encoding: _Encoding,
    verify: bool,
    there: dict[str, Any] | None,
    manifest: dict[str, Any],
) -> str:
    """The line that says what the run will do, once the target has accepted it."""
    where = file_range(target, indices, manifest["dataset"]["num_imgs"], encoding.file_format)
    workers = f"{processes} process{'es' if processes > 1 else ''}"
    if verify:
        line = (
            f"verifying {len(indices)} {encoding.noun} with {workers} (each rendered again, "
            f"written again where its bytes differ): {where}"
        )
        old = (there or {}).get("versions")
        changed = [
            f"{name} {old[name]} there, {version} here"
            for name, version in manifest["versions"].items()
            if isinstance(old, dict) and name in old and old[name] != version
        ]
        if changed:
            line += f"; the export was written with other versions ({', '.join(changed[:3])}), so files may differ"
        return line
    left = f"{todo} of {len(indices)} {encoding.noun} ({len(indices) - todo} already there)"
    return f"writing {left if todo < len(indices) else f'{todo} {encoding.noun}'} with {workers}: {where}"


def _outcome(exc: BaseException) -> str:
    """What a shard record says about the exception that stopped the shard."""
    if isinstance(exc, Terminated):
        return "terminated"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"failed: {' '.join(reason.split()) or type(exc).__name__}"


class _Writer:
    """Renders and encodes samples and writes them atomically; one lives in each worker process.

    Each file is renamed into place only while ``witness`` confirms the run's lock (:mod:`.lock`).
    """

    def __init__(
        self, dataset: Any, folder: Dir, encoding: _Encoding, run: str, verify: bool, witness: LockWitness
    ) -> None:
        self.dataset = dataset
        self.folder = folder
        self.encoding = encoding
        self.run = run
        self.verify = verify
        self.witness = witness

    def write(self, indices: Sequence[int]) -> tuple[int, int]:
        """Write the files of ``indices`` (with ``verify``, those whose bytes differ); how many, and their bytes."""
        written = nbytes = 0
        num_imgs = self.dataset.config.num_imgs
        for i in indices:
            name = image_name(i, num_imgs, self.encoding.file_format)
            data = self.encoding.encode(self.dataset, i)
            if self.verify and holds(self.folder, name, data):
                continue
            self.folder.write(name, data, self.run, self.witness.check)
            written, nbytes = written + 1, nbytes + len(data)
        return written, nbytes


def _encode(img: Image.Image, image_format: str, quality: int) -> bytes:
    options = {"quality": quality} if image_format == "jpg" else {"compress_level": _PNG_COMPRESS_LEVEL}
    buffer = io.BytesIO()
    img.save(buffer, format=FORMATS[image_format], **options)
    return buffer.getvalue()


def _check_image_format(image_format: str, quality: int) -> None:
    if image_format not in FORMATS:
        raise ValueError(f"image_format should be one of {', '.join(FORMATS)}, got {image_format!r}")
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ValueError(f"quality should be an integer in [1, 100], got {quality!r}")


def _check_target(target: str | os.PathLike) -> Path:
    if not isinstance(target, (str, os.PathLike)):
        raise TypeError(f"target should be a folder path (str or os.PathLike), got {type(target).__name__}")
    if not os.fspath(target):
        raise ValueError("target should be the path of the export folder, got an empty string; pass e.g. 'out'")
    return Path(target)


def _check_arguments(processes: int, chunk_size: int, shard: tuple[int, int], overwrite: bool) -> None:
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ValueError(f"processes should be a positive integer, got {processes!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size should be a positive integer, got {chunk_size!r}")
    shard_range(1, *shard)
    if overwrite and shard[1] > 1:
        raise ValueError(
            "overwrite cannot be combined with sharding: each shard would delete the others' files; "
            "delete the old export once, then start the shards"
        )


def _check_free_space(folder: Dir, dataset: Any, missing: Sequence[int], encoding: _Encoding) -> None:
    if not missing:
        return
    need = _estimate(dataset, missing, encoding)
    free_bytes, free_inodes = _disk_free(folder)
    if need > free_bytes:
        raise OSError(
            errno.ENOSPC,
            f"not enough free disk space in {folder.path}: {len(missing)} {encoding.noun} need about "
            f"{format_bytes(need)}, only {format_bytes(free_bytes)} is free; free some space or choose another target",
        )
    if free_inodes is not None and len(missing) > free_inodes:
        raise OSError(
            errno.ENOSPC,
            f"not enough free inodes in {folder.path}: {len(missing)} files are needed, the filesystem "
            f"has room for {free_inodes} more; choose another target",
        )


def _disk_free(folder: Dir) -> tuple[int, int | None]:
    """Free bytes and free inodes (``None`` where the filesystem does not count them)."""
    stats = os.statvfs(folder.fd)
    return stats.f_bavail * stats.f_frsize, stats.f_favail if stats.f_files > 0 else None
