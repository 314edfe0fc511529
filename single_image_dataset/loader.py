"""``batch_loader``: whole ``uint8`` batches from a :class:`SingleImageDataset`, at the renderer's speed.

A ``DataLoader`` over the dataset asks for samples one by one and collates them; here each worker
draws a batch's parameters in one call and renders the batch into one tensor, and the float
conversion (if any) happens on the training device, so the CPU never makes float images. A dataset
that renders on an accelerator (``backend="torch"``, ``device="cuda"``) renders each batch there, in
this process.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
)

from .dataset import SingleImageDataset

__all__ = ["BatchLoader", "batch_loader"]


def batch_loader(
    dataset: SingleImageDataset,
    batch_size: int,
    *,
    shuffle: bool = False,
    sampler: Sampler[int] | None = None,
    num_workers: int = 0,
    drop_last: bool = False,
    pin_memory: bool = False,
    persistent_workers: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.uint8,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    generator: torch.Generator | None = None,
    multiprocessing_context: Any = None,
) -> BatchLoader:
    """Batches ``(images, targets)`` of ``dataset``: ``images`` ``N x 3 x S x S``, ``targets`` ``int64 (N,)``.

    Built on a real ``torch.utils.data.DataLoader``: its workers, samplers (``DistributedSampler``
    included) and persistent workers work as usual, but each worker fills whole batches
    (:meth:`SingleImageDataset.render_indices`) instead of collating samples. Image ``i`` is the same
    bytes as ``dataset[i]`` whatever the batch size, batch composition, number of workers or sampler.

    A dataset built with an accelerator ``device`` (``backend="torch"``) renders every batch on that
    device in this process: the batches are born on the GPU, with no workers, no host copy and no
    pinning; the sampler, ``set_epoch`` and ``drop_last`` work as with workers.

    Args:
        dataset: the dataset; it must have no per-sample ``transform`` (batches are tensors).
        batch_size: samples per batch.
        shuffle: random order each time the loader is iterated (ignored when ``sampler`` is given).
        sampler: the order of indices, e.g. a ``DistributedSampler``.
        num_workers: worker processes; 0 renders in this process, and so must a dataset that
            renders on an accelerator.
        drop_last: drop the last, smaller batch.
        pin_memory: page-locked batches, for asynchronous copies to a GPU (ignored, with a warning,
            where there is none; ignored where the dataset renders on the GPU itself).
        persistent_workers: keep the workers between epochs.
        device: where the batches go (``non_blocking`` from pinned memory); ``None`` leaves them where
            they were rendered (the CPU, or the dataset's device).
        dtype: ``torch.uint8`` (default) or a floating dtype: images are converted on ``device`` and
            scaled to ``[0, 1]``, then normalised as ``(x / 255 - mean) / std`` if ``mean``/``std`` are given.
        mean: per-channel means, with a floating ``dtype``.
        std: per-channel standard deviations, with a floating ``dtype``.
        generator: the random generator of ``shuffle``.
        multiprocessing_context: the workers' start method, as for ``DataLoader``.

    Returns:
        A :class:`BatchLoader`; ``len()`` is the number of batches.

    Raises:
        ValueError: a bad argument (the message names it), or workers for a dataset that renders on
            an accelerator.

    Example:
        >>> ds = SingleImageDataset(num_imgs=10, img_size=32)
        >>> [tuple(x.shape) for x, y in batch_loader(ds, batch_size=4)]
        [(4, 3, 32, 32), (4, 3, 32, 32), (2, 3, 32, 32)]
    """
    if not isinstance(dataset, SingleImageDataset):
        raise TypeError(f"dataset should be a SingleImageDataset, got {type(dataset).__name__}")
    if dataset.transform is not None:
        raise ValueError(
            "batch_loader renders whole uint8 batches, so the dataset should have no per-sample transform; "
            "drop transform= and use dtype/mean/std, or apply batch transforms to the images it yields"
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size should be a positive integer, got {batch_size!r}")
    if not (dtype == torch.uint8 or dtype.is_floating_point):
        raise ValueError(f"dtype should be torch.uint8 or a floating dtype, got {dtype}")
    if (mean is None) != (std is None):
        raise ValueError("mean and std should be given together")
    if mean is not None and dtype == torch.uint8:
        raise ValueError("mean/std need a floating dtype, e.g. dtype=torch.float32")
    if dataset.device.type != "cpu":
        if num_workers > 0:
            raise ValueError(
                f"num_workers should be 0 for a dataset that renders on {dataset.device} (it renders each batch "
                f"there, in this process), got {num_workers}; drop num_workers, or build the dataset with device='cpu'"
            )
        pin_memory = False  # the batches are already on the device
    elif pin_memory and not torch.cuda.is_available():
        warnings.warn("pin_memory=True ignored: no CUDA device is available", stacklevel=2)
        pin_memory = False
    if sampler is None:
        sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
    batches = BatchSampler(sampler, batch_size, drop_last)
    loader = DataLoader(
        _Batches(dataset),
        batch_size=None,
        sampler=batches,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=persistent_workers,
        multiprocessing_context=multiprocessing_context,
    )
    return BatchLoader(loader, dataset, device, dtype, mean, std)


class BatchLoader:
    """What :func:`batch_loader` returns: an iterable of ``(images, targets)`` batches.

    Attributes:
        loader: the underlying ``DataLoader`` (its ``batch_sampler`` is in ``loader.sampler``).
        dataset: the dataset.
        device: where batches are delivered (``None``: the CPU).
    """

    def __init__(
        self,
        loader: DataLoader,
        dataset: SingleImageDataset,
        device: torch.device | str | None,
        dtype: torch.dtype,
        mean: Sequence[float] | None,
        std: Sequence[float] | None,
    ) -> None:
        self.loader = loader
        self.dataset = dataset
        self.device = None if device is None else torch.device(device)
        self.dtype = dtype
        target = self.device or dataset.device
        self._mean = self._std = None
        if mean is not None and std is not None:
            self._mean = _channel_tensor(mean, "mean", dtype, target)
            self._std = _channel_tensor(std, "std", dtype, target)
            if bool((self._std == 0).any()):
                raise ValueError(f"std should not contain zeros, got {list(std)}")

    def set_epoch(self, epoch: int) -> None:
        """Fresh samples for ``epoch`` (:meth:`SingleImageDataset.set_epoch`), and the sampler's epoch
        where it has one (``DistributedSampler`` shuffles by it)."""
        self.dataset.set_epoch(epoch)
        sampler = self.loader.sampler.sampler  # the BatchSampler's index sampler
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for images, targets in self.loader:
            yield self._deliver(images), self._move(targets)

    def _move(self, x: torch.Tensor) -> torch.Tensor:
        if self.device is None:
            return x
        return x.to(self.device, non_blocking=x.is_pinned())

    def _deliver(self, images: torch.Tensor) -> torch.Tensor:
        images = self._move(images)
        if self.dtype == torch.uint8:
            return images
        images = images.to(self.dtype) / 255
        if self._mean is not None:
            images = (images - self._mean) / self._std
        return images


class _Batches(Dataset):
    """``dataset`` indexed by whole batches of indices, as a ``BatchSampler`` hands them out."""

    def __init__(self, dataset: SingleImageDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        ds = self.dataset
        images, targets, _ = ds.render_indices(indices)
        if ds.target_transform is not None:
            targets = np.array([ds.target_transform(t) for t in targets.tolist()])
        # The targets where the images are (a copy to a GPU after the images would wait for its queue).
        return images, torch.as_tensor(targets).to(images.device)


def _channel_tensor(values: Sequence[float], name: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    tensor = torch.as_tensor(values, dtype=dtype)
    if tensor.shape != (3,):
        raise ValueError(f"{name} should have 3 values, one per channel, got {list(values)}")
    return tensor.to(device).view(1, 3, 1, 1)
