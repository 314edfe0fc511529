"""SimCLR (Chen, Kornblith, Norouzi & Hinton, ICML 2020): two views of each image, told apart from the others'.

Each sample comes as the library's two SimCLR views (``SingleImageDataset(views=...)`` with
:func:`single_image_dataset.views.preset` ``"simclr"`` at the network's input side: crop area 0.08-1, flip,
colour distortion of strength 1, blur), rendered and delivered by ``batch_loader`` (or one sample at a time).
The AlexNet trunk's hidden fc features ``h`` go through a two-layer projector
``z = W2 relu(W1 h)`` (hidden width the trunk's feature width, 128 outputs, the paper's section 2.1 and B.4);
``W1`` is the AlexNet's top layer, so every parameter of the encoder is trained. The loss is NT-Xent (the
paper's equation 1): for the ``2N`` L2-normalised projections of a batch, each view's cross-entropy of finding
its partner among the other ``2N - 1`` at cosine similarity over temperature ``tau``, averaged over all ``2N``.
Under torchrun the projections of every process are gathered (with their gradients) so the negatives are those
of the global batch, as the paper's TPU implementation does; BatchNorm statistics stay per process.

Temperature 0.5 by default: the paper's appendix B.9 (CIFAR-10, batches of 256 to 4096) finds 0.5 the best of
{0.1, 0.5, 1.0} at every batch size, where 0.1 is its ImageNet setting for batches of 4096; the program's batches
are small (64 in the CPU demo). The paper optimises with LARS at a learning rate of 0.3 x batch / 256 and weight
decay 1e-6; here SGD with momentum 0.9, 0.075 (0.3 x 64 / 256, the CPU demo's batch) and 1e-6.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.distributed.nn
from torch import nn
from torch.nn import functional as F

from single_image_dataset.views import View, preset

from ..alexnet import AlexNet, feature_dim
from .base import Context, Method

if TYPE_CHECKING:
    from ..config import TrainConfig

__all__ = ["PROJECTION_DIM", "SimCLR", "nt_xent"]

#: Outputs of the projector (the paper's 128).
PROJECTION_DIM = 128


def nt_xent(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent loss of ``2N`` projections: rows ``k`` and ``k + N`` are the two views of one image.

    Each row is L2-normalised; row ``i``'s loss is the cross-entropy of picking its partner among the other
    ``2N - 1`` rows by cosine similarity divided by ``temperature``; the mean over the ``2N`` rows is returned.

    Args:
        z: ``2N x D`` projections, the first views' then the second views'.
        temperature: ``tau`` > 0.

    Raises:
        ValueError: ``z`` is not a matrix of an even number (at least 2) of rows, or ``temperature`` is not
            positive.

    Example:
        >>> z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])  # two images, views agree
        >>> round(float(nt_xent(z, temperature=0.5)), 4)  # -log(e^2 / (e^2 + e^0 + e^0))
        0.2395
    """
    if z.dim() != 2 or len(z) < 2 or len(z) % 2:
        raise ValueError(f"z should be 2N x D projections (two views of N images), got shape {tuple(z.shape)}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature should be a positive number, got {temperature:g}")
    z = F.normalize(z, dim=1)
    logits = z @ z.T / temperature
    logits.fill_diagonal_(float("-inf"))  # a view is not its own partner, nor a negative
    n = len(z) // 2
    partners = torch.arange(2 * n, device=z.device).roll(n)  # row k's partner is k + n (mod 2n)
    return F.cross_entropy(logits, partners)


class SimCLR(Method):
    """NT-Xent on the library's two SimCLR views of each sample, SGD with momentum 0.9 (Chen et al. 2020)."""

    default_lr = 0.075
    default_weight_decay = 1e-6
    own_settings = ("temperature",)

    def __init__(self, config: TrainConfig, ctx: Context) -> None:
        super().__init__(config, ctx)
        self.projector = nn.Sequential(nn.ReLU(), nn.Linear(feature_dim(config.width), PROJECTION_DIM)).to(ctx.device)
        self.net = ctx.parallel(nn.Sequential(self.encoder, self.projector))
        self.optimizer = torch.optim.SGD(
            self.net.parameters(), lr=self.lr, momentum=0.9, weight_decay=self.weight_decay
        )

    def build_encoder(self) -> AlexNet:
        c = self.config
        # The top layer is the projector's first layer, W1 (hidden width: the trunk's feature width).
        return AlexNet(feature_dim(c.width), width=c.width, input_size=c.input_size, dropout=c.dropout)

    def views(self) -> tuple[View, ...]:
        return preset("simclr", size=self.config.input_size)

    def networks(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "projector": self.projector}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"sgd": self.optimizer}

    def train_step(self, x: torch.Tensor | list[torch.Tensor], y: torch.Tensor) -> dict[str, torch.Tensor]:
        first, second = x
        z = self.net(torch.cat([first, second]))
        if self.ctx.world_size > 1:  # every process's projections, as the global batch's negatives
            z = _global_batch(z, len(first))
        loss = nt_xent(z, self.config.temperature)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.detach()}


def _global_batch(z: torch.Tensor, n: int) -> torch.Tensor:
    """The ``2N`` projections of every process as one ``2NW`` batch, first views then second views, with
    gradients flowing back to the process that made each row.

    Each process computes the whole batch's loss, so ``W`` times the gradient of the global loss reaches its rows
    through the gather, and DDP's average over the ``W`` processes divides it back.
    """
    parts = torch.distributed.nn.functional.all_gather(z)
    return torch.cat([p[:n] for p in parts] + [p[n:] for p in parts])
