"""The fast renderer: the reference's geometry as one warp from an image pyramid, then the colour jitter.

It has two implementations, chosen per renderer: the native kernels (the pure C kernels of
``render/kernels/``, bound to Python by ``render/_kernels.c``, an extension built with the package
when a C compiler is present) and OpenCV alone (``render/_opencv.py``). Both read an image pyramid
that OpenCV builds. OpenCV is an optional extra (``pip install "single_image_dataset[fast]"``),
imported when the first :class:`FastRenderer` is built, so the package itself imports without it.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import get_worker_info

from .. import geometry
from ..params import JITTER_OPS, ParamsBatch, SampleParams, hue_steps
from .base import Renderer, register_renderer

try:
    from . import _kernels
except ImportError:  # the optional extension was not built (no C compiler): OpenCV does all the work
    _kernels = None

__all__ = ["IMPLEMENTATIONS", "FastRenderer", "implementation"]

IMPLEMENTATIONS = ("native", "opencv")

_INSTALL_HINT = 'backend="fast" needs OpenCV, an optional extra: pip install -e ".[fast]" in the clone'

# OpenCV's module and the OpenCV implementation (render/_opencv.py), bound by _import_opencv() when a
# FastRenderer is built.
cv2: Any = None
_opencv: Any = None

# Whether this process has yet to decide on OpenCV's threads (see FastRenderer), and whether it was
# forked from a parent that had already imported OpenCV.
_threads_unchecked = True
_opencv_inherited = False

# Width of the replicated border around each pyramid level.
_BORDER = 1

# The kernels' codes of the jitter ops.
_NATIVE_OP = {"brightness": 0, "contrast": 1, "saturation": 2, "hue": 3}


def _import_opencv() -> None:
    global cv2, _opencv
    try:
        import cv2 as module
    except ImportError:
        raise ImportError(_INSTALL_HINT) from None
    from . import _opencv as opencv_implementation

    cv2, _opencv = module, opencv_implementation


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
    """Which implementation a :class:`FastRenderer` uses by default in this process.

    ``"native-avx2"`` or ``"native"`` (the compiled kernels, vectorised or portable: the same
    bytes), or ``"opencv"`` when the package's C extension was not built.
    """
    default = _default_implementation()
    return "native-avx2" if default == "native" and _kernels.simd() else default


def _default_implementation() -> str:
    return "opencv" if _kernels is None else "native"


def _check_implementation(name: str | None) -> str:
    if name is None:
        return _default_implementation()
    if name not in IMPLEMENTATIONS:
        names = ", ".join(map(repr, IMPLEMENTATIONS))
        raise ValueError(f"implementation should be {names} or None (the default), got {name!r}")
    if name == "native" and _kernels is None:
        raise ValueError(
            'implementation="native" needs the C extension single_image_dataset.render._kernels, which was not '
            'built (no C compiler at install); use implementation="opencv" or reinstall with a C compiler'
        )
    return name


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

    Two implementations (``implementation``; :func:`implementation` names the default):

    - ``"native"``, the native kernels (the default wherever the package's C extension was built):
      the warp and the black fill in one pass, and the jitter fused into one or two passes in which
      brightness, contrast and saturation are PIL's arithmetic exactly and the hue PIL's 8-bit HSV
      round trip up to a level at rounding boundaries. An AVX2 version is used where the CPU has it
      and gives the same bytes as the portable C version;
    - ``"opencv"``, OpenCV alone (the default where the extension could not be compiled):
      ``cv2.warpAffine``, a nearest-neighbour warp of the crop's footprint for the fill, and OpenCV
      colour conversions.

    The two give slightly different pixels (both within the tolerances below), so bit-for-bit
    reproducibility across machines holds between renderers that use the same implementation.
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
        implementation: ``"native"``, ``"opencv"``, or ``None`` for the native kernels where the C
            extension was built and OpenCV elsewhere.

    Attributes:
        implementation: the implementation in use, ``"native"`` or ``"opencv"``.

    Raises:
        ImportError: OpenCV is not installed; the message names the pip command.
        ValueError: an unknown implementation, or ``"native"`` where the C extension was not built.
    """

    def __init__(self, image: Image.Image, implementation: str | None = None) -> None:
        super().__init__(image)
        self.implementation = _check_implementation(implementation)
        _import_opencv()
        # RGBX, four bytes per pixel: OpenCV's vectorised warp handles RGBA far faster than RGB.
        self._pyramid = _build_pyramid(np.array(image.convert("RGBA")))
        # Level k holds the source reduced 2**k times, behind a border of _BORDER pixels.
        self._level_maps = [
            (0.5**k, 0.0, float(_BORDER), 0.0, 0.5**k, float(_BORDER)) for k in range(len(self._pyramid))
        ]
        # The levels as the batch kernel takes them.
        self._levels = [(level, level.shape[0], level.shape[1]) for level in self._pyramid]

    def __getstate__(self) -> dict[str, Any]:
        # The pyramid is a third larger than the image and quick to rebuild: pickle the image only.
        return {"image": self.image, "implementation": self.implementation}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["image"], state["implementation"])

    def identity(self) -> dict[str, str]:
        """The backend name, the implementation and the version of OpenCV (which builds the pyramid).

        The implementation is ``"native"`` for the AVX2 and the portable kernels alike, whose bytes
        are the same, or ``"opencv"`` for OpenCV alone, whose pixels differ slightly.
        """
        return {**super().identity(), "implementation": self.implementation, "opencv": cv2.__version__}

    def render(self, params: SampleParams) -> Image.Image:
        if _threads_unchecked:
            _check_threads()
        to_resized, to_source = geometry.sample_maps(params)
        level = geometry.pyramid_level(to_source, len(self._pyramid))
        to_level = geometry.to_pixel_indices(geometry.compose(self._level_maps[level], to_source))
        footprint = None if geometry.covers_output(to_resized, params.output_size, params.resize) else to_resized
        render = _render_native if self.implementation == "native" else _opencv.render
        return render(self._pyramid[level], to_level, footprint, params)

    def render_batch(self, batch: ParamsBatch, out: torch.Tensor) -> None:
        """The whole batch in one call of the native kernels, written straight into ``out``'s planes.

        The maps of all samples are composed at once (:func:`~single_image_dataset.geometry.batch_maps`,
        the same numbers as one sample's); each image is warped and jittered in a small buffer of
        RGBX pixels and split into ``out``'s three planes. Debug mode (a PIL resize after the warp) and
        the OpenCV implementation render sample by sample.
        """
        if self.implementation != "native" or batch.debug_size is not None:
            super().render_batch(batch, out)
            return
        if _threads_unchecked:
            _check_threads()
        to_resized, to_source = geometry.batch_maps(batch)
        level = np.asarray(geometry.pyramid_level(to_source, len(self._pyramid)), dtype=np.int64)
        level_scale = np.ldexp(1.0, -level)  # 0.5 ** level, exactly
        to_level = geometry.compose((level_scale, 0.0, float(_BORDER), 0.0, level_scale, float(_BORDER)), to_source)
        matrices = np.stack(geometry.to_pixel_indices(to_level), axis=1)
        footprints = np.stack(to_resized, axis=1)
        footprints[geometry.covers_output(to_resized, batch.output_size, batch.resize), 0] = np.nan
        ops, values = _batch_jitter(batch)
        _kernels.render_batch(self._levels, level, matrices, footprints, float(batch.resize), ops, values,
                              out.numpy(), batch.output_size)


