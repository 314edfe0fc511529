"""The default renderer: the fastest this installation runs, the same choice everywhere a backend is chosen."""

from __future__ import annotations

import json

import numpy as np
import pytest

from single_image_dataset import FakeVideoDataset, SingleImageDataset, default_backend, materialize
from single_image_dataset.cli import main
from single_image_dataset.render import default as default_module
from single_image_dataset.render import fast
from training.config import TrainConfig


@pytest.fixture
def without_extension(monkeypatch):
    """This installation as one built without a C compiler."""
    monkeypatch.setattr(default_module, "native_available", lambda: False)


def test_fast_where_the_extension_is_built():
    assert fast.native_available()  # the test installation builds it (setup.py build_ext)
    assert default_backend() == "fast"


def test_reference_without_the_extension(without_extension):
    assert default_backend() == "reference"
    assert SingleImageDataset(num_imgs=2, img_size=32).backend == "reference"


@pytest.mark.parametrize("backend", ["reference", "fast"])
def test_every_chooser_follows_it(monkeypatch, backend):
    monkeypatch.setattr(default_module, "default_backend", lambda: backend)
    monkeypatch.setattr("single_image_dataset.dataset.default_backend", lambda: backend)
    assert SingleImageDataset(num_imgs=2, img_size=32).backend == backend
    assert FakeVideoDataset(num_imgs=2, clip_len=2, img_size=32).backend == backend


def test_the_default_renders_as_the_named_backend():
    default = SingleImageDataset(num_imgs=3, img_size=32, output="tensor")
    named = SingleImageDataset(num_imgs=3, img_size=32, output="tensor", backend=default_backend())
    reference = SingleImageDataset(num_imgs=3, img_size=32, output="tensor", backend="reference")
    assert default.params(1) == reference.params(1)  # the parameters never depend on the backend
    assert np.array_equal(default[1][0].numpy(), named[1][0].numpy())
    assert not np.array_equal(default[1][0].numpy(), reference[1][0].numpy())


def test_training_config_default():
    assert TrainConfig().backend == default_backend()


def test_cli_prints_and_records_it(tmp_path, capsys):
    assert main(["--num_imgs", "3", "--img_size", "32", "--format", "png", "--materialize",
                 "--targetpath", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"backend {default_backend()}\n" in out
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["dataset"]["renderer"]["backend"] == default_backend()


def test_resuming_an_export_of_the_old_default_is_refused(tmp_path):
    materialize(SingleImageDataset(num_imgs=3, img_size=32, backend="reference"), tmp_path, image_format="png",
                progress=False)
    with pytest.raises(FileExistsError, match="renderer.backend 'reference' there, 'fast' now"):
        materialize(SingleImageDataset(num_imgs=3, img_size=32), tmp_path, image_format="png", progress=False)
