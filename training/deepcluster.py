"""DeepCluster (Caron et al., ECCV 2018): k-means on the network's features gives the pseudo-labels it learns."""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from .kmeans import kmeans

__all__ = ["cluster_features", "compute_features", "pca_whiten", "uniform_cluster_indices"]

# Rows per block when streaming features from host memory to the device.
_BLOCK = 65536


@torch.no_grad()
def compute_features(
    model: nn.Module,
    dataset: Dataset,
    batch_size: int,
    workers: int,
    device: torch.device,
    rank: int = 0,
    world_size: int = 1,
) -> torch.Tensor | None:
    """The penultimate features (``model.embed``) of every index of ``dataset``, gathered on rank 0.

    Rank ``r`` computes indices ``r, r + world_size, ...``; each batch is all-gathered and rank 0
    keeps the rows in host memory (4096 floats per image at full width: 21 GB for ImageNet's
    size, too much to hold on every GPU). The dataset must be deterministic per index
    (``SingleImageDataset`` is), or the features would not describe the images trained on.

    Returns:
        On rank 0, a ``len(dataset) x feature_dim`` float CPU tensor in index order; ``None`` elsewhere.
    """
    n = len(dataset)
    shard = list(range(rank, n, world_size))
    per_rank = -(-n // world_size)
    # Pad every shard to the same length, so all ranks run the same number of all_gathers.
    shard += shard[: per_rank - len(shard)] if shard else [0] * per_rank
    loader = DataLoader(Subset(dataset, shard), batch_size=batch_size, num_workers=workers)
    was_training = model.training
    model.eval()
    rows = []
    for x, _ in loader:
        local = model.embed(x.to(device)).float()
        if world_size > 1:
            gathered = [torch.empty_like(local) for _ in range(world_size)]
            dist.all_gather(gathered, local)
            # Row j of rank r's batch is index r + (offset + j) * world_size: interleave the ranks.
            local = torch.stack(gathered, 1).flatten(0, 1)
        if rank == 0:
            rows.append(local.cpu())
    model.train(was_training)
    return torch.cat(rows)[:n] if rank == 0 else None


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
