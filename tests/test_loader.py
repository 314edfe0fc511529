"""``BatchLoader`` as a ``DataLoader``: what frameworks read and rebuild, epochs, reused batch memory, worker
threads and its arguments. (That its batches are the dataset's samples: ``test_batch.py``; with Lightning and
Accelerate themselves: ``test_integrations.py``.)"""

from __future__ import annotations

import gc
import inspect
import math
import os

import cv2
import numpy as np
import pytest
import torch
import torchvision.transforms.functional as F
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, RandomSampler, SequentialSampler

from single_image_dataset import (
    MAX_BATCH_SIZE,
    BatchLoader,
    EpochRandomSampler,
    EpochSequentialSampler,
    SampleBatch,
    SingleImageDataset,
    batch_loader,
    batch_memory,
    collate_batch,
)

pytestmark = pytest.mark.filterwarnings("error")

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _dataset(**kwargs) -> SingleImageDataset:
    return SingleImageDataset(backend="fast", **{"num_imgs": 60, "img_size": 32, "seed": 1, **kwargs})


def _expected(ds: SingleImageDataset, indices, epoch: int | None = None) -> torch.Tensor:
    """The samples ``indices`` rendered one by one (another path than the batches'), at ``epoch``."""
    kept = ds.epoch
    if epoch is not None:
        ds.set_epoch(epoch)
    images = torch.stack([F.pil_to_tensor(ds.render(ds.params(int(i)))) for i in indices])
    ds.set_epoch(kept)
    return images


def _images(loader) -> torch.Tensor:
    return torch.cat([x for x, _ in loader])


class TestDataLoaderContract:
    def test_what_dataloader_inspecting_code_reads(self):
        ds = _dataset()
        loader = batch_loader(ds, 16, num_workers=2, drop_last=True)
        assert isinstance(loader, DataLoader)
        assert loader.dataset is ds and loader.batch_size == 16 and loader.num_workers == 2 and loader.drop_last
        assert type(loader.sampler) is EpochSequentialSampler and isinstance(loader.sampler, SequentialSampler)
        assert type(loader.batch_sampler) is BatchSampler and loader.batch_sampler.sampler is loader.sampler
        assert loader.collate_fn is collate_batch and len(loader) == 3
        shuffled = batch_loader(ds, 16, shuffle=True)
        assert type(shuffled.sampler) is EpochRandomSampler and isinstance(shuffled.sampler, RandomSampler)

    def test_repr(self):
        loader = batch_loader(_dataset(), 16, shuffle=True, dtype=torch.float32, mean=MEAN, std=STD)
        assert repr(loader) == (
            "BatchLoader(batch_size=16, batches=4, sampler=EpochRandomSampler, num_workers=0, "
            "persistent_workers=False, pin_memory=False, device=None, dtype=torch.float32, mean=(0.485, 0.456, 0.406), "
            "std=(0.229, 0.224, 0.225), dataset=SingleImageDataset of 60 at epoch 0)"
        )

    @pytest.mark.parametrize("workers", [0, 2])
    def test_rebuilt_from_its_init_arguments_with_a_distributed_sampler(self, workers):
        # What a framework does to shard a loader (Lightning, for a loader made outside its hooks): read the
        # attributes named like the subclass's init arguments, swap the sampler, call the class again.
        ds = _dataset()
        loader = batch_loader(ds, 8, shuffle=True, num_workers=workers, dtype=torch.float64, mean=MEAN, std=STD)
        names = [name for name in inspect.signature(BatchLoader).parameters if hasattr(loader, name)]
        arguments = {name: getattr(loader, name) for name in names}
        seen = []
        for rank in range(2):
            sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=3)
            rebuilt = type(loader)(**{**arguments, "sampler": sampler, "batch_sampler": None, "shuffle": False})
            assert (rebuilt.batch_size, rebuilt.num_workers, rebuilt.dtype) == (8, workers, torch.float64)
            sampler.set_epoch(2)
            images = _images(rebuilt)
            indices = list(sampler)
            m, s = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
            torch.testing.assert_close(images, (_expected(ds, indices, epoch=2).double() / 255 - m) / s)
            seen += indices
        assert sorted(seen) == list(range(60))

    def test_a_custom_batch_sampler(self):
        ds = _dataset()
        batches = [[5, 1], [59, 0, 7]]
        loader = BatchLoader(ds, batch_sampler=batches)
        assert loader.batch_size is None and len(loader) == 2
        assert [x.shape[0] for x, _ in loader] == [2, 3]
        assert torch.equal(_images(loader), _expected(ds, [5, 1, 59, 0, 7]))

    def test_collate_batch_in_a_plain_dataloader(self):
        ds = _dataset(output="tensor")
        loader = DataLoader(ds, batch_size=16, num_workers=2, collate_fn=collate_batch, sampler=EpochRandomSampler(ds))
        images, targets = next(iter(loader))
        assert torch.equal(images, _expected(ds, list(loader.sampler)[:16]))
        assert targets.dtype == torch.int64 and targets.tolist() == [0] * 16
        assert collate_batch([(torch.zeros(2), 1), (torch.ones(2), 2)])[1].tolist() == [1, 2]  # default_collate

    def test_getitems_is_a_sample_batch_for_default_collate_and_collate_batch(self):
        ds = _dataset(output="tensor")
        batch = ds.__getitems__([4, 9])
        assert isinstance(batch, SampleBatch) and len(batch) == 2 and batch.images.shape == (2, 3, 32, 32)
        assert [torch.equal(x, ds[i][0]) and y == 0 for (x, y), i in zip(batch, [4, 9], strict=True)] == [True, True]
        images, targets = torch.utils.data.default_collate(batch)
        assert torch.equal(images, batch.images) and images.data_ptr() != batch.images.data_ptr()  # a copy
        assert collate_batch(batch)[0].data_ptr() == batch.images.data_ptr()  # the same memory


