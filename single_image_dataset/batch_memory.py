"""The memory of rendered batches: shared in ``DataLoader`` workers, and reused once nothing holds a batch any more.

Writing into fresh memory costs about as much as rendering at 256 px (the first write to every page), so once a
process has handed a batch to a loader (:func:`hand_off`, in the collate of ``batch_loader``) it keeps its batch
buffers and renders into one again once the batch made from it is released: when the last tensor, view or array
that uses the batch's memory is gone in the process that received it (the training loop dropped it, or the loader
copied it to the training device or converted it to float). Until then its buffer is never written. Nothing waits
for a buffer: when none is free, the batch gets fresh memory.

A batch is seen to be released through a storage of its own: the receiving process delivers an alias of the buffer
(a tensor with its own storage over the same memory), and when that storage dies it sets the buffer's last byte,
a flag past the images, which the rendering process reads. The alias is ordinary, not shared, memory, so a batch
sent on to another process is copied there, never shared with a buffer that may be rewritten.
"""

from __future__ import annotations

import math
import os
import weakref
from typing import Any

import numpy as np
import torch
from torch.utils.data import get_worker_info

__all__ = ["hand_off", "new_batch"]

# Buffers a process keeps. A worker's batches wait in the main process's queue (two per worker by default), one is
# with the training loop and one is being rendered; in the main process, one is rendered while the loop holds one.
# Batches beyond these get fresh memory.
_WORKER_SLOTS = 6
_MAIN_SLOTS = 3

# The values of a buffer's flag byte.
_IN_USE, _FREE = 0, 1


def new_batch(shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """An uninitialised ``uint8`` batch on ``device``.

    On the CPU, once this process has handed off a batch (:func:`hand_off`), one of its free buffers; otherwise
    new memory, shared in a ``DataLoader`` worker so that the batch reaches the main process without a copy (as
    ``default_collate`` allocates its batches).
    """
    if device.type != "cpu":
        return torch.empty(shape, dtype=torch.uint8, device=device)
    if _pool is not None:
        return _pool.take(shape)
    return _new_memory(math.prod(shape), shared=get_worker_info() is not None).view(shape)


def hand_off(images: torch.Tensor | list[torch.Tensor], targets: Any) -> Any:
    """A batch ``(images, targets)`` for the training loop, the memory of ``images`` reused once it is released.

    From the first call on, this process keeps the buffers of its batches (:func:`new_batch`). In a
    ``DataLoader`` worker the result is an object that the main process unpickles as ``(images, targets)``, each
    image tensor from a buffer there an alias whose release frees the buffer; in the main process, where the
    batches of :func:`new_batch` are such aliases already, it is ``(images, targets)``. ``images`` is one tensor or
    a list of them.
    """
    global _pool
    worker = get_worker_info() is not None
    if _pool is None:
        _pool = _Pool(_WORKER_SLOTS if worker else _MAIN_SLOTS, shared=worker)
    if not worker:
        return images, targets
    tensors = images if isinstance(images, list) else [images]
    return _Handed(images, targets, [_pool.holds(t) for t in tensors])


class _Pool:
    """A process's batch buffers: each a storage of the images' bytes and one flag byte, ``_FREE`` once released.

    The process that receives a batch sets the flag, from a finalizer of the alias it delivers. In a worker, that
    is the main process: the buffers are shared memory and :meth:`take` returns them as they are (to be sent
    without a copy); in the main process it returns aliases.
    """

    def __init__(self, slots: int, shared: bool) -> None:
        self.shared = shared
        self._buffers: list[torch.Tensor | None] = [None] * slots  # the images' view of each buffer
        self._flags: list[np.ndarray | None] = [None] * slots

    def take(self, shape: tuple[int, ...]) -> torch.Tensor:
        """A free buffer of ``shape``, else a new one in a slot that is unused or free, else fresh memory."""
        free = [k for k, flag in enumerate(self._flags) if flag is None or flag[0] == _FREE]
        if not free:
            return _new_memory(math.prod(shape), self.shared).view(shape)
        same = [k for k in free if self._buffers[k] is not None and self._buffers[k].shape == shape]
        slot = same[0] if same else free[0]
        if not same:
            whole = _new_memory(math.prod(shape) + 1, self.shared)
            self._buffers[slot] = whole[:-1].view(shape)
            self._flags[slot] = whole[-1:].numpy()
        self._flags[slot][0] = _IN_USE
        buffer = self._buffers[slot]
        return buffer if self.shared else _alias(buffer)

    def holds(self, tensor: torch.Tensor) -> bool:
        """Whether ``tensor`` is (or views) one of the buffers, whose storage ends in its flag."""
        pointer = tensor.untyped_storage().data_ptr()
        return any(b is not None and b.untyped_storage().data_ptr() == pointer for b in self._buffers)


class _Handed:
    """A worker's batch on its way to the main process, which unpickles it as ``(images, targets)``."""

    def __init__(self, images: Any, targets: Any, pooled: list[bool]) -> None:
        # A small CPU tensor goes by value, which is cheaper than through shared memory.
        by_value = isinstance(targets, torch.Tensor) and targets.device.type == "cpu"
        self.state = (images, targets.numpy() if by_value else targets, by_value, pooled)

    def __reduce__(self) -> tuple[Any, ...]:
        return _received, self.state


def _received(images: Any, targets: Any, by_value: bool, pooled: list[bool]) -> tuple[Any, Any]:
    """A worker's batch in the main process: each tensor from a worker's buffer replaced by an alias."""
    tensors = images if isinstance(images, list) else [images]
    aliases = [_alias(t) if p else t for t, p in zip(tensors, pooled, strict=True)]
    return (aliases if isinstance(images, list) else aliases[0]), (torch.from_numpy(targets) if by_value else targets)


def _alias(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor``, a view of a buffer, over a storage of its own, whose death frees the buffer."""
    whole = torch.empty(0, dtype=torch.uint8).set_(tensor.untyped_storage()).numpy()
    alias = torch.frombuffer(whole, dtype=torch.uint8).as_strided(
        tensor.shape, tensor.stride(), tensor.storage_offset()
    )
    weakref.finalize(alias.untyped_storage(), _release, whole).atexit = False
    return alias


def _release(whole: np.ndarray) -> None:
    whole[-1] = _FREE


def _new_memory(size: int, shared: bool) -> torch.Tensor:
    """``size`` uninitialised bytes, in shared memory if ``shared``."""
    if not shared:
        return torch.empty(size, dtype=torch.uint8)
    # Shared from the start: share_memory_() on a new tensor would allocate twice.
    return torch.empty(0, dtype=torch.uint8).set_(torch.UntypedStorage._new_shared(size))


#: This process's buffers, from its first hand_off on.
_pool: _Pool | None = None


def _forget_pool() -> None:
    # A forked worker starts without its parent's buffers, which are its parent's to reuse.
    global _pool
    _pool = None


os.register_at_fork(after_in_child=_forget_pool)
