"""The fast renderer: the reference's geometry as one warp from an image pyramid, then the colour jitter.

The pixel work runs in native kernels (``render/_kernels.c``, built with the package when a C
compiler is present) with OpenCV building the pyramid; without the compiled kernels, OpenCV does the
warp and numpy-level OpenCV calls the jitter. OpenCV is an optional extra (``pip install
"single_image_dataset[fast]"``), imported when the first :class:`FastRenderer` is built, so the
package itself imports without it.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.data import get_worker_info

from .. import geometry
from ..sampling import JitterParams, SampleParams
from . import Renderer, register_renderer

try:
    from . import _kernels
except ImportError:  # the optional extension was not built (no C compiler): OpenCV does all the work
    _kernels = None

__all__ = ["FastRenderer", "implementation"]

_INSTALL_HINT = 'backend="fast" needs OpenCV, an optional extra: pip install -e ".[fast]" in the clone'

# OpenCV's module, bound by _import_opencv() when a FastRenderer is built.
cv2: Any = None

# Whether this process has yet to decide on OpenCV's threads (see FastRenderer), and whether it was
# forked from a parent that had already imported OpenCV.
_threads_unchecked = True
_opencv_inherited = False

# Width of the replicated border around each pyramid level.
_BORDER = 1

# Affine colour transforms (3x3 matrix, offset column): the identity, and every channel set to the
# luma of PIL's convert("L") (ITU-R 601-2), the grey of PIL's colour enhancer.
_IDENTITY_3X4 = np.eye(3, 4)
_TO_GREY_3X4 = np.array([[0.299, 0.587, 0.114, 0.0]] * 3)


def _import_opencv() -> None:
    global cv2
    try:
        import cv2 as module
    except ImportError:
        raise ImportError(_INSTALL_HINT) from None
    cv2 = module


def _check_threads() -> None:
    global _threads_unchecked
    _threads_unchecked = False
    # Changing OpenCV's thread count in a child forked after its parent ran OpenCV deadlocks (the
    # parent's pool threads do not survive the fork), so only workers that imported it themselves do.
    if get_worker_info() is not None and not _opencv_inherited:
        cv2.setNumThreads(1)


def _after_fork_in_child() -> None:
    global _threads_unchecked, _opencv_inherited
    _threads_unchecked = True
    _opencv_inherited = "cv2" in sys.modules


os.register_at_fork(after_in_child=_after_fork_in_child)


def implementation() -> str:
    """Which implementation renders ``backend="fast"`` in this process.

    ``"native-avx2"`` or ``"native"`` (the compiled kernels, vectorised or portable: the same
    bytes), or ``"opencv"`` when the package's C extension was not built.
    """
    if _kernels is None:
        return "opencv"
    return "native-avx2" if _kernels.simd() else "native"


@register_renderer("fast")
class FastRenderer(Renderer):
    """Renders the reference's chain with one resampling pass, one to two orders of magnitude faster.

    The initial crop, resized crop, affine or rotation, vertical flip and centre crop are composed
    into one output-to-source map (:func:`~single_image_dataset.geometry.sample_maps`) and rendered
    by a single bilinear warp of the output pixels only. Large downscales read a level of an
    area-averaged image pyramid built once per source, chosen by
    :func:`~single_image_dataset.geometry.pyramid_level` so that the warp itself scales by less than
    sqrt(2) either way; that stands in for the antialiasing of the reference's resize. Pixels that
    the reference fills with 0 (outside the resized crop after the warp) are found with the
    reference's own test and set to 0. The colour jitter then runs in the sampled order.

    Two implementations, chosen once per process (:func:`implementation` says which):

    - the native kernels (the default wherever the package's C extension was built): the warp and
      the black fill in one pass, and the jitter fused into one or two passes in which brightness,
      contrast and saturation are PIL's arithmetic exactly and the hue PIL's 8-bit HSV round trip
      up to a level at rounding boundaries. An AVX2 version is used where the CPU has it and gives
      the same bytes as the portable C version;
    - OpenCV alone (where the extension could not be compiled): ``cv2.warpAffine``, a
      nearest-neighbour warp of the crop's footprint for the fill, and OpenCV colour conversions.

    The two give slightly different pixels (both within the tolerances below), so bit-for-bit
    reproducibility across machines holds between installs that use the same implementation.
    Neither is bit-exact with the reference: one bilinear pass replaces a bicubic resize followed by a
    bilinear warp. The tests hold both to a mean PSNR of at least 30 dB against the reference
    (28 dB with jitter).

    OpenCV parallelises its calls over its own threads. In a DataLoader worker this renderer limits
    OpenCV to one thread at its first render, as PyTorch does for its own threads there: the workers
    already use every core and extra threads would only compete for them. It cannot do so in a worker
    forked from a process that had already imported OpenCV (changing the thread count there
    deadlocks OpenCV), so for ``fork`` workers call ``cv2.setNumThreads(1)`` in the main process
    before the DataLoader starts, or use the ``spawn`` or ``forkserver`` start method. In the main
    process OpenCV's setting is left as the application made it. The native kernels are
    single-threaded.

    Args:
        image: the RGB source image.

    Raises:
        ImportError: OpenCV is not installed; the message names the pip command.
    """

    def __init__(self, image: Image.Image) -> None:
        super().__init__(image)
        _import_opencv()
        # RGBX, four bytes per pixel: OpenCV's vectorised warp handles RGBA far faster than RGB.
        self._pyramid = _build_pyramid(np.array(image.convert("RGBA")))
        # Level k holds the source reduced 2**k times, behind a border of _BORDER pixels.
        self._level_maps = [
            (0.5**k, 0.0, float(_BORDER), 0.0, 0.5**k, float(_BORDER)) for k in range(len(self._pyramid))
        ]
        self._footprints: dict[int, np.ndarray] = {}

    def __getstate__(self) -> dict[str, Any]:
        # The pyramid is a third larger than the image and quick to rebuild: pickle the image only.
        return {"image": self.image}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["image"])

    def render(self, params: SampleParams) -> Image.Image:
        if _threads_unchecked:
            _check_threads()
        if _kernels is not None:
            return self._render_native(params)
        rgbx = self._warp(params)
        size = (params.output_size, params.output_size)
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
            rgb = _jitter(rgb, params.jitter)
        return Image.frombytes("RGB", (rgb.shape[1], rgb.shape[0]), rgb)

    def _maps(self, params: SampleParams) -> tuple[geometry.Affine, int, geometry.Affine]:
        """The output-to-resized-crop map, the pyramid level to read, and the map to its pixel indices."""
        to_resized, to_source = geometry.sample_maps(params)
        level = geometry.pyramid_level(to_source, len(self._pyramid))
        return to_resized, level, geometry.to_pixel_indices(geometry.compose(self._level_maps[level], to_source))

    def _render_native(self, params: SampleParams) -> Image.Image:
        """The native kernels: one pass for the warp and the fill, one or two for the jitter."""
        n = params.output_size
        to_resized, level, to_level = self._maps(params)
        footprint = None if _corners_inside(to_resized, n, params.resize) else to_resized
        source = self._pyramid[level]
        image = Image.new("RGB", (n, n), None)
        pixels = _pixels(image, fresh=True)
        _kernels.warp(source, source.shape[0], source.shape[1], to_level, pixels, n, footprint, float(params.resize))
        if params.debug_size is not None:
            image = _finish(image, pixels).resize((params.debug_size, params.debug_size), Image.Resampling.BILINEAR)
            pixels = _pixels(image)
        if params.jitter is not None:
            _kernels.jitter(pixels, _native_ops(params.jitter))
        return _finish(image, pixels)

    def _warp(self, params: SampleParams) -> np.ndarray:
        """OpenCV's geometry, as a 4-channel array ``output_size`` square whose last channel is padding."""
        size = (params.output_size, params.output_size)
        to_resized, level, to_level = self._maps(params)
        rgbx = cv2.warpAffine(
            self._pyramid[level], np.reshape(to_level, (2, 3)), size,
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
        )
        if not _corners_inside(to_resized, params.output_size, params.resize):
            # PIL's transform fills an output pixel whose centre maps outside the image, i.e. whose
            # floor(coordinate) leaves [0, side): exactly a nearest-neighbour lookup in a mask.
            inside = cv2.warpAffine(
                self._footprint(params.resize), np.reshape(geometry.to_pixel_indices(to_resized), (2, 3)), size,
                flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT, borderValue=0,
            )
            rgbx = cv2.copyTo(rgbx, inside)
        return rgbx

    def _footprint(self, side: int) -> np.ndarray:
        if side not in self._footprints:
            self._footprints[side] = np.full((side, side), 255, dtype=np.uint8)
        return self._footprints[side]


def _build_pyramid(image: np.ndarray) -> list[np.ndarray]:
    """Level ``k`` is ``image`` reduced ``2**k`` times by 2x2 averaging, down to one pixel.

    An odd side is first padded by repeating its last row or column, so that level ``k``'s pixel
    ``j`` covers exactly the source pixels ``[j * 2**k, (j + 1) * 2**k)`` and a level's coordinates
    are the source's divided by ``2**k``. Each level is then stored with a border of ``_BORDER``
    repeated pixels: bilinear sampling anywhere in the source reads inside it, so the warp can use
    OpenCV's constant border, which is faster than its replicated border and equal to it here.
    """
    levels = [image]
    while max(levels[-1].shape[:2]) > 1:
        prev = levels[-1]
        height, width = prev.shape[:2]
        if height % 2 or width % 2:
            prev = cv2.copyMakeBorder(prev, 0, height % 2, 0, width % 2, cv2.BORDER_REPLICATE)
        levels.append(cv2.resize(prev, ((width + 1) // 2, (height + 1) // 2), interpolation=cv2.INTER_AREA))
    return [cv2.copyMakeBorder(level, *(_BORDER,) * 4, cv2.BORDER_REPLICATE) for level in levels]


def _pixels(image: Image.Image, fresh: bool = False) -> tuple[Any, Any] | np.ndarray:
    """Where the kernels are to write the pixels of an RGB image.

    The image's own memory, as Pillow (11.2 and later) exports it through the Arrow C data
    interface: the kernels write the image in place, with no copy. Otherwise (an older Pillow, or an
    image too large for one block of Pillow's memory) a buffer holding a copy of the pixels
    (uninitialised when ``fresh``), which :func:`_finish` copies back.
    """
    try:
        return image.__arrow_c_array__()
    except (AttributeError, ValueError):
        if fresh:
            return np.empty(image.width * image.height * 4, dtype=np.uint8)
        return np.frombuffer(bytearray(image.tobytes("raw", "RGBX")), dtype=np.uint8)


def _finish(image: Image.Image, pixels: tuple[Any, Any] | np.ndarray) -> Image.Image:
    """``image`` holding the pixels written to ``pixels`` (a :func:`_pixels` result)."""
    if not isinstance(pixels, tuple):
        image.frombytes(pixels, "raw", "RGBX")
    return image


def _corners_inside(to_resized: geometry.Affine, output_size: int, side: int) -> bool:
    """Whether every output pixel centre maps inside the resized crop, so no pixel is filled.

    The output pixel centres lie in the convex hull of the four corner centres, and the crop is
    convex, so checking the corners suffices.
    """
    lo, hi = 0.5, output_size - 0.5
    for a, b, c in (to_resized[:3], to_resized[3:]):
        if c + min(a * lo, a * hi) + min(b * lo, b * hi) < 0 or c + max(a * lo, a * hi) + max(b * lo, b * hi) >= side:
            return False
    return True


_NATIVE_OP = {"brightness": 0, "contrast": 1, "saturation": 2, "hue": 3}


def _native_ops(jitter: JitterParams) -> list[tuple[int, float]]:
    """The jitter as the kernels' ``(op, value)`` list; the hue as torchvision's shift of PIL's hue byte."""
    ops = []
    for name in jitter.order:
        factor = getattr(jitter, name)
        ops.append((_NATIVE_OP[name], float(int(factor * 255) % 256) if name == "hue" else factor))
    return ops


def _jitter(rgb: np.ndarray, jitter: JitterParams) -> np.ndarray:
    for name in jitter.order:
        rgb = _ADJUST[name](rgb, getattr(jitter, name))
    return rgb


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
    # torchvision shifts PIL's 8-bit hue (255 steps per turn) by int(factor * 255), wrapping around;
    # OpenCV's *_FULL hue has 256 steps per turn, so the same angle is rescaled.
    steps = round(int(factor * 255) * 256 / 255)
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

