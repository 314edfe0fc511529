"""Throughput of the renderers against reading the same samples back from a JPEG ImageFolder.

For img_size 32, 64 and 256 and for a small (the embedded 1000x872 Hubble image) and a large
(the same image upscaled to 2560x1920) source, prints a markdown table of:

- samples per CPU second (torch and OpenCV limited to one thread) of ``dataset[i]`` for the
  reference and the fast renderer, and of ``ImageFolder[i]`` over a JPEG export (quality 75) of the
  same samples, read once before timing so the files are in the page cache (the best case for disk);
- the ratios fast/reference and fast/ImageFolder, and the fast renderer without its native kernels
  (Pillow and OpenCV, as where the package's C extension could not be built);
- DataLoader throughput with 2 workers (batches of 32, tensors) for both backends.

Each cell is measured in ``--processes`` fresh processes (the median of ``--repeats`` interleaved
passes in each) and the median over processes is reported, with the range of fast/ImageFolder over
the processes: the speed of JPEG decoding differs by up to 1.5x from one process to the next here,
with memory layout, so one process alone can mislead.

Run from the repository root::

    python benchmarks/bench_render.py            # the figures in docs/performance.md (about 8 minutes)
    python benchmarks/bench_render.py --quick    # the same table from far fewer samples (about a minute)

``--quick`` measures every cell of the table, but from 16 samples in one pass and one process per cell (and
64 samples for the DataLoader columns): a smoke run that checks the script works, whose figures are too
noisy to quote.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torchvision.transforms.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.datasets import ImageFolder

from single_image_dataset import HUBBLE_IMAGE, SingleImageDataset, load_image

SIZES = (32, 64, 256)
LARGE_SIZE = (2560, 1920)
BACKENDS = ("reference", "fast")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true",
        help="smoke run of about a minute: every cell from 16 samples, 1 repeat, 1 process (64 DataLoader samples); "
        "too noisy to quote",
    )
    parser.add_argument("--samples", type=int, default=200, help="samples per timed pass (default: 200)")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes; the median is reported (default: 5)")
    parser.add_argument(
        "--loader-samples", type=int, default=2000, help="samples per DataLoader pass (default: 2000)"
    )
    parser.add_argument(
        "--processes", type=int, default=5, help="fresh processes per cell; the median is reported (default: 5)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.repeats, args.loader_samples, args.processes = 16, 1, 64, 1
    if min(args.samples, args.repeats, args.loader_samples, args.processes) < 1:
        parser.error("--samples, --repeats, --loader-samples and --processes should be positive")

    _one_thread()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_render_") as tmp:
        tmp_dir = Path(tmp)
        for label in SOURCES:
            for size in SIZES:
                print(f"measuring {label} at {size} px ...", file=sys.stderr, flush=True)
                rows.append((label, size, _measure(label, size, tmp_dir / f"{label.split()[0]}_{size}", args)))
    print(_table(rows))
    from single_image_dataset.render import fast

    print(
        f"\n{args.samples} samples x {args.repeats} passes per cell in each of {args.processes} processes "
        f"(median of passes, then of processes), one thread; DataLoader: {args.loader_samples} samples, "
        f"2 workers, batch 32, warm workers. Fast renderer: {fast.implementation()}. "
        f"torch {torch.__version__}, OpenCV {_opencv_version()}."
    )
    return 0


SOURCES = ("small 1000x872", "large 2560x1920")


def _source(label: str) -> Image.Image:
    image = load_image(HUBBLE_IMAGE)
    return image if label.startswith("small") else image.resize(LARGE_SIZE, Image.Resampling.BICUBIC)


def _one_thread() -> None:
    torch.set_num_threads(1)
    try:
        import cv2
    except ImportError:
        sys.exit('the benchmark needs OpenCV for backend="fast": pip install -e ".[fast]"')
    cv2.setNumThreads(1)


def _opencv_version() -> str:
    import cv2

    return cv2.__version__


def _measure(label: str, size: int, export_root: Path, args: argparse.Namespace) -> dict[str, float]:
    source = _source(label)
    reference = SingleImageDataset(source, backend="reference", img_size=size, num_imgs=args.samples)
    for i in range(args.samples):
        path = export_root / "dummy" / f"patch_{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        reference[i][0].save(path, quality=75)
    spawn = multiprocessing.get_context("spawn")
    per_process = []
    for _ in range(args.processes):
        with spawn.Pool(1) as pool:
            per_process.append(pool.apply(_rates, (label, size, str(export_root), args.samples, args.repeats)))
    result = {name: statistics.median(r[name] for r in per_process) for name in per_process[0]}
    ratios = [r["fast"] / r["imagefolder"] for r in per_process]
    result["fast/imagefolder"] = statistics.median(ratios)
    result["fast/imagefolder min"], result["fast/imagefolder max"] = min(ratios), max(ratios)
    result["fast/reference"] = statistics.median(r["fast"] / r["reference"] for r in per_process)
    for backend in BACKENDS:
        loader_set = SingleImageDataset(
            source, backend=backend, img_size=size, num_imgs=args.loader_samples, transform=F.pil_to_tensor
        )
        result[f"loader_{backend}"] = _loader_rate(loader_set)
    return result


def _rates(label: str, size: int, export_root: str, samples: int, repeats: int) -> dict[str, float]:
    """In a fresh process: the median rate of each reader over ``repeats`` interleaved passes."""
    _one_thread()
    source = _source(label)
    datasets = {b: SingleImageDataset(source, backend=b, img_size=size, num_imgs=samples) for b in BACKENDS}
    folder = ImageFolder(export_root)
    readers: dict[str, Callable[[int], object]] = {
        "reference": datasets["reference"].__getitem__,
        "fast": datasets["fast"].__getitem__,
        "imagefolder": folder.__getitem__,
    }
    from single_image_dataset.render import fast

    if fast.implementation() != "opencv":
        opencv_only = fast.FastRenderer(source, implementation="opencv")

        def read_with_opencv(i: int) -> object:
            return opencv_only.render(datasets["fast"].params(i))

        readers["fast_opencv"] = read_with_opencv
    for read in readers.values():  # warm up: page cache, renderer caches, lazy imports
        for i in range(samples):
            read(i)
    rates: dict[str, list[float]] = {name: [] for name in readers}
    for _ in range(repeats):
        # Interleaved passes, so a burst of load from elsewhere on the machine hits every reader alike;
        # CPU time rather than wall time, so time spent waiting for a core shared with others is not counted.
        for name, read in readers.items():
            start = time.process_time()
            for i in range(samples):
                read(i)
            rates[name].append(samples / (time.process_time() - start))
    return {name: statistics.median(r) for name, r in rates.items()}


def _loader_rate(dataset: Dataset) -> float:
    loader = DataLoader(dataset, batch_size=32, num_workers=2, persistent_workers=True)
    for batch, _ in enumerate(loader):  # start the workers and build their renderers, untimed
        if batch == 1:
            break
    start = time.perf_counter()
    n = sum(len(images) for images, _ in loader)
    return n / (time.perf_counter() - start)


def _table(rows: list[tuple[str, int, dict[str, float]]]) -> str:
    header = (
        "| source | img_size | reference /s | fast /s | ImageFolder /s | fast / reference "
        "| fast / ImageFolder (range over processes) | fast, OpenCV implementation /s "
        "| DataLoader 2 workers: reference /s | fast /s |"
    )
    lines = [header, "|" + "---|" * 10]
    for label, size, r in rows:
        opencv = f"{r['fast_opencv']:,.0f}" if "fast_opencv" in r else "-"
        lines.append(
            f"| {label} | {size} | {r['reference']:,.0f} | {r['fast']:,.0f} | {r['imagefolder']:,.0f} "
            f"| {r['fast/reference']:.1f}x | {r['fast/imagefolder']:.2f}x "
            f"({r['fast/imagefolder min']:.2f}-{r['fast/imagefolder max']:.2f}) | {opencv} "
            f"| {r['loader_reference']:,.0f} | {r['loader_fast']:,.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
