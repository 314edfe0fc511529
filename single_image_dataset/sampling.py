"""Drawing a sample's augmentation parameters from ``(seed, epoch, index)`` alone.

This module holds all of the library's randomness. Renderers take the frozen
:class:`~single_image_dataset.params.SampleParams` it returns and never draw a number themselves,
so every renderer renders the same augmentation. The distributions are those of torchvision's
``RandomCrop``, ``RandomResizedCrop`` (without the centre-crop fallback, as in the paper's code),
``RandomAffine`` / ``RandomRotation``, ``RandomVerticalFlip`` and ``RandomApply([ColorJitter])``.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, overload

import numpy as np

from .crops import RATIO_RANGE, crop_region
from .params import INTERPOLATIONS, JITTER_OPS, WARPS, JitterParams, ParamsBatch, SampleParams

if TYPE_CHECKING:
    from .config import AugmentConfig

try:
    from ._uniforms import sample_batch as _native_sample_batch
    from ._uniforms import stream_blocks as _native_stream_blocks
    from ._uniforms import uniforms as _native_uniforms
except ImportError:  # the optional extension was not built: numpy draws the same numbers
    _native_sample_batch = _native_stream_blocks = _native_uniforms = None

__all__ = [
    "DEBUG_SIZE",
    "index_array",
    "jitter_arrays",
    "jitter_params",
    "sample_params",
    "sample_params_batch",
    "sample_resized_crop",
    "sample_side",
    "source_sizes",
    "uniform_blocks",
    "uniform_in",
    "uniform_int",
    "uniform_stream",
]

DEBUG_SIZE = 32

# The resized crop's retries stop here: a guard that a validated config (crops.MIN_FIT_PROBABILITY)
# reaches with probability below 1e-40.
_MAX_ATTEMPTS = 10_000

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
    source = 0 if len(sizes) == 1 else uniform_int(u[_SOURCE], len(sizes))
    width, height = sizes[source]
    region = crop_region(config, sizes[source])

    crop = None
    if config.cropfirst:
        side = region[0]
        crop = (uniform_int(u[_CROP_TOP], height - side + 1), uniform_int(u[_CROP_LEFT], width - side + 1), side, side)

    resized_crop = sample_resized_crop(stream, region, config.area_range)
    interpolation = INTERPOLATIONS[uniform_int(u[_INTERP], 3)] if config.randinterp else "bicubic"

    if config.shear != 0:
        warp = "affine"
        angle = uniform_in(u[_ANGLE], -config.deg, config.deg)
        shear = (uniform_in(u[_SHEAR], -config.shear, config.shear), 0.0)
    elif config.deg != 0:
        warp, angle, shear = "rotate", uniform_in(u[_ANGLE], -config.deg, config.deg), (0.0, 0.0)
    else:
        warp, angle, shear = None, 0.0, (0.0, 0.0)

    jitter = None
    if not config.debug and u[_JITTER_APPLY] < config.jitter_p:
        jitter = jitter_params(config.jitter, u[_JITTER_FACTORS], u[_JITTER_ORDER])

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


def sample_side(config: AugmentConfig) -> int:
    """Side of the rendered samples: :data:`DEBUG_SIZE` in debug mode, else ``img_size``.

    Example:
        >>> from single_image_dataset import AugmentConfig
        >>> sample_side(AugmentConfig(img_size=64)), sample_side(AugmentConfig(img_size=64, debug=True))
        (64, 32)
    """
    return DEBUG_SIZE if config.debug else config.img_size


def source_sizes(source_size: Size | Sequence[Size]) -> list[Size]:
    """``source_size`` as a list of ``(width, height)``: one size, or the sizes of several sources.

    Raises:
        ValueError: an empty list, or a size that is not two positive integers.

    Example:
        >>> source_sizes((600, 400)), source_sizes([(600, 400), (1000, 872)])
        ([(600, 400)], [(600, 400), (1000, 872)])
    """
    if type(source_size) is list and len(source_size) == 1:  # a dataset's one source, as it passes it per sample
        size = source_size[0]
        if type(size) is tuple and len(size) == 2 and type(size[0]) is type(size[1]) is int and min(size) > 0:
            return source_size  # already the result: checked without the general path's cost
    sizes = [source_size] if len(source_size) == 2 and isinstance(source_size[0], (int, np.integer)) else source_size
    if len(sizes) == 0:
        raise ValueError("source_size should be (width, height) or a non-empty list of them, got an empty list")
    result = []
    for size in sizes:
        if len(size) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in size):
            raise ValueError(f"a source size should be (width, height) in positive pixels, got {size!r}")
        result.append((int(size[0]), int(size[1])))
    return result


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


def uniform_blocks(prefix: Sequence[int], indices: np.ndarray, suffix: Sequence[int], count: int) -> np.ndarray:
    """The first ``count`` uniforms of many streams: row ``k`` is the start of
    ``uniform_stream((*prefix, indices[k], *suffix))``.

    With the package's C extension all rows are drawn natively in one call; without it (or for integers
    of 64 bits or more) numpy draws the same numbers, stream by stream.

    Args:
        prefix: the entropy before the index, e.g. ``(seed, epoch)``.
        indices: ``int64`` non-negative indices (:func:`index_array`).
        suffix: the entropy after the index.
        count: uniforms per stream.

    Returns:
        ``float64 (len(indices), count)``.

    Example:
        >>> u = uniform_blocks((0, 0), np.array([7, 9]), (1,), 3)
        >>> u[1].tolist() == list(itertools.islice(uniform_stream((0, 0, 9, 1)), 3))
        True
    """
    indices = np.ascontiguousarray(indices, dtype=np.int64)
    out = np.empty((len(indices), count))
    if _native_stream_blocks is not None:
        try:
            _native_stream_blocks(tuple(prefix), indices, tuple(suffix), count, out)
            return out
        except OverflowError:  # integers of 64 bits or more: numpy's share
            pass
    for k, index in enumerate(indices.tolist()):
        out[k] = np.random.default_rng(np.random.SeedSequence([*prefix, index, *suffix])).random(count)
    return out


def sample_resized_crop(
    stream: Iterator[float], region: tuple[int, int], area_range: tuple[float, float]
) -> tuple[int, int, int, int]:
    """A resized-crop box ``(top, left, height, width)`` in a ``(width, height)`` region, drawn from ``stream``.

    torchvision's ``RandomResizedCrop.get_params``: an area fraction uniform in ``area_range`` and a
    log-uniform aspect ratio in :data:`~single_image_dataset.crops.RATIO_RANGE` (two uniforms), retried
    until the box fits, as in the paper's code (no centre-crop fallback); then its position (two more).
    The config and the dataset reject setups where fitting is rare
    (:func:`~single_image_dataset.crops.check_fit`).

    Raises:
        RuntimeError: no box fitted in 10,000 attempts, which a checked setup reaches with probability
            below 1e-40.

    Example:
        >>> sample_resized_crop(uniform_stream((0, 0, 7)), (436, 436), (1 / 500, 1.0))
        (234, 53, 152, 164)
    """
    width, height = region
    area = width * height
    log_lo, log_hi = math.log(RATIO_RANGE[0]), math.log(RATIO_RANGE[1])
    for _ in range(_MAX_ATTEMPTS):
        u_area, u_ratio = next(stream), next(stream)
        target_area = area * uniform_in(u_area, *area_range)
        aspect = math.exp(uniform_in(u_ratio, log_lo, log_hi))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            u_top, u_left = next(stream), next(stream)
            return (uniform_int(u_top, height - h + 1), uniform_int(u_left, width - w + 1), h, w)
    raise RuntimeError(
        f"no resized-crop box fitted a {width}x{height} region in {_MAX_ATTEMPTS} attempts; "
        "this config should have been rejected, please report it"
    )


def jitter_params(strengths: tuple[float, ...], u_factors: Sequence[float], u_order: Sequence[float]) -> JitterParams:
    """torchvision's ``ColorJitter`` draw from uniforms: the factors and the order of the ops.

    Args:
        strengths: brightness, contrast, saturation and hue strengths, as ``AugmentConfig.jitter``; an op
            of strength 0 is skipped (its factor ``None``).
        u_factors: one uniform per op, for its factor (uniform in ``[max(0, 1 - s), 1 + s]``, the hue's in
            ``[-s, s]``).
        u_order: one uniform per op; their ranks order the ops, as ``torch.randperm(4)`` would.

    Example:
        >>> p = jitter_params((0.4, 0.4, 0.0, 0.1), [0.5, 0.25, 0.5, 0.75], [0.3, 0.1, 0.9, 0.5])
        >>> p.brightness, round(p.contrast, 6), p.saturation, round(p.hue, 6), p.order
        (1.0, 0.8, None, 0.05, ('contrast', 'brightness', 'hue'))
    """
    factors = [None if bounds is None else uniform_in(u, *bounds)
               for bounds, u in zip(_jitter_ranges(tuple(strengths)), u_factors, strict=True)]
    # The ranks of i.i.d. uniforms are a uniformly random permutation, like torch.randperm(4); the
    # sort is stable, as numpy's argsort(kind="stable") that earlier versions used.
    ranked = sorted(range(len(JITTER_OPS)), key=u_order.__getitem__)
    order = tuple(JITTER_OPS[i] for i in ranked if factors[i] is not None)
    return JitterParams(*factors, order=order)


def _jitter_range(name: str, strength: float) -> tuple[float, float]:
    """The range of a jitter op's factor: ``[-s, s]`` for the hue, ``[max(0, 1 - s), 1 + s]`` for the others."""
    return (-strength, strength) if name == "hue" else (max(0.0, 1.0 - strength), 1.0 + strength)


