"""The torch renderer: whole batches in a handful of tensor operations, on the CPU or on a GPU.

It renders the fast renderer's recipe (the reference's resize of the crop box from a level of an image
pyramid, then its bilinear warp with its black fill, then the colour jitter in each sample's order) with
torch operations over a whole :class:`~single_image_dataset.params.ParamsBatch`, on any torch device,
so a training GPU can render its own batches. (The module is not called ``torch``, which would shadow
the package here.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image

from .. import geometry
from ..params import ParamsBatch, SampleParams
from ..views.params import ViewParamsBatch
from .base import Renderer, check_device, register_renderer
from .pyramid import build_pyramid
from .tensor_jitter import adjust_jitter, jitter_groups
from .tensor_views import render_views
from .upload import upload

__all__ = ["TorchRenderer"]

# A larger batch is rendered in slices of at most this many pixels of the resize's first pass (a
# bound on it: the resized crop's side times the columns of its box): it bounds the working memory
# (of the order of 50 bytes per such pixel, the level's windows included) and changes no pixel, since
# samples never interact.
_SLICE_PIXELS = 2**22
# PIL's filters by index into INTERPOLATIONS (bilinear, bicubic, lanczos): their support.
_SUPPORT = (1.0, 2.0, 3.0)
# The resize reads a square window of its level whose side is a multiple of this many pixels (_windows).
_WINDOW_STEP = 32
# Columns of the per-sample float64 table sent to the device: the map to the resized crop, the box in
# the level's pixels with the first column and row the resize may read, the level's place in the
# pyramid (offset, height, width), the filter and its support, and the jitter factors.
_MAP, _BOX, _FIRST, _LEVEL, _FILTER, _FILTER_SUPPORT, _FACTORS = (
    slice(0, 6), slice(6, 10), slice(10, 12), slice(12, 15), 15, 16, slice(17, 21)
)


@register_renderer("torch")
class TorchRenderer(Renderer):
    """Renders whole batches with torch operations on ``device``: the fast renderer's recipe, batched.

    For a batch it computes every sample's map and box on the CPU in float64
    (:func:`~single_image_dataset.geometry.batch_output_to_resized`, bit for bit the per-sample maps), sends them and
    the jitter factors to the device as one small table and then renders there:

    - **resize:** the reference's resize of the crop box to the resized crop, from the level of the
      fast renderer's pyramid (:func:`~single_image_dataset.render.pyramid.build_pyramid`, uploaded
      once as float32) that :func:`~single_image_dataset.geometry.pyramid_level` picks: PIL's filter
      weights, computed on the device in float64, cut at the box rounded out to whole pixels, applied
      to a square window of the level around the box as two matrix products per sample (down the
      columns, then along the rows; batched over the samples whose windows have the same side, a
      multiple of 32 pixels), then clamped and rounded to levels as PIL's bytes are;
    - **warp:** one ``grid_sample`` (bilinear) of the resized crops, each behind a replicated border of
      one pixel as PIL repeats its edge; the vertical flip is part of the map;
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
    not bit-exact with the reference (the resize reads a pyramid level, in float32, and the jitter
    follows torchvision's float tensor ops, not PIL's 8-bit ones); the tests hold it to the fast
    renderer's fidelity bounds without the jitter, and to 30 dB with it.

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
        self._pyramid, self._levels = _upload_pyramid(image, self.device)
        self._padding = self._pyramid.shape[1] - int(self._levels[-1, 0] + self._levels[-1, 1] * self._levels[-1, 2])

    def __getstate__(self) -> dict[str, Any]:
        # The pyramid lives on the device and is quick to rebuild: pickle the image and the device only.
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
        # The first pass reads at most the box's columns at its level: below 1.9 sides (pyramid_level), and
        # the source's width.
        side = batch.resize
        step = max(1, _SLICE_PIXELS // (side * min(2 * side + 16, int(self._levels[0, 2]) + 1)))
        for start in range(0, len(batch), step):
            self._render(batch[start : start + step], out[start : start + step])

    def _render(self, batch: ParamsBatch, out: torch.Tensor) -> None:
        """Render ``batch`` into ``out``: the maps, boxes and row groups on the CPU, the pixels on the device."""
        to_resized = geometry.batch_output_to_resized(batch)
        left, top, right, bottom = geometry.source_box(batch)
        level = geometry.pyramid_level(right - left, bottom - top, batch.resize, len(self._levels))
        reduction = np.ldexp(1.0, -level)  # 0.5 ** level, exactly, as the fast renderer's
        box = np.stack([left, top, right, bottom], axis=1) * reduction[:, None]
        first = np.floor(box[:, :2])
        table = np.concatenate(
            [np.stack(to_resized, axis=1), box, first, self._levels[level], batch.interpolation[:, None],
             np.asarray(_SUPPORT)[batch.interpolation][:, None], batch.jitter_factors], axis=1,
        )
        fill = np.flatnonzero(~np.asarray(geometry.covers_output(to_resized, batch.output_size, batch.resize)))
        groups = jitter_groups(batch)
        windows = _windows(box, self._levels[level])
        sizes = np.unique(windows)
        table_on_device, fill_rows, *rows_on_device = upload(
            table, [fill] + [np.flatnonzero(windows == size) for size in sizes] + [rows for _, rows in groups],
            self.device,
        )
        window_rows, group_rows = rows_on_device[: len(sizes)], rows_on_device[len(sizes) :]
        if sizes[-1] > self._padding:  # the windows' runs past the last level need as many pixels of padding
            self._pyramid = F.pad(self._pyramid, (0, int(sizes[-1]) - self._padding))
            self._padding = int(sizes[-1])
        taps = _taps(box, batch.resize, batch.interpolation)
        used = tuple(np.unique(batch.interpolation).tolist())  # the filters to evaluate, known here on the CPU
        images = torch.empty((len(batch), 3, batch.resize, batch.resize), dtype=torch.float32, device=self.device)
        for size, rows in zip(sizes.tolist(), window_rows, strict=True):
            images.index_copy_(0, rows, _resize(self._pyramid, table_on_device.index_select(0, rows), batch.resize,
                                                size, taps, used))
        coords = torch.arange(batch.output_size, dtype=torch.float64, device=self.device) + 0.5
        # From the resized crop to grid_sample's normalised coordinates of the crop behind its border of one pixel.
        scale = 2.0 / (batch.resize + 2)
        maps = table_on_device[:, _MAP]
        to_grid = torch.cat([maps[:, 0:3] * scale, maps[:, 3:6] * scale], dim=1)
        to_grid[:, 2] += scale - 1.0
        to_grid[:, 5] += scale - 1.0
        images = F.grid_sample(
            F.pad(images, (1, 1, 1, 1), mode="replicate"), _grid(to_grid, coords), mode="bilinear",
            padding_mode="zeros", align_corners=False,
        )
        # Rows are gathered and scattered back with index_select and index_copy_ (unique indices).
        if len(fill):
            inside = _footprint(maps.index_select(0, fill_rows), coords, float(batch.resize))
            images.index_copy_(0, fill_rows, images.index_select(0, fill_rows) * inside)
        if batch.debug_size is not None:
            side = (batch.debug_size, batch.debug_size)
            images = F.interpolate(images, size=side, mode="bilinear", align_corners=False, antialias=True)
        adjust_jitter(images, table_on_device[:, _FACTORS], [op for op, _ in groups], group_rows)
        # Clamped, then rounded half up: the conversion to uint8 truncates.
        out.copy_(images.clamp_(0, 255).add_(0.5))

    def render_views(self, batch: ParamsBatch, views: Sequence[ViewParamsBatch], outs: Sequence[torch.Tensor]) -> None:
        """Every view of the batch on :attr:`device`: the samples as :meth:`render_batch` renders them, then each
        view of all of them at once (:func:`~single_image_dataset.render.tensor_views.render_views`)."""
        side = batch.image_size
        samples = torch.empty((len(batch), 3, side, side), dtype=torch.uint8, device=self.device)
        self.render_batch(batch, samples)
        render_views(samples, views, outs)


def _upload_pyramid(image: Image.Image, device: torch.device) -> tuple[torch.Tensor, np.ndarray]:
    """The fast renderer's pyramid on ``device``: every level's pixels in one float32 tensor ``3 x P``.

    Returns the tensor and an ``L x 3`` float64 array of each level's offset in it, height and width. The
    tensor ends in zeros as long as level 0's rows, so that a run of pixels as long as a row fits from
    any pixel.
    """
    levels = build_pyramid(image)
    planes = [torch.from_numpy(np.array(level[..., :3])).reshape(-1, 3).T for level in levels]
    shapes = np.array([level.shape[:2] for level in levels], dtype=np.float64)
    offsets = np.concatenate([[0.0], np.cumsum(shapes[:, 0] * shapes[:, 1])[:-1]])
    planes.append(torch.zeros((3, levels[0].shape[1] + 1), dtype=torch.uint8))
    pyramid = torch.cat(planes, dim=1).to(device=device, dtype=torch.float32)
    return pyramid, np.concatenate([offsets[:, None], shapes], axis=1)


def _taps(box: np.ndarray, side: int, interpolation: np.ndarray) -> tuple[int, int]:
    """The most taps of an output along x and along y in a batch's resizes (PIL's bound, ``ceil(support) * 2 + 1``)."""
    support = np.asarray(_SUPPORT)[interpolation]
    x, y = (int(np.max(np.ceil(support * np.maximum((box[:, 2 + a] - box[:, a]) / side, 1.0)) * 2 + 1)) for a in (0, 1))
    return x, y


def _windows(box: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """The side of the square window of its level that each sample's resize reads: its box rounded out,
    rounded up to a multiple of :data:`_WINDOW_STEP` pixels.

    A sample's window depends on its own box only, so that the matrices of its resize have the same
    shape in any batch (and its sums the same order), while the samples of a batch that share a
    window share the matrix products.
    """
    extent = np.minimum(np.ceil(box[:, 2:]), levels[:, [2, 1]]) - np.floor(box[:, :2])
    return (_WINDOW_STEP * np.ceil(extent.max(axis=1) / _WINDOW_STEP)).astype(np.int64)


def _resize(
    pyramid: torch.Tensor, table: torch.Tensor, side: int, window: int, taps: tuple[int, int], used: tuple[int, ...]
) -> torch.Tensor:
    """The resized crops ``N x 3 x side x side``: PIL's resize of each sample's box of its pyramid level.

    Each sample's filter weights, as a ``side x window`` matrix per axis (PIL's taps of its box, ``taps``
    at most along x and along y, in place), multiply the ``window x window`` pixels of its level from
    the box's first row and column (rows past the level repeat its last one, columns past it run on
    into the pyramid's next pixels: they weigh 0), down the columns then along the rows, in float32,
    as batched matrix products; then clamped and rounded to levels. ``used``: the filters some sample uses.
    """
    offset, height, width = table[:, _LEVEL].unbind(1)
    first_x, first_y = table[:, _FIRST].unbind(1)
    filters = (table[:, _FILTER], table[:, _FILTER_SUPPORT], used)
    box = table[:, _BOX]
    weights_y = _weights(box[:, 1], box[:, 3], first_y, torch.minimum(torch.ceil(box[:, 3]), height), side, filters,
                         taps[1], window)
    weights_x = _weights(box[:, 0], box[:, 2], first_x, torch.minimum(torch.ceil(box[:, 2]), width), side, filters,
                         taps[0], window)
    # Row r of a sample's window: a run of `window` pixels of the pyramid.
    rows = torch.minimum(first_y[:, None] + torch.arange(window, dtype=torch.float64, device=table.device),
                         height[:, None] - 1)
    starts = (offset[:, None] + rows * width[:, None] + first_x[:, None]).to(torch.int64)
    index = (starts[:, :, None] + torch.arange(window, device=table.device)).flatten()
    pixels = pyramid.index_select(1, index).view(3, len(table), window, window)
    down = torch.matmul(weights_y, pixels)  # 3 x N x side x window
    across = torch.matmul(down, weights_x.transpose(1, 2))  # 3 x N x side x side
    return across.clamp_(0, 255).add_(0.5).floor_().transpose(0, 1)


def _weights(
    b0: torch.Tensor, b1: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, side: int,
    filters: tuple[torch.Tensor, torch.Tensor, tuple[int, ...]], count: int, window: int,
) -> torch.Tensor:
    """PIL's weights of the resize of ``[b0, b1)`` onto ``side`` pixels, reading pixels ``[lo, hi)`` only.

    ``filters``: each sample's filter and its support (on the device), and the filters some sample uses (on
    the CPU, so that nothing here waits for the device).

    Returns, per sample, the ``side x window`` float32 matrix whose row ``q`` holds output ``q``'s
    weights (normalised, from at most ``count`` taps) on pixels ``lo .. lo + window - 1``.
    """
    scale = ((b1 - b0) / side)[:, None, None]
    filterscale = scale.clamp(min=1.0)
    chosen, support, used = filters
    support = support[:, None, None] * filterscale
    q = torch.arange(side, dtype=torch.float64, device=b0.device)[None, :, None]
    center = b0[:, None, None] + (q + 0.5) * scale
    start = torch.maximum(torch.trunc(center - support + 0.5), lo[:, None, None])
    stop = torch.minimum(torch.trunc(center + support + 0.5), hi[:, None, None])
    pixel = start + torch.arange(count, dtype=torch.float64, device=b0.device)
    x = (pixel - center + 0.5) / filterscale
    weight = torch.where(pixel < stop, _filter(chosen, used, x), 0.0)
    total = weight.sum(dim=2, keepdim=True)
    weight = torch.where(total != 0, weight / torch.where(total != 0, total, 1.0), 0.0).to(torch.float32)
    # Into place; taps past a sample's own (clamped onto its last pixel) add 0, exactly.
    place = (torch.minimum(pixel, hi[:, None, None] - 1) - lo[:, None, None]).to(torch.int64)
    dense = torch.zeros((len(b0), side, window), dtype=torch.float32, device=b0.device)
    return dense.scatter_add_(2, place, weight)


def _filter(filters: torch.Tensor, used: tuple[int, ...], x: torch.Tensor) -> torch.Tensor:
    """PIL's bilinear (0), bicubic (1, a = -0.5) and Lanczos (2, 3 lobes) filters, per sample (``filters``, ``N``).

    Only the filters in ``used`` are evaluated (elementwise: the same numbers as evaluating all three).
    """
    a = x.abs()
    chosen = filters.to(torch.int64)[:, None, None].expand_as(x)
    weight = torch.zeros_like(x)
    for index in used:
        if index == 0:
            value = (1.0 - a).clamp(min=0.0)
        elif index == 1:
            value = torch.where(a < 1.0, (1.5 * a - 2.5) * a * a + 1.0,
                                torch.where(a < 2.0, (((a - 5.0) * a + 8.0) * a - 4.0) * -0.5, 0.0))
        else:
            value = torch.where(a < 3.0, torch.sinc(x) * torch.sinc(x / 3.0), 0.0)
        weight = torch.where(chosen == index, value, weight)
    return weight


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
