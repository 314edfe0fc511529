"""Throughput of the torch renderer (``backend="torch"``) against the batch size, on a GPU or the CPU.

For each image size and batch size, in one run: samples per second of the whole step a training loop
takes (``ds.params_batch(indices)`` on the CPU, then ``ds.render_batch`` on the device, with CUDA
synchronised before each clock reading), the same for the rendering alone, the share of the step spent
drawing parameters, the share that the rendering spends composing the maps on the CPU
(``geometry.batch_output_to_resized``, ``source_box``, ``pyramid_level`` and ``covers_output``, timed on the side), the
peak device memory of the step
(``torch.cuda.max_memory_allocated``; n/a on the CPU) and the ratio to the fast CPU renderer on one core
(``params_batch`` + ``render_batch`` of ``backend="fast"``, one thread, batches of 256, measured in the same
run). It also checks that the device renders every sample with the same bytes in batches of 1, 7 and 64,
and measures the CPU work that a GPU step needs, per sample, for batches of 1024 (drawing the parameters
and composing the maps, on one core): the GPU renders asynchronously, so the CPU prepares the next
batch while it renders, and waits for it only if that work takes longer than the rendering.

On the CPU, torch runs on one thread unless ``--threads`` says otherwise, so that the ratio compares one
core with one core.

The full run (64, 224 and 256 px; batches 64 to 4096) is meant for a GPU. Without CUDA, or with
``--quick``, it runs small sizes and batches: a CPU smoke run of well under a minute.

Run from the repository root::

    python benchmarks/bench_gpu.py                  # on the GPU if there is one (about 2 minutes there)
    python benchmarks/bench_gpu.py --quick          # a smoke run
    python benchmarks/bench_gpu.py --device cpu     # the CPU, quick sizes
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np
import torch

from single_image_dataset import DEFAULT_IMAGE, ParamsBatch, SingleImageDataset, geometry, load_image

FULL = {"sizes": (64, 224, 256), "batches": (64, 256, 1024, 4096), "seconds": 2.0}
QUICK = {"sizes": (64, 224), "batches": (16, 64), "seconds": 0.3}
# Batches of the fast renderer's baseline.
FAST_BATCH = 256


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", help="where to render (default: cuda if available, else cpu)")
    parser.add_argument("--quick", action="store_true", help="small sizes and batches (the default without CUDA)")
    parser.add_argument("--image", default=str(DEFAULT_IMAGE), help="source image (default: the embedded default)")
    parser.add_argument("--seconds", type=float, help="least timed seconds per cell (default: 2, quick 0.3)")
    parser.add_argument("--threads", type=int, help="torch's CPU threads (default: 1 on the CPU device)")
    args = parser.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.threads is not None or device.type == "cpu":
        torch.set_num_threads(args.threads or 1)
    plan = QUICK if args.quick or device.type != "cuda" else FULL
    seconds = plan["seconds"] if args.seconds is None else args.seconds
    image = load_image(args.image)

    print(f"device: {_device_name(device)}; torch {torch.__version__}; source {image.width}x{image.height}; "
          f"torch CPU threads: {torch.get_num_threads()}")
    print("| img_size | batch | samples/s (params + render) | render only /s | params share | CPU maps share "
          "| peak device memory | vs fast, 1 core |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in plan["sizes"]:
        fast = _fast_rate(image, size, seconds)
        ds = SingleImageDataset(image, backend="torch", device=device, img_size=size, num_imgs=10**9)
        for batch in plan["batches"]:
            draw, render, maps, n, peak = _measure(ds, batch, seconds)
            step = draw + render
            memory = "n/a" if peak is None else f"{peak / 2**20:,.0f} MiB"
            print(f"| {size} | {batch} | {n / step:,.0f} | {n / render:,.0f} | {draw / step:.0%} | {maps / step:.0%} "
                  f"| {memory} | {n / step / fast:.2f}x |", flush=True)
        print(f"fast renderer, 1 core, {size} px, batches of {FAST_BATCH}: {fast:,.0f} samples/s", flush=True)
    ds = SingleImageDataset(image, backend="torch", device=device, img_size=plan["sizes"][0], jitter_p=1.0,
                            vflip=True, num_imgs=1000)
    print(f"batch independence on {device}: {'identical' if _independent(ds) else 'DIFFERENT'} bytes in batches "
          "of 1, 7 and 64")
    for size in plan["sizes"]:
        draw, compose = _cpu_work(SingleImageDataset(image, backend="torch", device=device, img_size=size,
                                                     num_imgs=10**9))
        print(f"CPU work of a GPU step, {size} px, batches of 1024, one core: parameters {draw * 1e6:.2f} us + maps "
              f"{compose * 1e6:.2f} us per sample = {1e-6 / (draw + compose):.2f} M samples/s")
    return 0


def _measure(ds: SingleImageDataset, batch: int, seconds: float) -> tuple[float, float, float, int, int | None]:
    """Seconds drawing, rendering and composing the maps (part of rendering, timed again on the side),
    samples, and the step's peak device memory in bytes (CUDA only)."""
    cuda = ds.device.type == "cuda"
    start = 0
    out = ds.render_batch(ds.params_batch(np.arange(batch)))  # warm up: allocator, kernels
    if cuda:
        torch.cuda.synchronize(ds.device)
        torch.cuda.reset_peak_memory_stats(ds.device)
    draw = render = maps = 0.0
    n = 0
    while n == 0 or draw + render < seconds:
        start += batch
        t0 = time.perf_counter()
        params = ds.params_batch(np.arange(start, start + batch))
        t1 = time.perf_counter()
        ds.render_batch(params, out)
        if cuda:
            torch.cuda.synchronize(ds.device)
        t2 = time.perf_counter()
        _compose(params)
        t3 = time.perf_counter()
        draw, render, maps, n = draw + t1 - t0, render + t2 - t1, maps + t3 - t2, n + batch
    return draw, render, maps, n, torch.cuda.max_memory_allocated(ds.device) if cuda else None


