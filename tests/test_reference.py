"""The reference renderer equals torchvision applied to the same parameters, exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as F
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

from single_image_dataset import AugmentConfig, SingleImageDataset
from single_image_dataset.params import JITTER_OPS, SampleParams

pytestmark = pytest.mark.filterwarnings("error")

CONFIGS = {
    "paper": AugmentConfig(img_size=64, jitter_p=1.0),
    "knobs": AugmentConfig(img_size=48, vflip=True, randinterp=True, cropfirst=False, jitter_p=0.5),
    "rotate_only": AugmentConfig(img_size=32, shear=0, deg=45, vflip=True),
    "no_warp": AugmentConfig(img_size=32, shear=0, deg=0, jitter=(0.4, 0.0, 0.4, 0.0), jitter_p=1.0),
    "debug": AugmentConfig(img_size=64, debug=True),
}

MODES = {
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
    "lanczos": InterpolationMode.LANCZOS,
}


def _by_hand(src: Image.Image, p: SampleParams) -> Image.Image:
    """The chain written out with torchvision.transforms.functional, straight from the spec."""
    img = src if p.crop is None else F.crop(src, p.crop[0], p.crop[1], p.crop[2], p.crop[3])
    top, left, h, w = p.resized_crop
    img = F.resized_crop(img, top, left, h, w, [p.resize, p.resize], MODES[p.interpolation], antialias=True)
    if p.warp == "affine":
        img = F.affine(img, p.angle, [0, 0], 1.0, list(p.shear), InterpolationMode.BILINEAR, fill=0)
    elif p.warp == "rotate":
        img = F.rotate(img, p.angle, InterpolationMode.BILINEAR, fill=0)
    if p.vflip:
        img = F.vflip(img)
    img = F.center_crop(img, p.output_size)
    if p.debug_size:
        img = F.resize(img, [p.debug_size, p.debug_size], antialias=True)
    if p.jitter:
        adjust = {"brightness": F.adjust_brightness, "contrast": F.adjust_contrast,
                  "saturation": F.adjust_saturation, "hue": F.adjust_hue}
        for name in p.jitter.order:
            img = adjust[name](img, getattr(p.jitter, name))
    return img


def _torchvision_pipeline(cfg: AugmentConfig, p: SampleParams, monkeypatch: pytest.MonkeyPatch) -> T.Compose:
    """torchvision's own transform classes, their ``get_params`` patched to return ``p``."""
    steps: list = []
    if p.crop is not None:
        monkeypatch.setattr(T.RandomCrop, "get_params", staticmethod(lambda img, size: p.crop))
        steps.append(T.RandomCrop(p.crop[2]))
    monkeypatch.setattr(T.RandomResizedCrop, "get_params", staticmethod(lambda img, scale, ratio: p.resized_crop))
    steps.append(T.RandomResizedCrop(p.resize, interpolation=MODES[p.interpolation], antialias=True))
    if p.warp == "affine":
        monkeypatch.setattr(
            T.RandomAffine, "get_params",
            staticmethod(lambda *args: (p.angle, (0, 0), 1.0, p.shear)),
        )
        steps.append(T.RandomAffine(cfg.deg, shear=cfg.shear, interpolation=InterpolationMode.BILINEAR, fill=0))
    elif p.warp == "rotate":
        monkeypatch.setattr(T.RandomRotation, "get_params", staticmethod(lambda degrees: p.angle))
        steps.append(T.RandomRotation(cfg.deg, interpolation=InterpolationMode.BILINEAR))
    if p.vflip:
        steps.append(T.RandomVerticalFlip(p=1.0))
    steps.append(T.CenterCrop(p.output_size))
    if p.debug_size:
        steps.append(T.Resize((p.debug_size, p.debug_size)))
    if p.jitter:
        j = p.jitter
        fn_idx = torch.tensor([JITTER_OPS.index(name) for name in j.order]
                              + [i for i, name in enumerate(JITTER_OPS) if name not in j.order])
        monkeypatch.setattr(
            T.ColorJitter, "get_params",
            staticmethod(lambda *args: (fn_idx, j.brightness, j.contrast, j.saturation, j.hue)),
        )
        steps.append(T.ColorJitter(*cfg.jitter))
    return T.Compose(steps)


@pytest.mark.parametrize("name", CONFIGS)
def test_equals_functional_ops_by_hand(name, coffee_path):
    ds = SingleImageDataset(coffee_path, config=CONFIGS[name], num_imgs=100, backend="reference")
    for i in range(12):
        p = ds.params(i)
        ours = np.asarray(ds[i][0])
        assert np.array_equal(ours, np.asarray(_by_hand(ds.source, p))), (name, i, p)


@pytest.mark.parametrize("name", CONFIGS)
def test_equals_torchvision_transforms(name, hubble_path, monkeypatch):
    ds = SingleImageDataset(hubble_path, config=CONFIGS[name], num_imgs=100, backend="reference")
    for i in range(8):
        p = ds.params(i)
        with monkeypatch.context() as patch:
            expected = _torchvision_pipeline(ds.config, p, patch)(ds.source)
        assert np.array_equal(np.asarray(ds[i][0]), np.asarray(expected)), (name, i, p)


def test_output_is_rgb_of_img_size(backend):
    for cfg in CONFIGS.values():
        ds = SingleImageDataset(config=cfg, num_imgs=10, backend=backend)
        img = ds[3][0]
        side = cfg.img_size if not cfg.debug else 32
        assert img.mode == "RGB" and img.size == (side, side)


def test_zero_fill_only_where_the_warp_leaves_the_box():
    # A constant source: black pixels can only come from the affine's fill outside the resized crop.
    def black_fraction(cfg: AugmentConfig) -> float:
        ds = SingleImageDataset(Image.new("RGB", (300, 300), (200, 150, 100)), config=cfg, num_imgs=40)
        return max(float(np.all(np.asarray(ds[i][0]) == 0, axis=2).mean()) for i in range(40))

    assert black_fraction(AugmentConfig(img_size=64, deg=30, shear=60, jitter_p=0.0)) > 0.01
    assert black_fraction(AugmentConfig(img_size=64, deg=45, shear=0, jitter_p=0.0)) == 0.0  # sqrt(2) margin
    assert black_fraction(AugmentConfig(img_size=64, deg=0, shear=0, jitter_p=0.0)) == 0.0
