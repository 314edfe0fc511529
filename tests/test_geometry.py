"""The affine maps of ``geometry``: hand-computed cases, torchvision's own pixel mapping, and maps of arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torchvision.transforms.functional as F
from numpy.testing import assert_allclose
from PIL import Image
from torchvision.transforms import InterpolationMode

from single_image_dataset import AugmentConfig, SampleParams, get_renderer, sample_params
from single_image_dataset import geometry as g

pytestmark = pytest.mark.filterwarnings("error")


def _params(**changes: object) -> SampleParams:
    base = dict(
        crop=(10, 20, 100, 100), resized_crop=(5, 6, 40, 80), resize=90, interpolation="bicubic",
        warp=None, angle=0.0, shear=(0.0, 0.0), vflip=False, output_size=64, debug_size=None, jitter=None,
    )
    return SampleParams(**{**base, **changes})


def _matrix(affine: g.Affine) -> np.ndarray:
    """The 3x3 matrix of a map."""
    return np.array([affine[:3], affine[3:], (0.0, 0.0, 1.0)])


def _apply(affine: g.Affine, x: float, y: float) -> tuple[float, float]:
    a, b, c, d, e, f = affine
    return a * x + b * y + c, d * x + e * y + f


class TestElementaryMaps:
    def test_translate_and_scale(self) -> None:
        assert _apply(g.translate(3, -2), 1, 1) == (4, -1)
        assert _apply(g.scale(2, 0.5), 3, 4) == (6, 2)

    def test_vflip_maps_top_edge_to_bottom_edge_and_is_its_own_inverse(self) -> None:
        assert _apply(g.vflip(10), 2.5, 0) == (2.5, 10)
        assert _apply(g.vflip(10), 2.5, 0.5) == (2.5, 9.5)  # pixel centre of row 0 -> that of row 9
        assert g.compose(g.vflip(10), g.vflip(10)) == g.translate(0.0, 0.0)

    def test_compose_is_the_matrix_product(self) -> None:
        p, q = (1.5, -0.25, 3.0, 0.75, 2.0, -1.0), (0.5, 2.0, -4.0, 1.0, -3.0, 7.0)
        assert_allclose(_matrix(g.compose(p, q)), _matrix(p) @ _matrix(q), atol=1e-12)

    @pytest.mark.parametrize(
        ("size", "crop", "offset"), [(90, 64, 13), (45, 32, 6), (362, 256, 53), (7, 4, 2), (5, 5, 0)]
    )
    def test_center_crop_offset(self, size: int, crop: int, offset: int) -> None:
        # (45 - 32) / 2 = 6.5 rounds to 6 and (7 - 4) / 2 = 1.5 to 2: Python's round, as in F.center_crop.
        assert g.center_crop_offset(size, crop) == offset
        columns = Image.fromarray(np.tile(np.arange(size, dtype=np.uint8), (size, 1)))
        assert np.asarray(F.center_crop(columns, [crop, crop]))[0, 0] == offset


class TestAffineInverse:
    def test_quarter_turn_by_hand(self) -> None:
        # F.affine's angle turns the image clockwise on screen (y down); the inverse map sends an
        # output pixel to where it came from: x_in = (y - cy) + cx, y_in = -(x - cx) + cy.
        assert_allclose(g.affine_inverse((5.0, 5.0), 90.0, (0.0, 0.0)), (0.0, 1.0, 0.0, -1.0, 0.0, 10.0), atol=1e-12)

    def test_x_shear_by_hand(self) -> None:
        # SHx(s) = [[1, -tan s], [0, 1]], so its inverse adds tan(s) * (y - cy) to x.
        t = math.tan(math.radians(30.0))
        assert_allclose(g.affine_inverse((3.0, 4.0), 0.0, (30.0, 0.0)), (1.0, t, -t * 4.0, 0.0, 1.0, 0.0), atol=1e-12)

    def test_centre_is_fixed_and_determinant_is_one(self) -> None:
        m = g.affine_inverse((12.5, 7.0), 23.0, (-17.0, 9.0))
        assert_allclose(_apply(m, 12.5, 7.0), (12.5, 7.0), atol=1e-12)
        assert np.linalg.det(_matrix(m)) == pytest.approx(1.0)

    @pytest.mark.parametrize(
        ("angle", "shear"), [(0.0, (0.0, 0.0)), (37.0, (0.0, 0.0)), (-12.0, (25.0, 0.0)), (5.0, (-8.0, 14.0))]
    )
    def test_equals_torchvision_matrix(self, angle: float, shear: tuple[float, float]) -> None:
        center = [31.0, 17.5]
        tv = F._get_inverse_affine_matrix(center, angle, [0.0, 0.0], 1.0, list(shear))
        assert_allclose(g.affine_inverse(tuple(center), angle, shear), tv, atol=1e-12)

    def test_rotate_turns_the_other_way(self) -> None:
        assert_allclose(g.rotate_inverse((5.0, 5.0), -90.0), g.affine_inverse((5.0, 5.0), 90.0, (0.0, 0.0)))

    @pytest.mark.parametrize("op", ["affine", "rotate"])
    @pytest.mark.parametrize("angle", [90.0, 30.0, -65.0])
    def test_matches_where_torchvision_moves_a_pixel(self, op: str, angle: float) -> None:
        # One lit pixel; the torchvision op (nearest neighbour) lights exactly the output pixels
        # whose centres the inverse map sends into it.
        side, (row, col) = 31, (9, 22)
        img = np.zeros((side, side), np.uint8)
        img[row, col] = 255
        pil = Image.fromarray(img)
        center = (side * 0.5, side * 0.5)
        if op == "affine":
            out = F.affine(pil, angle=angle, translate=[0, 0], scale=1.0, shear=[0.0, 0.0],
                           interpolation=InterpolationMode.NEAREST)
            m = g.affine_inverse(center, angle, (0.0, 0.0))
        else:
            out = F.rotate(pil, angle, interpolation=InterpolationMode.NEAREST)
            m = g.rotate_inverse(center, angle)
        ys, xs = np.mgrid[0:side, 0:side] + 0.5
        sx, sy = _apply(m, xs, ys)
        predicted = (np.floor(sx) == col) & (np.floor(sy) == row)
        assert predicted.any()
        np.testing.assert_array_equal(np.asarray(out) > 0, predicted)


class TestComposition:
    def test_output_to_source_without_warp_by_hand(self) -> None:
        # Source x = left0 + left + (w / resize) * (x_out + offset), with offset = round((90 - 64) / 2).
        m = g.output_to_source(_params())
        assert_allclose(m, (80 / 90, 0.0, 26 + 80 / 90 * 13, 0.0, 40 / 90, 15 + 40 / 90 * 13), atol=1e-12)

    def test_vflip_by_hand(self) -> None:
        # The output's top edge is row 13 from the bottom of the flipped 90 px crop.
        m = g.output_to_source(_params(vflip=True))
        assert_allclose(_apply(m, 0.0, 0.0), (26 + 80 / 90 * 13, 15 + 40 / 90 * (90 - 13)), atol=1e-12)
        assert m[4] == pytest.approx(-40 / 90)

    def test_no_initial_crop(self) -> None:
        m = g.output_to_source(_params(crop=None))
        assert_allclose((m[2], m[5]), (6 + 80 / 90 * 13, 5 + 40 / 90 * 13))

    def test_warp_turns_about_the_resized_crop_centre(self) -> None:
        # The centre of the 90 px resized crop (45, 45) is the output point (32, 32) and stays put.
        m = g.output_to_source(_params(warp="affine", angle=40.0, shear=(20.0, 0.0)))
        assert_allclose(_apply(m, 32.0, 32.0), (26 + 40.0, 15 + 20.0), atol=1e-12)

    def test_composes_the_parts(self) -> None:
        p = _params(warp="rotate", angle=-33.0, vflip=True)
        product = _matrix(g.resized_to_source(p)) @ _matrix(g.output_to_resized(p))
        assert_allclose(_matrix(g.output_to_source(p)), product)
        assert g.sample_maps(p) == (g.output_to_resized(p), g.output_to_source(p))

    @pytest.mark.parametrize("config", [
        AugmentConfig(img_size=48, jitter_p=0.0),
        AugmentConfig(img_size=48, jitter_p=0.0, shear=0.0, vflip=True),
        AugmentConfig(img_size=48, jitter_p=0.0, cropfirst=False, deg=0.0, shear=0.0),
    ], ids=["affine", "rotate+vflip", "no-warp"])
    def test_reference_renderer_follows_the_map(self, config: AugmentConfig) -> None:
        # On a linear ramp (value = coordinate / 2) the interpolations of the reference renderer
        # reproduce the ramp, so its output reads back the source position of each pixel.
        side = 510
        ramp = (np.arange(side, dtype=np.float64) + 0.5) / 2
        rgb = np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], 0.0 * ramp[None, :]), axis=-1)
        source = Image.fromarray(np.rint(rgb).astype(np.uint8))
        renderer = get_renderer("reference", source)
        ys, xs = np.mgrid[8:40, 8:40] + 0.5
        for index in range(6):
            p = sample_params(config, source.size, index)
            out = np.asarray(renderer.render(p)).astype(np.float64)[8:40, 8:40]
            inside = out.sum(axis=-1) > 0  # not filled by the warp
            m = g.output_to_source(p)
            # PIL's bilinear transform truncates to uint8: half a level low on average.
            bias = 0.5 if p.warp else 0.0
            for channel, source_position in enumerate(_apply(m, xs, ys)):
                error = out[..., channel] + bias - source_position / 2
                assert np.abs(error[inside]).max() <= 1.01  # two roundings of the value
                assert abs(error[inside].mean()) <= 0.25  # a half-pixel slip would show here


class TestInvert:
    def test_inverse_after_map_is_identity(self) -> None:
        m = g.output_to_source(_params(warp="affine", angle=17.0, shear=(-21.0, 0.0), vflip=True))
        assert_allclose(g.compose(g.invert(m), m), g.translate(0.0, 0.0), atol=1e-12)
        assert_allclose(g.compose(m, g.invert(m)), g.translate(0.0, 0.0), atol=1e-12)

    def test_by_hand(self) -> None:
        assert_allclose(g.invert(g.compose(g.translate(3, 4), g.scale(2, 4))), (0.5, 0, -1.5, 0, 0.25, -1))

    def test_equals_the_matrix_inverse(self) -> None:
        m = (1.5, -0.25, 3.0, 0.75, 2.0, -1.0)
        assert_allclose(_matrix(g.invert(m)), np.linalg.inv(_matrix(m)), atol=1e-12)

    def test_singular(self) -> None:
        with pytest.raises(ValueError, match=r"matrix is singular \(determinant 0\), it has no inverse"):
            g.invert(g.scale(0.0, 1.0))


class TestPixelIndices:
    def test_centres_move_to_integers(self) -> None:
        # Continuous x = 2 * x maps pixel centre 0.5 to 1.0, i.e. index 0 to index 0.5.
        assert g.to_pixel_indices(g.scale(2.0, 2.0)) == (2.0, 0.0, 0.5, 0.0, 2.0, 0.5)

    def test_equals_conjugation(self) -> None:
        m = g.output_to_source(_params(warp="affine", angle=-8.0, shear=(12.0, 0.0)))
        expected = g.compose(g.translate(-0.5, -0.5), g.compose(m, g.translate(0.5, 0.5)))
        assert_allclose(g.to_pixel_indices(m), expected, atol=1e-12)


class TestPyramidLevel:
    @pytest.mark.parametrize(("shorter", "level"), [
        (10, 0), (100, 0), (141, 0), (142, 1), (282, 1), (283, 2), (565, 2), (566, 3), (2262, 4), (2263, 5), (10**6, 5),
    ])
    def test_the_closest_to_the_shorter_sides_reduction(self, shorter: int, level: int) -> None:
        # side 100: level k reduces 2**k times; the boundaries are at 100 * 2**(k + 0.5)
        assert g.pyramid_level(shorter, 10**7, 100, num_levels=6) == level
        assert g.pyramid_level(10**7, shorter, 100, num_levels=6) == level

    def test_arrays_give_each_samples_level(self) -> None:
        rng = np.random.default_rng(0)
        width, height = rng.integers(1, 5000, 500), rng.integers(1, 5000, 500)
        levels = g.pyramid_level(width, height, 45, 7)
        assert levels.dtype == np.int64 and levels.min() == 0 and levels.max() == 6
        assert levels.tolist() == [g.pyramid_level(int(w), int(h), 45, 7) for w, h in zip(width, height, strict=True)]

    def test_needs_a_level(self) -> None:
        with pytest.raises(ValueError, match="num_levels should be at least 1, got 0"):
            g.pyramid_level(100, 100, 10, 0)


class TestElementwiseMath:
    """The batched geometry's trigonometry: bit for bit ``math``'s, with the C extension and without it."""

    @pytest.mark.parametrize("native", [True, False], ids=["libm-extension", "python"])
    def test_each_element_is_maths(self, native: bool, monkeypatch: pytest.MonkeyPatch) -> None:
        if native and g._libm is None:
            pytest.skip("the C extension was not built (no C compiler)")
        if not native:
            monkeypatch.setattr(g, "_libm", None)
        x = np.random.default_rng(0).uniform(-1e3, 1e3, 5000)
        x[:4] = [0.0, -0.0, math.pi / 2, 1e300]
        for ours, theirs in ((g._cos, math.cos), (g._sin, math.sin), (g._tan, math.tan), (g._radians, math.radians)):
            assert ours(x).tobytes() == np.array([theirs(v) for v in x.tolist()]).tobytes(), theirs.__name__
            assert ours(float(x[7])) == theirs(float(x[7]))

    def test_the_extension_checks_its_arguments(self) -> None:
        if g._libm is None:
            pytest.skip("the C extension was not built (no C compiler)")
        with pytest.raises(ValueError, match=r"function should be 0 \(cos\), 1 \(sin\) or 2 \(tan\), got 3"):
            g._libm.apply(3, np.zeros(2), np.zeros(2))
        with pytest.raises(ValueError, match="apply: out holds 24 bytes, expected 16"):
            g._libm.apply(0, np.zeros(2), np.zeros(3))
        with pytest.raises(TypeError, match="apply: out should be a C-contiguous writable buffer"):
            g._libm.apply(0, np.zeros(2), b"\x00" * 16)
        with pytest.raises(TypeError, match="apply: x has item format 'f', expected one of 'd'"):
            g._libm.apply(0, np.zeros(2, dtype=np.float32), np.zeros(2))


class TestMapsOfArrays:
    """Maps whose entries are arrays of 200 samples' values equal, bit for bit, the maps of each sample."""

    N = 200

    @staticmethod
    def _same_bits(batched: g.Affine, i: int, single: g.Affine) -> bool:
        row = [v[i] if isinstance(v, np.ndarray) else v for v in batched]
        return np.array(row, dtype=np.float64).tobytes() == np.array(single, dtype=np.float64).tobytes()

    @pytest.mark.parametrize("warp", ["affine", "rotate"])
    def test_the_chain_of_a_sample(self, warp: str) -> None:
        config = AugmentConfig(img_size=48, deg=180.0, shear=60.0 if warp == "affine" else 0.0)
        samples = [sample_params(config, (1000, 872), i) for i in range(self.N)]
        assert {p.warp for p in samples} == {warp} and not any(p.vflip for p in samples)

        def column(values: list) -> np.ndarray:
            return np.array(values, dtype=np.float64)

        side = float(config.resize_size)
        offset = g.center_crop_offset(config.resize_size, config.img_size)
        angles = column([p.angle for p in samples])
        if warp == "affine":
            shears = (column([p.shear[0] for p in samples]), column([p.shear[1] for p in samples]))
            turn = g.affine_inverse((side * 0.5, side * 0.5), angles, shears)
        else:
            turn = g.rotate_inverse((side * 0.5, side * 0.5), angles)
        to_resized = g.compose(turn, g.translate(offset, offset))
        top, left = (column([p.resized_crop[k] + p.crop[k] for p in samples]) for k in (0, 1))
        height, width = (column([p.resized_crop[k] for p in samples]) for k in (2, 3))
        to_source = g.compose((width / side, 0.0, left, 0.0, height / side, top), to_resized)
        for i, p in enumerate(samples):
            assert self._same_bits(to_resized, i, g.output_to_resized(p))
            assert self._same_bits(to_source, i, g.output_to_source(p))

    def test_the_other_maps(self) -> None:
        rng = np.random.default_rng(5)
        values = [rng.uniform(-3.0, 3.0, self.N) for _ in range(6)]
        heights = rng.uniform(1.0, 500.0, self.N)
        maps = tuple(values)
        batched = {
            "invert": g.invert(maps),
            "to_pixel_indices": g.to_pixel_indices(maps),
            "vflip": g.compose(g.vflip(heights), maps),
            "scale": g.compose(g.scale(heights, values[0]), maps),
        }
        for i in range(self.N):
            single = tuple(float(v[i]) for v in values)
            assert self._same_bits(batched["invert"], i, g.invert(single))
            assert self._same_bits(batched["to_pixel_indices"], i, g.to_pixel_indices(single))
            assert self._same_bits(batched["vflip"], i, g.compose(g.vflip(float(heights[i])), single))
            assert self._same_bits(batched["scale"], i, g.compose(g.scale(heights[i], values[0][i]), single))

    def test_a_singular_one_is_named(self) -> None:
        maps = (np.array([1.0, 2.0, 0.0]), 0.0, 0.0, 0.0, np.array([1.0, 1.0, 5.0]), 0.0)
        with pytest.raises(ValueError, match=r"matrix is singular \(determinant 0\)"):
            g.invert(maps)


