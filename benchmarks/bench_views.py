"""Throughput of views per sample: ``ds[i]`` with ``views="simclr"`` against the per-sample torchvision pipeline.

SimCLR's two views of each sample, at 64 px (64 px samples) and 224 px (256 px samples), one thread (torch and
OpenCV), in one process, the methods interleaved pass by pass (the median of ``--repeats`` passes is printed):

- ``torchvision``: what a user writes today: ``ds[i]`` of a dataset without views, then a torchvision v1
  transform (RandomResizedCrop, RandomHorizontalFlip, RandomApply(ColorJitter(0.8, 0.8, 0.8, 0.2), p=0.8),
  RandomGrayscale(0.2), RandomApply(GaussianBlur(SimCLR's kernel, (0.1, 2.0)), p=0.5)) applied twice;
- ``views/<backend>``: ``ds[i]`` of ``SingleImageDataset(views="simclr", backend=<backend>)``: the same chain,
  per-index reproducible; every backend renders its views with the default ``Renderer.render_views`` (the
  sample, then torchvision's functional ops).

Samples per second and the ratio to ``torchvision`` are printed as a markdown table. Run from the repository
root::

    python benchmarks/bench_views.py            # about two minutes
    python benchmarks/bench_views.py --quick    # a smoke run (too noisy to quote)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import torch
from _threads import one_thread  # benchmarks/_threads.py, beside this script
from torchvision import transforms as T

from single_image_dataset import SingleImageDataset, View

#: (view side, sample side): 224 px views from 256 px samples, as the issue asks.
CASES = ((64, 64), (224, 256))
BACKENDS = ("reference", "fast")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 8 samples, 1 repeat; too noisy to quote")
    parser.add_argument("--samples", type=int, default=60, help="samples per timed pass (default: 60)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved passes; the median is printed (default: 5)")
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.repeats = 8, 1
    if min(args.samples, args.repeats) < 1:
        parser.error("--samples and --repeats should be positive")
    one_thread()
    print("| view px (sample px) | method | samples/s (2 views each) | vs torchvision |\n|---|---|---|---|")
    for size, side in CASES:
        methods = _methods(size, side)
        times: dict[str, list[float]] = {name: [] for name in methods}
        for _ in range(args.repeats):
            for name, run in methods.items():
                start = time.perf_counter()
                for i in range(args.samples):
                    run(i)
                times[name].append(time.perf_counter() - start)
        rates = {name: args.samples / statistics.median(t) for name, t in times.items()}
        for name, rate in rates.items():
            print(f"| {size} ({side}) | {name} | {rate:,.0f} | {rate / rates['torchvision']:.2f}x |")
    return 0


def _methods(size: int, side: int) -> dict[str, Callable[[int], object]]:
    simclr = View(size=size, jitter=(0.8, 0.8, 0.8, 0.2), blur_p=0.5)
    pipeline = T.Compose([
        T.RandomResizedCrop(size, scale=simclr.scale, ratio=simclr.ratio),
        T.RandomHorizontalFlip(),
        T.RandomApply([T.ColorJitter(*simclr.jitter)], p=simclr.jitter_p),
        T.RandomGrayscale(simclr.grayscale_p),
        T.RandomApply([T.GaussianBlur(simclr.blur_kernel, simclr.blur_sigma)], p=simclr.blur_p),
    ])
    plain = SingleImageDataset(num_imgs=100_000, img_size=side)

    def torchvision(i: int) -> object:
        sample = plain[i][0]
        return [pipeline(sample), pipeline(sample)]

    methods: dict[str, Callable[[int], object]] = {"torchvision": torchvision}
    for backend in BACKENDS:
        ds = SingleImageDataset(num_imgs=100_000, img_size=side, views=[simclr, simclr], backend=backend)
        methods[f"views/{backend}"] = ds.__getitem__
    with torch.random.fork_rng():  # warm-up, leaving the caller's torch RNG as it was
        for run in methods.values():
            run(0)
    return methods


if __name__ == "__main__":
    sys.exit(main())
