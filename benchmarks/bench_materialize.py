"""Throughput of ``--materialize``: images written per second with 1 and 2 processes, side by side.

Exports the first ``--num_imgs`` samples of the paper's config (256 px, JPEG quality 75, the embedded
default image, reference renderer) into a fresh temporary folder once per process count, and prints a
markdown table of wall time, images/s, the ratio of each count to the first, and the CPU time per
image of all processes (which shows the cost of parallelism apart from a busy machine). The time is
that of the writing phase (render, encode, write, rename), as :func:`materialize` reports it; the
checks before it (manifest, free-space estimate) take well under a second.

Run from the repository root::

    python benchmarks/bench_materialize.py                     # the figure in docs/performance.md
    python benchmarks/bench_materialize.py --num_imgs 200      # a smoke run
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
from collections.abc import Sequence

from single_image_dataset import SingleImageDataset, available_backends
from single_image_dataset.export import FORMATS, materialize


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_imgs", type=int, default=2000, help="images per run (default: 2000)")
    parser.add_argument("--img_size", type=int, default=256, help="output side in pixels (default: 256)")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="process counts (default: 1 2)")
    parser.add_argument("--format", choices=tuple(FORMATS), default="jpg", help="file format (default: jpg)")
    parser.add_argument("--backend", choices=available_backends(), default="reference")
    args = parser.parse_args(argv)
    if args.num_imgs < 1 or min(args.processes) < 1:
        parser.error("--num_imgs and --processes should be positive")

    dataset = SingleImageDataset(num_imgs=args.num_imgs, img_size=args.img_size, backend=args.backend)
    rows = []
    for processes in args.processes:
        cpu_before = _cpu_seconds()
        with tempfile.TemporaryDirectory(prefix="bench_materialize_") as tmp:
            result = materialize(dataset, tmp, image_format=args.format, processes=processes, progress=False)
        cpu_ms = 1000 * (_cpu_seconds() - cpu_before) / result.written
        rows.append((processes, result.seconds, result.written / result.seconds, cpu_ms))

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"command: python {' '.join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])}")
    print(
        f"{args.num_imgs} images of {args.img_size} px, {args.format}"
        f"{' quality 75' if args.format == 'jpg' else ''}, default image, backend {args.backend}; "
        f"{cpus} CPUs available, {platform.processor() or platform.machine()}, Python {platform.python_version()}"
    )
    print()
    print("| processes | seconds | images/s | speed-up | CPU ms/image |")
    print("|---:|---:|---:|---:|---:|")
    base = rows[0][2]
    for processes, seconds, rate, cpu_ms in rows:
        print(f"| {processes} | {seconds:.2f} | {rate:.0f} | {rate / base:.2f}x | {cpu_ms:.1f} |")
    return 0


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the export's worker processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


if __name__ == "__main__":
    sys.exit(main())
