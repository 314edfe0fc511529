"""``batch_loader``: a ``DataLoader`` of whole ``uint8`` batches from a :class:`SingleImageDataset`, at the
renderer's speed.

A plain ``DataLoader`` asks for samples and collates them; here the dataset draws and renders each batch in one
go (:meth:`SingleImageDataset.__getitems__`, in the workers, into memory they reuse once a batch is released: see
:mod:`~single_image_dataset.batch_memory`), :func:`collate_batch` passes the rendered tensor on without a copy,
and the float conversion (if any) happens on the training device, so the CPU never makes float images. Being a
``DataLoader`` subclass, :class:`BatchLoader` keeps what frameworks read and rebuild (``dataset``, ``sampler``,
``batch_sampler``, ``batch_size``, the init arguments), and its samplers carry the dataset's epoch.
"""

from __future__ import annotations

import contextlib
import numbers
import os
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler, Sampler, SequentialSampler, default_collate

from .batch_memory import hand_off
from .dataset import SampleBatch, SingleImageDataset
from .render import check_device

__all__ = [
    "MAX_BATCH_SIZE",
    "BatchLoader",
    "EpochRandomSampler",
    "EpochSequentialSampler",
    "batch_loader",
    "collate_batch",
]

#: The largest ``batch_size`` a :class:`BatchLoader` takes (``2**24`` samples: 50 GB of images at 32 px).
MAX_BATCH_SIZE = 2**24

# OpenCV's thread count at its start, read from the environment.
_OPENCV_THREADS = "OPENCV_FOR_THREADS_NUM"

# The spawn key of the shuffle's stream, which sets it apart from the samples' SeedSequence([seed, epoch, index]).
_SHUFFLE_KEY = 1


class _DatasetEpoch:
    """A sampler whose epoch is its dataset's: ``set_epoch`` draws the dataset's samples for that epoch."""

    data_source: SingleImageDataset

    @property
    def epoch(self) -> int:
        """The dataset's epoch (:attr:`SingleImageDataset.epoch`)."""
        return self.data_source.epoch

    def set_epoch(self, epoch: int) -> None:
        """Fresh samples for ``epoch``: :meth:`SingleImageDataset.set_epoch`, which reaches the workers."""
        self.data_source.set_epoch(epoch)


class EpochSequentialSampler(_DatasetEpoch, SequentialSampler):
    """The indices in order, with a ``set_epoch`` that sets the dataset's epoch.

    What :class:`BatchLoader` samples with unless shuffled. Frameworks that call ``set_epoch`` on a loader's sampler
    at every epoch (Lightning, Accelerate) thereby draw fresh samples; any ``DataLoader`` can use it.

    Args:
        data_source: the dataset.

    Example:
        >>> ds = SingleImageDataset(num_imgs=4, img_size=32)
        >>> sampler = EpochSequentialSampler(ds)
        >>> sampler.set_epoch(3)
        >>> list(sampler), ds.epoch
        ([0, 1, 2, 3], 3)
    """

    def __init__(self, data_source: SingleImageDataset) -> None:
        super().__init__(data_source)


class EpochRandomSampler(_DatasetEpoch, RandomSampler):
    """A fresh order of all indices for each epoch, with a ``set_epoch`` that sets the dataset's epoch.

    What :class:`BatchLoader` samples with when shuffled. Without ``generator`` the order is a function of the
    dataset's seed and epoch only, the same in every process and after a resume; with one, it is drawn from
    ``generator`` as by ``RandomSampler``.

    Args:
        data_source: the dataset.
        generator: where the orders are drawn from, or ``None`` for ``(seed, epoch)``.

    Example:
        >>> ds = SingleImageDataset(num_imgs=6, img_size=32)
        >>> sampler = EpochRandomSampler(ds)
        >>> first = list(sampler)
        >>> sorted(first), list(sampler) == first
        ([0, 1, 2, 3, 4, 5], True)
        >>> sampler.set_epoch(1)
        >>> list(sampler) == first, ds.epoch
        (False, 1)
    """

    def __init__(self, data_source: SingleImageDataset, generator: torch.Generator | None = None) -> None:
        super().__init__(data_source, generator=generator)

    def __iter__(self) -> Iterator[int]:
        if self.generator is not None:
            return super().__iter__()
        ds = self.data_source
        stream = np.random.SeedSequence([ds.config.seed, ds.epoch], spawn_key=(_SHUFFLE_KEY,))
        seed = int(stream.generate_state(1, np.uint64)[0])
        order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))
        return iter(order.tolist())


