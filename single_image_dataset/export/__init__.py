"""Writing a dataset to disk as the ``TARGET/train/dummy`` ImageFolder tree of the original script.

The export is parallel over processes, resumable (only missing files are written), safe to
interrupt (files appear under their final name only once complete) and shardable over machines.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import io
import json
import math
import multiprocessing
import multiprocessing.connection
import os
import platform
import re
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from PIL import Image

from .dataset import SingleImageDataset
from .source import pixel_sha256

__all__ = [
    "FORMATS",
    "MANIFEST_NAME",
    "ExportResult",
    "estimate_bytes",
    "format_bytes",
    "image_name",
    "materialize",
    "shard_range",
]

#: File extension -> Pillow format name.
FORMATS = {"jpg": "JPEG", "png": "PNG"}
MANIFEST_NAME = "manifest.json"
_SHARDS_DIR = "shards"
_MANIFEST_VERSION = 1

# PNG is lossless, so the zlib level only trades size for time: level 1 encodes a 256 px sample
# about 3x faster than Pillow's default 6 for ~12% larger files.
_PNG_COMPRESS_LEVEL = 1
# Files occupy whole filesystem blocks; JPEG sizes vary from sample to sample, hence the margin.
_BLOCK_BYTES = 4096
_SIZE_MARGIN = 1.15
_ESTIMATE_SAMPLES = 8

_FINAL_RE = re.compile(r"^patch_(\d+)\.(jpg|png)$")
_TEMP_RE = re.compile(r"^\.patch_(\d+)\.(jpg|png)\.\d+\.tmp$")


@dataclass(frozen=True)
class ExportResult:
    """What one :func:`materialize` call did.

    Attributes:
        target: the export root (``TARGET``); images are in ``TARGET/train/dummy``.
        indices: the sample indices this call was responsible for (its shard).
        written: files written by this call.
        skipped: files of the shard that already existed (a resumed export).
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


def image_name(index: int, num_imgs: int, image_format: str) -> str:
    """File name of sample ``index``: zero-padded so that sorted names are in index order.

    Example:
        >>> image_name(7, 300, "png"), image_name(7, 1_281_167, "jpg")
        ('patch_007.png', 'patch_0000007.jpg')
    """
    return f"patch_{index:0{_digits(num_imgs)}d}.{image_format}"


