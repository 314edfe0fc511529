"""The fast renderer's native kernels (render/kernels/, bound by render/_kernels.c): exactness, the
AVX2 and portable code giving the same bytes, and argument checking."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import numpy as np
import pytest
import torchvision.transforms.functional as F
from PIL import Image

from single_image_dataset.params import hue_steps
from single_image_dataset.render import fast

try:
    from single_image_dataset.render import _kernels as kernels
except ImportError:  # the optional extension was not built
    kernels = None
needs_kernels = pytest.mark.skipif(kernels is None, reason="the C extension was not built (no C compiler)")

ADJUST = {0: F.adjust_brightness, 1: F.adjust_contrast, 2: F.adjust_saturation, 3: F.adjust_hue}


def test_the_extension_is_built_where_a_compiler_is() -> None:
    if kernels is None:
        assert not any(shutil.which(cc) for cc in ("cc", "gcc", "clang")), "a C compiler is here but no _kernels"
        assert fast.implementation() == "opencv"
    else:
        assert fast.implementation() == ("native-avx2" if kernels.simd() else "native")


@pytest.fixture(params=["avx2", "portable"])
def simd(request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs a test with the AVX2 kernels (where the CPU has them) and with the portable ones."""
    default = kernels.simd()
    kernels.set_simd(request.param == "avx2")
    yield request.param
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

    def test_avx2_and_portable_give_the_same_bytes(self, noise: np.ndarray, photo: np.ndarray) -> None:
        if not kernels.set_simd(True):
            pytest.skip("this CPU has no AVX2: only the portable kernels run here")
        rng = np.random.default_rng(2)
        for image in (noise, photo):
            for _ in range(20):
                ops = [(int(k), rng.uniform(0.0, 2.0) if k < 3 else float(rng.integers(0, 256)))
                       for k in rng.permutation(4)]
                kernels.set_simd(True)
                vector = _jitter(image, ops)
                kernels.set_simd(False)
                portable = _jitter(image, ops)
                kernels.set_simd(True)
                np.testing.assert_array_equal(vector, portable)

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
    """A smooth 500x400 RGBX image."""
    rng = np.random.default_rng(3)
    smooth = np.asarray(Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).resize((500, 400)))
    return _rgbx(np.ascontiguousarray(smooth)).reshape(400, 500, 4)


