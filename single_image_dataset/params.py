"""The frozen records of a sample's augmentation parameters, and the vocabulary they are written in.

:func:`~single_image_dataset.sampling.sample_params` draws them; renderers and geometry only read them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, overload

import numpy as np

__all__ = [
    "INTERPOLATIONS",
    "JITTER_OPS",
    "WARPS",
    "JitterParams",
    "ParamsBatch",
    "SampleParams",
    "hue_steps",
    "record_from_dict",
    "record_to_dict",
]

INTERPOLATIONS = ("bilinear", "bicubic", "lanczos")
JITTER_OPS = ("brightness", "contrast", "saturation", "hue")
#: Values of :attr:`SampleParams.warp`; :attr:`ParamsBatch.warp` holds indices into it.
WARPS = (None, "affine", "rotate")

_Image = TypeVar("_Image")
_Record = TypeVar("_Record")


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


@overload
def hue_steps(hue: float) -> int: ...
@overload
def hue_steps(hue: np.ndarray) -> np.ndarray: ...
def hue_steps(hue: float | np.ndarray) -> int | np.ndarray:
    """torchvision's shift of PIL's 8-bit hue for the hue factor ``hue``, in steps of 1/255 turn.

    ``adjust_hue`` on a PIL image adds ``int(hue * 255)`` to every pixel's hue byte, modulo 256.

    Example:
        >>> hue_steps(0.1), hue_steps(-0.1), hue_steps(0.5)
        (25, -25, 127)
    """
    if isinstance(hue, np.ndarray):  # elementwise, the same truncation towards zero
        return np.trunc(hue * 255).astype(np.int64)
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
        source: which source image of the dataset the sample is cut from (0 for a single image).
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
    source: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (tuples become lists); :meth:`from_dict` inverts it.

        ``source`` is written only when it is not 0, so records of single-image datasets read as
        they always have.
        """
        values = record_to_dict(self)
        if values["source"] == 0:
            del values["source"]
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SampleParams:
        """Rebuild the record written by :meth:`to_dict`."""
        return record_from_dict(cls, values)