def estimate_bytes(
    dataset: SingleImageDataset, indices: Sequence[int], image_format: str = "jpg", quality: int = 75
) -> int:
    """Disk space that writing the samples ``indices`` will take, from encoding a few of them.

    Each sampled file is rounded up to whole 4 KiB blocks and a 15% margin is added for the
    variation of JPEG sizes between samples.
    """
    if len(indices) == 0:
        return 0
    step = max(1, len(indices) // _ESTIMATE_SAMPLES)
    probe = [indices[k] for k in range(0, len(indices), step)][:_ESTIMATE_SAMPLES]
    sizes = [len(_encode(dataset.render(dataset.params(i)), image_format, quality)) for i in probe]
    per_file = sum(math.ceil(s / _BLOCK_BYTES) * _BLOCK_BYTES for s in sizes) / len(sizes)
    return int(per_file * _SIZE_MARGIN * len(indices))


def materialize(
    dataset: SingleImageDataset,
    target: str | os.PathLike,
    *,
    image_format: str = "jpg",
    quality: int = 75,
    processes: int = 1,
    shard: tuple[int, int] = (0, 1),
    overwrite: bool = False,
    chunk_size: int = 32,
    progress: bool = True,
    progress_stream: TextIO | None = None,
) -> ExportResult:
    """Write ``dataset`` to ``target/train/dummy/patch_<i>.<ext>``, readable by ``ImageFolder(target/train)``.

    File ``i`` holds ``dataset.render(dataset.params(i))`` (the dataset's ``transform`` is not
    applied), so ``ImageFolder(target/train)[i]`` equals ``dataset[i]``: pixel for pixel as PNG,
    its JPEG encoding as JPEG. A ``manifest.json`` in ``target`` records the config, epoch,
    backend, file format, the source image's hashes and size, and library versions; each shard
    records its range and status in ``target/shards/<K>-of-<N>.json``.

    Files are written to a hidden temporary name in the same folder and renamed when complete,
    so an interrupted export leaves no partial file, and calling again with the same arguments
    writes only the missing files.

    Args:
        dataset: the dataset to write (its config, epoch, backend and source).
        target: the export root.
        image_format: ``"jpg"`` or ``"png"``.
        quality: JPEG quality (1-100); Pillow's default 75 is what the original script wrote.
        processes: worker processes; 1 writes in this process.
        shard: ``(K, N)``: write only the ``K``-th (0-based) of ``N`` contiguous index ranges, so
            ``N`` machines can export one dataset into one folder without coordinating.
        overwrite: replace an existing export of a different dataset in ``target`` instead of
            refusing. Not allowed with ``N > 1`` shards, whose runs would delete each other's files.
        chunk_size: indices handed to a worker at a time.
        progress: report progress on ``progress_stream``: a bar with rate and ETA on a terminal,
            a line every 10% otherwise.
        progress_stream: defaults to ``sys.stderr``.

    Returns:
        What was written and skipped, and how long it took.

    Raises:
        ValueError: invalid arguments, or an unreadable manifest in ``target``.
        FileExistsError: ``target`` holds a different export, or files this library did not write.
        OSError: ``target`` cannot be created or written, or the disk is too small for the export
            (``errno.ENOSPC``), or a write failed.
    """
    _check_arguments(image_format, quality, processes, chunk_size, shard, overwrite)
    target = Path(target)
    config = dataset.config
    indices = shard_range(config.num_imgs, *shard)
    manifest = _manifest(dataset, image_format, quality)
    folder = target / "train" / "dummy"

    _check_target(target, manifest, overwrite)
    _create_folder(folder)
    _remove_temp_files(folder, indices)
    missing = _missing_indices(folder, indices, config.num_imgs, image_format)
    _check_free_space(folder, dataset, missing, image_format, quality)
    _write_json_if_absent(target / MANIFEST_NAME, manifest)

    record_path = target / _SHARDS_DIR / f"{shard[0]}-of-{shard[1]}.json"
    record: dict[str, Any] = {
        "shard": shard[0],
        "num_shards": shard[1],
        "start": indices.start,
        "stop": indices.stop,
        "status": "running",
        "processes": processes,
        "host": socket.gethostname(),
        "started": _now(),
        "versions": manifest["versions"],
    }
    _write_json(record_path, record)

    writer = _Writer(dataset, folder, image_format, quality)
    chunks = [missing[k : k + chunk_size] for k in range(0, len(missing), chunk_size)]
    bar = _Progress(len(missing), progress_stream or sys.stderr, enabled=progress)
    start = time.perf_counter()
    try:
        written, nbytes = _run(writer, chunks, min(processes, max(1, len(chunks))), bar)
    finally:
        bar.close()
        _remove_temp_files(folder, indices)
    seconds = time.perf_counter() - start

    result = ExportResult(target, indices, written, len(indices) - len(missing), nbytes, seconds)
    record.update(
        status="complete", finished=_now(), written=written, skipped=result.skipped,
        bytes_written=nbytes, seconds=round(seconds, 3),
    )
    _write_json(record_path, record)
    return result


class _Writer:
    """Renders samples and writes them atomically; one lives in each worker process."""

    def __init__(self, dataset: SingleImageDataset, folder: Path, image_format: str, quality: int) -> None:
        self.dataset = dataset
        self.folder = folder
        self.image_format = image_format
        self.quality = quality

    def write(self, indices: Sequence[int]) -> tuple[int, int]:
        nbytes = 0
        num_imgs = self.dataset.config.num_imgs
        for i in indices:
            data = _encode(self.dataset.render(self.dataset.params(i)), self.image_format, self.quality)
            name = image_name(i, num_imgs, self.image_format)
            final = self.folder / name
            temp = self.folder / f".{name}.{os.getpid()}.tmp"
            try:
                with open(temp, "wb") as f:
                    f.write(data)
                os.replace(temp, final)
            except BaseException as exc:
                temp.unlink(missing_ok=True)
                if isinstance(exc, OSError):
                    raise OSError(exc.errno, f"writing {final} failed: {exc.strerror}") from None
                raise
            nbytes += len(data)
        return len(indices), nbytes


def _run(writer: _Writer, chunks: list[list[int]], processes: int, bar: _Progress) -> tuple[int, int]:
    written = nbytes = 0
    if processes == 1:
        for chunk in chunks:
            n, b = writer.write(chunk)
            written, nbytes = written + n, nbytes + b
            bar.update(n)
        return written, nbytes

    # Plain processes rather than multiprocessing.Pool: a Pool whose worker is killed (say by the
    # OOM killer) waits forever for the lost task, while here the dead worker's pipe reports it.
    context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    next_chunk = context.Value("q", 0)
    workers: dict[Any, multiprocessing.process.BaseProcess] = {}
    try:
        with _signals_for_workers():
            for _ in range(processes):
                receive, send = context.Pipe(duplex=False)
                worker = context.Process(
                    target=_work, args=(writer, chunks, next_chunk, send, os.getpid()), daemon=True
                )
                worker.start()
                send.close()
                workers[receive] = worker
        remaining = len(chunks)
        while remaining:
            if not workers:
                raise ChildProcessError(f"the export workers stopped with {remaining} chunks of images unwritten")
            for receive in multiprocessing.connection.wait(list(workers)):
                try:
                    message = receive.recv()
                except EOFError:  # the worker has exited, normally or not, and everything it sent is read
                    _check_exit(workers.pop(receive))
                    continue
                if isinstance(message, BaseException):
                    raise message
                written, nbytes = written + message[0], nbytes + message[1]
                remaining -= 1
                bar.update(message[0])
    finally:
        # On Ctrl-C, SIGTERM or a failed write, stop the others now; the caller removes temp files.
        for receive, worker in workers.items():
            if worker.is_alive():
                worker.terminate()
            worker.join()
            receive.close()
    return written, nbytes


def _check_exit(worker: multiprocessing.process.BaseProcess) -> None:
    worker.join()
    if worker.exitcode:
        cause = (
            f"was killed by {signal.Signals(-worker.exitcode).name}"
            if worker.exitcode < 0
            else f"exited with status {worker.exitcode}"
        )
        raise ChildProcessError(f"export worker {worker.pid} {cause} (out of memory?); re-run to resume")


def _work(
    writer: _Writer, chunks: list[list[int]], next_chunk: Any, send: multiprocessing.connection.Connection,
    parent_pid: int,
) -> None:
    """A worker process: takes the next unwritten chunk until none is left, or the parent is gone."""
    # Ctrl-C reaches the whole process group; only the parent handles it, by terminating us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent()
    import torch

    # The processes are the parallelism; intra-op threads on top of them would oversubscribe.
    torch.set_num_threads(1)
    try:
        while os.getppid() == parent_pid:
            with next_chunk.get_lock():
                k = next_chunk.value
                next_chunk.value += 1
            if k >= len(chunks):
                break
            send.send(writer.write(chunks[k]))
    except Exception as exc:
        try:
            send.send(exc)
        except Exception:  # an exception that does not pickle
            send.send(RuntimeError(f"{type(exc).__name__}: {exc}"))
    finally:
        send.close()


def _die_with_parent() -> None:
    # Without this a SIGKILLed parent leaves its workers writing (Linux only; elsewhere they stop
    # after their current chunk, when they see that their parent changed).
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return


@contextmanager
def _signals_for_workers() -> Iterator[None]:
    """Start workers with SIGINT ignored and SIGTERM at its default, whatever the parent installed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = signal.signal(signal.SIGINT, signal.SIG_IGN), signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, saved[0])
        signal.signal(signal.SIGTERM, saved[1])


def _encode(img: Image.Image, image_format: str, quality: int) -> bytes:
    options = {"quality": quality} if image_format == "jpg" else {"compress_level": _PNG_COMPRESS_LEVEL}
    buffer = io.BytesIO()
    img.save(buffer, format=FORMATS[image_format], **options)
    return buffer.getvalue()


def _digits(num_imgs: int) -> int:
    return len(str(max(num_imgs - 1, 0)))


def _check_arguments(
    image_format: str, quality: int, processes: int, chunk_size: int, shard: tuple[int, int], overwrite: bool
) -> None:
    if image_format not in FORMATS:
        raise ValueError(f"image_format should be one of {', '.join(FORMATS)}, got {image_format!r}")
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ValueError(f"quality should be an integer in [1, 100], got {quality!r}")
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


def _manifest(dataset: SingleImageDataset, image_format: str, quality: int) -> dict[str, Any]:
    config = dataset.config
    source = dataset.source
    root = getattr(dataset, "root", None)
    source_file = None
    if isinstance(root, str) and os.path.isfile(root):
        source_file = {"path": os.path.abspath(root), "sha256": _file_sha256(root), "bytes": os.path.getsize(root)}
    return {
        "manifest_version": _MANIFEST_VERSION,
        # Everything that determines the files' content; a re-run must match it exactly.
        "dataset": {
            "num_imgs": config.num_imgs,
            "seed": config.seed,
            "epoch": dataset.epoch,
            "backend": dataset.backend,
            "format": image_format,
            "quality": quality if image_format == "jpg" else None,
            "layout": f"train/dummy/patch_{{index:0{_digits(config.num_imgs)}d}}.{image_format}",
            "source": {"pixel_sha256": pixel_sha256(source), "width": source.width, "height": source.height},
            "config": config.to_dict(),
        },
        "source_file": source_file,
        "versions": _versions(dataset.backend),
        "created": _now(),
    }


def _versions(backend: str) -> dict[str, str]:
    import numpy
    import PIL
    import torch
    import torchvision

    from . import __version__

    versions = {
        "single_image_dataset": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "Pillow": PIL.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }
    if backend == "fast":
        # The fast renderer's pixels depend on which implementation drew them (see FastRenderer).
        import cv2

        from .render import fast

        versions["opencv"] = cv2.__version__
        versions["fast_renderer"] = fast.implementation()
    return versions


def _check_target(target: Path, manifest: dict[str, Any], overwrite: bool) -> None:
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"target {target} exists and is not a directory")
    manifest_path = target / MANIFEST_NAME
    train = target / "train"
    folder = train / "dummy"
    foreign = sorted(p.name for p in _listdir(train) if p.name != "dummy" and p.is_dir())
    if foreign:
        raise FileExistsError(
            errno.EEXIST,
            f"{train} holds {foreign[0]!r}, which ImageFolder would read as a class; "
            "remove it or choose another target",
        )
    if manifest_path.exists():
        existing = _read_manifest(manifest_path)
        differences = _differences(existing.get("dataset"), manifest["dataset"])
        if not differences:
            return
        if not overwrite:
            raise FileExistsError(
                errno.EEXIST,
                f"{target} already holds a different export ({'; '.join(differences[:3])}); "
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
    folder = target / "train" / "dummy"
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
    shutil.rmtree(target / _SHARDS_DIR, ignore_errors=True)


def _differences(old: Any, new: dict[str, Any], prefix: str = "") -> list[str]:
    if not isinstance(old, dict):
        return [f"{prefix or 'manifest'}: unreadable"]
    out = []
    for key, value in new.items():
        if isinstance(value, dict):
            out += _differences(old.get(key), value, f"{prefix}{key}.")
        elif old.get(key) != value:
            out.append(f"{prefix}{key} {old.get(key)!r} there, {value!r} now")
    return out


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read the existing manifest {path}: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"cannot read the existing manifest {path}: not a JSON object")
    return value


def _create_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # mkdir succeeds on an existing read-only folder; a probe file finds out before any work.
        probe = folder / f".write-test.{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise type(exc)(exc.errno, f"cannot write to {folder}: {exc.strerror}") from None


def _listdir(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as entries:
            return [Path(e.path) for e in entries]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _remove_temp_files(folder: Path, indices: range) -> None:
    # Leftovers of an interrupted run in this shard's range (other shards may be writing theirs).
    for path in _listdir(folder):
        match = _TEMP_RE.match(path.name)
        if match and int(match.group(1)) in indices:
            path.unlink(missing_ok=True)


def _missing_indices(folder: Path, indices: range, num_imgs: int, image_format: str) -> list[int]:
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


def _disk_free(path: Path) -> tuple[int, int | None]:
    """Free bytes and free inodes (``None`` where the filesystem does not count them)."""
    stats = os.statvfs(path) if hasattr(os, "statvfs") else None
    free_bytes = shutil.disk_usage(path).free
    free_inodes = stats.f_favail if stats is not None and stats.f_files > 0 else None
    return free_bytes, free_inodes


def _check_free_space(
    folder: Path, dataset: SingleImageDataset, missing: list[int], image_format: str, quality: int
) -> None:
    if not missing:
        return
    need = estimate_bytes(dataset, missing, image_format, quality)
    free_bytes, free_inodes = _disk_free(folder)
    if need > free_bytes:
        raise OSError(
            errno.ENOSPC,
            f"not enough free disk space in {folder}: {len(missing)} images need about {format_bytes(need)}, "
            f"only {format_bytes(free_bytes)} is free; free some space or choose another target",
        )
    if free_inodes is not None and len(missing) > free_inodes:
        raise OSError(
            errno.ENOSPC,
            f"not enough free inodes in {folder}: {len(missing)} files are needed, the filesystem "
            f"has room for {free_inodes} more; choose another target",
        )


def _write_json(path: Path, value: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
    os.replace(temp, path)


def _write_json_if_absent(path: Path, value: dict[str, Any]) -> None:
    if not path.exists():
        _write_json(path, value)


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def format_bytes(nbytes: float) -> str:
    """``nbytes`` in decimal units with three significant digits, e.g. ``"25.3 GB"``."""
    for unit in ("B", "KB", "MB", "GB"):
        if nbytes < 1000:
            return f"{nbytes:.3g} {unit}"
        nbytes /= 1000
    return f"{nbytes:.3g} TB"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class _Progress:
    """A dependency-free progress report: a redrawn bar on a terminal, sparse log lines otherwise."""

    _REDRAW_SECONDS = 0.2
    _LOG_SECONDS = 60.0

    def __init__(self, total: int, stream: TextIO, enabled: bool = True) -> None:
        self.total = total
        self.stream = stream
        self.enabled = enabled and total > 0
        self.tty = self.enabled and _isatty(stream)
        self.done = 0
        self.start = time.perf_counter()
        self._last_draw = -math.inf
        self._last_decile = 0

    def update(self, n: int) -> None:
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
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def _status(self, now: float) -> str:
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        eta = _duration((self.total - self.done) / rate) if rate > 0 else "?"
        return f"{self.done}/{self.total} ({self.done / self.total:.0%}), {rate:.0f} img/s, ETA {eta}"

    def _bar(self, now: float) -> str:
        width = 30
        filled = width * self.done // self.total
        return f"[{'#' * filled}{'.' * (width - filled)}] {self._status(now)} "


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
