"""Self-supervised training on a single image: RotNet, DeepCluster, BiGAN and SimCLR on an AlexNet, linear probes, and
the paper's study (``python -m training.study``).

The program behind ``train_example.py``, kept outside the installed package as torchvision keeps
its ``references/``. It uses the library as a user would: :class:`~single_image_dataset.SingleImageDataset`,
:func:`~single_image_dataset.batch_loader` and the task adapters of :mod:`single_image_dataset.tasks`.
Its modules: ``config`` (:class:`TrainConfig`), ``data`` (the two ways batches are made), ``crops`` (the
methods' crops and flips), ``methods`` (one module per method, and the registry :data:`METHODS`), ``train``
(the loop, :func:`run_training`), ``checkpoint``, ``probe``, ``study``, ``cli`` (``train_example.py``'s
command line), ``alexnet``, ``kmeans``, ``rng`` and ``transforms``.
"""

from .alexnet import CONV_NAMES, AlexNet, feature_dim, min_input_size
from .checkpoint import RESUME_FIXED, RESUME_TAKEN, resumed_config
from .config import AUTO_RESUME, MAX_NUM_IMGS, MAX_WIDTH, MAX_WORKERS, TrainConfig
from .crops import PositionCrop
from .data import LOADERS, TrainData, epoch_positions
from .kmeans import kmeans, kmeans_plus_plus, normalized_mutual_info
from .methods import (
    METHODS,
    BiGAN,
    DeepCluster,
    Method,
    RotNet,
    SimCLR,
    cluster_features,
    compute_features,
    feature_shard,
    nt_xent,
    pca_whiten,
    register_method,
    rotation_accuracy,
    uniform_cluster_indices,
)
from .probe import PROBE_FEATURES, LinearProbes, linear_probe
from .train import probe_network, run_training
from .transforms import IMAGENET_MEAN, IMAGENET_STD, probe_transforms

__all__ = [
    "AUTO_RESUME",
    "CONV_NAMES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LOADERS",
    "MAX_NUM_IMGS",
    "MAX_WIDTH",
    "MAX_WORKERS",
    "METHODS",
    "PROBE_FEATURES",
    "RESUME_FIXED",
    "RESUME_TAKEN",
    "AlexNet",
    "BiGAN",
    "DeepCluster",
    "LinearProbes",
    "Method",
    "RotNet",
    "SimCLR",
    "TrainConfig",
    "TrainData",
    "PositionCrop",
    "cluster_features",
    "compute_features",
    "epoch_positions",
    "feature_dim",
    "feature_shard",
    "kmeans",
    "kmeans_plus_plus",
    "linear_probe",
    "min_input_size",
    "normalized_mutual_info",
    "nt_xent",
    "pca_whiten",
    "probe_network",
    "probe_transforms",
    "register_method",
    "resumed_config",
    "rotation_accuracy",
    "run_training",
    "uniform_cluster_indices",
]
