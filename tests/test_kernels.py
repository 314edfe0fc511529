"""The fast renderer's native kernels (render/kernels/, bound by render/_kernels.c): exactness against
PIL and OpenCV, the AVX2 and portable code giving the same bytes, and argument checking."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import PIL
import pytest
import torchvision.transforms.functional as F
from conftest import assert_one_line_error
from PIL import Image

from single_image_dataset import geometry
from single_image_dataset.params import hue_steps
from single_image_dataset.render import fast

try:
    from single_image_dataset.render import _kernels as kernels
except ImportError:  # the optional extension was not built
    kernels = None
needs_kernels = pytest.mark.skipif(kernels is None, reason="the C extension was not built (no C compiler)")

ROOT = Path(__file__).resolve().parent.parent
ADJUST = {0: F.adjust_brightness, 1: F.adjust_contrast, 2: F.adjust_saturation, 3: F.adjust_hue}


def test_the_extension_is_built_where_a_compiler_is() -> None:
    if kernels is None:
        assert not any(shutil.which(cc) for cc in ("cc", "gcc", "clang")), "a C compiler is here but no _kernels"
        assert fast.implementation() == "opencv"
    else:
        assert fast.implementation() == ("native", "native-avx2", "native-avx512")[kernels.simd()]


LEVELS = {"portable": 0, "avx2": 1, "avx512": 2}


def _widest_level() -> int:
    """The widest vector level this CPU runs (0 where the extension was not built)."""
    if kernels is None:
        return 0
    default = kernels.simd()
    widest = kernels.set_simd(True)
    kernels.set_simd(default)
    return widest


@pytest.fixture(params=[name for name, level in LEVELS.items() if level <= _widest_level()])
def simd(request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs a test with each of the portable, AVX2 and AVX-512 kernels that this CPU runs."""
    default = kernels.simd()
    assert kernels.set_simd(LEVELS[request.param]) == LEVELS[request.param]
    yield request.param
    kernels.set_simd(default)


def vector_levels() -> list[int]:
    """The vector levels (1 AVX2, 2 AVX-512) this CPU runs, each to be compared with the portable code (0)."""
    widest = _widest_level()
    if not widest:
        pytest.skip("this CPU has no AVX2: only the portable kernels run here")
    return list(range(1, widest + 1))


@needs_kernels
def test_set_simd_takes_a_level_up_to_the_cpus_widest() -> None:
    default = kernels.simd()
    try:
        widest = kernels.set_simd(True)
        assert kernels.set_simd(False) == kernels.simd() == 0
        assert [kernels.set_simd(level) for level in (0, 1, 2)] == [min(level, widest) for level in (0, 1, 2)]
        for bad in (-1, 3):
            with pytest.raises(ValueError, match="the level should be 0, 1 or 2"):
                kernels.set_simd(bad)
    finally:
        kernels.set_simd(default)


def _rgbx(rgb: np.ndarray) -> np.ndarray:
    return np.frombuffer(bytearray(Image.fromarray(rgb).tobytes("raw", "RGBX")), dtype=np.uint8).copy()


def _rgb(rgbx: np.ndarray, height: int, width: int) -> np.ndarray:
    return rgbx.reshape(height, width, 4)[..., :3]


def _jitter(rgb: np.ndarray, ops: list[tuple[int, float]]) -> np.ndarray:
    buf = _rgbx(rgb)
    kernels.jitter(buf, ops)
    return _rgb(buf, *rgb.shape[:2])


def _torchvision(rgb: np.ndarray, ops: list[tuple[int, float]]) -> np.ndarray:
    img = Image.fromarray(rgb)
    for op, factor in ops:
        img = ADJUST[op](img, factor)
    return np.asarray(img)


def _native(ops: list[tuple[int, float]]) -> list[tuple[int, float]]:
    # The hue as the kernels take it: torchvision's shift of PIL's hue byte.
    return [(op, float(hue_steps(f)) if op == 3 else f) for op, f in ops]


@pytest.fixture(scope="module")
def photo(coffee_path) -> np.ndarray:
    return np.asarray(Image.open(coffee_path).convert("RGB").crop((150, 60, 350, 260)))


@pytest.fixture(scope="module")
def noise() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (61, 77, 3), dtype=np.uint8)


