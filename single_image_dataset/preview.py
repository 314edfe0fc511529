"""A grid of the first samples, to judge the augmentation strength before training or exporting."""

from __future__ import annotations

import io
import os
from pathlib import Path

import torchvision.transforms.functional as F
from PIL import Image
from torchvision.utils import make_grid

from .dataset import SingleImageDataset
from .export.files import write_atomic

__all__ = ["PREVIEW_COUNT", "PREVIEW_NROW", "preview_grid", "save_preview"]

#: Samples in a preview grid, and tiles per row, by default.
PREVIEW_COUNT = 64
PREVIEW_NROW = 8


def preview_grid(
    dataset: SingleImageDataset, count: int = PREVIEW_COUNT, nrow: int = PREVIEW_NROW, padding: int = 3
) -> Image.Image:
    """Samples ``0 .. count - 1`` (fewer if the dataset is shorter) tiled ``nrow`` per row.

    The padding is black and 3 px wide, as in the original script's debug grid.

    Example:
        >>> ds = SingleImageDataset(num_imgs=100, img_size=32)
        >>> preview_grid(ds).size
        (283, 283)
    """
    if count < 1 or nrow < 1 or padding < 0:
        raise ValueError(f"count and nrow should be positive and padding non-negative, got {count}, {nrow}, {padding}")
    tiles = [F.pil_to_tensor(dataset.render(dataset.params(i))) for i in range(min(count, len(dataset)))]
    return F.to_pil_image(make_grid(tiles, nrow=nrow, padding=padding, pad_value=0))


def save_preview(
    dataset: SingleImageDataset,
    path: str | os.PathLike,
    count: int = PREVIEW_COUNT,
    nrow: int = PREVIEW_NROW,
    padding: int = 3,
) -> Path:
    """Write :func:`preview_grid` as a PNG at ``path`` (creating its folder) and return the path.

    The file is replaced atomically (see :func:`~single_image_dataset.export.files.write_atomic`):
    a failed write, a full disk say, leaves the previous preview as it was.
    """
    path = Path(path)
    grid = preview_grid(dataset, count, nrow, padding)
    png = io.BytesIO()
    grid.save(png, format="PNG")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise type(exc)(exc.errno, f"cannot write the preview {path}: {exc.strerror}") from None
    write_atomic(path, png.getvalue())
    return path
