"""The sampler: distributions equal to torchvision's transforms, purity, independence, golden stream."""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ks_statistic
from PIL import Image
from torchvision import transforms as T

from single_image_dataset import AugmentConfig, SampleParams, sample_params, sampling
from single_image_dataset.crops import fit_probability
from single_image_dataset.params import INTERPOLATIONS

pytestmark = pytest.mark.filterwarnings("error")

N = 2000
HUBBLE_SIZE = (1000, 872)
GOLDEN = Path(__file__).parent / "expect" / "params_seed0.json"
REGENERATE = "SID_REGENERATE_GOLDEN"


def _draw(config: AugmentConfig, n: int = N, size: tuple[int, int] = HUBBLE_SIZE) -> list[SampleParams]:
    return [sample_params(config, size, i) for i in range(n)]


# For n = m = 4000 the KS statistic exceeds 0.044 with probability 0.001 under equal distributions.
N_KS = 4000
KS_LIMIT = 0.05


@pytest.fixture(scope="module")
def default_params() -> list[SampleParams]:
    return _draw(AugmentConfig(vflip=True, randinterp=True))


class TestRanges:
    def test_initial_crop(self, default_params):
        side = int(0.5 * min(HUBBLE_SIZE))
        tops = np.array([p.crop[0] for p in default_params])
        lefts = np.array([p.crop[1] for p in default_params])
        assert all(p.crop[2:] == (side, side) for p in default_params)
        assert tops.min() >= 0 and tops.max() <= HUBBLE_SIZE[1] - side
        assert lefts.min() >= 0 and lefts.max() <= HUBBLE_SIZE[0] - side
        # Uniform positions: mean near the middle, and both ends reached.
        assert abs(tops.mean() / (HUBBLE_SIZE[1] - side) - 0.5) < 0.03
        assert abs(lefts.mean() / (HUBBLE_SIZE[0] - side) - 0.5) < 0.03
        assert tops.min() < 10 and tops.max() > HUBBLE_SIZE[1] - side - 10

    def test_resized_crop_box_inside_region(self, default_params):
        for p in default_params:
            top, left, h, w = p.resized_crop
            side = p.crop[2]
            assert 0 < h <= side and 0 < w <= side and 0 <= top <= side - h and 0 <= left <= side - w

    def test_area_fraction_and_aspect(self, default_params):
        side = default_params[0].crop[2]
        fraction = np.array([p.resized_crop[2] * p.resized_crop[3] / side**2 for p in default_params])
        aspect = np.log([p.resized_crop[3] / p.resized_crop[2] for p in default_params])
        assert fraction.min() < 0.01 and fraction.max() <= 1
        # Accepted fractions: U(0.002, 1) minus the large boxes that do not fit.
        assert 0.40 < fraction.mean() < 0.50
        assert np.abs(aspect).max() <= math.log(4 / 3) + 0.05  # + rounding of small boxes

    def test_angle_shear_flip_interp(self, default_params):
        angle = np.array([p.angle for p in default_params])
        shear = np.array([p.shear for p in default_params])
        assert all(p.warp == "affine" for p in default_params)
        assert angle.min() >= -30 and angle.max() <= 30 and abs(angle.mean()) < 1.5
        assert abs(angle.std() - 60 / math.sqrt(12)) < 1.0  # std of U(-30, 30)
        assert shear[:, 0].min() >= -30 and shear[:, 0].max() <= 30 and abs(shear[:, 0].mean()) < 1.5
        assert np.all(shear[:, 1] == 0)
        flips = np.mean([p.vflip for p in default_params])
        assert abs(flips - 0.5) < 0.05
        counts = {name: sum(p.interpolation == name for p in default_params) for name in INTERPOLATIONS}
        assert all(abs(c / N - 1 / 3) < 0.05 for c in counts.values()), counts

    def test_jitter(self, default_params):
        jitters = [p.jitter for p in default_params if p.jitter is not None]
        assert abs(len(jitters) / N - 0.5) < 0.05
        bounds = (("brightness", 0.6, 1.4), ("contrast", 0.6, 1.4), ("saturation", 0.6, 1.4), ("hue", -0.1, 0.1))
        for name, lo, hi in bounds:
            values = np.array([getattr(j, name) for j in jitters])
            assert values.min() >= lo and values.max() <= hi
            assert abs(values.mean() - (lo + hi) / 2) < 0.03 * (hi - lo)
        orders = {j.order for j in jitters}
        assert orders == set(itertools.permutations(("brightness", "contrast", "saturation", "hue")))

    def test_no_flip_no_randinterp_by_default(self):
        params = _draw(AugmentConfig(), n=200)
        assert not any(p.vflip for p in params)
        assert {p.interpolation for p in params} == {"bicubic"}

    def test_rotation_only_and_no_warp(self):
        rot = _draw(AugmentConfig(shear=0, deg=10), n=200)
        assert {p.warp for p in rot} == {"rotate"} and all(-10 <= p.angle <= 10 for p in rot)
        assert all(p.shear == (0.0, 0.0) for p in rot)
        none = _draw(AugmentConfig(shear=0, deg=0), n=20)
        assert {(p.warp, p.angle) for p in none} == {(None, 0.0)}

    def test_disabled_jitter_component_is_skipped(self):
        params = _draw(AugmentConfig(jitter=(0.4, 0.0, 0.4, 0.0), jitter_p=1.0), n=100)
        for p in params:
            assert p.jitter.contrast is None and p.jitter.hue is None
            assert set(p.jitter.order) == {"brightness", "saturation"}

    def test_debug_replaces_jitter(self):
        params = _draw(AugmentConfig(debug=True, jitter_p=1.0), n=50)
        assert all(p.jitter is None and p.debug_size == 32 for p in params)

    def test_no_cropfirst_uses_whole_source(self):
        params = _draw(AugmentConfig(cropfirst=False), n=300)
        assert all(p.crop is None for p in params)
        assert max(p.resized_crop[3] for p in params) > 500  # boxes span the 1000 px source


