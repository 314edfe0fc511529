"""The reference renderer: the paper's chain with torchvision functional ops on PIL images.

It is the oracle the other renderers are tested against; its output equals what torchvision's own
transforms produce for the same parameters.
"""

from __future__ import annotations

import torchvision.transforms.functional as F
from PIL import Image
from torchvision.transforms import InterpolationMode

from ..params import SampleParams
from .base import Renderer, register_renderer
from .functional import apply_jitter

__all__ = ["ReferenceRenderer", "apply_jitter"]

_INTERPOLATION = {
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
    "lanczos": InterpolationMode.LANCZOS,
}


@register_renderer("reference")
class ReferenceRenderer(Renderer):
    """Renders with ``torchvision.transforms.functional``, one op per augmentation step.

    Its views are :meth:`Renderer.render_views`'s: each sample rendered here, then each view applied to it by
    :func:`~single_image_dataset.render.functional.apply_view`, torchvision's functional ops: the oracle.
    """

    def render(self, params: SampleParams) -> Image.Image:
        img = self.image
        if params.crop is not None:
            img = F.crop(img, *params.crop)
        img = F.resized_crop(
            img, *params.resized_crop, [params.resize, params.resize],
            interpolation=_INTERPOLATION[params.interpolation], antialias=True,
        )
        if params.warp == "affine":
            img = F.affine(
                img, angle=params.angle, translate=[0, 0], scale=1.0, shear=list(params.shear),
                interpolation=InterpolationMode.BILINEAR, fill=0,
            )
        elif params.warp == "rotate":
            img = F.rotate(img, params.angle, interpolation=InterpolationMode.BILINEAR, fill=0)
        if params.vflip:
            img = F.vflip(img)
        img = F.center_crop(img, [params.output_size, params.output_size])
        if params.debug_size is not None:
            img = F.resize(img, [params.debug_size, params.debug_size], antialias=True)
        if params.jitter is not None:
            img = apply_jitter(img, params.jitter)
        return img
