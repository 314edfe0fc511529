"""SingleImageDataset as an ImageFolder drop-in: contract, indexing, inputs and error messages."""

from __future__ import annotations

import dataclasses
import pickle
import re

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder, VisionDataset
from torchvision.transforms import ToTensor

from single_image_dataset import (
    DEFAULT_IMAGE,
    AugmentConfig,
    Renderer,
    SingleImageDataset,
    available_backends,
    get_renderer,
    register_renderer,
)

pytestmark = pytest.mark.filterwarnings("error")

SMALL = {"num_imgs": 40, "img_size": 32}


def _train(loader: DataLoader) -> tuple[int, torch.Tensor]:
    """A typical ImageFolder loop: batches of (image tensor, class index)."""
    seen, total = 0, torch.zeros(3)
    for x, y in loader:
        assert x.dtype == torch.float32 and x.shape[1:] == (3, 32, 32)
        assert y.dtype == torch.int64
        seen += len(y)
        total += x.mean(dim=(0, 2, 3))
    return seen, total


class TestImageFolderContract:
    def test_drop_in_for_imagefolder(self, tmp_path, backend):
        # The same loop runs over a real ImageFolder and over SingleImageDataset, unchanged.
        (tmp_path / "train" / "dummy").mkdir(parents=True)
        for i in range(8):
            Image.new("RGB", (32, 32), (i * 30, 0, 0)).save(tmp_path / "train" / "dummy" / f"{i}.png")
        for dataset in (
            ImageFolder(tmp_path / "train", transform=ToTensor()),
            SingleImageDataset(transform=ToTensor(), backend=backend, **SMALL),
        ):
            seen, _ = _train(DataLoader(dataset, batch_size=4, shuffle=True))
            assert seen == len(dataset)
            assert dataset.classes == ["dummy"] and dataset.class_to_idx == {"dummy": 0}

    def test_attributes(self):
        ds = SingleImageDataset(**SMALL)
        assert isinstance(ds, VisionDataset)
        assert len(ds) == 40 and len(ds.targets) == 40
        assert ds.targets[0] == 0 and ds.targets[-1] == 0 and ds.targets[5:9] == [0, 0, 0, 0]
        assert list(ds.targets) == [0] * 40
        with pytest.raises(IndexError):
            ds.targets[40]
        assert ds.root == str(DEFAULT_IMAGE)

    def test_targets_are_lazy_at_full_size(self):
        ds = SingleImageDataset()
        assert len(ds) == 1_281_167 and len(ds.targets) == 1_281_167
        assert len(pickle.dumps(ds.targets)) < 1000

    def test_returns_pil_and_zero_without_transform(self):
        img, target = SingleImageDataset(**SMALL)[0]
        assert isinstance(img, Image.Image) and img.mode == "RGB" and img.size == (32, 32)
        assert target == 0

    def test_transform_and_target_transform(self):
        ds = SingleImageDataset(transform=ToTensor(), target_transform=lambda t: t + 7, **SMALL)
        x, y = ds[1]
        assert isinstance(x, torch.Tensor) and x.shape == (3, 32, 32) and y == 7

    def test_repr_in_torchvision_style(self):
        text = repr(SingleImageDataset(transform=ToTensor(), **SMALL))
        lines = text.splitlines()
        assert lines[0] == "Dataset SingleImageDataset"
        assert lines[1] == "    Number of datapoints: 40"
        assert lines[2] == f"    Root location: {DEFAULT_IMAGE}"
        assert "Source size: 600x400" in text and "backend: fast" in text
        assert "StandardTransform" in text and "ToTensor()" in text

    def test_config_and_overrides(self):
        cfg = AugmentConfig(img_size=48, seed=3)
        assert SingleImageDataset(config=cfg).config == cfg
        ds = SingleImageDataset(config=cfg, num_imgs=10, seed=4)
        assert (ds.config.img_size, ds.config.seed, len(ds)) == (48, 4, 10)
        assert cfg.seed == 3  # the caller's config is not mutated


