"""Drawing a clip's parameters from ``(seed, epoch, index)`` alone, as ``..sampling`` does for images.

Clip ``index`` reads the same per-index stream as image sample ``index`` of an image dataset with the
same seed, ``SeedSequence([seed, epoch, index])`` (:func:`~single_image_dataset.sampling.uniform_stream`),
but lays its uniforms out differently (see :data:`_BLOCK`), so a clip's boxes and jitter are not those of
the image sample of the same index. The resized-crop boxes and the jitter are drawn by the image sampler's
own functions, so their distributions are the same by construction.
"""

from __future__ import annotations

import itertools

from ..crops import crop_region
from ..params import JitterParams
from ..sampling import jitter_params, sample_resized_crop, uniform_int, uniform_stream
from .config import VideoConfig
from .params import ClipParams

__all__ = ["sample_clip_params"]

# Positions in the fixed block of uniforms drawn first for every clip. Each stage owns its slots, so
# changing one stage's settings leaves the others' draws unchanged; the two boxes, with their variable
# number of retries, draw after the block, the start box first.
_CROP_TOP, _CROP_LEFT, _JITTER_APPLY = range(3)
_JITTER_FACTORS = slice(3, 7)
_JITTER_ORDER = slice(7, 11)
_BLOCK = 11


def sample_clip_params(config: VideoConfig, source_size: tuple[int, int], index: int, epoch: int = 0) -> ClipParams:
    """Draw the parameters of clip ``index`` of epoch ``epoch``.

    A pure function of its arguments; no global random state is read or changed. The recipe of
    ``make_fakevideo_dataset.py``: a random square crop of ``initcrop`` times the short side (uniform
    position); two random-resized-crop boxes in it, each as torchvision's ``RandomResizedCrop`` (area
    fraction in :attr:`VideoConfig.area_range`, aspect ratio log-uniform in [3/4, 4/3]) retried until it
    fits, without the centre fallback; and, with probability ``jitter_p``, one ``ColorJitter`` draw
    (factors and order) for the whole clip.

    Args:
        config: the clip config (its ``seed`` is used).
        source_size: ``(width, height)`` of the source image, PIL's order.
        index: non-negative clip index.
        epoch: non-negative epoch; epoch 0 is the fixed dataset.

    Example:
        >>> p = sample_clip_params(VideoConfig(clip_len=4, img_size=32), (600, 400), index=0)
        >>> p.crop, p.start_box, p.end_box
        ((128, 108, 200, 200), (6, 135, 12, 15), (67, 32, 76, 93))
        >>> p.frame_boxes()
        [(6, 135, 12, 15), (26, 101, 34, 41), (47, 66, 54, 67), (67, 32, 76, 93)]
    """
    stream = uniform_stream((config.seed, epoch, index))
    u = tuple(itertools.islice(stream, _BLOCK))
    width, height = source_size
    region = crop_region(config, source_size)
    side = region[0]
    crop = (uniform_int(u[_CROP_TOP], height - side + 1), uniform_int(u[_CROP_LEFT], width - side + 1), side, side)
    start_box = sample_resized_crop(stream, region, config.area_range)
    end_box = sample_resized_crop(stream, region, config.area_range)
    jitter: JitterParams | None = None
    if u[_JITTER_APPLY] < config.jitter_p:
        jitter = jitter_params(config.jitter, u[_JITTER_FACTORS], u[_JITTER_ORDER])
    return ClipParams(
        crop=crop, start_box=start_box, end_box=end_box, clip_len=config.clip_len, output_size=config.img_size,
        jitter=jitter,
    )
