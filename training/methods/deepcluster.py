"""DeepCluster (Caron et al., ECCV 2018): k-means on the network's features gives the pseudo-labels it learns."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F

from ..alexnet import AlexNet, feature_dim
from ..crops import PositionCrop
from ..kmeans import kmeans, normalized_mutual_info
from ..rng import derived_seed
from .base import Context, EpochPlan, Method

if TYPE_CHECKING:
    from ..config import TrainConfig
    from ..data import TrainData

__all__ = ["DeepCluster", "cluster_features", "compute_features", "feature_shard", "pca_whiten",
           "uniform_cluster_indices"]

# Rows per block when streaming features from host memory to the device.
_BLOCK = 65536


def feature_shard(count: int, rank: int = 0, world_size: int = 1) -> np.ndarray:
    """The indices whose features process ``rank`` computes: ``rank, rank + world_size, ...``, padded (with
    its own first ones) so that every process runs the same number of batches.

    Example:
        >>> feature_shard(5, rank=1, world_size=2).tolist()
        [1, 3, 1]
    """
    shard = np.arange(rank, count, world_size)
    per_rank = -(-count // world_size)
    return np.concatenate([shard, shard[: per_rank - len(shard)]]) if len(shard) else np.zeros(per_rank, np.int64)


@torch.no_grad()
def compute_features(
    model: AlexNet, batches: Iterable[torch.Tensor], count: int, rank: int = 0, world_size: int = 1
) -> torch.Tensor | None:
    """The penultimate features (``model.embed``) of ``count`` images, gathered on rank 0 in index order.

    ``batches`` holds this process's images, those of :func:`feature_shard` in its order; each batch is
    all-gathered and rank 0 keeps the rows in host memory (4096 floats per image at full width: 21 GB for
    ImageNet's size, too much to hold on every GPU). The images must be a deterministic function of their
    index (``SingleImageDataset``'s are), or the features would not describe the images trained on.

    Returns:
        On rank 0, a ``count x feature_dim`` float CPU tensor in index order; ``None`` elsewhere.
    """
    was_training = model.training
    model.eval()
    rows = []
    for x in batches:
        local = model.embed(x).float()
        if world_size > 1:
            gathered = [torch.empty_like(local) for _ in range(world_size)]
            dist.all_gather(gathered, local)
            # Row j of rank r's batch is index r + (offset + j) * world_size: interleave the ranks.
            local = torch.stack(gathered, 1).flatten(0, 1)
        if rank == 0:
            rows.append(local.cpu())
    model.train(was_training)
    return torch.cat(rows)[:count] if rank == 0 else None


def pca_whiten(x: torch.Tensor, dim: int, device: torch.device | None = None, eps: float = 1e-5) -> torch.Tensor:
    """Project onto the top ``dim`` principal components, whiten, and L2-normalise the rows.

    DeepCluster's preprocessing (faiss ``PCAMatrix(eigen_power=-0.5)`` then ``L2norm``). ``x`` may
    live in host memory: it is streamed to ``device`` in blocks, the covariance is accumulated in
    float64, and only the ``N x dim`` result is kept on ``device``. ``dim`` is capped at ``D``.

    Example:
        >>> y = pca_whiten(torch.randn(100, 8, generator=torch.Generator().manual_seed(0)), 3)
        >>> tuple(y.shape), torch.allclose(y.norm(dim=1), torch.ones(100))
        ((100, 3), True)
    """
    device = x.device if device is None else device
    blocks = x.split(_BLOCK)
    mean = sum(b.to(device, torch.float64).sum(0) for b in blocks) / len(x)
    cov = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64, device=device)
    for b in blocks:
        centred = b.to(device, torch.float64) - mean
        cov += centred.T @ centred
    eigvals, eigvecs = torch.linalg.eigh(cov / max(1, len(x) - 1))
    dim = min(dim, x.shape[1])
    scale = eigvals.flip(0)[:dim].clamp_min(0).add(eps).rsqrt()
    projection = (eigvecs.flip(1)[:, :dim] * scale).float()
    mean = mean.float()
    return torch.cat([nn.functional.normalize((b.to(device) - mean) @ projection, dim=1) for b in blocks])


def cluster_features(
    features: torch.Tensor, k: int, pca_dim: int, generator: torch.Generator, iters: int = 20
) -> torch.Tensor:
    """DeepCluster's pseudo-labels: PCA-whiten + L2-normalise the features, then k-means into ``k``.

    The work runs on ``generator``'s device, wherever ``features`` are stored.
    """
    reduced = pca_whiten(features, pca_dim, device=generator.device)
    labels, _ = kmeans(reduced, k, iters=iters, generator=generator)
    return labels


def uniform_cluster_indices(labels: torch.Tensor, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """``num_samples`` indices drawn uniformly over the non-empty clusters, then uniformly within each.

    DeepCluster's ``UnifLabelSampler``: every cluster contributes about ``num_samples / #clusters``
    indices (with replacement when it is smaller), so a few huge clusters cannot dominate training.

    Example:
        >>> labels = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1])
        >>> sorted(labels[uniform_cluster_indices(labels, 8, np.random.default_rng(0))].tolist())
        [0, 0, 0, 0, 1, 1, 1, 1]
    """
    labels_np = labels.cpu().numpy()
    clusters = [np.flatnonzero(labels_np == c) for c in np.unique(labels_np)]
    per_cluster = -(-num_samples // len(clusters))
    picks = [rng.choice(members, per_cluster, replace=len(members) < per_cluster) for members in clusters]
    indices = np.concatenate(picks)
    rng.shuffle(indices)
    return indices[:num_samples]


class DeepCluster(Method):
    """Each epoch: features of every training index, PCA + whitening + L2, k-means into ``k`` clusters,
    ``num_imgs`` indices drawn uniformly over the clusters, a re-initialised top layer; then SGD (momentum
    0.9 for the trunk, none for the top layer) on random resized crops labelled by their cluster."""

    default_lr = 0.01
    default_weight_decay = 5e-4
    uses_source_labels = True
    own_settings = ("k", "pca_dim", "kmeans_iters")

    def __init__(self, config: TrainConfig, ctx: Context) -> None:
        super().__init__(config, ctx)
        self.net = ctx.parallel(self.encoder)
        trunk = [p for n, p in self.encoder.named_parameters() if not n.startswith("top_layer.")]
        self.optimizer = torch.optim.SGD(trunk, lr=self.lr, momentum=0.9, weight_decay=self.weight_decay)
        self.head_optimizer = self._head_optimizer()
        #: The last epoch's cluster of every training index (``None`` before the first clustering).
        self.assignments: torch.Tensor | None = None

    @classmethod
    def check_config(cls, config: TrainConfig) -> None:
        super().check_config(config)
        if not 2 <= config.k <= config.num_imgs:
            raise ValueError(f"k should be in [2, num_imgs={config.num_imgs}], got {config.k}")
        need = config.num_imgs * feature_dim(config.width) * 4
        memory = _physical_memory()
        if memory is not None and need > memory:
            raise ValueError(
                f"deepcluster holds a feature row per training image: {need / 2**30:,.1f} GiB for "
                f"num_imgs={config.num_imgs:,} at width={config.width:g}, more than this machine's "
                f"{memory / 2**30:,.1f} GiB of memory; lower num_imgs or width"
            )

    def build_encoder(self) -> AlexNet:
        c = self.config
        return AlexNet(c.k, width=c.width, input_size=c.input_size, dropout=c.dropout)

    def train_crop(self) -> PositionCrop:
        return PositionCrop(self.config.input_size, scale=(0.2, 1.0))

    def networks(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        # The top layer's optimiser has no state (plain SGD) and is made anew after each clustering.
        return {"trunk": self.optimizer}

    def plan_epoch(self, epoch: int, data: TrainData) -> tuple[EpochPlan, dict[str, Any]]:
        c, ctx = self.config, self.ctx
        t0 = time.perf_counter()
        shard = feature_shard(c.num_imgs, ctx.rank, ctx.world_size)
        centre = PositionCrop(c.input_size, random=False)
        batches = (x for x, _ in data.batches(np.arange(c.num_imgs), shard, centre, epoch))
        features = compute_features(self.encoder, batches, c.num_imgs, ctx.rank, ctx.world_size)
        labels = torch.empty(c.num_imgs, dtype=torch.int64, device=ctx.device)
        if features is not None:
            generator = torch.Generator(device=ctx.device).manual_seed(derived_seed(c.seed, epoch, 2))
            labels = cluster_features(features, c.k, c.pca_dim, generator, c.kmeans_iters)
        if ctx.world_size > 1:
            dist.broadcast(labels, 0)
        labels = labels.cpu()
        record: dict[str, Any] = {"cluster_seconds": time.perf_counter() - t0}
        if self.assignments is not None:
            record["nmi"] = normalized_mutual_info(labels, self.assignments)
        if c.per_source_classes:
            sources = torch.as_tensor(data.dataset.target(data.dataset.params_batch(range(c.num_imgs))))
            record["nmi_sources"] = normalized_mutual_info(labels, sources)
        record["clusters"] = int(labels.unique().numel())
        self.assignments = labels
        indices = uniform_cluster_indices(labels, c.num_imgs, np.random.default_rng([c.seed, epoch]))
        self.encoder.reset_top_layer(torch.Generator(device=ctx.device).manual_seed(derived_seed(c.seed, epoch, 1)))
        self.head_optimizer = self._head_optimizer()
        return EpochPlan(indices, labels), record

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        loss = F.cross_entropy(self.net(x), y)
        for optimizer in (self.optimizer, self.head_optimizer):
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for optimizer in (self.optimizer, self.head_optimizer):
            optimizer.step()
        return {"loss": loss.detach()}

    def state(self) -> dict[str, torch.Tensor | None]:
        return {"assignments": self.assignments}

    def load_state(self, state: dict[str, torch.Tensor | None], where: str) -> None:
        c = self.config
        assignments = state.get("assignments")
        if set(state) != {"assignments"} or not (
            assignments is None
            or (isinstance(assignments, torch.Tensor) and assignments.dtype == torch.int64
                and assignments.shape == (c.num_imgs,) and int(assignments.min()) >= 0
                and int(assignments.max()) < c.k)
        ):
            raise ValueError(f"{where}: assignments should be {c.num_imgs} cluster labels in [0, {c.k}) of a "
                             "deepcluster run")
        self.assignments = assignments

    def _head_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.encoder.top_layer.parameters(), lr=self.lr, weight_decay=self.weight_decay)


def _physical_memory() -> int | None:
    """This machine's memory in bytes, where the system tells it."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