class TestIndexing:
    def test_negative_and_numpy_indices(self):
        ds = SingleImageDataset(**SMALL)
        last = np.asarray(ds[39][0])
        assert np.array_equal(np.asarray(ds[-1][0]), last)
        assert np.array_equal(np.asarray(ds[np.int64(39)][0]), last)
        assert np.array_equal(np.asarray(ds[np.uint16(39)][0]), last)
        assert ds.params(-40) == ds.params(0)

    @pytest.mark.parametrize("index", [40, -41, 10**12])
    def test_out_of_range(self, index):
        with pytest.raises(IndexError, match=r"index .* is out of range for a dataset of 40 samples"):
            SingleImageDataset(**SMALL)[index]

    @pytest.mark.parametrize("index", [1.0, "3", None, slice(0, 2)])
    def test_non_integer(self, index):
        with pytest.raises(TypeError, match=r"dataset indices must be integers"):
            SingleImageDataset(**SMALL)[index]

    @pytest.mark.parametrize(
        "indices",
        [
            [np.uint64(3), -1],  # numpy would promote this mix to float64
            [np.int8(-2), np.uint64(39), 7],
            [True, 2],  # as ds[True] is ds[1]
            np.array([39, 0], dtype=np.uint64),
            torch.tensor([3, -1], dtype=torch.int32),
        ],
    )
    def test_mixed_integer_kinds_in_a_batch_are_exact(self, indices):
        ds = SingleImageDataset(**SMALL)
        expected = [ds.params(int(i)) for i in indices]
        assert ds.params_batch(indices).to_list() == expected

    @pytest.mark.parametrize(
        ("indices", "error", "match"),
        [
            ([-1, 2**63], IndexError, r"^index 9223372036854775808 is out of range for a dataset of 40 samples$"),
            ([0, 2**64], IndexError, r"^index 18446744073709551616 is out of range for a dataset of 40 samples$"),
            ([np.uint64(2**64 - 1), 0], IndexError, r"^index 18446744073709551615 is out of range for a dataset "),
            (np.array([2**63], dtype=np.uint64), IndexError, r"^index 9223372036854775808 is out of range"),
            ([-41, np.uint64(0)], IndexError, r"^index -41 is out of range for a dataset of 40 samples$"),
            ([np.uint64(3), 1.0], TypeError, r"^dataset indices must be integers, got float$"),
            (np.array([1.0, 2.0]), TypeError, r"^dataset indices must be integers, got an array of float64$"),
            ([[1], [2, 3]], ValueError, r"^indices should be a non-empty one-dimensional sequence, got a ragged one$"),
            ([[1, 2]], ValueError, r"^indices should be a non-empty one-dimensional sequence, got shape \(1, 2\)$"),
        ],
    )
    def test_bad_batch_indices(self, indices, error, match):
        with pytest.raises(error, match=match):
            SingleImageDataset(**SMALL).params_batch(indices)

    def test_getitem_documents_what_it_returns(self):
        import pydoc

        assert SingleImageDataset.__getitem__.__doc__ != VisionDataset.__getitem__.__doc__
        shown = pydoc.render_doc(SingleImageDataset(**SMALL).__getitem__, renderer=pydoc.plaintext)
        assert "as ``(image, target)``" in shown and 'output="tensor"' in shown and "per_source_classes" in shown


class TestInputs:
    def test_path_pil_array_tensor_agree(self, coffee_path):
        from_path = SingleImageDataset(coffee_path, **SMALL)
        pil = Image.open(coffee_path).convert("RGB")
        array = np.array(pil)
        tensor = torch.from_numpy(array).permute(2, 0, 1).contiguous()
        expected = np.asarray(from_path[5][0])
        for image in (str(coffee_path), pil, array, tensor):
            assert np.array_equal(np.asarray(SingleImageDataset(image, **SMALL)[5][0]), expected)

    def test_caller_image_not_mutated_or_aliased(self):
        pil = Image.new("RGB", (100, 80), (10, 20, 30))
        ds = SingleImageDataset(pil, **SMALL)
        pil.paste((255, 255, 255), (0, 0, 100, 80))
        assert ds.source.getpixel((0, 0)) == (10, 20, 30)

    @pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "1", "I"])  # F: test_hardening_inputs
    def test_any_pil_mode_becomes_rgb(self, mode):
        img = Image.new("RGB", (64, 48), (120, 60, 30)).convert(mode)
        ds = SingleImageDataset(img, **SMALL)
        assert ds.source.mode == "RGB" and ds[0][0].mode == "RGB"

    def test_16bit_is_scaled_not_clipped(self, tmp_path):
        ramp = (np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 21).astype(np.uint16)  # up to ~64k
        path = tmp_path / "ramp16.png"
        Image.fromarray(ramp).save(path)
        with Image.open(path) as raw:
            assert raw.mode.startswith("I")
        source = np.asarray(SingleImageDataset(path, **SMALL).source)
        assert np.array_equal(source[..., 0], source[..., 1])
        expected = np.rint(ramp / 257.0).astype(np.uint8)
        assert np.array_equal(source[..., 0], expected)
        assert source.max() == 251  # 3071 * 21 / 257 = 250.9
        with Image.open(path) as raw:  # what PIL's own convert does: everything above 255 clipped
            assert (np.asarray(raw.convert("RGB")) == 255).mean() > 0.9

    def test_rgba_drops_alpha_like_the_original(self):
        rgba = Image.new("RGBA", (64, 64), (10, 200, 30, 0))
        assert SingleImageDataset(rgba, **SMALL).source.getpixel((5, 5)) == (10, 200, 30)
        array = np.asarray(rgba)
        assert array.shape == (64, 64, 4)
        assert SingleImageDataset(array, **SMALL).source.tobytes() == rgba.convert("RGB").tobytes()


