"""The paper's linear-probe evaluation: a linear classifier on each frozen conv layer of an AlexNet."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets

from .alexnet import CONV_NAMES, AlexNet
from .transforms import probe_transforms

__all__ = ["PROBE_FEATURES", "LinearProbes", "linear_probe"]

#: Features per layer after the adaptive max-pool (the paper's ~9k: 96x10x10, 256x6x6, 384x5x5, ...).
PROBE_FEATURES = 9216

_log = logging.getLogger(__name__)


class LinearProbes(nn.Module):
    """One linear classifier per conv layer of a frozen AlexNet trunk.

    Each layer's output is max-pooled to ``s x s`` with ``s = round(sqrt(PROBE_FEATURES / channels))``
    (capped at the layer's map size), standardised by a non-affine BatchNorm and fed to a linear
    layer; all five are trained at once from one forward pass of the trunk.

    Args:
        trunk: the network to evaluate; it is put in eval mode and never updated.
        num_classes: classes of the labelled set.
        features: target number of features per layer.

    Example:
        >>> probes = LinearProbes(AlexNet(4, width=0.25, input_size=64), num_classes=10)
        >>> {name: tuple(logits.shape) for name, logits in probes(torch.zeros(2, 3, 64, 64)).items()}
        {'conv1': (2, 10), 'conv2': (2, 10), 'conv3': (2, 10), 'conv4': (2, 10), 'conv5': (2, 10)}
    """

    def __init__(self, trunk: AlexNet, num_classes: int, features: int = PROBE_FEATURES) -> None:
        super().__init__()
        self.trunk = trunk.eval().requires_grad_(False)
        heads = {}
        for name, channels, size in zip(CONV_NAMES, trunk.channels, trunk.map_sizes, strict=True):
            side = min(size, max(1, round(math.sqrt(features / channels))))
            heads[name] = nn.Sequential(
                nn.AdaptiveMaxPool2d(side),
                nn.Flatten(),
                nn.BatchNorm1d(channels * side * side, affine=False),
                nn.Linear(channels * side * side, num_classes),
            )
        self.heads = nn.ModuleDict(heads)

    def train(self, mode: bool = True) -> LinearProbes:
        super().train(mode)
        self.trunk.eval()  # the trunk's BatchNorm statistics stay frozen too
        return self

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            maps = self.trunk.conv_features(x)
        return {name: head(m) for (name, head), m in zip(self.heads.items(), maps, strict=True)}


def linear_probe(
    trunk: AlexNet,
    root: str | Path,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 0.01,
    workers: int = 0,
    device: torch.device | str = "cpu",
    seed: int = 0,
) -> dict[str, float]:
    """Train linear probes on ``root/train`` and return the top-1 accuracy of each layer on ``root/val``.

    Both splits are ``torchvision.datasets.ImageFolder`` trees with the same class folders. The
    probes use SGD with momentum, weight decay and a cosine schedule. ``trunk``'s weights are not
    changed, but it is left in eval mode with gradients switched off (pass a copy to keep training it).

    Args:
        trunk: the AlexNet to evaluate (its ``input_size`` sets the image size).
        root: folder with ``train/`` and ``val/``.
        epochs: passes over the training split.
        batch_size: images per step.
        lr: initial learning rate of the probes.
        workers: DataLoader worker processes.
        device: where to run.
        seed: seeds the probes' initialisation and the data order.

    Returns:
        ``{"conv1": top-1, ..., "conv5": top-1}``, accuracies in [0, 1].

    Raises:
        FileNotFoundError: ``root/train`` or ``root/val`` is missing.
        ValueError: the two splits do not have the same classes.
    """
    root = Path(root)
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise FileNotFoundError(
                f"probe set {root} should hold ImageFolder trees train/ and val/; {split}/ is missing"
            )
    train_tf, val_tf = probe_transforms(trunk.input_size)
    train_set = datasets.ImageFolder(str(root / "train"), transform=train_tf)
    val_set = datasets.ImageFolder(str(root / "val"), transform=val_tf)
    if train_set.classes != val_set.classes:
        raise ValueError(
            f"probe set {root}: train/ and val/ should have the same classes, "
            f"got {train_set.classes} and {val_set.classes}"
        )
    device = torch.device(device)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        probes = LinearProbes(trunk, len(train_set.classes)).to(device)
    params = [p for p in probes.heads.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=5e-4)
    train_loader = DataLoader(
        train_set, batch_size=batch_size, shuffle=True, num_workers=workers, generator=generator, drop_last=True
    )
    if len(train_loader) == 0:
        raise ValueError(f"probe set {root}: train/ has {len(train_set)} images, fewer than one batch of {batch_size}")
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * len(train_loader))
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        probes.train()
        total = 0.0
        for x, y in train_loader:
            x, y = x.to(device), y.to(device)
            logits = probes(x)
            loss = sum(loss_fn(out, y) for out in logits.values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item() / len(logits)
        _log.info("probe epoch %d/%d: mean loss per layer %.4f", epoch + 1, epochs, total / len(train_loader))
    return _evaluate(probes, DataLoader(val_set, batch_size=batch_size, num_workers=workers), device)


@torch.no_grad()
def _evaluate(probes: LinearProbes, loader: DataLoader, device: torch.device) -> dict[str, float]:
    probes.eval()
    correct = dict.fromkeys(probes.heads, 0)
    count = 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        for name, out in probes(x).items():
            correct[name] += int((out.argmax(1) == y).sum())
        count += len(y)
    return {name: c / count for name, c in correct.items()}
