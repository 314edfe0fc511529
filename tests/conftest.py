"""Shared fixtures: the test photographs and the list of renderers every contract test runs on."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from single_image_dataset import DEFAULT_IMAGE, HUBBLE_IMAGE, available_backends, sampling


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