class TestHandMadeParams:
    """render() and render_batch() refuse what no renderer should render, as the records' validate() says."""

    def test_render_refuses_an_edited_record_at_once(self, backend):
        ds = SingleImageDataset(**SMALL, backend=backend)
        params = ds.params(0)
        for edit, match in (
            ({"angle": float("nan")}, r"^SampleParams\.angle should be a finite number of degrees, got nan$"),
            ({"resize": 10**6}, r"^SampleParams\.resize should be an integer in \[32, 11585\]"),
            ({"crop": (0, 0, 401, 401)}, r"^SampleParams\.crop should be a box inside its source image"),
            ({"source": -1}, r"^SampleParams\.source should be a non-negative source index, got -1$"),
            ({"source": 1}, r"^SampleParams\.source should be one of the 1 sources \(0 to 0\), got 1; render "),
        ):
            with pytest.raises(ValueError, match=match):
                ds.render(dataclasses.replace(params, **edit))
        with pytest.raises(TypeError, match=r"^params should be a SampleParams \(see params\), got ParamsBatch$"):
            ds.render(ds.params_batch([0]))

    def test_render_batch_refuses_a_source_render_refuses(self, backend):
        ds = SingleImageDataset([DEFAULT_IMAGE, DEFAULT_IMAGE], **SMALL, backend=backend)
        batch = ds.params_batch(range(6))
        for bad, match in ((-1, r"^ParamsBatch\.source\[2\] should be a non-negative source index, got -1$"),
                           (2, r"^ParamsBatch\.source\[2\] should be one of the 2 sources \(0 to 1\), got 2; ")):
            edited = dataclasses.replace(batch, source=np.where(np.arange(6) == 2, bad, batch.source))
            with pytest.raises(ValueError, match=match):
                ds.render_batch(edited)
            with pytest.raises(ValueError, match=match.replace("ParamsBatch", "SampleParams").replace(r"\[2\]", "")):
                ds.render(edited[2])

    def test_a_record_of_another_dataset_is_checked_against_this_ones_sources(self):
        several = SingleImageDataset([DEFAULT_IMAGE, np.zeros((60, 50, 3), np.uint8)], **SMALL)
        record = next(several.params(i) for i in range(40) if several.params(i).source == 1)
        with pytest.raises(ValueError, match=r"^SampleParams\.source should be one of the 1 sources"):
            SingleImageDataset(**SMALL).render(record)
        small = dataclasses.replace(record, source=0)
        several.render(small)  # its boxes fit the 50x60 source, and so the 600x400 one
        tiny = SingleImageDataset(np.zeros((40, 40, 3), np.uint8), **SMALL)
        with pytest.raises(ValueError, match=r"^SampleParams\.crop should be a box inside its source image, got \("):
            tiny.render(SingleImageDataset(**SMALL).params(0))  # a 200 px crop of the 600x400 default image

    def test_a_drawn_batch_is_read_only(self):
        batch = SingleImageDataset(**SMALL).params_batch(range(4))
        with pytest.raises(ValueError, match="read-only"):
            batch.source[0] = -1
        with pytest.raises(ValueError, match="read-only"):
            batch.angle[:] = np.nan

    def test_only_what_the_dataset_did_not_draw_is_validated(self, monkeypatch):
        from single_image_dataset import ParamsBatch, SampleParams

        ds = SingleImageDataset(**SMALL)
        record, batch = ds.params(3), ds.params_batch(range(4))
        checked = []
        monkeypatch.setattr(SampleParams, "validate", lambda self, sizes=None: checked.append("record"))
        monkeypatch.setattr(ParamsBatch, "validate", lambda self, sizes=None: checked.append("batch"))
        ds.render(record), ds.render_batch(batch), ds[3]
        assert checked == []
        ds.render(dataclasses.replace(record)), ds.render_batch(dataclasses.replace(batch))
        ds.render(batch[0]), ds.render_batch(batch[:2])
        assert checked == ["record", "batch", "record", "batch"]
        again = pickle.loads(pickle.dumps(ds))  # what a DataLoader worker gets: nothing drawn there yet
        again.render(record)
        assert checked[-1] == "record" and again.render(again.params(3)).tobytes() == ds[3][0].tobytes()


