"""The frozen record of a fake-video clip's parameters, and the camera move it describes.

:func:`~single_image_dataset.video.sample_clip_params` draws it; renderers only read it, through the
frames' :class:`~single_image_dataset.SampleParams`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..params import JitterParams, SampleParams, record_from_dict, record_to_dict

__all__ = ["Box", "ClipParams"]

#: A box ``(top, left, height, width)`` in pixels, the argument order of torchvision's ``F.crop``.
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class ClipParams:
    """The complete recipe of one clip; rendering it needs nothing else but the source image.

    Frame ``t`` is the box :meth:`frame_boxes` gives for it, taken inside the initial ``crop`` and
    resized to ``output_size`` square (bicubic, antialiased), then colour-jittered by ``jitter``, the same
    factors and order for every frame. :meth:`frames` spells each frame out as the
    :class:`~single_image_dataset.SampleParams` of an image sample, which every renderer renders.

    Attributes:
        crop: the initial square crop in source pixels, ``(top, left, height, width)``.
        start_box: the first frame's box inside the initial crop.
        end_box: the last frame's box inside the initial crop.
        clip_len: the number of frames.
        output_size: side of the square frames.
        jitter: the colour jitter of every frame, or ``None`` when the clip has none.

    Example:
        >>> p = ClipParams(crop=(0, 0, 100, 100), start_box=(0, 0, 10, 10), end_box=(90, 50, 10, 50),
        ...                clip_len=3, output_size=32, jitter=None)
        >>> p.frame_boxes()
        [(0, 0, 10, 10), (45, 25, 10, 30), (90, 50, 10, 50)]
    """

    crop: Box
    start_box: Box
    end_box: Box
    clip_len: int
    output_size: int
    jitter: JitterParams | None

    def frame_boxes(self) -> list[Box]:
        """The box of every frame: the camera move from :attr:`start_box` to :attr:`end_box`.

        Each edge of the box (top, left, bottom = top + height, right = left + width) moves linearly:
        in frame ``t`` of ``T = clip_len`` it is exactly ``(e_start * (T - 1 - t) + e_end * t) / (T - 1)``,
        rounded half up (``floor(e + 1/2)``, computed in integers, so no floating-point rounding
        enters); the frame's box is then ``(top, left, bottom - top, right - left)``. So frame 0 is
        the start box and frame ``T - 1`` the end box, exactly. Rounding the edges rather than
        ``(top, height)`` keeps every box inside the initial crop (an edge between two edges in the
        crop rounds into it) and at least 1 px wide and high (rounding half up is monotone and commutes
        with whole-pixel shifts); rounding top and height each could put a box 1 px past the crop.
        """
        span = self.clip_len - 1
        start, end = _edges(self.start_box), _edges(self.end_box)
        boxes = []
        for t in range(self.clip_len):
            # floor((a * (span - t) + b * t) / span + 1/2), in integers.
            top, left, bottom, right = (
                (2 * (a * (span - t) + b * t) + span) // (2 * span) for a, b in zip(start, end, strict=True)
            )
            boxes.append((top, left, bottom - top, right - left))
        return boxes

    def frames(self) -> list[SampleParams]:
        """Every frame as the parameters of an image sample: the crop, the frame's box resized straight to
        ``output_size`` (bicubic), no warp, no flip, and the clip's jitter.

        Example:
            >>> p = ClipParams(crop=(5, 0, 100, 100), start_box=(0, 0, 10, 10), end_box=(90, 50, 10, 50),
            ...                clip_len=3, output_size=32, jitter=None)
            >>> f = p.frames()[1]
            >>> f.crop, f.resized_crop, f.resize, f.output_size, f.warp, f.vflip
            ((5, 0, 100, 100), (45, 25, 10, 30), 32, 32, None, False)
        """
        return [
            SampleParams(
                crop=self.crop, resized_crop=box, resize=self.output_size, interpolation="bicubic", warp=None,
                angle=0.0, shear=(0.0, 0.0), vflip=False, output_size=self.output_size, debug_size=None,
                jitter=self.jitter,
            )
            for box in self.frame_boxes()
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (tuples become lists); :meth:`from_dict` inverts it."""
        return record_to_dict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ClipParams:
        """Rebuild the record written by :meth:`to_dict`."""
        return record_from_dict(cls, values)


def _edges(box: Box) -> tuple[int, int, int, int]:
    top, left, height, width = box
    return top, left, top + height, left + width
