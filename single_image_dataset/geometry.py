"""The geometry of a sample as affine maps: one map from output pixels back to source pixels.

A map is an :data:`Affine` tuple ``(a, b, c, d, e, f)``, the top two rows of its 3x3 matrix. Every
map here takes *continuous* coordinates ``(x, y)`` in which pixel ``(row i, column j)`` covers
``[j, j + 1) x [i, i + 1)`` and has its centre at ``(j + 0.5, i + 0.5)``. That is the convention of
PIL's ``resize`` (it maps pixel centres by a plain scale) and of PIL's ``Image.transform`` (it samples
each output pixel at its centre), hence of the reference renderer. OpenCV samples at integer
coordinates instead; :func:`to_pixel_indices` converts.

The maps point *backwards*, from a stage's output to its input, as image warps need them.

The arithmetic is elementwise: where a map's entries (or an angle, a centre, a height) are numpy
``float64`` arrays of shape ``(N,)`` instead of floats, the functions compute ``N`` maps at once, each
bit for bit the map of the corresponding floats.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .params import WARPS, ParamsBatch, SampleParams

try:
    from . import _libm
except ImportError:  # the optional extension was not built: math's functions, element by element
    _libm = None

__all__ = [
    "Affine",
    "affine_inverse",
    "batch_maps",
    "batch_output_to_resized",
    "center_crop_offset",
    "compose",
    "covers_output",
    "invert",
    "output_to_resized",
    "output_to_source",
    "pyramid_level",
    "resized_to_source",
    "rotate_inverse",
    "sample_maps",
    "scale",
    "source_box",
    "to_pixel_indices",
    "translate",
    "vflip",
]


_Value = float | np.ndarray
"""A float, or a ``float64`` array with one element per map."""

Affine = tuple[_Value, _Value, _Value, _Value, _Value, _Value]
"""An affine map as ``(a, b, c, d, e, f)``: ``(x, y) -> (a x + b y + c, d x + e y + f)``, its matrix's top rows."""


def _elementwise(fn: Callable[[float], float], native: int) -> Callable[[_Value], Any]:
    """``fn``, one of ``math``'s functions, made elementwise: ``fn(x)`` for a float, and for an array ``fn``
    of each element, so that both give the same bits (numpy's own functions may round differently).

    Arrays go through the C extension's loop over the same libm function (``native`` names it), or
    where it was not built, through ``fn`` element by element.
    """

    def apply(x: _Value) -> Any:
        if not isinstance(x, np.ndarray):
            return fn(x)
        if _libm is None:
            return np.array(list(map(fn, x.tolist())))
        x = np.ascontiguousarray(x, dtype=np.float64)
        out = np.empty_like(x)
        _libm.apply(native, x, out)
        return out

    return apply


_cos, _sin, _tan = (_elementwise(fn, native) for native, fn in enumerate((math.cos, math.sin, math.tan)))
# math.radians(x) is x times the double nearest pi / 180, an IEEE product numpy gives exactly as well.
_DEGREE = math.pi / 180.0


def _radians(x: _Value) -> _Value:
    return x * _DEGREE if isinstance(x, np.ndarray) else math.radians(x)


def compose(p: Affine, q: Affine) -> Affine:
    """``p`` after ``q``, the map of the matrix product ``P @ Q``.

    Example:
        >>> compose((2.0, 0.0, 1.0, 0.0, 2.0, 0.0), (1.0, 0.0, 3.0, 0.0, 1.0, 4.0))
        (2.0, 0.0, 7.0, 0.0, 2.0, 8.0)
    """
    a, b, c, d, e, f = p
    qa, qb, qc, qd, qe, qf = q
    return (
        a * qa + b * qd, a * qb + b * qe, a * qc + b * qf + c,
        d * qa + e * qd, d * qb + e * qe, d * qc + e * qf + f,
    )


def translate(dx: _Value, dy: _Value) -> Affine:
    """The map ``(x, y) -> (x + dx, y + dy)``; from a crop with its corner at ``(top, left)`` to its
    parent image, ``translate(left, top)``."""
    return (1.0, 0.0, dx, 0.0, 1.0, dy)


def scale(sx: _Value, sy: _Value) -> Affine:
    """The map ``(x, y) -> (sx * x, sy * y)``."""
    return (sx, 0.0, 0.0, 0.0, sy, 0.0)


def vflip(height: _Value) -> Affine:
    """A vertical flip of an image ``height`` pixels tall (its own inverse)."""
    return (1.0, 0.0, 0.0, 0.0, -1.0, height)


