"""Views at the renderers' speed (issue 17, part 2): the fast renderer's native views and the torch renderer's
views on the device, held to the oracle on their own sample (``apply_view``: byte for byte but for the blur and
the torch jitter) and to the reference renderer's views on varied photographs (fidelity); Pillow's order of the
resize's passes and torchvision's blur kernel, which they follow. The native kernels' AVX2 and portable code and
their argument checks are tested in test_kernels.py; batched == per-sample views in test_views.py."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import PIL
import pytest
import torch
import torchvision.transforms.functional as F
from PIL import Image
from torchvision.transforms._functional_tensor import _get_gaussian_kernel1d

from single_image_dataset import SingleImageDataset, ViewParamsBatch
from single_image_dataset.render import fast
from single_image_dataset.render.functional import apply_view, gaussian_kernels, pil_vertical_first

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from fidelity_views import OPS, view_psnrs  # noqa: E402  (benchmarks/fidelity_views.py)
from photos import photo_names  # noqa: E402

pytestmark = pytest.mark.filterwarnings("error")

BACKENDS = ["fast", "torch"]
# Mean PSNR (dB) of the views against the reference's, over the photographs: the bounds.
BOUNDS = {"colour off": 35.0, **{name: 30.0 for name in OPS[1:]}}
# A varied few for the quick runs (a face, mostly black, fine lines, the two hard cases); all of them in the slow ones.
QUICK_PHOTOS = ("coffee", "hubble", "zone_plate", "fine_lines")


def _noise_dataset(backend: str, side: int = 61) -> SingleImageDataset:
    """Samples of noise (every frequency, so that any difference of filtering shows), without jitter."""
    if backend == "fast" and fast._kernels is None:
        pytest.skip("the C extension was not built (no C compiler)")
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (240, 240, 3), dtype=np.uint8))
    return SingleImageDataset(noise, num_imgs=100, img_size=side, backend=backend, jitter_p=0.0)


def _random_views(
    rng: np.random.Generator, n: int, side: int, size: int, jitter: tuple[int, ...] = ()
) -> ViewParamsBatch:
    """``n`` views of ``size`` px of ``side`` px samples: crops of any shape, from 1 px to the whole sample, and every
    op at random; the jitter's ops (indices into JITTER_OPS) ``jitter`` on half the rows, in a random order."""
    height, width = rng.integers(1, side + 1, n), rng.integers(1, side + 1, n)
    crop = np.stack([rng.integers(0, side - height + 1), rng.integers(0, side - width + 1), height, width], axis=1)
    jitter_on = (rng.random(n) < 0.5) & bool(jitter)
    factors = np.full((n, 4), np.nan)
    order = np.full((n, 4), -1, dtype=np.int8)
    for k in np.flatnonzero(jitter_on):
        order[k, : len(jitter)] = rng.permutation(jitter)
        factors[k, list(jitter)] = [rng.uniform(-0.2, 0.2) if op == 3 else rng.uniform(0.2, 1.8) for op in jitter]
    return ViewParamsBatch(
        crop=crop, size=size, hflip=rng.random(n) < 0.5, jitter_on=jitter_on, jitter_factors=factors,
        jitter_order=order, grayscale=rng.random(n) < 0.3,
        blur_sigma=np.where(rng.random(n) < 0.5, rng.uniform(0.1, 2.0, n), np.nan), blur_kernel=2 * (size // 20) + 1,
        solarize=rng.random(n) < 0.3,
    )


def _against_the_oracle(
    ds: SingleImageDataset, views: ViewParamsBatch, samples: list[Image.Image] | None = None
) -> list[np.ndarray]:
    """Each view of samples ``0 .. len(views) - 1`` as an absolute difference to ``apply_view`` of the renderer's
    own sample (``samples``, when rendered already)."""
    params = ds.params_batch(range(len(views)))
    samples = samples or [ds.render(p) for p in params.to_list()]
    rendered = ds.render_views(params, [views])[0].numpy().astype(int)
    return [np.abs(rendered[k] - F.pil_to_tensor(apply_view(samples[k], views[k])).numpy()) for k in range(len(views))]


class TestTheOracleOnTheirOwnSample:
    @pytest.mark.parametrize("backend", BACKENDS)
    def test_byte_for_byte_but_the_blur(self, backend: str) -> None:
        """Pillow's resize in its pass order, the flip, grayscale and solarization exactly; the blur within a level."""
        ds, rng = _noise_dataset(backend), np.random.default_rng(1)
        samples = [ds.render(params) for params in ds.params_batch(range(16)).to_list()]
        blurred = changed = 0
        for size in (1, 9, 33, 61):
            views = _random_views(rng, 16, 61, size)
            for k, diff in enumerate(_against_the_oracle(ds, views, samples)):
                if np.isnan(views.blur_sigma[k]) or views.blur_kernel == 1:
                    assert diff.max() == 0, views[k]
                else:
                    assert diff.max() <= 1, views[k]
                    blurred, changed = blurred + diff.size, changed + int((diff > 0).sum())
        assert changed <= 1e-3 * blurred  # a level on a rounding boundary of torchvision's float sums

    def test_fast_jitter_is_pils_but_the_hue(self) -> None:
        """The native views' jitter is the samples' kernels: PIL's arithmetic exactly but for the hue's rounding."""
        ds, rng = _noise_dataset("fast"), np.random.default_rng(2)
        for diff in _against_the_oracle(ds, _random_views(rng, 24, 61, 40, jitter=(0, 1, 2))):
            assert diff.max() <= (1 if diff.size else 0)  # the blur's level
        hue = _against_the_oracle(ds, _random_views(rng, 24, 61, 40, jitter=(0, 1, 2, 3)))
        assert max(d.max() for d in hue) <= 12 and np.mean([(d > 1).mean() for d in hue]) < 0.01

    def test_torch_jitter_is_within_the_samples_bound(self) -> None:
        """The torch views' jitter is the renderer's torchvision tensor semantics, as for its samples."""
        ds, rng = _noise_dataset("torch"), np.random.default_rng(3)
        diffs = _against_the_oracle(ds, _random_views(rng, 16, 61, 40, jitter=(0, 1, 2, 3)))
        mse = np.mean([float((d.astype(float) ** 2).mean()) for d in diffs])
        assert 10 * np.log10(255**2 / mse) > 30

    def test_both_of_pillows_pass_orders_are_exercised(self) -> None:
        views = _random_views(np.random.default_rng(1), 24, 61, 20)
        orders = set(pil_vertical_first(views.crop[:, 2], views.crop[:, 3], 20).tolist())
        assert orders == ({False, True} if int(PIL.__version__.split(".")[0]) >= 13 else {False})


class TestWhatTheyFollow:
    def test_pass_order_is_the_installed_pillows(self) -> None:
        """``pil_vertical_first`` predicts which of the two orders ``Image.resize`` takes (where they differ)."""
        rng = np.random.default_rng(4)
        decided = 0
        for _ in range(300):
            (height, width), (out_h, out_w) = rng.integers(2, 60, 2), rng.integers(2, 60, 2)
            image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
            rows_first = image.resize((out_w, height), Image.Resampling.BILINEAR).resize((out_w, out_h),
                                                                                        Image.Resampling.BILINEAR)
            columns_first = image.resize((width, out_h), Image.Resampling.BILINEAR).resize((out_w, out_h),
                                                                                           Image.Resampling.BILINEAR)
            if out_h == out_w and rows_first.tobytes() != columns_first.tobytes():
                both = image.resize((out_w, out_h), Image.Resampling.BILINEAR).tobytes()
                expected = columns_first if pil_vertical_first(height, width, out_w) else rows_first
                assert both == expected.tobytes(), (height, width, out_w)
                decided += 1
        assert decided > 5

    @pytest.mark.parametrize("taps", [3, 9, 23])
    def test_gaussian_kernels_are_torchvisions(self, taps: int) -> None:
        sigma = np.random.default_rng(5).uniform(0.1, 2.0, 200)
        ours = gaussian_kernels(sigma, taps)
        cpu = torch.device("cpu")
        theirs = torch.stack([_get_gaussian_kernel1d(taps, float(s), torch.float32, cpu) for s in sigma])
        assert torch.equal(ours, theirs)
        assert torch.equal(ours, ours.flip(1))  # symmetric, as the blur's folding takes it


def _fidelity_cases() -> list:
    """(backend, (view px, sample px, photographs or None for all, samples per photograph)): a quick look at both
    sizes (the torch renderer's 224 px views take about 3 s on one CPU core, so they are slow), all photographs in the
    slow runs."""
    cases = []
    for backend in BACKENDS:
        cases += [
            pytest.param(backend, (64, 64, QUICK_PHOTOS, 1), id=f"{backend}-64px-quick"),
            pytest.param(backend, (224, 256, ("fine_lines",), 1), id=f"{backend}-224px-quick",
                         marks=[pytest.mark.slow] if backend == "torch" else []),
            pytest.param(backend, (64, 64, None, 2), id=f"{backend}-64px", marks=pytest.mark.slow),
            pytest.param(backend, (224, 256, None, 2), id=f"{backend}-224px", marks=pytest.mark.slow),
        ]
    return cases


@pytest.mark.parametrize("ops", OPS)
@pytest.mark.parametrize(("backend", "case"), _fidelity_cases())
def test_fidelity_to_the_reference(backend: str, ops: str, case: tuple) -> None:
    """Mean PSNR of the views against the reference's over varied photographs (benchmarks/fidelity_views.py): 64 px
    views of 64 px samples, and 224 px views of 256 px samples."""
    if backend == "fast" and fast._kernels is None:
        pytest.skip("the C extension was not built (no C compiler)")
    size, side, photos, samples = case
    photos = photos or photo_names()
    means = [float(np.mean(view_psnrs(backend, photo, size, side, ops, samples))) for photo in photos]
    assert np.mean(means) >= BOUNDS[ops], dict(zip(photos, means, strict=True))


def test_a_view_one_level_off_would_fail_the_fidelity_bound() -> None:
    """The bounds can fail: a view off by a few levels everywhere is far below them."""
    a = torch.full((3, 64, 64), 100, dtype=torch.uint8)
    mse = float(((a.double() - (a + 8).double()) ** 2).mean())
    assert 10 * np.log10(255**2 / mse) < BOUNDS["colour off"]