@needs_kernels
class TestJitter:
    @pytest.mark.parametrize("op", [0, 1, 2])
    @pytest.mark.parametrize("factor", [0.6, 0.97, 1.0, 1.23, 1.4])
    def test_brightness_contrast_saturation_equal_torchvision_exactly(
        self, simd: str, photo: np.ndarray, noise: np.ndarray, op: int, factor: float
    ) -> None:
        for image in (photo, noise):
            np.testing.assert_array_equal(_jitter(image, [(op, factor)]), _torchvision(image, [(op, factor)]))

    @pytest.mark.parametrize("factor", [-0.5, -0.1, -0.03, 0.0, 0.02, 0.1, 0.37])
    def test_hue_is_torchvision_up_to_rounding(
        self, simd: str, photo: np.ndarray, noise: np.ndarray, factor: float
    ) -> None:
        for image in (photo, noise):
            got = _jitter(image, _native([(3, factor)])).astype(int)
            diff = np.abs(got - _torchvision(image, [(3, factor)]))
            assert diff.max() <= 12 and (diff > 0).mean() < 0.01, (diff.max(), (diff > 0).mean())

    def test_ops_run_in_the_given_order_with_contrast_on_the_current_image(
        self, simd: str, photo: np.ndarray
    ) -> None:
        rng = np.random.default_rng(1)
        for _ in range(12):
            order = rng.permutation(4)
            factors = {k: rng.uniform(0.6, 1.4) for k in range(3)} | {3: rng.uniform(-0.1, 0.1)}
            ops = [(int(k), factors[k]) for k in order]
            diff = np.abs(_jitter(photo, _native(ops)).astype(int) - _torchvision(photo, ops))
            assert diff.max() <= 12 and (diff > 0).mean() < 0.02, (ops, diff.max())
        # brightness then contrast differs from contrast then brightness; each matches its own order
        a, b = [(0, 1.4), (1, 0.6)], [(1, 0.6), (0, 1.4)]
        assert np.abs(_torchvision(photo, a).astype(int) - _torchvision(photo, b)).max() > 10
        np.testing.assert_array_equal(_jitter(photo, a), _torchvision(photo, a))
        np.testing.assert_array_equal(_jitter(photo, b), _torchvision(photo, b))

    def test_keeps_the_padding_byte_and_handles_any_length(self, simd: str, noise: np.ndarray) -> None:
        ops = _native([(2, 1.3), (3, 0.05), (1, 0.8), (0, 1.1)])
        for count in (0, 1, 7, 15, 16, 17, 33):
            flat = noise.reshape(-1, 3)[:count]
            buf = np.empty((count, 4), np.uint8)
            buf[:, :3], buf[:, 3] = flat, 77
            kernels.jitter(buf, ops)
            assert (buf[:, 3] == 77).all()
            if count:
                np.testing.assert_array_equal(buf[:, :3], _jitter(flat.reshape(1, count, 3), ops)[0])

    def test_every_vector_level_gives_the_portable_bytes(self, noise: np.ndarray, photo: np.ndarray) -> None:
        levels = vector_levels()
        rng = np.random.default_rng(2)
        try:
            for image in (noise, photo):
                for _ in range(20):
                    ops = [(int(k), rng.uniform(0.0, 2.0) if k < 3 else float(rng.integers(0, 256)))
                           for k in rng.permutation(4)]
                    kernels.set_simd(0)
                    portable = _jitter(image, ops)
                    for level in levels:
                        kernels.set_simd(level)
                        np.testing.assert_array_equal(_jitter(image, ops), portable, err_msg=f"level {level}")
        finally:
            kernels.set_simd(True)

    @pytest.mark.parametrize(
        ("ops", "message"),
        [
            ([(4, 1.0)], "unknown op 4"),
            ([(1, 1.0), (1, 0.5)], "contrast may appear once"),
            ([(0, 1.0)] * 5, "at most 4 ops"),
            ([("hue", 1.0)], "integer"),
            (3, "sequence"),
        ],
    )
    def test_bad_ops(self, ops: object, message: str) -> None:
        with pytest.raises((ValueError, TypeError), match=message):
            kernels.jitter(bytearray(16), ops)

    def test_bad_buffers(self) -> None:
        with pytest.raises(ValueError, match="4-byte pixels"):
            kernels.jitter(bytearray(6), [])
        with pytest.raises(TypeError):
            kernels.jitter(b"\x00" * 16, [])  # read-only


