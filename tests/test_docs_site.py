"""The documentation site's structure: the API pages cover the public API, the nav lists every page.

`mkdocs build --strict` (run by ``.ci/run``) checks the links, the anchors and the docstrings; these tests check
what it does not, fast and without MkDocs: that every name of ``single_image_dataset.__all__`` has its entry in
the API reference, that each entry names an object that exists, and that no page is left out of the nav.
"""

from __future__ import annotations

import doctest
import importlib
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import single_image_dataset

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
API_PAGES = sorted((DOCS / "api").glob("*.md"))
_DIRECTIVE = re.compile(r"^::: ([\w.]+)\s*$", re.M)
_NAV_PAGE = re.compile(r"^\s*- (?:[^:\n]+: )?([\w/.-]+\.md)\s*$", re.M)


def _documented() -> list[str]:
    return [name for page in API_PAGES for name in _DIRECTIVE.findall(page.read_text())]


def _resolve(dotted: str) -> object:
    """The object a mkdocstrings directive names: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            obj = getattr(obj, attribute)
        return obj
    raise ModuleNotFoundError(dotted)


def test_every_public_name_is_in_the_api_reference() -> None:
    documented = set(_documented())
    missing = [name for name in single_image_dataset.__all__ if f"single_image_dataset.{name}" not in documented]
    assert missing == [], f"public names without an entry in docs/api/*.md: {missing}"


def test_every_api_entry_names_an_object_once() -> None:
    documented = _documented()
    assert sorted({name for name in documented if documented.count(name) > 1}) == []
    for name in documented:
        _resolve(name)  # an AttributeError or ModuleNotFoundError names the entry that no longer exists


def test_every_page_is_in_the_nav() -> None:
    nav = _NAV_PAGE.findall((REPO / "mkdocs.yml").read_text())
    pages = sorted(str(path.relative_to(DOCS)) for path in DOCS.rglob("*.md"))
    assert sorted(set(nav)) == pages
    assert len(nav) == len(set(nav)), "a page is twice in the nav"


def test_the_docstring_extension_reads_the_project_style() -> None:
    pytest.importorskip("griffe", reason="the docs extra (pip install -e '.[docs]') is not installed")
    sys.path.insert(0, str(DOCS))
    try:
        module = importlib.import_module("griffe_docstrings")
    finally:
        sys.path.remove(str(DOCS))
    assert doctest.testmod(module).failed == 0


def test_the_first_example_image_is_what_the_example_draws() -> None:
    """docs/assets/first-example.png is the grid the README's first example writes (up to library versions)."""
    ds = single_image_dataset.SingleImageDataset(num_imgs=1000, img_size=128, seed=0)
    drawn = np.asarray(single_image_dataset.preview_grid(ds, count=16), dtype=np.float64)
    shipped = np.asarray(Image.open(DOCS / "assets" / "first-example.png").convert("RGB"), dtype=np.float64)
    assert drawn.shape == shipped.shape
    mse = np.mean((drawn - shipped) ** 2)
    assert mse == 0 or 10 * np.log10(255**2 / mse) >= 35, "regenerate the image with the README's first example"


def test_the_views_preview_image_is_what_the_views_page_draws() -> None:
    """docs/assets/views-preview.png is the grid the example of docs/views.md writes (up to library versions)."""
    ds = single_image_dataset.SingleImageDataset(num_imgs=1000, img_size=128, views="dino")
    drawn = np.asarray(single_image_dataset.preview_grid(ds, count=4), dtype=np.float64)
    shipped = np.asarray(Image.open(DOCS / "assets" / "views-preview.png").convert("RGB"), dtype=np.float64)
    assert drawn.shape == shipped.shape
    mse = np.mean((drawn - shipped) ** 2)
    assert mse == 0 or 10 * np.log10(255**2 / mse) >= 35, "regenerate the image with the example of docs/views.md"
