"""Fake-video clips: clips per CPU second of both renderers, and the bytes and time per clip of the MP4 export.

For the paper's clips (16 frames of 230 px; ``--clip_len``/``--img_size`` change it) from the embedded default
image, prints a markdown table of, per renderer (``dataset[i]``, torch and OpenCV limited to one thread,
so the rate is per core):

- clips per second and milliseconds per clip of rendering alone;
- milliseconds per clip of :func:`~single_image_dataset.video.encode_mp4` (libx264, one thread, crf 23);
- clips per second of rendering and encoding together, what one export process writes;
- the mean and range of the bytes per clip (the files of ``--materialize``), and what 200,000 clips take.

Each rate is the median of ``--repeats`` passes over the same ``--clips`` clips (indices 0, 1, ...).
Run from the repository root::

    python benchmarks/bench_video.py            # the figures in docs/video.md (a few minutes on one core)
    python benchmarks/bench_video.py --quick    # 4 clips, 1 pass: a smoke run, too noisy to quote
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import torch
from _threads import one_thread  # benchmarks/_threads.py, beside this script

from single_image_dataset.video import DEFAULT_CRF, FakeVideoDataset, encode_mp4

BACKENDS = ("reference", "fast")
PAPER_CLIPS = 200_000


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 clips, 1 pass: a smoke run, too noisy to quote")
    parser.add_argument("--clips", type=int, default=24, help="clips per timed pass (default: 24)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes; the median is reported (default: 3)")
    parser.add_argument("--clip_len", type=int, default=16, help="frames per clip (default: 16)")
    parser.add_argument("--img_size", type=int, default=230, help="frame side in pixels (default: 230)")
    args = parser.parse_args(argv)
    if args.quick:
        args.clips, args.repeats = 4, 1
    if min(args.clips, args.repeats) < 1:
        parser.error("--clips and --repeats should be positive")

    one_thread()
    print(
        f"| renderer | render clips/s | render ms/clip | encode ms/clip | render + encode clips/s | "
        f"bytes/clip (range) | {PAPER_CLIPS:,} clips |",
    )
    print("|---|---|---|---|---|---|---|")
    for backend in BACKENDS:
        print(f"measuring {backend} ...", file=sys.stderr, flush=True)
        ds = FakeVideoDataset(num_imgs=args.clips, clip_len=args.clip_len, img_size=args.img_size, backend=backend)
        render, encode, sizes = _measure(ds, args.repeats)
        mean = statistics.fmean(sizes)
        print(
            f"| {backend} | {1 / render:.1f} | {1000 * render:.1f} | {1000 * encode:.1f} | "
            f"{1 / (render + encode):.1f} | {mean / 1000:.1f} KB ({min(sizes) / 1000:.1f}-{max(sizes) / 1000:.1f}) | "
            f"{mean * PAPER_CLIPS / 1e9:.2f} GB |",
            flush=True,
        )
    print(
        f"\n{args.clip_len} frames of {args.img_size} px, crf {DEFAULT_CRF}, {args.clips} clips x {args.repeats} "
        f"passes, one thread; torch {torch.__version__}",
    )
    return 0


def _measure(ds: FakeVideoDataset, repeats: int) -> tuple[float, float, list[int]]:
    """CPU seconds per clip to render and to encode every clip of ``ds``, and each clip's MP4 size."""
    ds[0]  # build the renderer's caches (the fast renderer's pyramid) before timing
    render = _seconds(lambda: [ds[i] for i in range(len(ds))], repeats) / len(ds)
    clips = [ds[i][0] for i in range(len(ds))]
    encode = _seconds(lambda: [encode_mp4(c) for c in clips], repeats) / len(ds)
    return render, encode, [len(encode_mp4(c)) for c in clips]


def _seconds(work: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.process_time()
        work()
        times.append(time.process_time() - start)
    return statistics.median(times)


if __name__ == "__main__":
    raise SystemExit(main())