class TestSmallSources:
    """A source far smaller than the output: warned when img_size > SMALL_SOURCE_RATIO x the crop region's side."""

    def test_a_tiny_source_upscaled_to_the_default_size_warns(self):
        from single_image_dataset import SmallSourceWarning

        with pytest.warns(SmallSourceWarning, match=(
            r"^source image_0 \(2x2 px; crops from a 1 px square \(initcrop=0\.5\)\) is far smaller than the "
            r"output: img_size=256 is over 4 times the side its crops are drawn from, so every sample is mostly "
            r"interpolation blur; use a larger image or a smaller img_size$"
        )):
            SingleImageDataset(np.zeros((2, 2, 3), np.uint8), num_imgs=4)

    @pytest.mark.parametrize(
        ("keywords", "limit"),
        [
            ({}, 800),  # the default image, 600x400: crops from a 200 px square
            ({"initcrop": 1.0}, 1600),  # a 400 px square
            ({"cropfirst": False}, 1600),  # the whole image, 400 px its shorter side
        ],
    )
    def test_the_rule_at_its_boundary(self, keywords, limit):
        from single_image_dataset import SmallSourceWarning

        SingleImageDataset(num_imgs=4, img_size=limit, **keywords)  # filterwarnings("error"): no warning
        with pytest.warns(SmallSourceWarning, match=rf"coffee \(600x400 px; .*img_size={limit + 1} is over 4 times"):
            SingleImageDataset(num_imgs=4, img_size=limit + 1, **keywords)

    def test_the_message_names_only_the_small_sources(self):
        from single_image_dataset import SmallSourceWarning

        images = {"cup": DEFAULT_IMAGE, "dot": np.zeros((15, 15), np.uint8), "edge": np.zeros((16, 16), np.uint8),
                  "speck": np.zeros((12, 40), np.uint8)}
        with pytest.warns(SmallSourceWarning, match=(
            r"^sources dot \(15x15 px; crops from the whole image\), speck \(40x12 px; crops from the whole "
            r"image\) are far smaller than the output: img_size=64"
        )):
            SingleImageDataset(images, num_imgs=4, img_size=64, cropfirst=False)


