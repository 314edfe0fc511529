"""AugmentConfig: the paper's defaults, validation of every field, TOML and dict round trips."""

from __future__ import annotations

import dataclasses

import pytest

from single_image_dataset import IMAGENET_TRAIN_SIZE, AugmentConfig

pytestmark = pytest.mark.filterwarnings("error")


class TestDefaults:
    def test_paper_defaults(self):
        cfg = AugmentConfig()
        assert (cfg.img_size, cfg.num_imgs, cfg.seed) == (256, IMAGENET_TRAIN_SIZE, 0)
        assert (cfg.deg, cfg.shear, cfg.vflip) == (30.0, 30.0, False)
        assert (cfg.cropfirst, cfg.initcrop, cfg.scale, cfg.randinterp) == (True, 0.5, (500.0, 1.0), False)
        assert (cfg.jitter, cfg.jitter_p, cfg.debug) == ((0.4, 0.4, 0.4, 0.1), 0.5, False)

    def test_derived_sizes(self):
        assert AugmentConfig().resize_size == 362  # int(sqrt(2) * 256), as the original
        assert AugmentConfig(img_size=32).resize_size == 45
        assert AugmentConfig().area_range == (1 / 500, 1.0)

    def test_frozen_and_hashable(self):
        cfg = AugmentConfig()
        with pytest.raises(dataclasses.FrozenInstanceError):
            cfg.img_size = 3  # type: ignore[misc]
        assert hash(cfg) == hash(AugmentConfig())

    def test_lists_become_tuples(self):
        cfg = AugmentConfig(scale=[100, 2], jitter=[0, 0, 0, 0])
        assert cfg.scale == (100.0, 2.0) and cfg.jitter == (0.0, 0.0, 0.0, 0.0)


class TestValidation:
    @pytest.mark.parametrize(
        ("changes", "match"),
        [
            ({"img_size": 0}, r"img_size should be in \[1, 8192\] pixels, got 0"),
            ({"num_imgs": 0}, r"num_imgs should be in \[1, \d+\] \(sys.maxsize, the most len\(\) can return\), got 0"),
            ({"num_imgs": -5}, r"num_imgs should be in \[1, \d+\] .*, got -5"),
            ({"seed": -1}, r"seed should be in \[0, 2\*\*63\)"),
            ({"deg": -1}, r"deg should be in \[0, 180\] degrees, got -1"),
            ({"deg": 181}, r"deg should be in \[0, 180\]"),
            ({"shear": 90}, r"shear should be in \[0, 90\) degrees, got 90"),
            ({"shear": -3}, r"shear should be in \[0, 90\)"),
            ({"initcrop": 1.5}, r"initcrop should be in \(0, 1\], got 1.5"),
            ({"initcrop": 0}, r"initcrop should be in \(0, 1\], got 0"),
            ({"scale": (0.5, 1)}, r"scale\[0\] >= scale\[1\] > 0"),
            ({"scale": (1, 500)}, r"scale\[0\] >= scale\[1\] > 0"),
            ({"scale": (500, 0)}, r"scale\[0\] >= scale\[1\] > 0"),
            ({"scale": (float("inf"), 1)}, r"scale\[0\] >= scale\[1\] > 0"),
            ({"scale": (1, 1)}, r"never fits; scale\[0\] must exceed 1"),
            ({"scale": (1.001, 1.0)}, r"fit only 0.09% of the time"),
            ({"jitter": (-0.1, 0.4, 0.4, 0.1)}, r"jitter brightness should be a non-negative number"),
            ({"jitter": (0.4, 0.4, float("nan"), 0.1)}, r"jitter saturation should be a non-negative number"),
            ({"jitter": (0.4, 0.4, 0.4, 0.6)}, r"jitter hue should be in \[0, 0.5\], got 0.6"),
            ({"jitter_p": 1.5}, r"jitter_p should be a probability in \[0, 1\], got 1.5"),
        ],
    )
    def test_invalid_ranges(self, changes, match):
        with pytest.raises(ValueError, match=match):
            AugmentConfig(**changes)

    @pytest.mark.parametrize(
        ("changes", "match"),
        [
            ({"img_size": 64.0}, r"img_size should be an integer, got 64.0"),
            ({"num_imgs": "10"}, r"num_imgs should be an integer"),
            ({"vflip": 1}, r"vflip should be true or false, got 1"),
            ({"deg": True}, r"deg should be a number, got True"),
            ({"scale": (500,)}, r"scale should be a sequence of 2 numbers"),
            ({"jitter": "strong"}, r"jitter should be a sequence of 4 numbers"),
        ],
    )
    def test_wrong_types(self, changes, match):
        with pytest.raises(TypeError, match=match):
            AugmentConfig(**changes)

    def test_replace_validates_and_rejects_unknown_names(self):
        cfg = AugmentConfig()
        assert cfg.replace(img_size=32).img_size == 32
        with pytest.raises(ValueError, match=r"initcrop should be in \(0, 1\]"):
            cfg.replace(initcrop=2)
        with pytest.raises(TypeError, match=r"unknown key 'img_szie'.*valid keys are: img_size"):
            cfg.replace(img_szie=32)


class TestSerialisation:
    def test_dict_round_trip(self):
        cfg = AugmentConfig(img_size=48, vflip=True, scale=(100, 2), jitter=(0.1, 0.2, 0.3, 0.05))
        d = cfg.to_dict()
        assert d["scale"] == [100.0, 2.0]
        assert AugmentConfig.from_dict(d) == cfg

    def test_toml(self, tmp_path):
        path = tmp_path / "c.toml"
        path.write_text("img_size = 32\nnum_imgs = 50000\nscale = [500, 1]\nvflip = true\n")
        cfg = AugmentConfig.from_toml(path, seed=7)
        assert (cfg.img_size, cfg.num_imgs, cfg.vflip, cfg.seed) == (32, 50000, True, 7)

    def test_to_toml_round_trip(self, tmp_path):
        cfg = AugmentConfig(img_size=48, vflip=True, scale=(100, 2), jitter=(0.1, 0.2, 0.3, 0.05), seed=9)
        path = tmp_path / "c.toml"
        path.write_text(cfg.to_toml())
        assert AugmentConfig.from_toml(path) == cfg
        assert "vflip = true" in cfg.to_toml().splitlines()

    def test_toml_unknown_key(self, tmp_path):
        path = tmp_path / "c.toml"
        path.write_text("img_size = 32\nrotation = 10\n")
        with pytest.raises(ValueError, match=r"c.toml: unknown key 'rotation'"):
            AugmentConfig.from_toml(path)

    def test_toml_malformed(self, tmp_path):
        path = tmp_path / "c.toml"
        path.write_text("img_size = = 32\n")
        with pytest.raises(ValueError, match=r"c.toml is not valid TOML"):
            AugmentConfig.from_toml(path)

    def test_toml_invalid_value(self, tmp_path):
        path = tmp_path / "c.toml"
        path.write_text("initcrop = 1.5\n")
        with pytest.raises(ValueError, match=r"c.toml: initcrop should be in \(0, 1\]"):
            AugmentConfig.from_toml(path)

    def test_toml_missing(self, tmp_path):
        with pytest.raises(FileNotFoundError, match=r"config file not found: .*nope.toml"):
            AugmentConfig.from_toml(tmp_path / "nope.toml")
