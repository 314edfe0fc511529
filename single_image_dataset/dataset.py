"""``SingleImageDataset``: one photograph as a virtual, per-index reproducible ImageFolder."""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import operator
import os
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, overload

import numpy as np
import torch
import torchvision.transforms.functional as F
from PIL import Image
from torchvision.datasets import VisionDataset

from .batch_memory import new_batch
from .config import AugmentConfig
from .crops import check_fit, crop_region
from .params import ParamsBatch, SampleParams
from .render import Renderer, default_backend, get_renderer
from .sampling import sample_params, sample_params_batch, sample_side
from .source import DEFAULT_IMAGE, ImageLike, load_sources
from .views import View, ViewParams, ViewParamsBatch, check_views, sample_view_params, sample_view_params_batch

__all__ = [
    "OUTPUTS",
    "SMALL_SOURCE_RATIO",
    "SampleBatch",
    "SingleImageDataset",
    "SmallSourceWarning",
    "check_index",
    "check_indices",
    "check_keywords",
]

_Batch = TypeVar("_Batch", ParamsBatch, ViewParamsBatch)

#: Values of ``output=``: PIL images (the ImageFolder contract) or ``uint8`` CHW tensors.
OUTPUTS = ("pil", "tensor")

#: A source is far smaller than the output, and warned about (:class:`SmallSourceWarning`), when ``img_size``
#: is more than this many times the shorter side of the region its crops are drawn from.
SMALL_SOURCE_RATIO = 4


class SmallSourceWarning(UserWarning):
    """A source is far smaller than the output: its samples would be mostly interpolation blur.

    Warned when ``img_size`` is more than :data:`SMALL_SOURCE_RATIO` times the shorter side of the
    region the crops are drawn from (the initial square crop, ``initcrop`` times the source's shorter
    side, or the whole source without ``cropfirst``): even the largest crop is then magnified more than
    ``SMALL_SOURCE_RATIO * sqrt(2)`` (about 5.7) times. Silence it with
    ``warnings.filterwarnings("ignore", category=SmallSourceWarning)`` where that is what you want.
    """


