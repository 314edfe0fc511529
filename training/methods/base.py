"""What every self-supervised method provides to the training loop, and the process it runs in."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from single_image_dataset.views import View

from ..alexnet import AlexNet
from ..crops import PositionCrop

if TYPE_CHECKING:
    from ..config import TrainConfig
    from ..data import TrainData

__all__ = ["Context", "EpochPlan", "Method"]


@dataclass(frozen=True)
class Context:
    """The process a method runs in: its rank among ``world_size`` (torchrun) and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Whether this process logs, checkpoints and probes (rank 0)."""
        return self.rank == 0

    def parallel(self, module: nn.Module) -> nn.Module:
        """``module`` wrapped for data-parallel training when there are several processes."""
        if self.world_size == 1:
            return module
        return DistributedDataParallel(module, device_ids=[self.device.index] if self.device.type == "cuda" else None)


@dataclass(frozen=True)
class EpochPlan:
    """What an epoch trains on: dataset ``indices`` (repeats allowed), visited in a shuffled order of their
    positions, with a label per dataset index (``None``: the dataset's targets)."""

    indices: np.ndarray
    labels: torch.Tensor | None = None


class Method(ABC):
    """A self-supervised method: its networks and optimisers, its crop or views of a sample, and its training step.

    A subclass builds its networks in ``__init__`` (the loop has seeded torch's global generator, so the
    initialisation is reproducible) and registers under a name in :data:`training.methods.METHODS`. The
    trunk the linear probes read is :attr:`encoder`, an :class:`AlexNet`.

    Args:
        config: the run's settings.
        ctx: the process it runs in.
    """

    #: Learning rate and weight decay when ``TrainConfig`` leaves them unset.
    default_lr: ClassVar[float]
    default_weight_decay: ClassVar[float]
    #: Whether the method has a use for ``per_source_classes`` (the samples' sources as targets).
    uses_source_labels: ClassVar[bool] = False
    #: The ``TrainConfig`` settings only this method uses: another method's checkpoint does not depend on them.
    own_settings: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: TrainConfig, ctx: Context) -> None:
        self.config = config
        self.ctx = ctx
        self.lr = self.default_lr if config.lr is None else config.lr
        self.weight_decay = self.default_weight_decay if config.weight_decay is None else config.weight_decay
        self.encoder = self.build_encoder().to(ctx.device)

    @classmethod
    def check_config(cls, config: TrainConfig) -> None:
        """Refuse settings this method cannot train with (called by ``TrainConfig``).

        Raises:
            ValueError: the message names the setting.
        """
        if config.per_source_classes and not cls.uses_source_labels:
            raise ValueError(f"per_source_classes has no use in {config.method} (it reports nothing per source); "
                             "leave it out")

    @abstractmethod
    def build_encoder(self) -> AlexNet:
        """The AlexNet the method trains and the probes read (its top layer is the method's head)."""

    def train_crop(self) -> PositionCrop | None:
        """The crop each training sample is cut to (default: a random ``input_size`` crop and a horizontal flip,
        or ``None`` for a method with :meth:`views`, which are the augmentation); ``None`` trains on the samples
        (or their views) as delivered."""
        return None if self.views() is not None else PositionCrop(self.config.input_size)

    def views(self) -> tuple[View, ...] | None:
        """The library's views each sample is delivered as (``SingleImageDataset(views=...)``), or ``None`` for
        the sample itself (default)."""
        return None

    @abstractmethod
    def networks(self) -> dict[str, nn.Module]:
        """Every network whose weights a checkpoint holds, by name; ``"encoder"`` is :attr:`encoder`."""

    @abstractmethod
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Every optimiser whose state a checkpoint holds, by name."""

    def plan_epoch(self, epoch: int, data: TrainData) -> tuple[EpochPlan, dict[str, Any]]:
        """What epoch ``epoch`` trains on, and what to log about it (default: every training index)."""
        return EpochPlan(np.arange(self.config.num_imgs)), {}

    @abstractmethod
    def train_step(self, x: torch.Tensor | list[torch.Tensor], y: torch.Tensor) -> dict[str, torch.Tensor]:
        """One optimisation step on images ``x`` (one batch per view with :meth:`views`) with targets ``y``;
        returns its losses (scalar tensors)."""

    def evaluate(self, epoch: int, data: TrainData, out: Path) -> dict[str, Any]:
        """After epoch ``epoch`` (on the main process only): measurements for the log, files in ``out``."""
        return {}

    def state(self) -> dict[str, torch.Tensor | None]:
        """Tensors besides weights and optimiser states that a resumed run needs (e.g. cluster labels)."""
        return {}

    def load_state(self, state: dict[str, torch.Tensor | None], where: str) -> None:
        """Take back :meth:`state`; ``where`` names the checkpoint in errors.

        Raises:
            ValueError: ``state`` does not fit this method and its settings.
        """
        if state:
            raise ValueError(f"{where}: method_state should be empty for {self.config.method}, got {sorted(state)}")

    def train(self) -> None:
        """Put every network in training mode."""
        for network in self.networks().values():
            network.train()
