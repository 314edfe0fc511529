"""What the repository and the installed package carry besides code: licence, citation, typing marker, data."""

from __future__ import annotations

import configparser
import fnmatch
import re
from importlib import resources
from pathlib import Path

import single_image_dataset

REPO = Path(__file__).resolve().parent.parent
PACKAGE = Path(single_image_dataset.__file__).parent
# Sources and build outputs: shipped (or compiled) as code, not declared as package data.
CODE_SUFFIXES = {".py", ".c", ".h", ".so", ".pyd", ".pyc"}


def _setup_cfg() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    return config


def test_license_is_the_mit_text_that_setup_cfg_names() -> None:
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License\n\nCopyright (c) 2026 The single_image_dataset developers\n")
    assert "THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND" in text
    metadata = _setup_cfg()["metadata"]
    assert (metadata["license"], metadata["license_files"]) == ("MIT", "LICENSE")


def test_citation_names_the_software_and_prefers_the_paper() -> None:
    text = (REPO / "CITATION.cff").read_text()
    top, preferred = text.split("\npreferred-citation:\n")
    assert re.search(r"^cff-version: 1\.2\.0$", top, re.M) and re.search(r"^type: software$", top, re.M)
    assert re.search(r"^license: MIT$", top, re.M)
    assert re.search(r"^  type: conference-paper$", preferred, re.M)
    assert 'title: "A critical analysis of self-supervision, or what we can learn from a single image"' in preferred
    assert re.findall(r"family-names: (\w+)", preferred) == ["Asano", "Rupprecht", "Vedaldi"]
    assert "year: 2020" in preferred and "https://arxiv.org/abs/1904.13132" in preferred


def test_py_typed_is_in_the_package() -> None:
    assert (resources.files("single_image_dataset") / "py.typed").is_file()


def test_every_data_file_of_the_package_is_declared_package_data() -> None:
    patterns = _setup_cfg()["options.package_data"]["single_image_dataset"].replace(",", " ").split()
    data = [
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and path.suffix not in CODE_SUFFIXES and "__pycache__" not in path.parts
    ]
    assert {"py.typed", "data/coffee.png", "data/hubble_deep_field.jpg"} <= set(data)
    undeclared = [name for name in data if not any(fnmatch.fnmatch(name, p) for p in patterns)]
    assert undeclared == [], f"add them to [options.package_data] in setup.cfg: {undeclared}"
