"""Drawing a sample's augmentation parameters from ``(seed, epoch, index)`` alone.

This module holds all of the library's randomness. Renderers take the frozen
:class:`~single_image_dataset.params.SampleParams` it returns and never draw a number themselves,
so every renderer renders the same augmentation. The distributions are those of torchvision's
``RandomCrop``, ``RandomResizedCrop`` (without the centre-crop fallback, as in the paper's code),
``RandomAffine`` / ``RandomRotation``, ``RandomVerticalFlip`` and ``RandomApply([ColorJitter])``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, overload

import numpy as np

from .params import INTERPOLATIONS, JITTER_OPS, WARPS, JitterParams, ParamsBatch, SampleParams

if TYPE_CHECKING:
    from .config import AugmentConfig

try:
    from ._uniforms import sample_batch as _native_sample_batch
    from ._uniforms import uniforms as _native_uniforms
except ImportError:  # the optional extension was not built: numpy draws the same numbers
    _native_sample_batch = _native_uniforms = None

__all__ = [
    "DEBUG_SIZE",
    "MIN_FIT_PROBABILITY",
    "check_fit",
    "crop_region",
    "fit_probability",
    "sample_params",
    "sample_params_batch",
    "source_sizes",
    "uniform_stream",
]

RATIO_RANGE = (3.0 / 4.0, 4.0 / 3.0)
DEBUG_SIZE = 32

# Configs and sources whose crop box fits less often than this are rejected up front, so the
# retry loop of the resized crop ends after ~1/p tries; _MAX_ATTEMPTS is a guard that a validated
# config reaches with probability below 1e-40.
MIN_FIT_PROBABILITY = 0.01
_MAX_ATTEMPTS = 10_000

# The config alone is checked on a square this large, where the rounding of the crop box is
# negligible; the dataset checks again on its real source (check_fit).
_NOMINAL_SIDE = 4096

# Positions in the fixed block of uniforms drawn first for every sample. Each stage owns its
# slots, so switching one augmentation on or off leaves the others' parameters unchanged; the
# resized crop's variable number of retries draws after the block.
_CROP_TOP, _CROP_LEFT, _INTERP, _ANGLE, _SHEAR, _VFLIP, _JITTER_APPLY = range(7)
_JITTER_FACTORS = slice(7, 11)
_JITTER_ORDER = slice(11, 15)
_BLOCK = 15
# With several sources, one more slot after the block draws the sample's source. A single source
# draws no slot, so its streams are those of a single-image dataset.
_SOURCE = 15

# Uniforms the native stream computes at once: the block and eight resized-crop attempts. A sample
# that needs more goes on with numpy, from the same stream.
_ATTEMPTS_AHEAD = 8
_FIRST_DRAW = _BLOCK + 2 * _ATTEMPTS_AHEAD + 2


Size = tuple[int, int]


def sample_params(
    config: AugmentConfig, source_size: Size | Sequence[Size], index: int, epoch: int = 0
) -> SampleParams:
    """Draw the parameters of sample ``index`` of epoch ``epoch``.

    A pure function of its arguments: every number comes from the uniforms of
    ``numpy.random.default_rng(SeedSequence([config.seed, epoch, index])).random()``, in order
    (:func:`uniform_stream`); no global random state is read or changed.

    Args:
        config: the augmentation config (its ``seed`` is used).
        source_size: ``(width, height)`` of the source image, PIL's order; for a dataset of several
            sources, the list of their sizes: the sample's source is then drawn uniformly from a slot
            of its own after the fixed block, and its size decides the crops.
        index: non-negative sample index.
        epoch: non-negative epoch; epoch 0 is the fixed dataset.

    Example:
        >>> from single_image_dataset import AugmentConfig
        >>> p = sample_params(AugmentConfig(img_size=64), (1000, 872), index=0)
        >>> p.crop, p.resized_crop, p.resize, p.output_size
        ((278, 152, 436, 436), (147, 69, 165, 204), 90, 64)
    """
    sizes = source_sizes(source_size)
    stream = uniform_stream((config.seed, epoch, index))
    u = tuple(itertools.islice(stream, _BLOCK if len(sizes) == 1 else _BLOCK + 1))
    source = 0 if len(sizes) == 1 else _randint(u[_SOURCE], len(sizes))
    width, height = sizes[source]
    region = crop_region(config, sizes[source])

    crop = None
    if config.cropfirst:
        side = region[0]
        crop = (_randint(u[_CROP_TOP], height - side + 1), _randint(u[_CROP_LEFT], width - side + 1), side, side)

    resized_crop = _sample_resized_crop(stream, region, config.area_range)
    interpolation = INTERPOLATIONS[_randint(u[_INTERP], 3)] if config.randinterp else "bicubic"

    if config.shear != 0:
        warp = "affine"
        angle = _uniform(u[_ANGLE], -config.deg, config.deg)
        shear = (_uniform(u[_SHEAR], -config.shear, config.shear), 0.0)
    elif config.deg != 0:
        warp, angle, shear = "rotate", _uniform(u[_ANGLE], -config.deg, config.deg), (0.0, 0.0)
    else:
        warp, angle, shear = None, 0.0, (0.0, 0.0)

    jitter = None
    if not config.debug and u[_JITTER_APPLY] < config.jitter_p:
        jitter = _jitter_params(config.jitter, u[_JITTER_FACTORS], u[_JITTER_ORDER])

    return SampleParams(
        crop=crop,
        resized_crop=resized_crop,
        resize=config.resize_size,
        interpolation=interpolation,
        warp=warp,
        angle=angle,
        shear=shear,
        vflip=bool(config.vflip and u[_VFLIP] < 0.5),
        output_size=config.img_size,
        debug_size=DEBUG_SIZE if config.debug else None,
        jitter=jitter,
        source=source,
    )


def source_sizes(source_size: Size | Sequence[Size]) -> list[Size]:
    """``source_size`` as a list of ``(width, height)``: one size, or the sizes of several sources.

    Raises:
        ValueError: an empty list, or a size that is not two positive integers.

    Example:
        >>> source_sizes((600, 400)), source_sizes([(600, 400), (1000, 872)])
        ([(600, 400)], [(600, 400), (1000, 872)])
    """
    sizes = [source_size] if len(source_size) == 2 and isinstance(source_size[0], (int, np.integer)) else source_size
    if len(sizes) == 0:
        raise ValueError("source_size should be (width, height) or a non-empty list of them, got an empty list")
    result = []
    for size in sizes:
        if len(size) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in size):
            raise ValueError(f"a source size should be (width, height) in positive pixels, got {size!r}")
        result.append((int(size[0]), int(size[1])))
    return result


def crop_region(config: AugmentConfig, source_size: tuple[int, int]) -> tuple[int, int]:
    """``(width, height)`` of the region the resized crop is drawn from: the initial square crop, or the source.

    Example:
        >>> from single_image_dataset import AugmentConfig
        >>> crop_region(AugmentConfig(), (1000, 872)), crop_region(AugmentConfig(cropfirst=False), (1000, 872))
        ((436, 436), (1000, 872))
    """
    width, height = source_size
    if config.cropfirst:
        side = int(config.initcrop * min(width, height))
        return (side, side)
    return (width, height)


def check_fit(config: AugmentConfig, source_size: tuple[int, int] | None = None) -> None:
    """Reject a setup in which the resized-crop box fits its region too rarely for sampling to end soon.

    Args:
        config: the augmentation config.
        source_size: ``(width, height)`` of the source image; ``None`` checks the config alone, on a
            region so large that only its ``scale`` matters.

    Raises:
        ValueError: the initial crop would be 0 px, or a resized-crop attempt fits less often than
            :data:`MIN_FIT_PROBABILITY`; the message says what to change.
    """
    if source_size is None:
        p = fit_probability(_NOMINAL_SIDE, _NOMINAL_SIDE, config.area_range)
        if p < MIN_FIT_PROBABILITY:
            raise ValueError(
                f"scale={config.scale} makes the resized-crop box fit only {p:.2%} of the time, so "
                "sampling would practically hang; lower the minimum area fraction (raise scale[0])"
            )
        return
    width, height = source_size
    region = crop_region(config, source_size)
    if config.cropfirst and region[0] < 1:
        raise ValueError(
            f"image of {width}x{height} px is too small for initcrop={config.initcrop:g}: the initial "
            "crop would be 0 px; use a larger image or raise initcrop"
        )
    p = fit_probability(*region, config.area_range)
    if p < MIN_FIT_PROBABILITY:
        raise ValueError(
            f"image of {width}x{height} px is too small or too elongated for the crops: a resized-crop box "
            f"of scale={config.scale} fits its {region[0]}x{region[1]} px region only {p:.2%} of the time; "
            "use a larger image, cropfirst, or a smaller scale[0]"
        )


def fit_probability(
    width: int, height: int, area_range: tuple[float, float], ratio_range: tuple[float, float] = RATIO_RANGE
) -> float:
    """Probability that one resized-crop attempt yields a box inside a ``width`` x ``height`` region.

    Evaluated on a 256x256 midpoint grid over (area fraction, log aspect ratio), with the same
    rounding as the sampler, so it also sees boxes that round to 0 px on tiny regions.
    """
    n = 256
    t = (np.arange(n) + 0.5) / n
    fraction = area_range[0] + (area_range[1] - area_range[0]) * t[:, None]
    log_lo, log_hi = math.log(ratio_range[0]), math.log(ratio_range[1])
    ratio = np.exp(log_lo + (log_hi - log_lo) * t[None, :])
    target = fraction * (width * height)
    w = np.round(np.sqrt(target * ratio))
    h = np.round(np.sqrt(target / ratio))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    return float(fits.mean())


def uniform_stream(entropy: tuple[int, ...]) -> Iterator[float]:
    """The doubles of ``numpy.random.default_rng(numpy.random.SeedSequence(entropy)).random()``, in order.

    An endless iterator. Where the package's optional C extension was built, it computes the first
    ones natively, bit for bit the same as numpy and some 50 times faster than building numpy's
    generator; numpy gives the rest, and all of them where the extension is missing.
    """
    drawn = 0
    if _native_uniforms is not None:
        try:
            first = _native_uniforms(entropy, _FIRST_DRAW)
        except OverflowError:  # integers of 64 bits or more: numpy's share
            first = ()
        yield from first
        drawn = len(first)
    rng = np.random.default_rng(np.random.SeedSequence(list(entropy)))
    rng.random(drawn)  # the ones already given
    while True:
        yield from rng.random(64).tolist()


def _sample_resized_crop(
    stream: Iterator[float], region: tuple[int, int], area_range: tuple[float, float]
) -> tuple[int, int, int, int]:
    # torchvision's RandomResizedCrop.get_params, retried until the box fits as in the paper's
    # code; the config and the dataset reject setups where fitting is rare (fit_probability).
    width, height = region
    area = width * height
    log_lo, log_hi = math.log(RATIO_RANGE[0]), math.log(RATIO_RANGE[1])
    for _ in range(_MAX_ATTEMPTS):
        u_area, u_ratio = next(stream), next(stream)
        target_area = area * _uniform(u_area, *area_range)
        aspect = math.exp(_uniform(u_ratio, log_lo, log_hi))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            u_top, u_left = next(stream), next(stream)
            return (_randint(u_top, height - h + 1), _randint(u_left, width - w + 1), h, w)
    raise RuntimeError(
        f"no resized-crop box fitted a {width}x{height} region in {_MAX_ATTEMPTS} attempts; "
        "this config should have been rejected, please report it"
    )


def _jitter_params(strengths: tuple[float, ...], u_factors: Sequence[float], u_order: Sequence[float]) -> JitterParams:
    factors: dict[str, float | None] = {}
    for name, strength, u in zip(JITTER_OPS, strengths, u_factors, strict=True):
        if strength == 0:
            factors[name] = None
        elif name == "hue":
            factors[name] = _uniform(u, -strength, strength)
        else:
            factors[name] = _uniform(u, max(0.0, 1.0 - strength), 1.0 + strength)
    # The ranks of i.i.d. uniforms are a uniformly random permutation, like torch.randperm(4); the
    # sort is stable, as numpy's argsort(kind="stable") that earlier versions used.
    ranked = sorted(range(len(JITTER_OPS)), key=u_order.__getitem__)
    order = tuple(JITTER_OPS[i] for i in ranked if factors[JITTER_OPS[i]] is not None)
    return JitterParams(**factors, order=order)


@overload
def _uniform(u: float, lo: float, hi: float) -> float: ...
@overload
def _uniform(u: np.ndarray, lo: float, hi: float) -> np.ndarray: ...
def _uniform(u: float | np.ndarray, lo: float, hi: float) -> float | np.ndarray:
    value = lo + (hi - lo) * u
    return value if isinstance(value, np.ndarray) else float(value)


def _randint(u: float, n: int) -> int:
    """Uniform integer in ``[0, n)`` from a uniform ``u`` in ``[0, 1)``."""
    return min(int(u * n), n - 1)



def sample_params_batch(
    config: AugmentConfig, source_size: Size | Sequence[Size], indices: Sequence[int] | np.ndarray, epoch: int = 0
) -> ParamsBatch:
    """The parameters of samples ``indices`` of epoch ``epoch``, drawn in bulk.

    Row ``k`` equals ``sample_params(config, source_size, indices[k], epoch)`` exactly: the same
    per-index streams, the same arithmetic. With the package's C extension the streams and the
    resized crop's retries run natively and the rest is vectorised (about a microsecond per sample);
    without it each sample is drawn by :func:`sample_params`.

    Args:
        config: the augmentation config.
        source_size: ``(width, height)`` of the source image, or the list of several sources' sizes
            (as for :func:`sample_params`).
        indices: non-negative sample indices (any integer sequence or array).
        epoch: non-negative epoch.

    Raises:
        ValueError: an index is negative or not below 2**63, or ``indices`` is empty.
        TypeError: ``indices`` holds something other than integers.

    Example:
        >>> from single_image_dataset import AugmentConfig
        >>> cfg = AugmentConfig(img_size=64)
        >>> batch = sample_params_batch(cfg, (1000, 872), [0, 5, 7])
        >>> batch.to_list() == [sample_params(cfg, (1000, 872), i) for i in (0, 5, 7)]
        True
    """
    idx = _index_array(indices)
    sizes = source_sizes(source_size)
    if _native_sample_batch is None or not 0 <= epoch < 2**63:
        return ParamsBatch.from_list([sample_params(config, sizes, int(i), epoch) for i in idx.tolist()])
    n = len(idx)
    block = _BLOCK if len(sizes) == 1 else _BLOCK + 1
    regions = np.array([crop_region(config, size) for size in sizes], dtype=np.int64)
    u = np.empty((n, block))
    boxes = np.empty((n, 4), dtype=np.int64)
    source = np.empty(n, dtype=np.int64)
    log_ratio = (math.log(RATIO_RANGE[0]), math.log(RATIO_RANGE[1]))
    try:
        _native_sample_batch(config.seed, epoch, idx, block, regions, config.area_range, log_ratio, _MAX_ATTEMPTS,
                             u, boxes, source)
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}; this config should have been rejected, please report it") from None

    crop = None
    if config.cropfirst:
        width, height = np.array(sizes, dtype=np.int64)[source].T
        side = regions[source, 0]
        crop = np.stack(
            [_randint_array(u[:, _CROP_TOP], height - side + 1), _randint_array(u[:, _CROP_LEFT], width - side + 1),
             side, side],
            axis=1,
        )
    if config.randinterp:
        interpolation = _randint_array(u[:, _INTERP], len(INTERPOLATIONS)).astype(np.int8)
    else:
        interpolation = np.full(n, INTERPOLATIONS.index("bicubic"), dtype=np.int8)
    angle, shear = np.zeros(n), np.zeros((n, 2))
    if config.shear != 0:
        warp = "affine"
        angle = _uniform(u[:, _ANGLE], -config.deg, config.deg)
        shear[:, 0] = _uniform(u[:, _SHEAR], -config.shear, config.shear)
    elif config.deg != 0:
        warp, angle = "rotate", _uniform(u[:, _ANGLE], -config.deg, config.deg)
    else:
        warp = None
    vflip = (u[:, _VFLIP] < 0.5) if config.vflip else np.zeros(n, dtype=np.bool_)
    jitter_on = np.zeros(n, dtype=np.bool_) if config.debug else u[:, _JITTER_APPLY] < config.jitter_p
    factors, order = _jitter_arrays(config.jitter, u[:, _JITTER_FACTORS], u[:, _JITTER_ORDER], jitter_on)
    return ParamsBatch(
        crop=crop,
        resized_crop=boxes,
        resize=config.resize_size,
        interpolation=interpolation,
        warp=np.full(n, WARPS.index(warp), dtype=np.int8),
        angle=np.asarray(angle, dtype=np.float64),
        shear=shear,
        vflip=vflip,
        output_size=config.img_size,
        debug_size=DEBUG_SIZE if config.debug else None,
        jitter_on=jitter_on,
        jitter_factors=factors,
        jitter_order=order,
        source=source,
    )


def _index_array(indices: Sequence[int] | np.ndarray) -> np.ndarray:
    """``indices`` as a contiguous int64 array of non-negative values, with a clear error otherwise."""
    array = np.asarray(indices)
    if array.ndim != 1:
        raise ValueError(f"indices should be a one-dimensional sequence of integers, got shape {array.shape}")
    if len(array) == 0:
        raise ValueError("indices should hold at least one index, got an empty sequence")
    if array.dtype.kind not in "iuO":
        raise TypeError(f"indices should be integers, got {array.dtype} values such as {array[0]!r}")
    if array.dtype.kind == "O":
        values = array.tolist()
        bad = next((i for i in values if not isinstance(i, (int, np.integer)) or isinstance(i, bool)), None)
        if bad is not None:
            raise TypeError(f"indices should be integers, got {type(bad).__name__} {bad!r}")
        low, high = min(values), max(values)
    else:
        low, high = int(array.min()), int(array.max())
    if low < 0:
        raise ValueError(f"indices should be non-negative, got {low}")
    if high >= 2**63:
        raise ValueError(f"indices should be below 2**63, got {high}")
    return np.ascontiguousarray(array, dtype=np.int64)


def _randint_array(u: np.ndarray, n: int | np.ndarray) -> np.ndarray:
    """:func:`_randint` elementwise: the same truncation and clamp."""
    return np.minimum((u * n).astype(np.int64), n - 1)


def _jitter_arrays(
    strengths: tuple[float, ...], u_factors: np.ndarray, u_order: np.ndarray, on: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_jitter_params` for a batch: factors (NaN where skipped) and the op order (-1 padded)."""
    n = len(on)
    factors = np.full((n, len(JITTER_OPS)), np.nan)
    for j, (name, strength) in enumerate(zip(JITTER_OPS, strengths, strict=True)):
        if strength == 0:
            continue
        if name == "hue":
            factors[:, j] = _uniform(u_factors[:, j], -strength, strength)
        else:
            factors[:, j] = _uniform(u_factors[:, j], max(0.0, 1.0 - strength), 1.0 + strength)
    factors[~on] = np.nan
    ranked = np.argsort(u_order, axis=1, kind="stable")
    active = np.array([s != 0 for s in strengths])[ranked] & on[:, None]
    # Move the active ops to the front, keeping their order; pad with -1.
    front = np.argsort(~active, axis=1, kind="stable")
    order = np.take_along_axis(ranked, front, axis=1).astype(np.int8)
    order[~np.take_along_axis(active, front, axis=1)] = -1
    return factors, order
