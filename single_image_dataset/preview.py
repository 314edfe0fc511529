"""A grid of the first samples, to judge the augmentation strength before training or exporting."""

from __future__ import annotations

import io
import os
from pathlib import Path

import torchvision.transforms.functional as F
from PIL import Image
from torchvision.utils import make_grid

from ._files import write_atomic
from .dataset import SingleImageDataset

__all__ = ["PREVIEW_COUNT", "PREVIEW_NROW", "PREVIEW_TILE_SIZE", "preview_grid", "save_png", "save_preview"]

#: Samples in a preview grid, and tiles per row, by default.
PREVIEW_COUNT = 64
PREVIEW_NROW = 8
#: Largest side of a tile in pixels: the 8x8 grid of the paper's 256 px samples becomes 795 px square, a PNG of
#: under 1 MB for a glance (2075 px and several MB at full size).
PREVIEW_TILE_SIZE = 96


def preview_grid(
    dataset: SingleImageDataset,
    count: int = PREVIEW_COUNT,
    nrow: int = PREVIEW_NROW,
    padding: int = 3,
    tile_size: int | None = PREVIEW_TILE_SIZE,
) -> Image.Image:
    """Samples ``0 .. count - 1`` (fewer if the dataset is shorter) tiled ``nrow`` per row.

    The padding is black and 3 px wide, as in the original script's debug grid. Samples larger than
    ``tile_size`` are shrunk to it (bicubic, antialiased); ``None`` keeps them at full size.

    Example:
        >>> ds = SingleImageDataset(num_imgs=100, img_size=32)
        >>> preview_grid(ds).size
        (283, 283)
        >>> preview_grid(SingleImageDataset(num_imgs=8, img_size=256)).size  # 256 px samples shrunk to 96 px
        (795, 102)
    """
    if count < 1 or nrow < 1 or padding < 0:
        raise ValueError(f"count and nrow should be positive and padding non-negative, got {count}, {nrow}, {padding}")
    if tile_size is not None and tile_size < 1:
        raise ValueError(f"tile_size should be a positive number of pixels, or None for full size, got {tile_size}")
    samples = (dataset.render(dataset.params(i)) for i in range(min(count, len(dataset))))
    tiles = [F.pil_to_tensor(_shrink(sample, tile_size)) for sample in samples]
    return F.to_pil_image(make_grid(tiles, nrow=nrow, padding=padding, pad_value=0))


def save_preview(
    dataset: SingleImageDataset,
    path: str | os.PathLike,
    count: int = PREVIEW_COUNT,
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


def _shrink(tile: Image.Image, tile_size: int | None) -> Image.Image:
    if tile_size is None or max(tile.size) <= tile_size:
        return tile
    scale = tile_size / max(tile.size)
    return tile.resize((round(tile.width * scale), round(tile.height * scale)), Image.Resampling.BICUBIC)