@pytest.fixture(scope="module")
def ours() -> list[SampleParams]:
    return _draw(AugmentConfig(cropfirst=False, jitter_p=1.0), n=N_KS, size=(436, 436))


class TestMatchesTorchvision:
    """Each parameter's distribution equals that of torchvision's own ``get_params`` (two-sample KS)."""

    def test_resized_crop(self, ours):
        with torch.random.fork_rng():
            torch.manual_seed(0)
            img = Image.new("RGB", (436, 436))
            theirs = [T.RandomResizedCrop.get_params(img, [1 / 500, 1.0], [3 / 4, 4 / 3]) for _ in range(N_KS)]
        for k in range(4):  # top, left, height, width
            a = np.array([p.resized_crop[k] for p in ours], dtype=float)
            b = np.array([t[k] for t in theirs], dtype=float)
            assert ks_statistic(a, b) < KS_LIMIT, k

    def test_affine(self, ours):
        with torch.random.fork_rng():
            torch.manual_seed(0)
            theirs = [
                T.RandomAffine.get_params([-30.0, 30.0], None, None, [-30.0, 30.0], [436, 436]) for _ in range(N_KS)
            ]
        assert ks_statistic(np.array([p.angle for p in ours]), np.array([t[0] for t in theirs])) < KS_LIMIT
        assert ks_statistic(np.array([p.shear[0] for p in ours]), np.array([t[3][0] for t in theirs])) < KS_LIMIT

    def test_color_jitter(self, ours):
        with torch.random.fork_rng():
            torch.manual_seed(0)
            theirs = [T.ColorJitter.get_params([0.6, 1.4], [0.6, 1.4], [0.6, 1.4], [-0.1, 0.1]) for _ in range(N_KS)]
        for k, name in enumerate(("brightness", "contrast", "saturation", "hue"), start=1):
            a = np.array([getattr(p.jitter, name) for p in ours])
            b = np.array([t[k] for t in theirs])
            assert ks_statistic(a, b) < KS_LIMIT, name
        # Position of each op in the order: uniform over 0..3 in both.
        names = ("brightness", "contrast", "saturation", "hue")
        for k, name in enumerate(names):
            a = np.array([p.jitter.order.index(name) for p in ours], dtype=float)
            b = np.array([list(t[0]).index(k) for t in theirs], dtype=float)
            assert ks_statistic(a, b) < KS_LIMIT, name


