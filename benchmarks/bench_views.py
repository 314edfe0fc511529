"""Throughput of SimCLR's two views per sample: the per-sample pipelines users write today against the batched views.

Two views per sample, at 64 px (64 px samples) and 224 px (256 px samples), one thread (torch and OpenCV), in one
process, the methods interleaved pass by pass (the median of ``--repeats`` passes is printed):

- ``torchvision``: ``ds[i]`` of a dataset without views (the fast renderer), then a torchvision v1 transform
  (RandomResizedCrop, RandomHorizontalFlip, RandomApply(ColorJitter(0.8, 0.8, 0.8, 0.2), p=0.8),
  RandomGrayscale(0.2), RandomApply(GaussianBlur(SimCLR's kernel, (0.1, 2.0)), p=0.5)) applied twice;
- ``lightly``: the same ``ds[i]``, then lightly's ``SimCLRTransform`` (its defaults at that size, no
  normalisation), where lightly is installed;
- ``views, <backend>, ds[i]``: ``ds[i]`` of ``SingleImageDataset(views="simclr", backend=<backend>)``, one sample at a
  time;
- ``views, <backend>, batched``: ``ds.render_views(ds.params_batch(idx), ds.view_params_batch(idx))`` for batches of
  ``--batch`` indices, with the fast renderer and the torch renderer on the CPU;
- ``sample alone``: ``ds.render_batch(ds.params_batch(idx))`` of the same dataset, fast renderer: one sample, no
  views (what the views cost is measured against).

The same comparison through loaders with ``--workers`` worker processes (default 2; one thread each): a ``DataLoader``
over a dataset whose ``transform`` applies the torchvision pipeline twice (ending in ``PILToTensor``: uint8 views, as
the batched ones), the same with lightly's ``SimCLRTransform`` (float views, its own ``ToTensor``), and
:func:`~single_image_dataset.batch_loader` over the dataset with views (fast and torch on the CPU) and without (the
sample alone); batches of ``--loader-batch`` samples, persistent workers warmed up by one untimed pass, passes
interleaved; the consumer reads a byte of every page of every view.

Then the two targets of issue 17 side by side, in one thread and through the loaders: two 224 px views (their
sample included) against one 256 px sample rendered alone (at most 2.5x), and the batched views against the
per-sample torchvision pipeline (at least 10x); and, for the first, where the time goes: the batched fast views
with their colour ops taken away one by one (the same crops and flips). Run from the repository root::

    python benchmarks/bench_views.py            # a few minutes
    python benchmarks/bench_views.py --quick    # a smoke run (too noisy to quote)
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.util
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from _threads import one_thread  # benchmarks/_threads.py, beside this script
from torch.utils.data import DataLoader
from torchvision import transforms as T

from single_image_dataset import SingleImageDataset, View, ViewParamsBatch, batch_loader
from single_image_dataset.render import fast

#: (view side, sample side): 224 px views from 256 px samples, as the issue asks.
CASES = ((64, 64), (224, 256))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: few samples, 1 repeat; too noisy to quote")
    parser.add_argument("--samples", type=int, default=48, help="samples per timed pass and method (default: 48)")
    parser.add_argument("--batch", type=int, default=16, help="indices per batch of the batched methods (default: 16)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved passes; the median is printed (default: 5)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of the loaders (default: 2)")
    parser.add_argument("--loader-samples", type=int, default=512,
                        help="samples per pass of the loaders at 64 px, a quarter at 224 px (default: 512)")
    parser.add_argument("--loader-batch", type=int, default=64, help="batch size of the loaders (default: 64)")
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.batch, args.repeats, args.loader_samples, args.loader_batch = 8, 4, 1, 64, 16
    if min(args.samples, args.batch, args.repeats, args.workers, args.loader_samples, args.loader_batch) < 1:
        parser.error("--samples, --batch, --repeats, --workers, --loader-samples and --loader-batch should be positive")
    one_thread()
    shown = " ".join(sys.argv[1:] if argv is None else argv)
    print(f"`python benchmarks/bench_views.py{' ' + shown if shown else ''}` ({datetime.date.today()}, "
          f"{platform.machine()}, {platform.processor() or 'cpu'}, torch {torch.__version__}, one thread, fast "
          f"renderer: {fast.implementation()}); samples/s, median of {args.repeats} interleaved passes of "
          f"{args.samples} samples\n")
    print("| view px (sample px) | method | samples/s (2 views each) | vs torchvision |\n|---|---|---|---|")
    rates = {}
    for size, side in CASES:
        rates[size] = _time(_methods(size, side, args.batch), args)
        for name, rate in rates[size].items():
            print(f"| {size} ({side}) | {name} | {rate:,.0f} | {rate / rates[size]['torchvision']:.2f}x |")
    big, side = CASES[-1]
    print(f"\nThrough loaders, {args.workers} workers of one thread each, batches of {args.loader_batch}; samples/s, "
          f"median of {args.repeats} interleaved passes of {args.loader_samples} samples at 64 px and "
          f"{_loader_samples(args, big)} at {big} px\n")
    print("| view px (sample px) | loader | samples/s (2 views each) | vs torchvision |\n|---|---|---|---|")
    loaded = {}
    for size, side in CASES:
        loaded[size] = _time_loaders(_loaders(size, side, args), args)
        for name, rate in loaded[size].items():
            print(f"| {size} ({side}) | {name} | {rate:,.0f} | {rate / loaded[size]['torchvision']:.2f}x |")
    print()
    for where, table, batched, alone in (
        ("one thread", rates, "views, fast, batched", "sample alone"),
        (f"{args.workers} workers", loaded, "batch_loader, views, fast", "batch_loader, sample alone"),
    ):
        for size, _ in CASES:
            gain = table[size][batched] / table[size]["torchvision"]
            print(f"- {where}, {size} px: batched fast views {gain:.1f}x the per-sample torchvision pipeline "
                  "(target: at least 10x)")
        cost = table[big][alone] / table[big][batched]
        print(f"- {where}: two {big} px views (their sample included) cost {cost:.2f}x one {side} px sample rendered "
              "alone (target: at most 2.5x)")
    print()
    print(f"Where the time of the {big} px views goes (batched fast views, the same crops and flips; in units of one "
          f"{side} px sample rendered alone):\n")
    print("| views | cost |\n|---|---|")
    breakdown = _time(_breakdown(big, side, args.batch), args)
    for name, rate in breakdown.items():
        print(f"| {name} | {breakdown['sample alone'] / rate:.2f}x |")
    return 0


def _time(methods: dict[str, Callable[[np.ndarray], object]], args: argparse.Namespace) -> dict[str, float]:
    """Samples per second of each method: ``run(indices)`` renders those samples (a batch or one by one)."""
    times: dict[str, list[float]] = {name: [] for name in methods}
    chunks = np.array_split(np.arange(args.samples), max(1, args.samples // args.batch))
    for repeat in range(args.repeats):
        for name, run in methods.items():
            offset = (repeat + 1) * 10_000  # fresh indices every pass, the same for every method
            start = time.perf_counter()
            for chunk in chunks:
                run(chunk + offset)
            times[name].append(time.perf_counter() - start)
    return {name: args.samples / statistics.median(t) for name, t in times.items()}


def _loader_samples(args: argparse.Namespace, size: int) -> int:
    n = args.loader_samples if size <= 64 else args.loader_samples // 4
    return max(args.loader_batch, n - n % args.loader_batch)


def _time_loaders(loaders: dict[str, DataLoader], args: argparse.Namespace) -> dict[str, float]:
    """Samples per second of each loader, one pass over its dataset per timed pass, after one untimed pass."""
    times: dict[str, list[float]] = {name: [] for name in loaders}
    for repeat in range(args.repeats + 1):
        for name, loader in loaders.items():
            start = time.perf_counter()
            samples = sum(_consume(views) for views, _ in loader)
            if repeat:  # the first pass starts the workers
                times[name].append(time.perf_counter() - start)
    return {name: samples / statistics.median(t) for name, t in times.items()}


def _consume(views: torch.Tensor | list[torch.Tensor]) -> int:
    """Read a byte of every page of each view batch, as a training step would read them; the batch's size."""
    for view in views if isinstance(views, list) else [views]:
        int(view.view(torch.uint8).view(-1)[::4096].sum())
    return len(views[0] if isinstance(views, list) else views)