def _pil_fill(f: tuple[float, ...], side: float, size: int) -> np.ndarray:
    """PIL's fill test, pixel by pixel in double precision: centre mapped outside [0, side)^2."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    p = f[0] * xs + f[1] * ys + f[2]
    q = f[3] * xs + f[4] * ys + f[5]
    return ~((p >= 0) & (p < side) & (q >= 0) & (q < side))


@pytest.fixture(scope="module")
def source() -> np.ndarray:
    """A smooth 400x400 RGBX image."""
    rng = np.random.default_rng(3)
    smooth = np.asarray(Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).resize((400, 400)))
    return _rgbx(np.ascontiguousarray(smooth)).reshape(400, 400, 4)


@pytest.fixture(scope="module")
def texture() -> np.ndarray:
    """A 300x260 RGBX image of noise: every frequency, so that any difference in filtering shows.

    Its levels stay within 48-207, where no filter's overshoot reaches 0 or 255: PIL clips between its two
    passes, which it makes in the other order (along the rows first, the kernel down the columns first),
    so that clipping would differ.
    """
    noise = np.random.default_rng(5).integers(48, 208, (260, 300, 3), dtype=np.uint8)
    return _rgbx(noise).reshape(260, 300, 4)


def _render(source: np.ndarray, box: tuple, side: int, f: tuple, size: int, interpolation: int = 1) -> np.ndarray:
    out = np.full(size * size * 4, 123, np.uint8)
    kernels.render(source, source.shape[0], source.shape[1], box, interpolation, side, f, out, size)
    return out.reshape(size, size, 4)


def _whole(source: np.ndarray) -> tuple[tuple, int]:
    """The box and side that resize a square source onto itself: the resize is then the identity."""
    return (0.0, 0.0, float(source.shape[1]), float(source.shape[0])), source.shape[0]


@needs_kernels
class TestWarp:
    """The second resampling, the bilinear warp, seen alone: a resize of a square source onto itself copies it."""

    @pytest.mark.parametrize("angle", [0.0, 17.0, -45.0, 90.0, 133.0])
    @pytest.mark.parametrize("size", [8, 37, 64])
    def test_matches_opencv_bilinear(self, simd: str, source: np.ndarray, angle: float, size: int) -> None:
        cv2 = pytest.importorskip("cv2")
        a = np.radians(angle)
        f = (1.13 * np.cos(a), -0.9 * np.sin(a), 200.3, 1.13 * np.sin(a), 0.9 * np.cos(a), 180.7)
        ours = _render(source, *_whole(source), f, size).astype(int)
        m = np.array(geometry.to_pixel_indices(f)).reshape(2, 3)
        theirs = cv2.warpAffine(
            source, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
        ).astype(int)
        # OpenCV rounds the position to 1/32 pixel, the kernel to 1/64: a level or two apart.
        assert np.abs(ours[..., :3] - theirs[..., :3]).max() <= 3
        assert np.abs(ours[..., :3] - theirs[..., :3]).mean() < 0.3

    @pytest.mark.parametrize("size", [45, 300])  # 300: rows longer than the vector code's chunk of 256
    def test_integer_translation_copies_pixels(self, simd: str, source: np.ndarray, size: int) -> None:
        out = _render(source, *_whole(source), (1.0, 0.0, 31.0, 0.0, 1.0, 12.0), size)
        np.testing.assert_array_equal(out[..., :3], source[12 : 12 + size, 31 : 31 + size, :3])

    def test_reads_past_the_edge_repeat_it(self, simd: str, source: np.ndarray) -> None:
        # Centres at x 0.25 and 399.75 are inside; their bilinear neighbours beyond the edge repeat it, as in PIL.
        out = _render(source, *_whole(source), (399.5, 0.0, -199.5, 0.0, 1.0, 100.0), 2)
        np.testing.assert_array_equal(out[0, :, :3], source[100, [0, 399], :3])

    @pytest.mark.parametrize("seed", range(6))
    def test_footprint_fill_is_pils_test_exactly(self, simd: str, source: np.ndarray, seed: int) -> None:
        rng = np.random.default_rng(seed)
        size = 61
        a = rng.uniform(0, 2 * np.pi)
        s = rng.uniform(0.7, 1.6)
        f = (s * np.cos(a), -s * np.sin(a), rng.uniform(-30, 400), s * np.sin(a), s * np.cos(a), rng.uniform(-30, 400))
        if seed == 0:
            f = (1.0, 0.0, -5.5, 0.0, 0.0, 3.0)  # a row coefficient of zero
        lifted = np.maximum(source, 1)  # no zero in any channel, so a 0 is a filled pixel
        out = _render(lifted, *_whole(lifted), f, size)
        fill = _pil_fill(f, 400.0, size)
        assert (out[fill] == 0).all()
        assert (out[~fill][:, :3] > 0).all()
        assert 0 < fill.sum() or seed != 0


@needs_kernels
class TestResize:
    """The first resampling, PIL's antialiased resize of the box, seen alone: the warp copies it."""

    @pytest.mark.parametrize("interpolation", [0, 1, 2])
    @pytest.mark.parametrize(
        "box, side",
        [((20, 30, 260, 250), 90), ((7, 3, 293, 251), 31), ((100, 40, 160, 90), 90), ((0, 0, 300, 260), 300),
         ((55, 61, 59, 66), 9)],
        ids=["reduce-2.7", "reduce-9", "enlarge-1.5", "same-size", "enlarge-2"],
    )
    def test_is_pils_resize_of_the_crop(self, simd: str, texture: np.ndarray, interpolation: int, box, side) -> None:
        identity = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
        ours = _render(texture, tuple(map(float, box)), side, identity, side, interpolation)[..., :3].astype(int)
        filters = [Image.Resampling.BILINEAR, Image.Resampling.BICUBIC, Image.Resampling.LANCZOS]
        crop = Image.fromarray(np.ascontiguousarray(texture[..., :3])).crop(box)
        theirs = np.asarray(crop.resize((side, side), filters[interpolation])).astype(int)
        # 6-bit weights (PIL has 22) on noise of +-80 levels, and down the columns first where PIL goes
        # along the rows first: each pass rounds to the level or the one beside it, within a few levels.
        assert np.abs(ours - theirs).max() <= 5
        assert np.abs(ours - theirs).mean() < 1.25

    def test_a_fractional_box_is_resized_as_pil_resizes_it(self, simd: str, texture: np.ndarray) -> None:
        # A pyramid level's box is fractional; PIL's resize(box=...) takes it so (and reads past its edge
        # where the kernel, which cuts its filter at the box rounded out, does not: compare inside).
        box = (20.25, 30.5, 180.75, 150.125)
        identity = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
        ours = _render(texture, box, 64, identity, 64)[..., :3].astype(int)
        image = Image.fromarray(np.ascontiguousarray(texture[..., :3]))
        theirs = np.asarray(image.resize((64, 64), Image.Resampling.BICUBIC, box=box)).astype(int)
        assert np.abs(ours - theirs)[3:-3, 3:-3].max() <= 5

    @pytest.mark.parametrize("interpolation", [0, 1, 2])
    def test_a_flat_source_stays_flat(self, simd: str, interpolation: int) -> None:
        # The weights sum to 1 exactly, also where the box's edge cuts the filter (small boxes,
        # fractional edges, large enlargements and reductions).
        flat = np.full((40, 50, 4), 255, np.uint8)
        rng = np.random.default_rng(6)
        for _ in range(30):
            width, height = rng.uniform(0.6, 50), rng.uniform(0.6, 40)
            left, top = rng.uniform(0, 50 - width), rng.uniform(0, 40 - height)
            side = int(rng.integers(1, 70))
            out = _render(flat, (left, top, left + width, top + height), side, (1.0, 0, 0, 0, 1.0, 0), side,
                          interpolation)
            assert (out[..., :3] == 255).all(), (left, top, width, height, side)

    def test_every_vector_level_gives_the_portable_bytes(self, texture: np.ndarray) -> None:
        levels = vector_levels()
        rng = np.random.default_rng(4)
        for k in range(40):
            size = int(rng.integers(1, 90))
            side = int(rng.integers(1, 130))
            width, height = rng.uniform(1, 300), rng.uniform(1, 260)
            left, top = rng.uniform(0, 300 - width), rng.uniform(0, 260 - height)
            box = (left, top, left + width, top + height)
            a, s = rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 2.0)
            c, d = s * np.cos(a), s * np.sin(a)
            f = (c, -d, rng.uniform(-0.2, 1.2) * side, d, c, rng.uniform(-0.2, 1.2) * side)
            outs = []
            for level in [0, *levels]:
                kernels.set_simd(level)
                outs.append(_render(texture, box, side, f, size, k % 3))
            kernels.set_simd(True)
            for level, out in zip(levels, outs[1:], strict=True):
                np.testing.assert_array_equal(out, outs[0], err_msg=f"level {level}")

    def test_every_vector_level_gives_the_portable_bytes_in_long_rows(self, texture: np.ndarray) -> None:
        # Rows of more than 256 pixels: the warp's vector code takes them in chunks of 256.
        levels = vector_levels()
        rng = np.random.default_rng(6)
        for k in range(3):
            size = int(rng.integers(257, 420))
            side = size + 40
            a = rng.uniform(-0.3, 0.3)
            c, d = np.cos(a), np.sin(a)
            f = (c, -d, rng.uniform(-20, 60), d, c, rng.uniform(-20, 60))
            outs = []
            for level in [0, *levels]:
                kernels.set_simd(level)
                outs.append(_render(texture, (10.5, 5.25, 290.0, 250.75), side, f, size, k % 3))
            kernels.set_simd(True)
            assert (outs[0][..., :3] != 0).mean() > 0.5  # mostly inside the footprint: long spans to warp
            for level, out in zip(levels, outs[1:], strict=True):
                np.testing.assert_array_equal(out, outs[0], err_msg=f"level {level}")

    @pytest.mark.parametrize(
        "change, message",
        [
            ({"box": (0.0, 0.0, 301.0, 10.0)}, "the box should be"),
            ({"box": (5.0, 0.0, 5.0, 10.0)}, "the box should be"),
            ({"box": (0.0, -1.0, 10.0, 10.0)}, "the box should be"),
            ({"box": (0.0, 0.0, 10.0)}, "4 numbers"),
            ({"filter": 3}, "the filter should be 0, 1 or 2"),
            ({"f": (1.0, 0.0, float("nan"), 0.0, 1.0, 0.0)}, "finite"),
            ({"f": (1.0, 0.0, 0.0)}, "6 numbers"),
            ({"height": 259}, "buffer sizes"),
            ({"size": 15}, "buffer sizes"),
            ({"side": 0}, "buffer sizes"),
        ],
    )
    def test_bad_arguments(self, texture: np.ndarray, change: dict, message: str) -> None:
        args = {"height": 260, "width": 300, "box": (0.0, 0.0, 10.0, 10.0), "filter": 1, "side": 8,
                "f": (1.0, 0.0, 0.0, 0.0, 1.0, 0.0), "size": 16, **change}
        out = np.zeros(16 * 16 * 4, np.uint8)
        with pytest.raises(ValueError, match=message):
            kernels.render(texture, args["height"], args["width"], args["box"], args["filter"], args["side"],
                           args["f"], out, args["size"])

    def test_a_read_only_output_is_refused(self, texture: np.ndarray) -> None:
        with pytest.raises(TypeError, match="writable buffer"):
            kernels.render(texture, 260, 300, (0.0, 0.0, 9.0, 9.0), 1, 9, (1.0, 0, 0, 0, 1.0, 0), bytes(1024), 16)


