"""Samples per second delivered to a training loop: the renderer alone vs. the ways of loading it.

At 64 and 256 px (fast backend, the default source image), measured side by side in one run:

- ``render``: ``ds.render(ds.params(i))`` in one process, the renderer alone (PIL images; the consumer
  reads a pixel of each);
- ``ToTensor, w workers``: the old recipe, ``transform=ToTensor()`` in a ``DataLoader``
  (float32 batches, collated), with 0 and 2 workers;
- ``PILToTensor, 2 workers``: the same with uint8 tensors;
- ``batch_loader, w workers``: :func:`single_image_dataset.batch_loader`, uint8 batches, 0 and 2 workers; the
  workers render into batch buffers they reuse once the consumer has released a batch;
- ``batch_loader, 2 workers, fresh memory per batch``: the same batches through a ``DataLoader`` whose collate
  passes them on as they are (what ``batch_loader`` did before it reused its buffers): every batch is new
  shared memory, which the workers write and the main process maps afresh;
- ``render_batch, one reused buffer``: the batched path in one process writing every batch into the same
  tensor: the batch loader's work without allocating fresh memory for each batch;
- the sampler alone: parameter sets per second, per sample (``ds.params(i)``) and batched
  (``ds.params_batch(indices)``, by the batch size and by 4096).

Every loader delivers batches of ``--batch-size`` to a consumer that reads a byte of every page of each
batch and drops it. Workers are persistent and warmed up by one untimed pass. The passes of the paths of one size
are interleaved (one pass of each, ``--repeats`` times), so that a change in the machine's speed touches them
alike; each figure is the median of its passes. torch and OpenCV use one thread per process, so "2 workers" is
two cores.

Run from the repository root::

    python benchmarks/bench_loader.py            # the table in docs/batched-delivery.md, about 3 minutes
    python benchmarks/bench_loader.py --quick    # a smoke run of about 30 s
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from _threads import one_thread  # benchmarks/_threads.py, beside this script
from torch.utils.data import DataLoader
from torchvision.transforms import PILToTensor, ToTensor

from single_image_dataset import SampleBatch, SingleImageDataset, batch_loader

SIZES = (64, 256)
_CPU = ", CPU ms per sample"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples and one pass: a smoke run")
    parser.add_argument("--batch-size", type=int, default=256, help="batch size of every loader (default: 256)")
    parser.add_argument("--samples", type=int, default=8192, help="samples per pass at 64 px or less, a quarter above")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per figure; the median is reported")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="image sizes (default: 64 256)")
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.repeats = 1024, 1
    if min(args.batch_size, args.samples, args.repeats) < 1:
        parser.error("--batch-size, --samples and --repeats should be positive")
    one_thread()

    results = {}
    for size in args.sizes:
        n = args.samples if size <= 64 else args.samples // 4
        n -= n % args.batch_size or 0
        n = max(n, args.batch_size)
        results[size] = _measure_size(size, n, args)
    _print_table(results, args)
    return 0


def _measure_size(size: int, n: int, args: argparse.Namespace) -> dict[str, float]:
    plain = SingleImageDataset(num_imgs=n, img_size=size, backend="fast")
    work: dict[str, Callable[[], object]] = {}
    work["render"] = lambda: [_touch_pil(plain.render(plain.params(i))) for i in range(n)]
    for name, transform, workers in (
        ("ToTensor, 0 workers", ToTensor(), 0),
        ("ToTensor, 2 workers", ToTensor(), 2),
        ("PILToTensor, 2 workers", PILToTensor(), 2),
    ):
        ds = SingleImageDataset(num_imgs=n, img_size=size, backend="fast", transform=transform)
        work[name] = _loader_pass(DataLoader(ds, args.batch_size, num_workers=workers, persistent_workers=workers > 0))
    for workers in (0, 2):
        loader = batch_loader(plain, args.batch_size, num_workers=workers, persistent_workers=workers > 0)
        work[f"batch_loader, {workers} workers"] = _loader_pass(loader)
    fresh = DataLoader(plain, args.batch_size, num_workers=2, persistent_workers=True, collate_fn=_as_rendered)
    work["batch_loader, 2 workers, fresh memory per batch"] = _loader_pass(fresh)
    # The same batches rendered into one buffer allocated once: what fresh memory for every batch costs.
    reused = torch.empty((args.batch_size, 3, size, size), dtype=torch.uint8)
    starts = range(0, n, args.batch_size)
    work["render_batch, one reused buffer"] = lambda: [
        _touch(plain.render_batch(plain.params_batch(np.arange(k, k + args.batch_size)), reused)) for k in starts
    ]
    for one in work.values():  # start the (persistent) workers and warm the caches
        one()
    times, cpu = _interleaved(work, args.repeats)
    rates = {name: n / statistics.median(t) for name, t in times.items()}
    if cpu is not None:
        rates.update({f"{name}, CPU ms per sample": 1e3 * statistics.median(c) / n for name, c in cpu.items()})
    params_n = 20 * n
    many = SingleImageDataset(num_imgs=params_n, img_size=size)
    params_work: dict[str, Callable[[], object]] = {
        "params, per sample": lambda: [many.params(i) for i in range(params_n // 10)]
    }
    for size in (args.batch_size, 4096):
        batches = [np.arange(k, min(k + size, params_n)) for k in range(0, params_n, size)]
        params_work[f"params, batched by {size}"] = lambda b=batches: [many.params_batch(x) for x in b]
    counts = {"params, per sample": params_n // 10}
    for name, t in _interleaved(params_work, args.repeats)[0].items():
        rates[name] = counts.get(name, params_n) / statistics.median(t)
    return rates


def _as_rendered(batch: SampleBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch as ``__getitems__`` rendered it, in the fresh shared memory of a worker: no reuse."""
    return batch.images, torch.from_numpy(batch.targets)


