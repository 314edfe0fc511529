"""The fast renderer's OpenCV implementation: Pillow's resize of a pyramid level, OpenCV's warp, black fill and jitter.

It renders where the native kernels were not built, or when asked for
(``FastRenderer(image, implementation="opencv")``). Importing it imports OpenCV.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
from PIL import Image

from .. import geometry
from ..params import JitterParams, SampleParams, hue_steps

__all__ = ["jitter", "render"]

# Affine colour transforms (3x3 matrix, offset column): the identity, and every channel set to the
# luma of PIL's convert("L") (ITU-R 601-2), the grey of PIL's colour enhancer.
_IDENTITY_3X4 = np.eye(3, 4)
_TO_GREY_3X4 = np.array([[0.299, 0.587, 0.114, 0.0]] * 3)


_FILTERS = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def render(
    level: Image.Image, box: tuple[float, ...], to_resized: geometry.Affine, params: SampleParams
) -> Image.Image:
    """The sample's image, resized from the pyramid level ``level`` and warped.

    Args:
        level: the pyramid level to read.
        box: the resized crop's box in ``level``'s pixels, ``(left, top, right, bottom)``.
        to_resized: the map from output pixel centres to the resized crop.
        params: the sample.
    """
    side, size = params.resize, (params.output_size, params.output_size)
    # The reference's resize, of the level instead of the source: PIL's own, which reads past the
    # box's edge where the reference, resizing its crop, cuts its filter there.
    grid = np.asarray(level.resize((side, side), _FILTERS[params.interpolation], box=box).convert("RGBA"))
    rgbx = cv2.warpAffine(
        grid, np.reshape(geometry.to_pixel_indices(to_resized), (2, 3)), size,
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE,
    )
    if not geometry.covers_output(to_resized, params.output_size, side):
        # PIL's transform fills an output pixel whose centre maps outside the image, i.e. whose
        # floor(coordinate) leaves [0, side): exactly a nearest-neighbour lookup in a mask.
        inside = cv2.warpAffine(
            _footprint(side), np.reshape(geometry.to_pixel_indices(to_resized), (2, 3)), size,
            flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT, borderValue=0,
        )
        rgbx = cv2.copyTo(rgbx, inside)
    if params.debug_size is None and params.jitter is None:
        return Image.frombytes("RGB", size, rgbx, "raw", "RGBX")
    rgb = cv2.cvtColor(rgbx, cv2.COLOR_RGBA2RGB)
    if params.debug_size is not None:
        # A 32 px resize, cheap in PIL; using PIL's own keeps this step identical to the reference.
        small = Image.frombytes("RGB", size, rgb).resize(
            (params.debug_size, params.debug_size), Image.Resampling.BILINEAR
        )
        rgb = np.asarray(small)
    if params.jitter is not None:
        rgb = jitter(rgb, params.jitter)
    return Image.frombytes("RGB", (rgb.shape[1], rgb.shape[0]), rgb)


@functools.lru_cache(maxsize=8)
def _footprint(side: int) -> np.ndarray:
    """The resized crop's mask: ``side`` pixels square, all set."""
    return np.full((side, side), 255, dtype=np.uint8)


def jitter(rgb: np.ndarray, factors: JitterParams) -> np.ndarray:
    """torchvision's PIL colour jitter with OpenCV: each op within a level or two of PIL's."""
    return factors.apply(rgb, _ADJUST)


def _adjust_brightness(rgb: np.ndarray, factor: float) -> np.ndarray:
    # PIL blends with black: factor * rgb.
    return _blend_with_grey(rgb, factor, level=0.0)


def _adjust_contrast(rgb: np.ndarray, factor: float) -> np.ndarray:
    # PIL blends with the greyscale image's mean, rounded to an integer level.
    mean = int(cv2.mean(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))[0] + 0.5)
    return _blend_with_grey(rgb, factor, level=float(mean))


def _adjust_saturation(rgb: np.ndarray, factor: float) -> np.ndarray:
    # PIL blends with the greyscale image, whose three channels all equal the luma.
    return _blend_with_grey(rgb, factor, level=None)


def _blend_with_grey(rgb: np.ndarray, factor: float, level: float | None) -> np.ndarray:
    """PIL's ``Image.blend(grey, rgb, factor)``: a constant grey ``level``, or the luma when ``None``.

    One affine colour transform, clipped to [0, 255]. OpenCV rounds where PIL truncates, so a
    result may be one level above PIL's.
    """
    if level is None:
        matrix = factor * _IDENTITY_3X4 + (1.0 - factor) * _TO_GREY_3X4
    else:
        matrix = factor * _IDENTITY_3X4
        matrix[:, 3] = (1.0 - factor) * level
    return cv2.transform(rgb, matrix)


def _adjust_hue(rgb: np.ndarray, factor: float) -> np.ndarray:
    # PIL's hue byte has 255 steps per turn; OpenCV's *_FULL hue has 256, so the shift is rescaled.
    steps = round(hue_steps(factor) * 256 / 255)
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV_FULL)
    hue = hsv[:, :, 0]
    hue += np.uint8(steps % 256)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB_FULL)


_ADJUST = {
    "brightness": _adjust_brightness,
    "contrast": _adjust_contrast,
    "saturation": _adjust_saturation,
    "hue": _adjust_hue,
}
