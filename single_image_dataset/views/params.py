"""The frozen records of a view's parameters: :class:`ViewParams`, and :class:`ViewParamsBatch` for a batch.

:func:`~single_image_dataset.views.sample_view_params` draws them; renderers only read them.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..params import (
    BatchRows,
    JitterParams,
    check_arrays,
    jitter_rules,
    pack_jitter,
    record_from_dict,
    record_to_dict,
    unpack_jitter,
)

__all__ = ["ViewParams", "ViewParamsBatch"]


@dataclass(frozen=True)
class ViewParams:
    """The complete recipe of one view of one sample; applying it needs nothing but the sample's image.

    The names are those of torchvision's functional arguments: the view is
    ``F.resized_crop(sample, *crop, [size, size])`` (bilinear, antialiased), then ``F.hflip`` if ``hflip``, the
    jitter's ``F.adjust_*`` in its order, ``F.rgb_to_grayscale(num_output_channels=3)`` if ``grayscale``,
    ``F.gaussian_blur([blur_kernel] * 2, [blur_sigma] * 2)`` unless ``blur_sigma`` is ``None``, and
    ``F.solarize(threshold=128)`` if ``solarize``.

    Attributes:
        crop: ``(top, left, height, width)`` of the crop in the sample's pixels.
        size: side of the view.
        hflip: whether the view is flipped horizontally.
        jitter: the colour jitter, or ``None`` when it is not applied.
        grayscale: whether the view is turned gray (three equal channels).
        blur_sigma: the blur's sigma in pixels, or ``None`` when it is not applied.
        blur_kernel: the blur's kernel side (odd; see :attr:`View.blur_kernel`).
        solarize: whether pixels of 128 and above are inverted.
    """

    crop: tuple[int, int, int, int]
    size: int
    hflip: bool
    jitter: JitterParams | None
    grayscale: bool
    blur_sigma: float | None
    blur_kernel: int
    solarize: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (tuples become lists); :meth:`from_dict` inverts it."""
        return record_to_dict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ViewParams:
        """Rebuild the record written by :meth:`to_dict`."""
        return record_from_dict(cls, values)


