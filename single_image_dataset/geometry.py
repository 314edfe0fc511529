"""The geometry of a sample as 3x3 matrices: one map from output pixels back to source pixels.

Every matrix here maps *continuous* coordinates ``(x, y)`` in which pixel ``(row i, column j)``
covers ``[j, j + 1) x [i, i + 1)`` and has its centre at ``(j + 0.5, i + 0.5)``. That is the
convention of PIL's ``resize`` (it maps pixel centres by a plain scale) and of PIL's
``Image.transform`` (it samples each output pixel at its centre), hence of the reference renderer.
OpenCV samples at integer coordinates instead; :func:`to_pixel_indices` converts.

The matrices point *backwards*, from a stage's output to its input, as image warps need them.

:func:`sample_maps` gives a sample's two maps as :data:`Affine` tuples of plain floats instead: the
same numbers (the matrix functions are built on it), cheaper to make per sample than 3x3 arrays.
"""

from __future__ import annotations

import math
from typing import overload

import numpy as np

from .params import SampleParams

__all__ = [
    "Affine",
    "affine_inverse",
    "compose",
    "center_crop_offset",
    "crop_to_parent",
    "invert",
    "output_to_resized",
    "output_to_source",
    "pyramid_level",
    "resized_to_source",
    "rotate_inverse",
    "sample_maps",
    "scale",
    "to_pixel_indices",
    "translate",
    "vflip",
]


Affine = tuple[float, float, float, float, float, float]
"""An affine map as ``(a, b, c, d, e, f)``: ``(x, y) -> (a x + b y + c, d x + e y + f)``, its matrix's top rows."""


def compose(p: Affine, q: Affine) -> Affine:
    """``p`` after ``q``, the tuple form of ``P @ Q``.

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


def _matrix(p: Affine) -> np.ndarray:
    return np.array([p[:3], p[3:], (0.0, 0.0, 1.0)])


def _translate(dx: float, dy: float) -> Affine:
    return (1.0, 0.0, dx, 0.0, 1.0, dy)


def _vflip(height: float) -> Affine:
    return (1.0, 0.0, 0.0, 0.0, -1.0, height)


def translate(dx: float, dy: float) -> np.ndarray:
    """The map ``(x, y) -> (x + dx, y + dy)``."""
    return _matrix(_translate(dx, dy))


def scale(sx: float, sy: float) -> np.ndarray:
    """The map ``(x, y) -> (sx * x, sy * y)``."""
    return np.array([[sx, 0.0, 0.0], [0.0, sy, 0.0], [0.0, 0.0, 1.0]])


def crop_to_parent(top: float, left: float) -> np.ndarray:
    """From the coordinates of a crop whose corner is at ``(top, left)`` to those of its parent image."""
    return translate(left, top)


def vflip(height: float) -> np.ndarray:
    """A vertical flip of an image ``height`` pixels tall (its own inverse)."""
    return _matrix(_vflip(height))


def affine_inverse(center: tuple[float, float], angle: float, shear: tuple[float, float]) -> np.ndarray:
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
        >>> np.round(affine_inverse((5.0, 5.0), 90.0, (0.0, 0.0)), 12) + 0.0
        array([[ 0.,  1.,  0.],
               [-1.,  0., 10.],
               [ 0.,  0.,  1.]])
    """
    return _matrix(_affine_inverse(center, angle, shear))


def _affine_inverse(center: tuple[float, float], angle: float, shear: tuple[float, float]) -> Affine:
    rot = math.radians(angle)
    sx, sy = math.radians(shear[0]), math.radians(shear[1])
    a = math.cos(rot - sy) / math.cos(sy)
    b = -math.cos(rot - sy) * math.tan(sx) / math.cos(sy) - math.sin(rot)
    c = math.sin(rot - sy) / math.cos(sy)
    d = -math.sin(rot - sy) * math.tan(sx) / math.cos(sy) + math.cos(rot)
    # [[a, b], [c, d]] has determinant 1 (a rotation times two shears), so its inverse is the
    # adjugate [[d, -b], [-c, a]]; conjugating by the translation to the centre moves the fixed point.
    cx, cy = center
    return (d, -b, cx - d * cx + b * cy, -c, a, cy + c * cx - a * cy)


def rotate_inverse(center: tuple[float, float], angle: float) -> np.ndarray:
    """The output-to-input map of ``F.rotate(img, angle)``: counter-clockwise, unlike ``F.affine``'s angle.

    PIL's ``Image.rotate`` and torchvision's tensor path both equal :func:`affine_inverse` with
    ``-angle`` and no shear.
    """
    return affine_inverse(center, -angle, (0.0, 0.0))


def center_crop_offset(size: int, crop: int) -> int:
    """Offset of ``F.center_crop``'s window of side ``crop`` in a side of ``size`` (Python's rounding)."""
    return int(round((size - crop) / 2.0))


def output_to_resized(params: SampleParams) -> np.ndarray:
    """From the final ``output_size`` image to the ``resize``-sided resized crop, before its warp.

    Undoes, in order: the centre crop, the vertical flip and the affine or rotation (whose centre is
    that of the resized crop). The debug resize is not included; it follows the warp as a resize.
    """
    return _matrix(_output_to_resized(params))


def _output_to_resized(params: SampleParams) -> Affine:
    side = float(params.resize)
    offset = center_crop_offset(params.resize, params.output_size)
    m = _translate(offset, offset)
    if params.vflip:
        m = compose(_vflip(side), m)
    center = (side * 0.5, side * 0.5)
    if params.warp == "affine":
        m = compose(_affine_inverse(center, params.angle, params.shear), m)
    elif params.warp == "rotate":
        m = compose(_affine_inverse(center, -params.angle, (0.0, 0.0)), m)
    return m


