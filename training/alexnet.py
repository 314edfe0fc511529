"""AlexNet with BatchNorm as used by the single-image paper, with a width multiplier for small runs."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["CONV_NAMES", "AlexNet", "feature_dim", "min_input_size"]

CONV_NAMES = ("conv1", "conv2", "conv3", "conv4", "conv5")

# (out_channels, kernel, stride, padding, max-pool after it) of the paper's five conv layers.
_CONVS = (
    (96, 11, 4, 2, True),
    (256, 5, 1, 2, True),
    (384, 3, 1, 1, False),
    (384, 3, 1, 1, False),
    (256, 3, 1, 1, True),
)
_HIDDEN = 4096


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def _map_sizes(input_size: int) -> list[int]:
    """Side of each conv layer's output map, then of the trunk's output (after the last pool)."""
    sizes, size = [], input_size
    for _, kernel, stride, padding, pool in _CONVS:
        size = _conv_out(size, kernel, stride, padding)
        sizes.append(size)
        if pool:
            size = _conv_out(size, 3, 2, 0)
    sizes.append(size)
    return sizes


def feature_dim(width: float) -> int:
    """Width of the hidden fc layers (the features ``AlexNet.embed`` returns) at channel multiplier ``width``.

    Example:
        >>> feature_dim(1.0), feature_dim(0.25)
        (4096, 1024)
    """
    return max(1, round(_HIDDEN * width))


def min_input_size() -> int:
    """Smallest input side for which every layer's map is at least 1 px (63 for this AlexNet)."""
    size = 1
    while min(_map_sizes(size)) < 1:
        size += 1
    return size


class AlexNet(nn.Module):
    """AlexNet with BatchNorm (conv 96-256-384-384-256, fc 4096-4096), the paper's architecture.

    ``width`` multiplies every layer's channels (and the two hidden fc layers), so a CPU demo can
    run a quarter-width network; ``width=1`` is the paper's. The classifier's input size follows
    from ``input_size`` (256 channels x 6 x 6 at 224 px, as in the paper).

    Args:
        num_classes: outputs of the top layer (4 rotations for RotNet, ``k`` for DeepCluster).
        width: channel multiplier, > 0.
        input_size: side of the square input images, at least :func:`min_input_size`.
        dropout: dropout probability before each hidden fc layer (0.5 in the paper; small
            networks trained for a few hundred steps learn faster without it).

    Raises:
        ValueError: ``width`` is not positive, ``input_size`` is too small or ``dropout`` not in [0, 1).

    Example:
        >>> net = AlexNet(num_classes=4, width=0.25, input_size=64)
        >>> [tuple(f.shape) for f in net.conv_features(torch.zeros(2, 3, 64, 64))]
        [(2, 24, 15, 15), (2, 64, 7, 7), (2, 96, 3, 3), (2, 96, 3, 3), (2, 64, 3, 3)]
        >>> tuple(net(torch.zeros(2, 3, 64, 64)).shape)
        (2, 4)
    """

    def __init__(self, num_classes: int, width: float = 1.0, input_size: int = 224, dropout: float = 0.5) -> None:
        super().__init__()
        if not width > 0:
            raise ValueError(f"width should be a positive channel multiplier, got {width:g}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout should be a probability in [0, 1), got {dropout:g}")
        if num_classes < 1:
            raise ValueError(f"num_classes should be at least 1, got {num_classes}")
        sizes = _map_sizes(input_size)
        if min(sizes) < 1:
            raise ValueError(f"input_size should be at least {min_input_size()} px for AlexNet, got {input_size}")
        self.width = width
        self.input_size = input_size
        self.channels = tuple(max(1, round(c * width)) for c, *_ in _CONVS)
        self.map_sizes = tuple(sizes[:5])

        blocks: list[nn.Module] = []
        in_channels = 3
        for out_channels, (_, kernel, stride, padding, pool) in zip(self.channels, _CONVS, strict=True):
            layers: list[nn.Module] = [
                nn.Conv2d(in_channels, out_channels, kernel, stride, padding),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            ]
            blocks.append(nn.Sequential(*layers))
            if pool:
                blocks.append(nn.MaxPool2d(3, 2))
            in_channels = out_channels
        self.features = nn.Sequential(*blocks)
        # Positions of the conv blocks in self.features, for conv_features().
        self._conv_positions = tuple(i for i, b in enumerate(blocks) if isinstance(b, nn.Sequential))

        hidden = feature_dim(width)
        self.feature_dim = hidden
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(in_channels * sizes[5] ** 2, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
        )
        self.top_layer = nn.Linear(hidden, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def reset_top_layer(self, generator: torch.Generator | None = None) -> None:
        """Re-initialise the top layer (DeepCluster does it after every clustering)."""
        with torch.no_grad():
            nn.init.normal_(self.top_layer.weight, 0.0, 0.01, generator=generator)
            self.top_layer.bias.zero_()

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate (hidden fc) features, ``N x feature_dim``."""
        return self.classifier(torch.flatten(self.features(x), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.top_layer(self.embed(x))

    def conv_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The outputs of conv1..conv5 (after BatchNorm and ReLU, before pooling)."""
        outputs = []
        for i, block in enumerate(self.features):
            x = block(x)
            if i in self._conv_positions:
                outputs.append(x)
            if len(outputs) == len(CONV_NAMES):
                break
        return outputs
