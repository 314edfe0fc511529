"""Batched delivery: the vectorised sampler, batch rendering, ``__getitems__`` and ``batch_loader``."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as F
from torch.utils.data import DataLoader, DistributedSampler

from single_image_dataset import (
    AugmentConfig,
    ParamsBatch,
    SingleImageDataset,
    available_backends,
    batch_loader,
    sample_params,
    sample_params_batch,
    sampling,
)

pytestmark = pytest.mark.filterwarnings("error")

# (config, source size): the paper's; jitter subsets, random interpolation and flips on a small
# source; and three that retry the resized crop a lot (no initial crop on elongated sources, large
# minimum areas).
CONFIGS = {
    "paper": (AugmentConfig(), (1000, 872)),
    "variety": (AugmentConfig(randinterp=True, vflip=True, jitter=(0.0, 0.5, 0.3, 0.0), jitter_p=0.7), (600, 400)),
    "elongated": (AugmentConfig(cropfirst=False, jitter_p=1.0), (3000, 200)),
    "large_areas": (AugmentConfig(scale=(1.1, 1.0), cropfirst=False), (640, 480)),
    "rotate_debug": (AugmentConfig(shear=0.0, debug=True, cropfirst=False), (1200, 180)),
}


def _attempts(config: AugmentConfig, size: tuple[int, int], index: int) -> int:
    """How many resized-crop attempts sample ``index`` needed (counted on the per-sample path)."""
    stream = sampling.uniform_stream((config.seed, 0, index))
    for _ in itertools.islice(stream, sampling._BLOCK):
        pass
    counted = _Counting(stream)
    side = int(config.initcrop * min(size))
    sampling.sample_resized_crop(counted, (side, side) if config.cropfirst else size, config.area_range)
    return (counted.count - 2) // 2  # two uniforms per attempt, two more for the box's position


class _Counting:
    def __init__(self, it):
        self.it, self.count = it, 0

    def __iter__(self):
        return self

    def __next__(self):
        self.count += 1
        return next(self.it)


class TestSampleParamsBatch:
    @pytest.mark.parametrize("name", CONFIGS)
    def test_rows_equal_per_sample_params(self, name, sampler_impl):
        config, size = CONFIGS[name]
        n = 10_000 if sampler_impl == "native" else 2_000
        indices = np.arange(0, 7 * n, 7)
        expected = [sample_params(config, size, int(i), epoch=3) for i in indices]
        assert sample_params_batch(config, size, indices, epoch=3).to_list() == expected

    def test_retry_heavy_configs_do_retry(self):
        # Past 8 attempts the per-sample path leaves the native block and continues with numpy;
        # the batched sampler must follow the same stream there.
        for name in ("elongated", "large_areas"):
            config, size = CONFIGS[name]
            attempts = [_attempts(config, size, i) for i in range(0, 1400, 7)]
            assert max(attempts) > 8, name

    def test_independent_of_batch_composition(self):
        config, size = CONFIGS["variety"]
        whole = sample_params_batch(config, size, np.arange(100)).to_list()
        shuffled = np.random.default_rng(0).permutation(100)
        parts = sample_params_batch(config, size, shuffled).to_list()
        assert [parts[list(shuffled).index(i)] for i in range(100)] == whole
        assert sample_params_batch(config, size, [42]).to_list() == [whole[42]]

    def test_large_indices_and_numpy_integer_types(self):
        config, size = CONFIGS["paper"]
        indices = [2**40, 10**18, 2**63 - 1]
        for array in (indices, np.array(indices, dtype=np.uint64), np.array(indices, dtype=np.int64)):
            expected = [sample_params(config, size, i) for i in indices]
            assert sample_params_batch(config, size, array).to_list() == expected

    def test_from_list_round_trip_and_slicing(self):
        config, size = CONFIGS["variety"]
        records = [sample_params(config, size, i) for i in range(50)]
        batch = ParamsBatch.from_list(records)
        assert batch.to_list() == records
        assert batch[3] == records[3] and batch[-1] == records[-1]
        assert batch[10:20].to_list() == records[10:20]
        assert batch[np.array([4, 2])].to_list() == [records[4], records[2]]

    @pytest.mark.parametrize(
        "indices, error, match",
        [
            ([0, -1], ValueError, "non-negative"),
            ([0, 1.5], TypeError, "integers"),
            (["a"], TypeError, "integers"),
            ([], ValueError, "at least one"),
            ([[0, 1]], ValueError, "one-dimensional"),
            ([2**64], ValueError, "below 2\\*\\*63"),
        ],
    )
    def test_bad_indices(self, indices, error, match):
        with pytest.raises(error, match=match):
            sample_params_batch(AugmentConfig(), (1000, 872), indices)

    def test_from_list_rejects_mixed_shapes(self):
        a = sample_params(AugmentConfig(img_size=32), (1000, 872), 0)
        b = sample_params(AugmentConfig(img_size=64), (1000, 872), 0)
        with pytest.raises(ValueError, match="should share resize"):
            ParamsBatch.from_list([a, b])
        with pytest.raises(ValueError, match="empty"):
            ParamsBatch.from_list([])


def _dataset(backend: str, **kwargs) -> SingleImageDataset:
    return SingleImageDataset(backend=backend, **{"num_imgs": 200, "img_size": 32, "seed": 1, **kwargs})


def _pil_tensors(ds: SingleImageDataset, indices) -> torch.Tensor:
    return torch.stack([F.pil_to_tensor(ds.render(ds.params(int(i)))) for i in indices])


class TestRenderBatch:
    @pytest.mark.parametrize("config", ["default", "variety", "debug", "no_warp"])
    def test_equals_per_sample_render(self, backend, config):
        overrides = {
            "default": {},
            "variety": {"randinterp": True, "vflip": True, "jitter_p": 1.0, "cropfirst": False},
            "debug": {"debug": True, "img_size": 48},
            "no_warp": {"deg": 0.0, "shear": 0.0, "jitter": (0.4, 0.0, 0.0, 0.1)},
        }[config]
        ds = _dataset(backend, **overrides)
        indices = [0, 3, 7, 150, 199, 42]
        images = ds.render_batch(ds.params_batch(indices))
        assert images.dtype == torch.uint8 and images.is_contiguous()
        assert torch.equal(images, _pil_tensors(ds, indices))

    def test_into_caller_buffer_and_shared_memory(self, backend):
        ds = _dataset(backend)
        params = ds.params_batch(range(5))
        out = torch.zeros((5, 3, 32, 32), dtype=torch.uint8).share_memory_()
        assert ds.render_batch(params, out) is out
        assert out.is_shared() and torch.equal(out, _pil_tensors(ds, range(5)))

    def test_independent_of_batch_size_and_order(self, backend):
        ds = _dataset(backend, jitter_p=1.0)
        whole = ds.render_batch(ds.params_batch(range(24)))
        for size in (1, 5, 24):
            parts = [ds.render_batch(ds.params_batch(range(k, min(k + size, 24)))) for k in range(0, 24, size)]
            assert torch.equal(torch.cat(parts), whole)
        order = np.random.default_rng(1).permutation(24)
        assert torch.equal(ds.render_batch(ds.params_batch(order)), whole[order])

    @pytest.mark.parametrize(
        "out, error, match",
        [
            (torch.empty((4, 3, 32, 32), dtype=torch.uint8), ValueError, "shape \\[3, 3, 32, 32\\]"),
            (torch.empty((3, 3, 32, 32), dtype=torch.float32), ValueError, "uint8"),
            (torch.empty((3, 32, 32, 3), dtype=torch.uint8).permute(0, 3, 1, 2), ValueError, "contiguous"),
            (torch.empty((3, 3, 32, 32), dtype=torch.uint8, device="meta"), ValueError, "device"),
            (np.empty((3, 3, 32, 32), dtype=np.uint8), TypeError, "torch.Tensor"),
        ],
    )
    def test_bad_out(self, out, error, match):
        ds = _dataset("reference")
        with pytest.raises(error, match=match):
            ds.render_batch(ds.params_batch([0, 1, 2]), out)

    def test_params_must_be_a_batch(self):
        ds = _dataset("reference")
        with pytest.raises(TypeError, match="ParamsBatch"):
            ds.render_batch(ds.params(0))


class TestDatasetBatchApi:
    def test_params_batch_equals_params_with_negative_and_tensor_indices(self):
        ds = _dataset("reference")
        ds.set_epoch(2)
        indices = torch.tensor([0, -1, 5, -200])
        assert ds.params_batch(indices).to_list() == [ds.params(int(i)) for i in indices]

    @pytest.mark.parametrize(
        "indices, error, match",
        [
            ([0, 200], IndexError, "index 200 is out of range"),
            ([-201], IndexError, "index -201 is out of range"),
            ([0, 1.0], TypeError, "integers"),
            (["0"], TypeError, "integers"),
            ([], ValueError, "non-empty"),
        ],
    )
    @pytest.mark.parametrize("method", ["params_batch", "render_indices"])
    def test_bad_indices(self, indices, error, match, method):
        with pytest.raises(error, match=match):
            getattr(_dataset("reference"), method)(indices)

    def test_render_indices_is_the_batch_drawn_and_rendered(self, backend, coffee_path, hubble_path):
        ds = _dataset(backend, image=[coffee_path, hubble_path], per_source_classes=True)
        ds.set_epoch(3)
        indices = np.array([5, -1, 5, 0])
        images, targets, params = ds.render_indices(indices)
        assert params.to_list() == [ds.params(int(i)) for i in indices]
        assert torch.equal(images, _pil_tensors(ds, indices))
        assert targets.dtype == np.int64 and targets.tolist() == [p.source for p in params.to_list()]
        out = torch.empty_like(images)
        assert ds.render_indices(indices, out=out)[0] is out and torch.equal(out, images)

    def test_render_indices_in_a_worker_fills_shared_memory(self):
        ds = _dataset("fast", output="tensor")

        class SharedInWorker(torch.utils.data.Dataset):
            def __len__(self):
                return 2

            def __getitem__(self, i):
                images = ds.render_indices([i, i + 1])[0]
                return torch.tensor(images.is_shared())  # asked in the worker, before it sends the batch

        assert not ds.render_indices([0, 1])[0].is_shared()  # in this process, ordinary memory
        loader = DataLoader(SharedInWorker(), batch_size=None, num_workers=1, multiprocessing_context="fork")
        assert [bool(flag) for flag in loader] == [True, True]

    def test_unknown_output(self):
        with pytest.raises(ValueError, match="output should be one of 'pil', 'tensor', got 'numpy'"):
            _dataset("reference", output="numpy")

    def test_tensor_output_is_pil_to_tensor(self, backend):
        pil, tensor = _dataset(backend), _dataset(backend, output="tensor")
        for i in (0, 9):
            assert torch.equal(tensor[i][0], F.pil_to_tensor(pil[i][0]))

    @pytest.mark.parametrize("output", ["pil", "tensor"])
    def test_getitems_with_and_without_transform(self, backend, output):
        plain = _dataset(backend, output=output)
        transformed = _dataset(backend, output=output, transform=lambda x: ("t", x), target_transform=lambda t: t + 5)
        indices = [4, 1, 4, 100]
        expected = [plain[i] for i in indices]
        batched = plain.__getitems__(indices)
        per_sample = transformed.__getitems__(indices)
        for (x, y), (xb, yb), (xt, yt) in zip(expected, batched, per_sample, strict=True):
            as_tensor = F.pil_to_tensor if output == "pil" else (lambda v: v)
            assert torch.equal(as_tensor(xb), as_tensor(x)) and yb == y == 0
            assert xt[0] == "t" and torch.equal(as_tensor(xt[1]), as_tensor(x)) and yt == 5

    # Every backend with fork; spawn (seconds to start) once, among the slow tests.
    @pytest.mark.parametrize(
        "backend, context",
        [(b, "fork") for b in available_backends()] + [pytest.param("fast", "spawn", marks=pytest.mark.slow)],
    )
    def test_dataloader_workers_give_the_single_process_batches(self, backend, context):
        ds = _dataset(backend, output="tensor")
        single = list(DataLoader(ds, batch_size=16, num_workers=0))
        multi = list(DataLoader(ds, batch_size=16, num_workers=2, multiprocessing_context=context))
        assert len(single) == len(multi) == 13
        for (xs, ys), (xm, ym) in zip(single, multi, strict=True):
            assert torch.equal(xs, xm) and torch.equal(ys, ym)


def _collect(loader) -> tuple[torch.Tensor, torch.Tensor]:
    images, targets = zip(*loader, strict=True)
    return torch.cat(images), torch.cat(targets)


class TestBatchLoader:
    def test_images_are_the_samples_whatever_batch_size_and_workers(self, backend):
        ds = _dataset(backend)
        expected = _pil_tensors(ds, range(200))
        for batch_size, workers in ((7, 0), (64, 2), (200, 0)):
            loader = batch_loader(ds, batch_size, num_workers=workers)
            assert len(loader) == -(-200 // batch_size)
            images, targets = _collect(loader)
            assert torch.equal(images, expected) and torch.equal(targets, torch.zeros(200, dtype=torch.int64))

    def test_shuffle_with_generator_is_a_dataloaders_order(self):
        ds = _dataset("fast")
        images, _ = _collect(batch_loader(ds, 32, shuffle=True, generator=torch.Generator().manual_seed(3)))
        plain = DataLoader(range(200), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(3))
        order = torch.cat(list(plain))
        assert sorted(order.tolist()) == list(range(200))
        assert torch.equal(images, _pil_tensors(ds, order.tolist()))

    def test_distributed_sampler_ranks_partition_the_epoch(self):
        ds = _dataset("fast")
        seen = []
        for rank in range(3):
            sampler = DistributedSampler(ds, num_replicas=3, rank=rank, shuffle=True, seed=5, drop_last=True)
            loader = batch_loader(ds, 16, sampler=sampler, num_workers=2 if rank == 1 else 0)
            loader.set_epoch(4)
            indices = list(sampler)
            images, _ = _collect(loader)
            ds.set_epoch(4)
            assert torch.equal(images, _pil_tensors(ds, indices))
            ds.set_epoch(0)
            seen += indices
        assert len(seen) == len(set(seen)) == 198

    def test_set_epoch_reaches_persistent_workers(self):
        ds = _dataset("fast")
        loader = batch_loader(ds, 50, num_workers=2, persistent_workers=True)
        first, _ = _collect(loader)
        loader.set_epoch(1)
        second, _ = _collect(loader)
        assert not torch.equal(first, second)
        assert torch.equal(second, _pil_tensors(ds, range(200)))
        loader.set_epoch(0)
        again, _ = _collect(loader)
        assert torch.equal(again, first)

    def test_drop_last(self):
        ds = _dataset("reference")
        loader = batch_loader(ds, 64, drop_last=True)
        assert len(loader) == 3 and [len(x) for x, _ in loader] == [64, 64, 64]

    def test_pin_memory_without_gpu_warns_and_delivers(self):
        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU: pinning is real there")
        ds = _dataset("fast")
        with pytest.warns(UserWarning, match="pin_memory=True ignored"):
            loader = batch_loader(ds, 100, pin_memory=True)
        images, _ = _collect(loader)
        assert torch.equal(images, _pil_tensors(ds, range(200)))

    def test_float_output_normalised_on_the_device(self):
        ds = _dataset("fast")
        mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
        raw, _ = _collect(batch_loader(ds, 40))
        normalised, _ = _collect(batch_loader(ds, 40, device="cpu", dtype=torch.float32, mean=mean, std=std))
        m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
        assert normalised.dtype == torch.float32
        assert torch.equal(normalised, (raw / 255 - m) / s)
        scaled, _ = _collect(batch_loader(ds, 40, dtype=torch.float64))
        assert torch.equal(scaled, raw.double() / 255)

    @pytest.mark.parametrize(
        "kwargs, error, match",
        [
            ({"batch_size": 0}, ValueError, "batch_size should be an integer in \\[1, 16777216\\]"),
            ({"dtype": torch.int32}, ValueError, "dtype should be torch.uint8 or a floating"),
            ({"mean": (0.5, 0.5, 0.5)}, ValueError, "given together"),
            ({"mean": (0.5,) * 3, "std": (0.2,) * 3}, ValueError, "floating dtype"),
            ({"mean": (0.5,) * 2, "std": (0.2,) * 2, "dtype": torch.float32}, ValueError, "3 values"),
            ({"mean": (0.5,) * 3, "std": (0.2, 0, 0.2), "dtype": torch.float32}, ValueError, "zeros"),
        ],
    )
    def test_bad_arguments(self, kwargs, error, match):
        kwargs = {"batch_size": 8, **kwargs}
        with pytest.raises(error, match=match):
            batch_loader(_dataset("reference"), **kwargs)

    def test_refuses_a_per_sample_transform(self):
        with pytest.raises(ValueError, match="no per-sample transform"):
            batch_loader(_dataset("reference", transform=F.pil_to_tensor), 8)
