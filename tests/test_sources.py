"""Several source images: the source slot of the sampler, batched and per sample."""

from __future__ import annotations

import numpy as np
import pytest

from single_image_dataset import AugmentConfig, sample_params, sample_params_batch, sampling

pytestmark = pytest.mark.filterwarnings("error")

SIZES = [(600, 400), (1000, 872), (300, 900), (2400, 1600)]


@pytest.fixture(params=["native", "numpy"])
def sampler_impl(request, monkeypatch):
    """The batched sampler with the C extension, and without it."""
    if request.param == "native":
        if sampling._native_sample_batch is None:
            pytest.fail("the C extension is not built; `python setup.py build_ext --inplace` builds it")
    else:
        monkeypatch.setattr(sampling, "_native_sample_batch", None)
        monkeypatch.setattr(sampling, "_native_uniforms", None)
    return request.param


class TestSourceSlot:
    def test_one_source_list_is_the_single_image_stream(self):
        config = AugmentConfig(randinterp=True, vflip=True)
        for i in range(300):
            single = sample_params(config, (600, 400), i, epoch=1)
            assert sample_params(config, [(600, 400)], i, epoch=1) == single
            assert single.source == 0 and "source" not in single.to_dict()

    @pytest.mark.parametrize("config", [AugmentConfig(), AugmentConfig(cropfirst=False, jitter_p=1.0, vflip=True)])
    def test_batch_equals_per_sample(self, config, sampler_impl):
        indices = np.arange(0, 9000, 3) if sampler_impl == "native" else np.arange(0, 1500, 3)
        expected = [sample_params(config, SIZES, int(i), epoch=2) for i in indices]
        batch = sample_params_batch(config, SIZES, indices, epoch=2)
        assert batch.to_list() == expected
        assert sample_params_batch(config, SIZES[:1], indices[:50]).to_list() == [
            sample_params(config, SIZES[0], int(i)) for i in indices[:50]
        ]

    def test_crops_fit_their_own_source(self):
        config = AugmentConfig(cropfirst=False)
        for p in sample_params_batch(config, SIZES, range(2000)).to_list():
            width, height = SIZES[p.source]
            top, left, h, w = p.resized_crop
            assert 0 <= top and top + h <= height and 0 <= left and left + w <= width

    def test_source_is_uniform_and_reproducible(self):
        # Chi-square with 3 degrees of freedom; 16.27 is its 99.9 % quantile.
        sources = sample_params_batch(AugmentConfig(), SIZES, range(20_000)).source
        counts = np.bincount(sources, minlength=len(SIZES))
        expected = len(sources) / len(SIZES)
        assert ((counts - expected) ** 2 / expected).sum() < 16.27
        again = sample_params_batch(AugmentConfig(), SIZES, range(20_000)).source
        assert np.array_equal(sources, again)
        assert not np.array_equal(sources, sample_params_batch(AugmentConfig(seed=1), SIZES, range(20_000)).source)

    def test_record_round_trip_with_source(self):
        p = sample_params(AugmentConfig(), SIZES, 5)
        assert p.source != 0 or sample_params(AugmentConfig(), SIZES, 6).source != 0
        for i in range(20):
            q = sample_params(AugmentConfig(), SIZES, i)
            assert type(q).from_dict(q.to_dict()) == q

    @pytest.mark.parametrize("bad", [[], [(600,)], [(600, 0)], [(600.0, 400)]])
    def test_bad_sizes(self, bad):
        with pytest.raises(ValueError, match="source"):
            sample_params(AugmentConfig(), bad, 0)
