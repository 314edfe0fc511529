"""The fast renderer: the reference's two resamplings done where they count, from an image pyramid, then the jitter.

It has two implementations, chosen per renderer: the native kernels (the pure C kernels of
``render/kernels/``, bound to Python by ``render/_kernels.c``, an extension built with the package
when a C compiler is present) and Pillow with OpenCV (``render/_opencv.py``). Both read the image
pyramid of :mod:`~single_image_dataset.render.pyramid`, which Pillow builds. OpenCV is an optional
extra (``pip install "single_image_dataset[fast]"``) that only the OpenCV implementation needs; it is
imported when the first such renderer is built, so the package itself imports without it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import PIL
import torch
from PIL import Image
from torch.utils.data import get_worker_info

from .. import geometry
from ..params import INTERPOLATIONS, JITTER_OPS, ParamsBatch, SampleParams, hue_steps
from ..views.params import ViewParamsBatch
from .base import Renderer, register_renderer
from .functional import gaussian_kernels, pil_vertical_first
from .pyramid import build_pyramid

try:
    from . import _kernels
except ImportError:  # the optional extension was not built (no C compiler): Pillow and OpenCV do the work
    _kernels = None

__all__ = ["IMPLEMENTATIONS", "SIMD_VARIABLE", "FastRenderer", "implementation"]

IMPLEMENTATIONS = ("native", "opencv")

#: The environment variable that caps the native kernels' vector code: ``avx512`` (the default, as far as the CPU
#: runs it), ``avx2`` or ``portable``. Every level gives the same bytes; a CPU that slows down under AVX-512 may
#: render faster with ``avx2``. Read when the first :class:`FastRenderer` is built (or :func:`implementation` is
#: called) in each process, so DataLoader workers and export processes follow it too.
SIMD_VARIABLE = "SINGLE_IMAGE_DATASET_SIMD"
_SIMD_LEVELS = {"portable": 0, "avx2": 1, "avx512": 2}
_simd_unchecked = True

_INSTALL_HINT = 'backend="fast" needs OpenCV, an optional extra: pip install -e ".[fast]" in the clone'

# OpenCV's module and the OpenCV implementation (render/_opencv.py), bound by _import_opencv() when a
# FastRenderer is built.
cv2: Any = None
_opencv: Any = None

# Whether this process has yet to decide on OpenCV's threads (see FastRenderer), and whether it was
# forked from a parent that had already imported OpenCV.
_threads_unchecked = True
_opencv_inherited = False

# The kernels' code of a jitter op is its index in JITTER_OPS.
_CODES = {name: code for code, name in enumerate(JITTER_OPS)}
_HUE = _CODES["hue"]


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

    ``"native-avx512"``, ``"native-avx2"`` or ``"native"`` (the compiled kernels: with AVX-512 where a kernel
    has such a version and AVX2 for the others, with AVX2, or portable; the same bytes: the widest the CPU runs,
    at most :data:`SIMD_VARIABLE`'s), or ``"opencv"`` (Pillow and OpenCV) when the package's C extension was not
    built.

    Raises:
        ValueError: :data:`SIMD_VARIABLE` is set to something else than ``avx512``, ``avx2`` or ``portable``.
    """
    default = _default_implementation()
    if default != "native":
        return default
    _apply_simd_setting()
    return ("native", "native-avx2", "native-avx512")[_kernels.simd()]


def _apply_simd_setting() -> None:
    """Cap the native kernels' level at :data:`SIMD_VARIABLE`'s, where it is set (not empty): once per process."""
    global _simd_unchecked
    if not _simd_unchecked:
        return
    value = os.environ.get(SIMD_VARIABLE, "")
    if value.strip():
        level = _SIMD_LEVELS.get(value.strip().lower())
        if level is None:
            raise ValueError(f"{SIMD_VARIABLE}={value!r} is not a level of the native kernels: set it to avx512, "
                             "avx2 or portable, or unset it")
        _kernels.set_simd(level)
    _simd_unchecked = False


def native_available() -> bool:
    """Whether the package's C extension was built, so that the native kernels can render."""
    return _kernels is not None


