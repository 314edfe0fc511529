"""Fidelity of the fast renderer against the reference renderer, per implementation: the figures in docs/renderers.md.

For the Hubble image (1000x872), the default coffee image (600x400) and the latter upscaled to
2400x1600, at img_size 32, 64 and 256, prints the mean PSNR over ``--samples`` samples (and the lowest
single sample) with colour jitter off and on every sample, and the black-fill pixels that differ on a
white source, for the native kernels and for OpenCV alone, or (``--backend torch``) for the torch
renderer on the CPU device. The tests (tests/test_fast_renderer.py, tests/test_torch_renderer.py)
hold the same quantities to the tolerances; this script reports the values.

Run from the repository root::

    python benchmarks/fidelity_fast.py
    python benchmarks/fidelity_fast.py --backend torch
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from single_image_dataset import (
    DEFAULT_IMAGE,
    HUBBLE_IMAGE,
    AugmentConfig,
    Renderer,
    get_renderer,
    load_image,
    sample_params,
)
from single_image_dataset.render import fast

SIZES = (32, 64, 256)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=32, help="samples per case (default: 32)")
    parser.add_argument("--backend", choices=("fast", "torch"), default="fast", help="the renderer (default: fast)")
    args = parser.parse_args(argv)
    if args.samples < 1:
        parser.error("--samples should be positive")
    coffee = load_image(DEFAULT_IMAGE)
    photos = {
        "hubble 1000x872": load_image(HUBBLE_IMAGE),
        "coffee 600x400": coffee,
        "coffee 2400x1600": coffee.resize((2400, 1600), Image.Resampling.BICUBIC),
    }
    renderers = _renderers(args.backend)
    print("| implementation | photo | img_size | mean PSNR, jitter off (lowest) | mean PSNR, jitter on (lowest) |")
    print("|---|---|---|---|---|")
    for name, build in renderers.items():
        for label, image in photos.items():
            reference, renderer = get_renderer("reference", image), build(image)
            for size in SIZES:
                cells = []
                for jitter_p in (0.0, 1.0):
                    config = AugmentConfig(img_size=size, jitter_p=jitter_p)
                    values = [_psnr(reference.render(p), renderer.render(p))
                              for p in (sample_params(config, image.size, i) for i in range(args.samples))]
                    cells.append(f"{np.mean(values):.1f} dB ({min(values):.1f})")
                print(f"| {name} | {label} | {size} | {cells[0]} | {cells[1]} |", flush=True)
    print()
    for name, build in renderers.items():
        white = Image.new("RGB", (600, 400), (255, 255, 255))
        reference, renderer = get_renderer("reference", white), build(white)
        differ = filled = total = 0
        for size in SIZES:
            config = AugmentConfig(img_size=size, jitter_p=0.0, deg=90.0, shear=60.0)
            for index in range(24):
                p = sample_params(config, white.size, index)
                ref = np.asarray(reference.render(p)).max(-1) == 0
                out = np.asarray(renderer.render(p)).max(-1) == 0
                differ, filled, total = differ + int((ref != out).sum()), filled + int(ref.sum()), total + ref.size
        print(f"{name}: black fill (white source, deg=90, shear=60, 24 samples x {SIZES} px): "
              f"{differ} of {total:,} pixels differ ({filled:,} filled)")
    return 0


def _renderers(backend: str) -> dict[str, Callable[[Image.Image], Renderer]]:
    """The renderers to measure, by the name of their implementation."""
    if backend == "torch":
        return {"torch (cpu)": lambda image: get_renderer("torch", image)}
    names = ("opencv",) if fast.implementation() == "opencv" else fast.IMPLEMENTATIONS
    return {name: lambda image, name=name: fast.FastRenderer(image, name) for name in names}


def _psnr(a: Image.Image, b: Image.Image) -> float:
    mse = float(np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2))
    return 100.0 if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


if __name__ == "__main__":
    sys.exit(main())