def _compose(params: ParamsBatch) -> None:
    """What the torch renderer composes on the CPU for a batch: the maps, the boxes, their levels, the fill."""
    to_resized = geometry.batch_output_to_resized(params)
    left, top, right, bottom = geometry.source_box(params)
    geometry.pyramid_level(right - left, bottom - top, params.resize, 12)  # the level count barely matters
    geometry.covers_output(to_resized, params.output_size, params.resize)


def _cpu_work(ds: SingleImageDataset, batch: int = 1024, rounds: int = 20) -> tuple[float, float]:
    """Seconds per sample, on one core, to draw a batch's parameters and to compose its maps (best of rounds)."""
    draw = compose = float("inf")
    for k in range(rounds):
        indices = np.arange(k * batch, (k + 1) * batch)
        t0 = time.process_time()
        params = ds.params_batch(indices)
        t1 = time.process_time()
        _compose(params)
        t2 = time.process_time()
        draw, compose = min(draw, (t1 - t0) / batch), min(compose, (t2 - t1) / batch)
    return draw, compose


def _fast_rate(image: object, size: int, seconds: float) -> float:
    """Samples per second of the fast renderer's batch path on one core: parameters and rendering."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ds = SingleImageDataset(image, backend="fast", img_size=size, num_imgs=10**9)
        out = ds.render_batch(ds.params_batch(np.arange(FAST_BATCH)))
        n, start, elapsed = 0, 0, 0.0
        while n == 0 or elapsed < seconds:
            start += FAST_BATCH
            t0 = time.perf_counter()
            ds.render_batch(ds.params_batch(np.arange(start, start + FAST_BATCH)), out)
            elapsed += time.perf_counter() - t0
            n += FAST_BATCH
        return n / elapsed
    finally:
        torch.set_num_threads(threads)


def _independent(ds: SingleImageDataset) -> bool:
    indices = np.arange(64)
    whole = ds.render_batch(ds.params_batch(indices))
    for size in (1, 7):
        parts = [ds.render_batch(ds.params_batch(indices[k : k + size])) for k in range(0, 64, size)]
        if not torch.equal(torch.cat(parts), whole):
            return False
    return True


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"{device} (no GPU measured)" if not torch.cuda.is_available() else str(device)


if __name__ == "__main__":
    raise SystemExit(main())