class SingleImageDataset(VisionDataset):
    """A dataset of ``num_imgs`` strongly augmented views of one image, each made when indexed.

    Sample ``i`` is a pure function of (source pixels, config, epoch, ``i``): its augmentation is
    drawn from ``SeedSequence([seed, epoch, i])``, so it is the same on every call, in every
    process and with any ``num_workers``, and indexing never touches the global RNGs. Like
    ``torchvision.datasets.ImageFolder`` it returns ``(image, target)`` with the single class
    ``"dummy"``, so it drops into ImageFolder code unchanged.

    Args:
        image: a path, a PIL image, a ``uint8`` array/tensor, or ``None`` for the embedded
            default photograph, :data:`DEFAULT_IMAGE`. Several sources: a list of those, a mapping
            ``{name: image}`` (the names are the sources' names, in the mapping's order), or a directory
            (its images in sorted order); each sample's source is drawn uniformly, from a slot of its own
            in the sample's stream (``params(i).source``), and a one-image list is the single image.
        config: the augmentation config (an :class:`AugmentConfig`; build one from a dict with
            :meth:`AugmentConfig.from_dict`); defaults to the paper's.
        backend: the renderer, one of :func:`available_backends`, or ``None`` (default) for
            :func:`default_backend`: ``"fast"`` where the package's C extension was built, else
            ``"reference"`` (torchvision's ops, the oracle the others are tested against). Name it to pin the
            bytes across installations; ``backend="reference"`` gives the samples that development builds
            gave without one (see the changelog).
        device: where the renderer renders: ``"cpu"`` (default) or, with ``backend="torch"``, an
            accelerator such as ``"cuda"``; :meth:`render_batch` and ``batch_loader`` then make the
            batches there.
        output: ``"pil"`` (default) returns PIL images like ImageFolder; ``"tensor"`` returns ``uint8``
            ``3 x S x S`` tensors, what torchvision's ``PILToTensor`` gives, made without a PIL image
            where the backend can.
        exif_orientation: turn a photograph upright by its EXIF orientation tag, as viewers do (see
            :func:`load_image`); ``False`` uses its pixels as stored.
        views: several random views of each sample instead of the sample, as SimCLR, MoCo v2, BYOL and DINO learn
            from: a preset name (:data:`~single_image_dataset.views.PRESETS`, its views sized at the sample's
            side) or a sequence of :class:`~single_image_dataset.views.View`. ``ds[i]`` is then
            ``([view_0, ..., view_{V-1}], target)``, each view a PIL image or a ``uint8`` tensor per ``output``.
            A view larger than the samples is refused (it could only upscale them; raise ``img_size`` instead),
            and so is a ``transform`` (the views are the augmentation). See :meth:`view_params`.
        fixed_samples: with ``views``, keep the samples of epoch 0 (the paper's fixed dataset) whatever
            :meth:`set_epoch` says, and draw only the views afresh each epoch: what SimCLR-style training on a
            fixed dataset with a random transform does. Refused without ``views``.
        transform: applied to each image (PIL or tensor, per ``output``), as in ImageFolder.
        target_transform: applied to the target, as in ImageFolder.
        per_source_classes: one class per source, named after it (ImageFolder-style: ``classes`` are the
            sources' names, the target is the source's index); by default the single class ``"dummy"``,
            the paper's setting.
        **overrides: fields of :class:`AugmentConfig` (``num_imgs``, ``seed``, ``img_size``, ...)
            applied on top of ``config``.

    Raises:
        FileNotFoundError, IsADirectoryError, ValueError, TypeError: bad image, config or device
            (unknown, not on this machine, or not the CPU for a CPU-only backend), or a keyword that is
            neither an argument nor a config field; the message names the problem.

    Warns:
        SmallSourceWarning: a source is far smaller than the output (see :data:`SMALL_SOURCE_RATIO`).

    Example:
        >>> from torchvision.transforms import ToTensor
        >>> ds = SingleImageDataset(num_imgs=1000, img_size=64, transform=ToTensor())
        >>> x, y = ds[0]
        >>> tuple(x.shape), y, len(ds), ds.classes
        ((3, 64, 64), 0, 1000, ['dummy'])
    """

    def __init__(
        self,
        image: ImageLike | Sequence[ImageLike] | Mapping[str, ImageLike] | None = None,
        *,
        config: AugmentConfig | None = None,
        backend: str | None = None,
        device: torch.device | str = "cpu",
        output: str = "pil",
        exif_orientation: bool = True,
        views: str | Sequence[View] | None = None,
        fixed_samples: bool = False,
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
        check_keywords(type(self), overrides, AugmentConfig)
        config = (config or AugmentConfig()).replace(**overrides)
        if views is not None and transform is not None:
            raise ValueError(
                "transform= cannot be combined with views=: the views are the augmentation and each is already the "
                "final image; drop transform= (the View fields cover crop, flip, jitter, grayscale, blur and "
                "solarize; normalise the batches), or drop views= to keep a transform"
            )
        #: The views of each sample (a tuple of :class:`~single_image_dataset.views.View`), or ``None``.
        self.views = None if views is None else check_views(views, sample_side(config))
        if not isinstance(fixed_samples, bool):
            raise TypeError(f"fixed_samples should be True or False, got {type(fixed_samples).__name__}")
        if fixed_samples and self.views is None:
            raise ValueError(
                "fixed_samples=True keeps the samples of epoch 0 while set_epoch draws fresh views, and needs "
                "views=; without views the fixed dataset is simply the one you get by never calling set_epoch"
            )
        #: With views: the samples stay those of epoch 0 (the paper's fixed dataset) and only the views
        #: follow :meth:`set_epoch`, as a random transform would on a fixed dataset.
        self.fixed_samples = fixed_samples
        root = str(DEFAULT_IMAGE) if image is None else str(image) if isinstance(image, (str, os.PathLike)) else None
        super().__init__(root, transform=transform, target_transform=target_transform)
        self.config = config
        self.backend = default_backend() if backend is None else backend
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
        _warn_small_sources(config, self.source_names, self._sizes)
        self.classes = list(self.source_names) if per_source_classes else ["dummy"]
        self.class_to_idx = {name: k for k, name in enumerate(self.classes)}
        # Shared memory, so set_epoch reaches DataLoader workers (fork or spawn, persistent or not).
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        # Built now so a missing optional dependency or a bad device fails here; workers rebuild them
        # (see __getstate__).
        self._renderers: list[Renderer] | None = [get_renderer(self.backend, src, device) for src in self.sources]
        #: The device the renderer renders on, as its tensors name it (``cuda:0`` for ``"cuda"``).
        self.device = self._renderers[0].device
        # The records and batches params(), params_batch() and view_params_batch() drew, by id: render(),
        # render_batch() and render_views() trust them without validating (valid by construction, and frozen: a
        # drawn batch's arrays are read-only), so ds.render(ds.params(i)), the export's loop, and the batched
        # loaders run at rendering speed.
        self._drawn: weakref.WeakValueDictionary[int, SampleParams | ParamsBatch | ViewParamsBatch] = (
            weakref.WeakValueDictionary()
        )

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

    @property
    def sample_epoch(self) -> int:
        """The epoch the samples are drawn for: :attr:`epoch`, or 0 with ``fixed_samples``.

        Example:
            >>> ds = SingleImageDataset(num_imgs=10, img_size=32, views="simclr", fixed_samples=True)
            >>> ds.set_epoch(3)
            >>> ds.epoch, ds.sample_epoch
            (3, 0)
        """
        return 0 if self.fixed_samples else self.epoch

    def set_epoch(self, epoch: int) -> None:
        """Draw fresh samples (and views) for ``epoch``; epoch 0 is the default fixed dataset.

        Call it before iterating the DataLoader for that epoch; DataLoader workers see the
        change, including persistent ones. With ``fixed_samples`` the samples stay epoch 0's and only the
        views are drawn afresh.

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
        params = sample_params(self.config, self._sizes, check_index(index, len(self)), self.sample_epoch)
        self._drawn[id(params)] = params
        return params

    def params_batch(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> ParamsBatch:
        """The parameters of samples ``indices`` (current epoch) as one :class:`ParamsBatch`, drawn in bulk.

        Row ``k`` equals ``self.params(indices[k])``; indices may be negative, as for indexing. Its arrays are
        read-only, as a :class:`SampleParams` is frozen: to edit a batch, build another, e.g. with
        ``dataclasses.replace(batch, angle=...)`` (which :meth:`render_batch` then validates).

        Raises:
            TypeError: an index is not an integer.
            IndexError: an index is out of range.
            ValueError: ``indices`` is empty or not one-dimensional.
        """
        batch = sample_params_batch(self.config, self._sizes, check_indices(indices, len(self)), self.sample_epoch)
        return self._frozen(batch)

    def view_params(self, index: int) -> list[ViewParams]:
        """The frozen parameters of the views of sample ``index`` in the current epoch, one record per view.

        Each view draws from a stream of its own, disjoint from the sample's
        (:func:`~single_image_dataset.views.sample_view_params`): :meth:`params` is the same with or without
        views, and a view is the same whatever views follow it.

        Raises:
            ValueError: the dataset has no views.

        Example:
            >>> ds = SingleImageDataset(num_imgs=10, img_size=64, views="simclr")
            >>> [v.size for v in ds.view_params(3)], ds.view_params(3)[0].to_dict()["crop"]
            ([64, 64], [19, 25, 39, 37])
        """
        return sample_view_params(self.config, self._checked_views(), check_index(index, len(self)), self.epoch)

    def view_params_batch(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> list[ViewParamsBatch]:
        """The views' parameters of samples ``indices`` (current epoch), drawn in bulk: one
        :class:`~single_image_dataset.views.ViewParamsBatch` per view, whose row ``k`` equals
        ``self.view_params(indices[k])[v]``. Their arrays are read-only, as those of :meth:`params_batch`; an
        edited copy (``dataclasses.replace``) is validated by :meth:`render_views`.

        Raises:
            TypeError, IndexError, ValueError: as :meth:`params_batch`; ValueError too when the dataset has no views.
        """
        views = self._checked_views()
        drawn = sample_view_params_batch(self.config, views, check_indices(indices, len(self)), self.epoch)
        return [self._frozen(batch) for batch in drawn]

    def render(self, params: SampleParams) -> Image.Image:
        """Render any parameter record with this dataset's backend (no transform applied).

        A record this dataset's :meth:`params` did not draw (one edited by hand, or read back from a file)
        is validated first (:meth:`SampleParams.validate`, against this dataset's sources).

        Raises:
            TypeError: ``params`` is not a :class:`SampleParams`, or one of its fields has the wrong type.
            ValueError: a field is out of range (the message names it), or ``source`` names no source of
                this dataset.

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
        if not isinstance(params, SampleParams):
            raise TypeError(f"params should be a SampleParams (see params), got {type(params).__name__}")
        if not self._drew(params):
            params.validate(self._sizes)
        return self._built_renderers()[params.source].render(params)

    def render_batch(self, params: ParamsBatch, out: torch.Tensor | None = None) -> torch.Tensor:
        """Render a batch into one ``uint8`` tensor ``N x 3 x S x S`` (no transform applied).

        Image ``k`` is byte for byte ``render(params[k])``; ``S`` is the output side (the debug size
        in debug mode). With several sources, each source's rows are rendered together. A batch this
        dataset's :meth:`params_batch` did not draw is validated first (:meth:`ParamsBatch.validate`, against
        this dataset's sources).

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
            ValueError: a row of ``params`` is out of range or names no source of this dataset (the message
                names the field and the row); ``out`` has the wrong shape, dtype, layout or device.

        Example:
            >>> ds = SingleImageDataset(num_imgs=100, img_size=32)
            >>> ds.render_batch(ds.params_batch([0, 7, 99])).shape
            torch.Size([3, 3, 32, 32])
        """
        if not isinstance(params, ParamsBatch):
            raise TypeError(f"params should be a ParamsBatch (see params_batch), got {type(params).__name__}")
        if not self._drew(params):
            params.validate(self._sizes)
        return self._render_batch(params, out)

    def _render_batch(self, params: ParamsBatch, out: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`render_batch` of a batch known to be valid for this dataset."""
        device = self._built_renderers()[0].device
        side = params.image_size
        shape = (len(params), 3, side, side)
        if out is None:
            out = new_batch(shape, device)
        else:
            _check_out(out, shape, device)
        self._by_source(params, [out], lambda renderer, rows, outs: renderer.render_batch(params[rows], outs[0]))
        return out

    def render_views(
        self, params: ParamsBatch, views: Sequence[ViewParamsBatch], outs: Sequence[torch.Tensor] | None = None
    ) -> list[torch.Tensor]:
        """Render every view of a batch of samples: one ``uint8`` tensor ``N x 3 x s_v x s_v`` per view.

        Image ``k`` of tensor ``v`` is view ``views[v][k]`` of sample ``params[k]``, the same bytes whatever the
        batch (:meth:`Renderer.render_views`). No ``target_transform`` is applied. Batches this dataset's
        :meth:`params_batch` and :meth:`view_params_batch` did not draw are validated first, as by
        :meth:`render_batch` (:meth:`ParamsBatch.validate`, and
        :meth:`ViewParamsBatch.validate <single_image_dataset.views.ViewParamsBatch.validate>` against the samples'
        side).

        Args:
            params: the samples, e.g. from :meth:`params_batch`.
            views: their views, e.g. from :meth:`view_params_batch`: one batch per view, of ``len(params)`` rows.
            outs: where to write, one tensor per view as for :meth:`render_batch`'s ``out``; new ones when ``None``
                (in shared memory in a ``DataLoader`` worker).

        Returns:
            ``outs``, or the new tensors, as a list.

        Raises:
            TypeError: ``params`` or a view batch is not of its type, or an out not a tensor.
            ValueError: a row of ``params`` is out of range, as for :meth:`render_batch`; a view batch has another
                length than ``params`` or a row out of range (a crop outside the samples, a view larger than them;
                the message names the view, the field and the row); an out has the wrong shape, dtype, layout or
                device.

        Example:
            >>> ds = SingleImageDataset(num_imgs=100, img_size=64, views="byol")
            >>> indices = [0, 7, 99]
            >>> [tuple(v.shape) for v in ds.render_views(ds.params_batch(indices), ds.view_params_batch(indices))]
            [(3, 3, 64, 64), (3, 3, 64, 64)]
        """
        if not isinstance(params, ParamsBatch):
            raise TypeError(f"params should be a ParamsBatch (see params_batch), got {type(params).__name__}")
        if not self._drew(params):
            params.validate(self._sizes)
        side = params.image_size
        for v, view in enumerate(views):
            if not isinstance(view, ViewParamsBatch):
                raise TypeError(f"views[{v}] should be a ViewParamsBatch (see view_params_batch), got "
                                f"{type(view).__name__}")
            if len(view) != len(params):
                raise ValueError(f"views[{v}] has {len(view)} rows for {len(params)} samples; draw both for the same "
                                 "indices")
            # A view batch this dataset drew fits its samples; samples of another side (hand-made) need the check.
            if not self._drew(view) or side != sample_side(self.config):
                try:
                    view.validate(side)
                except (TypeError, ValueError) as exc:
                    raise type(exc)(f"views[{v}]: {exc}") from None
        return self._render_views(params, views, outs)

    def _render_views(
        self, params: ParamsBatch, views: Sequence[ViewParamsBatch], outs: Sequence[torch.Tensor] | None = None
    ) -> list[torch.Tensor]:
        """:meth:`render_views` of batches known to be valid for this dataset and of one length."""
        device = self._built_renderers()[0].device
        shapes = [(len(params), 3, view.size, view.size) for view in views]
        if outs is None:
            outs = [new_batch(shape, device) for shape in shapes]
        else:
            if len(outs) != len(views):
                raise ValueError(f"outs should hold one tensor per view ({len(views)}), got {len(outs)}")
            for out, shape in zip(outs, shapes, strict=True):
                _check_out(out, shape, device)
        outs = list(outs)

        def render(renderer: Renderer, rows: slice | np.ndarray, parts: list[torch.Tensor]) -> None:
            renderer.render_views(params[rows], [view[rows] for view in views], parts)

        self._by_source(params, outs, render)
        return outs

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
            >>> SingleImageDataset(num_imgs=10, backend="reference").renderer_identity()
            {'backend': 'reference'}
            >>> sorted(SingleImageDataset(num_imgs=10, backend="fast").renderer_identity())
            ['backend', 'implementation', 'pillow']
        """
        return self._built_renderers()[0].identity()

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        """Sample ``index`` as ``(image, target)``, made when asked for, the same on every call.

        ``image`` is the sample's ``S x S`` RGB image (``S`` is ``img_size``, or the debug size): a PIL
        image, or with ``output="tensor"`` a ``uint8`` tensor ``3 x S x S``; then ``transform`` applied
        to it, where given. ``target`` is its class index, 0 (the class ``"dummy"``) or with
        ``per_source_classes`` its source; then ``target_transform``, where given. Negative indices count
        from the end.

        With ``views``, ``image`` is instead the list of the sample's views ``[view_0, ..., view_{V-1}]``
        (:meth:`view_params`): each a PIL image, or with ``output="tensor"`` a ``uint8`` tensor
        ``3 x s_v x s_v``, ``s_v`` its view's ``size`` (no ``transform``: a dataset with views has none).

        Raises:
            TypeError: ``index`` is not an integer.
            IndexError: ``index`` is out of range.

        Example:
            >>> ds = SingleImageDataset(num_imgs=10, img_size=32)
            >>> image, target = ds[-1]
            >>> image.size, image.mode, target
            ((32, 32), 'RGB', 0)
            >>> views, target = SingleImageDataset(num_imgs=10, img_size=32, views="dino")[-1]
            >>> len(views), views[0].size, views[-1].size, target
            (8, (32, 32), (14, 14), 0)
        """
        i = check_index(index, len(self))
        params = sample_params(self.config, self._sizes, i, self.sample_epoch)
        if self.views is not None:
            drawn = sample_view_params_batch(self.config, self.views, [i], self.epoch)
            views = self._render_views(ParamsBatch.from_list([params]), drawn)
            return self._finish_views([view[0] for view in views], self.target(params))
        if self.output == "tensor":
            return self._finish(self._render_batch(ParamsBatch.from_list([params]))[0], self.target(params))
        return self._finish(self._built_renderers()[params.source].render(params), self.target(params))

    def __getitems__(self, indices: Sequence[int]) -> SampleBatch | list[tuple[Any, Any]]:
        """Samples ``indices``, what ``DataLoader`` asks for a batch: sample ``k`` is ``self[indices[k]]``.

        Without a ``transform`` the batch is drawn and rendered in one go (:meth:`render_indices`, or with ``views``
        :meth:`render_views`) and returned as a :class:`SampleBatch`, which ``default_collate`` reads as the list of
        samples and :func:`~single_image_dataset.collate_batch` takes whole; with one, it is the list of samples,
        made one by one.
        """
        if self.transform is not None:
            return [self[i] for i in indices]
        # Drawn and rendered here without the public methods' registration and checks: the records never leave.
        checked = check_indices(indices, len(self))
        params = sample_params_batch(self.config, self._sizes, checked, self.sample_epoch)
        if self.views is None:
            images = self._render_batch(params)
        else:
            images = self._render_views(params, sample_view_params_batch(self.config, self.views, checked, self.epoch))
        targets = self.target(params)
        if self.target_transform is not None:
            return SampleBatch(images, [self.target_transform(t) for t in targets.tolist()], self.output)
        return SampleBatch(images, targets, self.output)

    def _finish_views(self, views: list[torch.Tensor], target: Any) -> tuple[list[Any], Any]:
        """``([views as PIL images or tensors], target_transform(target))``."""
        images = [F.to_pil_image(view.cpu()) for view in views] if self.output == "pil" else views
        if self.target_transform is not None:
            target = self.target_transform(target)
        return images, target

    def _drew(self, record: SampleParams | ParamsBatch | ViewParamsBatch) -> bool:
        """Whether ``record`` is one this dataset drew (and so valid for it, see ``_drawn``)."""
        return self._drawn.get(id(record)) is record

    def _frozen(self, batch: _Batch) -> _Batch:
        """``batch``, drawn here, with read-only arrays and registered as drawn (see ``_drawn``)."""
        for value in vars(batch).values():
            if isinstance(value, np.ndarray):
                value.flags.writeable = False
        self._drawn[id(batch)] = batch
        return batch

    def _checked_views(self) -> tuple[View, ...]:
        if self.views is None:
            raise ValueError("this dataset has no views; build it with views= (a preset name or a list of View)")
        return self.views

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
                *([] if self.views is None else [
                    f"Views: {', '.join(str(v.size) for v in self.views)} px"
                    + (" (of the samples of epoch 0: fixed_samples)" if self.fixed_samples else "")
                ]),
            ]
        )

    def __getstate__(self) -> dict[str, Any]:
        # The renderer's caches are rebuilt lazily in each process rather than pickled to workers; the
        # weak references to drawn records do not pickle, and name nothing in another process.
        state = {**self.__dict__, "_renderers": None}
        del state["_drawn"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._drawn = weakref.WeakValueDictionary()

    def _built_renderers(self) -> list[Renderer]:
        """One renderer per source, built on first use in each process."""
        if self._renderers is None:
            self._renderers = [get_renderer(self.backend, source, self.device) for source in self.sources]
        return self._renderers

    def _by_source(
        self,
        params: ParamsBatch,
        outs: list[torch.Tensor],
        render: Callable[[Renderer, slice | np.ndarray, list[torch.Tensor]], None],
    ) -> None:
        """Call ``render(renderer, rows, parts)`` for the rows of ``params`` of each source, with that source's
        renderer, and gather the ``parts`` into ``outs`` (one batch per output, rows first); a batch of one source
        is rendered straight into ``outs`` (``rows`` the whole batch)."""
        renderers = self._built_renderers()
        sources = np.unique(params.source)
        if len(sources) == 1:
            render(renderers[sources[0]], slice(None), outs)
            return
        for k in sources.tolist():
            rows = np.flatnonzero(params.source == k)
            parts = [torch.empty((len(rows), *out.shape[1:]), dtype=out.dtype, device=out.device) for out in outs]
            render(renderers[k], rows, parts)
            on_device = torch.from_numpy(rows).to(outs[0].device)
            for out, part in zip(outs, parts, strict=True):
                out[on_device] = part

class SampleBatch(Sequence[tuple[Any, Any]]):
    """Samples drawn and rendered together: what :meth:`SingleImageDataset.__getitems__` returns for a batch.

    As a sequence it is the list of samples ``(image, target)`` (with ``views``, ``([view_0, ..., view_{V-1}],
    target)``), each equal to ``dataset[i]``, which is how ``DataLoader``'s ``default_collate`` reads it;
    :func:`~single_image_dataset.collate_batch` (the collate of :class:`~single_image_dataset.BatchLoader`) takes
    ``images`` whole instead, without a copy.

    Attributes:
        images: the ``uint8`` images, ``N x 3 x S x S``, in one tensor; with ``views``, one such tensor per view
            (``N x 3 x s_v x s_v``), in a list.
        targets: the ``int64`` class indices (an array), or the ``target_transform`` of each (a list).
        output: the dataset's ``output``: an image of sample ``k`` is row ``k`` of its tensor for ``"tensor"``,
            and that image as a PIL image for ``"pil"``.

    Example:
        >>> ds = SingleImageDataset(num_imgs=10, img_size=32, output="tensor")
        >>> batch = ds.__getitems__([3, 1, 4])
        >>> tuple(batch.images.shape), batch.targets.tolist(), len(batch)
        ((3, 3, 32, 32), [0, 0, 0], 3)
        >>> image, target = batch[2]
        >>> bool((image == ds[4][0]).all()), target
        (True, 0)
    """

    def __init__(self, images: torch.Tensor | list[torch.Tensor], targets: np.ndarray | list[Any], output: str) -> None:
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
        if isinstance(self.images, list):
            image: Any = [self._image(view[k]) for view in self.images]
        else:
            image = self._image(self.images[k])
        target = self.targets[k]
        return image, int(target) if isinstance(self.targets, np.ndarray) else target

    def _image(self, image: torch.Tensor) -> Any:
        return F.to_pil_image(image.cpu()) if self.output == "pil" else image

    def __repr__(self) -> str:
        tensors = self.images if isinstance(self.images, list) else [self.images]
        shapes = ", ".join(str(tuple(t.shape)) for t in tensors)
        return f"SampleBatch({len(self)} samples, images {shapes}, output={self.output!r})"


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

    Integer arrays and tensors are checked in bulk. A sequence that numpy cannot hold as one integer
    array (Python and numpy integers mixed, such as ``[np.uint64(3), -1]``, or integers beyond 64 bits)
    is checked element by element, exactly: never through floating point.

    Raises:
        TypeError: an index is not an integer.
        IndexError: an index is out of range.
        ValueError: ``indices`` is empty or not one-dimensional.

    Example:
        >>> check_indices([0, -1, 5], 10)
        array([0, 9, 5])
        >>> check_indices([np.uint64(3), -1], 10)
        array([3, 9])
    """
    if isinstance(indices, torch.Tensor):
        indices = indices.cpu().numpy()
    try:
        array = np.asarray(indices)
    except ValueError:
        raise ValueError("indices should be a non-empty one-dimensional sequence, got a ragged one") from None
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"indices should be a non-empty one-dimensional sequence, got shape {array.shape}")
    if array.dtype.kind not in "iu":
        if isinstance(indices, np.ndarray) and array.dtype != object:
            raise TypeError(f"dataset indices must be integers, got an array of {array.dtype}")
        return np.array([check_index(i, length) for i in indices], dtype=np.int64)
    bad = (array < -length) | (array >= length)
    if bad.any():
        raise IndexError(f"index {array[np.argmax(bad)]} is out of range for a dataset of {length} samples")
    array = array.astype(np.int64)
    return np.where(array < 0, array + length, array)


def check_keywords(owner: Callable[..., Any], keywords: Mapping[str, Any], config_type: type) -> None:
    """Refuse a keyword of ``owner`` (a dataset class) that is neither its argument nor a field of its config.

    Datasets take their config's fields as keywords (``img_size=64``); a keyword that is neither fails here
    with a message listing both and suggesting the closest name, such as ``transform`` for ``transforms``,
    torchvision's ``VisionDataset`` keyword.

    Raises:
        TypeError: a keyword is neither.

    Example:
        >>> check_keywords(SingleImageDataset, {"img_size": 64}, AugmentConfig)
        >>> check_keywords(SingleImageDataset, {"img_sise": 64}, AugmentConfig)
        Traceback (most recent call last):
            ...
        TypeError: SingleImageDataset() got an unexpected keyword argument 'img_sise' (did you mean img_size=?); ...
    """
    fields = [f.name for f in dataclasses.fields(config_type)]
    unknown = [key for key in keywords if key not in fields]
    if not unknown:
        return
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    arguments = [name for name, p in inspect.signature(owner).parameters.items() if p.kind not in variadic]
    close = difflib.get_close_matches(unknown[0], arguments + fields, n=1)
    hint = f" (did you mean {close[0]}=?)" if close else ""
    raise TypeError(
        f"{owner.__name__}() got an unexpected keyword argument {unknown[0]!r}{hint}; its arguments are "
        f"{', '.join(arguments)}, and the fields of {config_type.__name__}: {', '.join(fields)}"
    )


def _warn_small_sources(config: AugmentConfig, names: Sequence[str], sizes: Sequence[tuple[int, int]]) -> None:
    """Warn of the sources far smaller than the output (:data:`SMALL_SOURCE_RATIO`), naming each."""
    small = []
    for name, size in zip(names, sizes, strict=True):
        side = min(crop_region(config, size))
        if config.img_size > SMALL_SOURCE_RATIO * side:
            where = f"a {side} px square (initcrop={config.initcrop:g})" if config.cropfirst else "the whole image"
            small.append(f"{name} ({size[0]}x{size[1]} px; crops from {where})")
    if small:
        which = f"source {small[0]} is" if len(small) == 1 else f"sources {', '.join(small)} are"
        warnings.warn(
            f"{which} far smaller than the output: img_size={config.img_size} is over "
            f"{SMALL_SOURCE_RATIO} times the side its crops are drawn from, so every sample is mostly "
            "interpolation blur; use a larger image or a smaller img_size",
            SmallSourceWarning,
            stacklevel=3,
        )


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
