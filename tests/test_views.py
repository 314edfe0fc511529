"""Views (issue 17, part 1): the View config and presets, the per-view streams and their draw, the dataset's views
with the reference renderer's oracle, reproducibility, and every error."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as F
from conftest import ks_statistic
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

from single_image_dataset import (
    AugmentConfig,
    JitterParams,
    SingleImageDataset,
    View,
    ViewParams,
    ViewParamsBatch,
    batch_loader,
    materialize,
    preview_grid,
    sample_view_params,
    sample_view_params_batch,
    sampling,
    views,
)
from single_image_dataset.params import JITTER_OPS

pytestmark = pytest.mark.filterwarnings("error")

SMALL = {"num_imgs": 40, "img_size": 32}
GOLDEN = Path(__file__).parent / "expect" / "views_seed0.json"
REGENERATE = "SID_REGENERATE_GOLDEN"
N_KS = 4000
# For n = m = 4000 the KS statistic exceeds 0.044 with probability 0.001 under equal distributions.
KS_LIMIT = 0.05
SIMCLR_64 = View(size=64, jitter=(0.8, 0.8, 0.8, 0.2), blur_p=0.5, solarize_p=0.3)


def _expected_view(view: View, side: int, seed: int, epoch: int, index: int, v: int) -> ViewParams:
    """View ``v`` of sample ``index`` written out from its stream and torchvision's ``get_params`` algorithms, one
    step per slot of the block, without the library's vectorised code."""
    u = np.random.default_rng(np.random.SeedSequence([seed, epoch, index, 2**64 - 1, v])).random(54).tolist()

    def between(x: float, lo: float, hi: float) -> float:
        return lo + (hi - lo) * x

    crop = None
    log_ratio = (math.log(view.ratio[0]), math.log(view.ratio[1]))
    for attempt in range(10):  # RandomResizedCrop.get_params
        u_area, u_ratio, u_top, u_left = u[4 * attempt: 4 * attempt + 4]
        target_area = side * side * between(u_area, *view.scale)
        aspect = math.exp(between(u_ratio, *log_ratio))
        w, h = round(math.sqrt(target_area * aspect)), round(math.sqrt(target_area / aspect))
        if 0 < w <= side and 0 < h <= side:
            crop = (min(int(u_top * (side - h + 1)), side - h), min(int(u_left * (side - w + 1)), side - w), h, w)
            break
    if crop is None:  # the centre fallback of a square
        w = h = side
        if 1.0 < min(view.ratio):
            h = round(w / min(view.ratio))
        elif 1.0 > max(view.ratio):
            w = round(h * max(view.ratio))
        crop = ((side - h) // 2, (side - w) // 2, h, w)
    jitter = None
    if u[41] < view.jitter_p:  # ColorJitter.get_params: a factor per op and a random order
        factors = {}
        for k, (name, strength) in enumerate(zip(JITTER_OPS, view.jitter, strict=True)):
            if strength == 0:
                factors[name] = None
            elif name == "hue":
                factors[name] = between(u[42 + k], -strength, strength)
            else:
                factors[name] = between(u[42 + k], max(0.0, 1 - strength), 1 + strength)
        ranked = [JITTER_OPS[k] for k in sorted(range(4), key=lambda k: u[46 + k])]
        jitter = JitterParams(**factors, order=tuple(name for name in ranked if factors[name] is not None))
    return ViewParams(
        crop=crop,
        size=view.size,
        hflip=u[40] < view.hflip_p,
        jitter=jitter,
        grayscale=u[50] < view.grayscale_p,
        blur_sigma=between(u[52], *view.blur_sigma) if u[51] < view.blur_p else None,
        blur_kernel=2 * (view.size // 20) + 1,
        solarize=u[53] < view.solarize_p,
    )


def _oracle_view(sample: Image.Image, p: ViewParams) -> Image.Image:
    """A view by hand, with torchvision's transform classes where they take fixed parameters."""
    img = F.resized_crop(sample, *p.crop, [p.size, p.size], interpolation=InterpolationMode.BILINEAR, antialias=True)
    if p.hflip:
        img = T.RandomHorizontalFlip(p=1.0)(img)
    if p.jitter is not None:
        for name, factor in p.jitter.ops():
            img = getattr(F, f"adjust_{name}")(img, factor)
    if p.grayscale:
        img = T.Grayscale(num_output_channels=3)(img)
    if p.blur_sigma is not None:
        img = F.gaussian_blur(img, [p.blur_kernel, p.blur_kernel], [p.blur_sigma, p.blur_sigma])
    if p.solarize:
        img = T.RandomSolarize(128, p=1.0)(img)
    return img


def _draw(view: View, n: int = N_KS, side: int = 64) -> ViewParamsBatch:
    return sample_view_params_batch(AugmentConfig(img_size=side), [view], np.arange(n))[0]


def _as_tensors(items: list) -> list[torch.Tensor]:
    """The views of ``__getitems__``'s or ``ds[i]``'s samples, stacked per view."""
    return [torch.stack([views_of[v] for views_of, _ in items]) for v in range(len(items[0][0]))]


class TestViewConfig:
    def test_defaults_are_the_issues(self):
        view = View(size=224)
        assert (view.scale, view.ratio, view.hflip_p, view.jitter, view.jitter_p) == (
            (0.08, 1.0), (3 / 4, 4 / 3), 0.5, (0.4, 0.4, 0.2, 0.1), 0.8)
        assert (view.grayscale_p, view.blur_p, view.blur_sigma, view.solarize_p) == (0.2, 0.0, (0.1, 2.0), 0.0)
        assert view.area_range == view.scale

    @pytest.mark.parametrize("size, kernel", [(224, 23), (96, 9), (64, 7), (32, 3), (19, 1), (1, 1)])
    def test_blur_kernel_is_simclrs_tenth_of_the_side(self, size, kernel):
        assert View(size=size).blur_kernel == kernel

    def test_dict_and_toml_round_trip(self, tmp_path):
        view = View(size=96, scale=(0.05, 0.4), jitter=(0.4, 0.4, 0.2, 0.1), blur_p=0.5, solarize_p=0.2)
        assert View.from_dict(json.loads(json.dumps(view.to_dict()))) == view
        path = tmp_path / "view.toml"
        path.write_text(view.to_toml())
        assert View.from_toml(path) == view
        assert View.from_toml(path, size=64) == view.replace(size=64)
        assert View.from_dict({"size": 32, "scale": [0.2, 1]}) == View(size=32, scale=(0.2, 1.0))

    @pytest.mark.parametrize(
        "changes, error, message",
        [
            ({"size": 0}, ValueError, r"^size should be in \[1, 8192\] pixels, got 0$"),
            ({"size": 8193}, ValueError, r"^size should be in \[1, 8192\] pixels, got 8193$"),
            ({"size": 64.0}, TypeError, r"^size should be an integer, got 64.0$"),
            ({"size": True}, TypeError, r"^size should be an integer, got True$"),
            ({"scale": (0.0, 1.0)}, ValueError, r"^scale should be two area fractions with 0 < scale\[0\]"),
            ({"scale": (0.5, 0.2)}, ValueError, r"^scale should be two area fractions .*got \(0.5, 0.2\)$"),
            ({"scale": (0.5, 1.5)}, ValueError, r"^scale should be two area fractions .*got \(0.5, 1.5\)$"),
            ({"scale": (math.nan, 1.0)}, ValueError, r"^scale should be two area fractions"),
            ({"scale": (0.5,)}, TypeError, r"^scale should be a sequence of 2 numbers, got \(0.5,\)$"),
            ({"ratio": (0.0, 1.0)}, ValueError, r"^ratio should be two aspect ratios with 0 < ratio\[0\] <= ratio"),
            ({"ratio": (2.0, 1.0)}, ValueError, r"^ratio should be two aspect ratios .*got \(2.0, 1.0\)$"),
            ({"ratio": (1.0, math.inf)}, ValueError, r"^ratio should be two aspect ratios"),
            ({"ratio": "wide"}, TypeError, r"^ratio should be a sequence of 2 numbers, got 'wide'$"),
            ({"hflip_p": 1.5}, ValueError, r"^hflip_p should be a probability in \[0, 1\], got 1.5$"),
            ({"jitter_p": -0.1}, ValueError, r"^jitter_p should be a probability in \[0, 1\], got -0.1$"),
            ({"grayscale_p": 2}, ValueError, r"^grayscale_p should be a probability in \[0, 1\], got 2$"),
            ({"blur_p": math.nan}, ValueError, r"^blur_p should be a probability in \[0, 1\], got nan$"),
            ({"solarize_p": 1.01}, ValueError, r"^solarize_p should be a probability in \[0, 1\], got 1.01$"),
            ({"hflip_p": "0.5"}, TypeError, r"^hflip_p should be a number, got '0.5'$"),
            ({"jitter": (-0.1, 0, 0, 0)}, ValueError, r"^jitter brightness should be a non-negative number, got -0.1$"),
            ({"jitter": (0, 0, math.inf, 0)}, ValueError, r"^jitter saturation should be a non-negative number"),
            ({"jitter": (0, 0, 0, 0.6)}, ValueError, r"^jitter hue should be in \[0, 0.5\], got 0.6$"),
            ({"jitter": (0.4, 0.4, 0.2)}, TypeError, r"^jitter should be a sequence of 4 numbers"),
            ({"blur_sigma": (0.0, 2.0)}, ValueError, r"^blur_sigma should be two sigmas in pixels with 0 < blur_sigma"),
            ({"blur_sigma": (2.0, 1.0)}, ValueError, r"^blur_sigma should be two sigmas .*got \(2.0, 1.0\)$"),
            ({"blur_sigma": (0.1, math.inf)}, ValueError, r"^blur_sigma should be two sigmas"),
        ],
    )
    def test_every_bad_field_is_one_clear_error(self, changes, error, message):
        with pytest.raises(error, match=message):
            View(**{"size": 64, **changes})
        with pytest.raises(error, match=message):
            View(size=64).replace(**changes)

    def test_unknown_and_missing_keys(self, tmp_path):
        with pytest.raises(ValueError, match=r"^unknown key 'flip' in config; valid keys are: size, scale, ratio"):
            View.from_dict({"size": 64, "flip": 0.5})
        with pytest.raises(TypeError, match=r"missing 1 required positional argument: 'size'"):
            View.from_dict({"scale": [0.2, 1.0]})
        with pytest.raises(TypeError, match=r"^unknown key 'sise' in View.replace\(\)"):
            View(size=64).replace(sise=32)
        path = tmp_path / "bad.toml"
        path.write_text("size = 64\nblur_p = 2.0\n")
        with pytest.raises(ValueError, match=r"^config file .*bad\.toml: blur_p should be a probability"):
            View.from_toml(path)

    def test_frozen_and_hashable(self):
        view = View(size=32)
        with pytest.raises(dataclasses.FrozenInstanceError):
            view.size = 64  # type: ignore[misc]
        assert len({view, View(size=32), View(size=32, blur_p=0.5)}) == 2


class TestPresets:
    """Each preset holds its paper's figures (see :func:`views.preset` for the sources), written out here."""

    def test_simclr(self):
        assert views.preset("simclr") == (View(
            size=224, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), hflip_p=0.5, jitter=(0.8, 0.8, 0.8, 0.2), jitter_p=0.8,
            grayscale_p=0.2, blur_p=0.5, blur_sigma=(0.1, 2.0), solarize_p=0.0),) * 2

    def test_moco_v2(self):
        assert views.preset("moco_v2") == (View(
            size=224, scale=(0.2, 1.0), hflip_p=0.5, jitter=(0.4, 0.4, 0.4, 0.1), jitter_p=0.8, grayscale_p=0.2,
            blur_p=0.5, blur_sigma=(0.1, 2.0), solarize_p=0.0),) * 2

    def test_byol_is_asymmetric(self):
        common = {"size": 224, "scale": (0.08, 1.0), "hflip_p": 0.5, "jitter": (0.4, 0.4, 0.2, 0.1), "jitter_p": 0.8,
                  "grayscale_p": 0.2, "blur_sigma": (0.1, 2.0)}
        assert views.preset("byol") == (View(**common, blur_p=1.0, solarize_p=0.0),
                                        View(**common, blur_p=0.1, solarize_p=0.2))
        assert views.preset("byol")[0].blur_kernel == 23  # BYOL's 23 x 23 kernel at 224 px

    def test_dino_global_and_local_crops(self):
        common = {"hflip_p": 0.5, "jitter": (0.4, 0.4, 0.2, 0.1), "jitter_p": 0.8, "grayscale_p": 0.2}
        first, second, *local = views.preset("dino")
        assert first == View(size=224, scale=(0.4, 1.0), blur_p=1.0, solarize_p=0.0, **common)
        assert second == View(size=224, scale=(0.4, 1.0), blur_p=0.1, solarize_p=0.2, **common)
        assert local == [View(size=96, scale=(0.05, 0.4), blur_p=0.5, solarize_p=0.0, **common)] * 6

    def test_sizes(self):
        assert [v.size for v in views.preset("dino", size=64)] == [64, 64] + [27] * 6  # 96/224 of the global side
        assert [v.size for v in views.preset("dino", size=256, local_size=112, local_crops=8)] == [256, 256] + [112] * 8
        assert views.preset("dino", size=32, local_crops=0) == views.preset("dino", size=32)[:2]
        assert [v.size for v in views.preset("moco_v2", size=128)] == [128, 128]
        ds = SingleImageDataset(views="byol", **SMALL)
        assert ds.views == views.preset("byol", size=32)
        debug = SingleImageDataset(views="simclr", num_imgs=4, img_size=64, debug=True)
        assert [v.size for v in debug.views] == [32, 32]  # debug mode renders 32 px samples

    def test_errors(self):
        with pytest.raises(ValueError, match=r"^unknown views preset 'swav'; presets: 'simclr', 'moco_v2', 'byol', "
                                             r"'dino'$"):
            views.preset("swav")
        with pytest.raises(ValueError, match=r"^unknown views preset 'SimCLR'; presets: 'simclr'"):
            SingleImageDataset(views="SimCLR", **SMALL)
        with pytest.raises(ValueError, match=r"^local_size and local_crops apply to the 'dino' preset only, not to "
                                             r"'byol'$"):
            views.preset("byol", local_crops=4)
        with pytest.raises(ValueError, match=r"^local_crops should be a non-negative integer, got -1$"):
            views.preset("dino", local_crops=-1)
        with pytest.raises(ValueError, match=r"^size should be in \[1, 8192\] pixels, got 0$"):
            views.preset("simclr", size=0)


class TestDraw:
    """The view parameters: their stream and block, torchvision's distributions, batch independence."""

    @pytest.mark.parametrize("view, side", [
        (SIMCLR_64, 64),
        (View(size=24, scale=(0.2, 1.0), ratio=(3.0, 4.0), hflip_p=0.3, jitter=(0.0, 0.5, 0.0, 0.3)), 32),
        (View(size=5, scale=(0.5, 1.0), ratio=(0.25, 0.5), jitter_p=1.0, blur_p=1.0), 5),
    ], ids=["simclr", "elongated", "tiny-tall"])
    def test_each_slot_is_torchvisions_draw_from_the_views_stream(self, view, side):
        cfg = AugmentConfig(img_size=side, seed=7)
        drawn = sample_view_params_batch(cfg, [view, view], np.arange(300), epoch=2)
        for v in range(2):
            expected = [_expected_view(view, side, 7, 2, i, v) for i in range(300)]
            assert drawn[v].to_list() == expected

    def test_batched_rows_are_the_per_sample_draws(self):
        cfg = AugmentConfig(img_size=64, seed=3)
        pair = views.preset("dino", size=64)
        indices = np.array([99, 0, 5, 5, 2**40, 17])
        batches = sample_view_params_batch(cfg, pair, indices, epoch=1)
        for k, i in enumerate(indices.tolist()):
            assert [b[k] for b in batches] == sample_view_params(cfg, pair, i, epoch=1)
        assert [b[2:4].to_list() for b in batches] == [b.to_list() for b in sample_view_params_batch(cfg, pair, [5, 5],
                                                                                                       epoch=1)]

    def test_the_same_without_the_extension(self, monkeypatch):
        cfg = AugmentConfig(img_size=64)
        with_native = [b.to_list() for b in sample_view_params_batch(cfg, views.preset("byol", 64), range(50))]
        monkeypatch.setattr(sampling, "_native_stream_blocks", None)
        assert [b.to_list() for b in sample_view_params_batch(cfg, views.preset("byol", 64), range(50))] == with_native

    def test_crop_area_and_aspect_match_random_resized_crop(self):
        for scale, ratio in [((0.08, 1.0), (3 / 4, 4 / 3)), ((0.05, 0.4), (0.5, 2.0))]:
            ours = _draw(View(size=32, scale=scale, ratio=ratio))
            with torch.random.fork_rng():
                torch.manual_seed(0)
                image = torch.zeros(3, 64, 64)
                theirs = np.array([T.RandomResizedCrop.get_params(image, list(scale), list(ratio))
                                   for _ in range(N_KS)], dtype=float)
            top, left, h, w = ours.crop.T.astype(float)
            assert ks_statistic(h * w / 64**2, theirs[:, 2] * theirs[:, 3] / 64**2) < KS_LIMIT, scale
            assert ks_statistic(np.log(w / h), np.log(theirs[:, 3] / theirs[:, 2])) < KS_LIMIT, scale
            assert ks_statistic(top, theirs[:, 0]) < KS_LIMIT and ks_statistic(left, theirs[:, 1]) < KS_LIMIT

    @pytest.mark.parametrize("side, scale, ratio", [(64, (0.2, 1.0), (3.0, 4.0)), (5, (0.5, 1.0), (2.0, 3.0))],
                             ids=["elongated", "tiny"])
    def test_the_fallback_comes_as_often_as_torchvisions(self, side, scale, ratio):
        cfg = AugmentConfig(img_size=side)
        ours = sample_view_params_batch(cfg, [View(size=side, scale=scale, ratio=ratio)], np.arange(N_KS))[0].crop
        with torch.random.fork_rng():
            torch.manual_seed(1)
            image = torch.zeros(3, side, side)
            theirs = np.array([T.RandomResizedCrop.get_params(image, list(scale), list(ratio)) for _ in range(N_KS)])
        h = round(side / ratio[0])
        fallback = np.array([(side - h) // 2, 0, h, side])
        ours_rate, theirs_rate = (ours == fallback).all(1).mean(), (theirs == fallback).all(1).mean()
        assert 0.05 < theirs_rate < 0.95  # the case exercises the fallback
        spread = math.sqrt(2 * theirs_rate * (1 - theirs_rate) / N_KS)
        assert abs(ours_rate - theirs_rate) < 4.5 * spread, (ours_rate, theirs_rate)
        for k in range(4):
            assert ks_statistic(ours[:, k].astype(float), theirs[:, k].astype(float)) < KS_LIMIT, k

    def test_colour_jitter_factors_and_order_match_color_jitter(self):
        ours = _draw(View(size=32, jitter=(0.8, 0.8, 0.8, 0.2), jitter_p=1.0))
        with torch.random.fork_rng():
            torch.manual_seed(0)
            theirs = [T.ColorJitter.get_params([0.2, 1.8], [0.2, 1.8], [0.2, 1.8], [-0.2, 0.2]) for _ in range(N_KS)]
        records = ours.to_list()
        for k, name in enumerate(JITTER_OPS):
            a = np.array([getattr(p.jitter, name) for p in records])
            assert ks_statistic(a, np.array([t[k + 1] for t in theirs])) < KS_LIMIT, name
            position = np.array([p.jitter.order.index(name) for p in records], dtype=float)
            assert ks_statistic(position, np.array([list(t[0]).index(k) for t in theirs], dtype=float)) < KS_LIMIT
        # The order is a uniformly random permutation: all 24 orders, each about 1/24 of the time.
        counts = np.unique([p.jitter.order for p in records], axis=0, return_counts=True)[1]
        assert len(counts) == 24 and abs(counts / N_KS - 1 / 24).max() < 4.5 * math.sqrt((1 / 24) * (23 / 24) / N_KS)

    def test_blur_sigma_matches_gaussian_blur(self):
        ours = _draw(View(size=32, blur_p=1.0, blur_sigma=(0.1, 2.0))).blur_sigma
        with torch.random.fork_rng():
            torch.manual_seed(0)
            theirs = np.array([T.GaussianBlur.get_params(0.1, 2.0) for _ in range(N_KS)])
        assert ks_statistic(ours, theirs) < KS_LIMIT

    def test_probabilities(self):
        view = View(size=32, hflip_p=0.3, jitter_p=0.6, grayscale_p=0.2, blur_p=0.5, solarize_p=0.1)
        drawn = _draw(view)
        for name, rate in [("hflip", drawn.hflip.mean()), ("jitter", drawn.jitter_on.mean()),
                           ("grayscale", drawn.grayscale.mean()), ("blur", (~np.isnan(drawn.blur_sigma)).mean()),
                           ("solarize", drawn.solarize.mean())]:
            p = getattr(view, f"{name}_p")
            assert abs(rate - p) < 4.5 * math.sqrt(p * (1 - p) / N_KS), name
        # Each step has its own slots: the steps are independent of each other.
        both = (drawn.hflip & drawn.grayscale).mean()
        assert abs(both - 0.3 * 0.2) < 4.5 * math.sqrt(0.06 * 0.94 / N_KS)

    def test_skipped_ops_and_zero_probabilities(self):
        drawn = _draw(View(size=32, jitter=(0.4, 0.0, 0.0, 0.1), jitter_p=1.0, hflip_p=0.0, grayscale_p=0.0), 200)
        assert not drawn.hflip.any() and not drawn.grayscale.any() and np.isnan(drawn.blur_sigma).all()
        assert {p.jitter.order for p in drawn.to_list()} == {("brightness", "hue"), ("hue", "brightness")}

    def test_a_view_depends_on_its_own_config_and_position_only(self):
        cfg = AugmentConfig(img_size=64)
        a, b = View(size=64), View(size=32, scale=(0.5, 1.0), blur_p=1.0)
        assert sample_view_params(cfg, [a, b], 4)[0] == sample_view_params(cfg, [a], 4)[0]
        assert sample_view_params(cfg, [a, a], 4)[0] != sample_view_params(cfg, [a, a], 4)[1]
        assert sample_view_params(cfg, [a], 4) != sample_view_params(cfg.replace(seed=1), [a], 4)
        assert sample_view_params(cfg, [a], 4) != sample_view_params(cfg, [a], 4, epoch=1)
        assert sample_view_params(cfg, [a], 4) != sample_view_params(cfg, [a], 5)
        # The config reaches the views through the seed and the sample's side only.
        assert sample_view_params(cfg.replace(deg=0, jitter_p=1.0), [a], 4) == sample_view_params(cfg, [a], 4)

    def test_global_rng_neither_read_nor_changed(self):
        state = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state())
        first = sample_view_params(AugmentConfig(img_size=64), views.preset("dino", 64), 3)
        random.seed(5)
        np.random.seed(5)
        torch.manual_seed(5)
        assert sample_view_params(AugmentConfig(img_size=64), views.preset("dino", 64), 3) == first
        random.setstate(state[0])
        torch.set_rng_state(state[2])

    def test_records_round_trip(self):
        records = _draw(SIMCLR_64, 50).to_list()
        assert [ViewParams.from_dict(json.loads(json.dumps(p.to_dict()))) for p in records] == records
        assert ViewParamsBatch.from_list(records).to_list() == records
        d = records[0].to_dict()
        assert set(d) >= {"crop", "hflip", "jitter", "grayscale", "blur_sigma", "solarize"} and len(d["crop"]) == 4

    def test_batch_record_errors(self):
        records = _draw(SIMCLR_64, 3).to_list()
        with pytest.raises(ValueError, match=r"^a ViewParamsBatch needs at least one ViewParams record"):
            ViewParamsBatch.from_list([])
        with pytest.raises(ValueError, match=r"^the records of a view batch should share size"):
            ViewParamsBatch.from_list([records[0], dataclasses.replace(records[1], size=32)])
        batch = ViewParamsBatch.from_list(records)
        with pytest.raises(ValueError, match=r"^ViewParamsBatch.hflip should be a bool array of shape \(3,\), got"):
            dataclasses.replace(batch, hflip=np.zeros(3))

    def test_golden_view_parameters(self):
        """The views' stream under seed 0 is frozen: any change to it must be deliberate."""
        cfg = AugmentConfig(img_size=256)
        now = {str(i): [p.to_dict() for p in sample_view_params(cfg, views.preset("dino", 224), i)] for i in (0, 7, 99)}
        if os.environ.get(REGENERATE) == "1":
            GOLDEN.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
        assert now == json.loads(GOLDEN.read_text()), (
            f"view parameters differ from {GOLDEN.name}: the views' stream changed. If that is intended (it changes "
            f"every view drawn so far), regenerate with {REGENERATE}=1 pytest {__file__}"
        )


_NEUTRAL = [1.0, 1.0, 1.0, 0.0]  # jitter factors that change nothing
# Hand edits of a view batch and the start of the message validate() gives (the row edited is 1).
VIEW_EDITS = [
    ({"crop": [[0, 0, 8, 8], [0, 40, 32, 25], [0, 0, 8, 8]]}, r"crop\[1\] should be a box \(top, left, height, "
     r"width\) inside the 64 px sample, with height, width >= 1, got \[0, 40, 32, 25\]$"),
    ({"crop": [[0, 0, 8, 8], [-1, 0, 8, 8], [0, 0, 8, 8]]}, r"crop\[1\] should be a box .* got \[-1, 0, 8, 8\]$"),
    ({"crop": [[0, 0, 8, 8], [3, 3, 0, 8], [0, 0, 8, 8]]}, r"crop\[1\] should be a box .* got \[3, 3, 0, 8\]$"),
    ({"jitter_factors": [_NEUTRAL, [1.0, 1.0, 1.0, 0.7], _NEUTRAL]},
     r"jitter_factors\[1\] should be finite factors .* hue in \[-0\.5, 0\.5\], got \[1\.0, 1\.0, 1\.0, 0\.7\]$"),
    ({"jitter_factors": [_NEUTRAL, [-0.1, 1.0, 1.0, 0.0], _NEUTRAL]}, r"jitter_factors\[1\] should be finite "),
    ({"jitter_factors": [_NEUTRAL, [np.inf, 1.0, 1.0, 0.0], _NEUTRAL]}, r"jitter_factors\[1\] should be finite "),
    ({"jitter_order": [[0, 1, 2, 3], [0, 1, 2, 2], [0, 1, 2, 3]]},
     r"jitter_order\[1\] should be each op with a factor once, in the order applied, got \[0, 1, 2, 2\]$"),
    ({"blur_sigma": [1.0, 0.0, 1.0]}, r"blur_sigma\[1\] should be a finite sigma > 0 in pixels \(NaN for no blur\), "
     r"got 0\.0$"),
    ({"blur_sigma": [1.0, np.inf, 1.0]}, r"blur_sigma\[1\] should be a finite sigma > 0 .* got inf$"),
]


class TestViewValidate:
    """ViewParamsBatch.validate: what the sampler draws passes; a hand edit fails with one message naming the row."""

    @staticmethod
    def _batch(**edit: object) -> ViewParamsBatch:
        """Three rows of a 32 px view of 64 px samples with every op on, then ``edit`` (arrays as lists)."""
        view = View(size=32, jitter_p=1.0, blur_p=1.0)
        drawn = sample_view_params_batch(AugmentConfig(img_size=64), [view], [0, 1, 2])[0]
        arrays = {k: np.array(v, dtype=getattr(drawn, k).dtype) for k, v in edit.items()}
        return dataclasses.replace(drawn, **arrays)

    @pytest.mark.parametrize(("edit", "match"), VIEW_EDITS)
    def test_a_hand_edited_row_is_refused_with_one_message(self, edit, match):
        with pytest.raises(ValueError, match=rf"^ViewParamsBatch\.{match}"):
            self._batch(**edit).validate(64)
        self._batch(**edit)[[0, 2]].validate(64)  # the other rows pass

    def test_the_crop_is_checked_against_the_side_given(self):
        batch = self._batch(crop=[[0, 0, 8, 8], [20, 20, 44, 44], [0, 0, 8, 8]])
        batch.validate(64)
        with pytest.raises(ValueError, match=r"^ViewParamsBatch\.size should be an integer in \[1, 16\] \(no view "
                                             r"larger than its sample\), got 32$"):
            batch.validate(16)
        with pytest.raises(ValueError, match=r"^ViewParamsBatch\.crop\[1\] should be a box .* inside the 48 px "):
            batch.validate(48)

    @pytest.mark.parametrize(("edit", "error", "match"), [
        ({"size": 32.0}, TypeError, r"size should be an integer, got 32\.0$"),
        ({"size": 0}, ValueError, r"size should be an integer in \[1, 64\] \(no view larger than its sample\), "
                                  r"got 0$"),
        ({"blur_kernel": 4}, ValueError, r"blur_kernel should be an integer in \[1, 32\] and odd, got 4$"),
        ({"blur_kernel": 33}, ValueError, r"blur_kernel should be an integer in \[1, 32\] and odd, got 33$"),
        ({"blur_kernel": True}, TypeError, r"blur_kernel should be an integer, got True$"),
    ])
    def test_the_shared_fields(self, edit, error, match):
        batch = dataclasses.replace(self._batch(), **edit)
        with pytest.raises(error, match=rf"^ViewParamsBatch\.{match}"):
            batch.validate(64)
        dataclasses.replace(self._batch(), size=np.int64(32), blur_kernel=np.int64(1)).validate(64)

    @pytest.mark.parametrize("chosen", ["simclr", "moco_v2", "byol", "dino", "tiny"])
    @pytest.mark.parametrize("config", [{"img_size": 64}, {"img_size": 64, "debug": True}, {"img_size": 5}])
    def test_what_the_sampler_draws_always_passes(self, chosen, config):
        cfg = AugmentConfig(**config)
        side = sampling.sample_side(cfg)
        chain = [View(size=1, scale=(0.01, 0.02), jitter=(0.9, 0.9, 0.9, 0.5), jitter_p=1.0, blur_p=1.0)] \
            if chosen == "tiny" else views.preset(chosen, size=side)
        for batch in sample_view_params_batch(cfg, chain, range(400)):
            batch.validate(side)


class TestDatasetViews:
    def test_items_are_lists_of_views_and_the_target(self):
        ds = SingleImageDataset(views="dino", **SMALL)
        images, target = ds[3]
        assert target == 0 and [im.size for im in images] == [(32, 32)] * 2 + [(14, 14)] * 6
        assert all(im.mode == "RGB" for im in images)
        tensors, _ = SingleImageDataset(views="dino", output="tensor", **SMALL)[3]
        assert [tuple(t.shape) for t in tensors] == [(3, 32, 32)] * 2 + [(3, 14, 14)] * 6
        assert all(t.dtype == torch.uint8 for t in tensors)
        assert all(torch.equal(F.pil_to_tensor(im), t) for im, t in zip(images, tensors, strict=True))
        labelled = SingleImageDataset(views="byol", target_transform=lambda t: t + 10, **SMALL)
        assert labelled[0][1] == 10 and labelled.__getitems__([0, 1])[1][1] == 10

    @pytest.mark.parametrize("preset", ["simclr", "byol", "dino", "every-op"])
    def test_reference_views_are_the_torchvision_chain_on_the_sample(self, preset):
        """The oracle: view v of sample i is the chain applied by hand to sample i of the dataset without views."""
        chosen = preset if preset != "every-op" else [
            View(size=64, jitter=(0.8, 0.8, 0.8, 0.2), blur_p=0.5, solarize_p=0.5),
            View(size=24, scale=(0.05, 0.4), grayscale_p=0.5, solarize_p=0.5),
        ]
        plain = SingleImageDataset(num_imgs=40, img_size=64, backend="reference")
        ds = SingleImageDataset(num_imgs=40, img_size=64, views=chosen, backend="reference")
        ops_seen = set()
        for i in range(12 if preset != "dino" else 5):
            sample, _ = plain[i]
            images, _ = ds[i]
            for p, image in zip(ds.view_params(i), images, strict=True):
                assert image.tobytes() == _oracle_view(sample, p).tobytes()
                ops_seen |= {name for name in ("hflip", "grayscale", "solarize") if getattr(p, name)}
                ops_seen |= {"jitter"} if p.jitter else set()
                ops_seen |= {"blur"} if p.blur_sigma else set()
        assert ops_seen >= {"hflip", "grayscale", "jitter", "blur"}
        if preset == "every-op":
            assert "solarize" in ops_seen

    def test_views_carry_the_samples_pixels(self):
        """A view whose crop is the whole sample, with no other op, is the sample resized: black fill included."""
        ds = SingleImageDataset(num_imgs=10, img_size=64, deg=45)
        sample = ds[0][0]
        view = ViewParams(crop=(0, 0, 64, 64), size=64, hflip=False, jitter=None, grayscale=False, blur_sigma=None,
                          blur_kernel=7, solarize=False)
        out = ds.render_views(ds.params_batch([0]), [ViewParamsBatch.from_list([view])])[0][0]
        assert torch.equal(out, F.pil_to_tensor(sample))

    def test_params_are_unchanged_by_views(self):
        plain = SingleImageDataset(**SMALL)
        with_views = SingleImageDataset(views="dino", **SMALL)
        assert [with_views.params(i) for i in range(40)] == [plain.params(i) for i in range(40)]
        assert with_views.params_batch(range(40)).to_list() == plain.params_batch(range(40)).to_list()

    def test_appending_a_view_leaves_earlier_views_unchanged(self, backend):
        two = views.preset("byol", size=32)
        ds_two = SingleImageDataset(views=two, backend=backend, output="tensor", **SMALL)
        ds_three = SingleImageDataset(views=[*two, View(size=16, blur_p=1.0)], backend=backend, output="tensor",
                                      **SMALL)
        for i in (0, 9, 39):
            assert ds_three.view_params(i)[:2] == ds_two.view_params(i)
            assert all(torch.equal(a, b) for a, b in zip(ds_three[i][0][:2], ds_two[i][0], strict=True))

    def test_batched_views_are_the_per_sample_views(self, backend):
        """Byte for byte, for every backend, any batch size and order (views of two sizes, every op on)."""
        pair = [View(size=32, blur_p=0.5, solarize_p=0.5), View(size=14, scale=(0.05, 0.4), blur_p=0.5)]
        ds = SingleImageDataset(views=pair, backend=backend, output="tensor", **SMALL)
        per_sample = {i: ds[i][0] for i in [*range(12), 39]}
        for indices in ([0], [5, 3, 5, 39], list(range(12))[::-1], [-1, 0]):
            rendered = ds.render_views(ds.params_batch(indices), ds.view_params_batch(indices))
            expected = [torch.stack([per_sample[i % 40][v] for i in indices]) for v in range(2)]
            assert all(torch.equal(a, b) for a, b in zip(rendered, expected, strict=True))
            assert all(torch.equal(a, b) for a, b in zip(_as_tensors(ds.__getitems__(indices)), expected, strict=True))

    def test_pil_getitems_are_the_per_sample_views(self):
        ds = SingleImageDataset(views="simclr", **SMALL)
        for (got, target), i in zip(ds.__getitems__([7, 2]), [7, 2], strict=True):
            assert target == 0 and [im.tobytes() for im in got] == [im.tobytes() for im in ds[i][0]]

    def test_several_sources(self, coffee_path, hubble_path):
        ds = SingleImageDataset([coffee_path, hubble_path], views="byol", output="tensor", per_source_classes=True,
                                **SMALL)
        items = ds.__getitems__(list(range(12)))
        assert {t for _, t in items} == {0, 1}
        for (got, target), i in zip(items, range(12), strict=True):
            single, single_target = ds[i]
            assert target == single_target and all(torch.equal(a, b) for a, b in zip(got, single, strict=True))

    def test_set_epoch_draws_fresh_views(self):
        ds = SingleImageDataset(views="simclr", **SMALL)
        first = ds.view_params(0)
        ds.set_epoch(1)
        assert ds.view_params(0) != first
        ds.set_epoch(0)
        assert ds.view_params(0) == first

    @pytest.mark.parametrize("backend", ["reference", "fast"])
    def test_fixed_samples_keep_epoch_0s_samples_and_draw_fresh_views(self, backend):
        ds = SingleImageDataset(views="simclr", fixed_samples=True, backend=backend, output="tensor", **SMALL)
        plain = SingleImageDataset(views="simclr", backend=backend, output="tensor", **SMALL)
        indices = [0, 3, 5]
        samples = ds.render_batch(ds.params_batch(indices))
        first = [ds[i][0] for i in indices]
        ds.set_epoch(2), plain.set_epoch(2)
        assert (ds.epoch, ds.sample_epoch, plain.sample_epoch) == (2, 0, 2)
        assert torch.equal(ds.render_batch(ds.params_batch(indices)), samples)  # the samples of epoch 0
        assert ds.params(3) != plain.params(3) and ds.view_params(3) == plain.view_params(3)  # the views' epoch 2
        for k, i in enumerate(indices):
            views, _ = ds[i]
            assert not all(torch.equal(a, b) for a, b in zip(views, first[k], strict=True))
            by_hand = ds.render_views(ds.params_batch([i]), ds.view_params_batch([i]))
            assert all(torch.equal(a, b[0]) for a, b in zip(views, by_hand, strict=True))
        ds.set_epoch(0)
        assert all(torch.equal(a, b) for a, b in zip(ds[3][0], first[1], strict=True))

    def test_fixed_samples_reach_the_loaders_workers(self):
        ds = SingleImageDataset(views="simclr", fixed_samples=True, **SMALL)
        loader = batch_loader(ds, batch_size=4, num_workers=1)
        loader.set_epoch(1)
        views, _ = next(iter(loader))
        expected = ds.render_views(ds.params_batch(range(4)), ds.view_params_batch(range(4)))
        assert all(torch.equal(a, b) for a, b in zip(views, expected, strict=True))

    def test_fixed_samples_errors(self):
        with pytest.raises(ValueError, match=r"^fixed_samples=True keeps the samples of epoch 0 while set_epoch draws "
                                             r"fresh views, and needs views=; "):
            SingleImageDataset(fixed_samples=True, **SMALL)
        with pytest.raises(TypeError, match=r"^fixed_samples should be True or False, got int$"):
            SingleImageDataset(views="simclr", fixed_samples=1, **SMALL)

    def test_render_views_into_given_tensors(self):
        ds = SingleImageDataset(views="dino", **SMALL)
        params, drawn = ds.params_batch([1, 2]), ds.view_params_batch([1, 2])
        outs = [torch.empty((2, 3, b.size, b.size), dtype=torch.uint8) for b in drawn]
        assert all(a is b for a, b in zip(ds.render_views(params, drawn, outs), outs, strict=True))
        assert all(torch.equal(a, b) for a, b in zip(outs, ds.render_views(params, drawn), strict=True))

    def test_render_views_errors(self):
        ds = SingleImageDataset(views="byol", **SMALL)
        params, drawn = ds.params_batch([1, 2]), ds.view_params_batch([1, 2])
        with pytest.raises(TypeError, match=r"^params should be a ParamsBatch \(see params_batch\), got list$"):
            ds.render_views(params.to_list(), drawn)
        with pytest.raises(TypeError, match=r"^views\[1\] should be a ViewParamsBatch \(see view_params_batch\), "
                                            r"got list$"):
            ds.render_views(params, [drawn[0], drawn[1].to_list()])
        with pytest.raises(ValueError, match=r"^views\[0\] has 1 rows for 2 samples; draw both for the same indices$"):
            ds.render_views(params, [drawn[0][:1]])
        big = SingleImageDataset(views="byol", num_imgs=40, img_size=64).view_params_batch([1, 2])
        with pytest.raises(ValueError, match=r"^views\[0\]: ViewParamsBatch\.size should be an integer in \[1, 32\] "
                                             r"\(no view larger than its sample\), got 64$"):
            ds.render_views(params, big)
        smaller = [dataclasses.replace(b, size=16, blur_kernel=1) for b in big]
        with pytest.raises(ValueError, match=r"^views\[0\]: ViewParamsBatch\.crop\[\d\] should be a box .* inside "
                                             r"the 32 px sample"):
            ds.render_views(params, smaller)
        empty = dataclasses.replace(drawn[1], crop=np.array([[0, 0, 0, 5], [0, 0, 5, 5]]))
        with pytest.raises(ValueError, match=r"^views\[1\]: ViewParamsBatch\.crop\[0\] should be a box .* got "
                                             r"\[0, 0, 0, 5\]$"):
            ds.render_views(params, [drawn[0], empty])
        bad_sample = dataclasses.replace(params, angle=np.array([0.0, np.nan]))
        with pytest.raises(ValueError, match=r"^ParamsBatch\.angle\[1\] should be a finite number of degrees"):
            ds.render_views(bad_sample, drawn)
        with pytest.raises(ValueError, match=r"^outs should hold one tensor per view \(2\), got 1$"):
            ds.render_views(params, drawn, [torch.empty((2, 3, 32, 32), dtype=torch.uint8)])
        with pytest.raises(ValueError, match=r"^out should be a uint8 tensor of shape \[2, 3, 32, 32\]"):
            ds.render_views(params, drawn, [torch.empty((2, 3, 32, 32), dtype=torch.uint8)] * 1 +
                            [torch.empty((2, 3, 16, 16), dtype=torch.uint8)])

    def test_drawn_view_batches_are_read_only(self):
        drawn = SingleImageDataset(views="byol", **SMALL).view_params_batch(range(4))
        for batch in drawn:
            with pytest.raises(ValueError, match="read-only"):
                batch.crop[0] = [0, 0, 99, 99]
            with pytest.raises(ValueError, match="read-only"):
                batch.blur_sigma[:] = np.inf

    def test_only_what_the_dataset_did_not_draw_is_validated(self, monkeypatch):
        from single_image_dataset import ParamsBatch

        ds = SingleImageDataset(views="byol", backend="reference", **SMALL)  # no native checks behind validate
        params, drawn = ds.params_batch(range(4)), ds.view_params_batch(range(4))
        checked = []
        monkeypatch.setattr(ParamsBatch, "validate", lambda self, sizes=None: checked.append("samples"))
        monkeypatch.setattr(ViewParamsBatch, "validate", lambda self, side: checked.append(f"view {side}"))
        ds.render_views(params, drawn), ds[3], ds.__getitems__([0, 3])
        assert checked == []
        ds.render_views(dataclasses.replace(params), [drawn[0], dataclasses.replace(drawn[1])])
        assert checked == ["samples", "view 32"]
        other = SingleImageDataset(views="byol", **SMALL).view_params_batch(range(4))  # drawn, but not by ds
        ds.render_views(params, other)
        assert checked[2:] == ["view 32", "view 32"]
        checked.clear()
        # A drawn view batch with samples of another side than the dataset's (hand-made) is checked against them.
        ds.render_views(dataclasses.replace(params, output_size=16, resize=22), drawn)
        assert checked == ["samples", "view 16", "view 16"]

    def test_dataset_errors(self):
        with pytest.raises(ValueError, match=r"^transform= cannot be combined with views=: .* drop transform= .* or "
                                             r"drop views= to keep a transform$"):
            SingleImageDataset(views="simclr", transform=T.PILToTensor(), **SMALL)
        with pytest.raises(ValueError, match=r"^views\[1\] has size 64, larger than the 32 px samples it is cut from: "
                                             r"it could only upscale them .* raise img_size to at least 64"):
            SingleImageDataset(views=[View(size=32), View(size=64)], **SMALL)
        with pytest.raises(ValueError, match=r"^views\[0\] has size 64, larger than the 32 px samples"):
            SingleImageDataset(views=[View(size=64)], num_imgs=4, img_size=64, debug=True)
        with pytest.raises(ValueError, match=r"^views should hold at least one View; pass views=None"):
            SingleImageDataset(views=[], **SMALL)
        with pytest.raises(TypeError, match=r"^views\[0\] should be a View, got dict$"):
            SingleImageDataset(views=[{"size": 32}], **SMALL)
        with pytest.raises(TypeError, match=r"^views should be a preset name \('simclr', .*\) or a sequence of View, "
                                            r"got int$"):
            SingleImageDataset(views=2, **SMALL)
        plain = SingleImageDataset(**SMALL)
        for call in (lambda: plain.view_params(0), lambda: plain.view_params_batch([0])):
            with pytest.raises(ValueError, match=r"^this dataset has no views; build it with views="):
                call()
        with pytest.raises(IndexError, match=r"^index 40 is out of range for a dataset of 40 samples$"):
            SingleImageDataset(views="simclr", **SMALL).view_params(40)
        with pytest.raises(TypeError, match=r"^views\[0\] should be a View, got str$"):
            sample_view_params(AugmentConfig(), ["simclr"], 0)
        unknown = r"^SingleImageDataset\(\) got an unexpected keyword argument 'view' \(did you mean views=\?\); "
        arguments = r"its arguments are .*, exif_orientation, views, fixed_samples, transform, "
        with pytest.raises(TypeError, match=unknown + arguments):
            SingleImageDataset(view="simclr", **SMALL)

    def test_export_refuses_views(self, tmp_path):
        with pytest.raises(ValueError, match=r"^materialize writes one image per sample and would drop the dataset's "
                                             r"views; export the dataset without views="):
            materialize(SingleImageDataset(views="simclr", **SMALL), tmp_path / "out", progress=False)
        assert not (tmp_path / "out").exists()

    def test_preview_shows_each_sample_beside_its_views(self):
        ds = SingleImageDataset(views="byol", num_imgs=8, img_size=64)
        grid = np.asarray(preview_grid(ds, count=2, padding=2, tile_size=None))
        assert grid.shape == (2 + 2 * 66, 2 + 3 * 66, 3)
        assert (grid[2:66, 2:66] == np.asarray(ds.render(ds.params(1 - 1)))).all()  # row 0: sample 0 ...
        assert (grid[2:66, 68:132] == np.asarray(ds[0][0][0])).all()  # ... then its first view
        assert (grid[68:132, 134:198] == np.asarray(ds[1][0][1])).all()  # row 1: sample 1's second view
        dino = SingleImageDataset(views="dino", num_imgs=8, img_size=64)
        small = np.asarray(preview_grid(dino, count=1, padding=0, tile_size=None))
        assert small.shape == (64, 64 * 9, 3)  # local views (27 px) centred in 64 px tiles, black around
        assert (small[:18, 64 * 3: 64 * 4] == 0).all() and (small[18:45, 64 * 3 + 18: 64 * 3 + 45] ==
                                                              np.asarray(dino[0][0][2])).all()
        assert preview_grid(dino).size == (9 * 64 + 10 * 3, 8 * 64 + 9 * 3)  # 8 rows by default
        big = SingleImageDataset(views="byol", num_imgs=8, img_size=192)
        assert preview_grid(big, count=1, padding=0).size == (3 * 96, 96)  # 192 px shrunk into 96 px tiles


class TestWorkers:
    @staticmethod
    def _loader_views(ds: SingleImageDataset, **kwargs) -> list[torch.Tensor]:
        batches = list(DataLoader(ds, batch_size=7, **kwargs))
        return [torch.cat([views_of[v] for views_of, _ in batches]) for v in range(len(ds.views))]

    @pytest.mark.parametrize("context", ["fork", pytest.param("spawn", marks=pytest.mark.slow)])
    def test_dataloader_workers_equal_single_process(self, context):
        ds = SingleImageDataset(views="dino", output="tensor", num_imgs=21, img_size=32)
        expected = _as_tensors([ds[i] for i in range(21)])
        got = self._loader_views(ds, num_workers=2, multiprocessing_context=context)
        assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
        shuffled = list(DataLoader(ds, batch_size=5, sampler=list(range(20, -1, -1))))
        assert torch.equal(torch.cat([views_of[0] for views_of, _ in shuffled]), expected[0].flip(0))

    @pytest.mark.slow
    def test_same_bytes_in_a_fresh_process(self):
        ds = SingleImageDataset(views="byol", output="tensor", **SMALL)
        code = (
            "import hashlib, json, random, torch; from single_image_dataset import SingleImageDataset;"
            "random.seed(9); torch.manual_seed(9);"
            "ds = SingleImageDataset(views='byol', output='tensor', num_imgs=40, img_size=32);"
            "print(json.dumps([[hashlib.sha256(v.numpy().tobytes()).hexdigest() for v in ds[i][0]] for i in (0, 39)]))"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
        here = [[hashlib.sha256(v.numpy().tobytes()).hexdigest() for v in ds[i][0]] for i in (0, 39)]
        assert json.loads(out.stdout) == here
