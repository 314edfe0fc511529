"""Shared fixtures (the test photographs, the renderers every contract test runs on) and helpers.

The helpers are imported by the test modules (``from conftest import wait_for``): pytest puts this folder
on ``sys.path``.
"""

from __future__ import annotations

import re
import shutil
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from single_image_dataset import DEFAULT_IMAGE, HUBBLE_IMAGE, available_backends, sampling

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
