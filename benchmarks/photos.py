"""The photographs on which the renderers' fidelity to the reference is measured and tested.

Read by ``benchmarks/fidelity_fast.py`` and ``tests/test_fidelity.py``:

- the two that ship with the package: ``hubble`` (the Hubble Deep Field, 1000x872, mostly black with
  small bright galaxies) and ``coffee`` (600x400, smooth with some texture);
- nine that scikit-image ships inside its wheel, where it is installed (the ``test`` extra installs
  it): read from its data folder with Pillow, without importing scikit-image. Greyscale ones are
  made RGB. Their licences, as scikit-image's ``data`` module states them: ``astronaut`` (a face;
  NASA, public domain), ``camera`` (a man with a camera, fine lines; CC0, Lav Varshney), ``chelsea``
  (a cat, fur; CC0, Stefan van der Walt), ``brick``, ``grass`` and ``gravel`` (fine textures; CC0,
  cc0textures.com), ``text`` (printed characters; public domain), ``retina`` (a fundus photograph,
  fine vessels, 1411x1411; CC0) and ``rocket`` (public domain, SpaceX);
- two made here, hard cases on purpose: ``zone_plate`` (concentric rings whose frequency rises to
  the source's Nyquist limit in the corners) and ``fine_lines`` (dark lines 0.6 to 2.5 px wide at
  random angles on a light ground).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
from PIL import Image

from single_image_dataset import DEFAULT_IMAGE, HUBBLE_IMAGE, load_image

__all__ = ["EMBEDDED", "PROCEDURAL", "SKIMAGE", "fine_lines", "load_photo", "photo_names", "zone_plate"]

EMBEDDED = ("hubble", "coffee")
SKIMAGE = ("astronaut", "camera", "chelsea", "brick", "grass", "gravel", "text", "retina", "rocket")
PROCEDURAL = ("zone_plate", "fine_lines")


def photo_names() -> tuple[str, ...]:
    """The photographs available here: scikit-image's only where it is installed."""
    return EMBEDDED + tuple(_skimage_files()) + PROCEDURAL


def load_photo(name: str) -> Image.Image:
    """The RGB photograph ``name``, one of :func:`photo_names`.

    Raises:
        ValueError: ``name`` is not available here.
    """
    if name == "hubble":
        return load_image(HUBBLE_IMAGE)
    if name == "coffee":
        return load_image(DEFAULT_IMAGE)
    if name == "zone_plate":
        return zone_plate()
    if name == "fine_lines":
        return fine_lines()
    path = _skimage_files().get(name)
    if path is None:
        raise ValueError(f"photo should be one of {', '.join(photo_names())}, got {name!r}")
    with Image.open(path) as image:
        return image.convert("RGB")


def zone_plate(size: int = 512) -> Image.Image:
    """Grey rings ``cos(pi r**2 / (size sqrt 2))``: their frequency grows with the radius r, to 0.5 cycle/px
    in the corners."""
    y, x = np.mgrid[:size, :size] - size / 2
    level = 127.5 + 127.5 * np.cos(math.pi * (x**2 + y**2) / (size * math.sqrt(2)))
    return Image.fromarray(np.repeat(np.round(level).astype(np.uint8)[..., None], 3, axis=2))


def fine_lines(size: int = 512, count: int = 24) -> Image.Image:
    """``count`` dark lines 0.6 to 2.5 px wide, at random angles and offsets, on a light ground (seeded)."""
    rng = np.random.default_rng(0)
    image = np.full((size, size, 3), 230, dtype=np.uint8)
    y, x = np.mgrid[:size, :size] - size / 2
    for _ in range(count):
        angle, offset, width = rng.uniform(0, math.pi), rng.uniform(-size / 2, size / 2), rng.uniform(0.6, 2.5)
        image[np.abs(x * math.cos(angle) + y * math.sin(angle) - offset) < width / 2] = rng.integers(0, 120, 3)
    return Image.fromarray(image)


def _skimage_files() -> dict[str, Path]:
    """The files of :data:`SKIMAGE` in scikit-image's data folder, found without importing scikit-image
    (slow to import); none where it is not installed."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        return {}
    folder = Path(spec.origin).parent / "data"
    found = {path.stem: path for path in folder.glob("*.*") if path.suffix in (".png", ".jpg")}
    return {name: found[name] for name in SKIMAGE if name in found}
