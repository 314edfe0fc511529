"""Fidelity of every renderer against the reference renderer (the oracle): the tables of docs/renderers.md.

For each renderer (the fast renderer's native kernels and its OpenCV implementation, and the torch
renderer on the CPU), each photograph of ``benchmarks/photos.py`` (those that ship with the package,
scikit-image's where it is installed, and two hard cases made here) and each img_size (4, 8, 32, 64 and
256 px: 4 and 8 px show the floor), prints the mean PSNR in dB against the reference over the same
``--samples`` samples, with colour jitter off (the geometry alone); then, per renderer and size, the
mean over the photographs with the jitter off and on (every sample jittered), and the black-fill
pixels that differ from the reference's on a white source. tests/test_fidelity.py holds the
renderers to bounds on the same quantities; this script reports the values.

It uses only the renderers' public API, so the same script measures an older checkout too
(``PYTHONPATH=path/to/checkout python benchmarks/fidelity_fast.py``).

Run from the repository root::

    python benchmarks/fidelity_fast.py                      # about 5 minutes
    python benchmarks/fidelity_fast.py --samples 4 --sizes 32 64   # a quick look
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import platform
import sys
from collections.abc import Callable, Sequence

import numpy as np
import torch
from photos import load_photo, photo_names  # benchmarks/photos.py, beside this script
from PIL import Image

from single_image_dataset import AugmentConfig, Renderer, get_renderer, sample_params_batch
from single_image_dataset.render import fast

SIZES = (4, 8, 32, 64, 256)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=16, help="samples per photograph and size (default: 16)")
    parser.add_argument("--sizes", type=int, nargs="+", default=SIZES, help=f"img_size values (default: {SIZES})")
    parser.add_argument("--photos", nargs="+", choices=photo_names(), help="photographs (default: all available)")
    args = parser.parse_args(argv)
    if args.samples < 1 or min(args.sizes) < 1:
        parser.error("--samples and --sizes should be positive")
    torch.set_num_threads(1)
    photos = args.photos or photo_names()
    builders = _renderers()
    shown = " ".join(sys.argv[1:] if argv is None else argv)
    print(f"`python benchmarks/fidelity_fast.py{' ' + shown if shown else ''}` "
          f"({datetime.date.today()}, {platform.machine()}, torch {torch.__version__}, fast renderer: "
          f"{fast.implementation()}); {args.samples} samples per photograph and size\n")

    off: dict[tuple[str, str, int], float] = {}
    on: dict[tuple[str, str, int], float] = {}
    for photo in photos:
        image = load_photo(photo)
        renderers = {name: build(image) for name, build in builders.items()}
        reference = get_renderer("reference", image)
        for size in args.sizes:
            for jitter_p, table in ((0.0, off), (1.0, on)):
                config = AugmentConfig(img_size=size, jitter_p=jitter_p)
                batch = sample_params_batch(config, image.size, range(args.samples))
                expected = _render(reference, batch)
                for name, renderer in renderers.items():
                    table[name, photo, size] = float(np.mean(_psnr(_render(renderer, batch), expected)))
        print(f"measured {photo} {image.width}x{image.height}", file=sys.stderr, flush=True)

    sizes = " | ".join(f"{size} px" for size in args.sizes)
    print(f"Mean PSNR against the reference (dB), jitter off:\n\n| photograph | renderer | {sizes} |")
    print("|---|---|" + "---:|" * len(args.sizes))
    for photo in photos:
        for name in builders:
            cells = " | ".join(f"{off[name, photo, size]:.1f}" for size in args.sizes)
            print(f"| {photo} | {name} | {cells} |")
    print(f"\nMean over the {len(photos)} photographs (dB), jitter off / on:\n\n| renderer | {sizes} |")
    print("|---|" + "---:|" * len(args.sizes))
    for name in builders:
        cells = " | ".join(
            f"{np.mean([off[name, p, size] for p in photos]):.1f} / {np.mean([on[name, p, size] for p in photos]):.1f}"
            for size in args.sizes
        )
        print(f"| {name} | {cells} |")
    print()
    for name, build in builders.items():
        print(f"{name}: black fill (white source, deg=90, shear=60, 24 samples x 32/64/256 px): {_fill(build)}")
    return 0


def _renderers() -> dict[str, Callable[[Image.Image], Renderer]]:
    """The renderers to measure by name: the fast renderer's implementations available here, and torch."""
    builders: dict[str, Callable[[Image.Image], Renderer]] = {}
    if fast.implementation() != "opencv":
        builders["fast (native)"] = lambda image: fast.FastRenderer(image, "native")
    if importlib.util.find_spec("cv2") is not None:
        builders["fast (opencv)"] = lambda image: fast.FastRenderer(image, "opencv")
    builders["torch (cpu)"] = lambda image: get_renderer("torch", image)
    return builders


def _render(renderer: Renderer, batch) -> torch.Tensor:
    side = batch.output_size if batch.debug_size is None else batch.debug_size
    out = torch.empty((len(batch), 3, side, side), dtype=torch.uint8)
    renderer.render_batch(batch, out)
    return out


def _psnr(images: torch.Tensor, expected: torch.Tensor) -> np.ndarray:
    """The PSNR of each image against the expected one (100 dB for equal images)."""
    mse = ((images.double() - expected.double()) ** 2).mean(dim=(1, 2, 3)).numpy()
    return 10 * np.log10(255.0**2 / np.maximum(mse, 255.0**2 * 1e-10))


def _fill(build: Callable[[Image.Image], Renderer]) -> str:
    white = Image.new("RGB", (600, 400), (255, 255, 255))
    reference, renderer = get_renderer("reference", white), build(white)
    differ = filled = total = 0
    for size in (32, 64, 256):
        batch = sample_params_batch(AugmentConfig(img_size=size, jitter_p=0.0, deg=90.0, shear=60.0), white.size,
                                    range(24))
        ref = (_render(reference, batch) == 0).all(dim=1)
        out = (_render(renderer, batch) == 0).all(dim=1)
        differ, filled, total = differ + int((ref != out).sum()), filled + int(ref.sum()), total + ref.numel()
    return f"{differ} of {total:,} pixels differ ({filled:,} filled)"


if __name__ == "__main__":
    sys.exit(main())
