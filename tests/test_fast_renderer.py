"""The fast renderer against the reference renderer (the oracle), with the tolerances of docs/renderers.md."""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torchvision.transforms.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from single_image_dataset import AugmentConfig, JitterParams, Renderer, get_renderer, load_image, sample_params
from single_image_dataset.render import fast as fast_module
from single_image_dataset.render.fast import FastRenderer

pytestmark = [
    pytest.mark.filterwarnings("error"),
    pytest.mark.skipif(importlib.util.find_spec("cv2") is None, reason='needs OpenCV: pip install ".[fast]"'),
]

# The tolerances stated in docs/renderers.md: the geometry alone of every knob, and with the jitter.
MIN_MEAN_PSNR = 40.0
MIN_MEAN_PSNR_JITTER = 28.0
SAMPLES = 16
PHOTOS = ["hubble_path", "coffee_path", "large_photo"]


def psnr(a: Image.Image, b: Image.Image) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 images (100 for identical ones)."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"images should have the same shape, got {x.shape} and {y.shape}")
    mse = float(np.mean((x - y) ** 2))
    return 100.0 if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


@functools.cache
def _renderers(path: Path, implementation: str | None = None) -> tuple[Image.Image, Renderer, FastRenderer]:
    # Built once per photo: loading and the pyramid of the 2400 px photo are the slow part.
    image = load_image(path)
    return image, get_renderer("reference", image), FastRenderer(image, implementation)


def _psnrs(path: Path, config: AugmentConfig, implementation: str, samples: int = SAMPLES) -> np.ndarray:
    image, reference, fast = _renderers(path, implementation)
    values = []
    for index in range(samples):
        params = sample_params(config, image.size, index)
        values.append(psnr(reference.render(params), fast.render(params)))
    return np.array(values)


@pytest.fixture(params=["native", "opencv"])
def implementation(request: pytest.FixtureRequest) -> str:
    """Runs a test with each implementation of the fast renderer: the native kernels and OpenCV."""
    if request.param == "native" and fast_module._kernels is None:
        pytest.skip("the C extension was not built (no C compiler)")
    return request.param


class TestFidelity:
    """With the jitter and for every knob of the config (the geometry alone on varied photographs: test_fidelity.py)."""

    @pytest.mark.parametrize("img_size", [32, 64, 256])
    @pytest.mark.parametrize("photo", PHOTOS)
    def test_jitter_on(self, photo: str, img_size: int, implementation: str, request: pytest.FixtureRequest) -> None:
        config = AugmentConfig(img_size=img_size, jitter_p=1.0)
        values = _psnrs(request.getfixturevalue(photo), config, implementation)
        assert values.mean() >= MIN_MEAN_PSNR_JITTER, f"PSNRs {np.round(values, 1)}"

    @pytest.mark.parametrize(
        "changes",
        [
            {"shear": 0.0},  # F.rotate instead of F.affine
            {"deg": 0.0, "shear": 0.0},  # no warp
            {"vflip": True},
            {"cropfirst": False},
            {"randinterp": True},
            {"debug": True},
            {"deg": 180.0, "shear": 60.0, "initcrop": 1.0},
        ],
        ids=["rotate", "no-warp", "vflip", "no-cropfirst", "randinterp", "debug", "extreme-warp"],
    )
    def test_config_variants(self, changes: dict, implementation: str, hubble_path: Path) -> None:
        values = _psnrs(hubble_path, AugmentConfig(img_size=64, jitter_p=0.0, **changes), implementation)
        assert values.mean() >= MIN_MEAN_PSNR, f"PSNRs {np.round(values, 1)}"

    def test_outputs_are_rgb_of_the_right_size(self, implementation: str, coffee_path: Path) -> None:
        image, _, fast = _renderers(coffee_path, implementation)
        for config in (AugmentConfig(img_size=40), AugmentConfig(img_size=40, debug=True)):
            out = fast.render(sample_params(config, image.size, 3))
            side = 32 if config.debug else 40
            assert (out.mode, out.size) == ("RGB", (side, side))

    def test_a_bad_geometry_would_fail(self, implementation: str, hubble_path: Path) -> None:
        # The fidelity bar can fail: the same renders two source pixels off fall below it.
        image, reference, fast = _renderers(hubble_path, implementation)
        config = AugmentConfig(img_size=64, jitter_p=0.0)
        values = []
        for index in range(SAMPLES):
            p = sample_params(config, image.size, index)
            top, left, height, width = p.resized_crop
            shifted = dataclasses.replace(p, resized_crop=(top + 2, left + 2, height, width))
            values.append(psnr(reference.render(p), fast.render(shifted)))
        assert np.mean(values) < MIN_MEAN_PSNR


