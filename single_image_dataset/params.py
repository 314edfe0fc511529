"""The frozen records of a sample's augmentation parameters, and the vocabulary they are written in.

:func:`~single_image_dataset.sampling.sample_params` draws them; renderers and geometry only read them.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, overload

import numpy as np

from .config import MAX_IMG_SIZE, AugmentConfig

__all__ = [
    "INTERPOLATIONS",
    "JITTER_OPS",
    "MAX_RESIZE",
    "WARPS",
    "BatchRows",
    "JitterParams",
    "ParamsBatch",
    "SampleParams",
    "check_arrays",
    "hue_steps",
    "jitter_rules",
    "pack_jitter",
    "record_from_dict",
    "record_to_dict",
    "unpack_jitter",
]

INTERPOLATIONS = ("bilinear", "bicubic", "lanczos")
JITTER_OPS = ("brightness", "contrast", "saturation", "hue")
#: Values of :attr:`SampleParams.warp`; :attr:`ParamsBatch.warp` holds indices into it.
WARPS = (None, "affine", "rotate")
#: The largest ``resize`` a record may ask for: that of the largest ``img_size``, ``MAX_IMG_SIZE``.
MAX_RESIZE = AugmentConfig(img_size=MAX_IMG_SIZE).resize_size

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

    def validate(self, source_sizes: Sequence[tuple[int, int]] | None = None) -> None:
        """Check that the record is one every renderer renders, and renders alike: its fields' types, then
        the rules of :meth:`ParamsBatch.validate`.

        What the sampler draws always passes. :meth:`SingleImageDataset.render
        <single_image_dataset.SingleImageDataset.render>` checks each record it is given, so that a record
        edited by hand (or read from a file) fails with one message naming the field instead of rendering
        something wrong, differently per backend, or running out of memory.

        Args:
            source_sizes: the ``(width, height)`` of each source of the dataset that renders the record;
                with them, ``source`` must name one, and the boxes must lie inside it.

        Raises:
            TypeError: a field of the wrong type.
            ValueError: a value out of range; the message names the field, the expectation and the value.

        Example:
            >>> import dataclasses
            >>> from single_image_dataset import AugmentConfig, sample_params
            >>> p = sample_params(AugmentConfig(img_size=32), (600, 400), 0)
            >>> p.validate([(600, 400)])
            >>> dataclasses.replace(p, angle=float("nan")).validate()
            Traceback (most recent call last):
            ...
            ValueError: SampleParams.angle should be a finite number of degrees, got nan
        """
        _check_record_types(self)
        ParamsBatch.from_list([self])._check_values(source_sizes, self)


class BatchRows:
    """Row access shared by the batch records (dataclasses of per-row arrays and shared values): ``batch[k]`` is
    row ``k`` as the subclass's record (its ``_record(k)``), and a slice or an index array gives a smaller batch."""

    def _record(self, k: int) -> Any:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, key: int | slice | Sequence[int] | np.ndarray) -> Any:
        """Row ``key`` as a record; a slice or an index array gives a smaller batch."""
        if isinstance(key, (int, np.integer)):
            return self._record(range(len(self))[key])
        rows = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        return type(self)(**{k: v[key] if isinstance(v, np.ndarray) else v for k, v in rows.items()})

    def to_list(self) -> list[Any]:
        """One record per row, equal to those the per-sample sampler draws."""
        return [self._record(k) for k in range(len(self))]


