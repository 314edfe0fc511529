"""What validating parameter records costs, next to rendering them.

``SingleImageDataset.render`` validates a record it did not draw itself (``SampleParams.validate``) and
trusts one its ``params`` drew; ``render_batch`` validates every batch (``ParamsBatch.validate``, vectorised).
For the fast backend (the cheapest renderer on the CPU) at img_size 32, 64 and 256, with torch and OpenCV on
one thread, prints per sample in microseconds, passes interleaved in one process and the median reported:

- ``render(drawn)``: a record ``params`` drew (not validated), and ``render(copy)``: an equal record built
  anew (validated), and their ratio;
- ``validate``: ``SampleParams.validate`` alone;
- ``batch``: ``render_batch`` of a batch of 256 that ``params_batch`` drew (not validated), per sample;
  ``ParamsBatch.validate`` of it, per sample: what a batch built by hand costs more; and its share.

Run from the repository root::

    python benchmarks/bench_validation.py            # about a minute
    python benchmarks/bench_validation.py --quick    # a smoke run; too noisy to quote
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from collections.abc import Callable, Sequence

from _threads import one_thread  # benchmarks/_threads.py, beside this script

from single_image_dataset import SingleImageDataset

SIZES = (32, 64, 256)
BATCH = 256


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 samples, 1 repeat: a smoke run")
    parser.add_argument("--samples", type=int, default=200, help="samples per timed pass (default: 200)")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved passes; the median is reported")
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.repeats = 16, 1
    one_thread()
    print("| img_size | render(drawn) us | render(copy) us | copy/drawn | validate us | render_batch us/sample "
          "| batch validate us/sample | validate share |")
    print("|---|---|---|---|---|---|---|---|")
    for size in SIZES:
        passes, per = _passes(SingleImageDataset(num_imgs=10**6, img_size=size, backend="fast"), args.samples)
        times = _interleaved(passes, args.repeats)
        us = {name: 1e6 * times[name] / per[name] for name in passes}
        print(f"| {size} | {us['drawn']:.1f} | {us['copy']:.1f} | {us['copy'] / us['drawn']:.2f} | "
              f"{us['validate']:.1f} | {us['batch']:.1f} | {us['batch_validate']:.2f} | "
              f"{us['batch_validate'] / us['batch']:.1%} |")
    return 0


def _passes(ds: SingleImageDataset, samples: int) -> tuple[dict[str, Callable[[], object]], dict[str, int]]:
    """The timed passes over ``ds``, and the samples each renders or validates."""
    drawn = [ds.params(i) for i in range(samples)]
    copies = [dataclasses.replace(p) for p in drawn]
    batch = ds.params_batch(range(BATCH))
    sizes = [source.size for source in ds.sources]
    passes = {
        "drawn": lambda: [ds.render(p) for p in drawn],
        "copy": lambda: [ds.render(p) for p in copies],
        "validate": lambda: [p.validate(sizes) for p in copies],
        "batch": lambda: ds.render_batch(batch),
        "batch_validate": lambda: batch.validate(sizes),
    }
    return passes, {"drawn": samples, "copy": samples, "validate": samples, "batch": BATCH, "batch_validate": BATCH}


def _interleaved(passes: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """The median seconds of each pass over ``repeats`` rounds, the passes interleaved in each round."""
    for run in passes.values():  # warm up: renderers' caches, first allocations
        run()
    seconds: dict[str, list[float]] = {name: [] for name in passes}
    for _ in range(repeats):
        for name, run in passes.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in seconds.items()}


if __name__ == "__main__":
    raise SystemExit(main())