class _TwoViews:
    """Two independent draws of ``transform`` of an image: the per-sample way to make SimCLR's pairs."""

    def __init__(self, transform: Callable[[object], torch.Tensor]) -> None:
        self.transform = transform

    def __call__(self, image: object) -> list[torch.Tensor]:
        return [self.transform(image), self.transform(image)]


def _loaders(size: int, side: int, args: argparse.Namespace) -> dict[str, DataLoader]:
    n, batch = _loader_samples(args, size), args.loader_batch
    options = {"num_workers": args.workers, "persistent_workers": True}
    pipeline = T.Compose([_pipeline(size), T.PILToTensor()])
    loaders = {"torchvision": DataLoader(
        SingleImageDataset(num_imgs=n, img_size=side, backend="fast", transform=_TwoViews(pipeline)), batch, **options)}
    if importlib.util.find_spec("lightly") is not None:
        from lightly.transforms import SimCLRTransform

        lightly = SimCLRTransform(input_size=size, normalize=None)
        loaders["lightly"] = DataLoader(
            SingleImageDataset(num_imgs=n, img_size=side, backend="fast", transform=lightly), batch, **options)
    for backend in ("fast", "torch"):
        ds = SingleImageDataset(num_imgs=n, img_size=side, views=[_simclr(size)] * 2, backend=backend)
        loaders[f"batch_loader, views, {backend}"] = batch_loader(ds, batch, **options)
    plain = SingleImageDataset(num_imgs=n, img_size=side, backend="fast")
    loaders["batch_loader, sample alone"] = batch_loader(plain, batch, **options)
    return loaders


