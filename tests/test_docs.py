"""The docstring examples of the public modules run and print what they show."""

from __future__ import annotations

import doctest

import pytest

from single_image_dataset import config, dataset, sampling


@pytest.mark.parametrize("module", [config, sampling, dataset], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
