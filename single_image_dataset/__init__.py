"""One photograph as a dataset of a million augmented images, generated on the fly.

Reproduces the data of Asano, Rupprecht & Vedaldi, "A critical analysis of self-supervision, or
what we can learn from a single image" (ICLR 2020) as a per-index reproducible
``torch.utils.data.Dataset`` that drops in for ``torchvision.datasets.ImageFolder``, and the fake-video
clips of its follow-up, "The Augmented Image Prior" (ICLR 2023), as :class:`FakeVideoDataset`; with ``views=``,
each sample gives the several random views that SimCLR, MoCo v2, BYOL and DINO learn from (:mod:`.views`).

Example:
    >>> import single_image_dataset as sid
    >>> ds = sid.SingleImageDataset(num_imgs=1000, img_size=32)  # the embedded DEFAULT_IMAGE
    >>> image, target = ds[7]
    >>> image.size, target, len(ds)
    ((32, 32), 0, 1000)
    >>> ds.params(7) == sid.sample_params(ds.config, ds.source.size, 7)  # sample 7 depends on (seed, epoch, 7) only
    True
"""

from .config import IMAGENET_TRAIN_SIZE, MAX_IMG_SIZE, AugmentConfig
from .dataset import SMALL_SOURCE_RATIO, SampleBatch, SingleImageDataset, SmallSourceWarning
from .export import materialize, materialize_video
from .loader import (
    MAX_BATCH_SIZE,
    BatchLoader,
    EpochRandomSampler,
    EpochSequentialSampler,
    batch_loader,
    collate_batch,
)
from .params import JitterParams, ParamsBatch, SampleParams
from .preview import preview_grid, save_preview
from .render import Renderer, available_backends, get_renderer, register_renderer
from .sampling import sample_params, sample_params_batch
from .source import DEFAULT_IMAGE, HUBBLE_IMAGE, load_image
from .tasks import NUM_ROTATIONS, PseudoLabelled, RotationLabels, rotate_batch
from .version import __version__ as __version__
from .video import ClipParams, FakeVideoDataset, VideoConfig, decode_mp4, encode_mp4, sample_clip_params
from .views import View, ViewParams, ViewParamsBatch, sample_view_params, sample_view_params_batch

__all__ = [
    "DEFAULT_IMAGE",
    "HUBBLE_IMAGE",
    "IMAGENET_TRAIN_SIZE",
    "MAX_BATCH_SIZE",
    "MAX_IMG_SIZE",
    "NUM_ROTATIONS",
    "SMALL_SOURCE_RATIO",
    "AugmentConfig",
    "BatchLoader",
    "ClipParams",
    "EpochRandomSampler",
    "EpochSequentialSampler",
    "FakeVideoDataset",
    "JitterParams",
    "ParamsBatch",
    "PseudoLabelled",
    "Renderer",
    "RotationLabels",
    "SampleBatch",
    "SampleParams",
    "SingleImageDataset",
    "SmallSourceWarning",
    "VideoConfig",
    "View",
    "ViewParams",
    "ViewParamsBatch",
    "available_backends",
    "batch_loader",
    "collate_batch",
    "decode_mp4",
    "encode_mp4",
    "get_renderer",
    "load_image",
    "materialize",
    "materialize_video",
    "preview_grid",
    "register_renderer",
    "rotate_batch",
    "sample_clip_params",
    "sample_params",
    "sample_params_batch",
    "sample_view_params",
    "sample_view_params_batch",
    "save_preview",
]
