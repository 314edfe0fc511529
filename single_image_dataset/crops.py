"""The region the resized crop is drawn from, and whether its box fits there often enough to be drawn.

Both the config (which checks its ``scale`` alone) and the sampler (which draws the boxes) need these, so
they live below both: this module reads a config's crop fields and nothing else of the package.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

__all__ = ["MIN_FIT_PROBABILITY", "RATIO_RANGE", "CropSettings", "check_fit", "crop_region", "fit_probability"]

#: The aspect-ratio range of the resized crop, torchvision's ``RandomResizedCrop`` default.
RATIO_RANGE = (3.0 / 4.0, 4.0 / 3.0)

#: Configs and sources whose crop box fits less often than this are rejected up front, so the retry
#: loop of the resized crop ends after about ``1 / p`` tries.
MIN_FIT_PROBABILITY = 0.01

# The config alone is checked on a square this large, where the rounding of the crop box is
# negligible; the dataset checks again on its real source (check_fit).
_NOMINAL_SIDE = 4096


class CropSettings(Protocol):
    """The crop fields of a config, all these functions read: :class:`~single_image_dataset.AugmentConfig`
    and :class:`~single_image_dataset.VideoConfig` have them."""

    @property
    def cropfirst(self) -> bool: ...
    @property
    def initcrop(self) -> float: ...
    @property
    def scale(self) -> tuple[float, float]: ...
    @property
    def area_range(self) -> tuple[float, float]: ...


def crop_region(config: CropSettings, source_size: tuple[int, int]) -> tuple[int, int]:
    """``(width, height)`` of the region the resized crop is drawn from: the initial square crop, or the source.

    Example:
        >>> from single_image_dataset import AugmentConfig
        >>> crop_region(AugmentConfig(), (1000, 872)), crop_region(AugmentConfig(cropfirst=False), (1000, 872))
        ((436, 436), (1000, 872))
    """
    width, height = source_size
    if config.cropfirst:
        side = int(config.initcrop * min(width, height))
        return (side, side)
    return (width, height)


def check_fit(config: CropSettings, source_size: tuple[int, int] | None = None) -> None:
    """Reject a setup in which the resized-crop box fits its region too rarely for sampling to end soon.

    Args:
        config: the config (its crop fields).
        source_size: ``(width, height)`` of the source image; ``None`` checks the config alone, on a
            region so large that only its ``scale`` matters.

    Raises:
        ValueError: the initial crop would be 0 px, or a resized-crop attempt fits less often than
            :data:`MIN_FIT_PROBABILITY`; the message says what to change.

    Example:
        >>> from single_image_dataset import AugmentConfig
        >>> check_fit(AugmentConfig(cropfirst=False), (1000, 10))
        Traceback (most recent call last):
        ...
        ValueError: image of 1000x10 px is too small or too elongated for the crops: ... only 0.93% of the time; ...
    """
    if source_size is None:
        p = fit_probability(_NOMINAL_SIDE, _NOMINAL_SIDE, config.area_range)
        if p < MIN_FIT_PROBABILITY:
            raise ValueError(
                f"scale={config.scale} makes the resized-crop box fit only {p:.2%} of the time, so "
                "sampling would practically hang; lower the minimum area fraction (raise scale[0])"
            )
        return
    width, height = source_size
    region = crop_region(config, source_size)
    if config.cropfirst and region[0] < 1:
        raise ValueError(
            f"image of {width}x{height} px is too small for initcrop={config.initcrop:g}: the initial "
            "crop would be 0 px; use a larger image or raise initcrop"
        )
    p = fit_probability(*region, config.area_range)
    if p < MIN_FIT_PROBABILITY:
        raise ValueError(
            f"image of {width}x{height} px is too small or too elongated for the crops: a resized-crop box "
            f"of scale={config.scale} fits its {region[0]}x{region[1]} px region only {p:.2%} of the time; "
            "use a larger image, cropfirst, or a smaller scale[0]"
        )


def fit_probability(
    width: int, height: int, area_range: tuple[float, float], ratio_range: tuple[float, float] = RATIO_RANGE
) -> float:
    """Probability that one resized-crop attempt yields a box inside a ``width`` x ``height`` region.

    Evaluated on a 256x256 midpoint grid over (area fraction, log aspect ratio), with the same
    rounding as the sampler, so it also sees boxes that round to 0 px on tiny regions.

    Example:
        >>> round(fit_probability(4096, 4096, (1 / 500, 1.0)), 3), fit_probability(4096, 4096, (2.0, 1.0))
        (0.869, 0.0)
    """
    n = 256
    t = (np.arange(n) + 0.5) / n
    fraction = area_range[0] + (area_range[1] - area_range[0]) * t[:, None]
    log_lo, log_hi = math.log(ratio_range[0]), math.log(ratio_range[1])
    ratio = np.exp(log_lo + (log_hi - log_lo) * t[None, :])
    target = fraction * (width * height)
    w = np.round(np.sqrt(target * ratio))
    h = np.round(np.sqrt(target / ratio))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    return float(fits.mean())