def affine_inverse(center: tuple[_Value, _Value], angle: _Value, shear: tuple[_Value, _Value]) -> Affine:
    """The output-to-input map of ``F.affine(img, angle, translate=[0, 0], scale=1, shear=shear)``.

    It is the matrix of torchvision's ``_get_inverse_affine_matrix`` (which PIL's ``Image.transform``
    then applies at output pixel centres): ``C @ inv(R(angle) @ SHy(shear[1]) @ SHx(shear[0])) @ inv(C)``
    with ``C`` the translation to ``center``, ``R`` a rotation and ``SHx(s) = [[1, -tan s], [0, 1]]``,
    ``SHy(s) = [[1, 0], [-tan s, 1]]``. torchvision's PIL path puts ``center`` at
    ``(width * 0.5, height * 0.5)``.

    Args:
        center: ``(x, y)`` of the fixed point, in continuous coordinates.
        angle: ``F.affine``'s angle in degrees.
        shear: ``(x, y)`` shear angles in degrees.

    Example:
        >>> tuple(round(v, 12) + 0.0 for v in affine_inverse((5.0, 5.0), 90.0, (0.0, 0.0)))
        (0.0, 1.0, 0.0, -1.0, 0.0, 10.0)
    """
    # One sample's floats take math's functions straight (the elementwise ones' scalar case, without their test).
    scalar = type(angle) is float and type(shear[0]) is float and type(shear[1]) is float
    radians, cos, sin, tan = (math.radians, math.cos, math.sin, math.tan) if scalar else (_radians, _cos, _sin, _tan)
    rot, sx, sy = radians(angle), radians(shear[0]), radians(shear[1])
    cos_rot, sin_rot, tan_sx = cos(rot), sin(rot), tan(sx)
    if np.any(sy) if isinstance(sy, np.ndarray) else sy != 0.0:
        cos_rs, sin_rs, cos_sy = cos(rot - sy), sin(rot - sy), cos(sy)
    else:  # no vertical shear (RandomAffine's usual case): rot - sy is rot and cos(sy) is 1, exactly
        cos_rs, sin_rs, cos_sy = cos_rot, sin_rot, 1.0
    a = cos_rs / cos_sy
    b = -cos_rs * tan_sx / cos_sy - sin_rot
    c = sin_rs / cos_sy
    d = -sin_rs * tan_sx / cos_sy + cos_rot
    # [[a, b], [c, d]] has determinant 1 (a rotation times two shears), so its inverse is the
    # adjugate [[d, -b], [-c, a]]; conjugating by the translation to the centre moves the fixed point.
    cx, cy = center
    return (d, -b, cx - d * cx + b * cy, -c, a, cy + c * cx - a * cy)


def rotate_inverse(center: tuple[_Value, _Value], angle: _Value) -> Affine:
    """The output-to-input map of ``F.rotate(img, angle)``: counter-clockwise, unlike ``F.affine``'s angle.

    PIL's ``Image.rotate`` and torchvision's tensor path both equal :func:`affine_inverse` with
    ``-angle`` and no shear.
    """
    return affine_inverse(center, -angle, (0.0, 0.0))


def center_crop_offset(size: int, crop: int) -> int:
    """Offset of ``F.center_crop``'s window of side ``crop`` in a side of ``size`` (Python's rounding)."""
    return int(round((size - crop) / 2.0))


def output_to_resized(params: SampleParams) -> Affine:
    """From the final ``output_size`` image to the ``resize``-sided resized crop, before its warp.

    Undoes, in order: the centre crop, the vertical flip and the affine or rotation (whose centre is
    that of the resized crop). The debug resize is not included; it follows the warp as a resize.
    """
    side = float(params.resize)
    offset = center_crop_offset(params.resize, params.output_size)
    m = translate(offset, offset)
    if params.vflip:
        m = compose(vflip(side), m)
    center = (side * 0.5, side * 0.5)
    if params.warp == "affine":
        m = compose(affine_inverse(center, params.angle, params.shear), m)
    elif params.warp == "rotate":
        m = compose(rotate_inverse(center, params.angle), m)
    return m


def source_box(params: SampleParams | ParamsBatch) -> tuple[Any, Any, Any, Any]:
    """The resized crop's box in the source, ``(left, top, right, bottom)`` in pixels: what the reference resizes.

    Integers; for a :class:`~single_image_dataset.params.ParamsBatch`, integer arrays with a row per sample.

    Example:
        >>> from single_image_dataset import AugmentConfig, sample_params
        >>> source_box(sample_params(AugmentConfig(img_size=64), (1000, 872), index=0))
        (221, 425, 425, 590)
    """
    if isinstance(params, ParamsBatch):
        top, left, height, width = params.resized_crop.T
        if params.crop is not None:
            top, left = top + params.crop[:, 0], left + params.crop[:, 1]
    else:
        top, left, height, width = params.resized_crop
        if params.crop is not None:
            top, left = top + params.crop[0], left + params.crop[1]
    return left, top, left + width, top + height


