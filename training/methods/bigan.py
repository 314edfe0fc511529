"""BiGAN (Donahue, Krähenbühl & Darrell, ICLR 2017): an encoder learns to invert a generator.

A generator ``G`` maps a latent code ``z`` to an image, the encoder ``E`` (the AlexNet the probes read)
maps an image to a code, and a joint discriminator ``D`` tells real pairs ``(x, E(x))`` from generated
pairs ``(G(z), z)``. ``D`` is trained to tell them apart, ``E`` and ``G`` to make them indistinguishable
(the non-saturating form: each with the other's label). ``D`` sees the real and the generated pairs in
separate passes, so its BatchNorm statistics are those of one kind of pair (DCGAN's practice).

Hyper-parameters, from the authors' code (github.com/jeffdonahue/bigan, ``train_gan.py`` defaults and
``train_imagenet.sh``, ``dist.py``): a 200-dimensional latent code uniform in ``[-1, 1]`` (the encoder's
linear output ``t`` mapped into it as ``2 sigmoid(t) - 1``), Adam with step size 2e-4,
``beta1 = 0.5`` and an L2 weight decay of 2.5e-5 for every network, batches of 128, 64 px crops; the step
size is constant for the first half of the epochs and then decays exponentially to 1 % of itself.
The generator and the discriminator's image path are DCGAN-style (Radford et al., 2016): strided
(transposed) 4x4 convolutions with BatchNorm, ReLU in ``G``, LeakyReLU(0.2) in ``D``, weights from N(0, 0.02).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F
from torchvision.utils import make_grid

from ..alexnet import AlexNet
from ..crops import PositionCrop
from ..rng import derived_seed
from ..transforms import IMAGENET_MEAN, IMAGENET_STD
from .base import Context, EpochPlan, Method

if TYPE_CHECKING:
    from ..config import TrainConfig
    from ..data import TrainData

__all__ = ["LATENT_DIM", "BiGAN", "Generator", "JointDiscriminator", "step_size_factor"]

#: Dimension of the latent code ``z`` (BiGAN's ImageNet setting, uniform in ``[-1, 1]``).
LATENT_DIM = 200
# Samples and reconstructed held-out images in each epoch's grid (columns of the grid).
_GRID_COLUMNS = 8
_GRID_SAMPLE_ROWS = 4
_GRID_RECONSTRUCTIONS = 16
# Fraction of the step size left at the last epoch, after the exponential decay of the second half.
_FINAL_LR = 0.01


def _levels(size: int) -> tuple[int, int]:
    """``(levels, base)``: the generator doubles a ``base`` px map ``levels`` times to at least ``size`` px
    (4 -> 64 at 64 px, 7 -> 224 at 224 px); the discriminator halves its input as many times."""
    levels = max(1, int(math.log2(size / 4)))
    return levels, -(-size // 2**levels)


def _channels(levels: int, width: float) -> list[int]:
    """Channels at each scale, coarsest first: DCGAN's 8x, 4x, 2x, 1x of 64 (times ``width``), capped at 8x."""
    base = max(8, round(64 * width))
    return [base * min(8, 2 ** (levels - 1 - i)) for i in range(levels)]


