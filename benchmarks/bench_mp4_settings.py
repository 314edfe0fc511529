"""What reproducible MP4s cost: x264's defaults (macroblock tree on) against this library's settings, side by side.

``encode_mp4`` turns x264's macroblock-tree rate control off (:data:`~single_image_dataset.video.encode.X264_OPTIONS`),
because its floating-point SIMD code gave other bytes from run to run. For clips of the embedded default image
(reference renderer) at a few sizes and crf values, prints a markdown table of, per setting: the mean bytes per clip,
the mean PSNR of the decoded frames against the rendered ones, the encoding time per clip (one thread), and how many
clips gave other bytes in any of ``--repeats`` encodings in this process. ``--contention`` runs the encodings pinned
to one CPU beside a busy process, the condition under which the macroblock tree's bytes varied most (Linux only).

Run from the repository root::

    python benchmarks/bench_mp4_settings.py                  # the figures in the docs
    python benchmarks/bench_mp4_settings.py --contention     # the reproducibility column under CPU contention
    python benchmarks/bench_mp4_settings.py --clips 4        # a smoke run
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from contextlib import nullcontext
from unittest import mock

import torch

from single_image_dataset.video import FakeVideoDataset, decode_mp4, encode, encode_mp4

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from contention import cpu_contention  # noqa: E402  (benchmarks/contention.py)

SETTINGS = {"x264 defaults (mbtree on)": {}, "this library (mbtree off)": encode.X264_OPTIONS}
SHAPES = ((64, 8), (230, 16))
CRFS = (18, 23, 26, 28)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=20, help="clips per size (default: 20)")
    parser.add_argument("--repeats", type=int, default=3, help="encodings of each clip (default: 3)")
    parser.add_argument("--contention", action="store_true", help="pin to one CPU beside a busy process")
    args = parser.parse_args(argv)
    if min(args.clips, args.repeats) < 1:
        parser.error("--clips and --repeats should be positive")
    torch.set_num_threads(1)
    print(f"command: python {' '.join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])}")
    print(f"{args.clips} clips per size, {args.repeats} encodings each; {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}, PyAV {encode.encoder_versions()['av']}")
    print()
    print("| clips | crf | settings | bytes/clip | PSNR dB | ms/clip | clips whose bytes varied |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for size, clip_len in SHAPES:
        ds = FakeVideoDataset(num_imgs=args.clips, clip_len=clip_len, img_size=size)
        clips = [ds[i][0] for i in range(args.clips)]
        for crf in CRFS:
            for name, options in SETTINGS.items():
                with mock.patch.object(encode, "X264_OPTIONS", options):
                    with cpu_contention() if args.contention else nullcontext():
                        start = time.perf_counter()
                        runs = [[encode_mp4(clip, crf=crf) for clip in clips] for _ in range(args.repeats)]
                        ms = 1000 * (time.perf_counter() - start) / (args.repeats * len(clips))
                varied = sum(len(set(files)) > 1 for files in zip(*runs, strict=True))
                size_mean = sum(map(len, runs[0])) / len(clips)
                psnr = sum(_psnr(decode_mp4(data), clip) for data, clip in zip(runs[0], clips, strict=True))
                print(f"| {clip_len} x {size} px | {crf} | {name} | {size_mean:.0f} | {psnr / len(clips):.2f} "
                      f"| {ms:.1f} | {varied} of {len(clips)} |")
    return 0


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.double() - b.double()).pow(2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


if __name__ == "__main__":
    sys.exit(main())
