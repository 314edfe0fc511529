"""The torch renderer's colour jitter: torchvision's tensor ``adjust_*`` with a factor per image, on float batches.

The samples' jitter (:class:`~single_image_dataset.render.tensor.TorchRenderer`) and the views'
(:mod:`~single_image_dataset.render.tensor_views`) both run these ops, on any device, every one elementwise or per
image, so no pixel depends on the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..params import JITTER_OPS, ParamsBatch
from ..views.params import ViewParamsBatch

__all__ = ["ADJUST", "adjust_jitter", "jitter_groups"]

# The contrast's grey mean is summed in fixed point with this many fraction bits (see _grey_mean).
_MEAN_BITS = 16
# torchvision's rgb_to_grayscale weights on tensors (ITU-R 601-2).
_LUMA = (0.2989, 0.587, 0.114)


def adjust_jitter(
    images: torch.Tensor, factors: torch.Tensor, ops: Sequence[int], rows: Sequence[torch.Tensor]
) -> torch.Tensor:
    """Each image's colour jitter in its own order, in place, as the renderer jitters its samples.

    ``images`` is ``N x 3 x H x W`` float32 on the ``0..255`` scale; ``factors`` the batch's ``N x 4`` jitter
    factors and ``ops``, ``rows`` the steps of :func:`jitter_groups` (each op with its rows, those on the device),
    so that nothing here waits for a transfer. Torchvision's tensor semantics, each op clamped to ``[0, 255]`` and
    not rounded; rows without jitter are left as they are. Returns ``images``.
    """
    for op, index in zip(ops, rows, strict=True):
        adjusted = ADJUST[JITTER_OPS[op]](images.index_select(0, index), factors[:, op].index_select(0, index))
        images.index_copy_(0, index, adjusted)
    return images


def jitter_groups(batch: ParamsBatch | ViewParamsBatch) -> list[tuple[int, np.ndarray]]:
    """The jitter as ``(op, rows)`` steps: for each position in the order, each op with the rows that
    apply it there (indices into :data:`JITTER_OPS`; rows without jitter have none)."""
    groups = []
    for position in range(batch.jitter_order.shape[1]):
        for op in range(len(JITTER_OPS)):
            rows = np.flatnonzero(batch.jitter_order[:, position] == op)
            if len(rows):
                groups.append((op, rows))
    return groups


def _blend(images: torch.Tensor, other: torch.Tensor | float, factors: torch.Tensor) -> torch.Tensor:
    """torchvision's ``_blend`` with a factor per image: ``factor * images + (1 - factor) * other``, clamped."""
    weight = factors.to(torch.float32)[:, None, None, None]
    rest = (1.0 - factors).to(torch.float32)[:, None, None, None]
    return images.mul(weight).add_(rest * other).clamp_(0, 255)


def _grey(images: torch.Tensor) -> torch.Tensor:
    """torchvision's ``rgb_to_grayscale`` on float tensors, ``N x 1 x S x S``."""
    red, green, blue = images.unbind(1)
    return (_LUMA[0] * red + _LUMA[1] * green + _LUMA[2] * blue)[:, None]


def _grey_mean(images: torch.Tensor) -> torch.Tensor:
    """The mean of each image's grey, ``N x 1 x 1 x 1`` float32.

    torchvision takes a float mean, whose rounding depends on the order of summation (and so, on a
    CPU, on how the threads split a batch). Here the grey is truncated to ``2**-16`` of a level (grey is
    below ``2**8``, so the scaled values are exact integers below ``2**24``) and summed as integers,
    which is exact in any order: the mean is below the float one by less than ``2**-16`` of a level.
    """
    fixed = (_grey(images) * 2.0**_MEAN_BITS).to(torch.int64).sum(dim=(1, 2, 3))
    count = images.shape[-1] * images.shape[-2] * 2.0**_MEAN_BITS
    return (fixed.to(torch.float64) / count).to(torch.float32)[:, None, None, None]


def _adjust_brightness(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    return _blend(images, 0.0, factors)


def _adjust_contrast(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    return _blend(images, _grey_mean(images), factors)


def _adjust_saturation(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    return _blend(images, _grey(images), factors)


def _adjust_hue(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """torchvision's ``adjust_hue`` on tensors: to HSV, the hue turned by ``factor`` (in turns), back to RGB.

    With ``v`` the largest channel, ``c`` the chroma (``v`` minus the smallest) and the turned hue ``h``
    in sixths of a turn, channel ``n`` (5 red, 3 green, 1 blue) is ``v - c * ramp((h + n) mod 6)`` with
    ``ramp(k) = clamp(min(k, 4 - k), 0, 1)``: the textbook HSV round trip, with ``v * s = c``. Every
    step is elementwise IEEE arithmetic, so no pixel depends on the batch.
    """
    red, green, blue = images.unbind(1)
    value = images.amax(dim=1)
    chroma = value - images.amin(dim=1)
    is_red, is_green = value == red, value == green
    # The hue in sixths of a turn, in [-1, 5): which channel is largest picks the sector.
    difference = torch.where(is_red, green - blue, torch.where(is_green, blue - red, red - green))
    sector = difference.div_(torch.where(chroma > 0, chroma, 1.0))  # where chroma is 0, so is the difference
    sector += torch.where(is_red, 0.0, torch.where(is_green, 2.0, 4.0))
    channels = []
    for n in (5.0, 3.0, 1.0):
        # The turn plus n, per image in [0, 6), so that k is in [-1, 11) and one wrap brings it to
        # [-1, 6), where the ramp is 0 below 0 as it is just below 6.
        offset = torch.remainder(6.0 * factors + n, 6.0).to(torch.float32)[:, None, None]
        k = sector + offset
        k = torch.where(k >= 6.0, k - 6.0, k)
        ramp = torch.minimum(k, 4.0 - k).clamp_(0, 1)
        channels.append(value - chroma * ramp)
    return torch.stack(channels, dim=1).clamp_(0, 255)


#: Each jitter op by its name in :data:`~single_image_dataset.params.JITTER_OPS`: ``op(images, factors)`` returns
#: the ``N x 3 x H x W`` float32 ``images`` (``0..255``) adjusted by one factor per image, clamped, not rounded.
ADJUST: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "brightness": _adjust_brightness,
    "contrast": _adjust_contrast,
    "saturation": _adjust_saturation,
    "hue": _adjust_hue,
}
