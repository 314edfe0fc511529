"""Every docstring example of the package (and of the top-level ``training`` programs) runs and prints what it shows.

One collection, discovered rather than listed: a new module is covered without touching this file. A module
without examples passes; the collection as a whole must attempt more than :data:`MIN_EXAMPLES`, so a broken
discovery (no modules found, examples no longer collected) fails instead of passing vacuously.
"""

from __future__ import annotations

import doctest
import functools
import importlib
import pkgutil
from pathlib import Path

import pytest

import single_image_dataset

REPO = Path(__file__).resolve().parent.parent
# The training programs live beside the library (torchvision's references/ layout), when the checkout has them.
TRAINING = REPO / "training"
MIN_EXAMPLES = 50


def _module_names() -> list[str]:
    names = [single_image_dataset.__name__]
    names += [m.name for m in pkgutil.walk_packages(single_image_dataset.__path__, "single_image_dataset.")]
    if (TRAINING / "__init__.py").is_file():
        names += ["training"] + [m.name for m in pkgutil.walk_packages([str(TRAINING)], "training.")]
    return names


MODULES = _module_names()


@functools.cache
def _run(name: str) -> doctest.TestResults:
    return doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    assert _run(name).failed == 0, f"{name}: a docstring example failed (doctest's report above)"


def test_the_collection_attempts_enough_examples() -> None:
    attempted = sum(_run(name).attempted for name in MODULES)
    assert attempted > MIN_EXAMPLES, f"only {attempted} docstring examples found in {len(MODULES)} modules"


def test_discovery_walks_the_subpackages() -> None:
    assert "single_image_dataset.sampling" in MODULES
    assert any(name.startswith("single_image_dataset.render.") for name in MODULES)