def _render_native(
    source: np.ndarray, to_level: geometry.Affine, footprint: geometry.Affine | None, params: SampleParams
) -> Image.Image:
    """The native kernels: one pass for the warp and the fill, one or two for the jitter.

    ``source`` is the pyramid level to read, ``to_level`` the map from output pixel indices to its
    pixel indices, and ``footprint`` the map to the resized crop outside which pixels are 0, or
    ``None`` where no pixel is.
    """
    n = params.output_size
    image = Image.new("RGB", (n, n), None)
    pixels = _pixels(image, fresh=True)
    _kernels.warp(source, source.shape[0], source.shape[1], to_level, pixels, n, footprint, float(params.resize))
    if params.debug_size is not None:
        image = _finish(image, pixels).resize((params.debug_size, params.debug_size), Image.Resampling.BILINEAR)
        pixels = _pixels(image)
    if params.jitter is not None:
        # The hue as the kernels take it: torchvision's shift of PIL's hue byte.
        ops = [(_NATIVE_OP[name], float(hue_steps(f)) if name == "hue" else f) for name, f in params.jitter.ops()]
        _kernels.jitter(pixels, ops)
    return _finish(image, pixels)


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


def _batch_jitter(batch: ParamsBatch) -> tuple[np.ndarray, np.ndarray]:
    """Every row's jitter as the kernels' op codes in application order (-1 padded) and their values.

    The same values :func:`_render_native` passes for one sample: the factors, and the hue as
    torchvision's shift of PIL's hue byte.
    """
    order = batch.jitter_order.astype(np.int64)
    applied = order >= 0
    codes = np.array([_NATIVE_OP[name] for name in JITTER_OPS], dtype=np.int8)
    ops = np.where(applied, codes[np.maximum(order, 0)], -1).astype(np.int8)
    values = np.take_along_axis(batch.jitter_factors, np.maximum(order, 0), axis=1)
    hue = ops == _NATIVE_OP["hue"]
    values[hue] = hue_steps(values[hue])
    values[~applied] = 0.0
    return ops, values
