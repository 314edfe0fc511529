"""The memory of rendered batches: shared in ``DataLoader`` workers, and reused once nothing holds a batch any more.

Writing into fresh memory costs about as much as rendering at 256 px (the first write to every page), so once a
process has handed a batch to a loader (:func:`hand_off`, in the collate of ``batch_loader``) it keeps its batch
buffers and renders into one again once the batch made from it is released: when the last tensor, view or array
that uses the batch's memory is gone in the process that received it (the training loop dropped it, or the loader
copied it to the training device or converted it to float). Until then its buffer is never written. Nothing waits
for a buffer: when none is free, the batch gets fresh memory.

A batch is seen to be released through a storage of its own: the main process receives an alias of the buffer
(a tensor with its own storage over the same memory) and frees the buffer when that storage dies. The alias is
ordinary, not shared, memory, so a batch sent on to another process is copied there, never shared with a buffer
that may be rewritten.
"""

from __future__ import annotations

import math
import os
import weakref
from typing import Any

import torch
from torch.utils.data import get_worker_info

__all__ = ["hand_off", "new_batch"]

# Buffers a process keeps. A worker's batches wait in the main process's queue (two per worker by default), one is
# with the training loop and one is being rendered; in the main process, one is rendered while the loop holds one.
# Batches beyond these get fresh memory.
_WORKER_SLOTS = 6
_MAIN_SLOTS = 3


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
    return _new_memory(shape, shared=get_worker_info() is not None)


def hand_off(images: torch.Tensor | list[torch.Tensor], targets: Any) -> Any:
    """A batch ``(images, targets)`` for the training loop, the memory of ``images`` reused once it is released.

    From the first call on, this process keeps the buffers of its batches (:func:`new_batch`). In a
    ``DataLoader`` worker the result is an object that the main process unpickles as ``(images, targets)``, each
    image tensor there an alias whose release frees the worker's buffer; in the main process, where the batches of
    :func:`new_batch` are such aliases already, it is ``(images, targets)``. ``images`` is one tensor or a list.
    """
    global _pool
    worker = get_worker_info() is not None
    if _pool is None:
        _pool = _Pool(_WORKER_SLOTS if worker else _MAIN_SLOTS, shared=worker)
    if not worker:
        return images, targets
    tensors = images if isinstance(images, list) else [images]
    return _Handed(images, targets, _pool.released, [_pool.slot_of(t) for t in tensors])


class _Pool:
    """A process's batch buffers and which of them are free (``released[k]`` is 1 when buffer ``k`` is).

    The process that receives a batch frees its buffer, from a finalizer of the alias it delivers; in a worker,
    that is the main process, so ``released`` is in shared memory and :meth:`take` returns the buffers themselves
    (to be sent without a copy); in the main process it returns aliases.
    """

    def __init__(self, slots: int, shared: bool) -> None:
        self.shared = shared
        self.released = torch.ones(slots, dtype=torch.uint8)
        if shared:
            self.released.share_memory_()
        self._free = self.released.numpy()
        self._buffers: list[torch.Tensor | None] = [None] * slots

    def take(self, shape: tuple[int, ...]) -> torch.Tensor:
        """A free buffer of ``shape``, else a new one in a slot that is unused or free, else fresh memory."""
        free = [k for k, buffer in enumerate(self._buffers) if buffer is None or self._free[k]]
        if not free:
            return _new_memory(shape, self.shared)
        same = [k for k in free if self._buffers[k] is not None and self._buffers[k].shape == shape]
        slot = same[0] if same else free[0]
        if not same:
            self._buffers[slot] = _new_memory(shape, self.shared)
        self._free[slot] = 0
        buffer = self._buffers[slot]
        return buffer if self.shared else _alias(buffer, self.released, slot)

    def slot_of(self, tensor: torch.Tensor) -> int | None:
        """The slot of the buffer that ``tensor`` is or views, or ``None`` for memory of its own."""
        pointer = tensor.untyped_storage().data_ptr()
        for k, buffer in enumerate(self._buffers):
            if buffer is not None and buffer.untyped_storage().data_ptr() == pointer:
                return k
        return None


class _Handed:
    """A worker's batch on its way to the main process, which unpickles it as ``(images, targets)``."""

    def __init__(self, images: Any, targets: Any, released: torch.Tensor, slots: list[int | None]) -> None:
        self.state = (images, targets, released, slots)

    def __reduce__(self) -> tuple[Any, ...]:
        return _received, self.state


def _received(images: Any, targets: Any, released: torch.Tensor, slots: list[int | None]) -> tuple[Any, Any]:
    """A worker's batch in the main process: each tensor from a worker's buffer replaced by an alias."""
    tensors = images if isinstance(images, list) else [images]
    aliases = [t if slot is None else _alias(t, released, slot) for t, slot in zip(tensors, slots, strict=True)]
    return (aliases if isinstance(images, list) else aliases[0]), targets


def _alias(tensor: torch.Tensor, released: torch.Tensor, slot: int) -> torch.Tensor:
    """``tensor`` over a storage of its own (holding ``tensor``'s), whose death sets ``released[slot]``."""
    whole = torch.empty(0, dtype=torch.uint8).set_(tensor.untyped_storage()).numpy()
    alias = torch.frombuffer(whole, dtype=torch.uint8).as_strided(
        tensor.shape, tensor.stride(), tensor.storage_offset()
    )
    weakref.finalize(alias.untyped_storage(), _release, released, slot).atexit = False
    return alias


def _release(released: torch.Tensor, slot: int) -> None:
    released[slot] = 1


def _new_memory(shape: tuple[int, ...], shared: bool) -> torch.Tensor:
    if not shared:
        return torch.empty(shape, dtype=torch.uint8)
    # Shared from the start: share_memory_() on a new tensor would allocate twice.
    storage = torch.UntypedStorage._new_shared(math.prod(shape))
    return torch.empty(0, dtype=torch.uint8).set_(storage).view(shape)


#: This process's buffers, from its first hand_off on.
_pool: _Pool | None = None


def _forget_pool() -> None:
    # A forked worker starts without its parent's buffers, which are its parent's to reuse.
    global _pool
    _pool = None


os.register_at_fork(after_in_child=_forget_pool)