@functools.lru_cache(maxsize=64)
def _jitter_ranges(strengths: tuple[float, ...]) -> tuple[tuple[float, float] | None, ...]:
    """Each op's :func:`_jitter_range`, ``None`` for a skipped op (strength 0): once per config, not per sample."""
    return tuple(None if strength == 0 else _jitter_range(name, strength)
                 for name, strength in zip(JITTER_OPS, strengths, strict=True))


@overload
def uniform_in(u: float, lo: float, hi: float) -> float: ...
@overload
def uniform_in(u: np.ndarray, lo: float | np.ndarray, hi: float | np.ndarray) -> np.ndarray: ...
def uniform_in(u: float | np.ndarray, lo: float | np.ndarray, hi: float | np.ndarray) -> float | np.ndarray:
    """A value uniform in ``[lo, hi)`` from a uniform ``u`` in ``[0, 1)``: ``lo + (hi - lo) * u``, elementwise
    for an array (the same IEEE arithmetic, so a batch draws what one sample draws).

    Example:
        >>> uniform_in(0.5, -0.1, 0.1), uniform_in(0.25, 0.0, 4.0)
        (0.0, 1.0)
    """
    value = lo + (hi - lo) * u
    return value if isinstance(value, np.ndarray) else float(value)


@overload
def uniform_int(u: float, n: int) -> int: ...
@overload
def uniform_int(u: np.ndarray, n: int | np.ndarray) -> np.ndarray: ...
def uniform_int(u: float | np.ndarray, n: int | np.ndarray) -> int | np.ndarray:
    """Uniform integer in ``[0, n)`` from a uniform ``u`` in ``[0, 1)``: ``floor(u * n)``, clamped below ``n``;
    elementwise (``int64``) for an array, with the same truncation and clamp.

    Example:
        >>> uniform_int(0.0, 3), uniform_int(0.5, 3), uniform_int(0.9999999999999999, 3)
        (0, 1, 2)
    """
    if isinstance(u, np.ndarray):
        return np.minimum((u * n).astype(np.int64), n - 1)
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
    idx = index_array(indices)
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
            [
                uniform_int(u[:, _CROP_TOP], height - side + 1),
                uniform_int(u[:, _CROP_LEFT], width - side + 1),
                side,
                side,
            ],
            axis=1,
        )
    if config.randinterp:
        interpolation = uniform_int(u[:, _INTERP], len(INTERPOLATIONS)).astype(np.int8)
    else:
        interpolation = np.full(n, INTERPOLATIONS.index("bicubic"), dtype=np.int8)
    angle, shear = np.zeros(n), np.zeros((n, 2))
    if config.shear != 0:
        warp = "affine"
        angle = uniform_in(u[:, _ANGLE], -config.deg, config.deg)
        shear[:, 0] = uniform_in(u[:, _SHEAR], -config.shear, config.shear)
    elif config.deg != 0:
        warp, angle = "rotate", uniform_in(u[:, _ANGLE], -config.deg, config.deg)
    else:
        warp = None
    vflip = (u[:, _VFLIP] < 0.5) if config.vflip else np.zeros(n, dtype=np.bool_)
    jitter_on = np.zeros(n, dtype=np.bool_) if config.debug else u[:, _JITTER_APPLY] < config.jitter_p
    factors, order = jitter_arrays(config.jitter, u[:, _JITTER_FACTORS], u[:, _JITTER_ORDER], jitter_on)
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


