"""Fake-video clips of one image: the data of Asano & Saeed, "The Augmented Image Prior" (ICLR 2023).

Its ``make_fakevideo_dataset.py`` distilled video models from one image with 200,000 short clips, each a
camera move between two random resized crops of the image. :class:`FakeVideoDataset` makes them on the
fly, per-index reproducible like :class:`~single_image_dataset.SingleImageDataset`;
:func:`encode_mp4` writes a clip as an MP4 (PyAV, an optional extra), and
:func:`~single_image_dataset.export.materialize_video` the whole dataset.

Example:
    >>> from single_image_dataset.video import FakeVideoDataset
    >>> ds = FakeVideoDataset(num_imgs=10, clip_len=4, img_size=32)
    >>> clip, target = ds[3]
    >>> tuple(clip.shape), target  # T x C x H x W, torchvision's video layout
    ((4, 3, 32, 32), 0)
    >>> tuple(FakeVideoDataset(num_imgs=10, clip_len=4, img_size=32, layout="CTHW")[3][0].shape)  # video models'
    (3, 4, 32, 32)
"""

from .config import VideoConfig
from .dataset import LAYOUTS, FakeVideoDataset
from .encode import DEFAULT_CRF, DEFAULT_FPS, decode_mp4, encode_mp4
from .params import Box, ClipParams
from .preview import filmstrip, save_filmstrip
from .sampling import sample_clip_params

__all__ = [
    "DEFAULT_CRF",
    "DEFAULT_FPS",
    "LAYOUTS",
    "Box",
    "ClipParams",
    "FakeVideoDataset",
    "VideoConfig",
    "decode_mp4",
    "encode_mp4",
    "filmstrip",
    "sample_clip_params",
    "save_filmstrip",
]
