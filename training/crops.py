"""The methods' crops of a sample: a random crop (plain or resized) and a horizontal flip, or the centre crop.

Not the library's views (:class:`single_image_dataset.views.View`, several augmented views of one sample, keyed by
the sample's index): a :class:`PositionCrop` is drawn for a *position* of an epoch (the ``j``-th sample the epoch
trains on, so a repeated index gets another crop) from a stream of its own,
``SeedSequence([seed, epoch, position, CROP_STREAM])``, and is applied one image at a time. The batched path (a
whole batch on the training device) and the per-sample path (one sample in a DataLoader worker) therefore make
the same crop, bit for bit on the same device, whatever the batch size or number of workers.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from single_image_dataset.crops import RATIO_RANGE
from single_image_dataset.sampling import uniform_in, uniform_int, uniform_stream

__all__ = ["CROP_STREAM", "PositionCrop"]

#: Last word of the crops' stream entropy, apart from the dataset's ``(seed, epoch, index)`` streams (its value,
#: ASCII "view", predates the name; kept so that runs and their figures stay the same).
CROP_STREAM = 0x76696577
# torchvision's RandomResizedCrop: the number of tries before the fallback.
_ATTEMPTS = 10
# Slots of a crop's stream: the flip, the crop's top and left, then two per resized-crop attempt.
_FLIP, _TOP, _LEFT, _FIRST_ATTEMPT = range(4)


@dataclass(frozen=True)
class PositionCrop:
    """How a method crops a sample: ``size`` px crops, random (training) or centred (evaluation).

    Args:
        size: side of the crop, at most the sample's.
        scale: ``None`` for a plain ``size`` crop (torchvision's ``RandomCrop``), or the area range of a
            resized crop (``RandomResizedCrop(size, scale)``, bilinear with antialiasing).
        random: ``False`` is the evaluation crop: the centre crop, not flipped (``CenterCrop``).

    Example:
        >>> crop = PositionCrop(56)
        >>> params = crop.params(64, seed=0, epoch=0, positions=[0, 1])
        >>> tuple(crop.apply(torch.zeros(2, 3, 64, 64), params).shape)
        (2, 3, 56, 56)
    """

    size: int
    scale: tuple[float, float] | None = None
    random: bool = True

    def params(self, side: int, seed: int, epoch: int, positions: Sequence[int]) -> np.ndarray:
        """The crops of ``positions`` on samples of ``side`` px: rows ``(top, left, height, width, flip)``."""
        rows = [self._params(side, seed, epoch, int(p)) for p in positions]
        return np.array(rows, dtype=np.int64).reshape(len(rows), 5)

    def apply(self, images: torch.Tensor, params: np.ndarray) -> torch.Tensor:
        """The crops ``params`` of ``images`` (``N x C x S x S``, floating point), ``N x C x size x size``."""
        rows = []
        for image, (top, left, height, width, flip) in zip(images, params.tolist(), strict=True):
            crop = image[:, top : top + height, left : left + width]
            if (height, width) != (self.size, self.size):
                crop = F.interpolate(crop[None], size=(self.size, self.size), mode="bilinear", antialias=True)[0]
            rows.append(crop.flip(-1) if flip else crop)
        return torch.stack(rows)

    def _params(self, side: int, seed: int, epoch: int, position: int) -> tuple[int, int, int, int, int]:
        if not self.random:
            offset = int(round((side - self.size) / 2.0))
            return offset, offset, self.size, self.size, 0
        count = _FIRST_ATTEMPT + (2 * _ATTEMPTS if self.scale is not None else 0)
        u = list(itertools.islice(uniform_stream((seed, epoch, position, CROP_STREAM)), count))
        flip = int(u[_FLIP] < 0.5)
        height = width = self.size
        if self.scale is not None:
            height, width = _resized_crop_box(side, self.scale, u[_FIRST_ATTEMPT:])
        return uniform_int(u[_TOP], side - height + 1), uniform_int(u[_LEFT], side - width + 1), height, width, flip


def _resized_crop_box(side: int, scale: tuple[float, float], u: Sequence[float]) -> tuple[int, int]:
    """torchvision's ``RandomResizedCrop.get_params`` on a square: a box of ``scale`` area and ratio in
    ``[3/4, 4/3]``, tried ten times, else the whole square."""
    log_lo, log_hi = math.log(RATIO_RANGE[0]), math.log(RATIO_RANGE[1])
    for attempt in range(_ATTEMPTS):
        area = side * side * uniform_in(u[2 * attempt], *scale)
        ratio = math.exp(uniform_in(u[2 * attempt + 1], log_lo, log_hi))
        width, height = int(round(math.sqrt(area * ratio))), int(round(math.sqrt(area / ratio)))
        if 0 < width <= side and 0 < height <= side:
            return height, width
    return side, side
