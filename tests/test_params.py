"""The parameter records: the jitter's ops in order, and the hue shift torchvision applies."""

from __future__ import annotations

import numpy as np
import pytest
import torchvision.transforms.functional as F
from PIL import Image

from single_image_dataset import JitterParams
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