class TestFill:
    @pytest.mark.parametrize("img_size", [32, 64, 256])
    def test_black_fill_regions_agree(self, img_size: int, implementation: str) -> None:
        # On a white source, exactly the filled pixels are black; they must be the same pixels.
        white = Image.new("RGB", (600, 400), (255, 255, 255))
        reference, fast = get_renderer("reference", white), FastRenderer(white, implementation)
        config = AugmentConfig(img_size=img_size, jitter_p=0.0, deg=90.0, shear=60.0)
        filled = mismatched = total = 0
        for index in range(24):
            p = sample_params(config, white.size, index)
            ref_black = np.asarray(reference.render(p)).max(axis=-1) == 0
            fast_black = np.asarray(fast.render(p)).max(axis=-1) == 0
            filled += int(ref_black.sum())
            mismatched += int((ref_black != fast_black).sum())
            total += ref_black.size
        assert filled > 0.03 * total, filled  # the warps do fill
        assert mismatched <= 1e-3 * total, (mismatched, total)

    def test_filled_pixels_are_black_on_a_photo(self, implementation: str, coffee_path: Path) -> None:
        image, reference, fast = _renderers(coffee_path, implementation)
        config = AugmentConfig(img_size=64, jitter_p=0.0, deg=45.0, shear=45.0)
        for index in range(8):
            p = sample_params(config, image.size, index)
            ref = np.asarray(reference.render(p))
            out = np.asarray(fast.render(p))
            fill = np.asarray(get_renderer("reference", Image.new("RGB", image.size, "white")).render(p)).max(-1) == 0
            assert (ref[fill] == 0).all()
            assert (out[fill] == 0).sum() >= 0.999 * out[fill].size


def _jitter_only(**factors: float | None) -> JitterParams:
    names = ("brightness", "contrast", "saturation", "hue")
    values = {name: factors.get(name) for name in names}
    return JitterParams(**values, order=tuple(n for n in factors if factors[n] is not None))


@pytest.fixture(scope="module")
def crop(coffee_path: Path) -> Image.Image:
    """A 128 px crop of a colourful photo."""
    return load_image(coffee_path).crop((100, 50, 228, 178))


class TestOpenCVJitter:
    """The jitter of the OpenCV implementation (the native one is tested in test_kernels.py)."""

    @pytest.mark.parametrize(
        ("name", "factor", "adjust"),
        [
            ("brightness", 1.37, F.adjust_brightness),
            ("brightness", 0.61, F.adjust_brightness),
            ("contrast", 1.4, F.adjust_contrast),
            ("contrast", 0.6, F.adjust_contrast),
            ("saturation", 1.4, F.adjust_saturation),
            ("saturation", 0.6, F.adjust_saturation),
        ],
    )
    def test_each_op_within_one_level(self, crop: Image.Image, name: str, factor: float, adjust) -> None:
        from single_image_dataset.render import _opencv

        out = _opencv.jitter(np.array(crop), _jitter_only(**{name: factor}))
        expected = np.asarray(adjust(crop, factor))
        assert np.abs(out.astype(int) - expected).max() <= 1

    @pytest.mark.parametrize("factor", [0.1, -0.1, 0.04, -0.5])
    def test_hue(self, crop: Image.Image, factor: float) -> None:
        from single_image_dataset.render import _opencv

        out = _opencv.jitter(np.array(crop), _jitter_only(hue=factor))
        expected = F.adjust_hue(crop, factor)
        assert psnr(Image.fromarray(out), expected) >= 35.0

    def test_keeps_the_sampled_order(self, crop: Image.Image) -> None:
        from single_image_dataset.render import _opencv

        first = JitterParams(brightness=1.4, contrast=0.6, saturation=None, hue=None, order=("brightness", "contrast"))
        second = JitterParams(brightness=1.4, contrast=0.6, saturation=None, hue=None, order=("contrast", "brightness"))
        outs = [_opencv.jitter(np.array(crop), j) for j in (first, second)]
        refs = [np.asarray(F.adjust_contrast(F.adjust_brightness(crop, 1.4), 0.6)),
                np.asarray(F.adjust_brightness(F.adjust_contrast(crop, 0.6), 1.4))]
        assert np.abs(refs[0].astype(int) - refs[1]).max() > 10  # the order matters here
        for out, ref in zip(outs, refs, strict=True):
            assert np.abs(out.astype(int) - ref).max() <= 2


