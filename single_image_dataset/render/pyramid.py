"""The image pyramid that the fast and torch renderers resize from: the source reduced 2, 4, 8, ... times.

A sample's resize then starts from the level closest to its scale
(:func:`~single_image_dataset.geometry.pyramid_level`) and scales by less than 2 itself, so its cost does
not grow with the reduction, while its result stays close to the reference's resize of the source.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["build_pyramid"]


def build_pyramid(image: Image.Image) -> list[np.ndarray]:
    """The pyramid of ``image`` as RGBX arrays (``H x W x 4`` uint8), level ``k`` reduced ``2**k`` times.

    Each level is the previous one halved by PIL's Lanczos resize (antialiased, 3 lobes), down to one
    pixel. An odd side is first padded by repeating its last row or column, so that level ``k``'s pixel
    ``j`` covers exactly the source pixels ``[j * 2**k, (j + 1) * 2**k)`` and a level's coordinates are
    the source's divided by ``2**k``. Lanczos halvings keep more of each level's finest detail than 2x2
    averaging (which the resize from the level then filters as the reference's resize does), and came
    closest to the reference of the filters measured (docs: the renderers' resampling).

    Example:
        >>> [level.shape for level in build_pyramid(Image.new("RGB", (5, 3)))]
        [(3, 5, 4), (2, 3, 4), (1, 2, 4), (1, 1, 4)]
    """
    level = image.convert("RGB")
    levels = [level]
    while max(level.size) > 1:
        width, height = level.size
        if width % 2 or height % 2:
            padded = np.pad(np.asarray(level), ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
            level = Image.fromarray(padded)
        level = level.resize(((width + 1) // 2, (height + 1) // 2), Image.Resampling.LANCZOS)
        levels.append(level)
    return [np.asarray(level.convert("RGBA")) for level in levels]
