"""RotNet (Gidaris et al., ICLR 2018): predict which of four rotations was applied to an image."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["NUM_ROTATIONS", "rotate_batch", "rotation_accuracy"]

NUM_ROTATIONS = 4


def rotate_batch(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """All four rotations (0, 90, 180, 270 degrees) of every image, and their labels 0..3.

    As in Gidaris et al., each image appears in the batch in all four orientations, so the
    batch is four times larger and every label is equally frequent.

    Args:
        x: ``N x C x H x W`` square images.

    Returns:
        ``(4N x C x H x W images, 4N labels)``, rotation-major.

    Example:
        >>> x, y = rotate_batch(torch.arange(4.0).reshape(1, 1, 2, 2))
        >>> y.tolist(), x[1, 0].tolist()
        ([0, 1, 2, 3], [[1.0, 3.0], [0.0, 2.0]])
    """
    if x.ndim != 4 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"x should be a batch of square images N x C x H x H, got shape {tuple(x.shape)}")
    rotated = torch.cat([torch.rot90(x, r, dims=(2, 3)) for r in range(NUM_ROTATIONS)])
    labels = torch.arange(NUM_ROTATIONS, device=x.device).repeat_interleave(x.shape[0])
    return rotated, labels


@torch.no_grad()
def rotation_accuracy(model: nn.Module, batches: Iterable[torch.Tensor], device: torch.device | str) -> float:
    """Fraction of the four rotations of every image that ``model`` (in eval mode) gets right.

    Args:
        model: a network with four outputs.
        batches: image batches ``N x C x H x W`` (e.g. held-out indices of the dataset).
        device: where to run the model.
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