@needs_kernels
@pytest.mark.skipif(not hasattr(Image.Image, "__arrow_c_array__"), reason="Pillow < 11.2 exports no image memory")
class TestPILImagesInPlace:
    """The kernels write a PIL RGB image's own memory, through Pillow's Arrow export of it."""

    def test_render_and_jitter_write_the_image_as_they_write_a_buffer(self, source: np.ndarray) -> None:
        f, ops = (0.9, -0.3, 120.0, 0.3, 0.9, 80.0), [(2, 1.4), (3, 30.0), (1, 0.7)]
        box, side = _whole(source)
        buffer = np.empty(37 * 37 * 4, np.uint8)
        kernels.render(source, source.shape[0], source.shape[1], box, 1, side, f, buffer, 37)
        kernels.jitter(buffer, ops)
        image = Image.new("RGB", (37, 37), None)
        kernels.render(source, source.shape[0], source.shape[1], box, 1, side, f, image.__arrow_c_array__(), 37)
        kernels.jitter(image.__arrow_c_array__(), ops)
        assert image.tobytes() == Image.frombytes("RGB", (37, 37), buffer.tobytes(), "raw", "RGBX").tobytes()

    def test_other_layouts_and_sizes_are_refused(self, source: np.ndarray) -> None:
        grey = Image.new("L", (16, 16)).__arrow_c_array__()
        with pytest.raises(ValueError, match="not the pixels of a PIL RGB image"):
            kernels.jitter(grey, [])
        with pytest.raises(ValueError, match="buffer sizes"):
            kernels.render(source, 400, 400, (0.0, 0.0, 9.0, 9.0), 1, 9, (1, 0, 0, 0, 1, 0),
                           Image.new("RGB", (16, 15)).__arrow_c_array__(), 16)
        schema, array = Image.new("RGB", (4, 4)).__arrow_c_array__()
        with pytest.raises(TypeError, match="capsules"):
            kernels.jitter((array, schema), [])  # the capsules swapped


