"""The self-supervised methods of the training program, by name.

A method is a :class:`Method` subclass in a module of its own, registered here with
:func:`register_method`; ``train_example.py --method NAME`` and ``TrainConfig(method=NAME)`` then accept it.
"""

from __future__ import annotations

from .base import Context, EpochPlan, Method
from .bigan import LATENT_DIM, BiGAN, Generator, JointDiscriminator, step_size_factor
from .deepcluster import (
    DeepCluster,
    cluster_features,
    compute_features,
    feature_shard,
    pca_whiten,
    uniform_cluster_indices,
)
from .rotnet import RotNet, rotation_accuracy
from .simclr import PROJECTION_DIM, SimCLR, nt_xent

__all__ = [
    "LATENT_DIM",
    "METHODS",
    "PROJECTION_DIM",
    "BiGAN",
    "Context",
    "DeepCluster",
    "EpochPlan",
    "Generator",
    "JointDiscriminator",
    "Method",
    "RotNet",
    "SimCLR",
    "cluster_features",
    "compute_features",
    "feature_shard",
    "nt_xent",
    "pca_whiten",
    "register_method",
    "rotation_accuracy",
    "step_size_factor",
    "uniform_cluster_indices",
]

#: The methods, by the name ``--method`` takes.
METHODS: dict[str, type[Method]] = {}


def register_method(name: str, method: type[Method]) -> None:
    """Make ``method`` available as ``--method name``.

    Raises:
        TypeError: ``method`` is not a :class:`Method` subclass.
        ValueError: ``name`` is taken (a second registration would hide the first).
    """
    if not (isinstance(method, type) and issubclass(method, Method)):
        raise TypeError(f"method should be a Method subclass, got {method!r}")
    if name in METHODS:
        raise ValueError(f"a method is already registered as {name!r} ({METHODS[name].__qualname__}); "
                         "register this one under another name")
    METHODS[name] = method


register_method("rotnet", RotNet)
register_method("deepcluster", DeepCluster)
register_method("bigan", BiGAN)
register_method("simclr", SimCLR)
