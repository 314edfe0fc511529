"""``FakeVideoDataset``: one photograph as a virtual, per-index reproducible dataset of fake-video clips."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torchvision.datasets import VisionDataset

from ..dataset import SingleImageDataset, check_index, check_keywords
from ..params import ParamsBatch
from ..source import ImageLike
from .config import VideoConfig
from .params import ClipParams
from .sampling import sample_clip_params

__all__ = ["LAYOUTS", "FakeVideoDataset"]

#: The clip layouts a dataset can return: torchvision's ``T x C x H x W`` (its video datasets and transforms), or
#: ``C x T x H x W``, what 3-D convolutional video models take (torchvision's ``r3d_18``, PyTorchVideo's).
LAYOUTS = ("TCHW", "CTHW")


class FakeVideoDataset(VisionDataset):
    """``num_imgs`` fake-video clips of one image (Asano & Saeed, ICLR 2023), each made when indexed.

    Clip ``i`` is a camera move over the source: ``clip_len`` frames whose boxes move linearly from one
    random resized crop to another inside a random square crop, with one colour jitter for the whole clip
    (:class:`ClipParams`). Like :class:`~single_image_dataset.SingleImageDataset` it is a pure function of
    (source pixels, config, epoch, ``i``): the same clip on every call, in every process and with any
    ``num_workers``, and :meth:`set_epoch` reaches the DataLoader's workers. It returns ``(clip, 0)``,
    ``clip`` a ``uint8`` tensor ``T x 3 x H x W`` (torchvision's TCHW video layout) or, with ``layout="CTHW"``,
    ``3 x T x H x W`` (what video models take), with the single class ``"dummy"``.

    A clip's frames are image samples without rotation, flip or centre-crop margin
    (:meth:`ClipParams.frames`), so every image renderer renders them: ``"reference"`` (torchvision's ops
    on PIL, frame by frame: the crop, ``F.resized_crop`` bicubic and antialiased, the jitter; the oracle)
    or ``"fast"`` (each frame one warp of the image pyramid, all the clip's frames in one call of the
    native kernels; frame by frame with OpenCV where they were not built), or any other registered
    backend.

    Args:
        image: a path, a PIL image, a ``uint8`` array/tensor, or ``None`` for the embedded default
            photograph, :data:`~single_image_dataset.DEFAULT_IMAGE` (one image: a list of several is refused).
        config: the clip config; defaults to the paper's.
        backend: the renderer, one of :func:`~single_image_dataset.available_backends`, or ``None`` (default) for
            :func:`~single_image_dataset.default_backend`.
        device: where the clips are rendered: ``"cpu"`` (default) or, with ``backend="torch"``, an
            accelerator such as ``"cuda"``, where every frame of a clip is rendered in one batch.
        transform: applied to each clip tensor, in ``layout``.
        layout: ``"TCHW"`` (default) or ``"CTHW"``: the dimension order of the clips the dataset returns.
            :meth:`render` always gives ``T x 3 x H x W``, what :func:`~single_image_dataset.video.encode_mp4`,
            the export and the filmstrip read, so they work with either.
        exif_orientation: turn a photograph upright by its EXIF orientation tag, as
            :class:`~single_image_dataset.SingleImageDataset` does.
        **overrides: fields of :class:`VideoConfig` (``clip_len``, ``num_imgs``, ``img_size``, ...)
            applied on top of ``config``.

    Raises:
        FileNotFoundError, IsADirectoryError, ValueError, TypeError: bad image or config; the message
            names the problem.

    Example:
        >>> ds = FakeVideoDataset(num_imgs=100, clip_len=4, img_size=32)
        >>> clip, y = ds[0]
        >>> tuple(clip.shape), clip.dtype, y, len(ds)
        ((4, 3, 32, 32), torch.uint8, 0, 100)
    """

    def __init__(
        self,
        image: ImageLike | None = None,
        *,
        config: VideoConfig | None = None,
        backend: str | None = None,
        device: torch.device | str = "cpu",
        transform: Callable[[torch.Tensor], Any] | None = None,
        layout: str = "TCHW",
        exif_orientation: bool = True,
        **overrides: Any,
    ) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"layout should be one of {', '.join(map(repr, LAYOUTS))}, got {layout!r}")
        check_keywords(type(self), overrides, VideoConfig)
        config = (config or VideoConfig()).replace(**overrides)
        # The frames are image samples of one source: an image dataset of the clips' crop and jitter
        # settings checks the source, holds the renderer and the epoch (shared with DataLoader workers).
        self._stills = SingleImageDataset(
            image, config=config.frame_config(), backend=backend, device=device, exif_orientation=exif_orientation
        )
        if len(self._stills.sources) > 1:
            raise ValueError(
                f"FakeVideoDataset makes the clips of one source image, got {len(self._stills.sources)} "
                f"({', '.join(self._stills.source_names[:3])}, ...); pass one image"
            )
        super().__init__(self._stills.root, transform=transform)
        self.config = config
        self.backend = self._stills.backend
        self.layout = layout
        #: The device the clips are rendered on, as the renderer's tensors name it.
        self.device = self._stills.device
        self.classes = ["dummy"]
        self.class_to_idx = {"dummy": 0}

    @property
    def source(self) -> Image.Image:
        """The RGB source image."""
        return self._stills.source

    @property
    def sources(self) -> list[Image.Image]:
        """``[source]``, as :attr:`SingleImageDataset.sources <single_image_dataset.SingleImageDataset.sources>`
        lists an image dataset's sources (what the export's manifest records)."""
        return self._stills.sources

    @property
    def source_names(self) -> list[str]:
        """The source's name (its file stem, or ``image_0`` for an image in memory), in a list."""
        return self._stills.source_names

    @property
    def source_paths(self) -> list[Path | None]:
        """The source's file (``None`` for an image in memory), in a list."""
        return self._stills.source_paths

    @property
    def targets(self) -> Sequence[int]:
        """The class index of every clip (all 0), as a lazy sequence."""
        return self._stills.targets

    @property
    def epoch(self) -> int:
        """The current epoch (0 unless :meth:`set_epoch` was called)."""
        return self._stills.epoch

    def set_epoch(self, epoch: int) -> None:
        """Draw fresh clips for ``epoch``; epoch 0 is the default fixed dataset.

        As :meth:`SingleImageDataset.set_epoch <single_image_dataset.SingleImageDataset.set_epoch>`:
        call it before iterating the DataLoader for that epoch; its workers see the change.
        """
        self._stills.set_epoch(epoch)

    def params(self, index: int) -> ClipParams:
        """The frozen parameters of clip ``index`` in the current epoch.

        Example:
            >>> ds = FakeVideoDataset(num_imgs=10, clip_len=4, img_size=32)
            >>> p = ds.params(-1)
            >>> p == ds.params(9), len(p.frame_boxes()), p.frame_boxes()[-1] == p.end_box
            (True, 4, True)
        """
        return sample_clip_params(self.config, self.source.size, check_index(index, len(self)), self.epoch)

    def render(self, params: ClipParams, out: torch.Tensor | None = None) -> torch.Tensor:
        """Render any clip record with this dataset's backend into a ``uint8`` ``T x 3 x S x S`` tensor.

        Frame ``t`` is byte for byte the backend's image of ``params.frames()[t]`` (no transform applied).

        Args:
            params: the clip, e.g. from :meth:`params`.
            out: where to write, as for :meth:`SingleImageDataset.render_batch
                <single_image_dataset.SingleImageDataset.render_batch>`; a new tensor when ``None``.

        Raises:
            TypeError: ``params`` is not a :class:`ClipParams`.
        """
        if not isinstance(params, ClipParams):
            raise TypeError(f"params should be a ClipParams (see params), got {type(params).__name__}")
        return self._stills.render_batch(ParamsBatch.from_list(params.frames()), out)

    def renderer_identity(self) -> dict[str, str]:
        """What renders the pixels: the backend and whatever else decides them."""
        return self._stills.renderer_identity()

    def __getitem__(self, index: int) -> tuple[Any, int]:
        """Clip ``index`` in :attr:`layout` (after the ``transform``, if any) and its class, 0."""
        clip = self.render(self.params(index))
        if self.layout == "CTHW":
            clip = clip.permute(1, 0, 2, 3).contiguous()
        if self.transform is not None:
            clip = self.transform(clip)
        return clip, 0

    def __len__(self) -> int:
        return self.config.num_imgs

    def extra_repr(self) -> str:
        c = self.config
        return "\n".join(
            [
                f"Source size: {self.source.width}x{self.source.height}",
                f"Seed: {c.seed}, epoch: {self.epoch}, backend: {self.backend}, layout: {self.layout}",
                f"Clips: clip_len={c.clip_len}, img_size={c.img_size}, initcrop={c.initcrop:g}, scale={c.scale}, "
                f"jitter={c.jitter} p={c.jitter_p:g}",
            ]
        )