@needs_kernels
class TestRenderBatchKernel:
    """``render_batch``: warp + jitter + split into planes for a whole batch, byte-equal to the one-sample path."""

    def test_batch_equals_one_sample_path(self, simd: str) -> None:
        from single_image_dataset import SingleImageDataset

        for size in (31, 64, 263):  # planes: below one AVX2 block, whole blocks, a tail
            ds = SingleImageDataset(num_imgs=50, img_size=size, backend="fast", jitter_p=1.0, vflip=True, seed=size)
            batch = ds.params_batch(range(0, 50, 5))
            images = ds.render_batch(batch)
            for k, params in enumerate(batch.to_list()):
                np.testing.assert_array_equal(images[k].permute(1, 2, 0).numpy(), np.asarray(ds.render(params)))

    def test_planes_of_random_pixels(self, simd: str) -> None:
        # A resize of a level onto itself and the identity map copy it: the split alone shows: plane c
        # holds byte c of each pixel.
        rng = np.random.default_rng(0)
        for size in (1, 7, 32, 33, 100):
            level = rng.integers(0, 256, (size, size, 4), dtype=np.uint8)
            out = np.empty((1, 3, size, size), dtype=np.uint8)
            kernels.render_batch([(level, size, size)], np.zeros(1, dtype=np.int64), np.array([[0.0, 0, size, size]]),
                                 np.ones(1, dtype=np.int8), size, np.array([[1.0, 0, 0, 0, 1, 0]]),
                                 np.full((1, 4), -1, dtype=np.int8), np.zeros((1, 4)), out, size)
            np.testing.assert_array_equal(out[0], level[..., :3].transpose(2, 0, 1))

    def test_boxes_are_in_the_source_and_scaled_to_the_level(self, simd: str, texture: np.ndarray) -> None:
        # Sample 0 reads level 1 (the texture halved) through a box given in level 0's pixels.
        half = np.ascontiguousarray(texture[::2, ::2])
        levels = [(np.zeros((520, 600, 4), np.uint8), 520, 600), (half, 130, 150)]
        out = np.empty((1, 3, 20, 20), dtype=np.uint8)
        f = (0.9, 0.2, 5.0, -0.2, 0.9, 9.0)
        kernels.render_batch(levels, np.ones(1, dtype=np.int64), np.array([[40.0, 60.0, 200.0, 180.0]]),
                             np.ones(1, dtype=np.int8), 30, np.array([f]), np.full((1, 4), -1, dtype=np.int8),
                             np.zeros((1, 4)), out, 20)
        alone = _render(half, (20.0, 30.0, 100.0, 90.0), 30, f, 20)
        np.testing.assert_array_equal(out[0], alone[..., :3].transpose(2, 0, 1))

    @pytest.mark.parametrize(
        "change, message",
        [
            ({"level": np.array([3], dtype=np.int64)}, "level 3 of sample 0 does not exist"),
            ({"boxes": np.array([[0.0, 0.0, 7.0, 6.0]])}, "sample 0: the box should be"),
            ({"filters": np.array([5], dtype=np.int8)}, "sample 0: the filter should be"),
            ({"maps": np.array([[1.0, 0, np.inf, 0, 1, 0]])}, "sample 0: the map should hold finite numbers"),
            ({"ops": np.array([[-1, 0, -1, -1]], dtype=np.int8)}, "follows -1"),
            ({"ops": np.array([[1, 1, -1, -1]], dtype=np.int8)}, "contrast may appear once"),
            ({"ops": np.array([[7, -1, -1, -1]], dtype=np.int8)}, "unknown"),
            ({"out": np.empty((1, 3, 4, 5), dtype=np.uint8)}, "out holds 60 bytes, expected 48"),
            ({"maps": np.zeros((1, 5))}, "maps holds 40 bytes, expected 48"),
            ({"side": 0}, "a side and a size from 1 to 32768"),
        ],
    )
    def test_bad_arguments(self, change: dict, message: str) -> None:
        level = np.zeros((6, 6, 4), dtype=np.uint8)
        args = {
            "level": np.zeros(1, dtype=np.int64), "boxes": np.array([[0.0, 0.0, 6.0, 6.0]]),
            "filters": np.ones(1, dtype=np.int8), "side": 4, "maps": np.array([[1.0, 0, 0, 0, 1, 0]]),
            "ops": np.full((1, 4), -1, dtype=np.int8), "values": np.zeros((1, 4)),
            "out": np.empty((1, 3, 4, 4), dtype=np.uint8), **change,
        }
        with pytest.raises(ValueError, match=message):
            kernels.render_batch([(level, 6, 6)], args["level"], args["boxes"], args["filters"], args["side"],
                                 args["maps"], args["ops"], args["values"], args["out"], 4)


