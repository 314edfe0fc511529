"""Training steps per second of the CPU demo: the per-sample path with the reference renderer (before) vs.
``batch_loader`` with the fast renderer (after), side by side in one run.

The CPU demo's settings (``train_example.py`` with no flags: RotNet, 64 px, a quarter-width AlexNet, batches of
64 x 4 rotations, 1 loader worker) with only the loader and the renderer switched:

- ``before``: ``--loader sample --backend reference``, a ``DataLoader`` of single samples, each rendered by
  torchvision's ops, viewed and normalised in the worker (the path of the program before batch_loader);
- ``after``: ``--loader batch --backend fast``, whole uint8 batches from ``batch_loader``, viewed and normalised
  as batch operations in the training process.

Each round runs one epoch of ``--steps`` steps of each, alternately (A B A B ...), and the figure is the
median over ``--rounds`` of the epoch's steps per second (worker start-up included, as a user sees it).
Torch keeps its default threads, as the demo does; on a loaded machine the figures are provisional.

Run from the repository root::

    python benchmarks/bench_training.py                  # about 3 minutes on 2 cores
    python benchmarks/bench_training.py --steps 10 --rounds 1 --method deepcluster
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # training/ lives beside benchmarks/

from training import METHODS, TrainConfig, run_training  # noqa: E402

PATHS = {"before": {"loader": "sample", "backend": "reference"}, "after": {"loader": "batch", "backend": "fast"}}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="rotnet", choices=list(METHODS), help="the method (default: rotnet)")
    parser.add_argument("--steps", type=int, default=40, help="steps per timed epoch (default: 40)")
    parser.add_argument("--rounds", type=int, default=3, help="timed epochs of each path; the median is reported")
    parser.add_argument("--workers", type=int, default=1, help="loader workers, as --workers (default: 1)")
    args = parser.parse_args(argv)
    if min(args.steps, args.rounds) < 1:
        parser.error("--steps and --rounds should be positive")
    rates: dict[str, list[float]] = {name: [] for name in PATHS}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for name, path in PATHS.items():
                config = TrainConfig(method=args.method, num_imgs=64 * args.steps, val_imgs=0, epochs=1,
                                     workers=args.workers, out=str(Path(tmp) / f"{name}{round_}"), log_every=10**6,
                                     k=min(100, 64 * args.steps), **path)
                (record,) = run_training(config, echo=False)["history"]
                rates[name].append(record["steps_per_second"])
    before, after = (statistics.median(rates[name]) for name in PATHS)
    print(f"{args.method}, CPU demo settings, epochs of {args.steps} steps, median of {args.rounds} rounds:")
    for name, path in PATHS.items():
        print(f"  {name:6} --loader {path['loader']:6} --backend {path['backend']:9} "
              f"{statistics.median(rates[name]):6.2f} steps/s  (rounds: {', '.join(f'{r:.2f}' for r in rates[name])})")
    print(f"  speed-up after / before: {after / before:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
