"""The run's images and the two ways they reach the network: whole batches (``batch_loader``) or one sample
at a time (a ``DataLoader``), with the same crops (or library views), labels and order either way."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from single_image_dataset import PseudoLabelled, SingleImageDataset, batch_loader, get_renderer
from single_image_dataset.source import pixel_sha256
from single_image_dataset.views import View

from .crops import PositionCrop
from .rng import derived_seed
from .transforms import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["LOADERS", "TrainData", "epoch_positions"]

#: Values of ``TrainConfig.loader``: whole batches from ``batch_loader``, or samples one by one (``DataLoader``).
LOADERS = ("batch", "sample")


class TrainData:
    """The dataset of a run (training indices ``0..num_imgs-1``, then the held-out ones) and its batches.

    Args:
        images: what ``SingleImageDataset`` takes as its image: ``None`` (the default photograph), one path,
            or several paths / a directory.
        num_imgs: training indices.
        val_imgs: held-out indices after them.
        img_size: side of the dataset's samples.
        seed: the dataset's seed, also that of the crops.
        backend: the dataset's renderer.
        loader: ``"batch"`` or ``"sample"`` (see :data:`LOADERS`).
        batch_size: samples per batch.
        workers: loader worker processes (0 where the renderer renders on the training device).
        device: the training device; batches are delivered there.
        per_source_classes: the targets are the samples' sources.
        views: the library's views each sample is delivered as (``SingleImageDataset(views=...)``; SimCLR's
            two), or ``None`` for the samples themselves.
        fixed_samples: with views, the samples stay the paper's fixed dataset (epoch 0) while
            :meth:`set_epoch` draws fresh views (``SingleImageDataset(fixed_samples=True)``).
    """

    def __init__(
        self,
        images: str | list[str] | None,
        *,
        num_imgs: int,
        val_imgs: int,
        img_size: int,
        seed: int,
        backend: str,
        loader: str,
        batch_size: int,
        workers: int,
        device: torch.device,
        per_source_classes: bool = False,
        views: tuple[View, ...] | None = None,
        fixed_samples: bool = False,
    ) -> None:
        # A renderer that works on an accelerator renders on the training device, in this process.
        on_device = device.type != "cpu" and not get_renderer(backend, Image.new("RGB", (1, 1))).cpu_only
        self.dataset = SingleImageDataset(
            images, num_imgs=num_imgs + val_imgs, img_size=img_size, seed=seed, backend=backend, output="tensor",
            per_source_classes=per_source_classes, device=device if on_device else "cpu", views=views,
            fixed_samples=fixed_samples,
        )
        self.num_imgs = num_imgs
        self.seed = seed
        self.batched = loader == "batch"
        self.batch_size = batch_size
        self.workers = 0 if on_device else workers
        self.device = device

    def sources_sha256(self) -> list[str]:
        """The pixel hash of every source, in order: the identity a checkpoint records."""
        return [pixel_sha256(source) for source in self.dataset.sources]

    def set_epoch(self, epoch: int) -> None:
        """Fresh samples for ``epoch`` (``--resample``; epoch 0 is the paper's fixed dataset), or with
        ``fixed_samples`` fresh views of the fixed samples."""
        self.dataset.set_epoch(epoch)

    def batches(
        self,
        indices: Sequence[int] | np.ndarray,
        positions: Sequence[int] | np.ndarray,
        crop: PositionCrop | None,
        epoch: int,
        labels: torch.Tensor | None = None,
    ) -> Iterator[tuple[torch.Tensor | list[torch.Tensor], torch.Tensor]]:
        """Batches of ``(images, targets)`` of ``indices[positions]``, in order, on the training device.

        Args:
            indices: dataset indices (an index may repeat, as in DeepCluster's uniform sampling).
            positions: which entries of ``indices`` to deliver, in this order (this process's share).
            crop: the crops, drawn for ``(seed, epoch, position)``; ``None`` delivers the samples (or their views)
                whole.
            epoch: the epoch of the crops.
            labels: a label for each of the first ``len(labels)`` dataset indices (DeepCluster's clusters of the
                training indices); the dataset's targets when ``None``.

        Yields:
            ``batch_size`` images (the last batch may be smaller), ImageNet-normalised ``float32``, or with the
            dataset's views a list of one such batch per view; and their ``int64`` targets.
        """
        indices = np.asarray(indices, dtype=np.int64)
        positions = np.asarray(positions, dtype=np.int64)
        if not len(positions):
            return
        side = self.dataset.config.img_size
        chunks = np.split(positions, range(self.batch_size, len(positions), self.batch_size))
        if not self.batched:
            if labels is None:
                items: Dataset = Subset(self.dataset, indices)
            else:  # labels of the first len(labels) indices, the training ones
                items = PseudoLabelled(Subset(self.dataset, range(len(labels))), indices, labels)
            loader = DataLoader(
                _Cropped(items, crop, side, self.seed, epoch), batch_size=self.batch_size,
                sampler=_InOrder(positions), num_workers=self.workers, pin_memory=self.device.type == "cuda",
            )
            for x, y in loader:
                if isinstance(x, list):  # one batch per view
                    yield [v.to(self.device, non_blocking=True) for v in x], y.to(self.device, non_blocking=True)
                else:
                    yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            return
        loader = batch_loader(
            self.dataset, self.batch_size, sampler=_InOrder(indices[positions]), num_workers=self.workers,
            device=self.device, dtype=torch.float32, mean=IMAGENET_MEAN, std=IMAGENET_STD,
        )
        for (x, y), chunk in zip(loader, chunks, strict=True):
            if crop is not None:
                x = crop.apply(x, crop.params(side, self.seed, epoch, chunk))
            if labels is not None:
                y = labels[torch.from_numpy(indices[chunk])].to(self.device)
            yield x, y


def epoch_positions(count: int, seed: int, epoch: int, rank: int, world_size: int, batch_size: int) -> np.ndarray:
    """This process's share of a shuffled epoch over ``count`` positions, in full batches.

    The order is a permutation drawn for ``(seed, epoch)``; process ``rank`` takes every ``world_size``-th
    position of it (as ``DistributedSampler`` does) and drops what does not fill a batch.

    Raises:
        ValueError: a process would get less than one batch.

    Example:
        >>> epoch_positions(10, seed=0, epoch=0, rank=0, world_size=2, batch_size=2).shape
        (4,)
    """
    generator = torch.Generator().manual_seed(derived_seed(seed, epoch, 4))
    order = torch.randperm(count, generator=generator).numpy()
    per_rank = count // world_size
    steps = per_rank // batch_size
    if steps == 0:
        raise ValueError(
            f"batch_size={batch_size} exceeds the {per_rank} samples each of the {world_size} processes gets; "
            "lower batch_size or raise num_imgs"
        )
    return order[rank : per_rank * world_size : world_size][: steps * batch_size]


class _InOrder(Sampler[int]):
    """The given sequence, in order."""

    def __init__(self, order: np.ndarray) -> None:
        self.order = order

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self) -> Iterator[int]:
        return iter(self.order.tolist())


class _Cropped(Dataset):
    """Item ``p``: item ``p`` of ``items`` (a ``uint8`` tensor sample, or a list of its views) ImageNet-normalised
    with the arithmetic of ``batch_loader``, cut to the crop drawn for position ``p`` (if any), and its target."""

    def __init__(self, items: Dataset, crop: PositionCrop | None, side: int, seed: int, epoch: int) -> None:
        self.items = items
        self.crop = crop
        self.side = side
        self.seed = seed
        self.epoch = epoch
        self.mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1)

    def __len__(self) -> int:
        return len(self.items)  # type: ignore[arg-type]

    def __getitem__(self, position: int) -> tuple[torch.Tensor | list[torch.Tensor], int]:
        image, target = self.items[position]
        if isinstance(image, list):  # the library's views, each normalised alike
            return [self._normalized(view) for view in image], int(target)
        x = self._normalized(image)
        if self.crop is not None:
            x = self.crop.apply(x[None], self.crop.params(self.side, self.seed, self.epoch, [position]))[0]
        return x, int(target)

    def _normalized(self, image: torch.Tensor) -> torch.Tensor:
        """``(x / 255 - mean) / std``, as ``batch_loader`` computes it."""
        return ((image[None].to(torch.float32) / 255 - self.mean.to(image.device)) / self.std.to(image.device))[0]
