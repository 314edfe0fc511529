"""A grid of the first samples, to judge the augmentation strength before training or exporting."""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch
import torchvision.transforms.functional as F
from PIL import Image
from torchvision.utils import make_grid

from ._files import write_atomic
from .dataset import SingleImageDataset

__all__ = [
    "PREVIEW_COUNT",
    "PREVIEW_NROW",
    "PREVIEW_TILE_SIZE",
    "PREVIEW_VIEW_ROWS",
    "preview_grid",
    "save_png",
    "save_preview",
]

#: Samples in a preview grid, and tiles per row, by default.
PREVIEW_COUNT = 64
PREVIEW_NROW = 8
#: Samples (one per row, each followed by its views) in the preview of a dataset with views, by default.
PREVIEW_VIEW_ROWS = 8
#: Largest side of a tile in pixels: the 8x8 grid of the paper's 256 px samples becomes 795 px square, a PNG of
#: under 1 MB for a glance (2075 px and several MB at full size).
PREVIEW_TILE_SIZE = 96


def preview_grid(
    dataset: SingleImageDataset,
    count: int | None = None,
    nrow: int = PREVIEW_NROW,
    padding: int = 3,
    tile_size: int | None = PREVIEW_TILE_SIZE,
) -> Image.Image:
    """Samples ``0 .. count - 1`` (fewer if the dataset is shorter) tiled ``nrow`` per row.

    The padding is black and 3 px wide, as in the original script's debug grid. Samples larger than
    ``tile_size`` are shrunk to it (bicubic, antialiased); ``None`` keeps them at full size.

    A dataset with views shows each sample next to its views: one row per sample (``nrow`` does not apply),
    the views shrunk by the sample's factor, so that their sizes compare, and centred in tiles of the
    sample's size.

    Args:
        dataset: the dataset.
        count: samples to show; :data:`PREVIEW_COUNT` by default, :data:`PREVIEW_VIEW_ROWS` with views.
        nrow: tiles per row (without views).
        padding: black pixels between tiles.
        tile_size: the largest side of a sample's tile, or ``None`` for full size.

    Example:
        >>> ds = SingleImageDataset(num_imgs=100, img_size=32)
        >>> preview_grid(ds).size
        (283, 283)
        >>> preview_grid(SingleImageDataset(num_imgs=8, img_size=256)).size  # 256 px samples shrunk to 96 px
        (795, 102)
        >>> preview_grid(SingleImageDataset(num_imgs=8, img_size=64, views="byol"), count=2).size  # sample + 2 views
        (204, 137)
    """
    if count is None:
        count = PREVIEW_COUNT if dataset.views is None else PREVIEW_VIEW_ROWS
    if count < 1 or nrow < 1 or padding < 0:
        raise ValueError(f"count and nrow should be positive and padding non-negative, got {count}, {nrow}, {padding}")
    if tile_size is not None and tile_size < 1:
        raise ValueError(f"tile_size should be a positive number of pixels, or None for full size, got {tile_size}")
    if dataset.views is not None:
        return _view_grid(dataset, min(count, len(dataset)), padding, tile_size)
    samples = (dataset.render(dataset.params(i)) for i in range(min(count, len(dataset))))
    tiles = [F.pil_to_tensor(_shrink(sample, tile_size)) for sample in samples]
    return F.to_pil_image(make_grid(tiles, nrow=nrow, padding=padding, pad_value=0))


def save_preview(
    dataset: SingleImageDataset,
    path: str | os.PathLike,
    count: int | None = None,
    nrow: int = PREVIEW_NROW,
    padding: int = 3,
    tile_size: int | None = PREVIEW_TILE_SIZE,
) -> Path:
    """Write :func:`preview_grid` as a PNG at ``path`` (creating its folder) and return the path.

    The file is replaced atomically (see :func:`save_png`).
    """
    return save_png(preview_grid(dataset, count, nrow, padding, tile_size), path)


def save_png(image: Image.Image, path: str | os.PathLike) -> Path:
    """Write ``image`` as a PNG at ``path`` (creating its folder) and return the path.

    The file is replaced atomically, through a temporary file renamed into place: a failed write, a
    full disk say, leaves the previous file as it was.

    Raises:
        OSError: the folder cannot be created or the write failed; the message names the path.
    """
    path = Path(path)
    png = io.BytesIO()
    image.save(png, format="PNG")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise type(exc)(exc.errno, f"cannot write the preview {path}: {exc.strerror}") from None
    write_atomic(path, png.getvalue())
    return path


def _view_grid(dataset: SingleImageDataset, count: int, padding: int, tile_size: int | None) -> Image.Image:
    """Samples ``0 .. count - 1``, one per row, each followed by its views."""
    indices = list(range(count))
    params = dataset.params_batch(indices)
    samples = dataset.render_batch(params).cpu()
    views = [view.cpu() for view in dataset.render_views(params, dataset.view_params_batch(indices))]
    side = params.image_size
    scale = 1.0 if tile_size is None else min(1.0, tile_size / side)
    cell = round(side * scale)
    tiles = [_in_cell(image, scale, cell) for k in indices for image in [samples[k], *(view[k] for view in views)]]
    return F.to_pil_image(make_grid(tiles, nrow=1 + len(views), padding=padding, pad_value=0))


def _in_cell(image: torch.Tensor, scale: float, cell: int) -> torch.Tensor:
    """``image`` (``uint8`` CHW) scaled by ``scale`` (bicubic) and centred on a black ``cell`` x ``cell`` tile."""
    tile = F.to_pil_image(image)
    if scale < 1:
        side = max(1, round(tile.width * scale))
        tile = tile.resize((side, side), Image.Resampling.BICUBIC)
    canvas = Image.new("RGB", (cell, cell))
    canvas.paste(tile, ((cell - tile.width) // 2, (cell - tile.height) // 2))
    return F.pil_to_tensor(canvas)


def _shrink(tile: Image.Image, tile_size: int | None) -> Image.Image:
    if tile_size is None or max(tile.size) <= tile_size:
        return tile
    scale = tile_size / max(tile.size)
    return tile.resize((round(tile.width * scale), round(tile.height * scale)), Image.Resampling.BICUBIC)