def index_array(indices: Sequence[int] | np.ndarray) -> np.ndarray:
    """``indices`` as a contiguous ``int64`` array of non-negative values below 2**63.

    Raises:
        ValueError: an index is negative or not below 2**63, or ``indices`` is empty or not one-dimensional.
        TypeError: ``indices`` holds something other than integers.
    """
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


def jitter_arrays(
    strengths: tuple[float, ...], u_factors: np.ndarray, u_order: np.ndarray, on: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`jitter_params` for a batch, as :class:`~single_image_dataset.params.ParamsBatch` holds it.

    Args:
        strengths: brightness, contrast, saturation and hue strengths.
        u_factors: ``(N, 4)`` uniforms, one per op, for the factors.
        u_order: ``(N, 4)`` uniforms whose ranks order the ops.
        on: ``bool (N,)``: the rows whose jitter applies.

    Returns:
        ``(factors, order)``: ``float64 (N, 4)`` factors in :data:`~single_image_dataset.params.JITTER_OPS` order,
        NaN for a skipped op and on rows that are off; ``int8 (N, 4)`` op indices in application order, padded
        with -1. Row ``k`` is what :func:`jitter_params` draws from row ``k``'s uniforms.
    """
    # Each op's range as jitter_params draws it (NaN for an op that is off), all columns at once.
    ranges = [(np.nan, np.nan) if bounds is None else bounds for bounds in _jitter_ranges(tuple(strengths))]
    lo, hi = np.array(ranges).T
    factors = np.where(on[:, None], uniform_in(u_factors, lo, hi), np.nan)
    # The ops in the order of their draws (a stable sort), the active ones first, keeping their order:
    # one sort, with the inactive ops' keys (draws in [0, 1)) moved past every active one's. Pad with -1.
    active = np.array([s != 0 for s in strengths]) & on[:, None]
    ranked = np.argsort(np.where(active, u_order, 2.0 + u_order), axis=1, kind="stable")
    order = ranked.astype(np.int8)
    order[~np.take_along_axis(active, ranked, axis=1)] = -1
    return factors, order
