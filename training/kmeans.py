"""A small k-means (k-means++ init, chunked Lloyd iterations) in torch, and normalised mutual information.

Why not faiss or scikit-learn: DeepCluster needs only plain Lloyd iterations on L2-normalised
PCA features. In torch that is about thirty lines that run on the training device (CPU or GPU)
with the tensors the model already produced, and take an explicit ``torch.Generator``, so a
clustering is reproducible and identical on every rank. faiss-cpu has no wheels for some
platforms and its GPU build must match the CUDA version; scikit-learn would add a large
dependency for one function and run on the CPU only. Both would be optional extras that the
tests then could not rely on.
"""

from __future__ import annotations

import torch

__all__ = ["kmeans", "kmeans_plus_plus", "normalized_mutual_info"]

# Rows per block when computing point-to-centroid distances, so memory stays O(chunk * k).
_CHUNK = 16384


def kmeans_plus_plus(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """Pick ``k`` initial centroids among the rows of ``x`` with k-means++ (Arthur & Vassilvitskii 2007).

    Each next centroid is a point drawn with probability proportional to its squared distance
    to the nearest centroid chosen so far.
    """
    n = x.shape[0]
    first = int(torch.randint(n, (1,), generator=generator, device=generator.device))
    centroids = [x[first]]
    nearest = ((x - x[first]) ** 2).sum(1)
    for _ in range(1, k):
        total = nearest.sum()
        # All points coincide with a centroid: any further pick is as good as another.
        weights = nearest if total > 0 else torch.ones_like(nearest)
        pick = int(torch.multinomial(weights, 1, generator=generator))
        centroids.append(x[pick])
        nearest = torch.minimum(nearest, ((x - x[pick]) ** 2).sum(1))
    return torch.stack(centroids)


def _assign(x: torch.Tensor, centroids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centroid of every row and the squared distance to it, block by block."""
    labels, dists = [], []
    c_sq = (centroids**2).sum(1)
    for block in x.split(_CHUNK):
        d = (block**2).sum(1, keepdim=True) - 2 * block @ centroids.T + c_sq
        dist, label = d.min(1)
        labels.append(label)
        dists.append(dist.clamp_min(0))
    return torch.cat(labels), torch.cat(dists)


def kmeans(
    x: torch.Tensor, k: int, iters: int = 20, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cluster the rows of ``x`` into ``k`` clusters.

    Empty clusters are re-seeded with the points farthest from their centroid, so every
    cluster ends non-empty when ``x`` has at least ``k`` distinct rows.

    Args:
        x: ``N x D`` float tensor (any device).
        k: number of clusters, ``1 <= k <= N``.
        iters: Lloyd iterations after the k-means++ initialisation.
        generator: a generator on ``x``'s device; a fixed default seed when ``None``.

    Returns:
        ``(labels, centroids)``: ``N`` int64 labels in ``[0, k)`` and the ``k x D`` centroids.

    Raises:
        ValueError: ``x`` is not 2-D or ``k`` is not in ``[1, N]``.

    Example:
        >>> x = torch.tensor([[0.0], [0.1], [10.0], [10.1]])
        >>> labels, _ = kmeans(x, 2, generator=torch.Generator().manual_seed(0))
        >>> bool(labels[0] == labels[1]) and bool(labels[2] == labels[3]) and bool(labels[0] != labels[2])
        True
    """
    if x.ndim != 2:
        raise ValueError(f"x should be an N x D matrix, got shape {tuple(x.shape)}")
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k should be in [1, {n}] (the number of points), got {k}")
    if generator is None:
        generator = torch.Generator(device=x.device).manual_seed(0)
    x = x.float()
    centroids = kmeans_plus_plus(x, k, generator)
    labels, dists = _assign(x, centroids)
    for _ in range(iters):
        counts = torch.bincount(labels, minlength=k)
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)
        centroids = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], centroids)
        empty = (counts == 0).nonzero().flatten()
        if len(empty):
            centroids[empty] = x[dists.topk(len(empty)).indices]
        labels, dists = _assign(x, centroids)
    return labels, centroids


def _entropy(counts: torch.Tensor) -> float:
    p = counts[counts > 0].double() / counts.sum()
    return float(-(p * p.log()).sum())


def normalized_mutual_info(a: torch.Tensor, b: torch.Tensor) -> float:
    """NMI of two labelings, ``I(a; b) / ((H(a) + H(b)) / 2)`` (scikit-learn's default normalisation).

    It is 1 for identical partitions (whatever the label names) and 0 for independent ones; two
    constant labelings count as identical (1.0).

    Raises:
        ValueError: the labelings are not 1-D of the same length, or are empty.

    Example:
        >>> round(normalized_mutual_info(torch.tensor([0, 0, 1, 1]), torch.tensor([1, 1, 0, 0])), 6)
        1.0
        >>> normalized_mutual_info(torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 0, 1]))
        0.0
    """
    if a.ndim != 1 or a.shape != b.shape or len(a) == 0:
        raise ValueError(
            "labelings should be non-empty 1-D tensors of equal length, "
            f"got shapes {tuple(a.shape)} and {tuple(b.shape)}"
        )
    _, a = torch.unique(a.cpu(), return_inverse=True)
    _, b = torch.unique(b.cpu(), return_inverse=True)
    na, nb = int(a.max()) + 1, int(b.max()) + 1
    joint = torch.bincount(a * nb + b, minlength=na * nb).reshape(na, nb).double()
    h_a, h_b = _entropy(joint.sum(1)), _entropy(joint.sum(0))
    if h_a == 0 and h_b == 0:
        return 1.0
    p = joint / joint.sum()
    outer = p.sum(1, keepdim=True) * p.sum(0, keepdim=True)
    nz = p > 0
    mi = float((p[nz] * (p[nz] / outer[nz]).log()).sum())
    return max(0.0, min(1.0, mi / ((h_a + h_b) / 2)))