class TestPurity:
    def test_same_params_every_call(self):
        cfg = AugmentConfig()
        assert sample_params(cfg, HUBBLE_SIZE, 5) == sample_params(cfg, HUBBLE_SIZE, 5)

    def test_global_rng_neither_read_nor_changed(self):
        import random

        cfg = AugmentConfig()
        before = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state())
        reference = sample_params(cfg, HUBBLE_SIZE, 11)
        random.seed(123)
        np.random.seed(123)
        torch.manual_seed(123)
        states = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state())
        assert sample_params(cfg, HUBBLE_SIZE, 11) == reference
        assert random.getstate() == states[0]
        assert np.array_equal(np.random.get_state()[1], states[1])
        assert torch.equal(torch.get_rng_state(), states[2])
        assert before[0] != states[0]  # the reseed above did change them, so the checks can fail

    def test_indices_seeds_epochs_differ(self):
        cfg = AugmentConfig()
        base = sample_params(cfg, HUBBLE_SIZE, 0)
        assert sample_params(cfg, HUBBLE_SIZE, 1) != base
        assert sample_params(cfg.replace(seed=1), HUBBLE_SIZE, 0) != base
        assert sample_params(cfg, HUBBLE_SIZE, 0, epoch=1) != base
        distinct = {sample_params(cfg, HUBBLE_SIZE, i).resized_crop for i in range(500)}
        assert len(distinct) > 490

    def test_seed_index_epoch_do_not_alias(self):
        # (seed, epoch, index) is hashed as a tuple: no offset arithmetic that would make (0, 1) == (1, 0).
        cfg0, cfg1 = AugmentConfig(seed=0), AugmentConfig(seed=1)
        assert sample_params(cfg0, HUBBLE_SIZE, 1) != sample_params(cfg1, HUBBLE_SIZE, 0)
        assert sample_params(cfg0, HUBBLE_SIZE, 1, epoch=0) != sample_params(cfg0, HUBBLE_SIZE, 0, epoch=1)

    def test_stages_are_independent(self):
        # Switching one augmentation leaves the other stages' parameters unchanged (ablations stay paired).
        base, variant = AugmentConfig(), AugmentConfig(vflip=True, randinterp=True, jitter_p=1.0, shear=10)
        for i in range(50):
            p, q = sample_params(base, HUBBLE_SIZE, i), sample_params(variant, HUBBLE_SIZE, i)
            assert (p.crop, p.resized_crop, p.angle) == (q.crop, q.resized_crop, q.angle)
            if p.jitter is not None:
                assert p.jitter == q.jitter

    def test_to_dict_round_trip_and_json(self):
        p = sample_params(AugmentConfig(jitter_p=1.0), HUBBLE_SIZE, 3)
        d = json.loads(json.dumps(p.to_dict()))
        assert SampleParams.from_dict(d) == p
        assert set(d) >= {"crop", "resized_crop", "interpolation", "angle", "shear", "vflip", "jitter"}
        assert set(d["jitter"]) == {"brightness", "contrast", "saturation", "hue", "order"}


def test_fit_probability():
    assert fit_probability(4096, 4096, (1 / 500, 1.0)) > 0.8
    assert fit_probability(4096, 4096, (2.0, 1.0)) == 0.0  # the original's hang on scale (0.5, 1)
    assert fit_probability(4000, 100, (1 / 500, 1.0)) < 0.05  # elongated source without cropfirst


GOLDEN_CASES = {
    "default": AugmentConfig(),
    "all_knobs": AugmentConfig(vflip=True, randinterp=True, cropfirst=False, shear=0, deg=45, jitter_p=1.0),
    "debug_32px": AugmentConfig(img_size=32, debug=True, seed=0),
}
GOLDEN_INDICES = (0, 1, 2, 999, 123_456, 1_281_166)


def _golden_now() -> dict:
    return {
        name: {str(i): sample_params(cfg, HUBBLE_SIZE, i).to_dict() for i in GOLDEN_INDICES}
        for name, cfg in GOLDEN_CASES.items()
    }


def test_golden_parameters():
    """The random stream under seed 0 is frozen: any change to it must be deliberate."""
    now = _golden_now()
    if os.environ.get(REGENERATE) == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
    expected = json.loads(GOLDEN.read_text())
    assert now == expected, (
        f"sampled parameters differ from {GOLDEN.name}: the random stream changed. If that is intended "
        f"(it changes every dataset generated so far), regenerate with {REGENERATE}=1 pytest {__file__}"
    )


