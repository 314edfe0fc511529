"""Drawing the views' parameters from ``(seed, epoch, index, view)`` alone, as ``..sampling`` does for samples.

View ``v`` of sample ``index`` reads a stream of its own, ``SeedSequence([seed, epoch, index,
VIEW_STREAM_TAG, v])`` (:func:`view_entropy`), disjoint from every sample's stream: so ``views=`` leaves the
samples' parameters unchanged, and appending a view leaves the earlier views unchanged. Each view reads a fixed
block of :data:`VIEW_BLOCK` uniforms, each step its own slots, so a batch is drawn as arrays (one native call
per view for the streams, numpy for the rest) and row ``k`` of a batch is what sample ``indices[k]`` draws
alone. The distributions are torchvision's ``RandomResizedCrop.get_params`` (ten attempts, then its centre
fallback), ``ColorJitter.get_params``, ``GaussianBlur.get_params`` and the ``p`` of ``RandomApply``,
``RandomHorizontalFlip``, ``RandomGrayscale`` and ``RandomSolarize``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..sampling import index_array, jitter_arrays, sample_side, uniform_blocks, uniform_in, uniform_int
from .config import View
from .params import ViewParams, ViewParamsBatch

if TYPE_CHECKING:
    from ..config import AugmentConfig

__all__ = ["CROP_ATTEMPTS", "VIEW_BLOCK", "VIEW_STREAM_TAG", "sample_view_params", "sample_view_params_batch",
           "view_entropy"]

#: The fourth integer of every view's stream; both of its 32-bit words are at least 2**31. numpy hashes an entropy
#: as the sequence of its integers' 32-bit words, so two streams are the same when their word sequences are. A
#: view's sequence has at least six words; a sample's (seed, epoch and index, each below 2**63) at most six, and at
#: six its fourth word is the high word of its epoch, below 2**31, where a view's is this tag's low word. So no
#: view's stream is a sample's. (A fourth integer that could be 0 would not do: SeedSequence pads entropy to four
#: words with zeros, so ``[seed, epoch, index, 0]`` is the sample's own stream.)
VIEW_STREAM_TAG = 2**64 - 1

#: The crop's attempts before torchvision's centre fallback.
CROP_ATTEMPTS = 10
# Positions in each view's block of uniforms: per attempt (area, log aspect, top, left), then one slot per step.
_ATTEMPT_SLOTS = 4
_HFLIP = CROP_ATTEMPTS * _ATTEMPT_SLOTS
_JITTER_APPLY = _HFLIP + 1
_JITTER_FACTORS = slice(_HFLIP + 2, _HFLIP + 6)
_JITTER_ORDER = slice(_HFLIP + 6, _HFLIP + 10)
_GRAYSCALE, _BLUR_APPLY, _BLUR_SIGMA, _SOLARIZE = range(_HFLIP + 10, _HFLIP + 14)
#: Uniforms in each view's block: 40 for the crop's attempts and 14 for the other steps.
VIEW_BLOCK = _HFLIP + 14


def view_entropy(seed: int, epoch: int, index: int, view: int) -> tuple[int, ...]:
    """The entropy of the stream of view ``view`` of sample ``index``: ``(seed, epoch, index, VIEW_STREAM_TAG,
    view)``; its uniforms are those of :func:`~single_image_dataset.sampling.uniform_stream` of it.

    Example:
        >>> view_entropy(0, 0, 7, 1) == (0, 0, 7, 2**64 - 1, 1)
        True
    """
    return (seed, epoch, index, *_view_suffix(view))


def _view_suffix(view: int) -> tuple[int, int]:
    """The entropy after the index (the sampler draws many indices' streams at once)."""
    return (VIEW_STREAM_TAG, view)


def sample_view_params(config: AugmentConfig, views: Sequence[View], index: int, epoch: int = 0) -> list[ViewParams]:
    """Draw the parameters of the views of sample ``index`` of epoch ``epoch``.

    A pure function of its arguments, like :func:`~single_image_dataset.sampling.sample_params`; no global
    random state is read or changed. View ``v`` depends on ``views[v]`` alone (not on the other views), and on
    the config only through its ``seed`` and the sample's side.

    Args:
        config: the dataset's augmentation config (its ``seed``, and ``img_size``, the side of the samples the
            views are cut from; 32 in debug mode).
        views: the views.
        index: non-negative sample index.
        epoch: non-negative epoch.

    Example:
        >>> from single_image_dataset import AugmentConfig
        >>> from single_image_dataset.views import View
        >>> simclr = View(size=32, jitter=(0.8, 0.8, 0.8, 0.2), blur_p=0.5)
        >>> first, second = sample_view_params(AugmentConfig(img_size=64), [simclr, simclr], index=0)
        >>> first.crop, first.hflip, second.crop, second.hflip
        ((13, 1, 51, 53), False, (1, 19, 29, 22), True)
    """
    return [batch[0] for batch in sample_view_params_batch(config, views, [index], epoch)]


def sample_view_params_batch(
    config: AugmentConfig, views: Sequence[View], indices: Sequence[int] | np.ndarray, epoch: int = 0
) -> list[ViewParamsBatch]:
    """The parameters of the views of samples ``indices``, drawn in bulk: one :class:`ViewParamsBatch` per view.

    Row ``k`` of batch ``v`` equals ``sample_view_params(config, views, indices[k], epoch)[v]`` exactly,
    whatever the other indices.

    Raises:
        ValueError: an index is negative or not below 2**63, or ``indices`` is empty.
        TypeError: ``indices`` holds something other than integers, or ``views`` something other than ``View``.

    Example:
        >>> from single_image_dataset import AugmentConfig
        >>> from single_image_dataset.views import View
        >>> cfg, views = AugmentConfig(img_size=64), [View(size=32), View(size=16)]
        >>> batches = sample_view_params_batch(cfg, views, [0, 5])
        >>> [b.size for b in batches], batches[1][1] == sample_view_params(cfg, views, 5)[1]
        ([32, 16], True)
    """
    idx = index_array(indices)
    for v, view in enumerate(views):
        if not isinstance(view, View):
            raise TypeError(f"views[{v}] should be a View, got {type(view).__name__}")
    side = sample_side(config)
    return [
        _draw(view, side, uniform_blocks((config.seed, epoch), idx, _view_suffix(v), VIEW_BLOCK))
        for v, view in enumerate(views)
    ]


def _draw(view: View, side: int, u: np.ndarray) -> ViewParamsBatch:
    """The batch of one view from its rows of uniforms ``u`` (``N x VIEW_BLOCK``), for samples of ``side`` px."""
    n = len(u)
    jitter_on = u[:, _JITTER_APPLY] < view.jitter_p
    factors, order = jitter_arrays(view.jitter, u[:, _JITTER_FACTORS], u[:, _JITTER_ORDER], jitter_on)
    blur_on = u[:, _BLUR_APPLY] < view.blur_p
    sigma = np.where(blur_on, uniform_in(u[:, _BLUR_SIGMA], *view.blur_sigma), np.nan)
    return ViewParamsBatch(
        crop=_crop_boxes(u[:, :_HFLIP].reshape(n, CROP_ATTEMPTS, _ATTEMPT_SLOTS), side, view),
        size=view.size,
        hflip=u[:, _HFLIP] < view.hflip_p,
        jitter_on=jitter_on,
        jitter_factors=factors,
        jitter_order=order,
        grayscale=u[:, _GRAYSCALE] < view.grayscale_p,
        blur_sigma=sigma,
        blur_kernel=view.blur_kernel,
        solarize=u[:, _SOLARIZE] < view.solarize_p,
    )


def _crop_boxes(u: np.ndarray, side: int, view: View) -> np.ndarray:
    """torchvision's ``RandomResizedCrop.get_params`` on a ``side`` x ``side`` sample, for each row of attempts
    ``u`` (``N x CROP_ATTEMPTS x 4``): the first attempt whose box fits, else the centre fallback.

    The aspect ratio's ``exp`` is Python's (the C library's), as the samples' crops take it, so that the boxes
    do not depend on numpy's vectorised ``exp``; the rest is IEEE arithmetic, the same everywhere.
    """
    boxes = np.empty((len(u), 4), dtype=np.int64)
    area = float(side * side)
    log_ratio = (math.log(view.ratio[0]), math.log(view.ratio[1]))
    todo = np.arange(len(u))
    for attempt in range(CROP_ATTEMPTS):
        if len(todo) == 0:
            return boxes
        a = u[todo, attempt]
        target = area * uniform_in(a[:, 0], *view.scale)
        aspect = np.array([math.exp(x) for x in uniform_in(a[:, 1], *log_ratio).tolist()])
        w = np.rint(np.sqrt(target * aspect)).astype(np.int64)
        h = np.rint(np.sqrt(target / aspect)).astype(np.int64)
        fits = (w > 0) & (w <= side) & (h > 0) & (h <= side)
        h, w = h[fits], w[fits]
        top, left = uniform_int(a[fits, 2], side - h + 1), uniform_int(a[fits, 3], side - w + 1)
        boxes[todo[fits]] = np.stack([top, left, h, w], axis=1)
        todo = todo[~fits]
    boxes[todo] = _fallback_box(side, view.ratio)
    return boxes


def _fallback_box(side: int, ratio: tuple[float, float]) -> tuple[int, int, int, int]:
    """torchvision's fallback after the attempts: the whole square, or its centre at the nearest allowed ratio."""
    w = h = side
    if 1.0 < ratio[0]:
        h = int(round(w / ratio[0]))
    elif 1.0 > ratio[1]:
        w = int(round(h * ratio[1]))
    return ((side - h) // 2, (side - w) // 2, h, w)