def _pipeline(size: int) -> T.Compose:
    """torchvision's v1 SimCLR pipeline of one view (on a PIL image, to a PIL image)."""
    simclr = _simclr(size)
    return T.Compose([
        T.RandomResizedCrop(size, scale=simclr.scale, ratio=simclr.ratio),
        T.RandomHorizontalFlip(),
        T.RandomApply([T.ColorJitter(*simclr.jitter)], p=simclr.jitter_p),
        T.RandomGrayscale(simclr.grayscale_p),
        T.RandomApply([T.GaussianBlur(simclr.blur_kernel, simclr.blur_sigma)], p=simclr.blur_p),
    ])


def _simclr(size: int) -> View:
    return View(size=size, jitter=(0.8, 0.8, 0.8, 0.2), blur_p=0.5)


def _methods(size: int, side: int, batch: int) -> dict[str, Callable[[np.ndarray], object]]:
    simclr = _simclr(size)
    pipeline = _pipeline(size)
    plain = SingleImageDataset(num_imgs=1_000_000, img_size=side, backend="fast")
    methods: dict[str, Callable[[np.ndarray], object]] = {
        "torchvision": lambda indices: [[pipeline(plain[i][0]) for _ in range(2)] for i in indices],
    }
    if importlib.util.find_spec("lightly") is not None:
        from lightly.transforms import SimCLRTransform

        lightly = SimCLRTransform(input_size=size, normalize=None)
        methods["lightly"] = lambda indices: [lightly(plain[i][0]) for i in indices]
    for backend in ("fast", "torch"):
        ds = SingleImageDataset(num_imgs=1_000_000, img_size=side, views=[simclr, simclr], backend=backend)
        if backend == "fast":
            methods["views, fast, ds[i]"] = lambda indices, ds=ds: [ds[i] for i in indices]
        methods[f"views, {backend}, batched"] = (
            lambda indices, ds=ds: ds.render_views(ds.params_batch(indices), ds.view_params_batch(indices)))
    methods["sample alone"] = lambda indices: plain.render_batch(plain.params_batch(indices))
    with torch.random.fork_rng():  # warm-up, leaving the caller's torch RNG as it was
        for run in methods.values():
            run(np.arange(min(batch, 4)))
    return methods


def _breakdown(size: int, side: int, batch: int) -> dict[str, Callable[[np.ndarray], object]]:
    """The batched fast views of SimCLR with their colour ops taken away one by one, and the sample alone."""
    ds = SingleImageDataset(num_imgs=1_000_000, img_size=side, views=[_simclr(size)] * 2, backend="fast")

    def without(view: ViewParamsBatch, ops: set[str]) -> ViewParamsBatch:
        n, changes = len(view), {}
        if "jitter" in ops:
            changes.update(jitter_on=np.zeros(n, bool), jitter_factors=np.full((n, 4), np.nan),
                           jitter_order=np.full((n, 4), -1, np.int8))
        if "grayscale" in ops:
            changes["grayscale"] = np.zeros(n, bool)
        if "blur" in ops:
            changes["blur_sigma"] = np.full(n, np.nan)
        return dataclasses.replace(view, **changes)

    def views(ops: set[str]) -> Callable[[np.ndarray], object]:
        def run(indices: np.ndarray) -> object:
            drawn = [without(view, ops) for view in ds.view_params_batch(indices)]
            return ds.render_views(ds.params_batch(indices), drawn)
        return run

    return {
        "crop and flip only": views({"jitter", "grayscale", "blur"}),
        "+ colour jitter (p 0.8)": views({"grayscale", "blur"}),
        "+ grayscale (p 0.2)": views({"blur"}),
        "+ blur (p 0.5): SimCLR's views": views(set()),
        "sample alone": lambda indices: ds.render_batch(ds.params_batch(indices)),
    }


if __name__ == "__main__":
    sys.exit(main())
