"""Fake-video clips: VideoConfig, ClipParams' camera move, sampling, rendering, DataLoader, MP4, export, CLI."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import json
import math
import os
import random
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as F
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.transforms import InterpolationMode

import single_image_dataset
from single_image_dataset import DEFAULT_IMAGE, JitterParams, export
from single_image_dataset.cli import main
from single_image_dataset.export import estimate_video_bytes, materialize_video
from single_image_dataset.render.reference import apply_jitter
from single_image_dataset.sampling import sample_resized_crop, uniform_int
from single_image_dataset.video import (
    ClipParams,
    FakeVideoDataset,
    VideoConfig,
    decode_mp4,
    encode_mp4,
    filmstrip,
    sample_clip_params,
    save_filmstrip,
)
from single_image_dataset.video import encode as encode_module
from single_image_dataset.video.encode import is_whole_mp4

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from contention import cpu_contention  # noqa: E402  (benchmarks/contention.py)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

pytestmark = pytest.mark.filterwarnings("error")

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
VIDEO_PRESETS = sorted(CONFIGS.glob("fakevideo*.toml"))
SMALL = {"num_imgs": 12, "clip_len": 4, "img_size": 32}
QUIET = {"progress": False}
HAS_AV = importlib.util.find_spec("av") is not None
needs_av = pytest.mark.skipif(not HAS_AV, reason='PyAV is not installed (pip install -e ".[video]"): no MP4 encoding')


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.double() - b.double()).pow(2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def _reference_frame(source: Image.Image, crop: tuple, box: tuple, size: int) -> torch.Tensor:
    """The recipe's frame, written out with torchvision's ops: the initial crop, then the box resized."""
    region = F.crop(source, *crop)
    frame = F.resized_crop(region, *box, [size, size], interpolation=InterpolationMode.BICUBIC, antialias=True)
    return F.pil_to_tensor(frame)


class TestVideoConfig:
    def test_defaults_are_the_recipe(self):
        c = VideoConfig()
        assert (c.clip_len, c.img_size, c.num_imgs, c.seed) == (16, 230, 200_000, 0)
        assert (c.initcrop, c.scale, c.jitter, c.jitter_p) == (0.5, (500.0, 1.0), (0.4, 0.4, 0.4, 0.1), 0.5)
        assert c.area_range == (1 / 500, 1.0)

    def test_toml_round_trip_and_types(self, tmp_path):
        c = VideoConfig(clip_len=8, img_size=64, scale=[100, 2], jitter=[0, 0.2, 0.3, 0], jitter_p=1)
        assert c.scale == (100.0, 2.0) and c.jitter_p == 1.0 and isinstance(c.jitter_p, float)
        path = tmp_path / "c.toml"
        path.write_text(c.to_toml())
        assert VideoConfig.from_toml(path) == c
        assert VideoConfig.from_toml(path, clip_len=5) == c.replace(clip_len=5)
        assert hash(c) == hash(VideoConfig.from_dict(c.to_dict()))

    def test_frozen(self):
        with pytest.raises(dataclasses.FrozenInstanceError):
            VideoConfig().clip_len = 3  # type: ignore[misc]

    @pytest.mark.parametrize(
        ("changes", "error", "match"),
        [
            ({"clip_len": 1}, ValueError, r"clip_len should be in \[2, 1024\] frames .*got 1"),
            ({"clip_len": 10**12}, ValueError, r"clip_len should be in \[2, 1024\] frames .*got 1000000000000"),
            ({"clip_len": 1024, "img_size": 8192}, ValueError,
             r"a clip of clip_len 1024 frames of img_size 8192 px takes 206158430208 bytes, more than the "
             r"4294967296 \(4 GiB\) a clip may take in memory; lower clip_len or img_size"),
            ({"clip_len": 4.0}, TypeError, r"clip_len should be an integer, got 4\.0"),
            ({"img_size": 0}, ValueError, r"img_size should be in \[1, 8192\] pixels, got 0"),
            ({"num_imgs": 0}, ValueError, r"num_imgs should be in \[1, \d+\] \(sys\.maxsize, .*got 0"),
            ({"seed": -1}, ValueError, r"seed should be in \[0, 2\*\*63\), got -1"),
            ({"initcrop": 1.5}, ValueError, r"initcrop should be in \(0, 1\], got 1\.5"),
            ({"scale": (1.0, 1.0)}, ValueError, r"scale=\(1\.0, 1\.0\) draws crop areas of at least 1 times"),
            ({"scale": (1.0, 2.0)}, ValueError, r"scale should be two inverse area fractions"),
            ({"scale": (500.0,)}, TypeError, r"scale should be a sequence of 2 numbers"),
            ({"jitter": (0.4, 0.4, 0.4, 0.6)}, ValueError, r"jitter hue should be in \[0, 0\.5\], got 0\.6"),
            ({"jitter_p": 2}, ValueError, r"jitter_p should be a probability in \[0, 1\], got 2"),
            ({"deg": 10}, TypeError, r"unknown key 'deg' in VideoConfig\.replace\(\); valid keys are: clip_len, "),
        ],
    )
    def test_invalid_values(self, changes, error, match):
        with pytest.raises(error, match=match):
            VideoConfig().replace(**changes)

    def test_unknown_key_in_a_file(self, tmp_path):
        path = tmp_path / "bad.toml"
        path.write_text("clip_len = 8\ndeg = 10\n")
        with pytest.raises(ValueError, match=r"config file .*bad\.toml: unknown key 'deg' in config; valid keys"):
            VideoConfig.from_toml(path)

    def test_from_dict_needs_a_mapping(self):
        with pytest.raises(TypeError, match=r"values should be a mapping of VideoConfig fields, got list"):
            VideoConfig.from_dict([("clip_len", 4)])  # type: ignore[arg-type]

    def test_frame_config_is_the_image_config_without_warps(self):
        frames = VideoConfig(img_size=64, initcrop=0.7, scale=(50, 1), jitter_p=0.2).frame_config()
        assert (frames.deg, frames.shear, frames.vflip, frames.randinterp, frames.debug) == (0, 0, False, False, False)
        assert (frames.img_size, frames.initcrop, frames.scale, frames.jitter_p) == (64, 0.7, (50.0, 1.0), 0.2)


@pytest.mark.parametrize("preset", VIDEO_PRESETS, ids=lambda p: p.name)
class TestVideoPresets:
    def test_lists_every_field(self, preset):
        assert sorted(tomllib.loads(preset.read_text())) == sorted(f.name for f in dataclasses.fields(VideoConfig))

    def test_renders(self, preset):
        ds = FakeVideoDataset(config=VideoConfig.from_toml(preset, num_imgs=2, img_size=32), backend="fast")
        clip, target = ds[1]
        assert clip.shape == (ds.config.clip_len, 3, 32, 32) and target == 0


def test_fakevideo_preset_is_the_paper_recipe():
    assert VideoConfig.from_toml(CONFIGS / "fakevideo.toml") == VideoConfig()


def _tie_edges(rng: random.Random) -> ClipParams:
    """A clip whose interpolated edges hit halves: the case where rounding (top, height) leaves the crop."""
    side = 101
    clip_len = 3  # the middle frame is the exact mean of the two boxes
    top0, top1 = 2 * rng.randrange(1, 20), 2 * rng.randrange(1, 20) + 1
    height0, height1 = side - top0, side - top1
    left0, left1 = rng.randrange(0, 50), rng.randrange(0, 50)
    width0, width1 = rng.randrange(1, side - left0 + 1), rng.randrange(1, side - left1 + 1)
    return ClipParams(
        crop=(0, 0, side, side), start_box=(top0, left0, height0, width0), end_box=(top1, left1, height1, width1),
        clip_len=clip_len, output_size=32, jitter=None,
    )


def _random_clip(rng: random.Random) -> ClipParams:
    side = rng.randrange(1, 300)

    def box() -> tuple[int, int, int, int]:
        height, width = rng.randrange(1, side + 1), rng.randrange(1, side + 1)
        return (rng.randrange(0, side - height + 1), rng.randrange(0, side - width + 1), height, width)

    return ClipParams(
        crop=(0, 0, side, side), start_box=box(), end_box=box(), clip_len=rng.randrange(2, 40), output_size=32,
        jitter=None,
    )


class TestCameraMove:
    def test_endpoints_are_the_boxes(self):
        rng = random.Random(0)
        for _ in range(200):
            p = _random_clip(rng)
            boxes = p.frame_boxes()
            assert len(boxes) == p.clip_len and boxes[0] == p.start_box and boxes[-1] == p.end_box

    def test_edges_move_linearly_rounded_half_up(self):
        rng = random.Random(1)
        for _ in range(200):
            p = _random_clip(rng)
            span = p.clip_len - 1
            (t0, l0, h0, w0), (t1, l1, h1, w1) = p.start_box, p.end_box
            for t, box in enumerate(p.frame_boxes()):
                edges = [
                    math.floor(Fraction(a * (span - t) + b * t, span) + Fraction(1, 2))
                    for a, b in ((t0, t1), (l0, l1), (t0 + h0, t1 + h1), (l0 + w0, l1 + w1))
                ]
                assert box == (edges[0], edges[1], edges[2] - edges[0], edges[3] - edges[1])

    @pytest.mark.parametrize("make", [_random_clip, _tie_edges])
    def test_every_box_is_inside_the_crop_and_at_least_a_pixel(self, make):
        rng = random.Random(2)
        for _ in range(500):
            p = make(rng)
            side = p.crop[2]
            for top, left, height, width in p.frame_boxes():
                assert height >= 1 and width >= 1
                assert 0 <= top and top + height <= side and 0 <= left and left + width <= side

    def test_frames_are_image_samples_without_warps(self):
        order = ("saturation", "brightness")
        jitter = JitterParams(brightness=1.1, contrast=None, saturation=0.9, hue=None, order=order)
        p = dataclasses.replace(_random_clip(random.Random(3)), jitter=jitter, output_size=48)
        for frame, box in zip(p.frames(), p.frame_boxes(), strict=True):
            assert (frame.crop, frame.resized_crop, frame.jitter) == (p.crop, box, jitter)
            assert (frame.resize, frame.output_size, frame.interpolation) == (48, 48, "bicubic")
            assert (frame.warp, frame.vflip, frame.debug_size, frame.angle) == (None, False, None, 0.0)

    def test_dict_round_trip(self):
        ds = FakeVideoDataset(jitter_p=1.0, **SMALL)
        for i in range(4):
            p = ds.params(i)
            assert ClipParams.from_dict(json.loads(json.dumps(p.to_dict()))) == p


class TestSampling:
    SIZE = (600, 400)

    def test_pure_function_of_seed_epoch_index(self):
        c = VideoConfig(**SMALL)
        random.seed(5)
        torch.manual_seed(5)
        np.random.seed(5)
        states = random.getstate(), torch.get_rng_state(), np.random.get_state()[1].copy()
        first = [sample_clip_params(c, self.SIZE, i) for i in range(20)]
        assert random.getstate() == states[0] and torch.equal(torch.get_rng_state(), states[1])
        assert np.array_equal(np.random.get_state()[1], states[2])
        assert [sample_clip_params(c, self.SIZE, i) for i in reversed(range(20))] == first[::-1]
        assert len({(p.crop, p.start_box, p.end_box) for p in first}) == 20
        assert sample_clip_params(c, self.SIZE, 3, epoch=1) != first[3]
        assert sample_clip_params(c.replace(seed=1), self.SIZE, 3) != first[3]

    def test_reads_the_documented_stream(self):
        # SeedSequence([seed, epoch, index]): 11 block slots (crop top, left, jitter apply, 4 factors,
        # 4 order keys), then the start box and the end box with their retries.
        c = VideoConfig(seed=7, **{k: v for k, v in SMALL.items()})
        p = sample_clip_params(c, self.SIZE, index=5, epoch=2)
        rng = np.random.default_rng(np.random.SeedSequence([7, 2, 5]))
        block = rng.random(11)
        rest = iter(rng.random(10_000).tolist())
        side = 200
        assert p.crop == (uniform_int(block[0], 400 - side + 1), uniform_int(block[1], 600 - side + 1), side, side)
        assert p.start_box == sample_resized_crop(rest, (side, side), c.area_range)
        assert p.end_box == sample_resized_crop(rest, (side, side), c.area_range)
        assert (p.jitter is not None) == (block[2] < c.jitter_p)

    def test_boxes_fit_the_crop_and_jitter_rate(self):
        c = VideoConfig(**SMALL)
        params = [sample_clip_params(c, self.SIZE, i) for i in range(400)]
        for p in params:
            assert p.crop[2] == p.crop[3] == 200 and 0 <= p.crop[0] <= 200 and 0 <= p.crop[1] <= 400
            for top, left, height, width in (p.start_box, p.end_box):
                assert 0 <= top and top + height <= 200 and 0 <= left and left + width <= 200
        jittered = sum(p.jitter is not None for p in params)
        assert 160 <= jittered <= 240  # p = 0.5: within 4 standard deviations (10) of 200
        assert all(sample_clip_params(c.replace(jitter_p=0.0), self.SIZE, i).jitter is None for i in range(20))
        always = [sample_clip_params(c.replace(jitter_p=1.0), self.SIZE, i).jitter for i in range(20)]
        assert all(j is not None and len(j.order) == 4 for j in always)

    def test_jitter_off_keeps_the_boxes(self):
        c = VideoConfig(**SMALL)
        for i in range(10):
            a, b = sample_clip_params(c, self.SIZE, i), sample_clip_params(c.replace(jitter_p=0.0), self.SIZE, i)
            assert (a.crop, a.start_box, a.end_box) == (b.crop, b.start_box, b.end_box)


def _clip_dataset(backend: str, **overrides) -> FakeVideoDataset:
    return FakeVideoDataset(backend=backend, **{**SMALL, **overrides})


class TestRendering:
    def test_shape_dtype_layout(self, backend):
        clip, target = _clip_dataset(backend)[3]
        assert isinstance(clip, torch.Tensor) and clip.dtype == torch.uint8 and target == 0
        assert tuple(clip.shape) == (4, 3, 32, 32) and clip.is_contiguous()

    def test_reference_first_and_last_frames_are_the_boxes_exactly(self):
        ds = _clip_dataset("reference", jitter_p=0.0, clip_len=5)
        for i in range(6):
            p = ds.params(i)
            clip = ds[i][0]
            torch.testing.assert_close(clip[0], _reference_frame(ds.source, p.crop, p.start_box, 32), atol=0, rtol=0)
            torch.testing.assert_close(clip[-1], _reference_frame(ds.source, p.crop, p.end_box, 32), atol=0, rtol=0)
            middle = p.frame_boxes()[2]
            torch.testing.assert_close(clip[2], _reference_frame(ds.source, p.crop, middle, 32), atol=0, rtol=0)

    def test_fast_first_and_last_frames_are_close_to_the_boxes(self):
        ds = _clip_dataset("fast", jitter_p=0.0, img_size=64, num_imgs=40)
        psnr = []
        for i in range(len(ds)):
            p = ds.params(i)
            clip = ds[i][0]
            psnr.append(_psnr(clip[0], _reference_frame(ds.source, p.crop, p.start_box, 64)))
            psnr.append(_psnr(clip[-1], _reference_frame(ds.source, p.crop, p.end_box, 64)))
        assert np.mean(psnr) >= 35, f"mean PSNR {np.mean(psnr):.1f} dB"

    def test_one_jitter_for_every_frame(self, backend):
        ds = _clip_dataset(backend, jitter_p=1.0)
        for i in range(4):
            p = ds.params(i)
            jittered = ds.render(p)
            plain = ds.render(dataclasses.replace(p, jitter=None))
            assert not torch.equal(jittered, plain)
            for t in range(p.clip_len):
                expected = F.pil_to_tensor(apply_jitter(F.to_pil_image(plain[t]), p.jitter))
                if backend == "reference":
                    torch.testing.assert_close(jittered[t], expected, atol=0, rtol=0, msg=f"clip {i} frame {t}")
                else:  # the other renderers' jitter approximates PIL's: 30 dB, their tests' bound with jitter
                    assert _psnr(jittered[t], expected) >= 30, f"clip {i} frame {t}"

    def test_the_camera_moves(self, backend):
        ds = _clip_dataset(backend, jitter_p=0.0)
        moving = [not torch.equal(clip[0], clip[-1]) for clip, _ in (ds[i] for i in range(6))]
        assert all(moving)

    def test_render_into_out_and_bad_params(self, backend):
        ds = _clip_dataset(backend)
        out = torch.empty(4, 3, 32, 32, dtype=torch.uint8)
        assert ds.render(ds.params(2), out=out) is out and torch.equal(out, ds[2][0])
        with pytest.raises(TypeError, match=r"params should be a ClipParams \(see params\), got SampleParams"):
            ds.render(ds.params(2).frames()[0])


class TestDataset:
    @pytest.mark.parametrize(("keyword", "hint"), [("clip_lenn", " (did you mean clip_len=?)"),
                                                   ("transforms", " (did you mean transform=?)"), ("fps", "")])
    def test_an_unknown_keyword_is_named_with_the_closest_one(self, keyword, hint):
        with pytest.raises(TypeError, match=rf"^FakeVideoDataset\(\) got an unexpected keyword argument "
                                            rf"'{keyword}'{re.escape(hint)}; its arguments are image, config, "):
            FakeVideoDataset(num_imgs=2, **{keyword: 3})

    def test_attributes_and_repr(self):
        ds = FakeVideoDataset(**SMALL)
        assert len(ds) == 12 and ds.classes == ["dummy"] and ds.class_to_idx == {"dummy": 0}
        assert list(ds.targets) == [0] * 12 and ds.root == str(DEFAULT_IMAGE) and ds.source.size == (600, 400)
        text = repr(ds)
        assert text.startswith("Dataset FakeVideoDataset\n    Number of datapoints: 12\n")
        assert "clip_len=4, img_size=32" in text and "backend: fast" in text

    def test_config_and_overrides(self):
        ds = FakeVideoDataset(config=VideoConfig(clip_len=6, img_size=16), num_imgs=3)
        assert ds.config == VideoConfig(clip_len=6, img_size=16, num_imgs=3)
        with pytest.raises(TypeError, match=r"^FakeVideoDataset\(\) got an unexpected keyword argument 'deg'; .* "
                                            r"the fields of VideoConfig: clip_len, "):
            FakeVideoDataset(deg=10)  # an AugmentConfig field that clips do not have

    def test_indexing(self):
        ds = FakeVideoDataset(**SMALL)
        assert ds.params(-1) == ds.params(11) and ds.params(np.int64(3)) == ds.params(3)
        with pytest.raises(IndexError, match=r"index 12 is out of range for a dataset of 12 samples"):
            ds[12]
        with pytest.raises(TypeError, match=r"dataset indices must be integers, got float"):
            ds.params(1.0)

    def test_transform(self):
        ds = FakeVideoDataset(transform=lambda clip: clip.float() / 255, **SMALL)
        clip, target = ds[0]
        assert clip.dtype == torch.float32 and target == 0
        assert torch.equal(clip, FakeVideoDataset(**SMALL)[0][0].float() / 255)

    def test_cthw_layout_is_the_tchw_clip_permuted(self):
        tchw, cthw = FakeVideoDataset(**SMALL), FakeVideoDataset(layout="CTHW", **SMALL)
        clip = cthw[5][0]
        assert clip.shape == (3, 4, 32, 32) and clip.is_contiguous()
        assert torch.equal(clip, tchw[5][0].permute(1, 0, 2, 3))
        assert torch.equal(cthw.render(cthw.params(5)), tchw[5][0])  # render() stays T x 3 x H x W
        assert filmstrip(cthw).tobytes() == filmstrip(tchw).tobytes() and "layout: CTHW" in repr(cthw)
        seen = FakeVideoDataset(layout="CTHW", transform=lambda c: c.shape, **SMALL)[0][0]
        assert seen == (3, 4, 32, 32)  # the transform gets the clip in the layout
        with pytest.raises(ValueError, match=r"layout should be one of 'TCHW', 'CTHW', got 'THWC'"):
            FakeVideoDataset(layout="THWC", **SMALL)

    def test_cthw_batches_feed_a_torchvision_video_model(self):
        from torchvision.models.video import r3d_18

        # Kinetics-400's mean and std, which torchvision's video models are trained with.
        mean = torch.tensor([0.43216, 0.394666, 0.37645]).view(3, 1, 1, 1)
        std = torch.tensor([0.22803, 0.22145, 0.216989]).view(3, 1, 1, 1)
        ds = FakeVideoDataset(num_imgs=4, clip_len=8, img_size=32, layout="CTHW",
                              transform=lambda clip: (clip.float() / 255 - mean) / std)
        clips, targets = next(iter(DataLoader(ds, batch_size=2)))
        assert clips.shape == (2, 3, 8, 32, 32) and clips.dtype == torch.float32 and targets.tolist() == [0, 0]
        assert abs(clips.mean().item()) < 2 and torch.isfinite(clips).all()
        model = r3d_18(weights=None).eval()
        with torch.no_grad():
            logits = model(clips)
        assert logits.shape == (2, 400) and torch.isfinite(logits).all()

    def test_bad_inputs(self, tmp_path):
        with pytest.raises(ValueError, match=r"unknown backend 'nope'; available backends: reference, fast"):
            FakeVideoDataset(backend="nope", **SMALL)
        with pytest.raises(FileNotFoundError):
            FakeVideoDataset(tmp_path / "missing.jpg", **SMALL)
        with pytest.raises(ValueError, match=r"image of 3x3 px is too small for initcrop=0\.1"):
            FakeVideoDataset(np.zeros((3, 3, 3), dtype=np.uint8), initcrop=0.1, **SMALL)
        with pytest.raises(ValueError, match=r"FakeVideoDataset makes the clips of one source image, got 2 "):
            FakeVideoDataset([DEFAULT_IMAGE, DEFAULT_IMAGE], **SMALL)
        one = FakeVideoDataset([DEFAULT_IMAGE], **SMALL)
        assert torch.equal(one[5][0], FakeVideoDataset(DEFAULT_IMAGE, **SMALL)[5][0])
        assert (one.source_names, one.source_paths) == (["coffee"], [DEFAULT_IMAGE])

    def test_device(self):
        ds = FakeVideoDataset(backend="torch", device="cpu", **SMALL)
        assert ds.device == torch.device("cpu") and ds[0][0].device == torch.device("cpu")
        with pytest.raises(ValueError, match=r"backend 'fast' renders on the CPU only, got device 'cuda'"):
            FakeVideoDataset(backend="fast", device="cuda", **SMALL)

    def test_epochs(self, backend):
        ds = _clip_dataset(backend)
        fixed = ds[1][0]
        ds.set_epoch(3)
        assert ds.epoch == 3 and not torch.equal(ds[1][0], fixed)
        ds.set_epoch(0)
        assert torch.equal(ds[1][0], fixed)
        with pytest.raises(ValueError, match=r"epoch should be an integer in \[0, 2\*\*63\), got -1"):
            ds.set_epoch(-1)

    def test_dataloader_workers_equal_single_process(self, backend):
        self._check_workers(_clip_dataset(backend), "fork")

    @pytest.mark.slow
    def test_spawned_workers_too(self):
        # Spawned workers unpickle the dataset (its renderer rebuilt, its epoch in shared memory); slow
        # to start, so once.
        self._check_workers(_clip_dataset("reference"), "spawn")

    @staticmethod
    def _check_workers(ds: FakeVideoDataset, context: str) -> None:
        ds.set_epoch(2)  # the workers must see it
        single = torch.cat([x for x, _ in DataLoader(ds, batch_size=5)])
        loader = DataLoader(ds, batch_size=5, num_workers=2, multiprocessing_context=context)
        batches = [(x, y) for x, y in loader]
        assert torch.equal(torch.cat([x for x, _ in batches]), single)
        assert single.shape == (12, 4, 3, 32, 32) and torch.cat([y for _, y in batches]).eq(0).all()
        ds.set_epoch(0)
        assert not torch.equal(torch.cat([x for x, _ in loader]), single)


class TestFilmstrip:
    def test_layout(self):
        ds = FakeVideoDataset(num_imgs=3, clip_len=5, img_size=32)
        strip = filmstrip(ds, count=4, padding=2)
        assert strip.size == (5 * 34 + 2, 3 * 34 + 2)
        row, col = 2, 4  # clip 2, frame 4
        tile = np.asarray(strip)[2 + row * 34 : 2 + row * 34 + 32, 2 + col * 34 : 2 + col * 34 + 32]
        np.testing.assert_array_equal(tile, ds[2][0][4].permute(1, 2, 0).numpy())

    def test_paper_size_stays_small(self, tmp_path):
        ds = FakeVideoDataset(backend="fast")  # 16 frames of 230 px
        path = save_filmstrip(ds, tmp_path / "sub" / "strip.png")
        with Image.open(path) as img:
            assert img.size == (16 * 66 + 2, 4 * 66 + 2)
        assert path.stat().st_size < 1_000_000

    def test_bad_arguments(self):
        ds = FakeVideoDataset(**SMALL)
        with pytest.raises(ValueError, match=r"count should be positive and padding non-negative, got 0 and 2"):
            filmstrip(ds, count=0)
        with pytest.raises(ValueError, match=r"tile_size should be a positive number of pixels"):
            filmstrip(ds, tile_size=0)


class TestEncode:
    @needs_av
    def test_round_trip(self):
        clip = FakeVideoDataset(num_imgs=2, clip_len=6, img_size=48)[1][0]
        data = encode_mp4(clip, fps=30)
        assert data[4:8] == b"ftyp" and encode_mp4(clip, fps=30) == data  # the same bytes every time
        frames = decode_mp4(data)
        assert frames.shape == (6, 3, 48, 48) and frames.dtype == torch.uint8
        assert _psnr(frames, clip) >= 25  # lossy H.264 and 4:2:0 chroma on a 48 px frame
        assert len(encode_mp4(clip, crf=35)) < len(data)

    @needs_av
    def test_structure_check(self):
        data = encode_mp4(FakeVideoDataset(**SMALL)[0][0])
        assert is_whole_mp4(io.BytesIO(data), len(data))
        for cut in (1, 8, len(data) // 2, len(data) - 1):
            assert not is_whole_mp4(io.BytesIO(data[:cut]), cut)
        garbage = b"\xff\xd8\xff" + bytes(100)
        assert not is_whole_mp4(io.BytesIO(garbage), len(garbage))
        with pytest.raises(ValueError, match=r"cannot decode the MP4 data \(100 bytes\)"):
            decode_mp4(bytes(100))

    @pytest.mark.parametrize(
        ("clip", "kwargs", "error", "match"),
        [
            (np.zeros((2, 3, 8, 8), np.uint8), {}, TypeError, r"should be a uint8 tensor T x 3 x H x W, got ndarray"),
            (torch.zeros(2, 3, 8, 8), {}, ValueError, r"got torch\.float32 of shape \[2, 3, 8, 8\]"),
            (torch.zeros(2, 8, 8, 3, dtype=torch.uint8), {}, ValueError, r"of shape \[2, 8, 8, 3\]"),
            (torch.zeros(2, 3, 9, 8, dtype=torch.uint8), {}, ValueError, r"frames of 8x9 px cannot be encoded .*even"),
            (torch.zeros(2, 3, 8, 8, dtype=torch.uint8), {"fps": 0}, ValueError,
             r"fps should be an integer in \[1, 1000\] frames per second, got 0"),
            (torch.zeros(2, 3, 8, 8, dtype=torch.uint8), {"fps": 2**31}, ValueError,
             r"fps should be an integer in \[1, 1000\] frames per second, got 2147483648"),
            (torch.zeros(2, 3, 8, 8, dtype=torch.uint8), {"crf": 52}, ValueError, r"crf should be an integer in \["),
        ],
    )
    def test_bad_inputs(self, clip, kwargs, error, match):
        with pytest.raises(error, match=match):
            encode_mp4(clip, **kwargs)

    @needs_av
    @pytest.mark.parametrize(("size", "clip_len", "crf"), [(16, 2, 0), (32, 8, 23), (64, 16, 23), (48, 5, 40)])
    def test_same_bytes_every_time(self, size, clip_len, crf):
        ds = FakeVideoDataset(num_imgs=4, clip_len=clip_len, img_size=size)
        for i in range(4):
            clip = ds[i][0]
            assert encode_mp4(clip, crf=crf) == encode_mp4(clip, crf=crf) == encode_mp4(clip.clone(), crf=crf)

    @needs_av
    def test_settings_written_in_the_stream(self):
        # x264 writes its settings into the stream: one thread, no macroblock tree (whose float SIMD varies).
        data = encode_mp4(torch.zeros(2, 3, 16, 16, dtype=torch.uint8), crf=30)
        settings = re.search(rb"x264 - core \d+ .*? options: ([^\x00]*)", data, re.S).group(1).decode().split()
        assert {"threads=1", "lookahead_threads=1", "sliced_threads=0", "mbtree=0", "crf=30.0"} <= set(settings)

    @needs_av
    def test_encoder_failure_is_one_line(self, monkeypatch):
        monkeypatch.setattr(encode_module, "X264_OPTIONS", {"mbtree": "not a number"})  # avcodec_open2 fails
        with pytest.raises(OSError, match=r"^\[Errno 22\] the H\.264 encoder \(libx264\) failed on a clip of 2 "
                           r"frames of 16x8 px, fps 25, crf 23: Invalid argument$"):
            encode_mp4(torch.zeros(2, 3, 8, 16, dtype=torch.uint8))

    @needs_av
    def test_decode_a_path_or_bytes(self, tmp_path):
        clip = FakeVideoDataset(**SMALL)[2][0]
        data = encode_mp4(clip)
        (tmp_path / "clip.mp4").write_bytes(data)
        frames = decode_mp4(data)
        for source in (tmp_path / "clip.mp4", str(tmp_path / "clip.mp4"), bytearray(data), memoryview(data)):
            assert torch.equal(decode_mp4(source), frames)
        assert single_image_dataset.decode_mp4 is decode_mp4 and "decode_mp4" in single_image_dataset.__all__
        (tmp_path / "bad.mp4").write_bytes(b"\x00" * 64)
        with pytest.raises(ValueError, match=rf"cannot decode the MP4 file {re.escape(str(tmp_path))}/bad\.mp4: "):
            decode_mp4(tmp_path / "bad.mp4")
        with pytest.raises(FileNotFoundError, match=r"MP4 file not found: .*missing\.mp4"):
            decode_mp4(tmp_path / "missing.mp4")
        with pytest.raises(ValueError, match=r"MP4 file /dev/null is a character device, not a regular file"):
            decode_mp4("/dev/null")
        with pytest.raises(TypeError, match=r"decode_mp4 takes an MP4 file's bytes or path, got int"):
            decode_mp4(3)

    def test_missing_pyav_names_the_extra(self, monkeypatch):
        monkeypatch.setitem(sys.modules, "av", None)  # import av now raises ImportError
        with pytest.raises(ImportError, match=r'needs PyAV, an optional extra: pip install -e "\.\[video\]"'):
            encode_mp4(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))


# Digests of the clips of several sizes, clip lengths and crf values, as a program prints them.
_DIGESTS = """
import hashlib, json
from single_image_dataset.video import FakeVideoDataset, encode_mp4
clips = []
for size, clip_len in ((32, 8), (64, 8), (64, 16), (96, 12)):
    ds = FakeVideoDataset(num_imgs=10, clip_len=clip_len, img_size=size)
    clips += [ds[i][0] for i in range(10)]