@dataclass(frozen=True, eq=False)
class ParamsBatch(BatchRows):
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
        check_arrays(self, {
            "crop": ((n, 4), np.int64), "resized_crop": ((n, 4), np.int64), "interpolation": ((n,), np.int8),
            "warp": ((n,), np.int8), "angle": ((n,), np.float64), "shear": ((n, 2), np.float64),
            "vflip": ((n,), np.bool_), "jitter_on": ((n,), np.bool_), "jitter_factors": ((n, 4), np.float64),
            "jitter_order": ((n, 4), np.int8), "source": ((n,), np.int64),
        }, optional=("crop",))

    def __len__(self) -> int:
        return len(self.resized_crop)

    def validate(self, source_sizes: Sequence[tuple[int, int]] | None = None) -> None:
        """Check that every row is one every renderer renders, and renders alike.

        What the sampler draws always passes; a batch built or edited by hand must meet the same rules:
        ``output_size`` and ``debug_size`` in [1, ``MAX_IMG_SIZE``], ``resize`` in [``output_size``,
        :data:`MAX_RESIZE`]; boxes with a non-negative top-left corner and a size of at least 1 px, the
        resized crop inside the initial crop; known interpolations and warps; finite angles, shear angles
        inside (-90, 90) degrees, no angle without a warp and no shear with a plain rotation; jitter
        factors finite (NaN for a skipped op), non-negative, the hue's in [-0.5, 0.5], and an order that
        lists each applied op once; non-negative sources. Vectorised: about a microsecond per row
        (``benchmarks/bench_validation.py``).

        Args:
            source_sizes: the ``(width, height)`` of each source of the dataset that renders the batch;
                with them, each source must name one, and the boxes must lie inside it.

        Raises:
            TypeError: ``resize``, ``output_size`` or ``debug_size`` is not an integer.
            ValueError: a value out of range; the message names the field, the row and the value.

        Example:
            >>> from single_image_dataset import AugmentConfig, sample_params_batch
            >>> batch = sample_params_batch(AugmentConfig(img_size=32), [(600, 400), (1000, 872)], range(8))
            >>> batch.validate([(600, 400), (1000, 872)])
            >>> batch.source[3] = 2
            >>> batch.validate([(600, 400), (1000, 872)])
            Traceback (most recent call last):
            ...
            ValueError: ParamsBatch.source[3] should be one of the 2 sources (0 to 1), got 2; render ...
        """
        self._check_values(source_sizes, None)

    def _check_values(self, source_sizes: Sequence[tuple[int, int]] | None, record: SampleParams | None) -> None:
        """:meth:`validate`; for ``record`` (packed into this one-row batch) the messages name its fields."""

        def fail(field: str, expected: str, row: int | None, error: type[Exception] = ValueError,
                 advice: str = "") -> None:
            if record is not None:
                label, value = f"SampleParams.{_RECORD_FIELDS.get(field, field)}", record
                for part in label.split(".")[1:]:
                    value = getattr(value, part)
            elif row is None:
                label, value = f"ParamsBatch.{field}", getattr(self, field)
            else:
                label, value = f"ParamsBatch.{field}[{row}]", getattr(self, field)[row]
            raise error(f"{label} should be {expected}, got {_show(value)}{advice}")

        def check(ok: np.ndarray, field: str, expected: str, advice: str = "") -> None:
            if not ok.all():
                fail(field, expected, int(np.argmin(ok)), advice=advice)

        for name, low in (("output_size", 1), ("debug_size", 1), ("resize", self.output_size)):
            value, high = getattr(self, name), MAX_RESIZE if name == "resize" else MAX_IMG_SIZE
            if value is None and name == "debug_size":
                continue
            if not _is_int(value):
                fail(name, "an integer", None, TypeError)
            if not low <= value <= high:
                bounds = " (output_size to MAX_RESIZE)" if name == "resize" else ""
                fail(name, f"an integer in [{low}, {high}]{bounds}", None)
        box = "a box (top, left, height, width) with top, left >= 0 and height, width >= 1"
        if self.crop is not None:
            check((self.crop[:, :2] >= 0).all(1) & (self.crop[:, 2:] >= 1).all(1), "crop", box)
        rc = self.resized_crop
        check((rc[:, :2] >= 0).all(1) & (rc[:, 2:] >= 1).all(1), "resized_crop", box)
        if self.crop is not None:
            inside = (rc[:, 0] <= self.crop[:, 2] - rc[:, 2]) & (rc[:, 1] <= self.crop[:, 3] - rc[:, 3])
            check(inside, "resized_crop", "a box inside the initial crop")
        check((self.interpolation >= 0) & (self.interpolation < len(INTERPOLATIONS)), "interpolation",
              f"one of {INTERPOLATIONS}")
        check((self.warp >= 0) & (self.warp < len(WARPS)), "warp", f"one of {WARPS}")
        check(np.isfinite(self.angle), "angle", "a finite number of degrees")
        check((np.abs(self.shear) < 90).all(1), "shear", "two angles in (-90, 90) degrees")
        no_shear = (self.shear == 0).all(1)
        check((self.warp != WARPS.index(None)) | ((self.angle == 0) & no_shear), "angle",
              "0 without a warp (set warp to 'rotate' or 'affine')")
        check((self.warp != WARPS.index("rotate")) | no_shear, "shear", "(0, 0) for warp 'rotate' (use 'affine')")
        for field, ok, expected in jitter_rules(self.jitter_on, self.jitter_factors, self.jitter_order):
            check(ok, field, expected)
        check(self.source >= 0, "source", "a non-negative source index")
        if source_sizes is not None:
            self._check_sources(source_sizes, check)

    def _check_sources(self, source_sizes: Sequence[tuple[int, int]], check: Callable[..., None]) -> None:
        n = len(source_sizes)
        check(self.source < n, "source", f"one of the {n} sources (0 to {n - 1})",
              "; render parameters with the dataset that drew them")
        width, height = np.array(source_sizes, dtype=np.int64).reshape(n, 2)[self.source].T
        box, what = (self.resized_crop, "resized_crop") if self.crop is None else (self.crop, "crop")
        inside = (box[:, 0] <= height - box[:, 2]) & (box[:, 1] <= width - box[:, 3])
        check(inside, what, "a box inside its source image")

    @property
    def image_size(self) -> int:
        """Side of the rendered images: the debug size in debug mode, else the output size."""
        return self.output_size if self.debug_size is None else self.debug_size

    @classmethod
    def from_list(cls, records: Sequence[SampleParams]) -> ParamsBatch:
        """Pack records into a batch.

        Raises:
            ValueError: the records do not share ``resize``, ``output_size``, ``debug_size`` and the
                presence of an initial crop (a batch's images must have one shape), or the list is empty.
            TypeError, ValueError: a record that cannot be packed: the message names it and its field
                (as :meth:`SampleParams.validate` does).
        """
        if len(records) == 0:
            raise ValueError("a ParamsBatch needs at least one SampleParams record, got an empty list")
        for k, p in enumerate(records):
            if not isinstance(p, SampleParams):
                raise TypeError(f"records[{k}] should be a SampleParams, got {type(p).__name__}")
        first = records[0]
        for name in ("resize", "output_size", "debug_size"):
            if any(getattr(p, name) != getattr(first, name) for p in records):
                raise ValueError(f"the records of a batch should share {name}; these mix several values")
        if any((p.crop is None) != (first.crop is None) for p in records):
            raise ValueError("the records of a batch should all have an initial crop or all have none")
        try:
            return cls._pack(records)
        except (TypeError, ValueError, AttributeError, IndexError, OverflowError):
            # Only now, so that packing valid records costs nothing more: say which record is at fault.
            for k, p in enumerate(records):
                try:
                    _check_record_types(p)
                except (TypeError, ValueError) as exc:
                    raise type(exc)(f"records[{k}]: {exc}") from None
            raise

    @classmethod
    def _pack(cls, records: Sequence[SampleParams]) -> ParamsBatch:
        first = records[0]
        jitter_on, factors, order = pack_jitter([p.jitter for p in records])
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
            jitter_on=jitter_on,
            jitter_factors=factors,
            jitter_order=order,
            source=np.array([p.source for p in records], dtype=np.int64),
        )

    def _record(self, k: int) -> SampleParams:
        jitter = unpack_jitter(self.jitter_factors[k], self.jitter_order[k]) if self.jitter_on[k] else None
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