def resized_to_source(params: SampleParams) -> Affine:
    """From the resized crop (``resize`` pixels square) to the source image.

    PIL's resize maps pixel centres linearly, so the resize is a pure scale from the box's corner.
    """
    left, top, right, bottom = source_box(params)
    return ((right - left) / params.resize, 0.0, float(left), 0.0, (bottom - top) / params.resize, float(top))


def output_to_source(params: SampleParams) -> Affine:
    """The whole geometry of a sample: from final output pixels to source pixels (continuous coordinates).

    Example:
        >>> from single_image_dataset import AugmentConfig, sample_params
        >>> p = sample_params(AugmentConfig(img_size=64, deg=0, shear=0), (1000, 872), index=0)
        >>> p.crop, p.resized_crop, p.resize
        ((278, 152, 436, 436), (147, 69, 165, 204), 90)
        >>> tuple(round(v, 4) for v in output_to_source(p))
        (2.2667, 0.0, 250.4667, 0.0, 1.8333, 448.8333)
    """
    return sample_maps(params)[1]


def sample_maps(params: SampleParams) -> tuple[Affine, Affine]:
    """:func:`output_to_resized` and :func:`output_to_source`, the first computed once for both."""
    to_resized = output_to_resized(params)
    return to_resized, compose(resized_to_source(params), to_resized)


def batch_maps(batch: ParamsBatch) -> tuple[Affine, Affine]:
    """:func:`sample_maps` of every row of ``batch`` at once, as maps of ``float64`` arrays.

    Row ``k`` of each entry is bit for bit that of ``sample_maps(batch[k])``: the same operations on
    the same numbers, each step selected per row where the scalar path branches.

    Example:
        >>> from single_image_dataset import AugmentConfig, sample_params_batch
        >>> batch = sample_params_batch(AugmentConfig(img_size=64, vflip=True), (1000, 872), range(6))
        >>> maps = batch_maps(batch)
        >>> all(tuple(float(v[k]) for v in maps[1]) == sample_maps(batch[k])[1] for k in range(6))
        True
    """
    m = batch_output_to_resized(batch)
    left, top, right, bottom = source_box(batch)
    to_source = ((right - left) / batch.resize, 0.0, left.astype(np.float64), 0.0, (bottom - top) / batch.resize,
                 top.astype(np.float64))
    return m, compose(to_source, m)


def batch_output_to_resized(batch: ParamsBatch) -> Affine:
    """:func:`output_to_resized` of every row of ``batch`` at once (the first map of :func:`batch_maps`).

    Example:
        >>> from single_image_dataset import AugmentConfig, sample_params_batch
        >>> batch = sample_params_batch(AugmentConfig(img_size=64), (1000, 872), range(3))
        >>> tuple(float(v[2]) for v in batch_output_to_resized(batch)) == output_to_resized(batch[2])
        True
    """
    n = len(batch)
    side = float(batch.resize)
    offset = float(center_crop_offset(batch.resize, batch.output_size))
    # Each step is computed for the rows that take it (floats broadcast over the batch where all rows
    # share them), and where no row or every row takes it, not selected row by row: the same numbers.
    m = translate(offset, offset)
    m = _select(batch.vflip, lambda: compose(vflip(side), m), m)
    rotate, warped = batch.warp == WARPS.index("rotate"), batch.warp != WARPS.index(None)
    # rotate_inverse is affine_inverse of -angle without shear, so one call covers both warps.
    angle = np.where(rotate, -batch.angle, batch.angle)
    shear = (np.where(rotate, 0.0, batch.shear[:, 0]), np.where(rotate, 0.0, batch.shear[:, 1]))
    m = _select(warped, lambda: compose(affine_inverse((side * 0.5, side * 0.5), angle, shear), m), m)
    return _rows(m, n)


def covers_output(to_resized: Affine, output_size: int, side: int) -> bool | np.ndarray:
    """Whether every output pixel centre maps inside the resized crop, so that no pixel is filled with 0.

    ``to_resized`` is :func:`output_to_resized`'s map and ``side`` the resized crop's side. The output
    pixel centres lie in the convex hull of the four corner centres, and the crop is convex, so checking
    the corners suffices. Elementwise for a map of arrays.

    Example:
        >>> covers_output(translate(10.0, 10.0), 64, 90), covers_output(translate(30.0, 10.0), 64, 90)
        (True, False)
    """
    lo, hi = 0.5, output_size - 0.5
    least, most = (np.minimum, np.maximum) if isinstance(to_resized[0], np.ndarray) else (min, max)
    inside: bool | np.ndarray = True
    for a, b, c in (to_resized[:3], to_resized[3:]):
        low = c + least(a * lo, a * hi) + least(b * lo, b * hi)
        high = c + most(a * lo, a * hi) + most(b * lo, b * hi)
        inside = inside & (low >= 0) & (high < side)
    return inside


