"""The fast renderer's speed before and after a change, side by side in one run.

Builds the older commit (``--before``, by default where this branch left ``main``: ``git merge-base
HEAD main``) into a temporary git worktree with its C
extensions, then times it and this checkout on the same inputs: one worker process per checkout, each
given the same requests in turn (interleaved, so load from elsewhere on the machine hits both alike),
measuring CPU time on one thread. The cells, at 64 and 256 px on the embedded 1000x872 photograph
with the default augmentation (jitter on half the samples):

- per sample: ``dataset[i]`` (a PIL image), one after another;
- batched: ``dataset.params_batch(indices)`` then ``dataset.render_batch`` into a reused tensor,
  batches of 256 (``-`` for a checkout from before batched rendering, such as ``723fa57``, the last
  one before the package's restructuring);
- the peer: torchvision's transforms v2 rendering the same chain per sample (random crop, resized crop,
  affine, centre crop, colour jitter half the time) on a uint8 tensor, in this checkout's process, so
  that the per-sample speed reads as a multiple of it as well.

It prints a markdown table with the rates, the ratio after/before, and each per-sample rate as a
multiple of the peer's.

Run from the repository root::

    python benchmarks/bench_before_after.py                    # about 3 minutes
    python benchmarks/bench_before_after.py --before a651f1f --seconds 0.5 --repeats 3
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CELLS = ("sample 64", "sample 256", "batch 64", "batch 256", "peer 64", "peer 256")

# The worker: reads "cell seconds start" lines, answers samples per CPU second. Its checkout is first
# on sys.path (PYTHONPATH), so it imports that checkout's package and extensions.
WORKER = r'''
import sys, time
import numpy as np, torch
torch.set_num_threads(1)
try:
    import cv2
    cv2.setNumThreads(1)
except ImportError:
    pass
from PIL import Image
from single_image_dataset import SingleImageDataset

image = Image.open(sys.argv[1]).convert("RGB")  # by path: a checkout from before HUBBLE_IMAGE reads it too
datasets, buffers, peers = {}, {}, {}


def dataset(size):
    if size not in datasets:
        datasets[size] = SingleImageDataset(image, backend="fast", img_size=size, num_imgs=10**9)
    return datasets[size]


def peer(size):
    if size not in peers:
        import math
        from torchvision.transforms import v2
        resize = int(math.sqrt(2) * size)
        side = int(0.5 * min(image.size))
        peers[size] = (v2.Compose([
            v2.RandomCrop(side), v2.RandomResizedCrop(resize, scale=(0.002, 1.0), antialias=True),
            v2.RandomAffine(30.0, shear=30.0), v2.CenterCrop(size),
            v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.5),
        ]), v2.functional.pil_to_tensor(image))
    return peers[size]


def run(cell, size, start, n):
    if cell == "sample":
        ds = dataset(size)
        for i in range(start, start + n):
            ds[i]
    elif cell == "batch":
        ds = dataset(size)
        if not hasattr(ds, "params_batch"):  # a checkout from before batched rendering
            return False
        params = ds.params_batch(np.arange(start, start + n))
        if size not in buffers:
            buffers[size] = ds.render_batch(params)
        ds.render_batch(params, buffers[size])
    else:
        transform, tensor = peer(size)
        torch.manual_seed(start)  # the benchmark's own process: the library never seeds the global RNG
        for _ in range(n):
            transform(tensor)
    return True


for line in sys.stdin:
    cell, size, seconds, start = line.split()
    size, seconds, start = int(size), float(seconds), int(start)
    n = 256 if cell == "batch" else (16 if size >= 256 else 64)
    if not run(cell, size, start, n):  # warm up: caches, lazy imports
        print("nan", flush=True)
        continue
    done, elapsed = 0, 0.0
    while done == 0 or elapsed < seconds:
        t0 = time.process_time()
        run(cell, size, start + done, n)
        elapsed += time.process_time() - t0
        done += n
    print(done / elapsed, flush=True)
'''


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="the older commit (default: where this branch left main)")
    parser.add_argument("--seconds", type=float, default=1.0, help="CPU seconds per measurement (default: 1)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds; medians reported (default: 5)")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.repeats < 1:
        parser.error("--seconds and --repeats should be positive")
    rev = args.before or _git("merge-base", "HEAD", "main")
    before = _git("rev-parse", "--short", rev)
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    after = _git("rev-parse", "--short", "HEAD") + ("+" if dirty else "")
    with _checkout(rev) as old_tree:
        workers = {"before": _worker(old_tree), "after": _worker(ROOT)}
        rates: dict[tuple[str, str], list[float]] = {}
        for round_ in range(args.repeats):
            for cell in CELLS:
                kind, size = cell.split()
                for name, worker in workers.items():
                    if kind == "peer" and name == "before":
                        continue
                    worker.stdin.write(f"{kind} {size} {args.seconds} {round_ * 100_000}\n")
                    worker.stdin.flush()
                    rates.setdefault((name, cell), []).append(float(worker.stdout.readline()))
            print(f"round {round_ + 1} of {args.repeats} done", file=sys.stderr, flush=True)
        for worker in workers.values():
            worker.stdin.close()
            worker.wait()
    median = {key: statistics.median(values) for key, values in rates.items()}
    print(f"`python benchmarks/bench_before_after.py{' ' + ' '.join(argv or sys.argv[1:])}`: before = {before}, "
          f"after = {after}; samples per CPU second on one thread, medians of {args.repeats} interleaved rounds of "
          f"{args.seconds:g} s\n")
    print("| img_size | what | before /s | after /s | after / before | before / peer | after / peer |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for size in ("64", "256"):
        peer = median["after", f"peer {size}"]
        for kind, label in (("sample", "per sample, ds[i]"), ("batch", "batched, 256")):
            old, new = median["before", f"{kind} {size}"], median["after", f"{kind} {size}"]
            if math.isnan(old):  # the older checkout cannot render batches
                print(f"| {size} | {label} | - | {new:,.0f} | - | - | {new / peer:.1f}x |")
                continue
            print(f"| {size} | {label} | {old:,.0f} | {new:,.0f} | {new / old:.2f}x | {old / peer:.1f}x "
                  f"| {new / peer:.1f}x |")
        print(f"| {size} | peer: torchvision v2, per sample | | {peer:,.0f} | | | |")
    return 0


@contextlib.contextmanager
def _checkout(rev: str) -> Iterator[Path]:
    """``rev`` in a temporary git worktree, its C extensions built in place."""
    with tempfile.TemporaryDirectory(prefix="before_after_") as tmp:
        tree = Path(tmp) / "tree"
        _git("worktree", "add", "--detach", "--quiet", str(tree), rev)
        try:
            print(f"building {rev} in {tree} ...", file=sys.stderr, flush=True)
            subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=tree, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            yield tree
        finally:
            _git("worktree", "remove", "--force", str(tree))


def _worker(tree: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    photo = ROOT / "single_image_dataset" / "data" / "hubble_deep_field.jpg"
    return subprocess.Popen([sys.executable, "-c", WORKER, str(photo)], cwd=tree, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
