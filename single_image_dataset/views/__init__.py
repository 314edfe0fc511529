"""Views: the several randomly augmented views of each sample that SimCLR, MoCo v2, BYOL and DINO learn from.

:class:`View` configures one view's chain, :func:`preset` gives the methods' published views,
:func:`sample_view_params` draws a sample's views from ``(seed, epoch, index, view)`` alone, and
:class:`ViewParams` / :class:`ViewParamsBatch` hold what it draws. ``SingleImageDataset(views=...)`` renders them.
"""

from .config import View
from .params import ViewParams, ViewParamsBatch
from .presets import PRESETS, check_views, preset
from .sampling import sample_view_params, sample_view_params_batch

__all__ = [
    "PRESETS",
    "View",
    "ViewParams",
    "ViewParamsBatch",
    "check_views",
    "preset",
    "sample_view_params",
    "sample_view_params_batch",
]
