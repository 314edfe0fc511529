"""Build a small labelled ImageFolder (train/ val/) for linear probes, with no downloads.

Ten classes of ``--size`` px RGB images, every image drawn from its own seeded generator:

* ``hubble``, ``coffee``: random square crops (side 20-60 % of the photo's short side, random
  position, random horizontal flip) of the two photographs, resized bicubically;
* eight procedural textures, each with two random colours, a random scale and phase, a random
  orientation jitter of +-15 degrees, random contrast and Gaussian pixel noise: ``stripes_h``,
  ``stripes_v``, ``stripes_diag`` (either diagonal, so a horizontal flip keeps the class),
  ``checker``, ``dots``, ``rings``, ``blobs`` (thresholded low-frequency noise) and ``grain``
  (blurred high-frequency noise).

    python benchmarks/make_probe_set.py runs/probe_set                # 200 train + 50 val per class
    python benchmarks/make_probe_set.py runs/probe_set --train 100 --val 30 --size 64
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from single_image_dataset import DEFAULT_IMAGE, HUBBLE_IMAGE, load_image

__all__ = ["CLASSES", "make_probe_set"]

_COFFEE = DEFAULT_IMAGE
_Pattern = Callable[[np.random.Generator, np.ndarray, np.ndarray], np.ndarray]


def _oriented(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, degrees: float) -> tuple[np.ndarray, ...]:
    theta = math.radians(degrees + rng.uniform(-15, 15))
    return x * math.cos(theta) + y * math.sin(theta), -x * math.sin(theta) + y * math.cos(theta)


def _stripes(degrees: float) -> _Pattern:
    def draw(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        u, _ = _oriented(rng, x, y, degrees)
        return np.sin(2 * math.pi * rng.uniform(3, 9) * u + rng.uniform(0, 2 * math.pi)) > 0

    return draw


def _diagonal(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return _stripes(45.0 if rng.random() < 0.5 else 135.0)(rng, x, y)


def _checker(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    u, v = _oriented(rng, x, y, 0.0)
    f = rng.uniform(2, 6)
    return np.sin(2 * math.pi * f * u + rng.uniform(0, 6.3)) * np.sin(2 * math.pi * f * v + rng.uniform(0, 6.3)) > 0


def _dots(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    u, v = _oriented(rng, x, y, 0.0)
    period = 1 / rng.uniform(3, 7)
    du = (u + rng.uniform(0, 1)) % period - period / 2
    dv = (v + rng.uniform(0, 1)) % period - period / 2
    return du**2 + dv**2 < (rng.uniform(0.2, 0.4) * period) ** 2


def _rings(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    r = np.hypot(x - rng.uniform(-0.5, 0.5), y - rng.uniform(-0.5, 0.5))
    return np.sin(2 * math.pi * rng.uniform(3, 8) * r + rng.uniform(0, 2 * math.pi)) > 0


def _noise_mask(rng: np.random.Generator, shape: tuple[int, int], cells: int, blur: float) -> np.ndarray:
    coarse = Image.fromarray((rng.random((cells, cells)) * 255).astype(np.uint8))
    fine = coarse.resize(shape[::-1], Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(blur))
    values = np.asarray(fine, dtype=np.float64)
    return values > np.median(values)


def _blobs(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return _noise_mask(rng, x.shape, int(rng.integers(3, 7)), 1.0)


def _grain(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return _noise_mask(rng, x.shape, x.shape[0] // int(rng.integers(1, 3)), 0.5)


_PATTERNS: dict[str, _Pattern] = {
    "stripes_h": _stripes(0.0),
    "stripes_v": _stripes(90.0),
    "stripes_diag": _diagonal,
    "checker": _checker,
    "dots": _dots,
    "rings": _rings,
    "blobs": _blobs,
    "grain": _grain,
}
CLASSES = ("hubble", "coffee", *_PATTERNS)


def _texture(pattern: _Pattern, rng: np.random.Generator, size: int) -> Image.Image:
    y, x = np.mgrid[0:size, 0:size] / size - 0.5
    mask = pattern(rng, x, y).astype(np.float64)[..., None]
    background, foreground = rng.random(3), rng.random(3)
    contrast = rng.uniform(0.4, 1.0)
    image = background + contrast * (foreground - background) * mask
    image += rng.normal(0, rng.uniform(0.0, 0.12), image.shape)
    return Image.fromarray((np.clip(image, 0, 1) * 255).round().astype(np.uint8))


def _photo_crop(photo: Image.Image, rng: np.random.Generator, size: int) -> Image.Image:
    side = int(rng.uniform(0.2, 0.6) * min(photo.size))
    left = int(rng.integers(0, photo.width - side + 1))
    top = int(rng.integers(0, photo.height - side + 1))
    crop = photo.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BICUBIC)
    return crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else crop


def make_probe_set(
    root: str | Path, train: int = 200, val: int = 50, size: int = 64, seed: int = 0, coffee: str | Path = _COFFEE
) -> Path:
    """Write ``root/{train,val}/<class>/<i>.png`` for the ten :data:`CLASSES`; returns ``root``.

    Image ``i`` of class ``c`` in split ``s`` is drawn from ``SeedSequence([seed, c, s, i])``, so
    the set is reproducible and the splits never share an image.
    """
    root = Path(root)
    photos = {"hubble": load_image(HUBBLE_IMAGE), "coffee": load_image(coffee)}
    for split_id, (split, count) in enumerate((("train", train), ("val", val))):
        for class_id, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                rng = np.random.default_rng([seed, class_id, split_id, i])
                if name in photos:
                    image = _photo_crop(photos[name], rng, size)
                else:
                    image = _texture(_PATTERNS[name], rng, size)
                image.save(folder / f"{i:04d}.png")
    return root


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root", help="output folder (gets train/ and val/)")
    p.add_argument("--train", type=int, default=200, help="training images per class")
    p.add_argument("--val", type=int, default=50, help="validation images per class")
    p.add_argument("--size", type=int, default=64, help="side of the images in px")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--coffee", default=str(_COFFEE), help="path of the coffee photograph (default: the embedded one)")
    args = p.parse_args(argv)
    if min(args.train, args.val) < 1 or args.size < 8 or args.seed < 0:
        print("make_probe_set.py: error: --train and --val should be >= 1, --size >= 8, --seed >= 0", file=sys.stderr)
        return 2
    try:
        root = make_probe_set(args.root, args.train, args.val, args.size, args.seed, args.coffee)
    except (OSError, ValueError) as exc:
        print(f"make_probe_set.py: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(CLASSES)} classes x ({args.train} train + {args.val} val) images of {args.size} px to {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
