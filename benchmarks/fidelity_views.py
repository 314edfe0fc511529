"""Fidelity of the fast and torch renderers' views against the reference renderer's (the oracle): the table of
docs/views.md.

For each backend (``fast``, ``torch`` on the CPU), each view size (64 px views of 64 px samples, 224 px views
of 256 px samples) and each set of views, prints the mean PSNR in dB of its views against the reference's
views of the same indices, over the photographs of ``benchmarks/photos.py`` (those that ship with the package,
scikit-image's where it is installed, and two hard cases made here), and the lowest photograph's mean:

- ``colour off``: two views with the crop and the flip only, of samples without colour jitter (the geometry);
- each preset (``simclr``, ``moco_v2``, ``byol``, ``dino``): its views with all their colour ops, blur and
  solarization, of samples with the dataset's default colour jitter.

Both sides render their own sample (the reference's, the backend's), so the figures hold the samples' own
differences too. tests/test_views_render.py holds the backends to bounds on the same quantities, through
:func:`view_psnrs`; this script reports the values. Run from the repository root::

    python benchmarks/fidelity_views.py                 # a few minutes
    python benchmarks/fidelity_views.py --samples 2     # a quick look
"""

from __future__ import annotations

import argparse
import datetime
import functools
import platform
import sys
from collections.abc import Sequence

import numpy as np
import torch
from photos import load_photo, photo_names  # benchmarks/photos.py, beside this script

from single_image_dataset import SingleImageDataset, View
from single_image_dataset.render import fast
from single_image_dataset.views import PRESETS, preset

__all__ = ["CASES", "OPS", "view_psnrs"]

#: (view side, sample side): 64 px views of 64 px samples, and 224 px views of 256 px samples.
CASES = ((64, 64), (224, 256))
#: The sets of views: the geometry alone, then each preset with its colour ops.
OPS = ("colour off", *PRESETS)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=4, help="samples per photograph (default: 4)")
    parser.add_argument("--photos", nargs="+", choices=photo_names(), help="photographs (default: all available)")
    args = parser.parse_args(argv)
    if args.samples < 1:
        parser.error("--samples should be positive")
    torch.set_num_threads(1)
    photos = args.photos or photo_names()
    shown = " ".join(sys.argv[1:] if argv is None else argv)
    print(f"`python benchmarks/fidelity_views.py{' ' + shown if shown else ''}` "
          f"({datetime.date.today()}, {platform.machine()}, torch {torch.__version__}, fast renderer: "
          f"{fast.implementation()}); {args.samples} samples per photograph, {len(photos)} photographs\n")
    print("| views | view px (sample px) | fast: mean dB | fast: lowest photo | torch: mean dB | torch: lowest photo |")
    print("|---|---|---|---|---|---|")
    for ops in OPS:
        for size, side in CASES:
            cells = []
            for backend in ("fast", "torch"):
                means = [float(np.mean(view_psnrs(backend, photo, size, side, ops, args.samples))) for photo in photos]
                cells += [f"{np.mean(means):.1f}", f"{min(means):.1f}"]
            print(f"| {ops} | {size} ({side}) | {' | '.join(cells)} |")
    return 0


def view_psnrs(backend: str, photo: str, size: int, side: int, ops: str, samples: int) -> list[float]:
    """The PSNR (dB, 100 for identical images) of each view of samples ``0 .. samples - 1`` of ``backend``
    against the reference's, for ``photo``, views of ``size`` px from samples of ``side`` px, views ``ops`` (one
    of :data:`OPS`)."""
    if ops == "colour off":
        views = [View(size=size, jitter_p=0.0, grayscale_p=0.0)] * 2
        settings = {"jitter_p": 0.0}
    else:
        views, settings = list(preset(ops, size=size)), {}
    indices = list(range(samples))
    rendered = []
    for name in ("reference", backend):
        ds = SingleImageDataset(_photo(photo), num_imgs=1000, img_size=side, views=views, backend=name, **settings)
        rendered.append(ds.render_views(ds.params_batch(indices), ds.view_params_batch(indices)))
    return [_psnr(a, b) for ref, got in zip(*rendered, strict=True) for a, b in zip(ref, got, strict=True)]


@functools.cache
def _photo(name: str):
    return load_photo(name)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(torch.mean((a.double() - b.double()) ** 2))
    return 100.0 if mse == 0 else 10.0 * float(np.log10(255.0**2 / mse))


if __name__ == "__main__":
    sys.exit(main())