@dataclass(frozen=True, eq=False)
class ParamsBatch:
    """The parameters of a batch of samples as a struct of arrays: one row per sample.

    The fields are those of :class:`SampleParams`; row ``k`` holds the same numbers as the ``k``-th
    record, so ``ParamsBatch.from_list(records).to_list() == records``. Fields that fix the output's
    shape (``resize``, ``output_size``, ``debug_size``, and whether there is an initial crop) are shared
    by the whole batch.

    Attributes:
        crop: ``int64 (N, 4)`` initial crops ``(top, left, height, width)``, or ``None``.
        resized_crop: ``int64 (N, 4)`` resized-crop boxes.
        resize: side of the resized crop.
        interpolation: ``int8 (N,)`` indices into :data:`INTERPOLATIONS`.
        warp: ``int8 (N,)`` indices into :data:`WARPS`.
        angle: ``float64 (N,)`` angles in degrees.
        shear: ``float64 (N, 2)`` shear angles in degrees.
        vflip: ``bool (N,)``.
        output_size: side of the output images.
        debug_size: side of the debug resize, or ``None``.
        jitter_on: ``bool (N,)``: whether the colour jitter applies to the sample.
        jitter_factors: ``float64 (N, 4)`` factors in :data:`JITTER_OPS` order; NaN for an op that is
            skipped (strength 0) and on rows without jitter.
        jitter_order: ``int8 (N, 4)`` indices into :data:`JITTER_OPS` in application order, padded with -1.
        source: ``int64 (N,)`` source images (0 for a single image).
    """

    crop: np.ndarray | None
    resized_crop: np.ndarray
    resize: int
    interpolation: np.ndarray
    warp: np.ndarray
    angle: np.ndarray
    shear: np.ndarray
    vflip: np.ndarray
    output_size: int
    debug_size: int | None
    jitter_on: np.ndarray
    jitter_factors: np.ndarray
    jitter_order: np.ndarray
    source: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.resized_crop)
        shapes = {
            "crop": ((n, 4), np.int64), "resized_crop": ((n, 4), np.int64), "interpolation": ((n,), np.int8),
            "warp": ((n,), np.int8), "angle": ((n,), np.float64), "shear": ((n, 2), np.float64),
            "vflip": ((n,), np.bool_), "jitter_on": ((n,), np.bool_), "jitter_factors": ((n, 4), np.float64),
            "jitter_order": ((n, 4), np.int8), "source": ((n,), np.int64),
        }
        for name, (shape, dtype) in shapes.items():
            value = getattr(self, name)
            if value is None and name == "crop":
                continue
            if not isinstance(value, np.ndarray) or value.shape != shape or value.dtype != dtype:
                got = f"{value.dtype} {value.shape}" if isinstance(value, np.ndarray) else type(value).__name__
                raise ValueError(f"ParamsBatch.{name} should be a {np.dtype(dtype)} array of shape {shape}, got {got}")

    def __len__(self) -> int:
        return len(self.resized_crop)

    @property
    def image_size(self) -> int:
        """Side of the rendered images: the debug size in debug mode, else the output size."""
        return self.output_size if self.debug_size is None else self.debug_size

    def __getitem__(self, key: int | slice | Sequence[int] | np.ndarray) -> SampleParams | ParamsBatch:
        """Row ``key`` as a :class:`SampleParams`; a slice or an index array gives a smaller batch."""
        if isinstance(key, (int, np.integer)):
            return self._record(range(len(self))[key])
        rows = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        picked = {k: v[key] if isinstance(v, np.ndarray) else v for k, v in rows.items()}
        return ParamsBatch(**picked)

    def to_list(self) -> list[SampleParams]:
        """One :class:`SampleParams` per row, equal to those :func:`sample_params` draws."""
        return [self._record(k) for k in range(len(self))]

    @classmethod
    def from_list(cls, records: Sequence[SampleParams]) -> ParamsBatch:
        """Pack records into a batch.

        Raises:
            ValueError: the records do not share ``resize``, ``output_size``, ``debug_size`` and the
                presence of an initial crop (a batch's images must have one shape), or the list is empty.
        """
        if len(records) == 0:
            raise ValueError("a ParamsBatch needs at least one SampleParams record, got an empty list")
        first = records[0]
        for name in ("resize", "output_size", "debug_size"):
            if any(getattr(p, name) != getattr(first, name) for p in records):
                raise ValueError(f"the records of a batch should share {name}; these mix several values")
        if any((p.crop is None) != (first.crop is None) for p in records):
            raise ValueError("the records of a batch should all have an initial crop or all have none")
        n = len(records)
        factors = np.full((n, 4), np.nan)
        order = np.full((n, 4), -1, dtype=np.int8)
        for k, p in enumerate(records):
            if p.jitter is not None:
                factors[k] = [np.nan if v is None else v for v in (getattr(p.jitter, op) for op in JITTER_OPS)]
                order[k, : len(p.jitter.order)] = [JITTER_OPS.index(op) for op in p.jitter.order]
        return cls(
            crop=None if first.crop is None else np.array([p.crop for p in records], dtype=np.int64),
            resized_crop=np.array([p.resized_crop for p in records], dtype=np.int64),
            resize=first.resize,
            interpolation=np.array([INTERPOLATIONS.index(p.interpolation) for p in records], dtype=np.int8),
            warp=np.array([WARPS.index(p.warp) for p in records], dtype=np.int8),
            angle=np.array([p.angle for p in records], dtype=np.float64),
            shear=np.array([p.shear for p in records], dtype=np.float64),
            vflip=np.array([p.vflip for p in records], dtype=np.bool_),
            output_size=first.output_size,
            debug_size=first.debug_size,
            jitter_on=np.array([p.jitter is not None for p in records], dtype=np.bool_),
            jitter_factors=factors,
            jitter_order=order,
            source=np.array([p.source for p in records], dtype=np.int64),
        )

    def _record(self, k: int) -> SampleParams:
        jitter = None
        if self.jitter_on[k]:
            factors = [None if math.isnan(v) else v for v in self.jitter_factors[k].tolist()]
            order = tuple(JITTER_OPS[j] for j in self.jitter_order[k].tolist() if j >= 0)
            jitter = JitterParams(*factors, order=order)
        return SampleParams(
            crop=None if self.crop is None else tuple(self.crop[k].tolist()),
            resized_crop=tuple(self.resized_crop[k].tolist()),
            resize=self.resize,
            interpolation=INTERPOLATIONS[self.interpolation[k]],
            warp=WARPS[self.warp[k]],
            angle=float(self.angle[k]),
            shear=tuple(self.shear[k].tolist()),
            vflip=bool(self.vflip[k]),
            output_size=self.output_size,
            debug_size=self.debug_size,
            jitter=jitter,
            source=int(self.source[k]),
        )


def record_to_dict(record: Any) -> dict[str, Any]:
    """A frozen parameter record (a :class:`SampleParams`, a clip's
    :class:`~single_image_dataset.video.ClipParams`) as JSON-serialisable values: tuples become lists, the
    jitter a dict (or ``None``). :func:`record_from_dict` inverts it.

    Example:
        >>> jitter = JitterParams(brightness=1.1, contrast=None, saturation=None, hue=None, order=("brightness",))
        >>> record_to_dict(jitter)
        {'brightness': 1.1, 'contrast': None, 'saturation': None, 'hue': None, 'order': ['brightness']}
    """
    return _listify(dataclasses.asdict(record))


def record_from_dict(cls: type[_Record], values: Mapping[str, Any]) -> _Record:
    """The record of class ``cls`` (whose ``jitter`` field holds a :class:`JitterParams` or ``None``) that
    :func:`record_to_dict` wrote: lists become tuples again, the jitter's dict a :class:`JitterParams`."""
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