def _loader_pass(loader: Iterable) -> Callable[[], None]:
    def one_pass() -> None:
        for images, _ in loader:
            _touch(images)

    return one_pass


def _interleaved(
    work: dict[str, Callable[[], object]], repeats: int
) -> tuple[dict[str, list[float]], dict[str, list[float]] | None]:
    """Seconds per pass of each piece of work, running one pass of each in turn, ``repeats`` times; and the CPU
    seconds of each pass, this process and its workers together (``None`` where ``/proc`` cannot tell)."""
    times: dict[str, list[float]] = {name: [] for name in work}
    cpu: dict[str, list[float]] | None = {name: [] for name in work} if _cpu_seconds() is not None else None
    for _ in range(repeats):
        for name, one in work.items():
            cpu_start, start = _cpu_seconds(), time.perf_counter()
            one()
            times[name].append(time.perf_counter() - start)
            if cpu is not None:
                cpu[name].append(_cpu_seconds() - cpu_start)
    return times, cpu


def _cpu_seconds() -> float | None:
    """CPU seconds used so far by this process and its child processes alive now (the persistent workers)."""
    pid = os.getpid()
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        total = 0.0
        for child in [pid, *children]:
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    except (OSError, ValueError, IndexError):
        return None
    return total


def _touch_pil(image: object) -> None:
    image.getpixel((0, 0))  # type: ignore[attr-defined]


def _touch(batch: torch.Tensor) -> int:
    flat = batch.reshape(-1).view(torch.uint8) if batch.dtype != torch.uint8 else batch.reshape(-1)
    return int(flat[::4096].sum())


def _print_table(results: dict[int, dict[str, float]], args: argparse.Namespace) -> None:
    names = [name for name in next(iter(results.values())) if not name.endswith(_CPU)]
    with_cpu = all(f"render{_CPU}" in r for r in results.values())
    print("| path | " + " | ".join(f"{s} px /s" for s in results) + " | " +
          " | ".join(f"{s} px vs render" for s in results) + " |" +
          ("".join(f" {s} px CPU ms/sample |" for s in results) if with_cpu else ""))
    print("|---|" + "---:|" * ((3 if with_cpu else 2) * len(results)))
    for name in names:
        cells = [f"{results[s][name]:,.0f}" for s in results]
        ratios = [f"{results[s][name] / results[s]['render']:.2f}x" for s in results]
        cpu = [f"{results[s][name + _CPU]:.3f}" if name + _CPU in results[s] else "" for s in results]
        print(f"| {name} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |" +
              ("".join(f" {c} |" for c in cpu) if with_cpu else ""))
    print()
    for size, r in results.items():
        loader, fresh = "batch_loader, 2 workers", "batch_loader, 2 workers, fresh memory per batch"
        print(
            f"{size} px: batch_loader 2 workers / render = {r[loader] / r['render']:.2f}x, "
            f"/ fresh memory per batch = {r[loader] / r[fresh]:.2f}x, "
            f"/ ToTensor 2 workers = {r[loader] / r['ToTensor, 2 workers']:.2f}x; "
            f"batched (by {args.batch_size}) / per-sample params = "
            f"{r[f'params, batched by {args.batch_size}'] / r['params, per sample']:.1f}x"
        )
        if with_cpu:
            # What two idle cores allow: all the CPU work of the loader's processes shared by two cores.
            bound = 2 * r[f"render{_CPU}"] / r[loader + _CPU]
            print(f"    CPU per sample, all processes: 2 idle cores allow batch_loader 2 workers at most {bound:.2f}x "
                  f"render (fresh memory per batch: {2 * r[f'render{_CPU}'] / r[fresh + _CPU]:.2f}x)")
    from single_image_dataset.render import fast

    print(
        f"\nbatch {args.batch_size}, median of {args.repeats} passes, one thread per process; fast renderer: "
        f"{fast.implementation()}; torch {torch.__version__}."
    )


if __name__ == "__main__":
    raise SystemExit(main())
