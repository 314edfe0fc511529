"""The TOML presets in configs/: each loads, renders, runs through the CLI, and says what it claims."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from single_image_dataset import IMAGENET_TRAIN_SIZE, AugmentConfig, SingleImageDataset
from single_image_dataset.cli import main

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

pytestmark = pytest.mark.filterwarnings("error")

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
# The fake-video presets (VideoConfig, tests/test_video.py) are named fakevideo*.toml; the others are AugmentConfig's.
PRESETS = sorted(p for p in CONFIGS.glob("*.toml") if not p.name.startswith("fakevideo"))
FIELDS = [f.name for f in dataclasses.fields(AugmentConfig)]


def test_the_promised_presets_exist():
    assert {"paper_imagenet.toml", "cifar32.toml", "debug.toml"} <= {p.name for p in PRESETS}


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
class TestEveryPreset:
    def test_lists_every_field(self, preset):
        # Presets are read as documentation too: no value is left to a default.
        assert sorted(tomllib.loads(preset.read_text())) == sorted(FIELDS)

    def test_renders(self, preset):
        config = AugmentConfig.from_toml(preset, num_imgs=4)
        img, label = SingleImageDataset(config=config)[3]
        side = 32 if config.debug else config.img_size
        assert img.size == (side, side) and img.mode == "RGB" and label == 0

    def test_runs_through_the_cli(self, preset, tmp_path, capsys):
        assert main(["--config", str(preset), "--num_imgs", "4", "--targetpath", str(tmp_path)]) == 0
        out = capsys.readouterr().out
        printed = AugmentConfig.from_dict(tomllib.loads(out.split("\nsource: ")[0]))
        assert printed == AugmentConfig.from_toml(preset, num_imgs=4)
        assert (tmp_path / "preview.png").is_file()
        if printed.debug:  # a debug config runs like --debug: it also exports
            assert json.loads((tmp_path / "manifest.json").read_text())["dataset"]["config"]["debug"] is True

    def test_unknown_key_is_named(self, preset, tmp_path):
        bad = tmp_path / preset.name
        shutil.copy(preset, bad)
        with open(bad, "a", encoding="utf-8") as f:
            f.write("\nimg_szie = 64\n")
        with pytest.raises(ValueError, match=rf"config file .*{preset.name}: unknown key 'img_szie' in config"):
            AugmentConfig.from_toml(bad)


def test_paper_imagenet():
    config = AugmentConfig.from_toml(CONFIGS / "paper_imagenet.toml")
    assert config == AugmentConfig()  # the library's defaults are the paper's
    assert (config.img_size, config.num_imgs) == (256, IMAGENET_TRAIN_SIZE) == (256, 1_281_167)


def test_cifar32_is_the_paper_augmentation_at_32_px():
    config = AugmentConfig.from_toml(CONFIGS / "cifar32.toml")
    assert (config.img_size, config.num_imgs) == (32, 50_000)
    assert config == AugmentConfig().replace(img_size=32, num_imgs=50_000)


def test_debug():
    config = AugmentConfig.from_toml(CONFIGS / "debug.toml")
    assert config.debug and config.num_imgs == 64
    assert config.replace(debug=False, num_imgs=IMAGENET_TRAIN_SIZE) == AugmentConfig()


def test_debug_preset_equals_the_debug_flag(tmp_path, capsys):
    outputs = []
    for argv in (["--config", str(CONFIGS / "debug.toml")], ["--debug"]):
        target = tmp_path / str(len(outputs))
        assert main([*argv, "--img_size", "32", "--format", "png", "--targetpath", str(target)]) == 0
        outputs.append(capsys.readouterr().out.split("\nsource: ")[0])
        assert len(os.listdir(target / "train" / "dummy")) == 64
    assert outputs[0] == outputs[1]
    for k in range(64):
        name = f"train/dummy/patch_{k:02d}.png"
        assert (tmp_path / "0" / name).read_bytes() == (tmp_path / "1" / name).read_bytes()


def test_malformed_preset(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("img_size = 32\nscale = [500.0, 1.0\n")
    with pytest.raises(ValueError, match=r"config file .*bad\.toml is not valid TOML: "):
        AugmentConfig.from_toml(bad)


def test_invalid_value_in_preset(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("initcrop = 1.5\n")
    with pytest.raises(ValueError, match=r"config file .*bad\.toml: initcrop should be in \(0, 1\], got 1\.5"):
        AugmentConfig.from_toml(bad)