def _default_implementation() -> str:
    return "native" if native_available() else "opencv"


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
    """Renders the reference's chain close to its pixels, one to two orders of magnitude faster.

    The reference resizes the crop box to the resized crop (PIL's antialiased filter: bicubic, or the
    sampled interpolation), then warps that bilinearly (affine or rotation, vertical flip, centre
    crop). This renderer does the same two resamplings, each only where it counts:

    - **resize:** from the level of an image pyramid built once per source
      (:func:`~single_image_dataset.render.pyramid.build_pyramid`, Lanczos halvings) chosen by
      :func:`~single_image_dataset.geometry.pyramid_level`, so that it scales the box's shorter side
      by a factor within sqrt(2) of 1, with PIL's filter and coefficients scaled to that, and only at
      the grid points that the warp reads (about the output's area, not the whole resized crop);
    - **warp:** bilinear from that grid, by the map :func:`~single_image_dataset.geometry.output_to_resized`,
      the grid's edge repeated as PIL repeats it; pixels that the reference fills with 0 (centre
      outside the resized crop) are found with the reference's own test and set to 0.

    The colour jitter then runs in the sampled order.

    Two implementations (``implementation``; :func:`implementation` names the default):

    - ``"native"``, the native kernels (the default wherever the package's C extension was built):
      the resize with 6-bit weights on bytes, the warp in 1/64 pixel steps with the fill in the same
      pass, and the jitter fused into one or two passes in which brightness, contrast and saturation are PIL's
      arithmetic exactly and the hue PIL's 8-bit HSV round trip up to a level at rounding boundaries.
      AVX2 versions are used where the CPU has AVX2, AVX-512 ones of the jitter and the resize where it has
      AVX-512, and they give the same bytes as the portable C version;
    - ``"opencv"`` (the default where the extension could not be compiled): Pillow's own resize of
      the level (the whole resized crop), ``cv2.warpAffine`` for the warp, a nearest-neighbour warp of
      the crop's footprint for the fill, and OpenCV colour conversions.

    The two give slightly different pixels (both within the tolerances below), so bit-for-bit
    reproducibility across machines holds between renderers that use the same implementation.
    Neither is bit-exact with the reference: the resize reads a pyramid level instead of the source,
    and rounds differently. The tests hold the native kernels to a mean PSNR against the reference of
    at least 40 dB at 64 px and 38 dB at 32 px on photographs with fine texture, faces and fine lines
    (jitter off), and every implementation to at least 30 dB with the jitter.

    OpenCV parallelises its calls over its own threads. In a DataLoader worker the OpenCV
    implementation limits OpenCV to one thread at its first render, as PyTorch does for its own threads
    there: the workers already use every core and extra threads would only compete for them. It cannot
    do so in a worker forked from a process that had already imported OpenCV (changing the thread count
    there deadlocks OpenCV), so for ``fork`` workers call ``cv2.setNumThreads(1)`` in the main process
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
        ImportError: the OpenCV implementation is asked for (or is the default) and OpenCV is not
            installed; the message names the pip command.
        ValueError: an unknown implementation, ``"native"`` where the C extension was not built, or a
            :data:`SIMD_VARIABLE` that names no level.
    """

    def __init__(self, image: Image.Image, implementation: str | None = None) -> None:
        super().__init__(image)
        self.implementation = _check_implementation(implementation)
        if self.implementation == "opencv":
            _import_opencv()
        else:
            _apply_simd_setting()
        self._pyramid = build_pyramid(image)
        # The levels as the kernels take them, or as PIL images for Pillow's resize.
        if self.implementation == "native":
            self._levels: list[Any] = [(level, level.shape[0], level.shape[1]) for level in self._pyramid]
        else:
            self._levels = [Image.fromarray(level[..., :3]) for level in self._pyramid]

    def __getstate__(self) -> dict[str, Any]:
        # The pyramid is a third larger than the image and quick to rebuild: pickle the image only.
        return {"image": self.image, "implementation": self.implementation}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["image"], state["implementation"])

    def identity(self) -> dict[str, str]:
        """The backend name, the implementation and the versions of the libraries that decide its pixels.

        The implementation is ``"native"`` for the AVX-512, AVX2 and portable kernels alike, whose bytes
        are the same, or ``"opencv"`` for Pillow and OpenCV, whose pixels differ slightly. Pillow builds
        the pyramid of either; OpenCV warps in the second.
        """
        identity = {**super().identity(), "implementation": self.implementation, "pillow": PIL.__version__}
        if self.implementation == "opencv":
            identity["opencv"] = cv2.__version__
        return identity

    def render(self, params: SampleParams) -> Image.Image:
        to_resized = geometry.output_to_resized(params)
        left, top, right, bottom = geometry.source_box(params)
        level = geometry.pyramid_level(right - left, bottom - top, params.resize, len(self._levels))
        reduction = 0.5**level  # exact, as the kernels' scaling of a batch's boxes
        box = (left * reduction, top * reduction, right * reduction, bottom * reduction)
        if self.implementation == "native":
            return _render_native(self._levels[level], box, to_resized, params)
        if _threads_unchecked:
            _check_threads()
        return _opencv.render(self._levels[level], box, to_resized, params)

    def render_batch(self, batch: ParamsBatch, out: torch.Tensor) -> None:
        """The whole batch in one call of the native kernels, written straight into ``out``'s planes.

        The maps of all samples are composed at once (:func:`~single_image_dataset.geometry.batch_output_to_resized`,
        the same numbers as one sample's); each image is rendered and jittered in a small buffer of
        RGBX pixels and split into ``out``'s three planes. Debug mode (a PIL resize after the warp) and
        the OpenCV implementation render sample by sample.
        """
        if self.implementation != "native" or batch.debug_size is not None:
            super().render_batch(batch, out)
            return
        _kernels.render_batch(self._levels, *_sample_arguments(batch, len(self._levels)), out.numpy(),
                              batch.output_size)

    def render_views(self, batch: ParamsBatch, views: Sequence[ViewParamsBatch], outs: Sequence[torch.Tensor]) -> None:
        """Every view of the batch in one call of the native kernels, written straight into ``outs``' planes.

        Each sample is rendered (and jittered) as :meth:`render_batch` renders it, into a small buffer of RGBX
        pixels, and each of its views is made from that buffer: the crop resized to the view's side with PIL's
        antialiased bilinear filter exactly as ``F.resized_crop`` resizes it on a PIL image (22-bit weights,
        along the rows then down the columns, each pass rounded to bytes), the flip in the same pass, the
        view's jitter with the sample's jitter kernels, PIL's grayscale, the split into planes, torchvision's
        Gaussian blur (its float32 kernel, :func:`~single_image_dataset.render.functional.gaussian_kernels`,
        along the rows then down the columns in single precision, reflected at the edges, rounded half to
        even) and the solarization. So a view is byte for byte
        :func:`~single_image_dataset.render.functional.apply_view` of :meth:`render`'s sample but for the
        blur (a level on a rounding boundary of torchvision's float sums can move by one) and the jitter's hue
        (as for the samples). Debug mode and the OpenCV implementation take the default path.
        """
        if self.implementation != "native" or batch.debug_size is not None:
            super().render_views(batch, views, outs)
            return
        specs = [_view_arguments(view, out) for view, out in zip(views, outs, strict=True)]
        _kernels.render_views(self._levels, *_sample_arguments(batch, len(self._levels)), batch.output_size, specs)