class TestRenderer:
    def test_registered(self) -> None:
        from single_image_dataset import available_backends

        assert "fast" in available_backends()

    def test_implementation_is_a_constructor_choice(self, coffee_path: Path) -> None:
        image = load_image(coffee_path)
        default = "opencv" if fast_module._kernels is None else "native"
        assert get_renderer("fast", image).implementation == FastRenderer(image).implementation == default
        assert fast_module.implementation().split("-")[0] == default
        assert FastRenderer(image, "opencv").implementation == "opencv"
        unknown = r"^implementation should be 'native', 'opencv' or None \(the default\), got 'avx'$"
        with pytest.raises(ValueError, match=unknown):
            FastRenderer(image, "avx")

    def test_native_without_the_extension_is_refused(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(fast_module, "_kernels", None)  # as where the C extension was not built
        image = Image.new("RGB", (16, 16))
        assert FastRenderer(image).implementation == fast_module.implementation() == "opencv"
        not_built = r'^implementation="native" needs the C extension .*use implementation="opencv"'
        with pytest.raises(ValueError, match=not_built):
            FastRenderer(image, "native")

    def test_pickle_round_trip_renders_the_same_and_carries_no_pyramid(
        self, implementation: str, coffee_path: Path
    ) -> None:
        image, _, fast = _renderers(coffee_path, implementation)
        blob = pickle.dumps(fast)
        assert len(blob) < 1.2 * image.width * image.height * 3
        clone = pickle.loads(blob)
        assert clone.implementation == implementation
        for index in range(4):
            p = sample_params(AugmentConfig(img_size=48), image.size, index)
            assert np.array_equal(np.asarray(clone.render(p)), np.asarray(fast.render(p)))

    @pytest.mark.skipif(fast_module._kernels is None, reason="the C extension was not built (no C compiler)")
    def test_writing_into_the_image_or_through_a_copy_gives_the_same_image(
        self, coffee_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Where Pillow cannot export an image's memory (Pillow < 11.2, or too large an image), the
        # kernels write a buffer that is copied in: the same pixels, and the same kind of image.
        image = load_image(coffee_path)
        renderer = get_renderer("fast", image)
        configs = [AugmentConfig(img_size=40, jitter_p=1.0), AugmentConfig(img_size=40), AugmentConfig(debug=True)]
        params = [sample_params(config, image.size, i) for config in configs for i in range(6)]
        params.append(dataclasses.replace(params[-1], jitter=params[0].jitter))  # debug resize, then the jitter
        direct = [renderer.render(p) for p in params]
        if hasattr(Image.Image, "__arrow_c_array__"):  # Pillow 11.2 and later
            assert isinstance(fast_module._pixels(direct[0]), tuple), "the kernels should write into the image"

        def no_export(self: Image.Image) -> None:
            raise ValueError("Image rows are not contiguous in memory.")

        monkeypatch.setattr(Image.Image, "__arrow_c_array__", no_export)
        for p, expected in zip(params, direct, strict=True):
            copied = renderer.render(p)
            assert (copied.mode, copied.size) == (expected.mode, expected.size)
            assert copied.tobytes() == expected.tobytes()
            assert not copied.readonly and not expected.readonly

    def test_input_image_not_mutated(self, coffee_path: Path) -> None:
        image = load_image(coffee_path)
        before = image.tobytes()
        fast = get_renderer("fast", image)
        fast.render(sample_params(AugmentConfig(img_size=32), image.size, 0))
        assert image.tobytes() == before

    def test_one_opencv_thread_in_dataloader_workers_only(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # The OpenCV implementation's concern; the native kernels are single-threaded.
        import cv2

        from single_image_dataset.render import fast

        calls: list[int] = []
        monkeypatch.setattr(cv2, "setNumThreads", calls.append)
        params = sample_params(AugmentConfig(img_size=16), (64, 64), 0)
        renderer = FastRenderer(Image.new("RGB", (64, 64)), "opencv")
        monkeypatch.setattr(fast, "_threads_unchecked", True)
        renderer.render(params)
        assert calls == []  # the main process keeps the application's setting
        monkeypatch.setattr(fast, "get_worker_info", lambda: object())
        monkeypatch.setattr(fast, "_threads_unchecked", True)  # a forked worker that inherited OpenCV
        monkeypatch.setattr(fast, "_opencv_inherited", True)
        renderer.render(params)
        assert calls == []
        monkeypatch.setattr(fast, "_threads_unchecked", True)  # a worker that imported OpenCV itself
        monkeypatch.setattr(fast, "_opencv_inherited", False)
        renderer.render(params)
        renderer.render(params)
        assert calls == [1]

    @pytest.mark.parametrize("context", ["fork", pytest.param("spawn", marks=pytest.mark.slow)])
    def test_real_workers_after_the_main_process_used_opencv(self, context: str) -> None:
        import cv2

        dataset = _ThreadsInWorker()
        dataset.renderer.render(dataset.params)  # OpenCV's thread pool runs before the workers start
        loader = DataLoader(dataset, batch_size=None, num_workers=1, multiprocessing_context=context)
        # A forked worker keeps the inherited count (changing it would deadlock); a spawned one uses 1.
        expected = cv2.getNumThreads() if context == "fork" else 1
        assert list(loader) == [expected, expected]


class _ThreadsInWorker(Dataset):
    """Renders with the fast renderer's OpenCV implementation and returns OpenCV's thread count afterwards."""

    def __init__(self) -> None:
        self.renderer = FastRenderer(Image.new("RGB", (64, 64)), "opencv")
        self.params = sample_params(AugmentConfig(img_size=16), (64, 64), 0)

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> int:
        import cv2

        self.renderer.render(self.params)
        return cv2.getNumThreads()


class TestWithoutOpenCV:
    def test_the_opencv_implementation_raises_one_line_naming_the_extra(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(sys.modules, "cv2", None)  # makes "import cv2" raise ImportError
        one_line = r'^backend="fast" needs OpenCV[^\n]*: pip install -e "\.\[fast\]" in the clone$'
        with pytest.raises(ImportError, match=one_line):
            FastRenderer(Image.new("RGB", (8, 8)), "opencv")

    @pytest.mark.slow
    def test_package_imports_and_the_native_kernels_need_no_opencv(self) -> None:
        code = (
            "import sys; sys.modules['cv2'] = None\n"
            "from single_image_dataset import SingleImageDataset, available_backends\n"
            "from single_image_dataset.render import fast\n"
            "print(available_backends())\n"
            "SingleImageDataset(num_imgs=2, img_size=16)[0]\n"
            "if fast.implementation() != 'opencv':\n"
            "    SingleImageDataset(num_imgs=2, img_size=16, backend='fast')[0]\n"
            "try:\n"
            "    fast.FastRenderer(SingleImageDataset(num_imgs=2).source, 'opencv')\n"
            "except ImportError as exc:\n"
            "    print(exc)\n"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
        assert result.stdout.splitlines() == [
            "('reference', 'fast', 'torch')",
            'backend="fast" needs OpenCV, an optional extra: pip install -e ".[fast]" in the clone',
        ]
