"""Self-supervised training on a single image: RotNet, DeepCluster and linear probes on an AlexNet.

The program behind ``train_example.py``, kept outside the installed package as torchvision keeps
its ``references/``. It uses the library exactly as a user would: :class:`~single_image_dataset.SingleImageDataset`
as a drop-in ImageFolder, and the task adapters of :mod:`single_image_dataset.tasks`.
"""

from .alexnet import CONV_NAMES, AlexNet, min_input_size
from .deepcluster import cluster_features, compute_features, pca_whiten, uniform_cluster_indices
from .kmeans import kmeans, kmeans_plus_plus, normalized_mutual_info
from .probe import PROBE_FEATURES, LinearProbes, linear_probe
from .rotnet import rotation_accuracy
from .train import (
    AUTO_RESUME,
    MAX_WIDTH,
    MAX_WORKERS,
    METHODS,
    RESUME_FIXED,
    RESUME_TAKEN,
    TrainConfig,
    resumed_config,
    train,
)
from .transforms import IMAGENET_MEAN, IMAGENET_STD, pretrain_transforms, probe_transforms

__all__ = [
    "AUTO_RESUME",
    "CONV_NAMES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MAX_WIDTH",
    "MAX_WORKERS",
    "METHODS",
    "PROBE_FEATURES",
    "RESUME_FIXED",
    "RESUME_TAKEN",
    "AlexNet",
    "LinearProbes",
    "TrainConfig",
    "cluster_features",
    "compute_features",
    "kmeans",
    "kmeans_plus_plus",
    "linear_probe",
    "min_input_size",
    "normalized_mutual_info",
    "pca_whiten",
    "pretrain_transforms",
    "probe_transforms",
    "resumed_config",
    "rotation_accuracy",
    "train",
    "uniform_cluster_indices",
]