def resized_to_source(params: SampleParams) -> np.ndarray:
    """From the resized crop (``resize`` pixels square) to the source image.

    PIL's resize maps pixel centres linearly, so the resize is a pure scale from the box's corner.
    """
    return _matrix(_resized_to_source(params))


def _resized_to_source(params: SampleParams) -> Affine:
    top, left, height, width = params.resized_crop
    if params.crop is not None:
        top, left = top + params.crop[0], left + params.crop[1]
    return (width / params.resize, 0.0, float(left), 0.0, height / params.resize, float(top))


def output_to_source(params: SampleParams) -> np.ndarray:
    """The whole geometry of a sample: from final output pixels to source pixels (continuous coordinates).

    Example:
        >>> from single_image_dataset import AugmentConfig, sample_params
        >>> p = sample_params(AugmentConfig(img_size=64, deg=0, shear=0), (1000, 872), index=0)
        >>> p.crop, p.resized_crop, p.resize
        ((278, 152, 436, 436), (147, 69, 165, 204), 90)
        >>> np.round(output_to_source(p), 4)
        array([[  2.2667,   0.    , 250.4667],
               [  0.    ,   1.8333, 448.8333],
               [  0.    ,   0.    ,   1.    ]])
    """
    return _matrix(sample_maps(params)[1])


def sample_maps(params: SampleParams) -> tuple[Affine, Affine]:
    """:func:`output_to_resized` and :func:`output_to_source` as :data:`Affine` tuples."""
    to_resized = _output_to_resized(params)
    return to_resized, compose(_resized_to_source(params), to_resized)


def invert(matrix: np.ndarray) -> np.ndarray:
    """Inverse of an affine 3x3 matrix (last row ``[0, 0, 1]``).

    Raises:
        ValueError: the matrix is singular or not affine.
    """
    if matrix.shape != (3, 3) or not np.array_equal(matrix[2], [0.0, 0.0, 1.0]):
        raise ValueError(f"matrix should be a 3x3 affine matrix with last row [0, 0, 1], got {matrix.tolist()}")
    (a, b), (c, d) = matrix[:2, :2].tolist()
    det = a * d - b * c
    if abs(det) < 1e-12:
        raise ValueError(f"matrix is singular (determinant {det:g}), it has no inverse")
    inv_linear = np.array([[d, -b], [-c, a]]) / det
    result = np.eye(3)
    result[:2, :2] = inv_linear
    result[:2, 2] = -inv_linear @ matrix[:2, 2]
    return result


@overload
def to_pixel_indices(matrix: np.ndarray) -> np.ndarray: ...
@overload
def to_pixel_indices(matrix: Affine) -> Affine: ...
def to_pixel_indices(matrix: np.ndarray | Affine) -> np.ndarray | Affine:
    """The same map in OpenCV's convention, where pixel ``(i, j)`` sits at integer ``(j, i)``.

    Takes and returns a 3x3 matrix or an :data:`Affine` tuple.
    """
    if isinstance(matrix, tuple):
        a, b, c, d, e, f = matrix
        return (a, b, c + 0.5 * (a + b) - 0.5, d, e, f + 0.5 * (d + e) - 0.5)
    return _CENTRES_TO_INDICES @ matrix @ _INDICES_TO_CENTRES


_CENTRES_TO_INDICES = translate(-0.5, -0.5)
_INDICES_TO_CENTRES = translate(0.5, 0.5)


def pyramid_level(matrix: np.ndarray | Affine, num_levels: int) -> int:
    """The pyramid level to warp from so that the warp itself scales by a factor within ``sqrt(2)`` of 1.

    Level ``k`` is the source reduced ``2**k`` times by area averaging. The warp's scale is measured
    as the geometric mean of the two axes' source pixels per output pixel, ``sqrt(|det|)`` of the
    map's linear part (the rotation and shears have determinant 1, so this is the resized crop's own
    scale). The level is ``round(log2(scale))``, clipped to the levels that exist, so the remaining
    scale is in ``[1/sqrt(2), sqrt(2))``: bilinear sampling then neither aliases visibly nor blurs
    much, and each output pixel reads about one level pixel, which keeps the warp's memory traffic
    small. (Rounding down instead, a remaining scale in ``[1, 2)``, measured 1-2 dB further from the
    reference's antialiased resize at 32 and 64 px, and slower.) Upscales read the full-resolution
    level 0.

    Args:
        matrix: an output-to-source map such as :func:`output_to_source`'s, or its :data:`Affine` tuple.
        num_levels: how many levels the pyramid has (at least 1).

    Raises:
        ValueError: ``num_levels`` is below 1.

    Example:
        >>> pyramid_level(scale(2.8, 2.8), 5), pyramid_level(scale(2.9, 2.9), 5), pyramid_level(scale(0.5, 0.5), 5)
        (1, 2, 0)
        >>> pyramid_level(scale(64.0, 64.0), 5)
        4
    """
    if num_levels < 1:
        raise ValueError(f"num_levels should be at least 1, got {num_levels}")
    a, b, _, c, d, _ = matrix if isinstance(matrix, tuple) else matrix[:2].ravel().tolist()
    det = abs(a * d - b * c)
    if det <= 1.0:
        return 0
    # log2(sqrt(det)) = 0.5 * log2(det); + 0.5 then floor rounds it.
    return min(int(math.floor(0.5 * math.log2(det) + 0.5)), num_levels - 1)
