"""The parameter records: the jitter's ops in order, the hue shift torchvision applies, and validation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torchvision.transforms.functional as F
from PIL import Image

from single_image_dataset import JitterParams, ParamsBatch
from single_image_dataset.params import JITTER_OPS, hue_steps

pytestmark = pytest.mark.filterwarnings("error")


class TestJitterOps:
    def test_in_application_order_without_the_skipped_ones(self) -> None:
        order = ("hue", "brightness", "saturation")
        jitter = JitterParams(brightness=1.2, contrast=None, saturation=0.7, hue=-0.05, order=order)
        assert jitter.ops() == [("hue", -0.05), ("brightness", 1.2), ("saturation", 0.7)]

    def test_apply_calls_the_table_in_that_order(self) -> None:
        jitter = JitterParams(brightness=2.0, contrast=3.0, saturation=None, hue=None, order=("contrast", "brightness"))
        table = {name: (lambda image, factor, name=name: [*image, (name, factor)]) for name in JITTER_OPS}
        assert jitter.apply([], table) == [("contrast", 3.0), ("brightness", 2.0)]


@pytest.mark.parametrize("hue", [-0.5, -0.37, -0.1, -0.003, 0.0, 0.004, 0.1, 0.25, 0.5])
def test_hue_steps_is_torchvisions_shift_of_pils_hue_byte(hue: float) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    image = Image.fromarray(rgb)
    h, s, v = image.convert("HSV").split()
    shifted = Image.fromarray(((np.asarray(h, dtype=np.int64) + hue_steps(hue)) % 256).astype(np.uint8), "L")
    expected = Image.merge("HSV", (shifted, s, v)).convert("RGB")
    assert F.adjust_hue(image, hue).tobytes() == expected.tobytes()


def _jitter(**changes: object) -> JitterParams:
    values = {"brightness": 1.2, "contrast": None, "saturation": 0.8, "hue": -0.05, "order": ("hue", "brightness",
                                                                                            "saturation")}
    return JitterParams(**{**values, **changes})


# Hand edits of a drawn record (img_size 32, the default image 600x400: a 200 px initial crop), each refused with
# the error and message validate() gives; the batch of the same record names the field of ParamsBatch.
RECORD_EDITS = [
    ({"angle": float("nan")}, ValueError, r"angle should be a finite number of degrees, got nan$"),
    ({"angle": float("inf")}, ValueError, r"angle should be a finite number of degrees, got inf$"),
    ({"resize": 10**6}, ValueError, r"resize should be an integer in \[32, 11585\] \(output_size to MAX_RESIZE\), "
                                    r"got 1000000$"),
    ({"resize": 31}, ValueError, r"resize should be an integer in \[32, 11585\]"),
    ({"output_size": 0}, ValueError, r"output_size should be an integer in \[1, 8192\], got 0$"),
    ({"output_size": 8193}, ValueError, r"output_size should be an integer in \[1, 8192\], got 8193$"),
    ({"debug_size": -1}, ValueError, r"debug_size should be an integer in \[1, 8192\], got -1$"),
    ({"crop": (-1, 0, 100, 100)}, ValueError, r"crop should be a box \(top, left, height, width\) with top, left >= 0 "
                                              r"and height, width >= 1, got \(-1, 0, 100, 100\)$"),
    ({"crop": (0, 0, 100, 0)}, ValueError, r"crop should be a box \(top, left, height, width\) with "),
    ({"crop": (300, 0, 200, 200)}, ValueError, r"crop should be a box inside its source image, got \(300, 0, 200, "),
    ({"crop": (0, 401, 200, 200)}, ValueError, r"crop should be a box inside its source image"),
    ({"resized_crop": (0, -5, 10, 10)}, ValueError, r"resized_crop should be a box \(top, left, height, width\) "),
    ({"resized_crop": (150, 0, 100, 100)}, ValueError, r"resized_crop should be a box inside the initial crop, got "
                                                       r"\(150, 0, 100, 100\)$"),
    ({"shear": (90.0, 0.0)}, ValueError, r"shear should be two angles in \(-90, 90\) degrees, got "),
    ({"shear": (0.0, float("nan"))}, ValueError, r"shear should be two angles in \(-90, 90\) degrees, got "),
    ({"warp": None, "angle": 5.0, "shear": (0.0, 0.0)}, ValueError,
     r"angle should be 0 without a warp \(set warp to 'rotate' or 'affine'\), got 5\.0$"),
    ({"warp": "rotate", "shear": (3.0, 0.0)}, ValueError, r"shear should be \(0, 0\) for warp 'rotate' \(use "
                                                         r"'affine'\), got \(3\.0, 0\.0\)$"),
    ({"jitter": _jitter(hue=0.7)}, ValueError, r"jitter should be finite factors \(NaN or None for a skipped op\), "
                                               r"brightness, contrast and saturation >= 0 and hue in \[-0\.5, 0\.5\]"),
    ({"jitter": _jitter(brightness=-0.1)}, ValueError, r"jitter should be finite factors"),
    ({"jitter": _jitter(saturation=float("nan"))}, ValueError, r"(jitter should be finite factors \(None for a "
                                                               r"skipped op\), got|jitter_order\[2\] should be)"),
    ({"jitter": _jitter(order=("hue", "brightness"))}, ValueError,
     r"jitter\.order should be each op with a factor once, in the order applied, got \('hue', 'brightness'\)$"),
    ({"jitter": _jitter(order=("hue", "hue", "brightness", "saturation"))}, ValueError,
     r"jitter\.order should be each op with a factor once"),
    ({"jitter": _jitter(order=("hue", "brightness", "saturation", "contrast"))}, ValueError,
     r"jitter\.order should be each op with a factor once"),
    ({"source": -1}, ValueError, r"source should be a non-negative source index, got -1$"),
    ({"source": 1}, ValueError, r"source should be one of the 1 sources \(0 to 0\), got 1; render parameters with "
                                r"the dataset that drew them$"),
]

# Edits of the wrong type or outside the vocabulary: refused by the record's own check. Those a batch's arrays
# cannot hold (UNPACKABLE) ParamsBatch.from_list refuses as well, naming the record; the others numpy coerces.
UNPACKABLE = [
    ({"warp": "shear"}, ValueError, r"warp should be one of \(None, 'affine', 'rotate'\), got 'shear'$"),
    ({"interpolation": "nearest"}, ValueError, r"interpolation should be one of \('bilinear', 'bicubic', 'lanczos'\), "
                                               r"got 'nearest'$"),
    ({"interpolation": ["bicubic"]}, ValueError, r"interpolation should be one of "),
    ({"crop": (1, 2, 3)}, TypeError, r"crop should be None or four integers \(top, left, height, width\), got "),
    ({"crop": (0, 0, 10**30, 100)}, TypeError, r"crop should be None or four integers"),
    ({"resized_crop": None}, TypeError, r"resized_crop should be four integers \(top, left, height, width\), got "
                                        r"None$"),
    ({"shear": (1.0,)}, TypeError, r"shear should be two numbers of degrees \(x, y\), got \(1\.0,\)$"),
    ({"jitter": {"brightness": 1.0}}, TypeError, r"jitter should be None or a JitterParams, got "),
    ({"jitter": _jitter(order=("hue", "sharpness"))}, TypeError, r"jitter should be an order of at most 4 of "),
]
RECORD_TYPE_EDITS = [
    *UNPACKABLE,
    ({"crop": (0, 0, 100.0, 100)}, TypeError, r"crop should be None or four integers"),
    ({"resize": 90.0}, TypeError, r"resize should be an integer, got 90\.0$"),
    ({"source": "0"}, TypeError, r"source should be an integer, got '0'$"),
    ({"source": True}, TypeError, r"source should be an integer, got True$"),
    ({"debug_size": "32"}, TypeError, r"debug_size should be None or an integer, got '32'$"),
    ({"angle": "10"}, TypeError, r"angle should be a number of degrees, got '10'$"),
    ({"vflip": 1}, TypeError, r"vflip should be True or False, got 1$"),
    ({"jitter": _jitter(hue="0.1")}, TypeError, r"jitter should be factors that are numbers or None, got "),
]


class TestValidate:
    @staticmethod
    def _drawn(**config: object):
        from single_image_dataset import AugmentConfig, sample_params

        return sample_params(AugmentConfig(img_size=32, jitter_p=1.0, **config), (600, 400), 3)

    @pytest.mark.parametrize(("edit", "error", "match"), RECORD_EDITS + RECORD_TYPE_EDITS)
    def test_a_hand_edited_record_is_refused_with_one_message(self, edit, error, match):
        record = dataclasses.replace(self._drawn(), **edit)
        with pytest.raises(error, match=rf"^SampleParams\.{match}"):
            record.validate([(600, 400)])

    @pytest.mark.parametrize(("edit", "error", "match"), RECORD_EDITS)
    def test_the_same_edit_in_a_batch_names_the_row(self, edit, error, match):
        drawn, edited = self._drawn(), dataclasses.replace(self._drawn(), **edit)
        field = next(iter(edit))
        scalar = field in ("resize", "output_size", "debug_size")  # shared by the whole batch
        batch = ParamsBatch.from_list([edited] * 3 if scalar else [drawn, drawn, edited])
        label = rf"ParamsBatch\.{field}" if scalar else r"ParamsBatch\.\w+\[2\]"
        with pytest.raises(error, match=rf"^{label} should be"):
            batch.validate([(600, 400)])
        if not scalar:  # each row is its own record: the first two pass
            batch[:2].validate([(600, 400)])

    @pytest.mark.parametrize(("edit", "error", "match"), UNPACKABLE)
    def test_from_list_names_the_record_it_cannot_pack(self, edit, error, match):
        drawn = self._drawn()
        with pytest.raises(error, match=rf"^records\[1\]: SampleParams\.{match}"):
            ParamsBatch.from_list([drawn, dataclasses.replace(drawn, **edit)])

    def test_from_list_takes_records_only(self):
        with pytest.raises(TypeError, match=r"^records\[1\] should be a SampleParams, got dict$"):
            ParamsBatch.from_list([TestValidate._drawn(), {"angle": 0.0}])

    def test_the_boxes_are_checked_against_the_sources_only_when_given(self):
        record = dataclasses.replace(self._drawn(), crop=(300, 0, 200, 200), source=1)
        record.validate()
        record.validate([(10, 10), (600, 500)])
        with pytest.raises(ValueError, match=r"^SampleParams\.crop should be a box inside its source image"):
            record.validate([(600, 500), (600, 400)])

    def test_a_batch_with_a_source_out_of_range_is_refused(self):
        from single_image_dataset import AugmentConfig, sample_params_batch

        sizes = [(600, 400), (1000, 872)]
        batch = sample_params_batch(AugmentConfig(img_size=32), sizes, range(10))
        for bad, match in ((-1, r"^ParamsBatch\.source\[4\] should be a non-negative source index, got -1$"),
                           (2, r"^ParamsBatch\.source\[4\] should be one of the 2 sources \(0 to 1\), got 2; ")):
            edited = dataclasses.replace(batch, source=np.where(np.arange(10) == 4, bad, batch.source))
            with pytest.raises(ValueError, match=match):
                edited.validate(sizes)

    @pytest.mark.parametrize(
        ("field", "value", "match"),
        [
            ("interpolation", [1, 3, 1, 1], r"interpolation\[1\] should be one of \('bilinear', 'bicubic', "),
            ("warp", [1, 1, -1, 1], r"warp\[2\] should be one of \(None, 'affine', 'rotate'\), got -1$"),
            ("jitter_order", [[0, 1, 2, 3]] * 3 + [[0, -1, 1, 2]], r"jitter_order\[3\] should be each op with a "),
            ("jitter_order", [[0, 1, 2, 3]] * 3 + [[0, 1, 2, -2]], r"jitter_order\[3\] should be each op with a "),
            ("jitter_order", [[0, 1, 2, 3]] * 3 + [[0, 1, 2, 2]], r"jitter_order\[3\] should be each op with a "),
        ],
    )
    def test_a_batch_with_unknown_codes_is_refused(self, field, value, match):
        from single_image_dataset import AugmentConfig, sample_params_batch

        batch = sample_params_batch(AugmentConfig(img_size=32, jitter_p=1.0), (600, 400), range(4))
        batch.validate([(600, 400)])
        edited = dataclasses.replace(batch, **{field: np.array(value, np.int8)})
        with pytest.raises(ValueError, match=rf"^ParamsBatch\.{match}"):
            edited.validate([(600, 400)])

    def test_a_batch_scalar_of_the_wrong_type_is_refused(self):
        from single_image_dataset import AugmentConfig, sample_params_batch

        batch = sample_params_batch(AugmentConfig(img_size=32), (600, 400), range(4))
        dataclasses.replace(batch, resize=np.int64(45)).validate()
        with pytest.raises(TypeError, match=r"^ParamsBatch\.resize should be an integer, got 45\.0$"):
            dataclasses.replace(batch, resize=45.0).validate()

    @pytest.mark.parametrize(
        "config",
        [
            {},
            {"cropfirst": False, "randinterp": True, "vflip": True},
            {"debug": True},
            {"deg": 0.0, "shear": 0.0},
            {"shear": 0.0},
            {"deg": 0.0},
            {"jitter": (0.0, 0.4, 0.0, 0.5), "jitter_p": 1.0},
            {"img_size": 1},
        ],
    )
    def test_what_the_sampler_draws_always_passes(self, config):
        from single_image_dataset import AugmentConfig, sample_params, sample_params_batch

        cfg = AugmentConfig(**{"img_size": 32, **config})
        sizes = [(600, 400), (1000, 872), (64, 48)]
        batch = sample_params_batch(cfg, sizes, range(500))
        batch.validate(sizes)
        for i in range(0, 500, 25):
            sample_params(cfg, sizes, i).validate(sizes)