@dataclass(frozen=True, eq=False)
class ViewParamsBatch(BatchRows):
    """The parameters of one view of a batch of samples, as a struct of arrays: one row per sample.

    The fields are those of :class:`ViewParams`; row ``k`` holds the same numbers as the ``k``-th record, so
    ``ViewParamsBatch.from_list(records).to_list() == records``. ``size`` and ``blur_kernel``, which follow from
    the view's config, are shared by the batch.

    Attributes:
        crop: ``int64 (N, 4)`` crops ``(top, left, height, width)`` in the samples' pixels.
        size: side of the views.
        hflip: ``bool (N,)``.
        jitter_on: ``bool (N,)``: whether the colour jitter applies.
        jitter_factors: ``float64 (N, 4)`` factors in :data:`~single_image_dataset.params.JITTER_OPS` order; NaN
            for an op that is skipped (strength 0) and on rows without jitter.
        jitter_order: ``int8 (N, 4)`` op indices in application order, padded with -1.
        grayscale: ``bool (N,)``.
        blur_sigma: ``float64 (N,)`` sigmas; NaN on rows without blur.
        blur_kernel: the blur's kernel side.
        solarize: ``bool (N,)``.
    """

    crop: np.ndarray
    size: int
    hflip: np.ndarray
    jitter_on: np.ndarray
    jitter_factors: np.ndarray
    jitter_order: np.ndarray
    grayscale: np.ndarray
    blur_sigma: np.ndarray
    blur_kernel: int
    solarize: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.crop)
        check_arrays(self, {
            "crop": ((n, 4), np.int64), "hflip": ((n,), np.bool_), "jitter_on": ((n,), np.bool_),
            "jitter_factors": ((n, 4), np.float64), "jitter_order": ((n, 4), np.int8), "grayscale": ((n,), np.bool_),
            "blur_sigma": ((n,), np.float64), "solarize": ((n,), np.bool_),
        })

    def __len__(self) -> int:
        return len(self.crop)

    def validate(self, sample_side: int) -> None:
        """Check that every row is a view of a ``sample_side`` px sample that every renderer renders, and renders
        alike.

        What :func:`~single_image_dataset.views.sample_view_params_batch` draws for samples of that side always
        passes; a batch built or edited by hand must meet the same rules: ``size`` in [1, ``sample_side``] (no
        view larger than its sample, as :func:`~single_image_dataset.views.check_views` requires), ``blur_kernel``
        odd and in [1, ``size``]; crops with a non-negative top-left corner and a size of at least 1 px, inside
        the sample; the jitter as a sample's (:func:`~single_image_dataset.params.jitter_rules`); blur sigmas
        finite and positive (NaN for no blur). :meth:`SingleImageDataset.render_views
        <single_image_dataset.SingleImageDataset.render_views>` checks each batch that its dataset did not draw.

        Args:
            sample_side: the side of the samples the views are cut from.

        Raises:
            TypeError: ``size`` or ``blur_kernel`` is not an integer.
            ValueError: a value out of range; the message names the field, the row and the value.

        Example:
            >>> from single_image_dataset import AugmentConfig
            >>> from single_image_dataset.views import View, sample_view_params_batch
            >>> batch = sample_view_params_batch(AugmentConfig(img_size=64), [View(size=32)], range(4))[0]
            >>> batch.validate(64)
            >>> batch.crop[2] = [0, 8, 64, 64]
            >>> batch.validate(64)
            Traceback (most recent call last):
            ...
            ValueError: ViewParamsBatch.crop[2] should be a box (top, left, height, width) inside the 64 px sample, ...
        """

        def check(ok: np.ndarray, field: str, expected: str) -> None:
            if not ok.all():
                row = int(np.argmin(ok))
                raise ValueError(
                    f"ViewParamsBatch.{field}[{row}] should be {expected}, got {getattr(self, field)[row].tolist()!r}"
                )

        for name, high, rule in (("size", sample_side, " (no view larger than its sample)"),
                                 ("blur_kernel", self.size, " and odd")):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool):
                raise TypeError(f"ViewParamsBatch.{name} should be an integer, got {value!r}")
            if not 1 <= value <= high or (name == "blur_kernel" and value % 2 == 0):
                raise ValueError(f"ViewParamsBatch.{name} should be an integer in [1, {high}]{rule}, got {value!r}")
        top, left, height, width = self.crop.T
        check((np.minimum(top, left) >= 0) & (np.minimum(height, width) >= 1) & (top <= sample_side - height)
              & (left <= sample_side - width), "crop",
              f"a box (top, left, height, width) inside the {sample_side} px sample, with height, width >= 1")
        for field, ok, expected in jitter_rules(self.jitter_on, self.jitter_factors, self.jitter_order):
            check(ok, field, expected)
        sigma = self.blur_sigma
        check(np.isnan(sigma) | (np.isfinite(sigma) & (sigma > 0)), "blur_sigma",
              "a finite sigma > 0 in pixels (NaN for no blur)")

    @classmethod
    def from_list(cls, records: Sequence[ViewParams]) -> ViewParamsBatch:
        """Pack records of one view into a batch.

        Raises:
            ValueError: the list is empty, or the records do not share ``size`` and ``blur_kernel`` (a batch's
                views have one shape and one kernel).
        """
        if len(records) == 0:
            raise ValueError("a ViewParamsBatch needs at least one ViewParams record, got an empty list")
        first = records[0]
        for name in ("size", "blur_kernel"):
            if any(getattr(p, name) != getattr(first, name) for p in records):
                raise ValueError(f"the records of a view batch should share {name}; these mix several values")
        jitter_on, factors, order = pack_jitter([p.jitter for p in records])
        return cls(
            crop=np.array([p.crop for p in records], dtype=np.int64).reshape(len(records), 4),
            size=first.size,
            hflip=np.array([p.hflip for p in records], dtype=np.bool_),
            jitter_on=jitter_on,
            jitter_factors=factors,
            jitter_order=order,
            grayscale=np.array([p.grayscale for p in records], dtype=np.bool_),
            blur_sigma=np.array([math.nan if p.blur_sigma is None else p.blur_sigma for p in records]),
            blur_kernel=first.blur_kernel,
            solarize=np.array([p.solarize for p in records], dtype=np.bool_),
        )

    def _record(self, k: int) -> ViewParams:
        sigma = float(self.blur_sigma[k])
        return ViewParams(
            crop=tuple(self.crop[k].tolist()),
            size=self.size,
            hflip=bool(self.hflip[k]),
            jitter=unpack_jitter(self.jitter_factors[k], self.jitter_order[k]) if self.jitter_on[k] else None,
            grayscale=bool(self.grayscale[k]),
            blur_sigma=None if math.isnan(sigma) else sigma,
            blur_kernel=self.blur_kernel,
            solarize=bool(self.solarize[k]),
        )