class TestUniformStream:
    """The native stream must be numpy's, bit for bit, or every sample would change with the build."""

    def test_the_extension_is_built_where_a_compiler_is(self):
        if sampling._native_uniforms is None:
            assert not any(shutil.which(cc) for cc in ("cc", "gcc", "clang")), "a C compiler is here but no _uniforms"

    ENTROPIES = [
        (0, 0, 0),
        (0, 0, 1_281_166),
        (2**63 - 1, 7, 123_456),
        (2**32, 2**32 - 1, 2**64 - 1),  # integers of one and two 32-bit words
        (5,),
        (),
        (1, 2, 3, 4, 5, 6, 7, 8),  # more words than the pool
    ]

    @staticmethod
    def _numpy(entropy: tuple[int, ...], n: int) -> list[float]:
        return np.random.default_rng(np.random.SeedSequence(list(entropy))).random(n).tolist()

    @pytest.mark.parametrize("entropy", ENTROPIES)
    def test_native_uniforms_equal_numpy(self, entropy):
        native = pytest.importorskip("single_image_dataset._uniforms", reason="the C extension was not built")
        assert list(native.uniforms(entropy, 100)) == self._numpy(entropy, 100)

    def test_native_uniforms_equal_numpy_on_random_entropy(self):
        native = pytest.importorskip("single_image_dataset._uniforms", reason="the C extension was not built")
        rng = np.random.default_rng(0)
        for _ in range(2000):
            count = int(rng.integers(1, 5))
            words = rng.integers(0, 2**64, size=count, dtype=np.uint64)
            shifts = rng.choice([0, 32, 60], size=count)  # two words, one word, a small integer
            entropy = tuple(int(w) >> int(s) for w, s in zip(words, shifts, strict=True))
            assert list(native.uniforms(entropy, 3)) == self._numpy(entropy, 3), entropy

    def test_native_uniforms_reject_what_they_cannot_hash(self):
        native = pytest.importorskip("single_image_dataset._uniforms", reason="the C extension was not built")
        for bad in [(2**64,), (-1,)]:
            with pytest.raises(OverflowError):
                native.uniforms(bad, 1)
        with pytest.raises(TypeError, match="integers"):
            native.uniforms((1.5,), 1)
        with pytest.raises(ValueError, match="non-negative"):
            native.uniforms((1,), -1)

    @pytest.mark.parametrize("native", [True, False], ids=["native", "numpy"])
    @pytest.mark.parametrize("entropy", [(0, 0, 3), (2**63 - 1, 1, 10**18), (0, 0, 2**64 + 5)])
    def test_stream_is_numpys_past_the_native_block(self, native, entropy, monkeypatch):
        if not native:
            monkeypatch.setattr(sampling, "_native_uniforms", None)
        n = sampling._FIRST_DRAW + 150  # into numpy's share of the stream
        assert list(itertools.islice(sampling.uniform_stream(entropy), n)) == self._numpy(entropy, n)

    def test_numpy_integers_draw_what_python_integers_draw(self, monkeypatch):
        cfg = AugmentConfig(seed=7)
        expected = sample_params(cfg, HUBBLE_SIZE, 12, epoch=3)
        assert sample_params(cfg, HUBBLE_SIZE, np.int64(12), epoch=np.uint32(3)) == expected
        monkeypatch.setattr(sampling, "_native_uniforms", None)
        assert sample_params(cfg, HUBBLE_SIZE, np.int64(12), epoch=np.uint32(3)) == expected

    def test_params_are_the_same_without_the_extension(self, monkeypatch):
        cfg = AugmentConfig(jitter_p=1.0, randinterp=True, vflip=True)
        with_native = [sample_params(cfg, HUBBLE_SIZE, i) for i in range(300)]
        monkeypatch.setattr(sampling, "_native_uniforms", None)
        assert [sample_params(cfg, HUBBLE_SIZE, i) for i in range(300)] == with_native


class TestUniformBlocks:
    """Many streams' first uniforms at once (the views' draw): numpy's streams, with or without the extension."""

    # Five- and six-word entropies: the view streams' (seed, epoch, index, tag, view), with integers of two words.
    CASES = [
        ((0, 0), (2**64 - 1, 0)),
        ((7, 3), (2**64 - 1, 5)),
        ((2**63 - 1, 2**40), (2**64 - 1, 1)),
        ((1,), ()),
    ]

    @pytest.mark.parametrize("native", [True, False], ids=["native", "numpy"])
    @pytest.mark.parametrize("prefix, suffix", CASES)
    def test_rows_are_numpys_streams(self, native, prefix, suffix, monkeypatch):
        if not native:
            monkeypatch.setattr(sampling, "_native_stream_blocks", None)
        indices = np.array([0, 1, 2**32, 2**63 - 1, 12], dtype=np.int64)
        rows = sampling.uniform_blocks(prefix, indices, suffix, 60)
        for k, i in enumerate(indices.tolist()):
            entropy = [*prefix, i, *suffix]
            assert rows[k].tolist() == np.random.default_rng(np.random.SeedSequence(entropy)).random(60).tolist()

    def test_a_zero_fifth_word_is_not_padding(self):
        """SeedSequence pads entropy to four words with zeros; a fifth word of 0 still changes the stream."""
        four = sampling.uniform_blocks((0, 0), np.array([3]), (2**64 - 1,), 4)
        five = sampling.uniform_blocks((0, 0), np.array([3]), (2**64 - 1, 0), 4)
        assert four.tolist() != five.tolist()

    def test_wide_integers_go_to_numpy(self):
        rows = sampling.uniform_blocks((2**64 + 1, 0), np.array([5]), (), 3)
        assert rows[0].tolist() == np.random.default_rng(np.random.SeedSequence([2**64 + 1, 0, 5])).random(3).tolist()

    @pytest.mark.parametrize(
        "args, error, message",
        [
            (((1,) * 7, np.arange(2), (1,), 2, np.empty(4)), OverflowError, "at most 0 integers in suffix"),
            (((1.5,), np.arange(2), (), 2, np.empty(4)), TypeError, "prefix should be a sequence of integers"),
            (((1,), np.array([1, -2]), (), 2, np.empty(4)), ValueError, "indices should be non-negative, got -2"),
            (((1,), np.arange(2, dtype=np.int32), (), 2, np.empty(4)), TypeError, "indices has item format 'i'"),
            (((1,), np.arange(2), (), 2, np.empty(3)), ValueError, "out holds 24 bytes, expected 32"),
            (((1,), np.arange(2), (), -1, np.empty(0)), ValueError, "block should be non-negative"),
        ],
    )
    def test_bad_arguments(self, args, error, message):
        native = pytest.importorskip("single_image_dataset._uniforms", reason="the C extension was not built")
        with pytest.raises(error, match=f"^stream_blocks: {message}"):
            native.stream_blocks(*args)


