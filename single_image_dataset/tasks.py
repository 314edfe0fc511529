"""Adapters for self-supervised training loops: rotation labels (RotNet) and pseudo-labels (DeepCluster).

They wrap any map-style dataset of ``(image, target)`` items, such as :class:`SingleImageDataset`,
and draw no random numbers: what an index returns depends on the index alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

__all__ = ["NUM_ROTATIONS", "PseudoLabelled", "RotationLabels", "rotate_batch"]

#: RotNet's classes: rotations by 0, 90, 180 and 270 degrees counter-clockwise.
NUM_ROTATIONS = 4

# PIL's exact transposes for r quarter turns counter-clockwise (r = 1, 2, 3).
_PIL_ROTATIONS = (None, Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270)


def rotate_batch(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """All four rotations (0, 90, 180, 270 degrees counter-clockwise) of every image, and their labels 0..3.

    As in Gidaris et al. (ICLR 2018), each image appears in the batch in all four orientations, so
    the batch is four times larger and every label is equally frequent.

    Args:
        x: ``N x C x H x W`` square images.

    Returns:
        ``(4N x C x H x W images, 4N labels)``, rotation-major: row ``r * N + i`` is image ``i``
        rotated ``r`` times.

    Raises:
        ValueError: ``x`` is not a batch of square images.

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


def _rotate(image: Any, quarter_turns: int) -> Any:
    """``image`` turned ``quarter_turns`` times by 90 degrees counter-clockwise, by exact transposes."""
    if isinstance(image, Image.Image):
        return image if quarter_turns == 0 else image.transpose(_PIL_ROTATIONS[quarter_turns])
    if isinstance(image, torch.Tensor) and image.ndim >= 2:
        return torch.rot90(image, quarter_turns, dims=(-2, -1))
    raise TypeError(
        f"RotationLabels can rotate PIL images and ... x H x W tensors, got {type(image).__name__}; "
        "give the wrapped dataset a transform that returns one of them"
    )


class RotationLabels(Dataset):
    """RotNet's task as a dataset: every image of ``dataset`` in its four rotations, labelled by the rotation.

    Item ``4 * i + r`` is item ``i`` of ``dataset`` turned ``r`` times by 90 degrees
    counter-clockwise (the convention of :func:`rotate_batch`), with target ``r``; the dataset's own
    target is dropped. PIL images are rotated with exact transposes and tensors (``C x H x W``, or
    any ``... x H x W``) with :func:`torch.rot90`, so no pixel is resampled. The rotations of a
    non-square image swap its sides; batch square ones (``SingleImageDataset``'s are).

    Use it where a loop draws single samples (a shuffled ``DataLoader`` then mixes rotations of
    different images); :func:`rotate_batch` instead puts all four rotations of each image in one batch.

    Args:
        dataset: any map-style dataset returning ``(image, target)``.

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> rotations = RotationLabels(TensorDataset(torch.arange(4.0).reshape(1, 1, 2, 2), torch.tensor([7])))
        >>> len(rotations)
        4
        >>> image, target = rotations[1]
        >>> target, image[0].tolist()
        (1, [[1.0, 3.0], [0.0, 2.0]])
        >>> from single_image_dataset import SingleImageDataset
        >>> rotations = RotationLabels(SingleImageDataset(num_imgs=10, img_size=32))
        >>> image, target = rotations[4 * 2 + 3]   # sample 2 turned by 270 degrees
        >>> len(rotations), image.size, target
        (40, (32, 32), 3)
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return NUM_ROTATIONS * len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, int]:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} is out of range for {n} rotated samples (4 x {n // NUM_ROTATIONS})")
        i, r = divmod(index % n, NUM_ROTATIONS)
        image, _ = self.dataset[i]
        return _rotate(image, r), r


class PseudoLabelled(Dataset):
    """DeepCluster's reassigned dataset: ``dataset`` at ``indices``, each item labelled by its cluster.

    Item ``j`` is ``(image of index indices[j], labels[indices[j]])``; the dataset's own target is
    dropped. It replaces DeepCluster's ``ReassignedDataset``, which reloads images from the file
    paths in ``dataset.imgs`` and so needs a dataset on disk: this one indexes ``dataset`` itself.

    Args:
        dataset: any map-style dataset returning ``(image, target)``.
        indices: which of its indices item ``j`` shows (all of them, in order, when ``None``);
            an index may repeat.
        labels: a label per index of ``dataset`` (e.g. DeepCluster's ``arrange_clustering``); 0
            for every index when ``None``.

    Raises:
        ValueError: ``labels`` does not hold one label per index of ``dataset``, holds a label outside
            ``[0, 2**63)``, or ``indices``/``labels`` are not one-dimensional.
        TypeError: ``indices`` or ``labels`` hold something other than integers (a float, a bool).
        IndexError: an index is outside ``[0, len(dataset))``.

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> base = TensorDataset(torch.arange(3.0), torch.zeros(3))
        >>> view = PseudoLabelled(base, indices=[2, 0, 2], labels=torch.tensor([5, 6, 7]))
        >>> len(view), [(float(image), label) for image, label in (view[j] for j in range(len(view)))]
        (3, [(2.0, 7), (0.0, 5), (2.0, 7)])
    """

    def __init__(
        self, dataset: Dataset, indices: Sequence[int] | None = None, labels: Sequence[int] | None = None
    ) -> None:
        size = len(dataset)  # type: ignore[arg-type]
        if labels is not None:
            if len(labels) != size:
                raise ValueError(
                    f"labels should hold one label per index of the dataset ({size}), got {len(labels)}; "
                    "pass the labels of every index, not only of those in indices"
                )
            values = _integers(labels, "labels")
            if len(values) and not 0 <= values.min() <= values.max() < 2**63:
                bad = values.min() if values.min() < 0 else values.max()
                raise ValueError(f"labels should be class indices in [0, 2**63), got {bad}")
        if indices is not None:
            values = _integers(indices, "indices")
            if len(values) and not (values.min() >= 0 and values.max() < size):
                bad = values.min() if values.min() < 0 else values.max()
                raise IndexError(f"indices should be in [0, {size}), the dataset's indices, got {bad}")
        self.dataset = dataset
        self.indices = range(size) if indices is None else indices
        self.labels = labels

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, j: int) -> tuple[Any, int]:
        index = int(self.indices[j])
        image, _ = self.dataset[index]
        return image, 0 if self.labels is None else int(self.labels[index])


def _integers(values: Sequence[int], name: str) -> np.ndarray:
    """``values`` as a 1-D integer array (object dtype beyond 64 bits); a TypeError names the first non-integer."""
    if isinstance(values, (torch.Tensor, np.ndarray)):
        array = np.asarray(values.cpu() if isinstance(values, torch.Tensor) else values)
        flat = array.tolist() if array.dtype.kind not in "iu" else []
    else:
        flat = list(values)
        array = np.array(flat, dtype=object)
    if array.ndim != 1:
        raise ValueError(f"{name} should be a one-dimensional sequence of integers, got shape {array.shape}")
    bad = next((v for v in flat if isinstance(v, bool) or not isinstance(v, (int, np.integer))), None)
    if bad is not None:
        raise TypeError(f"{name} should be integers, got {type(bad).__name__} {bad!r}")
    return array
