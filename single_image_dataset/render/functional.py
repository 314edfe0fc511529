"""The oracle's colour and view operations on PIL images, with torchvision's functional ops.

The reference renderer applies a sample's colour jitter with :func:`apply_jitter`; every renderer's views are
defined by :func:`apply_view` on its sample (the default :meth:`Renderer.render_views` applies it), and a renderer
with a faster path is tested against it.
"""

from __future__ import annotations

import torchvision.transforms.functional as F
from PIL import Image
from torchvision.transforms import InterpolationMode

from ..params import JitterParams
from ..views.params import ViewParams

__all__ = ["SOLARIZE_THRESHOLD", "apply_jitter", "apply_view"]

#: Pixels at or above it are inverted by a view's solarization (BYOL's threshold of 0.5, in 8 bits).
SOLARIZE_THRESHOLD = 128

_ADJUST = {
    "brightness": F.adjust_brightness,
    "contrast": F.adjust_contrast,
    "saturation": F.adjust_saturation,
    "hue": F.adjust_hue,
}


def apply_jitter(img: Image.Image, jitter: JitterParams) -> Image.Image:
    """torchvision's ``ColorJitter`` with fixed factors and order."""
    return jitter.apply(img, _ADJUST)


def apply_view(sample: Image.Image, view: ViewParams) -> Image.Image:
    """The view ``view`` of the rendered sample ``sample``: the definition every renderer's views are held to.

    ``F.resized_crop`` (bilinear, antialiased as PIL resamples), ``F.hflip``, the colour jitter (:func:`apply_jitter`),
    ``F.rgb_to_grayscale`` to three channels (PIL's integer luma), ``F.gaussian_blur`` (reflect padding) and
    ``F.solarize`` at :data:`SOLARIZE_THRESHOLD`, each where the record says.

    Example:
        >>> from single_image_dataset.views import ViewParams
        >>> sample = Image.new("RGB", (64, 64), (200, 100, 50))
        >>> view = ViewParams(crop=(0, 0, 32, 32), size=16, hflip=True, jitter=None, grayscale=False,
        ...                   blur_sigma=1.0, blur_kernel=3, solarize=True)
        >>> apply_view(sample, view).size, apply_view(sample, view).getpixel((0, 0))
        ((16, 16), (55, 100, 50))
    """
    img = F.resized_crop(
        sample, *view.crop, [view.size, view.size], interpolation=InterpolationMode.BILINEAR, antialias=True
    )
    if view.hflip:
        img = F.hflip(img)
    if view.jitter is not None:
        img = apply_jitter(img, view.jitter)
    if view.grayscale:
        img = F.rgb_to_grayscale(img, num_output_channels=3)
    if view.blur_sigma is not None:
        img = F.gaussian_blur(img, [view.blur_kernel] * 2, [view.blur_sigma] * 2)
    if view.solarize:
        img = F.solarize(img, SOLARIZE_THRESHOLD)
    return img
