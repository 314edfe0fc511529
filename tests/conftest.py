"""Shared fixtures (the test photographs, the renderers every contract test runs on) and helpers.

The helpers are imported by the test modules (``from conftest import wait_for``): pytest puts this folder
on ``sys.path``.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from PIL import Image

from single_image_dataset import DEFAULT_IMAGE, HUBBLE_IMAGE, available_backends, sampling

if TYPE_CHECKING:
    from training import TrainConfig

#: The command's name, which begins its one-line errors.
PROG = "single-image-dataset"


def wait_for(predicate: Callable[[], object], timeout: float = 60.0) -> None:
    """Return once ``predicate()`` is true, polling; ``TimeoutError`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.005)


def assert_one_line_error(err: str, pattern: str, prog: str = PROG) -> None:
    """``err`` is one line, ``{prog}: error: ...`` with no traceback, in which ``pattern`` is found."""
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith(f"{prog}: error: ") and "Traceback" not in err, err
    assert re.search(pattern, err), err


def run_torchrun(script: Path, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """``script args`` under ``torchrun`` with 2 CPU processes on a free local port, one OpenMP thread each."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torchrun = Path(sys.executable).parent / "torchrun"
    command = [str(torchrun), "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(port),
               str(script), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs."""
    grid = np.sort(np.concatenate([a, b]))
    cdf_a = np.searchsorted(np.sort(a), grid, side="right") / len(a)
    cdf_b = np.searchsorted(np.sort(b), grid, side="right") / len(b)
    return float(np.abs(cdf_a - cdf_b).max())


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` RGB pixels but holds none: a few dozen bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.fixture(params=available_backends())
def backend(request: pytest.FixtureRequest) -> str:
    """Every registered renderer; contract tests taking this fixture run once per backend."""
    return request.param


@pytest.fixture(scope="session")
def hubble_path() -> Path:
    """The embedded Hubble Deep Field, 1000x872 JPEG with a mostly black background."""
    return HUBBLE_IMAGE


@pytest.fixture(scope="session")
def coffee_path() -> Path:
    """The embedded default image, a 600x400 PNG photograph (CC0, scikit-image's ``coffee``)."""
    return DEFAULT_IMAGE


@pytest.fixture(scope="session")
def large_photo(tmp_path_factory: pytest.TempPathFactory, coffee_path: Path) -> Path:
    """A real photograph of at least 2000 px: coffee.png upscaled bicubically to 2400x1600."""
    path = tmp_path_factory.mktemp("large") / "coffee_2400.png"
    with Image.open(coffee_path) as img:
        img.convert("RGB").resize((2400, 1600), Image.Resampling.BICUBIC).save(path)
    return path


@pytest.fixture(params=["native", "numpy"])
def sampler_impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The batched sampler with the C extension, and without it (numpy for everything).

    Where no C compiler exists the extension cannot be built and only the numpy run is possible.
    """
    if request.param == "native":
        if sampling._native_sample_batch is None:
            if not any(shutil.which(cc) for cc in ("cc", "gcc", "clang")):
                pytest.skip("no C compiler here, so the C extension was not built")
            pytest.fail("the C extension is not built; `python setup.py build_ext --inplace` builds it")
    else:
        monkeypatch.setattr(sampling, "_native_sample_batch", None)
        monkeypatch.setattr(sampling, "_native_uniforms", None)
    return request.param


def _stripes_folder(root: Path, per_class: dict[str, int], size: int = 64) -> Path:
    """A labelled ImageFolder of horizontal / vertical stripes and flat colour, random colours."""
    y, x = np.mgrid[0:size, 0:size] / size
    for split, count in per_class.items():
        for class_id, name in enumerate(("horizontal", "vertical", "flat")):
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                rng = np.random.default_rng([class_id, i, len(split)])
                coord = {"horizontal": y, "vertical": x, "flat": np.zeros_like(x)}[name]
                mask = (np.sin(2 * np.pi * rng.uniform(3, 6) * coord + rng.uniform(0, 6)) > 0)[..., None]
                image = np.where(mask, rng.random(3), rng.random(3)) + rng.normal(0, 0.05, (size, size, 3))
                Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8)).save(root / split / name / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def probe_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small labelled ImageFolder (3 classes of stripes and flat colour; 32 train and 12 val images each)."""
    return _stripes_folder(tmp_path_factory.mktemp("probe"), {"train": 32, "val": 12})


@pytest.fixture
def stripes_folder() -> Callable[..., Path]:
    """``stripes_folder(root, {"train": n, "val": m}, size=64)``: write a labelled ImageFolder of stripes there."""
    return _stripes_folder


@pytest.fixture
def tiny_config(tmp_path: Path, coffee_path: Path) -> Callable[..., TrainConfig]:
    """``tiny_config(**changes)``: a training run of a few steps on CPU, in ``tmp_path/out``."""
    from training import TrainConfig

    def make(**changes: object) -> TrainConfig:
        values: dict[str, object] = {
            "imgpath": str(coffee_path), "out": str(tmp_path / "out"), "num_imgs": 32, "val_imgs": 8,
            "batch_size": 16, "epochs": 1, "workers": 0, "log_every": 1000, "width": 0.125,
        }
        return TrainConfig(**{**values, **changes})

    return make


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op thread: faster than two on a shared 2-core machine, and reproducible."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
