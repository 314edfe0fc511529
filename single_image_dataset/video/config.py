"""The configuration of a fake-video dataset, shared by the dataset, the CLI and ``configs/fakevideo.toml``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from ..config import AugmentConfig, ConfigBase, check_crops, check_jitter, check_output

__all__ = ["MAX_CLIP_BYTES", "MAX_CLIP_LEN", "VideoConfig"]

#: Most frames per clip: 40 s at 25 fps, far beyond the 8-64 frames video models take.
MAX_CLIP_LEN = 1024
#: Most bytes of one clip, ``clip_len * img_size**2 * 3``: a clip is made in memory as one ``uint8`` tensor
#: (1024 frames of the recipe's 230 px are 163 MB; 4 GiB are 18 frames of 8192 px).
MAX_CLIP_BYTES = 1 << 32


@dataclass(frozen=True)
class VideoConfig(ConfigBase):
    """Everything that defines a fake-video dataset apart from its source image.

    The defaults are those of Asano & Saeed's ``make_fakevideo_dataset.py`` ("The Augmented Image
    Prior", ICLR 2023): 200,000 clips of 16 frames of 230 px. Each clip is an initial square crop, two
    random-resized-crop boxes in it and a camera move from the first box to the second, with one colour
    jitter for the whole clip (see :func:`~single_image_dataset.video.sample_clip_params`). Validated like
    :class:`~single_image_dataset.AugmentConfig`, whose fields of the same name mean the same; derive
    variants with :meth:`replace`.

    Args:
        clip_len: frames per clip, from 2 (the move's first and last box) to :data:`MAX_CLIP_LEN`.
        img_size: side of the square frames, in pixels.
        num_imgs: number of clips, the dataset's length (named as the image config's, which the CLI shares).
        seed: seed of the per-index random streams (a non-negative integer).
        initcrop: relative side of the initial square crop, in ``(0, 1]``; the recipe always makes it.
        scale: inverse area range of the two boxes: each area fraction is drawn from
            ``U(1 / scale[0], 1 / scale[1])`` of the initial crop.
        jitter: colour-jitter strengths (brightness, contrast, saturation, hue), with torchvision
            ``ColorJitter`` semantics.
        jitter_p: probability that the colour jitter is applied to a clip.

    Example:
        >>> cfg = VideoConfig(clip_len=8, img_size=64)
        >>> cfg.clip_len, cfg.num_imgs, cfg.area_range
        (8, 200000, (0.002, 1.0))
        >>> VideoConfig(clip_len=1)
        Traceback (most recent call last):
        ...
        ValueError: clip_len should be in [2, 1024] frames (at least the camera move's first and last), got 1
    """

    clip_len: int = 16
    img_size: int = 230
    num_imgs: int = 200_000
    seed: int = 0
    initcrop: float = 0.5
    scale: tuple[float, float] = (500.0, 1.0)
    jitter: tuple[float, float, float, float] = field(default=(0.4, 0.4, 0.4, 0.1))
    jitter_p: float = 0.5

    TUPLE_LENGTHS: ClassVar[Mapping[str, int]] = {"scale": 2, "jitter": 4}
    #: The recipe always starts with the initial square crop (what
    #: :func:`~single_image_dataset.crops.crop_region` reads).
    cropfirst: ClassVar[bool] = True

    def check_ranges(self) -> None:
        if not 2 <= self.clip_len <= MAX_CLIP_LEN:
            raise ValueError(
                f"clip_len should be in [2, {MAX_CLIP_LEN}] frames (at least the camera move's first and last), "
                f"got {self.clip_len}"
            )
        check_output(self)
        clip_bytes = self.clip_len * self.img_size**2 * 3
        if clip_bytes > MAX_CLIP_BYTES:
            raise ValueError(
                f"a clip of clip_len {self.clip_len} frames of img_size {self.img_size} px takes {clip_bytes} bytes, "
                f"more than the {MAX_CLIP_BYTES} (4 GiB) a clip may take in memory; lower clip_len or img_size"
            )
        check_crops(self)
        check_jitter(self)

    def frame_config(self) -> AugmentConfig:
        """The image config of the same crop and jitter with no rotation, shear, flip or random interpolation.

        A frame is that config's initial crop, resized crop and jitter, resized straight to ``img_size``
        (without the image recipe's ``sqrt(2)`` margin and centre crop). :class:`FakeVideoDataset` checks
        its source and builds its renderer with it.

        Example:
            >>> frames = VideoConfig(img_size=64).frame_config()
            >>> frames.img_size, frames.deg, frames.shear, frames.jitter == VideoConfig().jitter
            (64, 0.0, 0.0, True)
        """
        return AugmentConfig(
            img_size=self.img_size, num_imgs=self.num_imgs, seed=self.seed, deg=0.0, shear=0.0, vflip=False,
            cropfirst=True, initcrop=self.initcrop, scale=self.scale, randinterp=False, jitter=self.jitter,
            jitter_p=self.jitter_p, debug=False,
        )