def collate_batch(batch: SampleBatch | Sequence[Any]) -> Any:
    """``(images, targets)`` from a :class:`SampleBatch`, without copying its images; anything else by
    ``default_collate``. The collate of :class:`BatchLoader`.

    ``targets`` is an ``int64`` tensor, or, with a ``target_transform``, what ``default_collate`` makes of the
    transformed targets (e.g. a list of strings). In a ``DataLoader`` worker the batch reaches the main process
    without a copy, and the worker renders into its memory again once the main process has released it
    (:func:`~single_image_dataset.batch_memory.hand_off`).

    Example:
        >>> from torch.utils.data import DataLoader
        >>> ds = SingleImageDataset(num_imgs=10, img_size=32)
        >>> images, targets = next(iter(DataLoader(ds, batch_size=4, collate_fn=collate_batch)))
        >>> tuple(images.shape), targets.tolist()
        ((4, 3, 32, 32), [0, 0, 0, 0])
    """
    if not isinstance(batch, SampleBatch):
        return default_collate(batch)
    device = (batch.images[0] if isinstance(batch.images, list) else batch.images).device
    if isinstance(batch.targets, np.ndarray):
        # Where the images are (a copy to a GPU after the images would wait for its queue).
        targets = torch.from_numpy(batch.targets).to(device)
    else:
        targets = default_collate(batch.targets)
    return hand_off(batch.images, targets)