def _rows(affine: Affine, n: int) -> Affine:
    """``affine`` with every entry an array of ``n`` rows (a float repeated)."""
    return tuple(v if isinstance(v, np.ndarray) else np.full(n, float(v)) for v in affine)  # type: ignore[return-value]


def _select(mask: np.ndarray, step: Callable[[], Affine], q: Affine) -> Affine:
    """Row by row, ``step()`` where ``mask`` holds and ``q`` elsewhere (``step`` computed only if some row takes it)."""
    if not mask.any():
        return q
    p = step()
    if mask.all():
        return p
    return tuple(np.where(mask, a, b) for a, b in zip(p, q, strict=True))  # type: ignore[return-value]


def invert(affine: Affine) -> Affine:
    """The inverse map.

    Raises:
        ValueError: the map is singular (for arrays: any of them).

    Example:
        >>> invert((2.0, 0.0, 3.0, 0.0, 4.0, 4.0))
        (0.5, -0.0, -1.5, -0.0, 0.25, -1.0)
    """
    a, b, c, d, e, f = affine
    det = a * e - b * d
    singular = np.abs(det) < 1e-12
    if np.any(singular):
        raise ValueError(f"matrix is singular (determinant {np.asarray(det)[singular][0]:g}), it has no inverse")
    return (e / det, -b / det, (b * f - e * c) / det, -d / det, a / det, (d * c - a * f) / det)


def to_pixel_indices(affine: Affine) -> Affine:
    """The same map in OpenCV's convention, where pixel ``(i, j)`` sits at integer ``(j, i)``.

    It is ``translate(-0.5, -0.5)`` after the map after ``translate(0.5, 0.5)``.

    Example:
        >>> to_pixel_indices(scale(2.0, 2.0))
        (2.0, 0.0, 0.5, 0.0, 2.0, 0.5)
    """
    a, b, c, d, e, f = affine
    return (a, b, c + 0.5 * (a + b) - 0.5, d, e, f + 0.5 * (d + e) - 0.5)


def pyramid_level(width: _Value, height: _Value, side: int, num_levels: int) -> int | np.ndarray:
    """The pyramid level from which to resize a ``width`` x ``height`` box of the source to ``side`` x ``side``.

    Level ``k`` is the source reduced ``2**k`` times (with a sharp antialiasing filter). The level is the
    one closest to the box's shorter side's reduction, ``round(log2(min(width, height) / side))``,
    clipped to the levels that exist: the resize from it then scales that side by a factor within
    ``sqrt(2)`` of 1 (the longer one, whose aspect ratio is at most 4:3, by up to 1.9), with PIL's
    filter scaled to that. It is level 0 for an enlargement. (The coarsest level that still leaves a
    reduction to do, ``floor`` instead of ``round``, measured 3-5 dB closer to the reference at 32 and
    64 px and 25 % slower: docs, the renderers' resampling.) Integer arithmetic throughout, so a batch's
    levels are exactly its samples'.

    Args:
        width: the box's width in source pixels (an integer, or an integer array for a batch).
        height: its height.
        side: the resized crop's side.
        num_levels: how many levels the pyramid has (at least 1).

    Returns:
        The level, an ``int``; an integer array for arrays.

    Raises:
        ValueError: ``num_levels`` is below 1.

    Example:
        >>> pyramid_level(400, 250, 90, 8), pyramid_level(400, 260, 90, 8), pyramid_level(60, 80, 90, 8)
        (1, 2, 0)
        >>> pyramid_level(4000, 4000, 10, 5)
        4
    """
    if num_levels < 1:
        raise ValueError(f"num_levels should be at least 1, got {num_levels}")
    # round(log2(m / side)) is k where 4**k <= 2 m**2 / side**2 < 4**(k + 1): half the bit length of its floor
    if isinstance(width, np.ndarray):
        shorter = np.minimum(width, height).astype(np.int64)
        # frexp's exponent is the bit length of a positive integer, exactly (and 0 for 0)
        bits = np.frexp((2 * shorter**2 // side**2).astype(np.float64))[1]
        return np.clip((bits - 1) // 2, 0, num_levels - 1).astype(np.int64)
    return max(0, min(((2 * min(width, height) ** 2 // side**2).bit_length() - 1) // 2, num_levels - 1))
