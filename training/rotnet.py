"""RotNet (Gidaris et al., ICLR 2018) evaluation: how often a network tells which of four rotations it sees.

The task itself, :func:`~single_image_dataset.rotate_batch`, is library API (``single_image_dataset.tasks``).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from single_image_dataset import rotate_batch

__all__ = ["rotation_accuracy"]


@torch.no_grad()
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
    was_training = model.training
    model.eval()
    correct = total = 0
    for x in batches:
        images, labels = rotate_batch(x.to(device))
        correct += int((model(images).argmax(1) == labels).sum())
        total += len(labels)
    model.train(was_training)
    if total == 0:
        raise ValueError("rotation_accuracy got no images")
    return correct / total