def _render_native(
    level: tuple[np.ndarray, int, int], box: tuple[float, ...], to_resized: geometry.Affine, params: SampleParams
) -> Image.Image:
    """The native kernels: one call for the resize, the warp and the fill, one for the jitter.

    ``level`` is the pyramid level to read (its pixels, height and width), ``box`` the resized crop's
    box in its pixels, and ``to_resized`` the map from output pixel centres to the resized crop.
    """
    n = params.output_size
    image = Image.new("RGB", (n, n), None)
    pixels = _pixels(image, fresh=True)
    _kernels.render(*level, box, INTERPOLATIONS.index(params.interpolation), params.resize, to_resized, pixels, n)
    if params.debug_size is not None:
        image = _finish(image, pixels).resize((params.debug_size, params.debug_size), Image.Resampling.BILINEAR)
        pixels = _pixels(image)
    jitter = params.jitter
    if jitter is not None:
        # The hue as the kernels take it: torchvision's shift of PIL's hue byte.
        ops = [(_CODES[name], float(hue_steps(jitter.hue)) if name == "hue" else getattr(jitter, name))
               for name in jitter.order]
        _kernels.jitter(pixels, ops)
    return _finish(image, pixels)


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


def _sample_arguments(batch: ParamsBatch, num_levels: int) -> tuple[Any, ...]:
    """A batch's samples as the kernels' ``render_batch`` and ``render_views`` take them after a pyramid of
    ``num_levels`` levels: each sample's level, box, filter, side, map (composed for all samples at once,
    :func:`~single_image_dataset.geometry.batch_output_to_resized`) and jitter."""
    to_resized = geometry.batch_output_to_resized(batch)
    left, top, right, bottom = geometry.source_box(batch)
    boxes = np.stack([left, top, right, bottom], axis=1).astype(np.float64)
    level = geometry.pyramid_level(right - left, bottom - top, batch.resize, num_levels)
    ops, values = _batch_jitter(batch)
    return level, boxes, batch.interpolation, batch.resize, np.stack(to_resized, axis=1), ops, values


def _view_arguments(view: ViewParamsBatch, out: torch.Tensor) -> tuple[Any, ...]:
    """One view of a batch as the kernels' ``render_views`` takes it: its side, the blur's taps, each row's crop,
    flags (flip, grayscale, blur, solarize, Pillow's pass order), jitter and blur kernel, and where to write."""
    blur = ~np.isnan(view.blur_sigma)
    down_first = pil_vertical_first(view.crop[:, 2], view.crop[:, 3], view.size)
    flags = np.stack([view.hflip, view.grayscale, blur, view.solarize, down_first], axis=1).astype(np.uint8)
    kernels = np.zeros((len(view), view.blur_kernel), dtype=np.float32)
    if blur.any():
        kernels[blur] = gaussian_kernels(view.blur_sigma[blur], view.blur_kernel).numpy()
    ops, values = _batch_jitter(view)
    return (view.size, view.blur_kernel, np.ascontiguousarray(view.crop), flags, ops, values, kernels, out.numpy())


def _batch_jitter(batch: ParamsBatch) -> tuple[np.ndarray, np.ndarray]:
    """Every row's jitter as the kernels' op codes in application order (-1 padded) and their values.

    The same values :func:`_render_native` passes for one sample: the factors, and the hue as
    torchvision's shift of PIL's hue byte.
    """
    ops = batch.jitter_order.astype(np.int8)  # the ops' indices in JITTER_OPS, -1 padded: the kernels' codes
    applied = ops >= 0
    values = np.take_along_axis(batch.jitter_factors, np.maximum(ops, 0).astype(np.int64), axis=1)
    hue = ops == _HUE
    values[hue] = hue_steps(values[hue])
    values[~applied] = 0.0
    return ops, values