class BatchLoader(DataLoader):
    """A ``DataLoader`` of ``(images, targets)`` batches of a :class:`SingleImageDataset`, rendered batch by batch.

    ``images`` is ``N x 3 x S x S`` (``uint8``, or ``dtype``), ``targets`` ``int64 (N,)``; for a dataset with
    ``views``, ``images`` is a list of one ``N x 3 x s_v x s_v`` batch per view, each converted alike. A real
    ``torch.utils.data.DataLoader`` over the dataset itself: ``dataset``, ``sampler``, ``batch_sampler``,
    ``batch_size``, ``num_workers``, workers, persistent workers and ``DistributedSampler`` work as usual, and a
    framework can rebuild it from its init arguments (as Lightning does to inject a ``DistributedSampler``). Each
    batch is drawn and rendered in one go (:meth:`SingleImageDataset.__getitems__`) and collated without a copy
    (:func:`collate_batch`); image ``i`` is the same bytes as ``dataset[i]`` whatever the batch size, batch
    composition, number of workers or sampler.

    Epochs: the default samplers (:class:`EpochSequentialSampler`, :class:`EpochRandomSampler`) set the dataset's
    epoch in their ``set_epoch``, which frameworks call at every epoch; with a sampler of another kind that has an
    ``epoch`` (``DistributedSampler``), the dataset takes the sampler's epoch each time the loader is iterated; and
    :meth:`set_epoch` sets both.

    Workers render into shared memory that they reuse once a batch is released (see
    :mod:`~single_image_dataset.batch_memory`), and the workers start with one OpenCV thread (as with one torch
    thread). A dataset built with an accelerator ``device`` (``backend="torch"``, ``device="cuda"``) renders
    every batch there, in this process: no workers, no host copy, no pinning.

    Args:
        dataset: the dataset; it must have no per-sample ``transform`` (batches are tensors).
        batch_size: samples per batch, at most :data:`MAX_BATCH_SIZE`.
        shuffle: a fresh order each epoch (:class:`EpochRandomSampler`); not with ``sampler``.
        sampler: the order of indices, e.g. a ``DistributedSampler``.
        batch_sampler: the batches of indices, instead of ``batch_size``, ``shuffle``, ``sampler`` and
            ``drop_last``.
        num_workers: worker processes; 0 renders in this process, as must a dataset that renders on an accelerator.
        pin_memory: page-locked batches, for asynchronous copies to a GPU (ignored, with a warning, where there is
            none; ignored where the dataset renders on the GPU itself).
        drop_last: drop the last, smaller batch.
        timeout: as for ``DataLoader``.
        worker_init_fn: as for ``DataLoader``.
        multiprocessing_context: the workers' start method, as for ``DataLoader``.
        generator: the random generator of ``shuffle`` (and of the workers' seeds, as for ``DataLoader``).
        prefetch_factor: batches each worker renders ahead, as for ``DataLoader``.
        persistent_workers: keep the workers between epochs.
        device: where the batches go (``non_blocking`` from pinned memory); ``None`` leaves them where they were
            rendered (the CPU, or the dataset's device).
        dtype: ``torch.uint8`` (default) or a floating dtype: images are converted on ``device`` and scaled to
            ``[0, 1]``, then normalised as ``(x / 255 - mean) / std`` if ``mean``/``std`` are given.
        mean: per-channel means, with a floating ``dtype``.
        std: per-channel standard deviations, with a floating ``dtype``.

    Raises:
        TypeError: ``dataset`` is not a :class:`SingleImageDataset`, or ``dtype`` not a ``torch.dtype``.
        ValueError: a bad argument (the message names it), or workers for a dataset that renders on an accelerator.

    Example:
        >>> ds = SingleImageDataset(num_imgs=10, img_size=32)
        >>> loader = BatchLoader(ds, batch_size=4, shuffle=True)
        >>> [tuple(x.shape) for x, y in loader]
        [(4, 3, 32, 32), (4, 3, 32, 32), (2, 3, 32, 32)]
        >>> type(loader.sampler).__name__, loader.batch_size, loader.dataset is ds
        ('EpochRandomSampler', 4, True)
    """

    def __init__(
        self,
        dataset: SingleImageDataset,
        batch_size: int | None = 1,
        shuffle: bool | None = None,
        sampler: Sampler[int] | None = None,
        batch_sampler: Sampler[list[int]] | None = None,
        num_workers: int = 0,
        *,
        pin_memory: bool = False,
        drop_last: bool = False,
        timeout: float = 0,
        worker_init_fn: Any = None,
        multiprocessing_context: Any = None,
        generator: torch.Generator | None = None,
        prefetch_factor: int | None = None,
        persistent_workers: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.uint8,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        if not isinstance(dataset, SingleImageDataset):
            raise TypeError(f"dataset should be a SingleImageDataset, got {type(dataset).__name__}")
        if dataset.transform is not None:
            raise ValueError(
                "batch_loader renders whole uint8 batches, so the dataset should have no per-sample transform; "
                "drop transform= and use dtype/mean/std, or apply batch transforms to the images it yields"
            )
        if batch_sampler is None:
            _check_batch_size(batch_size)
        if shuffle and sampler is not None:
            raise ValueError("shuffle=True and sampler are exclusive: the sampler sets the order; drop shuffle")
        target = None if device is None else check_device(device)
        mean_tensor, std_tensor = _check_delivery(dtype, mean, std, target or dataset.device)
        if dataset.device.type != "cpu":
            if num_workers > 0:
                raise ValueError(
                    f"num_workers should be 0 for a dataset that renders on {dataset.device} (it renders each batch "
                    f"there, in this process), got {num_workers}; drop num_workers, or build the dataset with "
                    "device='cpu'"
                )
            pin_memory = False  # the batches are already on the device
        elif pin_memory and not torch.cuda.is_available():
            warnings.warn("pin_memory=True ignored: no CUDA device is available", stacklevel=2)
            pin_memory = False
        if sampler is None and batch_sampler is None:
            sampler = EpochRandomSampler(dataset, generator) if shuffle else EpochSequentialSampler(dataset)
        super().__init__(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            batch_sampler=batch_sampler,
            num_workers=num_workers,
            collate_fn=collate_batch,
            pin_memory=pin_memory,
            drop_last=drop_last,
            timeout=timeout,
            worker_init_fn=worker_init_fn,
            multiprocessing_context=multiprocessing_context,
            generator=generator,
            prefetch_factor=prefetch_factor,
            persistent_workers=persistent_workers,
        )
        # Under their init arguments' names, so that a framework rebuilding the loader from them keeps them.
        self.device = target
        self.dtype = dtype
        self.mean = mean
        self.std = std
        self._mean, self._std = mean_tensor, std_tensor

    def set_epoch(self, epoch: int) -> None:
        """Fresh samples for ``epoch`` (:meth:`SingleImageDataset.set_epoch`), and the sampler's epoch where it
        has one (``DistributedSampler`` shuffles by it)."""
        self.dataset.set_epoch(epoch)
        for sampler in self._samplers():
            if callable(getattr(sampler, "set_epoch", None)):
                sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        for sampler in self._samplers():
            epoch = getattr(sampler, "epoch", None)
            if isinstance(epoch, numbers.Integral) and not isinstance(epoch, bool):
                if epoch != self.dataset.epoch:
                    self.dataset.set_epoch(epoch)
                break
        with _one_opencv_thread_in_new_workers(self.num_workers):
            batches = super().__iter__()
        return self._delivered(batches)

    def __repr__(self) -> str:
        sampler = type(self.sampler if self.batch_size is not None else self.batch_sampler).__name__
        normalise = "" if self.mean is None else f", mean={tuple(self.mean)}, std={tuple(self.std)}"
        return (
            f"{type(self).__name__}(batch_size={self.batch_size}, batches={len(self)}, sampler={sampler}, "
            f"num_workers={self.num_workers}, persistent_workers={self.persistent_workers}, "
            f"pin_memory={self.pin_memory}, device={self.device}, dtype={self.dtype}{normalise}, "
            f"dataset={type(self.dataset).__name__} of {len(self.dataset)} at epoch {self.dataset.epoch})"
        )

    def _samplers(self) -> list[Any]:
        """The index sampler, and the batch sampler's if that is another one."""
        samplers = [self.sampler]
        inner = getattr(self.batch_sampler, "sampler", None)
        if inner is not None and inner is not self.sampler:
            samplers.append(inner)
        return samplers

    def _delivered(self, batches: Iterator[Any]) -> Iterator[tuple[Any, Any]]:
        for images, targets in batches:
            yield self._deliver(images), _to_device(targets, self.device)

    def _deliver(self, images: torch.Tensor | list[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
        if isinstance(images, list):
            return [self._deliver(x) for x in images]
        if self.device is not None:
            images = images.to(self.device, non_blocking=images.is_pinned())
        if self.dtype == torch.uint8:
            return images
        images = images.to(self.dtype).div_(255)  # a fresh tensor: from uint8, .to() always copies
        if self._mean is not None:
            images.sub_(self._mean).div_(self._std)
        return images


def batch_loader(dataset: SingleImageDataset, batch_size: int, **options: Any) -> BatchLoader:
    """Batches ``(images, targets)`` of ``dataset``: ``BatchLoader(dataset, batch_size, **options)``.

    :class:`BatchLoader` lists the options (``shuffle``, ``sampler``, ``num_workers``, ``device``, ``dtype``,
    ``mean``, ``std``, ...) and what it guarantees.

    Example:
        >>> ds = SingleImageDataset(num_imgs=10, img_size=32)
        >>> [tuple(x.shape) for x, y in batch_loader(ds, batch_size=4)]
        [(4, 3, 32, 32), (4, 3, 32, 32), (2, 3, 32, 32)]
    """
    return BatchLoader(dataset, batch_size, **options)


def _check_batch_size(batch_size: Any) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or not (
        1 <= batch_size <= MAX_BATCH_SIZE
    ):
        raise ValueError(f"batch_size should be an integer in [1, {MAX_BATCH_SIZE}] (2**24), got {batch_size!r}")


def _check_delivery(
    dtype: Any, mean: Sequence[float] | None, std: Sequence[float] | None, device: torch.device
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``mean`` and ``std`` as tensors to normalise with on ``device`` (``None`` without), once checked."""
    if not isinstance(dtype, torch.dtype):
        raise TypeError(
            f"dtype should be a torch.dtype, torch.uint8 or a floating one such as torch.float32, got {dtype!r}"
        )
    if not (dtype == torch.uint8 or dtype.is_floating_point):
        raise ValueError(f"dtype should be torch.uint8 or a floating dtype, got {dtype}")
    if (mean is None) != (std is None):
        raise ValueError("mean and std should be given together")
    if mean is None or std is None:
        return None, None
    if dtype == torch.uint8:
        raise ValueError("mean/std need a floating dtype, e.g. dtype=torch.float32")
    mean_tensor = _channel_tensor(mean, "mean", dtype, device)
    std_tensor = _channel_tensor(std, "std", dtype, device)
    if bool((std_tensor == 0).any()):
        raise ValueError(f"std should not contain zeros, got {list(std)}")
    return mean_tensor, std_tensor


def _channel_tensor(values: Sequence[float], name: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    try:
        tensor = torch.as_tensor(values, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{name} should be 3 numbers, one per channel, got {values!r}") from None
    if tensor.shape != (3,):
        raise ValueError(f"{name} should have 3 values, one per channel, got {list(values)}")
    if not bool(tensor.isfinite().all()):
        raise ValueError(f"{name} should be finite, got {tensor.tolist()}")
    return tensor.to(dtype).to(device).view(1, 3, 1, 1)


def _to_device(targets: Any, device: torch.device | None) -> Any:
    """``targets`` (a tensor, or what ``default_collate`` made) with its tensors on ``device``."""
    if device is None:
        return targets
    if isinstance(targets, torch.Tensor):
        return targets.to(device, non_blocking=targets.is_pinned())
    if isinstance(targets, Mapping):
        return {key: _to_device(value, device) for key, value in targets.items()}
    if isinstance(targets, (list, tuple)):
        moved = [_to_device(value, device) for value in targets]
        return type(targets)(*moved) if hasattr(targets, "_fields") else type(targets)(moved)
    return targets


@contextlib.contextmanager
def _one_opencv_thread_in_new_workers(num_workers: int) -> Iterator[None]:
    """Workers started within run OpenCV on one thread, and this process keeps its own setting.

    A forked child must not change OpenCV's thread count (that deadlocks when the parent had run OpenCV's thread
    pool), so this process sets one thread while the workers start, then restores its count; a spawned child's
    OpenCV starts with the count in ``OPENCV_FOR_THREADS_NUM``, set meanwhile in the environment it inherits.
    """
    if num_workers == 0:
        yield
        return
    cv2 = sys.modules.get("cv2")
    threads = None if cv2 is None else cv2.getNumThreads()
    environment = os.environ.get(_OPENCV_THREADS)
    os.environ[_OPENCV_THREADS] = "1"
    if threads is not None and threads != 1:
        cv2.setNumThreads(1)
    try:
        yield
    finally:
        if threads is not None and threads != 1:
            cv2.setNumThreads(threads)
        if environment is None:
            del os.environ[_OPENCV_THREADS]
        else:
            os.environ[_OPENCV_THREADS] = environment
