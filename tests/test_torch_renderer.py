"""The torch renderer (``backend="torch"``) on the CPU device: fidelity, batch independence, knobs, devices.

The contract tests that every backend passes (``render_batch`` equals ``render``, workers, ``batch_loader``,
exports, reproducibility) run it too, through the ``backend`` fixture; these are the torch renderer's own.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as F
from PIL import Image

from single_image_dataset import (
    AugmentConfig,
    ParamsBatch,
    SingleImageDataset,
    available_backends,
    batch_loader,
    get_renderer,
    load_image,
    sample_params_batch,
)
from single_image_dataset.render import tensor

pytestmark = pytest.mark.filterwarnings("error")

# Samples per fidelity case: enough for a stable mean, few enough for a fast test at 256 px.
FIDELITY_SAMPLES = {32: 24, 64: 24, 256: 8}


def _psnr(images: torch.Tensor, expected: torch.Tensor) -> np.ndarray:
    """The PSNR of each image against the expected one, in dB (capped at 100 for equal images)."""
    mse = ((images.double() - expected.double()) ** 2).mean(dim=(1, 2, 3)).numpy()
    return 10 * np.log10(255.0**2 / np.maximum(mse, 255.0**2 * 1e-10))


def _reference(renderers: dict, batch: ParamsBatch) -> torch.Tensor:
    return torch.stack([F.pil_to_tensor(renderers["reference"].render(p)) for p in batch.to_list()])


def _torch(renderers: dict, batch: ParamsBatch) -> torch.Tensor:
    side = batch.output_size if batch.debug_size is None else batch.debug_size
    out = torch.empty((len(batch), 3, side, side), dtype=torch.uint8)
    renderers["torch"].render_batch(batch, out)
    return out


@pytest.fixture(scope="module", params=["large_photo", "hubble_path", "coffee_path"])
def source(request: pytest.FixtureRequest) -> dict:
    """A source image with its reference and torch renderers (built once per module)."""
    return _renderers(load_image(request.getfixturevalue(request.param)))


def _renderers(image) -> dict:
    return {"image": image, **{name: get_renderer(name, image) for name in ("reference", "torch")}}


class TestFidelity:
    """With the jitter (the geometry alone on varied photographs: test_fidelity.py)."""

    @pytest.mark.parametrize("size", sorted(FIDELITY_SAMPLES))
    @pytest.mark.parametrize("jitter_p, target", [(1.0, 30.0)])
    def test_mean_psnr_against_the_reference(self, source, size, jitter_p, target):
        config = AugmentConfig(img_size=size, jitter_p=jitter_p, seed=3)
        batch = sample_params_batch(config, source["image"].size, range(FIDELITY_SAMPLES[size]))
        psnr = _psnr(_torch(source, batch), _reference(source, batch))
        assert psnr.mean() >= target, f"mean PSNR {psnr.mean():.2f} dB, per sample {np.round(psnr, 1)}"

    def test_a_sample_is_not_the_reference_of_another(self, source):
        # The fidelity figure can fail: images of different parameters are far apart.
        batch = sample_params_batch(AugmentConfig(img_size=64, jitter_p=0.0), source["image"].size, range(8))
        shifted = _reference(source, batch)[torch.tensor([1, 2, 3, 4, 5, 6, 7, 0])]
        assert _psnr(_torch(source, batch), shifted).mean() < 25.0


# Every knob of the config (with the targets of the fidelity tests: 40 dB without jitter, 30 with).
KNOBS = {
    "cropfirst_off": ({"cropfirst": False, "jitter_p": 0.0}, 40.0),
    "vflip": ({"vflip": True, "jitter_p": 0.0}, 40.0),
    "rotate_only": ({"shear": 0.0, "jitter_p": 0.0}, 40.0),
    "no_warp": ({"deg": 0.0, "shear": 0.0, "jitter_p": 0.0}, 40.0),
    "large_shear": ({"shear": 60.0, "deg": 90.0, "jitter_p": 0.0}, 40.0),
    "debug": ({"debug": True}, 40.0),
    "randinterp": ({"randinterp": True, "jitter_p": 0.0}, 40.0),
    "hue_only": ({"jitter": (0.0, 0.0, 0.0, 0.5), "jitter_p": 1.0}, 30.0),
    "contrast_only": ({"jitter": (0.0, 0.8, 0.0, 0.0), "jitter_p": 1.0}, 30.0),
    "brightness_saturation": ({"jitter": (0.8, 0.0, 0.8, 0.0), "jitter_p": 1.0}, 30.0),
    "all_jitter_strong": ({"jitter": (0.8, 0.8, 0.8, 0.5), "jitter_p": 1.0, "vflip": True}, 30.0),
}


@pytest.fixture(scope="module")
def coffee(coffee_path) -> dict:
    """The default image with its reference and torch renderers."""
    return _renderers(load_image(coffee_path))


@pytest.fixture(scope="module")
def white() -> tuple[dict, ParamsBatch]:
    """A white source (so black pixels are exactly the filled ones) and samples with large shears."""
    image = Image.new("RGB", (600, 400), (255, 255, 255))
    config = AugmentConfig(img_size=48, shear=60.0, deg=90.0, jitter_p=0.0)
    return _renderers(image), sample_params_batch(config, image.size, range(32))


class TestKnobs:
    @pytest.mark.parametrize("knob", KNOBS)
    def test_renders_close_to_the_reference(self, coffee, knob):
        overrides, target = KNOBS[knob]
        config = AugmentConfig(img_size=48, seed=7).replace(**overrides)
        batch = sample_params_batch(config, coffee["image"].size, range(16))
        images = _torch(coffee, batch)
        side = 32 if config.debug else 48
        assert images.shape == (16, 3, side, side)
        psnr = _psnr(images, _reference(coffee, batch))
        assert psnr.mean() >= target, f"mean PSNR {psnr.mean():.2f} dB, per sample {np.round(psnr, 1)}"

    def test_black_fill_where_the_reference_fills(self, white):
        renderers, batch = white
        filled = (_torch(renderers, batch) == 0).all(dim=1)
        assert 0.02 < filled.float().mean() < 0.5  # the samples do leave pixels outside the resized crop
        assert torch.equal(filled, (_reference(renderers, batch) == 0).all(dim=1))

    def test_black_fill_is_the_fast_renderers(self, white):
        pytest.importorskip("cv2")
        renderers, batch = white
        fast = torch.empty((len(batch), 3, 48, 48), dtype=torch.uint8)
        get_renderer("fast", renderers["image"]).render_batch(batch, fast)
        assert torch.equal((_torch(renderers, batch) == 0).all(dim=1), (fast == 0).all(dim=1))


def _variety_dataset(**overrides) -> SingleImageDataset:
    settings = {
        "num_imgs": 1000, "img_size": 32, "seed": 5, "vflip": True, "randinterp": True, "jitter_p": 0.9,
        "shear": 45.0, "backend": "torch",
    }
    return SingleImageDataset(**{**settings, **overrides})


class TestBatchIndependence:
    def test_batch_of_1_7_and_64_and_shuffled_compositions(self):
        ds = _variety_dataset()
        indices = np.arange(64) * 13
        whole = ds.render_batch(ds.params_batch(indices))
        singles = torch.cat([ds.render_batch(ds.params_batch([i])) for i in indices])
        sevens = torch.cat([ds.render_batch(ds.params_batch(indices[k : k + 7])) for k in range(0, 64, 7)])
        assert torch.equal(singles, whole) and torch.equal(sevens, whole)
        order = np.random.default_rng(0).permutation(64)
        assert torch.equal(ds.render_batch(ds.params_batch(indices[order])), whole[order])
        # Among other neighbours: each sample beside samples of another range.
        mixed = np.concatenate([indices[:32], np.arange(5000, 5032) % 1000])
        assert torch.equal(ds.render_batch(ds.params_batch(mixed))[:32], whole[:32])

    def test_slicing_a_large_batch_changes_no_pixel(self, monkeypatch):
        ds = _variety_dataset(img_size=64)
        params = ds.params_batch(range(40))
        whole = ds.render_batch(params)
        monkeypatch.setattr(tensor, "_SLICE_PIXELS", 3 * 64 * 64)  # slices of 3 samples
        assert torch.equal(ds.render_batch(params), whole)

    def test_independent_of_the_thread_count(self):
        ds = _variety_dataset(img_size=64)
        params = ds.params_batch(range(24))
        threads = torch.get_num_threads()
        whole = ds.render_batch(params)
        try:
            torch.set_num_threads(1)
            assert torch.equal(ds.render_batch(params), whole)
        finally:
            torch.set_num_threads(threads)

    def test_render_is_the_batch_of_one(self):
        ds = _variety_dataset(debug=True)
        params = ds.params_batch(range(6))
        images = ds.render_batch(params)
        for k in range(6):
            assert torch.equal(F.pil_to_tensor(ds.render(params[k])), images[k])


class TestLoader:
    def test_batch_loader_on_the_cpu_device_equals_render_batch(self):
        ds = _variety_dataset(num_imgs=50)
        expected = ds.render_batch(ds.params_batch(range(50)))
        batches = list(batch_loader(ds, 16, device="cpu"))
        assert [len(x) for x, _ in batches] == [16, 16, 16, 2]
        assert torch.equal(torch.cat([x for x, _ in batches]), expected)
        mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
        floats = torch.cat([x for x, _ in batch_loader(ds, 16, device="cpu", dtype=torch.float32, mean=mean, std=std)])
        m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
        assert torch.equal(floats, (expected / 255 - m) / s)

    def test_workers_are_refused_for_a_dataset_on_an_accelerator(self):
        ds = _variety_dataset()
        ds.device = torch.device("cuda", 0)  # as a dataset built with device="cuda" names it
        with pytest.raises(ValueError, match=r"num_workers should be 0 for a dataset that renders on cuda:0"):
            batch_loader(ds, 8, num_workers=2)


class TestDevices:
    def test_registered_with_its_identity(self):
        assert "torch" in available_backends()
        identity = _variety_dataset().renderer_identity()
        assert identity == {"backend": "torch", "device": "cpu", "torch": torch.__version__}

    def test_pickled_renderer_renders_the_same(self):
        ds = _variety_dataset()
        params = ds.params_batch(range(8))
        renderer = ds._built_renderers()[0]
        copy = pickle.loads(pickle.dumps(renderer))
        out = torch.empty((8, 3, 32, 32), dtype=torch.uint8)
        copy.render_batch(params, out)
        assert copy.device == torch.device("cpu") and torch.equal(out, ds.render_batch(params))
        assert len(pickle.dumps(renderer)) < 2 * len(pickle.dumps(ds.source))  # the pyramid is not pickled

    @pytest.mark.parametrize(
        "backend, device, match",
        [
            ("torch", "gpu", r"^device should be a torch device such as 'cpu' or 'cuda', got 'gpu'$"),
            ("torch", "meta", r"^device 'meta' is not available: this machine has no meta device; use device='cpu'$"),
            ("fast", "cuda", r"^backend 'fast' renders on the CPU only, got device 'cuda'; use backend=\"torch\""),
            ("reference", "cuda:1", r"^backend 'reference' renders on the CPU only, got device 'cuda:1'; use backend="),
        ],
    )
    def test_bad_device(self, backend, device, match):
        with pytest.raises(ValueError, match=match):
            SingleImageDataset(num_imgs=4, backend=backend, device=device)

    def test_cuda_on_a_machine_without_cuda(self, monkeypatch):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        message = r"^device 'cuda' is not available: this machine has no cuda device; use device='cpu'$"
        with pytest.raises(ValueError, match=message):
            SingleImageDataset(num_imgs=4, backend="torch", device="cuda")

    def test_a_cuda_index_the_machine_lacks(self, monkeypatch):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
        with pytest.raises(ValueError, match=r"^device 'cuda:1' is not available: this machine has 1 cuda device"):
            SingleImageDataset(num_imgs=4, backend="torch", device="cuda:1")

    def test_the_cpu_device_by_name_and_object(self):
        for device in ("cpu", torch.device("cpu")):
            ds = SingleImageDataset(num_imgs=4, img_size=32, backend="torch", device=device)
            assert ds.device == torch.device("cpu") and ds.render_batch(ds.params_batch([0])).device == ds.device
