"""Shared fixtures: the test photographs and the list of renderers every contract test runs on."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from single_image_dataset import DEFAULT_IMAGE, HUBBLE_IMAGE, available_backends


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