@needs_kernels
class TestWarp:
    def _warp(self, source: np.ndarray, m: tuple, size: int, footprint=None, side: float = 0.0) -> np.ndarray:
        out = np.full(size * size * 4, 123, np.uint8)
        kernels.warp(source, source.shape[0], source.shape[1], m, out, size, footprint, side)
        return out.reshape(size, size, 4)

    @pytest.mark.parametrize("angle", [0.0, 17.0, -45.0, 90.0, 133.0])
    @pytest.mark.parametrize("size", [8, 37, 64])
    def test_matches_opencv_bilinear(self, simd: str, source: np.ndarray, angle: float, size: int) -> None:
        cv2 = pytest.importorskip("cv2")
        a = np.radians(angle)
        m = (1.13 * np.cos(a), -0.9 * np.sin(a), 250.3, 1.13 * np.sin(a), 0.9 * np.cos(a), 180.7)
        ours = self._warp(source, m, size).astype(int)
        theirs = cv2.warpAffine(
            source, np.array(m).reshape(2, 3), (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        ).astype(int)
        # OpenCV rounds the position to 1/32 pixel, the kernel to 1/64: a level or two apart.
        assert np.abs(ours[..., :3] - theirs[..., :3]).max() <= 3
        assert np.abs(ours[..., :3] - theirs[..., :3]).mean() < 0.3

    @pytest.mark.parametrize("size", [45, 300])  # 300: rows longer than the vector code's chunk of 256
    def test_integer_translation_copies_pixels(self, simd: str, source: np.ndarray, size: int) -> None:
        out = self._warp(source, (1.0, 0.0, 31.0, 0.0, 1.0, 12.0), size)
        np.testing.assert_array_equal(out, source[12 : 12 + size, 31 : 31 + size])

    def test_pixels_that_leave_the_source_are_zero(self, simd: str, source: np.ndarray) -> None:
        # Columns 0-9 read x = -10 .. -1, outside; row 30 onwards reads y >= 399, whose 2x2 leaves it.
        out = self._warp(source, (1.0, 0.0, -10.0, 0.0, 1.0, 369.0), 40)
        assert (out[:, :10] == 0).all() and (out[30:] == 0).all()
        np.testing.assert_array_equal(out[:30, 10:], source[369:399, 0:30])

    @pytest.mark.parametrize("seed", range(6))
    def test_footprint_fill_is_pils_test_exactly(self, simd: str, source: np.ndarray, seed: int) -> None:
        rng = np.random.default_rng(seed)
        size, side = 61, 70.0
        a = rng.uniform(0, 2 * np.pi)
        s = rng.uniform(0.7, 1.6)
        f = (s * np.cos(a), -s * np.sin(a), rng.uniform(-30, 60), s * np.sin(a), s * np.cos(a), rng.uniform(-30, 60))
        if seed == 0:
            f = (1.0, 0.0, -5.5, 0.0, 0.0, 3.0)  # a row coefficient of zero
        m = (1.0, 0.0, 150.0, 0.0, 1.0, 150.0)
        out = self._warp(source, m, size, f, side)
        fill = _pil_fill(f, side, size)
        inside = self._warp(source, m, size)
        assert (out[fill] == 0).all()
        np.testing.assert_array_equal(out[~fill], inside[~fill])
        assert 0 < fill.sum() or seed != 0

    def test_avx2_and_portable_give_the_same_bytes(self, source: np.ndarray) -> None:
        if not kernels.set_simd(True):
            pytest.skip("this CPU has no AVX2: only the portable kernels run here")
        rng = np.random.default_rng(4)
        for _ in range(30):
            size = int(rng.integers(1, 70))
            a, s = rng.uniform(0, 2 * np.pi), rng.uniform(0.3, 3.0)
            c, d = s * np.cos(a), s * np.sin(a)
            m = (c, -d, rng.uniform(-50, 500), d, c, rng.uniform(-50, 400))
            f = (np.cos(a), np.sin(a), rng.uniform(-20, 20), -np.sin(a), np.cos(a), rng.uniform(-20, 20))
            outs = []
            for flag in (True, False):
                kernels.set_simd(flag)
                outs.append(self._warp(source, m, size, f, 50.0))
            kernels.set_simd(True)
            np.testing.assert_array_equal(outs[0], outs[1])
        for size in (263, 300):  # rows of more than one chunk, and whose length is not a multiple of 8
            a = rng.uniform(0, 2 * np.pi)
            m = (np.cos(a), -np.sin(a), rng.uniform(100, 400), np.sin(a), np.cos(a), rng.uniform(100, 300))
            outs = []
            for flag in (True, False):
                kernels.set_simd(flag)
                outs.append(self._warp(source, m, size))
            kernels.set_simd(True)
            assert 0 < (outs[0] == 0).mean() < 0.9  # partly outside the source: both kinds of pixel
            np.testing.assert_array_equal(outs[0], outs[1])

    def test_bad_arguments(self, source: np.ndarray) -> None:
        out = np.zeros(16 * 16 * 4, np.uint8)
        with pytest.raises(ValueError, match="buffer sizes"):
            kernels.warp(source, 400, 499, (1, 0, 0, 0, 1, 0), out, 16)
        with pytest.raises(ValueError, match="buffer sizes"):
            kernels.warp(source, 400, 500, (1, 0, 0, 0, 1, 0), out, 15)
        with pytest.raises(ValueError, match="6 numbers"):
            kernels.warp(source, 400, 500, (1, 0, 0), out, 16)
        with pytest.raises(ValueError, match="6 numbers"):
            kernels.warp(source, 400, 500, (1, 0, 0, 0, 1, 0), out, 16, (1, 2), 5.0)
        with pytest.raises(TypeError):
            kernels.warp(source, 400, 500, (1, 0, 0, 0, 1, 0), bytes(out), 16)


@needs_kernels
@pytest.mark.skipif(not hasattr(Image.Image, "__arrow_c_array__"), reason="Pillow < 11.2 exports no image memory")
class TestPILImagesInPlace:
    """The kernels write a PIL RGB image's own memory, through Pillow's Arrow export of it."""

    def test_warp_and_jitter_write_the_image_as_they_write_a_buffer(self, source: np.ndarray) -> None:
        m, ops = (0.9, -0.3, 120.0, 0.3, 0.9, 80.0), [(2, 1.4), (3, 30.0), (1, 0.7)]
        buffer = np.empty(37 * 37 * 4, np.uint8)
        kernels.warp(source, source.shape[0], source.shape[1], m, buffer, 37)
        kernels.jitter(buffer, ops)
        image = Image.new("RGB", (37, 37), None)
        kernels.warp(source, source.shape[0], source.shape[1], m, image.__arrow_c_array__(), 37)
        kernels.jitter(image.__arrow_c_array__(), ops)
        assert image.tobytes() == Image.frombytes("RGB", (37, 37), buffer.tobytes(), "raw", "RGBX").tobytes()

    def test_other_layouts_and_sizes_are_refused(self, source: np.ndarray) -> None:
        grey = Image.new("L", (16, 16)).__arrow_c_array__()
        with pytest.raises(ValueError, match="not the pixels of a PIL RGB image"):
            kernels.jitter(grey, [])
        with pytest.raises(ValueError, match="buffer sizes"):
            kernels.warp(source, 400, 500, (1, 0, 0, 0, 1, 0), Image.new("RGB", (16, 15)).__arrow_c_array__(), 16)
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
        # A warp that copies the level 1:1 shows the split alone: plane c holds byte c of each pixel.
        rng = np.random.default_rng(0)
        for size in (1, 7, 32, 33, 100):
            level = rng.integers(0, 256, (size + 2, size + 2, 4), dtype=np.uint8)
            out = np.empty((1, 3, size, size), dtype=np.uint8)
            identity = np.array([[1.0, 0.0, 1.0, 0.0, 1.0, 1.0]])
            kernels.render_batch([(level, size + 2, size + 2)], np.zeros(1, dtype=np.int64), identity,
                                 np.full((1, 6), np.nan), 0.0, np.full((1, 4), -1, dtype=np.int8), np.zeros((1, 4)),
                                 out, size)
            np.testing.assert_array_equal(out[0], level[1:-1, 1:-1, :3].transpose(2, 0, 1))

    @pytest.mark.parametrize(
        "change, message",
        [
            ({"level": np.array([3], dtype=np.int64)}, "level 3 of sample 0 does not exist"),
            ({"ops": np.array([[-1, 0, -1, -1]], dtype=np.int8)}, "follows -1"),
            ({"ops": np.array([[1, 1, -1, -1]], dtype=np.int8)}, "contrast may appear once"),
            ({"ops": np.array([[7, -1, -1, -1]], dtype=np.int8)}, "unknown"),
            ({"out": np.empty((1, 3, 4, 5), dtype=np.uint8)}, "out holds 60 bytes, expected 48"),
            ({"matrices": np.zeros((1, 5))}, "matrices holds 40 bytes, expected 48"),
        ],
    )
    def test_bad_arguments(self, change: dict, message: str) -> None:
        level = np.zeros((6, 6, 4), dtype=np.uint8)
        args = {
            "level": np.zeros(1, dtype=np.int64), "matrices": np.zeros((1, 6)), "footprints": np.zeros((1, 6)),
            "ops": np.full((1, 4), -1, dtype=np.int8), "values": np.zeros((1, 4)),
            "out": np.empty((1, 3, 4, 4), dtype=np.uint8), **change,
        }
        with pytest.raises(ValueError, match=message):
            kernels.render_batch([(level, 6, 6)], args["level"], args["matrices"], args["footprints"], 4.0,
                                 args["ops"], args["values"], args["out"], 4)
