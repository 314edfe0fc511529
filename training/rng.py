"""Derived seeds, and the random state of a training process (checkpoints carry it, so a resume is exact)."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["derived_seed", "get_rng_state", "set_rng_state"]


def derived_seed(*words: int) -> int:
    """A 63-bit seed from several integers, through ``numpy.random.SeedSequence`` (never ``hash()``, which
    is salted per process).

    Example:
        >>> derived_seed(0, 1) == derived_seed(0, 1) != derived_seed(1, 0)
        True
    """
    return int(np.random.SeedSequence(list(words)).generate_state(1, np.uint64)[0] >> np.uint64(1))


def get_rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """The global random state this process draws from: torch's CPU generator and, on CUDA, ``device``'s.

    These are the program's only global streams (initialisation, dropout, BiGAN's latent codes, the
    DataLoader's worker seeds); the augmentations, the data order, k-means and the probes draw from
    streams of their own, and Python's ``random`` and numpy's global state are not used.
    """
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.empty(0, dtype=torch.uint8)
    return {"torch": torch.get_rng_state(), "cuda": cuda}


def set_rng_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    """Restore what :func:`get_rng_state` returned.

    Raises:
        ValueError: ``state`` is not such a state (the message says which part).
    """
    try:
        torch.set_rng_state(state["torch"])
        if device.type == "cuda" and state["cuda"].numel():
            torch.cuda.set_rng_state(state["cuda"], device)
    except (KeyError, TypeError, RuntimeError) as exc:
        raise ValueError(f"the saved random state cannot be restored ({type(exc).__name__}: {exc})") from None
