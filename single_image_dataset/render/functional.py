"""The oracle's colour and view operations on PIL images, with torchvision's functional ops.

The reference renderer applies a sample's colour jitter with :func:`apply_jitter`; every renderer's views are
defined by :func:`apply_view` on its sample (the default :meth:`Renderer.render_views` applies it), and a renderer
with a faster path is tested against it.
"""

from __future__ import annotations

import numpy as np
import PIL
import torch
import torchvision.transforms.functional as F
from PIL import Image
from torchvision.transforms import InterpolationMode

from ..params import JitterParams
from ..views.params import ViewParams

__all__ = ["SOLARIZE_THRESHOLD", "apply_jitter", "apply_view", "gaussian_kernels", "pil_vertical_first"]

#: Pixels at or above it are inverted by a view's solarization (BYOL's threshold of 0.5, in 8 bits).
SOLARIZE_THRESHOLD = 128

# Pillow 13 resizes down the columns first where the height shrinks much more than the width (#9549).
_PIL_MAY_GO_DOWN_FIRST = int(PIL.__version__.split(".")[0]) >= 13

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


def gaussian_kernels(
    sigma: np.ndarray | torch.Tensor, taps: int, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """The 1-d kernels of ``F.gaussian_blur([taps] * 2, [s] * 2)`` for each sigma ``s``: ``N x taps`` float32.

    Row ``k`` is bit for bit torchvision's kernel for ``sigma[k]`` (the same float32 operations: the positions
    ``linspace(-(taps - 1) / 2, (taps - 1) / 2)``, ``exp(-0.5 (x / sigma) ** 2)``, divided by their sum), which
    ``gaussian_blur`` applies along both axes as their outer product; it is symmetric.

    Example:
        >>> gaussian_kernels(np.array([1.0]), 3)
        tensor([[0.2741, 0.4519, 0.2741]])
    """
    half = (taps - 1) * 0.5
    x = torch.linspace(-half, half, steps=taps, dtype=torch.float32, device=device)
    sigma = torch.as_tensor(sigma, device=device).to(torch.float32)
    pdf = torch.exp(-0.5 * (x / sigma[:, None]).pow(2))
    return pdf / pdf.sum(dim=1, keepdim=True)


def pil_vertical_first(height: np.ndarray | int, width: np.ndarray | int, size: int) -> np.ndarray | bool:
    """Whether the installed Pillow resizes a ``height`` x ``width`` image to ``size`` x ``size`` down the columns
    first, rather than along the rows first.

    Each of its two passes rounds to bytes, so the order shows in the pixels. Pillow 13 goes down the columns
    first where the height shrinks by more than twice as many pixels as the width (python-pillow/Pillow#9549);
    earlier versions always go along the rows first. The renderers that resize views as Pillow does follow it.

    Example:
        >>> bool(pil_vertical_first(200, 100, 64)) == (int(PIL.__version__.split(".")[0]) >= 13)
        True
    """
    shrinks = np.logical_and(np.greater(height, size), np.subtract(height, size) > 2 * np.subtract(width, size))
    return np.logical_and(shrinks, _PIL_MAY_GO_DOWN_FIRST)
