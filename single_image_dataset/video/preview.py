"""A filmstrip of the first clips, one row each, to judge the camera moves before training or exporting."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torchvision.transforms.functional as F
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.utils import make_grid

from ..preview import save_png
from .dataset import FakeVideoDataset

__all__ = ["FILMSTRIP_CLIPS", "FILMSTRIP_TILE_SIZE", "filmstrip", "save_filmstrip"]

#: Clips in a filmstrip, one per row, by default.
FILMSTRIP_CLIPS = 4
#: Largest side of a frame's tile in pixels: 4 clips of 16 frames of 230 px make a PNG of about 0.4 MB.
FILMSTRIP_TILE_SIZE = 64


def filmstrip(
    dataset: FakeVideoDataset,
    count: int = FILMSTRIP_CLIPS,
    padding: int = 2,
    tile_size: int | None = FILMSTRIP_TILE_SIZE,
) -> Image.Image:
    """Clips ``0 .. count - 1`` (fewer if the dataset is shorter), one row each, frames left to right.

    The padding is black. Frames larger than ``tile_size`` are shrunk to it (bicubic, antialiased);
    ``None`` keeps them at full size.

    Example:
        >>> ds = FakeVideoDataset(num_imgs=10, clip_len=4, img_size=32)
        >>> filmstrip(ds).size  # 4 frames of 32 px and 2 px padding, 4 rows
        (138, 138)
    """
    if count < 1 or padding < 0:
        raise ValueError(f"count should be positive and padding non-negative, got {count} and {padding}")
    if tile_size is not None and tile_size < 1:
        raise ValueError(f"tile_size should be a positive number of pixels, or None for full size, got {tile_size}")
    clips = [dataset.render(dataset.params(i)).cpu() for i in range(min(count, len(dataset)))]
    frames = torch.cat(clips)
    side = frames.shape[-1]
    if tile_size is not None and side > tile_size:
        frames = F.resize(frames, [tile_size, tile_size], interpolation=InterpolationMode.BICUBIC, antialias=True)
    return F.to_pil_image(make_grid(frames, nrow=dataset.config.clip_len, padding=padding, pad_value=0))


def save_filmstrip(
    dataset: FakeVideoDataset,
    path: str | os.PathLike,
    count: int = FILMSTRIP_CLIPS,
    padding: int = 2,
    tile_size: int | None = FILMSTRIP_TILE_SIZE,
) -> Path:
    """Write :func:`filmstrip` as a PNG at ``path`` (creating its folder) and return the path."""
    return save_png(filmstrip(dataset, count, padding, tile_size), path)