class TestEpochs:
    @pytest.mark.parametrize("shuffle", [False, True])
    def test_the_samplers_set_epoch_draws_fresh_samples(self, shuffle):
        ds = _dataset()
        loader = batch_loader(ds, 16, shuffle=shuffle, num_workers=2, persistent_workers=True)
        first = _images(loader)
        loader.sampler.set_epoch(1)  # what Lightning and Accelerate call at every epoch
        assert ds.epoch == 1 and loader.sampler.epoch == 1
        second = _images(loader)
        order = list(loader.sampler)
        assert torch.equal(second, _expected(ds, order, epoch=1))
        assert not torch.equal(second, first)
        loader.batch_sampler.sampler.set_epoch(0)  # the same sampler
        assert torch.equal(_images(loader), first)

    @pytest.mark.parametrize("workers", [0, 2])
    def test_a_distributed_samplers_epoch_is_the_datasets_at_each_iteration(self, workers):
        ds = _dataset()
        sampler = DistributedSampler(ds, num_replicas=2, rank=1, shuffle=True, seed=4)
        loader = batch_loader(ds, 8, sampler=sampler, num_workers=workers, persistent_workers=workers > 0)
        for epoch in (0, 3, 4):
            sampler.set_epoch(epoch)  # the sampler only, as Lightning does with the one it injects
            images = _images(loader)
            assert ds.epoch == epoch
            assert torch.equal(images, _expected(ds, list(sampler), epoch=epoch))

    def test_loader_set_epoch_sets_the_dataset_and_the_sampler(self):
        ds = _dataset()
        sampler = DistributedSampler(ds, num_replicas=3, rank=0)
        batch_loader(ds, 8, sampler=sampler).set_epoch(6)
        assert ds.epoch == 6 and sampler.epoch == 6

    def test_the_shuffle_is_a_function_of_seed_and_epoch(self):
        def orders(ds, epochs):
            sampler = EpochRandomSampler(ds)
            result = []
            for epoch in epochs:
                sampler.set_epoch(epoch)
                result.append(list(sampler))
            return result

        torch.manual_seed(0)
        straight = orders(_dataset(), [0, 1, 2])
        torch.manual_seed(1)
        state = torch.get_rng_state()
        assert orders(_dataset(), [2]) == straight[2:]  # a resume at epoch 2, whatever the global RNG
        assert torch.equal(torch.get_rng_state(), state)  # which it leaves alone
        assert len({tuple(o) for o in straight}) == 3 and all(sorted(o) == list(range(60)) for o in straight)
        assert orders(_dataset(seed=2), [0]) != straight[:1]

    def test_a_generator_draws_the_order_as_for_random_sampler(self):
        ds = _dataset()
        ours = EpochRandomSampler(ds, generator=torch.Generator().manual_seed(5))
        theirs = RandomSampler(ds, generator=torch.Generator().manual_seed(5))
        assert [list(ours), list(ours)] == [list(theirs), list(theirs)]


def _array(held: torch.Tensor | np.ndarray) -> np.ndarray:
    return held.numpy() if isinstance(held, torch.Tensor) else held


