"""The torch renderer's transfers to its device: a batch's float64 table and its row indices in two copies."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["upload"]


def upload(table: np.ndarray, indices: list[np.ndarray], device: torch.device) -> list[torch.Tensor]:
    """``table`` (float64) and each index array on ``device``, in two transfers.

    To a CUDA device they are copied from page-locked memory without waiting: the CPU goes on (to the
    next batch's parameters) while the GPU renders, where a plain copy would wait for the GPU's queue.

    Example:
        >>> table, first, second = upload(np.zeros((3, 2)), [np.array([0, 2]), np.array([1])], torch.device("cpu"))
        >>> tuple(table.shape), first.tolist(), second.tolist()
        ((3, 2), [0, 2], [1])
    """
    host = [torch.from_numpy(np.ascontiguousarray(table, dtype=np.float64)),
            torch.from_numpy(np.concatenate(indices).astype(np.int64))]
    if device.type == "cuda":
        host = [tensor.pin_memory() for tensor in host]
    table_on_device, flat = (tensor.to(device, non_blocking=True) for tensor in host)
    return [table_on_device, *flat.split([len(rows) for rows in indices])]