def pack_jitter(jitters: Sequence[JitterParams | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Records' jitters as a batch holds them: ``(on, factors, order)``.

    Returns:
        ``bool (N,)`` whether each row has a jitter; ``float64 (N, 4)`` factors in :data:`JITTER_OPS` order, NaN
        for a skipped op and on rows without jitter; ``int8 (N, 4)`` op indices in application order, padded
        with -1. :func:`unpack_jitter` inverts a row.
    """
    n = len(jitters)
    factors = np.full((n, len(JITTER_OPS)), np.nan)
    order = np.full((n, len(JITTER_OPS)), -1, dtype=np.int8)
    for k, jitter in enumerate(jitters):
        if jitter is not None:
            factors[k] = [np.nan if v is None else v for v in (getattr(jitter, op) for op in JITTER_OPS)]
            order[k, : len(jitter.order)] = [JITTER_OPS.index(op) for op in jitter.order]
    return np.array([j is not None for j in jitters], dtype=np.bool_), factors, order


def unpack_jitter(factors: np.ndarray, order: np.ndarray) -> JitterParams:
    """The :class:`JitterParams` of one row of :func:`pack_jitter`'s ``factors`` and ``order``.

    Example:
        >>> on, factors, order = pack_jitter([None, JitterParams(1.2, None, None, 0.05, ("hue", "brightness"))])
        >>> on.tolist(), unpack_jitter(factors[1], order[1]).ops()
        ([False, True], [('hue', 0.05), ('brightness', 1.2)])
    """
    values = [None if math.isnan(v) else v for v in factors.tolist()]
    return JitterParams(*values, order=tuple(JITTER_OPS[j] for j in order.tolist() if j >= 0))


def jitter_rules(
    on: np.ndarray, factors: np.ndarray, order: np.ndarray
) -> list[tuple[str, np.ndarray, str]]:
    """The rules that a batch's packed jitter (:func:`pack_jitter`'s arrays) meets on every row, as
    ``(field, ok, expected)``: ``ok`` is ``bool (N,)``, true on the rows that meet the rule (rows without jitter
    always do), ``field`` the array it reads and ``expected`` the rule in words.

    Factors finite (NaN for a skipped op) and non-negative, the hue's in [-0.5, 0.5]; an order that lists each op
    with a factor once, then -1 padding. :meth:`ParamsBatch.validate` and
    :meth:`~single_image_dataset.views.ViewParamsBatch.validate` check them.

    Example:
        >>> on, factors, order = pack_jitter([JitterParams(1.2, None, None, 0.7, ("hue", "brightness"))])
        >>> [(field, ok.tolist()) for field, ok, _ in jitter_rules(on, factors, order)]
        [('jitter_factors', [False]), ('jitter_order', [True])]
    """
    off = ~on
    skipped = np.isnan(factors)
    low, high = np.array([0.0, 0.0, 0.0, -0.5]), np.array([np.inf, np.inf, np.inf, 0.5])
    in_range = skipped | (np.isfinite(factors) & (factors >= low) & (factors <= high))
    listed = (order[:, :, None] == np.arange(len(JITTER_OPS))).sum(1)
    padding = order < 0
    ordered = (order >= -1).all(1) & (padding[:, :-1] <= padding[:, 1:]).all(1) & (listed == ~skipped).all(1)
    return [
        ("jitter_factors", off | in_range.all(1),
         "finite factors (NaN or None for a skipped op), brightness, contrast and saturation >= 0 and hue in "
         "[-0.5, 0.5]"),
        ("jitter_order", off | ordered, "each op with a factor once, in the order applied"),
    ]


def check_arrays(batch: Any, shapes: Mapping[str, tuple[tuple[int, ...], type]], optional: Sequence[str] = ()) -> None:
    """Check that each field of a struct-of-arrays batch is an array of its shape and dtype.

    Args:
        batch: the batch (a dataclass), named in the message by its class.
        shapes: ``{field: (shape, dtype)}``.
        optional: fields that may be ``None`` instead.

    Raises:
        ValueError: a field is not such an array; the message names it, the expected and the actual kind.
    """
    for name, (shape, dtype) in shapes.items():
        value = getattr(batch, name)
        if value is None and name in optional:
            continue
        if not isinstance(value, np.ndarray) or value.shape != shape or value.dtype != dtype:
            got = f"{value.dtype} {value.shape}" if isinstance(value, np.ndarray) else type(value).__name__
            raise ValueError(
                f"{type(batch).__name__}.{name} should be a {np.dtype(dtype)} array of shape {shape}, got {got}"
            )


# A ParamsBatch field as the SampleParams field it packs, where the two differ.
_RECORD_FIELDS = {"jitter_factors": "jitter", "jitter_order": "jitter.order"}


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and -(2**63) <= value < 2**63


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _show(value: Any) -> str:
    return repr(value.tolist() if isinstance(value, (np.ndarray, np.generic)) else value)


def _check_record_types(p: SampleParams) -> None:
    """The types of a record's fields, so that packing it into a :class:`ParamsBatch` cannot fail."""

    def require(ok: bool, field: str, expected: str, error: type[Exception] = TypeError) -> None:
        if not ok:
            raise error(f"SampleParams.{field} should be {expected}, got {_show(getattr(p, field))}")

    def ints(box: Any) -> bool:
        return isinstance(box, (tuple, list)) and len(box) == 4 and all(map(_is_int, box))

    require(p.crop is None or ints(p.crop), "crop", "None or four integers (top, left, height, width)")
    require(ints(p.resized_crop), "resized_crop", "four integers (top, left, height, width)")
    for name in ("resize", "output_size", "source"):
        require(_is_int(getattr(p, name)), name, "an integer")
    require(p.debug_size is None or _is_int(p.debug_size), "debug_size", "None or an integer")
    require(isinstance(p.interpolation, str) and p.interpolation in INTERPOLATIONS, "interpolation",
            f"one of {INTERPOLATIONS}", ValueError)
    require(p.warp is None or (isinstance(p.warp, str) and p.warp in WARPS), "warp", f"one of {WARPS}", ValueError)
    require(_is_real(p.angle), "angle", "a number of degrees")
    require(isinstance(p.shear, (tuple, list)) and len(p.shear) == 2 and all(map(_is_real, p.shear)), "shear",
            "two numbers of degrees (x, y)")
    require(isinstance(p.vflip, (bool, np.bool_)), "vflip", "True or False")
    jitter = p.jitter
    if jitter is None:
        return
    require(isinstance(jitter, JitterParams), "jitter", "None or a JitterParams")
    factors = [getattr(jitter, op) for op in JITTER_OPS]
    require(all(f is None or _is_real(f) for f in factors), "jitter", "factors that are numbers or None")
    require(all(f is None or math.isfinite(f) for f in factors), "jitter", "finite factors (None for a skipped op)",
            ValueError)
    order = jitter.order
    require(isinstance(order, (tuple, list)) and len(order) <= len(JITTER_OPS)
            and all(isinstance(op, str) and op in JITTER_OPS for op in order), "jitter",
            f"an order of at most {len(JITTER_OPS)} of {JITTER_OPS}")


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
