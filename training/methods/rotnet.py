"""RotNet (Gidaris et al., ICLR 2018): an AlexNet learns which of four rotations it sees.

The task itself, :func:`~single_image_dataset.rotate_batch`, is library API (``single_image_dataset.tasks``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from single_image_dataset import NUM_ROTATIONS, rotate_batch

from ..alexnet import AlexNet
from ..crops import PositionCrop
from .base import Context, Method

if TYPE_CHECKING:
    from ..config import TrainConfig
    from ..data import TrainData

__all__ = ["RotNet", "rotation_accuracy"]


class RotNet(Method):
    """All four rotations of every image in each batch, SGD with momentum 0.9 (Gidaris et al.)."""

    default_lr = 0.01
    default_weight_decay = 5e-4
    uses_source_labels = True

    def __init__(self, config: TrainConfig, ctx: Context) -> None:
        super().__init__(config, ctx)
        self.net = ctx.parallel(self.encoder)
        self.optimizer = torch.optim.SGD(
            self.encoder.parameters(), lr=self.lr, momentum=0.9, weight_decay=self.weight_decay
        )

    def build_encoder(self) -> AlexNet:
        c = self.config
        return AlexNet(NUM_ROTATIONS, width=c.width, input_size=c.input_size, dropout=c.dropout)

    def networks(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"sgd": self.optimizer}

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        images, rotations = rotate_batch(x)
        loss = F.cross_entropy(self.net(images), rotations)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.detach()}

    def evaluate(self, epoch: int, data: TrainData, out: Path) -> dict[str, Any]:
        """The rotation accuracy on the held-out indices (and per source with ``per_source_classes``)."""
        c = self.config
        if c.val_imgs == 0:
            return {}
        held_out = np.arange(c.num_imgs, c.num_imgs + c.val_imgs)
        batches = list(data.batches(held_out, np.arange(c.val_imgs), PositionCrop(c.input_size, random=False), epoch))
        hits = _rotation_hits(self.encoder, (x for x, _ in batches))
        record: dict[str, Any] = {"val_rotation_acc": float(hits.float().mean())}
        if c.per_source_classes:
            sources = torch.cat([y.repeat(NUM_ROTATIONS) for _, y in batches]).to(hits.device)
            record["val_rotation_acc_by_source"] = {
                name: float(hits[sources == k].float().mean()) if bool((sources == k).any()) else None
                for k, name in enumerate(data.dataset.source_names)
            }
        return record


@torch.no_grad()
def _rotation_hits(model: nn.Module, batches: Iterable[torch.Tensor]) -> torch.Tensor:
    """Whether ``model`` (in eval mode) gets each rotation right, batch by batch, rotation-major within a batch."""
    was_training = model.training
    model.eval()
    hits = []
    for x in batches:
        images, labels = rotate_batch(x)
        hits.append(model(images).argmax(1) == labels)
    model.train(was_training)
    if not hits:
        raise ValueError("rotation_accuracy got no images")
    return torch.cat(hits)


def rotation_accuracy(model: nn.Module, batches: Iterable[torch.Tensor], device: torch.device | str) -> float:
    """Fraction of the four rotations of every image that ``model`` (in eval mode) gets right.

    Args:
        model: a network with four outputs.
        batches: image batches ``N x C x H x W`` (e.g. held-out indices of the dataset).
        device: where to run the model.

    Example:
        >>> class AlwaysUpright(nn.Module):
        ...     def forward(self, x: torch.Tensor) -> torch.Tensor:
        ...         return torch.eye(4)[[0] * len(x)]
        >>> rotation_accuracy(AlwaysUpright(), [torch.zeros(3, 3, 8, 8)], "cpu")
        0.25
    """
    return float(_rotation_hits(model, (x.to(device) for x in batches)).float().mean())
