"""Does composing a view's crop and flip with its sample's map into one warp from the source pay?

The fast renderer makes each view from its rendered sample: the sample is rendered once into a scratch buffer
(its resize and warp from the source's pyramid), then each view is resized from it with Pillow's filter. A view
that does not enlarge its sample (its crop at least as large as the view, both ways) could instead be rendered
straight from the source, by the sample's own resize and warp with the view's crop and flip composed into the
warp's map: the sample is then never rendered, but every such view pays a warp, and the view is a bilinear
sample of the resized crop's grid, without the antialiasing of the view's resize.

For SimCLR's views (64 px views of 64 px samples, 224 px views of 256 px samples) this prints: how many views do
not enlarge their sample, and how many samples have no view that does (the sample must be rendered for any
enlarging view, which must carry the sample's resolution); the time per sample of the two ways for two
non-enlarging views (min of ``--repeats`` interleaved passes, one thread); and their fidelity to the reference
renderer's views (mean PSNR over the photographs of ``benchmarks/photos.py``, colour off: no jitter, so that the
geometry alone is compared; composed, a sample's contrast jitter would moreover see the view's mean instead of
the sample's). Run from the repository root::

    python benchmarks/bench_views_compose.py
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
from collections.abc import Sequence

import numpy as np
from _threads import one_thread  # benchmarks/_threads.py, beside this script
from photos import load_photo, photo_names  # benchmarks/photos.py

from single_image_dataset import ParamsBatch, SingleImageDataset, View, ViewParamsBatch, geometry, load_image
from single_image_dataset.params import INTERPOLATIONS
from single_image_dataset.render import fast
from single_image_dataset.render.pyramid import build_pyramid

CASES = ((64, 64), (224, 256))
_IMAGE = load_image(None)  # the default photograph


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=32, help="samples per timed pass (default: 32)")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved passes; the fastest is kept (default: 7)")
    parser.add_argument("--fidelity-samples", type=int, default=4, help="samples per photograph (default: 4)")
    args = parser.parse_args(argv)
    if fast._kernels is None:
        parser.error("the package's C extension was not built: the fast renderer's native kernels are needed")
    one_thread()
    print(f"`python benchmarks/bench_views_compose.py` ({datetime.date.today()}, {platform.machine()}, one thread, "
          f"{fast.implementation()})\n")
    print("| view px (sample px) | views not enlarging | samples with no enlarging view | scratch: us/sample | "
          "composed: us/sample | scratch: dB | composed: dB |\n|---|---|---|---|---|---|---|")
    for size, side in CASES:
        ds = SingleImageDataset(num_imgs=1_000_000, img_size=side, views=[View(size=size)] * 2, backend="fast")
        drawn = ds.view_params_batch(range(20_000))
        keeps = [(view.crop[:, 2] >= size) & (view.crop[:, 3] >= size) for view in drawn]
        scratch_us, composed_us = _timing(size, side, args)
        db = [np.mean([_fidelity(photo, size, side, composed, args.fidelity_samples) for photo in photo_names()])
              for composed in (False, True)]
        print(f"| {size} ({side}) | {np.mean(keeps):.1%} | {np.mean(keeps[0] & keeps[1]):.1%} | {scratch_us:.0f} | "
              f"{composed_us:.0f} | {db[0]:.1f} | {db[1]:.1f} |")
    return 0


def _views(size: int, side: int, n: int) -> ViewParamsBatch:
    """``n`` rows of a colour-free view whose crops do not enlarge: ``size`` to ``side`` px, any aspect ratio."""
    rng = np.random.default_rng(size)
    height, width = rng.integers(size, side + 1, n), rng.integers(size, side + 1, n)
    crop = np.stack([rng.integers(0, side - height + 1), rng.integers(0, side - width + 1), height, width], axis=1)
    return ViewParamsBatch(crop=crop, size=size, hflip=rng.random(n) < 0.5, jitter_on=np.zeros(n, bool),
                           jitter_factors=np.full((n, 4), np.nan), jitter_order=np.full((n, 4), -1, np.int8),
                           grayscale=np.zeros(n, bool), blur_sigma=np.full(n, np.nan), blur_kernel=1,
                           solarize=np.zeros(n, bool))


def _composed_jobs(params: ParamsBatch, views: Sequence[ViewParamsBatch], levels: list[np.ndarray]) -> list[tuple]:
    """The arguments of the kernels' ``render`` that render each view straight from the source: the sample's resize
    and warp, with the view's crop and flip composed into the warp's map (view pixel centres to the sample's, then
    the sample's map), and an RGBX buffer for the view; sample by sample, view by view."""
    jobs = []
    for k, p in enumerate(params.to_list()):
        a, b, c, d, e, f = geometry.output_to_resized(p)
        left, top, right, bottom = geometry.source_box(p)
        level = int(geometry.pyramid_level(right - left, bottom - top, p.resize, len(levels)))
        box = tuple(v * 0.5**level for v in (left, top, right, bottom))
        for view in views:
            y0, x0, h, w = (float(v) for v in view.crop[k])
            sx, sy = w / view.size, h / view.size
            ax, cx = (-sx, x0 + w) if view.hflip[k] else (sx, x0)
            composed = (a * ax, b * sy, a * cx + b * y0 + c, d * ax, e * sy, d * cx + e * y0 + f)
            pixels = np.empty((view.size, view.size, 4), np.uint8)
            jobs.append((levels[level], *levels[level].shape[:2], box, INTERPOLATIONS.index(p.interpolation), p.resize,
                         composed, pixels, view.size))
    return jobs


def _run(jobs: list[tuple]) -> list[np.ndarray]:
    """Render the jobs; each view as a CHW array."""
    for job in jobs:
        fast._kernels.render(*job)
    return [job[-2][..., :3].transpose(2, 0, 1) for job in jobs]


def _timing(size: int, side: int, args: argparse.Namespace) -> tuple[float, float]:
    """Microseconds per sample of two non-enlarging views, from the scratch sample and composed."""
    ds = SingleImageDataset(_IMAGE, num_imgs=1_000_000, img_size=side, jitter_p=0.0, backend="fast",
                            views=[View(size=size)] * 2)
    params, rows = ds.params_batch(range(args.samples)), _views(size, side, 2 * args.samples)
    views = [rows[: args.samples], rows[args.samples :]]
    jobs = _composed_jobs(params, views, build_pyramid(_IMAGE))
    best = {"scratch": np.inf, "composed": np.inf}
    for _ in range(args.repeats):
        start = time.perf_counter()
        ds.render_views(params, views)
        best["scratch"] = min(best["scratch"], time.perf_counter() - start)
        start = time.perf_counter()
        _run(jobs)
        best["composed"] = min(best["composed"], time.perf_counter() - start)
    return best["scratch"] / args.samples * 1e6, best["composed"] / args.samples * 1e6


def _fidelity(photo: str, size: int, side: int, composed: bool, samples: int) -> float:
    """Mean PSNR of non-enlarging views against the reference's, made from the scratch sample or composed."""
    image = load_photo(photo)
    settings = {"num_imgs": 1000, "img_size": side, "jitter_p": 0.0, "views": [View(size=size)]}
    params = SingleImageDataset(image, **settings).params_batch(range(samples))
    views = [_views(size, side, samples)]
    reference = SingleImageDataset(image, backend="reference", **settings).render_views(params, views)[0].numpy()
    if composed:
        got = np.stack(_run(_composed_jobs(params, views, build_pyramid(image))))
    else:
        got = SingleImageDataset(image, backend="fast", **settings).render_views(params, views)[0].numpy()
    mse = ((got.astype(float) - reference) ** 2).mean(axis=(1, 2, 3))
    return float(np.mean(np.where(mse == 0, 100.0, 10 * np.log10(255.0**2 / np.maximum(mse, 1e-12)))))


if __name__ == "__main__":
    sys.exit(main())
