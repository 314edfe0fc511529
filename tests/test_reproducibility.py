"""The reproducibility contract: sample i is a pure function of (pixels, config, seed, epoch, i).

Every test runs once per registered renderer (the ``backend`` fixture).
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from torchvision.transforms import PILToTensor

from single_image_dataset import SingleImageDataset

SMALL = {"num_imgs": 24, "img_size": 32}
INDICES = (0, 1, 7, 23)


def _digest(ds: SingleImageDataset, index: int) -> str:
    return hashlib.sha256(ds[index][0].tobytes()).hexdigest()


def _single_process(ds: SingleImageDataset) -> torch.Tensor:
    return torch.stack([ds[i][0] for i in range(len(ds))])


def _through_loader(ds: SingleImageDataset, **kwargs) -> torch.Tensor:
    loader = DataLoader(ds, batch_size=5, shuffle=False, **kwargs)
    return torch.cat([x for x, _ in loader])


def test_same_bytes_on_every_call(backend):
    ds = SingleImageDataset(backend=backend, **SMALL)
    first = [_digest(ds, i) for i in INDICES]
    assert [_digest(ds, i) for i in reversed(INDICES)] == first[::-1]
    assert [_digest(SingleImageDataset(backend=backend, **SMALL), i) for i in INDICES] == first


@pytest.mark.slow
def test_same_bytes_in_a_fresh_process(backend):
    ds = SingleImageDataset(backend=backend, **SMALL)
    code = (
        "import hashlib, json, sys, random, torch; from single_image_dataset import SingleImageDataset;"
        "random.seed(99); torch.manual_seed(99);"
        f"ds = SingleImageDataset(backend={backend!r}, num_imgs=24, img_size=32);"
        f"print(json.dumps([hashlib.sha256(ds[i][0].tobytes()).hexdigest() for i in {list(INDICES)}]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert json.loads(out.stdout) == [_digest(ds, i) for i in INDICES]


def test_independent_of_global_rng_state_and_leaves_it_alone(backend):
    ds = SingleImageDataset(backend=backend, **SMALL)
    expected = [_digest(ds, i) for i in INDICES]
    for seed in (1, 2):
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        states = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state())
        assert [_digest(ds, i) for i in INDICES] == expected
        assert random.getstate() == states[0]
        assert np.array_equal(np.random.get_state()[1], states[1])
        assert torch.equal(torch.get_rng_state(), states[2])


# Spawn start-up costs seconds per worker, so the spawn case is checked by the persistent-worker test.
@pytest.mark.parametrize("context", [None, "fork"])
def test_dataloader_workers_equal_single_process(backend, context):
    ds = SingleImageDataset(backend=backend, transform=PILToTensor(), **SMALL)
    expected = _single_process(ds)
    kwargs = {"num_workers": 0} if context is None else {"num_workers": 2, "multiprocessing_context": context}
    assert torch.equal(_through_loader(ds, **kwargs), expected)


@pytest.mark.parametrize("context", ["fork", pytest.param("spawn", marks=pytest.mark.slow)])
def test_set_epoch_reaches_persistent_workers(backend, context):
    """Workers (fork or spawn) give the single-process batches, and follow set_epoch without restarting."""
    ds = SingleImageDataset(backend=backend, transform=PILToTensor(), **SMALL)
    epoch0 = _single_process(ds)
    loader = DataLoader(ds, batch_size=5, num_workers=2, persistent_workers=True, multiprocessing_context=context)
    assert torch.equal(torch.cat([x for x, _ in loader]), epoch0)
    ds.set_epoch(1)
    from_workers = torch.cat([x for x, _ in loader])  # same worker processes as before
    assert ds.epoch == 1
    assert torch.equal(from_workers, _single_process(ds))
    assert not torch.equal(from_workers, epoch0)
    ds.set_epoch(0)
    assert torch.equal(torch.cat([x for x, _ in loader]), epoch0)


def test_epochs_differ_and_return(backend):
    ds = SingleImageDataset(backend=backend, **SMALL)
    epoch0 = [_digest(ds, i) for i in INDICES]
    ds.set_epoch(3)
    epoch3 = [_digest(ds, i) for i in INDICES]
    ds.set_epoch(0)
    assert all(a != b for a, b in zip(epoch0, epoch3, strict=True))
    assert [_digest(ds, i) for i in INDICES] == epoch0


def test_indices_and_seeds_differ(backend):
    ds = SingleImageDataset(backend=backend, **SMALL)
    assert len({_digest(ds, i) for i in range(len(ds))}) == len(ds)
    other = SingleImageDataset(backend=backend, seed=1, **SMALL)
    assert all(_digest(ds, i) != _digest(other, i) for i in INDICES)