def _view_spec(size: int = 4, n: int = 1, **change: object) -> tuple:
    """A valid view of ``n`` samples for ``render_views`` (its arguments in order), fields replaced by ``change``."""
    spec = {"size": size, "taps": 1, "crops": np.tile(np.array([[0, 0, 6, 6]], dtype=np.int64), (n, 1)),
            "flags": np.zeros((n, 5), dtype=np.uint8), "ops": np.full((n, 4), -1, dtype=np.int8),
            "values": np.zeros((n, 4)), "kernels": np.ones((n, 1), dtype=np.float32),
            "out": np.empty((n, 3, size, size), dtype=np.uint8), **change}
    return tuple(spec.values())


def _render_views(level: np.ndarray, views: list[tuple], n: int = 1) -> None:
    """The kernels' ``render_views`` of ``n`` samples, each ``level`` (square, RGBX) resized onto itself."""
    side = level.shape[0]
    kernels.render_views([(level, side, side)], np.zeros(n, dtype=np.int64), np.tile([[0.0, 0, side, side]], (n, 1)),
                         np.ones(n, dtype=np.int8), side, np.tile([[1.0, 0, 0, 0, 1, 0]], (n, 1)),
                         np.full((n, 4), -1, dtype=np.int8), np.zeros((n, 4)), side, views)


