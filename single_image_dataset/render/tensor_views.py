"""The torch renderer's views: every view of a batch of rendered samples at once, on their device.

:meth:`TorchRenderer.render_views <single_image_dataset.render.tensor.TorchRenderer.render_views>` renders the
samples, then :func:`render_views` makes the views with batched tensor operations:

- **crop and resize:** Pillow's antialiased bilinear resize of each crop (``F.resized_crop`` on a PIL image) as two
  matrix products per sample, ``W_y @ sample @ W_x^T``, with each sample's weight matrices built on the device:
  Pillow's triangle filter scaled to the crop's reduction, its weights normalised and rounded to 22 bits as
  Pillow rounds them, zero outside the crop. The products are taken in float64, where every sum of a level times
  a 22-bit weight is exact in any order, and each pass is rounded to levels as Pillow's is, in Pillow's order of
  the passes (:func:`~single_image_dataset.render.functional.pil_vertical_first`): the resize is Pillow's, byte for
  byte, and no pixel depends on the batch, on any device;
- **flip:** the rows of ``W_x`` reversed;
- **colour jitter:** the renderer's own (:func:`~single_image_dataset.render.tensor_jitter.adjust_jitter`: torchvision's
  tensor semantics), rounded to levels;
- **grayscale:** PIL's integer luma, to three channels;
- **blur:** torchvision's Gaussian kernel for each sample's sigma
  (:func:`~single_image_dataset.render.functional.gaussian_kernels`), reflect padding, along the rows then down the
  columns as multiply-adds of shifted images in float32, rounded half to even;
- **solarize:** levels of 128 and above inverted.

Every operation is a matrix product of exact sums, elementwise, or per sample, so a view is the same bytes
whatever the batch. Only the jitter departs from the oracle's PIL arithmetic, as the samples' does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..views.params import ViewParamsBatch
from .functional import SOLARIZE_THRESHOLD, gaussian_kernels, pil_vertical_first
from .tensor_jitter import adjust_jitter, jitter_groups
from .upload import upload

__all__ = ["render_views", "resize_weights"]

# Pillow's weights are fixed point with this many fraction bits.
_PRECISION_BITS = 22
# A batch is made in slices of at most about this many float64 values of the resize: it bounds the working
# memory (8 bytes each) and changes no pixel, since samples never interact.
_SLICE_VALUES = 2**25


@torch.no_grad()
def render_views(samples: torch.Tensor, views: Sequence[ViewParamsBatch], outs: Sequence[torch.Tensor]) -> None:
    """Write view ``v`` of sample ``k`` into ``outs[v][k]``.

    Args:
        samples: the rendered samples, ``uint8`` ``N x 3 x S x S``.
        views: one batch of ``N`` rows per view, crops inside the samples.
        outs: one ``uint8`` ``N x 3 x s_v x s_v`` tensor per view, on the samples' device.
    """
    side = samples.shape[-1]
    for view, out in zip(views, outs, strict=True):
        per_sample = 3 * side * side + 3 * side * view.size + 2 * side * view.size + 3 * view.size**2
        step = max(1, _SLICE_VALUES // per_sample)
        for start in range(0, len(view), step):
            rows = slice(start, start + step)
            out[rows].copy_(_view(samples[rows], view[rows]))


def _view(samples: torch.Tensor, view: ViewParamsBatch) -> torch.Tensor:
    """One view of each sample, as float32 levels ``n x 3 x s x s``."""
    device, size = samples.device, view.size
    # Everything the view needs from the CPU in two transfers: a table (the crop, the jitter factors, the blur's
    # sigma) and the rows of each step.
    down_first = pil_vertical_first(view.crop[:, 2], view.crop[:, 3], size)
    blur = np.flatnonzero(~np.isnan(view.blur_sigma)) if view.blur_kernel > 1 else np.empty(0, dtype=np.int64)
    groups = jitter_groups(view)
    table = np.concatenate([view.crop, view.jitter_factors, view.blur_sigma[:, None]], axis=1)
    steps = [view.hflip, view.grayscale, view.solarize, ~down_first, down_first]
    table, flip, gray, solarize, across_first, down_first_rows, blur_rows, *group_rows = upload(
        table, [*map(np.flatnonzero, steps), blur, *(rows for _, rows in groups)], device
    )
    top, left, height, width = table[:, :4].unbind(1)
    across = resize_weights(left, width, size, samples.shape[-1], float(view.crop[:, 3].max()))
    down = resize_weights(top, height, size, samples.shape[-2], float(view.crop[:, 2].max()))
    across[flip] = across[flip].flip(1)
    images = _resize(samples.to(torch.float64), down, across, (across_first, down_first_rows)).to(torch.float32)
    if view.jitter_on.any():
        images = _round_half_up(adjust_jitter(images, table[:, 4:8], [op for op, _ in groups], group_rows))
    if len(gray):
        levels = images.index_select(0, gray).to(torch.int32)
        luma = (levels[:, 0] * 19595 + levels[:, 1] * 38470 + levels[:, 2] * 7471 + 32768) >> 16
        images.index_copy_(0, gray, luma[:, None].expand(-1, 3, -1, -1).to(torch.float32))
    if len(blur):
        kernels = gaussian_kernels(table[:, 8].index_select(0, blur_rows), view.blur_kernel, device)
        images.index_copy_(0, blur_rows, _blur(images.index_select(0, blur_rows), kernels))
    if len(solarize):
        levels = images.index_select(0, solarize)
        images.index_copy_(0, solarize, torch.where(levels >= SOLARIZE_THRESHOLD, 255.0 - levels, levels))
    return images


def resize_weights(
    start: torch.Tensor, length: torch.Tensor, size: int, side: int, longest: float | None = None
) -> torch.Tensor:
    """Pillow's weights of the antialiased bilinear resize of ``[start, start + length)`` of each of ``n`` rows of
    ``side`` pixels onto ``size`` pixels, as a float64 matrix ``n x size x side`` per row.

    Pillow's ``precompute_coeffs`` and ``normalize_coeffs_8bpc``, with the same float64 operations in the same
    order (each output's weights summed tap by tap), so each weight is Pillow's 22-bit fixed-point one, exactly, as
    a float. ``start`` and ``length`` are whole numbers of pixels as float64 tensors; ``longest``, where given, is
    ``length``'s largest value, known on the CPU (else it is read back from the device).

    Example:
        >>> w = resize_weights(torch.tensor([1.0]), torch.tensor([4.0]), 2, 6)  # pixels 1-4 of 6 onto 2
        >>> (w[0] * 2**22).tolist()
        [[0.0, 1797559.0, 1797559.0, 599186.0, 0.0, 0.0], [0.0, 0.0, 599186.0, 1797559.0, 1797559.0, 0.0]]
    """
    device = start.device
    scale = (length / size)[:, None]
    filterscale = scale.clamp(min=1.0)
    support = filterscale  # the triangle's support is 1
    centre = (torch.arange(size, dtype=torch.float64, device=device) + 0.5) * scale
    first = torch.trunc(centre - support + 0.5).clamp(min=0.0)
    count = torch.minimum(torch.trunc(centre + support + 0.5), length[:, None]) - first
    if longest is None:
        longest = float(length.max())
    taps = math.ceil(max(longest / size, 1.0)) * 2 + 1  # Pillow's ksize
    pixel = first[..., None] + torch.arange(taps, dtype=torch.float64, device=device)
    x = ((pixel - centre[..., None]) + 0.5) * (1.0 / filterscale)[..., None]
    weight = torch.where(torch.arange(taps, device=device) < count[..., None], (1.0 - x.abs()).clamp(min=0.0), 0.0)
    total = torch.zeros_like(centre)
    for t in range(taps):  # in Pillow's order
        total = total + weight[..., t]
    weight = torch.where(total[..., None] != 0, weight / total[..., None], weight)
    fixed = torch.where(weight < 0, torch.trunc(weight * 2.0**_PRECISION_BITS - 0.5),
                        torch.trunc(weight * 2.0**_PRECISION_BITS + 0.5))
    column = (pixel + start[:, None, None]).clamp(max=side - 1).to(torch.int64)
    matrix = torch.zeros((len(start), size, side), dtype=torch.float64, device=device)
    return matrix.scatter_add_(2, column, fixed * 2.0**-_PRECISION_BITS)


def _resize(
    images: torch.Tensor, down: torch.Tensor, across: torch.Tensor, orders: tuple[torch.Tensor, torch.Tensor]
) -> torch.Tensor:
    """``down @ image @ across^T`` per sample, each product rounded to levels, in Pillow's order of the passes:
    ``orders`` holds the rows resized along the rows first, then those resized down the columns first."""
    out = torch.empty((len(images), 3, down.shape[1], across.shape[1]), dtype=torch.float64, device=images.device)
    for order, index in enumerate(orders):
        if len(index) == 0:
            continue
        image = images.index_select(0, index)
        d, a = down.index_select(0, index)[:, None], across.index_select(0, index).transpose(1, 2)[:, None]
        if order:
            resized = _round_half_up(_round_half_up(d @ image) @ a)
        else:
            resized = _round_half_up(d @ _round_half_up(image @ a))
        out.index_copy_(0, index, resized)
    return out


def _blur(images: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """torchvision's ``gaussian_blur`` of each image with its own symmetric kernel (a row of ``kernels``), separably:
    reflect padding, along the rows then down the columns, rounded half to even."""
    taps = kernels.shape[1]
    half = taps // 2
    k = kernels.T[:, :, None, None, None]  # k[t]: tap t of each image's kernel, n x 1 x 1 x 1
    padded = F.pad(images, (half, half, half, half), mode="reflect")
    size = images.shape[-1]
    rows = k[half] * padded[..., half : half + size]
    for t in range(half):
        rows = rows + k[t] * (padded[..., t : t + size] + padded[..., taps - 1 - t : taps - 1 - t + size])
    out = k[half] * rows[..., half : half + size, :]
    for t in range(half):
        out = out + k[t] * (rows[..., t : t + size, :] + rows[..., taps - 1 - t : taps - 1 - t + size, :])
    return out.round_().clamp_(0, 255)


def _round_half_up(values: torch.Tensor) -> torch.Tensor:
    """To the nearest level, halves up, within ``[0, 255]``: Pillow's rounding of a resize and the renderer's of
    its jitter."""
    return values.clamp(0, 255).add_(0.5).floor_()
