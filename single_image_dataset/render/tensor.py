"""The torch renderer: whole batches in a handful of tensor operations, on the CPU or on a GPU.

It renders the fast renderer's recipe (one bilinear warp per sample from an area-averaged pyramid, the
reference's black fill, the colour jitter in each sample's order) with torch operations over a whole
:class:`~single_image_dataset.params.ParamsBatch`, on any torch device, so a training GPU can render
its own batches. (The module is not called ``torch``, which would shadow the package here.)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image

from .. import geometry
from ..params import JITTER_OPS, ParamsBatch, SampleParams
from .base import Renderer, check_device, register_renderer

__all__ = ["TorchRenderer"]

# A larger batch is rendered in slices of at most this many output pixels: it bounds the working
# memory (of the order of 100 bytes per output pixel) and changes no pixel, since samples never interact.
_SLICE_PIXELS = 2**25
# The contrast's grey mean is summed in fixed point with this many fraction bits (see _grey_mean).
_MEAN_BITS = 16
# torchvision's rgb_to_grayscale weights on tensors (ITU-R 601-2).
_LUMA = (0.2989, 0.587, 0.114)
# Columns of the per-sample float64 table sent to the device: the map to the atlas's normalised
# coordinates, the map to the resized crop (the black fill's footprint) and the jitter factors.
_GRID, _FOOTPRINT, _FACTORS = slice(0, 6), slice(6, 12), slice(12, 16)


@register_renderer("torch")
class TorchRenderer(Renderer):
    """Renders whole batches with torch operations on ``device``: the fast renderer's recipe, batched.

    For a batch it computes every sample's output-to-source map on the CPU in float64
    (:func:`~single_image_dataset.geometry.batch_maps`, bit for bit the per-sample maps), sends the
    maps and jitter factors to the device as one small table and then renders there:

    - **warp:** one ``grid_sample`` (bilinear) of all samples from an atlas that holds every level of
      an area-averaged pyramid of the source (float32, built once on the device), each level behind a
      replicated border of one pixel, as the fast renderer's levels. Each sample reads the level that
      :func:`~single_image_dataset.geometry.pyramid_level` picks for it, as in the fast renderer; the
      vertical flip is part of the map;
    - **black fill:** a pixel whose centre maps outside the resized crop is 0, decided with the fast
      renderer's test in float64 (same operations, same order), for the samples whose corners show
      that some pixel may be outside (:func:`~single_image_dataset.geometry.covers_output`);
    - **debug resize:** ``interpolate`` (bilinear, antialiased), as PIL's resize of the reference;
    - **colour jitter:** each sample's ops in its own sampled order with torchvision's tensor semantics
      (``adjust_brightness``, ``adjust_contrast`` against the mean of the greyscale image,
      ``adjust_saturation``, ``adjust_hue`` through HSV with the hue shifted by the factor), each op
      applied at once to the rows that have it at that position;
    - **rounding:** all of this in float32 on the ``0..255`` scale, clamped to ``[0, 255]`` and rounded
      to the nearest level (halves up) once, at the end.

    A sample's pixels do not depend on the batch it is rendered in: every operation is elementwise or
    per sample, and the one reduction, the contrast's grey mean, is summed in fixed point (exactly, so
    in any order). On the CPU they are bit-identical for any batch size and composition; on a GPU,
    across batch sizes on the same GPU with the same library versions. Like the fast renderer it is
    not bit-exact with the reference (one bilinear pass replaces the resize and the warp, and the
    jitter follows torchvision's float tensor ops, not PIL's 8-bit ones); the tests hold it to a mean
    PSNR of at least 35 dB against the reference, 30 dB with the jitter.

    Args:
        image: the RGB source image.
        device: where to keep the pyramid and render, e.g. ``"cpu"`` or ``"cuda"``.

    Raises:
        ValueError: ``device`` is unknown or not available on this machine.

    Example:
        >>> from single_image_dataset import AugmentConfig, sample_params_batch
        >>> from single_image_dataset.source import load_image
        >>> image = load_image(None)
        >>> renderer = TorchRenderer(image)
        >>> batch = sample_params_batch(AugmentConfig(img_size=32), image.size, range(4))
        >>> out = torch.empty((4, 3, 32, 32), dtype=torch.uint8)
        >>> renderer.render_batch(batch, out)
        >>> torch.equal(out[2], TF.pil_to_tensor(renderer.render(batch[2])))
        True
    """

    cpu_only = False

    def __init__(self, image: Image.Image, device: torch.device | str = "cpu") -> None:
        super().__init__(image)
        self.device = check_device(device)
        self._atlas, self._origins = _build_atlas(image, self.device)

    def __getstate__(self) -> dict[str, Any]:
        # The atlas lives on the device and is quick to rebuild: pickle the image and the device only.
        return {"image": self.image, "device": str(self.device)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["image"], state["device"])

    def identity(self) -> dict[str, str]:
        """The backend name, the device type and torch's version (and the GPU's name on CUDA)."""
        identity = {**super().identity(), "device": self.device.type, "torch": torch.__version__}
        if self.device.type == "cuda":
            identity["gpu"] = torch.cuda.get_device_name(self.device)
        return identity

    def render(self, params: SampleParams) -> Image.Image:
        """The sample's image: :meth:`render_batch` of a batch of one, as a PIL image."""
        batch = ParamsBatch.from_list([params])
        out = torch.empty((1, 3, batch.image_size, batch.image_size), dtype=torch.uint8, device=self.device)
        self.render_batch(batch, out)
        return TF.to_pil_image(out[0].cpu())

    @torch.no_grad()
    def render_batch(self, batch: ParamsBatch, out: torch.Tensor) -> None:
        step = max(1, _SLICE_PIXELS // batch.output_size**2)
        for start in range(0, len(batch), step):
            self._render(batch[start : start + step], out[start : start + step])

    def _render(self, batch: ParamsBatch, out: torch.Tensor) -> None:
        """Render ``batch`` into ``out``: the maps and the row groups on the CPU, the pixels on the device."""
        to_resized, to_source = geometry.batch_maps(batch)
        level = np.asarray(geometry.pyramid_level(to_source, len(self._origins)), dtype=np.int64)
        height, width = self._atlas.shape[-2:]
        # From a level's pixels to the atlas's normalised coordinates ([-1, 1] across the atlas, as
        # grid_sample reads them with align_corners=False).
        level_scale = np.ldexp(1.0, -level)  # 0.5 ** level, exactly
        left, top = self._origins[level].T
        to_atlas = (level_scale * (2.0 / width), 0.0, left * (2.0 / width) - 1.0,
                    0.0, level_scale * (2.0 / height), top * (2.0 / height) - 1.0)
        to_grid = geometry.compose(to_atlas, to_source)
        table = np.stack(np.broadcast_arrays(*to_grid, *to_resized, *batch.jitter_factors.T), axis=1)
        fill = np.flatnonzero(~np.asarray(geometry.covers_output(to_resized, batch.output_size, batch.resize)))
        groups = _jitter_groups(batch)
        table_on_device, fill_rows, *group_rows = _upload(table, [fill] + [rows for _, rows in groups], self.device)

        coords = torch.arange(batch.output_size, dtype=torch.float64, device=self.device) + 0.5
        grid = _grid(table_on_device[:, _GRID], coords)
        n = len(batch)
        images = F.grid_sample(
            self._atlas.expand(n, -1, -1, -1), grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        # Rows are gathered and scattered back with index_select and index_copy_ (unique indices).
        if len(fill):
            inside = _footprint(table_on_device.index_select(0, fill_rows)[:, _FOOTPRINT], coords, float(batch.resize))
            images.index_copy_(0, fill_rows, images.index_select(0, fill_rows) * inside)
        if batch.debug_size is not None:
            side = (batch.debug_size, batch.debug_size)
            images = F.interpolate(images, size=side, mode="bilinear", align_corners=False, antialias=True)
        for (op, _), rows in zip(groups, group_rows, strict=True):
            factors = table_on_device[:, _FACTORS.start + op].index_select(0, rows)
            images.index_copy_(0, rows, _ADJUST[JITTER_OPS[op]](images.index_select(0, rows), factors))
        # Clamped, then rounded half up: the conversion to uint8 truncates.
        out.copy_(images.clamp_(0, 255).add_(0.5))


def _build_atlas(image: Image.Image, device: torch.device) -> tuple[torch.Tensor, np.ndarray]:
    """The source's pyramid as one float32 image ``1 x 3 x H x W`` on ``device``, and each level's place in it.

    Level ``k`` is the source reduced ``2**k`` times by 2x2 averaging, down to one pixel, an odd side
    first padded by repeating its last row or column (as the fast renderer's pyramid, whose levels
    OpenCV rounds to 8 bits where these stay float). Level 0 sits on the left, the others stacked in
    a column to its right; each is surrounded by a replicated border of one pixel, so bilinear
    sampling anywhere in a level reads only that level. Returns the atlas and an ``L x 2`` float64
    array of each level's top-left corner ``(x, y)`` in it (inside the border).
    """
    pixels = torch.from_numpy(np.array(image.convert("RGB"))).to(device)
    levels = [pixels.permute(2, 0, 1).to(torch.float32)]
    while max(levels[-1].shape[1:]) > 1:
        height, width = levels[-1].shape[1:]
        even = F.pad(levels[-1][None], (0, width % 2, 0, height % 2), mode="replicate")
        levels.append(F.avg_pool2d(even, 2)[0])
    height, width = levels[0].shape[1:]
    origins, top = [(1, 1)], 0
    for level in levels[1:]:
        origins.append((width + 3, top + 1))
        top += level.shape[1] + 2
    right = max((level.shape[2] + 2 for level in levels[1:]), default=0)
    atlas = torch.zeros((1, 3, max(height + 2, top), width + 2 + right), dtype=torch.float32, device=device)
    for level, (x, y) in zip(levels, origins, strict=True):
        h, w = level.shape[1:]
        atlas[0, :, y - 1 : y + h + 1, x - 1 : x + w + 1] = F.pad(level[None], (1, 1, 1, 1), mode="replicate")[0]
    return atlas, np.array(origins, dtype=np.float64)


def _jitter_groups(batch: ParamsBatch) -> list[tuple[int, np.ndarray]]:
    """The jitter as ``(op, rows)`` steps: for each position in the order, each op with the rows that
    apply it there (indices into :data:`JITTER_OPS`; rows without jitter have none)."""
    groups = []
    for position in range(batch.jitter_order.shape[1]):
        for op in range(len(JITTER_OPS)):
            rows = np.flatnonzero(batch.jitter_order[:, position] == op)
            if len(rows):
                groups.append((op, rows))
    return groups


def _upload(table: np.ndarray, indices: list[np.ndarray], device: torch.device) -> list[torch.Tensor]:
    """``table`` (float64) and each index array on ``device``, in two transfers.

    To a CUDA device they are copied from page-locked memory without waiting: the CPU goes on (to the
    next batch's parameters) while the GPU renders, where a plain copy would wait for the GPU's queue.
    """
    host = [torch.from_numpy(table), torch.from_numpy(np.concatenate(indices).astype(np.int64))]
    if device.type == "cuda":
        host = [tensor.pin_memory() for tensor in host]
    table_on_device, flat = (tensor.to(device, non_blocking=True) for tensor in host)
    return [table_on_device, *flat.split([len(rows) for rows in indices])]


def _grid(maps: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """``grid_sample``'s float32 grid ``N x S x S x 2`` of the ``N x 6`` float64 ``maps`` at output pixel centres.

    Each coordinate is a column term plus a row term, each computed in float64 and rounded to float32
    once, then added: elementwise, so a sample's grid does not depend on the batch.
    """
    n, size = len(maps), len(coords)
    grid = torch.empty((n, size, size, 2), dtype=torch.float32, device=maps.device)
    for axis, (a, b, c) in enumerate((maps[:, 0:3].unbind(1), maps[:, 3:6].unbind(1))):
        column = (a[:, None] * coords).to(torch.float32)
        row = (b[:, None] * coords + c[:, None]).to(torch.float32)
        torch.add(column[:, None, :], row[:, :, None], out=grid[..., axis])
    return grid


def _footprint(maps: torch.Tensor, coords: torch.Tensor, side: float) -> torch.Tensor:
    """Whether each output pixel centre maps inside the resized crop, ``N x 1 x S x S``.

    ``maps`` are the ``N x 6`` maps to the resized crop. The fast renderer's test exactly: each
    coordinate is ``a (x + 0.5) + b (y + 0.5) + k`` summed in this order in float64, and must lie in
    ``[0, side)``.
    """
    inside = None
    for a, b, k in (maps[:, 0:3].unbind(1), maps[:, 3:6].unbind(1)):
        position = ((a[:, None] * coords)[:, None, :] + (b[:, None] * coords)[:, :, None]) + k[:, None, None]
        holds = (position >= 0) & (position < side)
        inside = holds if inside is None else inside & holds
    return inside[:, None]


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


_ADJUST = {
    "brightness": _adjust_brightness,
    "contrast": _adjust_contrast,
    "saturation": _adjust_saturation,
    "hue": _adjust_hue,
}