def _dcgan_init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class Generator(nn.Module):
    """DCGAN generator: ``z`` -> fc to a ``base`` px map -> transposed convolutions doubling it -> ``tanh``.

    Args:
        latent_dim: size of ``z``.
        size: side of the images it makes (centre-cropped from the next size the doublings reach).
        width: channel multiplier (1: 512-256-128-64 channels at 64 px, as DCGAN).

    Example:
        >>> tuple(Generator(200, 64, width=0.25)(torch.zeros(2, 200)).shape)
        (2, 3, 64, 64)
    """

    def __init__(self, latent_dim: int, size: int, width: float) -> None:
        super().__init__()
        levels, self.base = _levels(size)
        channels = _channels(levels, width)
        self.size = size
        self.fc = nn.Sequential(
            nn.Linear(latent_dim, channels[0] * self.base**2, bias=False),
            nn.BatchNorm1d(channels[0] * self.base**2),
            nn.ReLU(inplace=True),
        )
        layers: list[nn.Module] = []
        for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(channels[-1], 3, 4, 2, 1), nn.Tanh()]
        self.deconv = nn.Sequential(*layers)
        self.channels = channels[0]
        _dcgan_init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Images in ``[-1, 1]``, ``N x 3 x size x size``."""
        x = self.deconv(self.fc(z).view(len(z), self.channels, self.base, self.base))
        top = (x.shape[-1] - self.size) // 2
        return x[..., top : top + self.size, top : top + self.size]


class JointDiscriminator(nn.Module):
    """BiGAN's discriminator of ``(x, z)`` pairs: a DCGAN image path and an MLP code path, joined by an MLP
    that returns one logit per pair ("real" is the encoder's pair ``(x, E(x))``).

    Example:
        >>> d = JointDiscriminator(200, 64, width=0.25)
        >>> tuple(d(torch.zeros(2, 3, 64, 64), torch.zeros(2, 200)).shape)
        (2,)
    """

    def __init__(self, latent_dim: int, size: int, width: float) -> None:
        super().__init__()
        levels, _ = _levels(size)
        channels = _channels(levels, width)[::-1]
        hidden = max(64, round(1024 * width))
        layers: list[nn.Module] = [nn.Conv2d(3, channels[0], 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, True)]
        side = size
        for _ in range(levels):
            side = (side + 2 - 4) // 2 + 1
        self.image = nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels[-1] * side**2, hidden),
                                   nn.LeakyReLU(0.2, inplace=True))
        self.code = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.2, inplace=True),
        )
        self.joint = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.LeakyReLU(0.2, inplace=True), nn.Linear(hidden, 1))
        _dcgan_init(self)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.joint(torch.cat([self.image(x), self.code(z)], 1)).squeeze(1)


class BiGAN(Method):
    """The encoder is the probed AlexNet (its top layer predicts ``z``); ``G`` and ``E`` share one Adam
    optimiser, ``D`` has its own; each step updates ``D``, then ``E`` and ``G``. After each epoch a PNG grid
    ``OUT/samples/epoch_NNN.png`` shows generated samples and held-out images beside their reconstructions
    ``G(E(x))``."""

    default_lr = 2e-4
    default_weight_decay = 2.5e-5

    def __init__(self, config: TrainConfig, ctx: Context) -> None:
        super().__init__(config, ctx)
        size, width = config.input_size, config.width
        self.generator = Generator(LATENT_DIM, size, width).to(ctx.device)
        self.discriminator = JointDiscriminator(LATENT_DIM, size, width).to(ctx.device)
        self.e, self.g, self.d = (ctx.parallel(m) for m in (self.encoder, self.generator, self.discriminator))
        adam = {"lr": self.lr, "betas": (0.5, 0.999), "weight_decay": self.weight_decay}
        self.optimizer = torch.optim.Adam([*self.encoder.parameters(), *self.generator.parameters()], **adam)
        self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(), **adam)
        self._mean = torch.tensor(IMAGENET_MEAN, device=ctx.device).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, device=ctx.device).view(1, 3, 1, 1)

    def build_encoder(self) -> AlexNet:
        c = self.config
        return AlexNet(LATENT_DIM, width=c.width, input_size=c.input_size, dropout=c.dropout)

    def networks(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "generator": self.generator, "discriminator": self.discriminator}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"encoder_generator": self.optimizer, "discriminator": self.d_optimizer}

    def plan_epoch(self, epoch: int, data: TrainData) -> tuple[EpochPlan, dict[str, Any]]:
        lr = self.lr * step_size_factor(epoch, self.config.epochs)
        for optimizer in (self.optimizer, self.d_optimizer):
            for group in optimizer.param_groups:
                group["lr"] = lr
        return EpochPlan(np.arange(self.config.num_imgs)), {"lr": lr}

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        z = torch.rand(len(x), LATENT_DIM, device=x.device) * 2 - 1
        encoded, generated = _code(self.e(x)), self._normalized(self.g(z))
        d_loss = _pair_loss(self.d(x, encoded.detach()), self.d(generated.detach(), z), real_is=1.0)
        self.d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_optimizer.step()
        eg_loss = _pair_loss(self.d(x, encoded), self.d(generated, z), real_is=0.0)
        self.optimizer.zero_grad(set_to_none=True)
        eg_loss.backward()
        self.optimizer.step()
        return {"loss_d": d_loss.detach(), "loss_eg": eg_loss.detach()}

    @torch.no_grad()
    def evaluate(self, epoch: int, data: TrainData, out: Path) -> dict[str, Any]:
        """Write the epoch's grid of samples and reconstructions; return the reconstructions' mean absolute
        pixel error (in ``[0, 1]``)."""
        c = self.config
        first = c.num_imgs if c.val_imgs else 0  # held-out images where there are some
        count = min(_GRID_RECONSTRUCTIONS, c.val_imgs or c.num_imgs)
        crop = PositionCrop(c.input_size, random=False)
        x = torch.cat([x for x, _ in data.batches(np.arange(first, first + count), np.arange(count), crop, epoch)])
        for network in self.networks().values():
            network.eval()
        z = torch.rand(_GRID_SAMPLE_ROWS * _GRID_COLUMNS, LATENT_DIM,
                       generator=torch.Generator().manual_seed(derived_seed(c.seed, 5))) * 2 - 1
        samples = (self.generator(z.to(self.ctx.device)) + 1) / 2
        inputs = (x * self._std + self._mean).clamp(0, 1)
        reconstructions = (self.generator(_code(self.encoder(x))) + 1) / 2
        self.train()
        rows = [samples]
        for start in range(0, count, _GRID_COLUMNS):
            rows += [inputs[start : start + _GRID_COLUMNS], reconstructions[start : start + _GRID_COLUMNS]]
        grid = make_grid(torch.cat(rows).cpu(), nrow=_GRID_COLUMNS, padding=2, pad_value=1.0)
        path = out / "samples" / f"epoch_{epoch + 1:03d}.png"
        path.parent.mkdir(exist_ok=True)
        _save_png(grid, path)
        return {"reconstruction_l1": float((reconstructions - inputs).abs().mean()),
                "samples": path.relative_to(out).as_posix()}

    def _normalized(self, images: torch.Tensor) -> torch.Tensor:
        """The generator's ``[-1, 1]`` images in the encoder's input space (ImageNet-normalised)."""
        return ((images + 1) / 2 - self._mean) / self._std


def _code(t: torch.Tensor) -> torch.Tensor:
    """The encoder's linear output as a code in the prior's range ``(-1, 1)``, as the authors' ``dist.py`` maps it."""
    return 2 * torch.sigmoid(t) - 1


def _pair_loss(real: torch.Tensor, generated: torch.Tensor, real_is: float) -> torch.Tensor:
    """The mean binary cross-entropy of the discriminator's logits on real pairs labelled ``real_is`` and on
    generated pairs labelled ``1 - real_is``."""
    return (F.binary_cross_entropy_with_logits(real, torch.full_like(real, real_is))
            + F.binary_cross_entropy_with_logits(generated, torch.full_like(generated, 1 - real_is))) / 2


def step_size_factor(epoch: int, epochs: int) -> float:
    """BiGAN's schedule: 1 for the first half of ``epochs``, then an exponential decay to 1 % at the last.

    Example:
        >>> [round(step_size_factor(e, 4), 3) for e in range(4)]
        [1.0, 1.0, 0.1, 0.01]
    """
    decay = epochs // 2
    decayed = epoch - (epochs - decay) + 1
    return 1.0 if decayed <= 0 else _FINAL_LR ** (decayed / decay)


def _save_png(grid: torch.Tensor, path: Path) -> None:
    array = (grid.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    Image.fromarray(array).save(path)