class TestErrors:
    def test_missing_file(self, tmp_path):
        with pytest.raises(FileNotFoundError, match=r"image file not found: .*nope.jpg"):
            SingleImageDataset(tmp_path / "nope.jpg")

    def test_directory_without_images(self, tmp_path):
        # A directory is a list of sources (tests/test_sources.py); one without images is refused.
        (tmp_path / "notes.txt").write_text("no image here")
        with pytest.raises(ValueError, match=r"holds no image files"):
            SingleImageDataset(tmp_path)

    def test_not_an_image(self, tmp_path):
        path = tmp_path / "notes.jpg"
        path.write_text("not really a JPEG")
        with pytest.raises(ValueError, match=r"notes.jpg is not an image file that Pillow can read"):
            SingleImageDataset(path)

    def test_truncated_image(self, tmp_path, coffee_path):
        full = tmp_path / "full.jpg"
        Image.open(coffee_path).convert("RGB").save(full, quality=90)
        cut = tmp_path / "cut.jpg"
        cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
        with pytest.raises(ValueError, match=r"cut.jpg is truncated or corrupt"):
            SingleImageDataset(cut)

    def test_truncated_png(self, tmp_path, coffee_path):
        cut = tmp_path / "cut.png"
        cut.write_bytes(coffee_path.read_bytes()[:20_000])
        with pytest.raises(ValueError, match=r"cut.png is truncated or corrupt"):
            SingleImageDataset(cut)

    def test_too_small_for_initial_crop(self):
        with pytest.raises(ValueError, match=r"image of 1x1 px is too small for initcrop=0.5"):
            SingleImageDataset(Image.new("RGB", (1, 1)))

    def test_too_elongated_without_cropfirst(self):
        with pytest.raises(ValueError, match=r"image of 4000x30 px is too small or too elongated for the crops"):
            SingleImageDataset(Image.new("RGB", (4000, 30)), cropfirst=False)

    def test_invalid_config_range(self):
        with pytest.raises(ValueError, match=r"scale should be two inverse area fractions"):
            SingleImageDataset(scale=(0.5, 1))

    @pytest.mark.parametrize(
        ("keyword", "hint"),
        [
            ("transforms", " (did you mean transform=?)"),  # VisionDataset's keyword
            ("target_transforms", " (did you mean target_transform=?)"),
            ("img_sise", " (did you mean img_size=?)"),
            ("imgsize", " (did you mean img_size=?)"),
            ("per_source_class", " (did you mean per_source_classes=?)"),
            ("xyzzy", ""),
        ],
    )
    def test_unknown_keyword_names_the_arguments_and_the_config_fields(self, keyword, hint):
        arguments = (
            "image, config, backend, device, output, exif_orientation, views, fixed_samples, transform, "
            "target_transform"
        )
        fields = "img_size, num_imgs, seed, deg, shear, vflip, cropfirst, initcrop, scale, randinterp, jitter"
        with pytest.raises(TypeError, match=(
            rf"^SingleImageDataset\(\) got an unexpected keyword argument '{keyword}'{re.escape(hint)}; its "
            rf"arguments are {arguments}, .*and the fields of AugmentConfig: {fields}, jitter_p, debug$"
        )):
            SingleImageDataset(**{keyword: 32})

    def test_unknown_backend(self):
        with pytest.raises(ValueError, match=r"unknown backend 'turbo'; available backends: reference"):
            SingleImageDataset(backend="turbo")

    @pytest.mark.parametrize("name", ["reference", "fast", "torch"])
    def test_a_second_renderer_of_a_registered_name_is_refused(self, name):
        taken = rf"^a renderer is already registered as backend '{name}' \(\w+Renderer\);"
        with pytest.raises(ValueError, match=taken):
            register_renderer(name)(type("Impostor", (Renderer,), {}))
        assert available_backends() == ("reference", "fast", "torch")
        assert type(get_renderer("reference", Image.new("RGB", (8, 8)))).__name__ == "ReferenceRenderer"

    @pytest.mark.parametrize(
        ("image", "match"),
        [
            (np.zeros((8, 8, 3), dtype=np.float32),
             r"^image array should be uint8 HxWx3 \(or HxW, HxWx1, HxWx2, HxWx4\), got dtype float32$"),
            (np.zeros((8, 8, 5), dtype=np.uint8),
             r"^image array should be uint8 HxWx3 \(or HxW, HxWx1, HxWx2, HxWx4\), got shape \(8, 8, 5\)$"),
            (torch.zeros(3, 8, 8), r"^image tensor should be uint8 3xHxW \(CHW; or HxW, 1xHxW, 2xHxW, 4xHxW\), "
                                   r"got dtype torch.float32; convert with"),
            (torch.zeros(5, 8, 8, dtype=torch.uint8), r"should be uint8 3xHxW \(CHW; .*\), got shape \(5, 8, 8\)$"),
            (42, r"image should be a path, a PIL image, a uint8 numpy array or tensor, or None, got int"),
        ],
    )
    def test_bad_arrays(self, image, match):
        with pytest.raises(TypeError, match=match):
            SingleImageDataset(image)

    def test_bad_epoch(self):
        ds = SingleImageDataset(**SMALL)
        with pytest.raises(ValueError, match=r"epoch should be an integer in \[0, 2\*\*63\), got -1"):
            ds.set_epoch(-1)