class TestNativeSampleBatch:
    """The binding of the batch loop checks every buffer (with the checker the render kernels share)."""

    @staticmethod
    def _args(**changes: object) -> dict[str, object]:
        n, block = 2, 15
        return {
            "indices": np.arange(n, dtype=np.int64), "block": block, "regions": np.array([[436, 436]], dtype=np.int64),
            "uniforms": np.empty((n, block)), "boxes": np.empty((n, 4), dtype=np.int64),
            "sources": np.empty(n, dtype=np.int64), "max_attempts": 10_000, **changes,
        }

    @staticmethod
    def _call(native: object, args: dict[str, object]) -> None:
        native.sample_batch(0, 0, args["indices"], args["block"], args["regions"], (0.002, 1.0),
                            (math.log(3 / 4), math.log(4 / 3)), args["max_attempts"], args["uniforms"], args["boxes"],
                            args["sources"])

    def test_fills_the_buffers_as_the_python_sampler_draws(self):
        native = pytest.importorskip("single_image_dataset._uniforms", reason="the C extension was not built")
        args = self._args()
        self._call(native, args)
        for k in range(2):
            stream = sampling.uniform_stream((0, 0, k))
            assert args["uniforms"][k].tolist() == list(itertools.islice(stream, 15))
            assert tuple(args["boxes"][k]) == sampling.sample_resized_crop(stream, (436, 436), (0.002, 1.0))
        assert args["sources"].tolist() == [0, 0]

    @pytest.mark.parametrize(
        "changes, error, message",
        [
            ({"indices": np.arange(4, dtype=np.int64)[::2]}, TypeError, "indices should be a C-contiguous buffer"),
            ({"indices": np.arange(2, dtype=np.int32)}, TypeError, "indices has item format 'i', expected one of 'ql"),
            ({"uniforms": np.empty((2, 15), dtype=np.float32)}, TypeError, "uniforms has item format 'f'"),
            ({"boxes": np.empty((2, 4), dtype=np.int64)[:, :2]}, TypeError, "boxes should be a C-contiguous writable"),
            ({"sources": np.zeros(2, dtype=np.int64).tobytes()}, TypeError, "sources should be a C-contiguous writ"),
            ({"uniforms": np.empty((2, 14))}, ValueError, "uniforms holds 224 bytes, expected 240"),
            ({"boxes": np.empty((3, 4), dtype=np.int64)}, ValueError, "boxes holds 96 bytes, expected 64"),
            ({"block": 0}, ValueError, "block should be positive"),
            ({"regions": np.array([436], dtype=np.int64)}, ValueError, r"regions should be S x 2 with S >= 1"),
            ({"regions": np.array([[436, 0]], dtype=np.int64)}, ValueError, "every region should be at least 1x1"),
            ({"indices": np.array([7, 3], dtype=np.int64), "max_attempts": 0}, RuntimeError,
             "^no resized-crop box fitted a 436x436 region in 0 attempts for index 7$"),
        ],
    )
    def test_bad_arguments(self, changes: dict, error: type[Exception], message: str) -> None:
        native = pytest.importorskip("single_image_dataset._uniforms", reason="the C extension was not built")
        with pytest.raises(error, match=message if message.startswith("^") else f"^sample_batch: {message}"):
            self._call(native, self._args(**changes))