class TestBufferReuse:
    @pytest.mark.parametrize(
        "workers, persistent, context, strategy",
        [
            (0, False, None, None),
            (2, False, "fork", None),
            (2, True, "fork", None),
            pytest.param(2, True, "spawn", None, marks=pytest.mark.slow),
            pytest.param(2, True, "fork", "file_system", marks=pytest.mark.slow),
        ],
    )
    def test_batches_a_user_keeps_never_change(self, workers, persistent, context, strategy):
        previous = torch.multiprocessing.get_sharing_strategy()
        if strategy is not None:
            torch.multiprocessing.set_sharing_strategy(strategy)
        try:
            self._keep_and_check(workers, persistent, context)
        finally:
            torch.multiprocessing.set_sharing_strategy(previous)

    @staticmethod
    def _keep_and_check(workers: int, persistent: bool, context: str | None) -> None:
        ds = _dataset(num_imgs=120)
        loader = batch_loader(ds, 6, num_workers=workers, persistent_workers=persistent,
                              multiprocessing_context=context)
        kept = []  # (epoch, first index, what is held, a copy made when it arrived)
        for epoch in range(3):
            loader.set_epoch(epoch)
            for k, (images, _) in enumerate(loader):
                held = [images, images[2:5], images.numpy(), images[1]][k % 6] if k % 6 < 4 else None
                if held is not None:
                    kept.append((epoch, 6 * k, held, _array(held).copy()))
                del images  # the rest is released: its buffer is rendered into again
        gc.collect()
        assert len(kept) == 3 * 14
        for epoch, start, held, copy in kept:
            assert np.array_equal(_array(held), copy), "a kept batch changed while the loader went on"
            expected = _expected(ds, range(start, start + 6), epoch=epoch).numpy()
            view = {0: expected, 1: expected[2:5], 2: expected, 3: expected[1]}[(start // 6) % 6]
            assert np.array_equal(_array(held), view)

    def test_released_buffers_are_rendered_into_again(self, monkeypatch):
        allocations = torch.zeros(1, dtype=torch.int64).share_memory_()
        new_memory = batch_memory._new_memory

        def counted(size, shared):
            allocations.add_(1)
            return new_memory(size, shared)

        monkeypatch.setattr(batch_memory, "_new_memory", counted)  # forked workers inherit it
        ds = _dataset(num_imgs=240)
        counts = {}
        # 0 workers first: then this process has buffers of its own, which forked workers must not take over.
        for workers in (0, 2):
            allocations.zero_()
            loader = batch_loader(ds, 6, num_workers=workers, persistent_workers=workers > 0,
                                  multiprocessing_context="fork" if workers else None)
            for epoch in range(2):
                loader.set_epoch(epoch)
                for _ in loader:
                    pass
            counts[workers] = int(allocations)
        # 80 batches: a worker's first batch is fresh, then it reuses its buffers (this process: already may).
        assert counts[0] <= 1 + batch_memory._MAIN_SLOTS
        assert 2 <= counts[2] <= 2 * (1 + batch_memory._WORKER_SLOTS)

    def test_float_delivery_releases_each_batch_at_once(self):
        ds = _dataset()
        loader = batch_loader(ds, 12, num_workers=2, dtype=torch.float32, persistent_workers=True)
        batches = [_images(loader) for _ in range(2)]
        assert torch.equal(batches[0], batches[1])
        assert torch.equal(batches[0], _expected(ds, range(60)).float() / 255)


class TestViews:
    @pytest.mark.parametrize("workers", [0, 2])
    def test_a_batch_of_views_is_a_list_of_view_batches(self, workers):
        ds = _dataset(img_size=48, views="byol")
        loader = batch_loader(ds, 8, num_workers=workers, persistent_workers=workers > 0)
        for epoch in range(2):
            loader.set_epoch(epoch)
            batches = list(loader)
            for start, (views, targets) in zip(range(0, 60, 8), batches, strict=True):
                indices = list(range(start, min(start + 8, 60)))
                assert [tuple(v.shape) for v in views] == [(len(indices), 3, 48, 48)] * 2
                assert targets.tolist() == [0] * len(indices)
                expected = ds.render_views(ds.params_batch(indices), ds.view_params_batch(indices))
                assert all(torch.equal(v, e) for v, e in zip(views, expected, strict=True))

    def test_float_views_normalised_on_the_device(self):
        ds = _dataset(img_size=48, views="byol")
        raw = next(iter(batch_loader(ds, 8)))[0]
        floats = next(iter(batch_loader(ds, 8, device="cpu", dtype=torch.float32, mean=MEAN, std=STD)))[0]
        m, s = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
        assert all(torch.equal(f, (r / 255 - m) / s) for f, r in zip(floats, raw, strict=True))


def _thread_counts(target: int) -> tuple[int, int]:
    """What a worker runs with, as its targets (a target_transform, picklable for spawn)."""
    return cv2.getNumThreads(), torch.get_num_threads()


class TestWorkerThreads:
    @pytest.mark.parametrize("context", ["fork", pytest.param("spawn", marks=pytest.mark.slow)])
    def test_one_opencv_and_one_torch_thread_in_the_workers(self, context):
        ds = _dataset(target_transform=_thread_counts)
        environment = dict(os.environ)
        threads = cv2.getNumThreads()
        cv2.setNumThreads(4)
        cv2.resize(np.zeros((2000, 2000, 3), np.uint8), (1500, 1500))  # this process runs OpenCV's threads
        try:
            loader = batch_loader(ds, 20, num_workers=2, multiprocessing_context=context)
            counts = [targets for _, targets in loader]
            assert cv2.getNumThreads() == 4 and dict(os.environ) == environment  # this process keeps its own
        finally:
            cv2.setNumThreads(threads)
        assert [(opencv.tolist(), torch_.tolist()) for opencv, torch_ in counts] == [([1] * 20, [1] * 20)] * 3


class TestArguments:
    @pytest.mark.parametrize(
        "kwargs, error, match",
        [
            ({"device": "cuda:99"}, ValueError, "device 'cuda:99' is not available"),
            ({"device": "cuda"}, ValueError, "device 'cuda' is not available"),
            ({"device": 5}, ValueError, "device 'cuda:5' is not available"),
            ({"device": "mps"}, ValueError, "device 'mps' is not available"),
            ({"device": "meta"}, ValueError, "device 'meta' is not available"),
            ({"device": "cpu:3"}, ValueError, "device 'cpu:3' does not exist: the CPU is one device, 'cpu'"),
            ({"device": "tpu"}, ValueError, "device should be a torch device"),
            ({"dtype": torch.float32, "mean": (0.5, math.nan, 0.5), "std": STD}, ValueError, "mean should be finite"),
            ({"dtype": torch.float32, "mean": MEAN, "std": (0.2, math.inf, 0.2)}, ValueError, "std should be finite"),
            ({"dtype": torch.float32, "mean": "abc", "std": STD}, ValueError, "mean should be 3 numbers"),
            ({"batch_size": 2**63}, ValueError, r"batch_size should be an integer in \[1, 16777216\]"),
            ({"batch_size": True}, ValueError, "batch_size should be an integer"),
            ({"batch_size": 2.0}, ValueError, "batch_size should be an integer"),
            ({"batch_size": None}, ValueError, "batch_size should be an integer"),
            ({"dtype": "float32"}, TypeError, "dtype should be a torch.dtype.*got 'float32'"),
            ({"dtype": np.float32}, TypeError, "dtype should be a torch.dtype.*numpy.float32"),
            ({"shuffle": True, "sampler": [0, 1]}, ValueError, "shuffle=True and sampler are exclusive"),
        ],
    )
    def test_refused_at_the_call(self, kwargs, error, match, monkeypatch):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same on a machine with a GPU
        kwargs = {"batch_size": 8, **kwargs}
        with pytest.raises(error, match=match):
            batch_loader(_dataset(), **kwargs)

    def test_the_largest_batch_size_is_one_batch(self):
        ds = _dataset()
        assert [x.shape[0] for x, _ in batch_loader(ds, MAX_BATCH_SIZE)] == [60]

    def test_a_cpu_index_for_the_torch_backend(self):
        with pytest.raises(ValueError, match="^device 'cpu:3' does not exist: the CPU is one device, 'cpu'$"):
            SingleImageDataset(num_imgs=4, backend="torch", device="cpu:3")
        ds = SingleImageDataset(num_imgs=4, img_size=32, backend="torch", device="cpu:0")
        assert ds.device == torch.device("cpu")
        out = torch.empty((2, 3, 32, 32), dtype=torch.uint8)
        assert ds.render_batch(ds.params_batch([0, 1]), out) is out

    @pytest.mark.parametrize("workers", [0, 2])
    def test_targets_that_are_not_numbers_are_collated_as_by_default_collate(self, workers):
        names = batch_loader(_dataset(target_transform=lambda t: f"class {t}"), 4, num_workers=workers)
        assert [targets for _, targets in names][0] == ["class 0"] * 4
        pairs = batch_loader(_dataset(target_transform=lambda t: (t, 0.5)), 4, num_workers=workers, device="cpu")
        first, second = next(iter(pairs))[1]
        assert first.tolist() == [0] * 4 and second.dtype == torch.float64 and second.tolist() == [0.5] * 4

