"""The frozen records of a sample's augmentation parameters, and the vocabulary they are written in.

:func:`~single_image_dataset.sampling.sample_params` draws them; renderers and geometry only read them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["INTERPOLATIONS", "JITTER_OPS", "JitterParams", "SampleParams", "hue_steps"]

INTERPOLATIONS = ("bilinear", "bicubic", "lanczos")
JITTER_OPS = ("brightness", "contrast", "saturation", "hue")

_Image = TypeVar("_Image")


@dataclass(frozen=True)
class JitterParams:
    """Colour-jitter factors in torchvision's ``adjust_*`` conventions.

    A factor is ``None`` when its strength in the config is 0; torchvision's ``ColorJitter`` skips
    that op, and so does every renderer. ``order`` lists the applied ops in application order.
    """

    brightness: float | None
    contrast: float | None
    saturation: float | None
    hue: float | None
    order: tuple[str, ...]

    def ops(self) -> list[tuple[str, float]]:
        """The applied ops as ``(name, factor)`` pairs, in application order.

        Example:
            >>> order = ("saturation", "brightness")
            >>> JitterParams(brightness=1.2, contrast=None, saturation=0.9, hue=None, order=order).ops()
            [('saturation', 0.9), ('brightness', 1.2)]
        """
        return [(name, getattr(self, name)) for name in self.order]

    def apply(self, image: _Image, table: Mapping[str, Callable[[_Image, float], _Image]]) -> _Image:
        """``image`` passed through ``table[name](image, factor)`` for each of :meth:`ops`, in order.

        Each renderer applies the jitter so, with a table of its own ``adjust_*`` functions.
        """
        for name, factor in self.ops():
            image = table[name](image, factor)
        return image


def hue_steps(hue: float) -> int:
    """torchvision's shift of PIL's 8-bit hue for the hue factor ``hue``, in steps of 1/255 turn.

    ``adjust_hue`` on a PIL image adds ``int(hue * 255)`` to every pixel's hue byte, modulo 256.

    Example:
        >>> hue_steps(0.1), hue_steps(-0.1), hue_steps(0.5)
        (25, -25, 127)
    """
    return int(hue * 255)


@dataclass(frozen=True)
class SampleParams:
    """The complete recipe of one sample; rendering it needs nothing else but the source image.

    Boxes are ``(top, left, height, width)``, the argument order of torchvision's ``F.crop``.

    Attributes:
        crop: the initial square crop in source pixels, or ``None`` when ``cropfirst`` is off.
        resized_crop: the resized-crop box inside the initial crop (or the source).
        resize: side the resized crop is resampled to (``int(sqrt(2) * img_size)``).
        interpolation: one of :data:`INTERPOLATIONS` (``"bilinear"``, ``"bicubic"`` or ``"lanczos"``).
        warp: ``"affine"`` (``F.affine``), ``"rotate"`` (``F.rotate``) or ``None``.
        angle: rotation in degrees, counter-clockwise as in torchvision.
        shear: ``(x, y)`` shear in degrees.
        vflip: whether the image is flipped vertically.
        output_size: side of the final centre crop (``img_size``).
        debug_size: side of the final debug resize, or ``None``.
        jitter: the colour jitter, or ``None`` when it is not applied to this sample.
    """

    crop: tuple[int, int, int, int] | None
    resized_crop: tuple[int, int, int, int]
    resize: int
    interpolation: str
    warp: str | None
    angle: float
    shear: tuple[float, float]
    vflip: bool
    output_size: int
    debug_size: int | None
    jitter: JitterParams | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (tuples become lists); :meth:`from_dict` inverts it."""
        return _listify(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SampleParams:
        """Rebuild the record written by :meth:`to_dict`."""
        values = dict(values)
        jitter = values.pop("jitter")
        return cls(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()},
            jitter=None if jitter is None else JitterParams(**{**jitter, "order": tuple(jitter["order"])}),
        )


def _listify(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _listify(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_listify(v) for v in value]
    return value