print(json.dumps([hashlib.sha256(encode_mp4(c, crf=crf)).hexdigest() for crf in (0, 23, 40) for c in clips]))
"""


def _digests() -> list[str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(_DIGESTS, {})
    return json.loads(out.getvalue())


@needs_av
@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="pins processes to a CPU")
def test_same_bytes_in_two_processes_and_under_cpu_contention():
    with cpu_contention():
        runs = [_digests() for _ in range(3)]
    other = subprocess.run([sys.executable, "-c", _DIGESTS], capture_output=True, text=True, check=True, timeout=300)
    runs.append(json.loads(other.stdout))
    assert len(runs[0]) == 120 and all(run == runs[0] for run in runs)


def _clips(target: Path) -> list[str]:
    return sorted(os.listdir(target / "train" / "dummy"))


@needs_av
class TestExport:
    def test_writes_clips_and_manifest(self, tmp_path):
        ds = FakeVideoDataset(backend="fast", **SMALL)
        result = materialize_video(ds, tmp_path, processes=2, chunk_size=2, crf=20, **QUIET)
        assert (result.written, result.skipped) == (12, 0) and result.bytes_written > 0
        assert _clips(tmp_path) == [f"clip_{i:02d}.mp4" for i in range(12)]
        for i in (0, 11):
            data = (tmp_path / "train" / "dummy" / f"clip_{i:02d}.mp4").read_bytes()
            assert data == encode_mp4(ds[i][0], crf=20)
            assert decode_mp4(data).shape == (4, 3, 32, 32)
        manifest = json.loads((tmp_path / "manifest.json").read_text())
        section = manifest["dataset"]
        assert (section["format"], section["codec"], section["fps"], section["crf"]) == ("mp4", "libx264", 25, 20)
        assert section["layout"] == "train/dummy/clip_{index:02d}.mp4" and section["config"] == ds.config.to_dict()
        assert "av" in manifest["versions"] and "quality" not in section

    def test_resume_rewrites_only_incomplete_clips(self, tmp_path):
        ds = FakeVideoDataset(**SMALL)
        materialize_video(ds, tmp_path, **QUIET)
        folder = tmp_path / "train" / "dummy"
        whole = (folder / "clip_03.mp4").read_bytes()
        (folder / "clip_03.mp4").write_bytes(whole[: len(whole) // 2])  # cut short: boxes do not tile the file
        (folder / "clip_07.mp4").unlink()
        result = materialize_video(ds, tmp_path, **QUIET)
        assert (result.written, result.skipped) == (2, 10)
        assert (folder / "clip_03.mp4").read_bytes() == whole

    def test_verify_repairs_damage_in_the_middle_of_clips(self, tmp_path):
        ds = FakeVideoDataset(**SMALL)
        materialize_video(ds, tmp_path, **QUIET)
        folder = tmp_path / "train" / "dummy"
        whole = {name: (folder / name).read_bytes() for name in _clips(tmp_path)}
        # Inside the frames (mdat) at several offsets and sizes, and inside the index (moov): the boxes stay whole.
        for name, where, size in [("clip_02.mp4", 0.2, 1), ("clip_05.mp4", 0.4, 64), ("clip_08.mp4", 0.6, 200),
                                  ("clip_11.mp4", 0.95, 8)]:
            data = bytearray(whole[name])
            at = int(len(data) * where)
            data[at : at + size] = bytes(b ^ 0xFF for b in data[at : at + size])
            (folder / name).write_bytes(bytes(data))
        assert materialize_video(ds, tmp_path, **QUIET).written == 0  # a resume sees whole boxes
        result = materialize_video(ds, tmp_path, verify=True, **QUIET)
        assert (result.written, result.skipped) == (4, 8)
        assert {name: (folder / name).read_bytes() for name in _clips(tmp_path)} == whole

    def test_shards_equal_one_run(self, tmp_path):
        ds = FakeVideoDataset(**SMALL)
        materialize_video(ds, tmp_path / "one", **QUIET)
        for k in range(3):
            materialize_video(ds, tmp_path / "three", shard=(k, 3), **QUIET)
        for name in _clips(tmp_path / "one"):
            one = (tmp_path / "one" / "train" / "dummy" / name).read_bytes()
            assert (tmp_path / "three" / "train" / "dummy" / name).read_bytes() == one

    @pytest.mark.slow
    @pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="pins processes to a CPU")
    def test_two_identical_exports_give_identical_files(self, tmp_path):
        ds = FakeVideoDataset(num_imgs=40, clip_len=12, img_size=96)
        with cpu_contention():
            materialize_video(ds, tmp_path / "a", processes=2, **QUIET)
        materialize_video(ds, tmp_path / "b", **QUIET)
        names = _clips(tmp_path / "a")
        assert len(names) == 40 and _clips(tmp_path / "b") == names
        for name in names:
            a = (tmp_path / "a" / "train" / "dummy" / name).read_bytes()
            assert (tmp_path / "b" / "train" / "dummy" / name).read_bytes() == a, name

    def test_manifest_records_the_encoder_settings(self, tmp_path):
        materialize_video(FakeVideoDataset(**SMALL), tmp_path, **QUIET)
        assert json.loads((tmp_path / "manifest.json").read_text())["dataset"]["x264_options"] == {"mbtree": "0"}

    def test_an_export_of_earlier_versions_is_another_export(self, tmp_path):
        # Earlier versions encoded with x264's macroblock tree, and their manifests have no x264_options.
        ds = FakeVideoDataset(**SMALL)
        materialize_video(ds, tmp_path, **QUIET)
        manifest = json.loads((tmp_path / "manifest.json").read_text())
        del manifest["dataset"]["x264_options"]
        (tmp_path / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(FileExistsError, match=r"different export \(x264_options None there, \{'mbtree': '0'\} now"):
            materialize_video(ds, tmp_path, **QUIET)
        assert materialize_video(ds, tmp_path, overwrite=True, **QUIET).written == 12

    def test_encoder_failure_leaves_the_target_untouched(self, tmp_path, monkeypatch):
        monkeypatch.setattr(encode_module, "X264_OPTIONS", {"mbtree": "not a number"})
        with pytest.raises(OSError, match=r"the H\.264 encoder \(libx264\) failed on a clip of 2 frames of 32x32 px"):
            materialize_video(FakeVideoDataset(**SMALL), tmp_path / "out", **QUIET)
        assert not (tmp_path / "out").exists()

    @pytest.mark.parametrize("layout", ["TCHW", "CTHW"])
    def test_either_layout_exports_the_same_files(self, tmp_path, layout):
        ds = FakeVideoDataset(layout=layout, **SMALL)
        materialize_video(ds, tmp_path, **QUIET)
        data = (tmp_path / "train" / "dummy" / "clip_04.mp4").read_bytes()
        assert data == encode_mp4(FakeVideoDataset(**SMALL)[4][0])

    def test_different_encoding_is_refused_then_overwritten(self, tmp_path):
        ds = FakeVideoDataset(**SMALL)
        materialize_video(ds, tmp_path, **QUIET)
        with pytest.raises(FileExistsError, match=r"already holds a different export \(crf 23 there, 30 now\)"):
            materialize_video(ds, tmp_path, crf=30, **QUIET)
        assert materialize_video(ds, tmp_path, crf=30, overwrite=True, **QUIET).written == 12

    def test_images_and_clips_replace_each_other(self, tmp_path):
        from single_image_dataset import SingleImageDataset

        export.materialize(SingleImageDataset(num_imgs=5, img_size=32), tmp_path, image_format="png", **QUIET)
        with pytest.raises(FileExistsError, match=r"already holds a different export"):
            materialize_video(FakeVideoDataset(**SMALL), tmp_path, **QUIET)
        materialize_video(FakeVideoDataset(**SMALL), tmp_path, overwrite=True, **QUIET)
        assert _clips(tmp_path) == [f"clip_{i:02d}.mp4" for i in range(12)]
        export.materialize(SingleImageDataset(num_imgs=5, img_size=32), tmp_path, overwrite=True, **QUIET)
        assert _clips(tmp_path) == [f"patch_{i}.jpg" for i in range(5)]

    def test_bad_arguments_fail_before_writing(self, tmp_path):
        with pytest.raises(ValueError, match=r"frames of 33x33 px cannot be encoded in YUV 4:2:0, .*even img_size"):
            materialize_video(FakeVideoDataset(num_imgs=2, clip_len=2, img_size=33), tmp_path / "odd", **QUIET)
        with pytest.raises(ValueError, match=r"crf should be an integer in \[0, 51\], got -1"):
            materialize_video(FakeVideoDataset(**SMALL), tmp_path / "crf", crf=-1, **QUIET)
        with pytest.raises(ValueError, match=r"fps should be an integer in \[1, 1000\] frames per second, got 2147483"):
            materialize_video(FakeVideoDataset(**SMALL), tmp_path / "fps", fps=2**31, **QUIET)
        with pytest.raises(ValueError, match=r"target should be the path of the export folder, got an empty string"):
            materialize_video(FakeVideoDataset(**SMALL), "", **QUIET)
        assert not any((tmp_path / name).exists() for name in ("odd", "crf", "fps"))

    def test_estimate(self):
        ds = FakeVideoDataset(**SMALL)
        estimate = estimate_video_bytes(ds, range(12))
        sizes = [len(encode_mp4(ds[i][0])) for i in range(12)]
        assert sum(sizes) <= estimate <= 12 * (max(sizes) + 4096) * 1.15 and estimate_video_bytes(ds, []) == 0


def test_export_without_pyav_fails_before_writing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[video\]"'):
        materialize_video(FakeVideoDataset(**SMALL), tmp_path / "out", **QUIET)
    assert not (tmp_path / "out").exists()


class TestCommandLine:
    ARGS = ["--video", "--num_imgs", "6", "--clip_len", "4", "--img_size", "32"]

    def test_preview(self, tmp_path, capsys):
        assert main([*self.ARGS, "--targetpath", str(tmp_path)]) == 0
        out = capsys.readouterr().out
        printed = VideoConfig.from_dict(tomllib.loads(out.split("\nsource: ")[0]))
        assert printed == VideoConfig(num_imgs=6, clip_len=4, img_size=32)
        assert "dataset: 6 clips of 4 frames of 32x32 px, seed 0, backend fast" in out
        assert "--materialize would write 6 files, about " in out and "{clip_0.mp4 .. clip_5.mp4}" in out
        assert "(clips 0-3, one row each, 4 frames)" in out
        with Image.open(tmp_path / "preview.png") as img:
            assert img.size == (4 * 34 + 2, 4 * 34 + 2)
        assert not (tmp_path / "train").exists()

    @needs_av
    def test_materialize(self, tmp_path, capsys):
        argv = [*self.ARGS, "--targetpath", str(tmp_path), "--materialize", "--threads", "2", "--fps", "10"]
        assert main([*argv, "--backend", "fast"]) == 0
        out, err = capsys.readouterr()
        assert "materialize: writing 6 clips with 2 processes: " in err and "wrote 6 clips (0 already there)" in out
        assert _clips(tmp_path) == [f"clip_{i}.mp4" for i in range(6)] and not (tmp_path / "preview.png").exists()
        manifest = json.loads((tmp_path / "manifest.json").read_text())["dataset"]
        assert (manifest["fps"], manifest["renderer"]["backend"]) == (10, "fast")
        ds = FakeVideoDataset(backend="fast", num_imgs=6, clip_len=4, img_size=32)
        assert (tmp_path / "train" / "dummy" / "clip_4.mp4").read_bytes() == encode_mp4(ds[4][0], fps=10)
        assert main([*argv, "--backend", "fast"]) == 0
        assert "wrote 0 clips (6 already there)" in capsys.readouterr().out

    def test_preset(self, tmp_path, capsys):
        preset = str(CONFIGS / "fakevideo.toml")
        assert main(["--video", "--config", preset, "--num_imgs", "2", "--img_size", "32", "--targetpath",
                     str(tmp_path)]) == 0
        out = capsys.readouterr().out
        assert VideoConfig.from_dict(tomllib.loads(out.split("\nsource: ")[0])) == VideoConfig(num_imgs=2, img_size=32)
        assert main(["--config", preset, "--targetpath", str(tmp_path)]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "unknown key 'clip_len' in config" in err and "add --video" in err

    @pytest.mark.parametrize(
        ("argv", "message"),
        [
            (["--video", "--deg", "10"], r"argument --deg: applies to images \(without --video\) only"),
            (["--video", "--debug"], r"argument --debug: applies to images \(without --video\) only"),
            (["--video", "--format", "png"], r"argument --format: applies to images \(without --video\) only"),
            (["--clip_len", "8"], r"argument --clip_len: applies to --video only"),
            (["--fps", "8"], r"argument --fps: applies to --video only"),
            (["--video", "--crf", "60"], r"argument --crf: should be in \[0, 51\], got 60"),
        ],
    )
    def test_usage_errors(self, argv, message, capsys):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        err = capsys.readouterr().err
        assert stop.value.code == 2 and err.count("\n") == 1 and re.search(message, err)

    @pytest.mark.parametrize(
        ("argv", "code", "message"),
        [
            (["--fps", "2147483648"], 2, r"argument --fps: should be in \[1, 1000\], got 2147483648"),
            (["--fps", "1001"], 2, r"argument --fps: should be in \[1, 1000\], got 1001"),
            (["--clip_len", "1000000000000"], 1,
             r"error: clip_len should be in \[2, 1024\] frames \(.*\), got 1000000000000$"),
            (["--clip_len", "1024", "--img_size", "8192"], 1, r"error: a clip of clip_len 1024 frames of img_size 81"),
        ],
    )
    def test_bounds_are_one_line_and_leave_nothing(self, tmp_path, capsys, argv, code, message):
        target = tmp_path / "out"
        argv = ["--video", "--num_imgs", "6", "--materialize", "--targetpath", str(target), *argv]
        if code == 2:
            with pytest.raises(SystemExit) as stop:
                main(argv)
            assert stop.value.code == 2
        else:
            assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err and re.search(message, err), err
        assert not target.exists()

    @needs_av
    def test_encoder_failure_is_one_line(self, tmp_path, capsys, monkeypatch):
        monkeypatch.setattr(encode_module, "X264_OPTIONS", {"mbtree": "not a number"})  # avcodec_open2 fails
        assert main([*self.ARGS, "--materialize", "--targetpath", str(tmp_path / "out")]) == 1
        err = capsys.readouterr().err
        assert err == "single-image-dataset: error: the H.264 encoder (libx264) failed on a clip of 2 frames of " \
            "32x32 px, fps 25, crf 23: Invalid argument\n"
        assert not (tmp_path / "out").exists()

    def test_library_errors_are_one_line(self, tmp_path, capsys):
        assert main(["--video", "--clip_len", "1", "--targetpath", str(tmp_path)]) == 1
        err = capsys.readouterr().err
        assert err == "single-image-dataset: error: clip_len should be in [2, 1024] frames (at least the camera " \
            "move's first and last), got 1\n"

    def test_without_pyav_the_preview_works_and_materialize_is_one_line(self, tmp_path, capsys, monkeypatch):
        monkeypatch.setitem(sys.modules, "av", None)
        assert main([*self.ARGS, "--targetpath", str(tmp_path)]) == 0
        out = capsys.readouterr().out
        assert "--materialize would write 6 files (size unknown: MP4 encoding needs PyAV" in out
        assert (tmp_path / "preview.png").is_file()
        assert main([*self.ARGS, "--materialize", "--targetpath", str(tmp_path)]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and 'pip install -e ".[video]"' in err