class TestBatchMaps:
    def test_no_vertical_shear_takes_the_short_path_with_the_same_bits(self):
        # A batch with some vertical shear runs the general formula for every row; a row without it
        # must equal the scalar call, which takes the short path (three trigonometric calls fewer).
        rng = np.random.default_rng(3)
        angles, shear_x = rng.uniform(-180, 180, 64), rng.uniform(-60, 60, 64)
        shear_y = np.where(np.arange(64) % 2 == 0, 0.0, rng.uniform(-30, 30, 64))
        maps = g.affine_inverse((45.0, 45.0), angles, (shear_x, shear_y))
        for k in range(0, 64, 2):
            scalar = g.affine_inverse((45.0, 45.0), float(angles[k]), (float(shear_x[k]), 0.0))
            assert tuple(float(v[k]) for v in maps) == scalar
        assert not np.any(shear_y[::2]) and np.all(shear_y[1::2])

    def test_the_map_to_the_resized_crop_alone_is_batch_maps_first(self):
        from single_image_dataset import AugmentConfig, sample_params_batch

        batch = sample_params_batch(AugmentConfig(img_size=64, vflip=True), (1000, 872), range(50))
        for a, b in zip(g.batch_output_to_resized(batch), g.batch_maps(batch)[0], strict=True):
            np.testing.assert_array_equal(a, b)

    def test_rows_are_the_scalar_maps_bit_for_bit(self):
        from single_image_dataset import AugmentConfig, sample_params_batch

        configs = [
            AugmentConfig(img_size=64, vflip=True),
            AugmentConfig(img_size=37, shear=0.0, deg=90.0, vflip=True, cropfirst=False),
            AugmentConfig(img_size=256, shear=0.0, deg=0.0),
        ]
        for config in configs:
            batch = sample_params_batch(config, (1000, 872), range(0, 2000, 10))
            to_resized, to_source = g.batch_maps(batch)
            boxes = np.stack(g.source_box(batch), axis=1)
            for k, params in enumerate(batch.to_list()):
                scalar = g.sample_maps(params)
                assert tuple(float(v[k]) for v in to_resized) == tuple(float(v) for v in scalar[0])
                assert tuple(float(v[k]) for v in to_source) == scalar[1]
                assert tuple(boxes[k].tolist()) == g.source_box(params)
