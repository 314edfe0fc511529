"""The configuration of one view: :class:`View`, the chain of a SimCLR-style random view of a sample."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from ..config import MAX_IMG_SIZE, ConfigBase, check_jitter

__all__ = ["View"]


@dataclass(frozen=True)
class View(ConfigBase):
    """One random view of a sample: the augmentation chain that SimCLR, MoCo v2, BYOL and DINO apply to each
    of their views, applied to the dataset's sample.

    View ``v`` of sample ``i`` is sample ``i`` (its own pixels, black fill included) passed through, in order:
    torchvision's ``RandomResizedCrop(size, scale, ratio)`` (bilinear, antialiased), ``RandomHorizontalFlip``,
    ``RandomApply([ColorJitter(*jitter)], jitter_p)`` (a random order of the four ops), ``RandomGrayscale``
    (three channels), ``RandomApply([GaussianBlur])`` with sigma uniform in ``blur_sigma`` and SimCLR's odd
    kernel of about a tenth of the view's side (:attr:`blur_kernel`), and a solarization (pixels of 128 and
    above inverted, BYOL's threshold of 0.5). Every field is checked when the view is built; derive variants
    with :meth:`replace`.

    Args:
        size: side of the square view in pixels; at most the dataset's sample side (a larger view could only
            upscale the sample, see :class:`~single_image_dataset.SingleImageDataset`).
        scale: range of the crop's area as a fraction of the sample's, ``0 < scale[0] <= scale[1] <= 1``
            (torchvision's ``scale``; note that :attr:`AugmentConfig.scale` is an inverse fraction).
        ratio: range of the crop's aspect ratio (width / height), drawn log-uniformly.
        hflip_p: probability of a horizontal flip.
        jitter: colour-jitter strengths (brightness, contrast, saturation, hue), torchvision ``ColorJitter``
            semantics; an op of strength 0 is skipped.
        jitter_p: probability that the colour jitter is applied.
        grayscale_p: probability of a grayscale conversion.
        blur_p: probability of a Gaussian blur.
        blur_sigma: range of the blur's sigma in pixels.
        solarize_p: probability of a solarization.

    Example:
        >>> view = View(size=96, scale=(0.05, 0.4), blur_p=0.5)
        >>> view.blur_kernel, View.from_dict(view.to_dict()) == view
        (9, True)
        >>> View(size=224, jitter_p=1.5)
        Traceback (most recent call last):
        ...
        ValueError: jitter_p should be a probability in [0, 1], got 1.5
    """

    size: int
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    hflip_p: float = 0.5
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.2, 0.1)
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_p: float = 0.0

    TUPLE_LENGTHS: ClassVar[Mapping[str, int]] = {"scale": 2, "ratio": 2, "jitter": 4, "blur_sigma": 2}

    def check_ranges(self) -> None:
        if not 1 <= self.size <= MAX_IMG_SIZE:
            raise ValueError(f"size should be in [1, {MAX_IMG_SIZE}] pixels, got {self.size}")
        lo, hi = self.scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(
                f"scale should be two area fractions with 0 < scale[0] <= scale[1] <= 1, e.g. (0.08, 1.0), "
                f"got {self.scale}"
            )
        lo, hi = self.ratio
        if not (math.isfinite(hi) and 0 < lo <= hi):
            raise ValueError(
                f"ratio should be two aspect ratios with 0 < ratio[0] <= ratio[1], e.g. (3/4, 4/3), got {self.ratio}"
            )
        for name in ("hflip_p", "grayscale_p", "blur_p", "solarize_p"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} should be a probability in [0, 1], got {getattr(self, name):g}")
        check_jitter(self)
        lo, hi = self.blur_sigma
        if not (math.isfinite(hi) and 0 < lo <= hi):
            raise ValueError(
                f"blur_sigma should be two sigmas in pixels with 0 < blur_sigma[0] <= blur_sigma[1], e.g. (0.1, 2.0), "
                f"got {self.blur_sigma}"
            )

    @property
    def area_range(self) -> tuple[float, float]:
        """The range of the crop's area fraction: :attr:`scale` itself."""
        return self.scale

    @property
    def blur_kernel(self) -> int:
        """The blur's kernel side: SimCLR's ``2 * (size // 20) + 1``, an odd number of about a tenth of the view's
        side (23 at 224 px, 9 at 96 px); 1, no blur, below 20 px."""
        return 2 * (self.size // 20) + 1
