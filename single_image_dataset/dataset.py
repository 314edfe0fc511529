"""``SingleImageDataset``: one photograph as a virtual, per-index reproducible ImageFolder."""

from __future__ import annotations

import operator
import os
from collections.abc import Callable, Sequence
from typing import Any, overload

import numpy as np
import torch
import torchvision.transforms.functional as F
from PIL import Image
from torchvision.datasets import VisionDataset

from .batch_memory import new_batch
from .config import AugmentConfig
from .crops import check_fit
from .params import ParamsBatch, SampleParams
from .render import Renderer, get_renderer
from .sampling import sample_params, sample_params_batch
from .source import DEFAULT_IMAGE, ImageLike, load_sources

__all__ = ["OUTPUTS", "SampleBatch", "SingleImageDataset", "check_index", "check_indices"]

#: Values of ``output=``: PIL images (the ImageFolder contract) or ``uint8`` CHW tensors.
OUTPUTS = ("pil", "tensor")


class SingleImageDataset(VisionDataset):
    """A dataset of ``num_imgs`` strongly augmented views of one image, each made when indexed.

    Sample ``i`` is a pure function of (source pixels, config, epoch, ``i``): its augmentation is
    drawn from ``SeedSequence([seed, epoch, i])``, so it is the same on every call, in every
    process and with any ``num_workers``, and indexing never touches the global RNGs. Like
    ``torchvision.datasets.ImageFolder`` it returns ``(image, target)`` with the single class
    ``"dummy"``, so it drops into ImageFolder code unchanged.

    Args:
        image: a path, a PIL image, a ``uint8`` array/tensor, or ``None`` for the embedded
            default photograph, :data:`DEFAULT_IMAGE`. Several sources: a list of those, or a directory
            (its images in sorted order); each sample's source is drawn uniformly, from a slot of its own
            in the sample's stream (``params(i).source``), and a one-image list is the single image.
        config: the augmentation config (an :class:`AugmentConfig`; build one from a dict with
            :meth:`AugmentConfig.from_dict`); defaults to the paper's.
        backend: the renderer, one of :func:`available_backends` (``"reference"`` is
            torchvision's ops, the oracle the others are tested against).
        device: where the renderer renders: ``"cpu"`` (default) or, with ``backend="torch"``, an
            accelerator such as ``"cuda"``; :meth:`render_batch` and ``batch_loader`` then make the
            batches there.
        output: ``"pil"`` (default) returns PIL images like ImageFolder; ``"tensor"`` returns ``uint8``
            ``3 x S x S`` tensors, what torchvision's ``PILToTensor`` gives, made without a PIL image
            where the backend can.
        exif_orientation: turn a photograph upright by its EXIF orientation tag, as viewers do (see
            :func:`load_image`); ``False`` uses its pixels as stored.
        transform: applied to each image (PIL or tensor, per ``output``), as in ImageFolder.
        target_transform: applied to the target, as in ImageFolder.
        per_source_classes: one class per source, named after it (ImageFolder-style: ``classes`` are the
            sources' names, the target is the source's index); by default the single class ``"dummy"``,
            the paper's setting.
        **overrides: fields of :class:`AugmentConfig` (``num_imgs``, ``seed``, ``img_size``, ...)
            applied on top of ``config``.

    Raises:
        FileNotFoundError, IsADirectoryError, ValueError, TypeError: bad image, config or device
            (unknown, not on this machine, or not the CPU for a CPU-only backend); the message names the problem.

    Example:
        >>> from torchvision.transforms import ToTensor
        >>> ds = SingleImageDataset(num_imgs=1000, img_size=64, transform=ToTensor())
        >>> x, y = ds[0]
        >>> tuple(x.shape), y, len(ds), ds.classes
        ((3, 64, 64), 0, 1000, ['dummy'])
    """

    def __init__(
        self,
        image: ImageLike | Sequence[ImageLike] | None = None,
        *,
        config: AugmentConfig | None = None,
        backend: str = "reference",
        device: torch.device | str = "cpu",
        output: str = "pil",
        exif_orientation: bool = True,
        transform: Callable[[Image.Image], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        per_source_classes: bool = False,
        **overrides: Any,
    ) -> None:
        if output not in OUTPUTS:
            raise ValueError(f"output should be one of {', '.join(map(repr, OUTPUTS))}, got {output!r}")
        if config is not None and not isinstance(config, AugmentConfig):
            raise TypeError(
                f"config should be an AugmentConfig, got {type(config).__name__}; build one with "
                "AugmentConfig.from_dict(...) or AugmentConfig.from_toml(path), or pass the fields as keywords"
            )
        config = (config or AugmentConfig()).replace(**overrides)
        root = str(DEFAULT_IMAGE) if image is None else str(image) if isinstance(image, (str, os.PathLike)) else None
        super().__init__(root, transform=transform, target_transform=target_transform)
        self.config = config
        self.backend = backend
        self.output = output
        self.per_source_classes = per_source_classes
        sources = load_sources(image, exif_orientation=exif_orientation)
        #: The source images, in order; ``source`` is the first (the only one for a single image).
        self.sources = [s.image for s in sources]
        self.source_names = [s.name for s in sources]
        self.source_paths = [s.path for s in sources]
        self.source = self.sources[0]
        self._sizes = [src.size for src in self.sources]
        for k, src in enumerate(self.sources):
            try:
                check_fit(config, src.size)
            except ValueError as exc:
                if len(self.sources) == 1:
                    raise
                raise ValueError(f"source {k} ({self.source_names[k]}): {exc}") from None
        self.classes = list(self.source_names) if per_source_classes else ["dummy"]
        self.class_to_idx = {name: k for k, name in enumerate(self.classes)}
        # Shared memory, so set_epoch reaches DataLoader workers (fork or spawn, persistent or not).
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        # Built now so a missing optional dependency or a bad device fails here; workers rebuild them
        # (see __getstate__).
        self._renderers: list[Renderer] | None = [get_renderer(backend, src, device) for src in self.sources]
        #: The device the renderer renders on, as its tensors name it (``cuda:0`` for ``"cuda"``).
        self.device = self._renderers[0].device

    @property
    def targets(self) -> Sequence[int]:
        """The class index of every sample, as a lazy sequence rather than a list.

        All 0 for the single class ``"dummy"``; with ``per_source_classes``, each sample's source.

        Example:
            >>> targets = SingleImageDataset(num_imgs=1_281_167).targets
            >>> targets, targets[-1], targets[:3]
            ([0] * 1281167, 0, [0, 0, 0])
        """
        if self.per_source_classes:
            return _SourceTargets(self)
        return _ConstantSequence(0, len(self))

    def target(self, params: SampleParams | ParamsBatch) -> int | np.ndarray:
        """The class index of a sample (before ``target_transform``), or of every row of a batch."""
        if isinstance(params, ParamsBatch):
            return params.source.copy() if self.per_source_classes else np.zeros(len(params), dtype=np.int64)
        return params.source if self.per_source_classes else 0

    @property
    def epoch(self) -> int:
        """The current epoch (0 unless :meth:`set_epoch` was called)."""
        return int(self._epoch.item())

    def set_epoch(self, epoch: int) -> None:
        """Draw fresh samples for ``epoch``; epoch 0 is the default fixed dataset.

        Call it before iterating the DataLoader for that epoch; DataLoader workers see the
        change, including persistent ones.

        Example:
            >>> ds = SingleImageDataset(num_imgs=10, img_size=32)
            >>> fixed = ds.params(0)
            >>> ds.set_epoch(1)
            >>> ds.epoch, ds.params(0) == fixed
            (1, False)
            >>> ds.set_epoch(0)
            >>> ds.params(0) == fixed
            True
        """
        try:
            epoch = operator.index(epoch)
        except TypeError:
            raise TypeError(f"epoch should be an integer, got {type(epoch).__name__}") from None
        if not 0 <= epoch < 2**63:
            raise ValueError(f"epoch should be an integer in [0, 2**63), got {epoch}")
        self._epoch.fill_(epoch)

    def params(self, index: int) -> SampleParams:
        """The frozen augmentation parameters of sample ``index`` in the current epoch.

        Example:
            >>> ds = SingleImageDataset(num_imgs=10, img_size=32)
            >>> ds.params(-1) == ds.params(9)
            True
            >>> ds.params(10)
            Traceback (most recent call last):
                ...
            IndexError: index 10 is out of range for a dataset of 10 samples
        """
        return sample_params(self.config, self._sizes, check_index(index, len(self)), self.epoch)

    def params_batch(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> ParamsBatch:
        """The parameters of samples ``indices`` (current epoch) as one :class:`ParamsBatch`, drawn in bulk.

        Row ``k`` equals ``self.params(indices[k])``; indices may be negative, as for indexing.

        Raises:
            TypeError: an index is not an integer.
            IndexError: an index is out of range.
            ValueError: ``indices`` is empty or not one-dimensional.
        """
        return sample_params_batch(self.config, self._sizes, check_indices(indices, len(self)), self.epoch)

    def render(self, params: SampleParams) -> Image.Image:
        """Render any parameter record with this dataset's backend (no transform applied).

        Example:
            >>> import dataclasses
            >>> ds = SingleImageDataset(num_imgs=10, img_size=32)
            >>> params = ds.params(0)
            >>> ds.render(params).tobytes() == ds[0][0].tobytes()
            True
            >>> upright = dataclasses.replace(params, angle=0.0, shear=(0.0, 0.0))  # replay without the rotation
            >>> ds.render(upright).tobytes() == ds[0][0].tobytes()
            False
        """
        return self._built_renderers()[self._check_source(params.source)].render(params)

    def render_batch(self, params: ParamsBatch, out: torch.Tensor | None = None) -> torch.Tensor:
        """Render a batch into one ``uint8`` tensor ``N x 3 x S x S`` (no transform applied).

        Image ``k`` is byte for byte ``render(params[k])``; ``S`` is the output side (the debug size
        in debug mode). With several sources, each source's rows are rendered together.

        Args:
            params: the batch, e.g. from :meth:`params_batch`.
            out: where to write: a C-contiguous ``uint8`` tensor of that shape on the renderer's
                device (shared or pinned memory is fine); a new one when ``None``, in shared memory in a
                ``DataLoader`` worker (as ``default_collate`` makes its batches), so that it reaches the
                main process without a copy.

        Returns:
            ``out``, or the new tensor.

        Raises:
            TypeError: ``params`` is not a :class:`ParamsBatch`, or ``out`` not a tensor.
            ValueError: ``out`` has the wrong shape, dtype, layout or device.

        Example:
            >>> ds = SingleImageDataset(num_imgs=100, img_size=32)
            >>> ds.render_batch(ds.params_batch([0, 7, 99])).shape
            torch.Size([3, 3, 32, 32])
        """
        if not isinstance(params, ParamsBatch):
            raise TypeError(f"params should be a ParamsBatch (see params_batch), got {type(params).__name__}")
        renderers = self._built_renderers()
        device = renderers[0].device
        side = params.image_size
        shape = (len(params), 3, side, side)
        if out is None:
            out = new_batch(shape, device)
        else:
            _check_out(out, shape, device)
        sources = np.unique(params.source)
        self._check_source(int(sources[-1]))
        if len(sources) == 1:
            renderers[sources[0]].render_batch(params, out)
            return out
        for k in sources.tolist():
            rows = np.flatnonzero(params.source == k)
            part = torch.empty((len(rows), *shape[1:]), dtype=torch.uint8, device=device)
            renderers[k].render_batch(params[rows], part)
            out[torch.from_numpy(rows).to(device)] = part
        return out

    def render_indices(
        self, indices: Sequence[int] | np.ndarray | torch.Tensor, out: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, np.ndarray, ParamsBatch]:
        """Draw and render samples ``indices`` in one go: what a batch of the dataset is made of.

        The indices are checked once (negative ones count from the end, as for indexing), their
        parameters drawn in bulk (:meth:`params_batch`) and rendered into one tensor
        (:meth:`render_batch`). ``DataLoader`` batches (``__getitems__``) and :func:`batch_loader` both
        come from here. No ``transform`` or ``target_transform`` is applied.

        Args:
            indices: the sample indices, any integer sequence, array or tensor.
            out: where to write the images, as for :meth:`render_batch`; a new tensor when ``None``.

        Returns:
            ``(images, targets, params)``: the ``uint8`` ``N x 3 x S x S`` images, their ``int64`` class
            indices (:meth:`target`) and their :class:`ParamsBatch`.

        Raises:
            TypeError: an index is not an integer.
            IndexError: an index is out of range.
            ValueError: ``indices`` is empty or not one-dimensional; ``out`` is not as described.

        Example:
            >>> ds = SingleImageDataset(num_imgs=100, img_size=32)
            >>> images, targets, params = ds.render_indices([0, 7, -1])
            >>> tuple(images.shape), targets.tolist(), params[2] == ds.params(99)
            ((3, 3, 32, 32), [0, 0, 0], True)
        """
        params = self.params_batch(indices)
        images = self.render_batch(params, out)
        return images, self.target(params), params

    def renderer_identity(self) -> dict[str, str]:
        """What renders the pixels: the backend and whatever else decides them (:meth:`Renderer.identity`).

        Example:
            >>> SingleImageDataset(num_imgs=10).renderer_identity()
            {'backend': 'reference'}
        """
        return self._built_renderers()[0].identity()

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        params = self.params(index)
        if self.output == "tensor":
            return self._finish(self.render_batch(ParamsBatch.from_list([params]))[0], self.target(params))
        return self._finish(self.render(params), self.target(params))

    def __getitems__(self, indices: Sequence[int]) -> SampleBatch | list[tuple[Any, Any]]:
        """Samples ``indices``, what ``DataLoader`` asks for a batch: sample ``k`` is ``self[indices[k]]``.

        Without a ``transform`` the batch is drawn and rendered in one go (:meth:`render_indices`) and returned
        as a :class:`SampleBatch`, which ``default_collate`` reads as the list of samples and
        :func:`~single_image_dataset.collate_batch` takes whole; with one, it is the list of samples, made one
        by one.
        """
        if self.transform is not None:
            return [self[i] for i in indices]
        images, targets, _ = self.render_indices(indices)
        if self.target_transform is not None:
            return SampleBatch(images, [self.target_transform(t) for t in targets.tolist()], self.output)
        return SampleBatch(images, targets, self.output)

    def _finish(self, img: Any, target: Any) -> tuple[Any, Any]:
        """``(transform(img), target_transform(target))``, each where given."""
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def __len__(self) -> int:
        return self.config.num_imgs

    def extra_repr(self) -> str:
        c = self.config
        sizes = [f"{n} ({img.width}x{img.height})" for n, img in zip(self.source_names, self.sources, strict=True)]
        return "\n".join(
            [
                f"Source size: {self.source.width}x{self.source.height}" if len(sizes) == 1 else
                f"Sources: {', '.join(sizes)}",
                f"Seed: {c.seed}, epoch: {self.epoch}, backend: {self.backend}",
                f"Augmentation: img_size={c.img_size}, cropfirst={c.cropfirst}, initcrop={c.initcrop:g}, "
                f"scale={c.scale}, deg={c.deg:g}, shear={c.shear:g}, vflip={c.vflip}, randinterp={c.randinterp}, "
                f"jitter={c.jitter} p={c.jitter_p:g}, debug={c.debug}",
            ]
        )

    def __getstate__(self) -> dict[str, Any]:
        # The renderer's caches are rebuilt lazily in each process rather than pickled to workers.
        return {**self.__dict__, "_renderers": None}

    def _built_renderers(self) -> list[Renderer]:
        """One renderer per source, built on first use in each process."""
        if self._renderers is None:
            self._renderers = [get_renderer(self.backend, source, self.device) for source in self.sources]
        return self._renderers

    def _check_source(self, source: int) -> int:
        if not 0 <= source < len(self.sources):
            raise ValueError(
                f"the parameters name source {source}, but this dataset has {len(self.sources)} source(s); "
                "render them with the dataset that drew them"
            )
        return source


class SampleBatch(Sequence[tuple[Any, Any]]):
    """Samples drawn and rendered together: what :meth:`SingleImageDataset.__getitems__` returns for a batch.

    As a sequence it is the list of samples ``(image, target)``, each equal to ``dataset[i]``, which is how
    ``DataLoader``'s ``default_collate`` reads it; :func:`~single_image_dataset.collate_batch` (the collate of
    :class:`~single_image_dataset.BatchLoader`) takes ``images`` whole instead, without a copy.

    Attributes:
        images: the ``uint8`` images, ``N x 3 x S x S``, in one tensor.
        targets: the ``int64`` class indices (an array), or the ``target_transform`` of each (a list).
        output: the dataset's ``output``: sample ``k``'s image is ``images[k]`` for ``"tensor"`` and that image
            as a PIL image for ``"pil"``.

    Example:
        >>> ds = SingleImageDataset(num_imgs=10, img_size=32, output="tensor")
        >>> batch = ds.__getitems__([3, 1, 4])
        >>> tuple(batch.images.shape), batch.targets.tolist(), len(batch)
        ((3, 3, 32, 32), [0, 0, 0], 3)
        >>> image, target = batch[2]
        >>> bool((image == ds[4][0]).all()), target
        (True, 0)
    """

    def __init__(self, images: torch.Tensor, targets: np.ndarray | list[Any], output: str) -> None:
        self.images = images
        self.targets = targets
        self.output = output

    def __len__(self) -> int:
        return len(self.targets)

    @overload
    def __getitem__(self, k: int) -> tuple[Any, Any]: ...
    @overload
    def __getitem__(self, k: slice) -> list[tuple[Any, Any]]: ...
    def __getitem__(self, k: int | slice) -> tuple[Any, Any] | list[tuple[Any, Any]]:
        if isinstance(k, slice):
            return [self[j] for j in range(len(self))[k]]
        image = self.images[k]
        target = self.targets[k]
        return (F.to_pil_image(image) if self.output == "pil" else image), (
            int(target) if isinstance(self.targets, np.ndarray) else target
        )

    def __repr__(self) -> str:
        return f"SampleBatch({len(self)} samples, images {tuple(self.images.shape)}, output={self.output!r})"


def check_index(index: int, length: int) -> int:
    """``index`` as the non-negative index it names in a dataset of ``length`` samples (negative ones count
    from the end, as for a list).

    Raises:
        TypeError: ``index`` is not an integer.
        IndexError: ``index`` is out of range.

    Example:
        >>> check_index(-1, 10), check_index(3, 10)
        (9, 3)
        >>> check_index(10, 10)
        Traceback (most recent call last):
            ...
        IndexError: index 10 is out of range for a dataset of 10 samples
    """
    try:
        i = operator.index(index)
    except TypeError:
        raise TypeError(f"dataset indices must be integers, got {type(index).__name__}") from None
    if i < 0:
        i += length
    if not 0 <= i < length:
        raise IndexError(f"index {index} is out of range for a dataset of {length} samples")
    return i


def check_indices(indices: Sequence[int] | np.ndarray | torch.Tensor, length: int) -> np.ndarray:
    """:func:`check_index` for a whole batch: the indices as a non-negative ``int64`` array.

    Raises:
        TypeError: an index is not an integer.
        IndexError: an index is out of range.
        ValueError: ``indices`` is empty or not one-dimensional.

    Example:
        >>> check_indices([0, -1, 5], 10)
        array([0, 9, 5])
    """
    array = np.asarray(indices.cpu() if isinstance(indices, torch.Tensor) else indices)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"indices should be a non-empty one-dimensional sequence, got shape {array.shape}")
    if array.dtype.kind not in "iu":
        if array.dtype != object:
            raise TypeError(f"dataset indices must be integers, got an array of {array.dtype}")
        array = np.array([check_index(i, length) for i in array.tolist()], dtype=np.int64)
    bad = (array < -length) | (array >= length)
    if bad.any():
        raise IndexError(f"index {array[np.argmax(bad)]} is out of range for a dataset of {length} samples")
    array = array.astype(np.int64)
    return np.where(array < 0, array + length, array)


def _check_out(out: torch.Tensor, shape: tuple[int, ...], device: torch.device) -> None:
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"out should be a torch.Tensor, got {type(out).__name__}")
    if out.dtype != torch.uint8 or tuple(out.shape) != shape:
        raise ValueError(
            f"out should be a uint8 tensor of shape {list(shape)}, got {out.dtype} of shape {list(out.shape)}"
        )
    if out.device != device:
        raise ValueError(f"out should be on the renderer's device {device}, got {out.device}")
    if not out.is_contiguous():
        raise ValueError("out should be C-contiguous; pass out.contiguous() or a fresh torch.empty buffer")


class _SourceTargets(Sequence[int]):
    """The source of every sample of ``dataset``, drawn when asked for."""

    def __init__(self, dataset: SingleImageDataset) -> None:
        self._dataset = dataset

    def __len__(self) -> int:
        return len(self._dataset)

    @overload
    def __getitem__(self, index: int) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> list[int]: ...
    def __getitem__(self, index: int | slice) -> int | list[int]:
        if isinstance(index, slice):
            indices = range(len(self))[index]
            return self._dataset.params_batch(indices).source.tolist() if len(indices) else []
        return self._dataset.params(index).source


class _ConstantSequence(Sequence[int]):
    """``[value] * length`` without the list."""

    def __init__(self, value: int, length: int) -> None:
        self._value, self._length = value, length

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> list[int]: ...
    def __getitem__(self, index: int | slice) -> int | list[int]:
        if isinstance(index, slice):
            return [self._value] * len(range(*index.indices(self._length)))
        i = operator.index(index)
        if not -self._length <= i < self._length:
            raise IndexError(f"target index {index} is out of range for {self._length} samples")
        return self._value

    def __repr__(self) -> str:
        return f"[{self._value}] * {self._length}"
