"""The views of the methods' papers (:func:`preset`), and the check of a dataset's views (:func:`check_views`)."""

from __future__ import annotations

from collections.abc import Sequence

from .config import View

__all__ = ["DINO_LOCAL_CROPS", "PRESETS", "check_views", "preset"]

#: The names :func:`preset` knows.
PRESETS = ("simclr", "moco_v2", "byol", "dino")

#: DINO's local crops by default (the issue's 2 global + 6 local; ``main_dino.py`` defaults to 8).
DINO_LOCAL_CROPS = 6
# DINO's local crops are 96 px for 224 px global crops.
_DINO_LOCAL_FRACTION = 96 / 224


def preset(
    name: str, size: int = 224, *, local_size: int | None = None, local_crops: int | None = None
) -> tuple[View, ...]:
    """The views of a method, with the augmentations of its paper and official code at ``size`` px.

    - ``"simclr"``: SimCLR (Chen, Kornblith, Norouzi & Hinton, "A Simple Framework for Contrastive Learning of
      Visual Representations", ICML 2020, appendix A; ``google-research/simclr`` ``data_util.py``): two views,
      crop area 0.08-1 and aspect 3/4-4/3, flip 0.5, colour distortion of strength 1: jitter
      (0.8, 0.8, 0.8, 0.2) with p 0.8, grayscale 0.2, Gaussian blur 0.5 with sigma 0.1-2 and a kernel of a
      tenth of the side.
    - ``"moco_v2"``: MoCo v2 (Chen, Fan, Girshick & He, "Improved Baselines with Momentum Contrastive Learning",
      arXiv:2003.04297, 2020; ``facebookresearch/moco`` ``main_moco.py --aug-plus``): two views, crop area
      0.2-1, jitter (0.4, 0.4, 0.4, 0.1) with p 0.8, grayscale 0.2, blur 0.5 with sigma 0.1-2, flip 0.5 (the
      code flips last; a flip commutes with the colour ops and the symmetric blur, so the views are the same).
    - ``"byol"``: BYOL (Grill et al., "Bootstrap Your Own Latent", NeurIPS 2020, section 3.3 and table 6): two
      asymmetric views, crop area 0.08-1, flip 0.5, jitter (0.4, 0.4, 0.2, 0.1) with p 0.8, grayscale 0.2,
      blur with p 1.0 and 0.1 (sigma 0.1-2, 23 px kernel at 224 px), solarization with p 0 and 0.2.
    - ``"dino"``: DINO (Caron et al., "Emerging Properties in Self-Supervised Vision Transformers", ICCV 2021;
      ``facebookresearch/dino`` ``main_dino.py``): two global views (crop area 0.4-1; blur 1.0 and 0.1,
      solarization 0 and 0.2) and ``local_crops`` local views of ``local_size`` px (96/224 of ``size`` by
      default; crop area 0.05-0.4, blur 0.5); all with flip 0.5, jitter (0.4, 0.4, 0.2, 0.1) with p 0.8 and
      grayscale 0.2. DINO's code crops bicubically and blurs with PIL's filter; here every view is the same
      chain (bilinear crop, torchvision's Gaussian kernel).

    Args:
        name: one of :data:`PRESETS`.
        size: side of the (global) views; ``SingleImageDataset(views="simclr")`` takes its ``img_size``.
        local_size: side of DINO's local views.
        local_crops: number of DINO's local views (:data:`DINO_LOCAL_CROPS` by default; ``main_dino.py``'s
            default is 8).

    Raises:
        ValueError: an unknown name (the message lists the presets), ``local_size`` or ``local_crops`` for a
            method without local views, or a bad size.

    Example:
        >>> [v.size for v in preset("dino")]
        [224, 224, 96, 96, 96, 96, 96, 96]
        >>> first, second = preset("byol", size=64)
        >>> (first.blur_p, first.solarize_p), (second.blur_p, second.solarize_p), first.blur_kernel
        ((1.0, 0.0), (0.1, 0.2), 7)
        >>> preset("swav")
        Traceback (most recent call last):
        ...
        ValueError: unknown views preset 'swav'; presets: 'simclr', 'moco_v2', 'byol', 'dino'
    """
    if name not in PRESETS:
        raise ValueError(f"unknown views preset {name!r}; presets: {', '.join(map(repr, PRESETS))}")
    if name != "dino" and (local_size is not None or local_crops is not None):
        raise ValueError(f"local_size and local_crops apply to the 'dino' preset only, not to {name!r}")
    if name == "simclr":
        view = View(size=size, jitter=(0.8, 0.8, 0.8, 0.2), blur_p=0.5)
        return (view, view)
    if name == "moco_v2":
        view = View(size=size, scale=(0.2, 1.0), jitter=(0.4, 0.4, 0.4, 0.1), blur_p=0.5)
        return (view, view)
    if name == "byol":
        first = View(size=size, blur_p=1.0)
        return (first, first.replace(blur_p=0.1, solarize_p=0.2))
    first = View(size=size, scale=(0.4, 1.0), blur_p=1.0)
    local_size = max(1, round(size * _DINO_LOCAL_FRACTION)) if local_size is None else local_size
    local_crops = DINO_LOCAL_CROPS if local_crops is None else local_crops
    if isinstance(local_crops, bool) or not isinstance(local_crops, int) or local_crops < 0:
        raise ValueError(f"local_crops should be a non-negative integer, got {local_crops!r}")
    local = View(size=local_size, scale=(0.05, 0.4), blur_p=0.5)
    return (first, first.replace(blur_p=0.1, solarize_p=0.2), *[local] * local_crops)


def check_views(views: str | Sequence[View], sample_side: int) -> tuple[View, ...]:
    """A dataset's ``views=`` as a tuple of views cut from samples of ``sample_side`` px.

    A preset name sizes its (global) views at ``sample_side``. A view larger than the sample is refused: it
    could only upscale the sample, so it would hold no detail the sample lacks, at the cost of more pixels;
    render the sample larger instead (``img_size=256`` for 224 px views costs no more per view pixel). A crop
    blown up to the view's side (a small crop of the sample) is the method's own definition and is allowed.

    Raises:
        TypeError: ``views`` is neither a preset name nor a sequence of :class:`View`.
        ValueError: an unknown preset, no views, or a view larger than the sample.

    Example:
        >>> [v.size for v in check_views("simclr", 64)]
        [64, 64]
        >>> check_views([View(size=224)], 128)
        Traceback (most recent call last):
        ...
        ValueError: views[0] has size 224, larger than the 128 px samples it is cut from: ... raise img_size ...
    """
    if isinstance(views, str):
        return preset(views, size=sample_side)
    if not isinstance(views, Sequence):
        raise TypeError(
            f"views should be a preset name ({', '.join(map(repr, PRESETS))}) or a sequence of View, "
            f"got {type(views).__name__}"
        )
    if len(views) == 0:
        raise ValueError("views should hold at least one View; pass views=None for one image per sample")
    for v, view in enumerate(views):
        if not isinstance(view, View):
            raise TypeError(f"views[{v}] should be a View, got {type(view).__name__}")
        if view.size > sample_side:
            raise ValueError(
                f"views[{v}] has size {view.size}, larger than the {sample_side} px samples it is cut from: it "
                f"could only upscale them and show no detail they lack; raise img_size to at least {view.size} "
                f"(e.g. img_size=256 for 224 px views) or make the view smaller"
            )
    return tuple(views)
