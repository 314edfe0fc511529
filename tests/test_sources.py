"""Several source images: the source slot of the sampler, batched and per sample."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as F

from single_image_dataset import AugmentConfig, sample_params, sample_params_batch

pytestmark = pytest.mark.filterwarnings("error")

SIZES = [(600, 400), (1000, 872), (300, 900), (2400, 1600)]


class TestSourceSlot:
    def test_one_source_list_is_the_single_image_stream(self):
        config = AugmentConfig(randinterp=True, vflip=True)
        for i in range(300):
            single = sample_params(config, (600, 400), i, epoch=1)
            assert sample_params(config, [(600, 400)], i, epoch=1) == single
            assert single.source == 0 and "source" not in single.to_dict()

    @pytest.mark.parametrize("config", [AugmentConfig(), AugmentConfig(cropfirst=False, jitter_p=1.0, vflip=True)])
    def test_batch_equals_per_sample(self, config, sampler_impl):
        indices = np.arange(0, 9000, 3) if sampler_impl == "native" else np.arange(0, 1500, 3)
        expected = [sample_params(config, SIZES, int(i), epoch=2) for i in indices]
        batch = sample_params_batch(config, SIZES, indices, epoch=2)
        assert batch.to_list() == expected
        assert sample_params_batch(config, SIZES[:1], indices[:50]).to_list() == [
            sample_params(config, SIZES[0], int(i)) for i in indices[:50]
        ]

    def test_crops_fit_their_own_source(self):
        config = AugmentConfig(cropfirst=False)
        for p in sample_params_batch(config, SIZES, range(2000)).to_list():
            width, height = SIZES[p.source]
            top, left, h, w = p.resized_crop
            assert 0 <= top and top + h <= height and 0 <= left and left + w <= width

    def test_source_is_uniform_and_reproducible(self):
        # Chi-square with 3 degrees of freedom; 16.27 is its 99.9 % quantile.
        sources = sample_params_batch(AugmentConfig(), SIZES, range(20_000)).source
        counts = np.bincount(sources, minlength=len(SIZES))
        expected = len(sources) / len(SIZES)
        assert ((counts - expected) ** 2 / expected).sum() < 16.27
        again = sample_params_batch(AugmentConfig(), SIZES, range(20_000)).source
        assert np.array_equal(sources, again)
        assert not np.array_equal(sources, sample_params_batch(AugmentConfig(seed=1), SIZES, range(20_000)).source)

    def test_record_round_trip_with_source(self):
        p = sample_params(AugmentConfig(), SIZES, 5)
        assert p.source != 0 or sample_params(AugmentConfig(), SIZES, 6).source != 0
        for i in range(20):
            q = sample_params(AugmentConfig(), SIZES, i)
            assert type(q).from_dict(q.to_dict()) == q

    @pytest.mark.parametrize("bad", [[], [(600,)], [(600, 0)], [(600.0, 400)]])
    def test_bad_sizes(self, bad):
        with pytest.raises(ValueError, match="source"):
            sample_params(AugmentConfig(), bad, 0)


def _three(tmp_path):
    """Three sources of different sizes and modes: coffee (RGB PNG), Hubble (JPEG), and a greyscale copy."""
    from PIL import Image

    from single_image_dataset import DEFAULT_IMAGE, HUBBLE_IMAGE

    grey = tmp_path / "grey.png"
    with Image.open(DEFAULT_IMAGE) as img:
        img.convert("L").resize((500, 700)).save(grey)
    return [DEFAULT_IMAGE, HUBBLE_IMAGE, grey]


class TestSeveralSources:
    def test_one_image_list_is_the_single_image_dataset(self, backend):
        from single_image_dataset import DEFAULT_IMAGE, SingleImageDataset

        single = SingleImageDataset(DEFAULT_IMAGE, num_imgs=50, img_size=32, backend=backend, jitter_p=1.0)
        listed = SingleImageDataset([DEFAULT_IMAGE], num_imgs=50, img_size=32, backend=backend, jitter_p=1.0)
        for i in (0, 7, 49):
            assert listed.params(i) == single.params(i)
            assert listed[i][0].tobytes() == single[i][0].tobytes()
        assert torch.equal(listed.render_batch(listed.params_batch(range(50))),
                           single.render_batch(single.params_batch(range(50))))

    def test_each_sample_renders_from_its_source(self, tmp_path, backend):
        from single_image_dataset import SingleImageDataset, get_renderer

        paths = _three(tmp_path)
        ds = SingleImageDataset(paths, num_imgs=60, img_size=32, backend=backend, jitter_p=0.7)
        alone = [get_renderer(backend, source) for source in ds.sources]
        batch = ds.params_batch(range(60))
        assert set(batch.source.tolist()) == {0, 1, 2}
        images = ds.render_batch(batch)
        for k, params in enumerate(batch.to_list()):
            expected = alone[params.source].render(params)
            assert ds.render(params).tobytes() == expected.tobytes()
            assert torch.equal(images[k], F.pil_to_tensor(expected))

    def test_directory_in_sorted_order(self, tmp_path):
        from single_image_dataset import SingleImageDataset

        folder = tmp_path / "folder"
        folder.mkdir()
        src = _three(tmp_path)
        for name, path in zip(("b.png", "a.jpg", "c.png"), src, strict=True):
            (folder / name).write_bytes(path.read_bytes())
        (folder / "notes.txt").write_text("ignored")
        ds = SingleImageDataset(folder, num_imgs=10, per_source_classes=True)
        assert ds.classes == ["a", "b", "c"] and ds.class_to_idx == {"a": 0, "b": 1, "c": 2}
        assert [s.size for s in ds.sources] == [(1000, 872), (600, 400), (500, 700)]

    def test_per_source_classes_contract(self, tmp_path):
        from PIL import Image

        from single_image_dataset import SingleImageDataset, batch_loader

        paths = _three(tmp_path)
        with Image.open(paths[0]) as img:
            memory = img.convert("RGB")
        ds = SingleImageDataset([*paths, memory, paths[0]], num_imgs=40, img_size=32, per_source_classes=True)
        assert ds.classes == ["coffee", "hubble_deep_field", "grey", "image_3", "coffee_2"]
        assert ds.class_to_idx == {name: k for k, name in enumerate(ds.classes)}
        sources = [ds.params(i).source for i in range(40)]
        assert [ds[i][1] for i in range(40)] == sources == list(ds.targets) == ds.targets[:]
        assert [y for _, y in ds.__getitems__(list(range(40)))] == sources
        assert torch.cat([y for _, y in batch_loader(ds, 16)]).tolist() == sources
        plain = SingleImageDataset(paths, num_imgs=40, img_size=32)
        assert plain.classes == ["dummy"] and {plain[i][1] for i in range(10)} == {0}

    def test_dataloader_with_two_workers(self, tmp_path):
        from torch.utils.data import DataLoader

        from single_image_dataset import SingleImageDataset

        ds = SingleImageDataset(_three(tmp_path), num_imgs=48, img_size=32, backend="fast", output="tensor",
                                per_source_classes=True)
        single = list(DataLoader(ds, batch_size=16, num_workers=0))
        multi = list(DataLoader(ds, batch_size=16, num_workers=2))
        for (xs, ys), (xm, ym) in zip(single, multi, strict=True):
            assert torch.equal(xs, xm) and torch.equal(ys, ym)

    @pytest.mark.parametrize("case", ["empty_list", "empty_dir", "bad_file", "too_small"])
    def test_bad_inputs_name_the_culprit(self, tmp_path, case):
        from PIL import Image

        from single_image_dataset import DEFAULT_IMAGE, SingleImageDataset

        if case == "empty_list":
            image, error, match = [], ValueError, "list of source images is empty"
        elif case == "empty_dir":
            (tmp_path / "empty").mkdir()
            image, error, match = tmp_path / "empty", ValueError, "holds no image files"
        elif case == "bad_file":
            (tmp_path / "broken.png").write_bytes(b"not a png")
            image, error, match = [DEFAULT_IMAGE, tmp_path / "broken.png"], ValueError, r"broken\.png is not an image"
        else:
            Image.new("RGB", (1, 1)).save(tmp_path / "tiny.png")
            image, error, match = [DEFAULT_IMAGE, tmp_path / "tiny.png"], ValueError, r"^source 1 \(tiny\): image of"
        with pytest.raises(error, match=match):
            SingleImageDataset(image, num_imgs=4)


class TestNamedSources:
    """A mapping {name: image}: the names are the sources' (and with per_source_classes the classes'), in its order."""

    def test_names_become_classes_in_the_mappings_order(self):
        from PIL import Image

        from single_image_dataset import DEFAULT_IMAGE, HUBBLE_IMAGE, SingleImageDataset

        with Image.open(DEFAULT_IMAGE) as img:
            cup = np.asarray(img.convert("RGB"))
        images = {"rocket": HUBBLE_IMAGE, "cup": cup, "a_third": torch.zeros(1, 300, 200, dtype=torch.uint8)}
        ds = SingleImageDataset(images, num_imgs=40, img_size=32, per_source_classes=True)
        assert ds.classes == ds.source_names == ["rocket", "cup", "a_third"]  # not sorted: the mapping's order
        assert ds.class_to_idx == {"rocket": 0, "cup": 1, "a_third": 2}
        assert [s.size for s in ds.sources] == [(1000, 872), (600, 400), (200, 300)]
        assert ds.source_paths == [HUBBLE_IMAGE, None, None]
        sources = [ds.params(i).source for i in range(40)]
        assert set(sources) == {0, 1, 2} and [ds[i][1] for i in range(40)] == sources == list(ds.targets)
        assert SingleImageDataset(images, num_imgs=4).classes == ["dummy"]

    def test_a_mapping_is_its_list_of_images_with_names(self, backend):
        from single_image_dataset import DEFAULT_IMAGE, HUBBLE_IMAGE, SingleImageDataset

        named = SingleImageDataset({"b": HUBBLE_IMAGE, "a": DEFAULT_IMAGE}, num_imgs=30, img_size=32, backend=backend)
        listed = SingleImageDataset([HUBBLE_IMAGE, DEFAULT_IMAGE], num_imgs=30, img_size=32, backend=backend)
        assert named.params_batch(range(30)).to_list() == listed.params_batch(range(30)).to_list()
        assert torch.equal(named.render_batch(named.params_batch(range(30))),
                           listed.render_batch(listed.params_batch(range(30))))

    def test_pickles_with_its_names(self):
        import pickle

        from single_image_dataset import DEFAULT_IMAGE, SingleImageDataset

        ds = SingleImageDataset({"cup": DEFAULT_IMAGE, "cup copy": DEFAULT_IMAGE}, num_imgs=8, img_size=32,
                                per_source_classes=True)
        again = pickle.loads(pickle.dumps(ds))
        assert again.classes == ["cup", "cup copy"] and again[3][0].tobytes() == ds[3][0].tobytes()

    @pytest.mark.parametrize(
        ("images", "error", "match"),
        [
            ({}, ValueError, r"^the mapping of source images is empty; pass at least one name: image pair$"),
            ({"": None}, ValueError, r"^source names should be non-empty strings, got ''$"),
            ({"cup": None, " ": None}, ValueError, r"^source names should be non-empty strings, got ' '$"),
            ({3: None}, TypeError, r"^source names should be non-empty strings, got 3 \(int\)$"),
            ({("a",): None}, TypeError, r"^source names should be non-empty strings, got \('a',\) \(tuple\)$"),
            ({"cup": None, "bad": np.zeros((8, 8), np.float32)}, TypeError,
             r"^source 1 \(bad\): image array should be uint8 HxWx3 \(or HxW, HxWx1, HxWx2, HxWx4\), got dtype "
             r"float32$"),
            ({"only": np.zeros((8, 8, 5), np.uint8)}, TypeError, r"^source 0 \(only\): image array should be uint8 "),
            ({"cup": None, "missing": "no_such_photo.png"}, FileNotFoundError,
             r"^image file not found: no_such_photo\.png$"),
            ({"cup": None, "tiny": np.zeros((1, 1), np.uint8)}, ValueError, r"^source 1 \(tiny\): image of 1x1 px "),
        ],
    )
    def test_bad_names_and_images_are_named(self, images, error, match):
        from single_image_dataset import SingleImageDataset

        with pytest.raises(error, match=match):
            SingleImageDataset(images, num_imgs=4)

    def test_in_memory_images_of_a_list_are_named_in_errors_too(self):
        from single_image_dataset import SingleImageDataset

        with pytest.raises(TypeError, match=r"^source 1 \(image_1\): image tensor should be uint8 "):
            SingleImageDataset([None, torch.zeros(3, 8, 8)], num_imgs=4)

    def test_export_identifies_sources_by_pixels_not_names(self, tmp_path):
        import json

        from single_image_dataset import DEFAULT_IMAGE, HUBBLE_IMAGE, SingleImageDataset, load_image, materialize

        quiet = {"image_format": "png", "progress": False}
        stars = np.asarray(load_image(HUBBLE_IMAGE))
        ds = SingleImageDataset({"cup": DEFAULT_IMAGE, "stars": stars}, num_imgs=6, img_size=32)
        materialize(ds, tmp_path / "out", **quiet)
        manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
        assert [(s["width"], s["height"]) for s in manifest["dataset"]["sources"]] == [(600, 400), (1000, 872)]
        assert manifest["source_files"][0]["path"] == str(DEFAULT_IMAGE) and manifest["source_files"][1] is None
        # The names decide no byte of the files: the same images under other names resume the export...
        renamed = SingleImageDataset({"mug": DEFAULT_IMAGE, "sky": stars}, num_imgs=6, img_size=32)
        assert materialize(renamed, tmp_path / "out", **quiet).written == 0
        # ... and other images under the same names are refused.
        swapped = SingleImageDataset({"cup": stars, "stars": DEFAULT_IMAGE}, num_imgs=6, img_size=32)
        with pytest.raises(FileExistsError, match=r"sources\.0\.width 600 there, 1000 now"):
            materialize(swapped, tmp_path / "out", **quiet)


class TestSeveralSourcesExport:
    def test_manifest_lists_every_source_and_resume_refuses_a_changed_list(self, tmp_path):
        import json

        from single_image_dataset import DEFAULT_IMAGE, HUBBLE_IMAGE, SingleImageDataset, materialize

        quiet = {"image_format": "png", "progress": False}
        ds = SingleImageDataset([DEFAULT_IMAGE, HUBBLE_IMAGE], num_imgs=6, img_size=32)
        materialize(ds, tmp_path / "out", **quiet)
        manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
        assert [(s["width"], s["height"]) for s in manifest["dataset"]["sources"]] == [(600, 400), (1000, 872)]
        assert [f["path"] for f in manifest["source_files"]] == [str(DEFAULT_IMAGE), str(HUBBLE_IMAGE)]
        materialize(ds, tmp_path / "out", **quiet)  # the same list resumes
        for changed, what in (([HUBBLE_IMAGE, DEFAULT_IMAGE], "sources.0.width 600 there, 1000 now"),
                              ([DEFAULT_IMAGE], "sources.length 2 there, 1 now")):
            other = SingleImageDataset(changed, num_imgs=6, img_size=32)
            with pytest.raises(FileExistsError, match=what):
                materialize(other, tmp_path / "out", **quiet)

    def test_per_source_classes_are_not_exported(self, tmp_path):
        from single_image_dataset import DEFAULT_IMAGE, HUBBLE_IMAGE, SingleImageDataset, materialize

        ds = SingleImageDataset([DEFAULT_IMAGE, HUBBLE_IMAGE], num_imgs=6, per_source_classes=True)
        with pytest.raises(ValueError, match="per_source_classes=False"):
            materialize(ds, tmp_path / "out", progress=False)
        assert not (tmp_path / "out").exists()

    @pytest.mark.slow
    def test_cli_takes_several_paths_and_a_directory(self, tmp_path):
        import subprocess
        import sys

        from single_image_dataset import DEFAULT_IMAGE, HUBBLE_IMAGE

        folder = tmp_path / "photos"
        folder.mkdir()
        for path in (DEFAULT_IMAGE, HUBBLE_IMAGE):
            (folder / path.name).write_bytes(path.read_bytes())
        for imgpath in ([str(DEFAULT_IMAGE), str(HUBBLE_IMAGE)], [str(folder)]):
            run = subprocess.run(
                [sys.executable, "-m", "single_image_dataset", "--imgpath", *imgpath, "--num_imgs", "8", "--img_size",
                 "32", "--targetpath", str(tmp_path / "out"), "--materialize", "--format", "png", "--threads", "1"],
                capture_output=True, text=True, timeout=120,
            )
            assert run.returncode == 0, run.stderr
            assert run.stdout.count("source: ") == 2
