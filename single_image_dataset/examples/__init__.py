"""Self-supervised training on a single image: RotNet, DeepCluster and linear probes on an AlexNet.

The module code behind ``train_example.py``; it uses :class:`~single_image_dataset.SingleImageDataset`
exactly as a user would, as a drop-in ImageFolder.
"""

from .alexnet import CONV_NAMES, AlexNet, min_input_size
from .deepcluster import PseudoLabelled, cluster_features, compute_features, pca_whiten, uniform_cluster_indices
from .kmeans import kmeans, kmeans_plus_plus, normalized_mutual_info
from .probe import PROBE_FEATURES, LinearProbes, linear_probe, probe_transforms
from .rotnet import NUM_ROTATIONS, rotate_batch, rotation_accuracy
from .train import AUTO_RESUME, METHODS, TrainConfig, train

__all__ = [
    "AUTO_RESUME",
    "CONV_NAMES",
    "METHODS",
    "NUM_ROTATIONS",
    "PROBE_FEATURES",
    "AlexNet",
    "LinearProbes",
    "PseudoLabelled",
    "TrainConfig",
    "cluster_features",
    "compute_features",
    "kmeans",
    "kmeans_plus_plus",
    "linear_probe",
    "min_input_size",
    "normalized_mutual_info",
    "pca_whiten",
    "probe_transforms",
    "rotate_batch",
    "rotation_accuracy",
    "train",
    "uniform_cluster_indices",
]