@needs_kernels
class TestRenderViewsKernel:
    """``render_views``: the samples of ``render_batch``, then each view made from them (render/kernels/views.c)."""

    def test_a_whole_crop_of_its_own_size_is_the_sample(self, simd: str) -> None:
        # A resize onto the same size copies; the flip, grayscale and solarization are then plain to see.
        rng = np.random.default_rng(0)
        for side in (1, 7, 33):
            level = rng.integers(0, 256, (side, side, 4), dtype=np.uint8)
            crop = np.array([[0, 0, side, side]], dtype=np.int64)
            flags = np.array([[0, 0, 0, 0, 0], [1, 0, 0, 1, 0], [0, 1, 0, 0, 0]], dtype=np.uint8)
            outs = [_view_spec(side, crops=crop, flags=flags[i : i + 1]) for i in range(3)]
            _render_views(level, outs)
            rgb = level[..., :3].transpose(2, 0, 1).astype(int)
            np.testing.assert_array_equal(outs[0][-1][0], rgb)
            flipped = rgb[..., ::-1]
            np.testing.assert_array_equal(outs[1][-1][0], np.where(flipped >= 128, 255 - flipped, flipped))
            luma = (rgb[0] * 19595 + rgb[1] * 38470 + rgb[2] * 7471 + 0x8000) >> 16
            np.testing.assert_array_equal(outs[2][-1][0], np.stack([luma] * 3))

    def test_the_resize_is_pillows_in_its_pass_order(self, simd: str, texture: np.ndarray) -> None:
        from single_image_dataset.render.functional import pil_vertical_first

        rng = np.random.default_rng(1)
        level = np.ascontiguousarray(texture[:128, :128])
        orders = set()
        for _ in range(30):
            size = int(rng.integers(1, 129))
            height, width = (int(v) for v in rng.integers(1, 129, 2))
            top, left = int(rng.integers(0, 129 - height)), int(rng.integers(0, 129 - width))
            flip = int(rng.integers(0, 2))
            down_first = int(pil_vertical_first(height, width, size))
            orders.add(down_first)
            spec = _view_spec(size, crops=np.array([[top, left, height, width]], dtype=np.int64),
                              flags=np.array([[flip, 0, 0, 0, down_first]], dtype=np.uint8))
            _render_views(level, [spec])
            crop = Image.fromarray(np.ascontiguousarray(level[..., :3])).crop((left, top, left + width, top + height))
            theirs = np.asarray(crop.resize((size, size), Image.Resampling.BILINEAR)).transpose(2, 0, 1)
            np.testing.assert_array_equal(spec[-1][0], theirs[..., ::-1] if flip else theirs)
        assert orders == ({0, 1} if int(PIL.__version__.split(".")[0]) >= 13 else {0})

    def test_every_vector_level_gives_the_portable_bytes(self) -> None:
        levels = vector_levels()
        from single_image_dataset import SingleImageDataset, ViewParamsBatch

        rng = np.random.default_rng(2)
        noise = Image.fromarray(rng.integers(0, 256, (200, 200, 3), dtype=np.uint8))
        ds = SingleImageDataset(noise, num_imgs=100, img_size=57, backend="fast", jitter_p=1.0)
        n = 12
        params = ds.params_batch(range(n))
        for size in (1, 5, 8, 9, 31, 33, 57):  # below a vector, one, and tails
            views = []
            for taps in sorted({1, 2 * (size // 20) + 1, size - 1 + size % 2}):  # none, SimCLR's, the largest
                top, left = rng.integers(0, 40, n), rng.integers(0, 40, n)
                height, width = rng.integers(1, 58 - top), rng.integers(1, 58 - left)
                order = np.array([rng.permutation(4) for _ in range(n)], dtype=np.int8)
                views.append(ViewParamsBatch(
                    crop=np.stack([top, left, height, width], axis=1), size=size, hflip=rng.random(n) < 0.5,
                    jitter_on=rng.random(n) < 0.7, jitter_factors=np.stack(
                        [rng.uniform(0.2, 1.8, n), rng.uniform(0.2, 1.8, n), rng.uniform(0.2, 1.8, n),
                         rng.uniform(-0.5, 0.5, n)], axis=1), jitter_order=order,
                    grayscale=rng.random(n) < 0.3, blur_kernel=taps, solarize=rng.random(n) < 0.3,
                    blur_sigma=np.where(rng.random(n) < 0.6, rng.uniform(0.1, 2, n), np.nan)))
            for view in views:
                view.jitter_factors[~view.jitter_on] = np.nan
                view.jitter_order[~view.jitter_on] = -1
            outs = []
            for level in [0, *levels]:
                kernels.set_simd(level)
                outs.append(ds.render_views(params, views))
            kernels.set_simd(True)
            for level, out in zip(levels, outs[1:], strict=True):
                for vector, portable in zip(out, outs[0], strict=True):
                    np.testing.assert_array_equal(vector.numpy(), portable.numpy(), err_msg=f"level {level}")

    @pytest.mark.parametrize(
        "change, message",
        [
            ({"crops": np.array([[0, 0, 7, 6]], dtype=np.int64)}, r"views\[0\]: the crop of sample 0 should be .* "
                                                                  r"inside the 6 px sample"),
            ({"crops": np.array([[0, 0, 0, 6]], dtype=np.int64)}, "height and width at least 1"),
            ({"crops": np.array([[-1, 0, 2, 2]], dtype=np.int64)}, "the crop of sample 0"),
            ({"flags": np.array([[0, 2, 0, 0, 0]], dtype=np.uint8)},
             r"views\[0\]: the flags of sample 0 should be 0 or 1"),
            ({"taps": 2, "kernels": np.ones((1, 2), dtype=np.float32)}, "an odd number of taps below twice the size"),
            ({"taps": 9, "kernels": np.ones((1, 9), dtype=np.float32)}, "got size 4 and 9 taps"),
            ({"size": 0, "out": np.empty((1, 3, 0, 0), dtype=np.uint8)}, "a size from 1 to 32768"),
            ({"ops": np.array([[1, 1, -1, -1]], dtype=np.int8)},
             r"views\[0\]: contrast may appear once per sample, twice in sample 0"),
            ({"ops": np.array([[5, -1, -1, -1]], dtype=np.int8)}, "op 5 of sample 0 is unknown"),
            ({"out": np.empty((1, 3, 4, 5), dtype=np.uint8)}, "out holds 60 bytes, expected 48"),
            ({"flags": np.zeros((1, 4), dtype=np.uint8)}, "flags holds 4 bytes, expected 5"),
            ({"kernels": np.ones((1, 1), dtype=np.float64)}, "kernels holds 8 bytes, expected 4"),
        ],
    )
    def test_bad_views(self, change: dict, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            _render_views(np.zeros((6, 6, 4), dtype=np.uint8), [_view_spec(**change)])

    def test_bad_containers(self) -> None:
        level = np.zeros((6, 6, 4), dtype=np.uint8)
        with pytest.raises(TypeError, match="writable"):
            _render_views(level, [_view_spec(out=bytes(48))])
        with pytest.raises(TypeError, match="views should be a sequence"):
            _render_views(level, 3)
        with pytest.raises(TypeError):
            _render_views(level, [_view_spec()[:-1]])


# Each level set through the environment, in a fresh process: the implementation it reports and the hash of a batch.
_SIMD_PROBE = """
import hashlib, numpy as np
from single_image_dataset import SingleImageDataset
from single_image_dataset.render import fast
ds = SingleImageDataset(num_imgs=40, img_size=40, backend="fast")
batch = ds.render_batch(ds.params_batch(np.arange(40))).numpy().tobytes()
print(fast.implementation(), hashlib.sha256(batch).hexdigest())
"""


@needs_kernels
@pytest.mark.slow  # fresh processes, a few seconds each
class TestSimdVariable:
    def _probe(self, value: str | None) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k != fast.SIMD_VARIABLE}
        if value is not None:
            env[fast.SIMD_VARIABLE] = value
        env["PYTHONPATH"] = str(ROOT)  # this checkout's package
        return subprocess.run([sys.executable, "-c", _SIMD_PROBE], env=env, capture_output=True, text=True,
                              timeout=120)

    def test_each_level_reports_itself_and_gives_the_same_bytes(self) -> None:
        names = ("native", "native-avx2", "native-avx512")
        widest = _widest_level()
        runs = {value: self._probe(value) for value in (None, "", "portable", "avx2", "AVX512")}
        for run in runs.values():
            assert run.returncode == 0, run.stderr
        results = {value: run.stdout.split() for value, run in runs.items()}
        assert results[None][0] == results[""][0] == results["AVX512"][0] == names[widest]
        assert results["portable"][0] == "native"
        assert results["avx2"][0] == names[min(1, widest)]
        assert len({digest for _, digest in results.values()}) == 1

    def test_a_bad_value_is_refused_in_one_line(self, tmp_path: Path) -> None:
        run = self._probe("avx3")
        assert run.returncode != 0
        assert f"{fast.SIMD_VARIABLE}='avx3' is not a level of the native kernels: set it to avx512, avx2 or " \
               "portable, or unset it" in run.stderr
        env = {**os.environ, fast.SIMD_VARIABLE: "avx3", "PYTHONPATH": str(ROOT)}
        cli = subprocess.run([sys.executable, "-m", "single_image_dataset", "--num_imgs", "4", "--img_size", "32",
                              "--backend", "fast", "--targetpath", str(tmp_path)], env=env, capture_output=True,
                             text=True, timeout=120)
        assert cli.returncode == 1
        assert_one_line_error(cli.stderr, "is not a level of the native kernels")
        assert not any(tmp_path.iterdir())  # nothing written
