"""Hostile and unlucky inputs: special files, odd paths, decompression bombs, EXIF orientation, every Pillow mode,
values at the edges and wrong types; from the API and as one line from the command line."""

from __future__ import annotations

import json
import os
import re
import socket
import struct
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import assert_one_line_error, png_header
from PIL import Image

from single_image_dataset import MAX_IMG_SIZE, AugmentConfig, SingleImageDataset, load_image, materialize, source
from single_image_dataset.cli import main
from single_image_dataset.source import pixel_sha256

pytestmark = pytest.mark.filterwarnings("error")

SMALL = {"num_imgs": 8, "img_size": 32}
SMALL_ARGV = ["--num_imgs", "8", "--img_size", "32"]


def _within(seconds: float, call: Callable[[], Any]) -> tuple[BaseException | None, float]:
    """``call()`` in a daemon thread: its exception (or None) and its duration; fails if it is still running after
    ``seconds``, so that a call that blocks forever fails the test instead of stalling the suite."""
    outcome: list[BaseException | None] = [None]

    def target() -> None:
        try:
            call()
        except BaseException as exc:  # noqa: B036 - handed to the test, which checks it
            outcome[0] = exc

    thread = threading.Thread(target=target, daemon=True)
    start = time.monotonic()
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still blocked after {seconds} s"
    return outcome[0], time.monotonic() - start


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit status and stderr of ``main(argv)``, usage errors (SystemExit) included."""
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    return code, capsys.readouterr().err


@pytest.fixture
def special_files(tmp_path: Path) -> Iterator[dict[str, tuple[Path, str]]]:
    """Special files by name: (path, the kind the message should name)."""
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    (tmp_path / "link_to_fifo.png").symlink_to(fifo)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "socket.png"))
    yield {
        "fifo": (fifo, r"a FIFO \(named pipe\)"),
        "symlink to a fifo": (tmp_path / "link_to_fifo.png", r"a FIFO \(named pipe\)"),
        "socket": (tmp_path / "socket.png", "a socket"),
        "/dev/zero": (Path("/dev/zero"), "a character device"),
        "/dev/null": (Path("/dev/null"), "a character device"),
    }
    sock.close()


SPECIAL = ["fifo", "symlink to a fifo", "socket", "/dev/zero", "/dev/null"]


class TestSpecialFiles:
    @pytest.mark.parametrize("name", SPECIAL)
    def test_api_refuses_at_once(self, special_files, name):
        path, kind = special_files[name]
        error, seconds = _within(10, lambda: load_image(path))
        assert seconds < 1
        assert isinstance(error, ValueError)
        assert re.fullmatch(rf"image file {re.escape(str(path))} is {kind}, not a regular file; pass the path "
                            r"of an image file", str(error))

    @pytest.mark.parametrize("name", SPECIAL)
    def test_cli_refuses_at_once(self, special_files, name, tmp_path, capsys):
        path, kind = special_files[name]
        argv = [*SMALL_ARGV, "--imgpath", str(path), "--targetpath", str(tmp_path / "out")]
        result: list[int] = []
        error, seconds = _within(10, lambda: result.append(main(argv)))
        assert error is None and seconds < 1 and result == [1]
        assert_one_line_error(capsys.readouterr().err, rf"is {kind}, not a regular file")

    @pytest.mark.parametrize("name", ["fifo", "socket", "/dev/zero"])
    def test_config_file_too(self, special_files, name, capsys):
        path, kind = special_files[name]
        error, seconds = _within(10, lambda: AugmentConfig.from_toml(path))
        assert seconds < 1 and isinstance(error, ValueError)
        assert re.match(rf"config file {re.escape(str(path))} is {kind}, not a regular file", str(error))
        code, err = _cli([*SMALL_ARGV, "--config", str(path)], capsys)
        assert code == 1
        assert_one_line_error(err, rf"config file .* is {kind}, not a regular file; pass the path of a config file$")


class _EmptyPath:
    def __fspath__(self) -> str:
        return ""


class TestPaths:
    @pytest.mark.parametrize("empty", ["", _EmptyPath()], ids=["str", "PathLike"])
    def test_empty(self, empty):
        # Path("") is ".", a directory: the message must say that the path is empty instead.
        with pytest.raises(ValueError, match=r"^image file path is empty; pass the path of an image file$"):
            load_image(empty)
        with pytest.raises(ValueError, match=r"^config file path is empty; pass the path of a config file$"):
            AugmentConfig.from_toml(empty)

    @pytest.mark.parametrize("flag", ["--imgpath", "--targetpath", "--config"])
    def test_empty_flags(self, flag, capsys):
        code, err = _cli([*SMALL_ARGV, flag, ""], capsys)
        assert code == 2
        assert_one_line_error(err, rf"argument {flag}: should be a path, got an empty string")

    def test_odd_paths(self, tmp_path):
        (tmp_path / "a_file").write_text("x")
        (tmp_path / "loop").symlink_to(tmp_path / "loop")
        (tmp_path / "dangling.png").symlink_to(tmp_path / "gone.png")
        with pytest.raises(FileNotFoundError, match=r"^image file not found: .*a_file/photo\.png$"):
            load_image(tmp_path / "a_file" / "photo.png")
        with pytest.raises(FileNotFoundError, match=r"^image file not found: .*dangling\.png$"):
            load_image(tmp_path / "dangling.png")
        with pytest.raises(OSError, match=r"^image file .*loop cannot be read: Too many levels of symbolic links$"):
            load_image(tmp_path / "loop")
        with pytest.raises(ValueError, match=r"^image file path 'a\\x00b\.png' holds a NUL character"):
            load_image("a\0b.png")
        with pytest.raises(OSError, match=r"^image file .* cannot be read: File name too long$"):
            load_image("x" * 5000)

    def test_config_directory_says_so(self, tmp_path, capsys):
        with pytest.raises(IsADirectoryError, match=r"is a directory; pass the path of a config file$"):
            AugmentConfig.from_toml(tmp_path)
        code, err = _cli([*SMALL_ARGV, "--config", str(tmp_path)], capsys)
        assert code == 1
        assert_one_line_error(err, rf"{re.escape(str(tmp_path))} is a directory; pass the path of a config file$")


class TestDecompressionBombs:
    @pytest.mark.parametrize(
        ("width", "height", "pixels"),
        [(50_000, 50_000, "2,500,000,000"), (9460, 9460, "89,491,600"), (200_000, 1, "200,000")],
    )
    def test_refused_with_the_size_and_the_limit(self, tmp_path, monkeypatch, width, height, pixels):
        if width * height < Image.MAX_IMAGE_PIXELS:  # a long sliver: over a lowered limit
            monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 150_000)
        path = tmp_path / "bomb.png"
        path.write_bytes(png_header(width, height))
        with pytest.raises(ValueError) as info:
            load_image(path)
        assert type(info.value) is ValueError  # not Pillow's DecompressionBombError
        limit = f"{Image.MAX_IMAGE_PIXELS:,}"
        assert re.fullmatch(
            rf"image file .*bomb\.png has {pixels} pixels, over Pillow's decompression-bomb limit of {limit}; if you "
            rf"trust the file, raise the limit deliberately before loading it \(in Python: PIL\.Image\."
            rf"MAX_IMAGE_PIXELS = {pixels.replace(',', '')}, or None for no limit\), or use a smaller copy of the "
            r"image",
            str(info.value),
        )

    @pytest.mark.parametrize(("width", "refused"), [(10, False), (11, True), (20, True), (21, True)])
    def test_the_warning_band_is_refused_too(self, tmp_path, monkeypatch, width, refused):
        # Limit 100 px: Pillow warns above 100 and raises above 200; both are refused, the limit itself is not.
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
        path = tmp_path / "small.png"
        Image.new("RGB", (width, 10), (1, 2, 3)).save(path)
        if refused:
            with pytest.raises(ValueError, match=rf"has {width * 10} pixels, over Pillow's decompression-bomb limit"):
                load_image(path)
        else:
            assert load_image(path).size == (width, 10)

    def test_raising_the_limit_deliberately_loads_it(self, tmp_path, monkeypatch):
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
        path = tmp_path / "small.png"
        Image.new("RGB", (30, 10), (1, 2, 3)).save(path)
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
        assert load_image(path).getpixel((0, 0)) == (1, 2, 3)

    def test_cli_one_line(self, tmp_path, capsys):
        path = tmp_path / "bomb.png"
        path.write_bytes(png_header(50_000, 50_000))
        code, err = _cli([*SMALL_ARGV, "--imgpath", str(path), "--targetpath", str(tmp_path / "out")], capsys)
        assert code == 1
        limit = r"bomb\.png has 2,500,000,000 pixels, over Pillow's decompression-bomb limit of [\d,]+; "
        assert_one_line_error(err, limit)


def _asymmetric() -> np.ndarray:
    """A 2x3 RGB image whose six pixels all differ, so every flip and turn of it is told apart."""
    return (np.arange(18, dtype=np.uint8).reshape(2, 3, 3) * 13 + 7).astype(np.uint8)


# The pixels stored for each EXIF orientation so that a viewer shows _asymmetric(), from the EXIF 2.3
# definitions ("row 0 is the visual top / right / bottom / left, column 0 the visual left / top ..."), not
# from Pillow's code: 6 is a camera turned clockwise, whose picture a viewer turns 90 degrees clockwise.
STORED = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1, :],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, 1),
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
    8: lambda a: np.rot90(a, -1),
}


def _with_orientation(path: Path, pixels: np.ndarray, orientation: int, **save: Any) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(np.ascontiguousarray(pixels)).save(path, exif=exif, **save)
    return path


class TestExifOrientation:
    @pytest.mark.parametrize("orientation", range(1, 9))
    def test_every_orientation_is_applied(self, tmp_path, orientation):
        upright = _asymmetric()
        stored = np.ascontiguousarray(STORED[orientation](upright))
        path = _with_orientation(tmp_path / "photo.png", stored, orientation)
        np.testing.assert_array_equal(np.asarray(load_image(path)), upright)
        with Image.open(path) as img:  # an opened PIL image too
            np.testing.assert_array_equal(np.asarray(load_image(img)), upright)
        np.testing.assert_array_equal(np.asarray(load_image(path, exif_orientation=False)), stored)

    def test_jpeg_orientation_6_from_the_cli(self, tmp_path, capsys):
        path = _with_orientation(tmp_path / "sideways.jpg", np.zeros((40, 60, 3), np.uint8), 6, quality=95)
        out = tmp_path / "out"
        assert main([*SMALL_ARGV, "--imgpath", str(path), "--targetpath", str(out)]) == 0
        assert "(40x60 px)" in capsys.readouterr().out  # stored 60x40, upright 40x60
        assert main([*SMALL_ARGV, "--imgpath", str(path), "--targetpath", str(out), "--no-exif-orientation"]) == 0
        assert "(60x40 px)" in capsys.readouterr().out

    def test_part_of_the_source_identity(self, tmp_path):
        photo = np.asarray(Image.open(SingleImageDataset(**SMALL).root).convert("RGB"))[:120, :200]
        path = _with_orientation(tmp_path / "photo.png", photo, 3)  # a half turn keeps the size
        upright, stored = (SingleImageDataset(path, num_imgs=2, img_size=16, exif_orientation=flag)
                           for flag in (True, False))
        assert pixel_sha256(upright.source) != pixel_sha256(stored.source)
        manifests = []
        for name, ds in (("upright", upright), ("stored", stored)):
            materialize(ds, tmp_path / name, image_format="png")
            manifests.append(json.loads((tmp_path / name / "manifest.json").read_text())["dataset"]["sources"][0])
        assert manifests[0]["pixel_sha256"] == pixel_sha256(upright.source) != manifests[1]["pixel_sha256"]
        with pytest.raises(FileExistsError, match=r"different export \(sources\.0\.pixel_sha256 "):  # the other setting
            materialize(stored, tmp_path / "upright", image_format="png")

    def test_unreadable_exif_is_one_error(self, tmp_path):
        png = tmp_path / "plain.png"
        Image.new("RGB", (4, 4), (9, 9, 9)).save(png)
        data = png.read_bytes()
        exif = b"MM\x00*"  # a TIFF header cut before its first offset
        chunk = struct.pack(">I", len(exif)) + b"eXIf" + exif + struct.pack(">I", zlib.crc32(b"eXIf" + exif))
        path = tmp_path / "bad_exif.png"
        path.write_bytes(data[:33] + chunk + data[33:])  # after the signature and IHDR
        with pytest.raises(ValueError, match=r"^image file .*bad_exif\.png has unreadable EXIF data \(.*\); pass "
                                             r"exif_orientation=False \(--no-exif-orientation\) to use its pixels "
                                             r"as stored$"):
            load_image(path)
        assert load_image(path, exif_orientation=False).getpixel((0, 0)) == (9, 9, 9)

    def test_flag_type(self):
        with pytest.raises(TypeError, match=r"^exif_orientation should be True or False, got 'no'$"):
            load_image(None, exif_orientation="no")


def _image_16(mode: str, values: np.ndarray) -> Image.Image:
    dtype = {"I;16": "<u2", "I;16B": ">u2", "I;16L": "<u2", "I;16N": "=u2"}[mode]
    return Image.frombytes(mode, values.shape[::-1], values.astype(dtype).tobytes())


GREY16 = np.array([[0, 1, 128, 129], [257, 32767, 65534, 65535]])


def _rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(np.asarray(grey, dtype=np.uint8)[..., None], 3, axis=2)


def _mode_cases() -> dict[str, tuple[Image.Image, np.ndarray, int]]:
    """Every mode: an image of it, the RGB pixels the documented rule gives, and the tolerance in levels."""
    palette = Image.new("P", (2, 1))
    palette.putpalette([10, 20, 30, 200, 100, 50])
    palette.putdata([0, 1])
    palette.info["transparency"] = bytes([0, 255])
    pa = Image.merge("PA", (palette.copy(), Image.new("L", (2, 1), 0)))
    pa.putpalette([10, 20, 30, 200, 100, 50])
    lab = Image.new("LAB", (3, 1))
    for x, lightness in enumerate((0, 128, 255)):
        lab.putpixel((x, 0), (lightness, 128, 128))  # a = b = 0: neutral
    hsv = Image.new("HSV", (3, 1))
    for x, value in enumerate(((0, 255, 255), (85, 255, 255), (0, 0, 0))):
        hsv.putpixel((x, 0), value)
    return {
        "1": (Image.fromarray(np.array([[True, False]])), _rgb([[255, 0]]), 0),
        "L": (Image.fromarray(np.array([[0, 77, 255]], np.uint8)), _rgb([[0, 77, 255]]), 0),
        "LA": (Image.new("LA", (2, 1), (90, 0)), _rgb([[90, 90]]), 0),
        # Premultiplied: the stored 100 at alpha 128 is the colour 100 * 255 / 128.
        "La": (Image.new("La", (1, 1), (100, 128)), _rgb([[199]]), 1),
        "P": (palette, np.array([[[10, 20, 30], [200, 100, 50]]], np.uint8), 0),
        "PA": (pa, np.array([[[10, 20, 30], [200, 100, 50]]], np.uint8), 0),
        "RGB": (Image.new("RGB", (1, 1), (1, 2, 3)), np.array([[[1, 2, 3]]], np.uint8), 0),
        "RGBA": (Image.new("RGBA", (1, 1), (10, 200, 30, 0)), np.array([[[10, 200, 30]]], np.uint8), 0),
        "RGBa": (Image.new("RGBa", (1, 1), (50, 100, 128, 128)), np.array([[[100, 199, 255]]], np.uint8), 1),
        "RGBX": (Image.new("RGBX", (1, 1), (4, 5, 6, 99)), np.array([[[4, 5, 6]]], np.uint8), 0),
        # Without black ink, CMYK is the complement of RGB.
        "CMYK": (Image.new("CMYK", (2, 1), (55, 0, 255, 0)), np.array([[[200, 255, 0]] * 2], np.uint8), 0),
        "YCbCr": (Image.new("YCbCr", (1, 1), (140, 128, 128)), _rgb([[140]]), 1),
        # CIELAB L* 0, 50, 100 with a* = b* = 0: black, the sRGB grey of L* 50 (119), white.
        "LAB": (lab, _rgb([[0, 119, 255]]), 2),
        "HSV": (hsv, np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 0]]], np.uint8), 1),
        **{
            mode: (_image_16(mode, GREY16), _rgb(np.rint(GREY16 / 257)), 0)
            for mode in ("I;16", "I;16B", "I;16L", "I;16N")
        },
        "I": (Image.fromarray(GREY16.astype(np.int32)), _rgb(np.rint(GREY16 / 257)), 0),
        "F": (
            Image.fromarray(np.array([[0.0, 0.5, 0.999, 1.0]], np.float32)),
            _rgb([[0, 128, 255, 255]]),
            0,
        ),
    }


class TestModes:
    def test_every_pillow_mode_has_a_rule(self):
        assert set(_mode_cases()) == set(Image.MODES)

    @pytest.mark.parametrize("mode", sorted(_mode_cases()))
    def test_rule(self, mode):
        img, expected, atol = _mode_cases()[mode]
        assert img.mode == mode
        got = load_image(img)
        assert got.mode == "RGB"
        np.testing.assert_allclose(np.asarray(got, dtype=int), expected.astype(int), atol=atol, rtol=0)

    @pytest.mark.parametrize(
        ("values", "match"),
        [
            (np.array([[0.0, 1.5]]), r"\), read as grey in \[0, 1\]: got values in \[0, 1\.5\]; divide 0-255 data "
                                     r"by 255 \(or pass img\.convert\('L'\)\)$"),
            (np.array([[-0.1, 0.5]]), r"\), read as grey in \[0, 1\]: got values in \[-0\.1, 0\.5\]; "),
            (np.array([[0.0, 255.0]]), r"\), read as grey in \[0, 1\]: got values in \[0, 255\]; "),
            (np.array([[0.0, np.nan]]), r"\) with NaN or infinite values; replace them first$"),
            (np.array([[0.0, np.inf]]), r"\) with NaN or infinite values; replace them first$"),
        ],
    )
    def test_float_out_of_range_is_refused(self, values, match):
        with pytest.raises(ValueError, match=rf"^image has mode F \(floating point{match}"):
            load_image(Image.fromarray(values.astype(np.float32)))

    @pytest.mark.parametrize("bad", [-1, 65536, 2**31 - 1])
    def test_32bit_out_of_range_is_refused(self, bad):
        got = rf"\[{min(bad, 0)}, {max(bad, 0)}\]"
        with pytest.raises(ValueError, match=rf"^image has mode I \(32-bit integers\), read as 16-bit grey: its "
                                             rf"values should be in \[0, 65535\], got {got}; scale it to 8 bits"):
            load_image(Image.fromarray(np.array([[0, bad]], np.int32)))

    def test_float_image_in_unit_range_is_not_black(self, tmp_path):
        # The instance: a [0, 1] float image used to become all black. From a TIFF file as well.
        ramp = np.linspace(0, 1, 64 * 48, dtype=np.float32).reshape(48, 64)
        path = tmp_path / "ramp.tif"
        Image.fromarray(ramp).save(path)
        source = np.asarray(SingleImageDataset(path, **SMALL).source)
        np.testing.assert_array_equal(source[..., 1], np.rint(ramp * 255).astype(np.uint8))

    @pytest.mark.parametrize(("channels", "mode"), [(1, "L"), (2, "LA"), (3, "RGB"), (4, "RGBA")])
    @pytest.mark.parametrize("kind", ["array", "tensor"])
    def test_arrays_follow_the_rule_of_the_mode_of_their_channels(self, channels, mode, kind):
        pixels = np.random.default_rng(channels).integers(0, 256, (5, 7, channels), dtype=np.uint8)
        pixels[0, 0] = [90, 0, 10, 0][:channels]  # transparent: the colour is kept as stored all the same
        as_pil = Image.fromarray(pixels[..., 0] if channels == 1 else pixels)
        assert as_pil.mode == mode
        image = pixels if kind == "array" else torch.from_numpy(pixels).permute(2, 0, 1)
        got = load_image(image)
        assert got.mode == "RGB" and got.size == (7, 5)
        assert got.tobytes() == load_image(as_pil).tobytes()  # the PIL mode's rule, byte for byte
        rgb = np.repeat(pixels[..., :1], 3, axis=2) if channels <= 2 else pixels[..., :3]  # alpha dropped
        np.testing.assert_array_equal(np.asarray(got), rgb)

    def test_a_mode_without_a_rule_is_refused(self, monkeypatch):
        monkeypatch.setattr(source, "_CONVERTED", tuple(m for m in source._CONVERTED if m != "HSV"))
        with pytest.raises(ValueError, match=r"^image has the Pillow mode 'HSV', which has no rule here; convert it"):
            load_image(Image.new("HSV", (2, 2)))


class TestBounds:
    def test_img_size(self):
        assert AugmentConfig(img_size=MAX_IMG_SIZE).img_size == 8192
        for size in (MAX_IMG_SIZE + 1, 100_000, 10**30):
            with pytest.raises(ValueError, match=rf"^img_size should be in \[1, 8192\] pixels, got {size}$"):
                AugmentConfig(img_size=size)
            with pytest.raises(ValueError, match=r"^img_size should be in \[1, 8192\] pixels"):
                SingleImageDataset(img_size=size)

    def test_num_imgs_up_to_what_len_can_hold(self):
        ds = SingleImageDataset(num_imgs=sys.maxsize, img_size=32)
        assert len(ds) == sys.maxsize and ds.params(-1) == ds.params(sys.maxsize - 1)
        for n in (sys.maxsize + 1, 2**64, 10**30):
            with pytest.raises(ValueError, match=rf"^num_imgs should be in \[1, {sys.maxsize}\] \(sys\.maxsize, the "
                                                 rf"most len\(\) can return\), got {n}$"):
                AugmentConfig(num_imgs=n)

    def test_set_epoch(self):
        ds = SingleImageDataset(**SMALL)
        ds.set_epoch(2**63 - 1)
        assert ds.epoch == 2**63 - 1 and ds.params(0) != SingleImageDataset(**SMALL).params(0)
        for epoch in (2**63, 10**30, -1):
            with pytest.raises(ValueError, match=rf"^epoch should be an integer in \[0, 2\*\*63\), got {epoch}$"):
                ds.set_epoch(epoch)
        for epoch in ("1", 1.0, None):
            with pytest.raises(TypeError, match=rf"^epoch should be an integer, got {type(epoch).__name__}$"):
                ds.set_epoch(epoch)
        assert ds.epoch == 2**63 - 1

    @pytest.mark.parametrize(
        ("argv", "code", "pattern"),
        [
            (["--img_size", "100000"], 1, r"img_size should be in \[1, 8192\] pixels, got 100000$"),
            (["--img_size", str(10**30)], 1, r"img_size should be in \[1, 8192\] pixels, got 10{30}$"),
            (["--num_imgs", str(2**63)], 1, r"num_imgs should be in \[1, \d+\] .*, got 9223372036854775808$"),
            (["--seed", str(2**70)], 1, r"seed should be in \[0, 2\*\*63\), got 1180591620717411303424$"),
            (["--deg", "1e400"], 1, r"deg should be in \[0, 180\] degrees, got inf$"),
            (["--threads", str(10**30)], 2, r"argument --threads: should be in \[1, 1024\], got 10{30}"),
            (["--quality", str(10**30)], 2, r"argument --quality: should be in \[1, 100\]"),
        ],
    )
    def test_huge_values_in_the_cli(self, argv, code, pattern, tmp_path, capsys):
        status, err = _cli([*SMALL_ARGV, "--targetpath", str(tmp_path), *argv], capsys)
        assert status == code
        assert_one_line_error(err, pattern)


class TestWrongTypes:
    @pytest.mark.parametrize(
        ("image", "match"),
        [
            (torch.zeros(5, 5, 6, dtype=torch.uint8), r"should be uint8 3xHxW \(CHW; or HxW, 1xHxW, 2xHxW, 4xHxW\), "
                                                      r"got shape \(5, 5, 6\)$"),
            (torch.zeros(5, 6, 3, dtype=torch.uint8), r"got shape \(5, 6, 3\)$"),
            (torch.zeros(1, 3, 5, 6, dtype=torch.uint8), r"got shape \(1, 3, 5, 6\)$"),
            (torch.zeros(6, dtype=torch.uint8), r"got shape \(6,\)$"),
            (np.zeros((3, 5, 6), np.uint8), r"should be uint8 HxWx3 \(or HxW, HxWx1, HxWx2, HxWx4\), got shape "
                                            r"\(3, 5, 6\)$"),
            (np.zeros((2, 5, 6, 3), np.uint8), r"got shape \(2, 5, 6, 3\)$"),
            (np.zeros((5, 6, 5), np.uint8), r"got shape \(5, 6, 5\)$"),
            (torch.zeros(3, 5, 6, dtype=torch.uint8, device="meta"), r"^image tensor is on the meta device"),
            (torch.zeros(3, 5, 6, dtype=torch.uint8).to_sparse(), r"^image tensor should be dense \(torch\.strided\), "
                                                                  r"got torch\.sparse_coo"),
            (b"photo.png", r"^image should be a path, a PIL image, a uint8 numpy array or tensor, or None, got bytes$"),
            ([[0, 1]], r"got list$"),
        ],
    )
    def test_images(self, image, match):
        with pytest.raises(TypeError, match=match):
            load_image(image)

    @pytest.mark.parametrize("config", [{}, {"img_size": 32}, "configs/cifar32.toml", 32])
    def test_config_that_is_not_an_augment_config(self, config):
        # {} is falsy: it must not silently mean "the default config".
        with pytest.raises(TypeError, match=rf"^config should be an AugmentConfig, got {type(config).__name__}; build "
                                            r"one with AugmentConfig\.from_dict\(\.\.\.\) or AugmentConfig\.from_toml"):
            SingleImageDataset(config=config)

    @pytest.mark.parametrize(
        ("keywords", "error", "match"),
        [
            ({"backend": ["fast"]}, ValueError, r"^unknown backend \['fast'\]; available backends: reference"),
            ({"backend": 3}, ValueError, r"^unknown backend 3; available backends: "),
            ({"output": None}, ValueError, r"^output should be one of 'pil', 'tensor', got None$"),
            ({"exif_orientation": None}, TypeError, r"^exif_orientation should be True or False, got None$"),
            ({"img_size": "32"}, TypeError, r"^img_size should be an integer, got '32'$"),
        ],
    )
    def test_other_arguments(self, keywords, error, match):
        with pytest.raises(error, match=match):
            SingleImageDataset(**keywords)

    def test_from_dict_needs_a_mapping(self):
        with pytest.raises(TypeError, match=r"^values should be a mapping of AugmentConfig fields, got list$"):
            AugmentConfig.from_dict([("img_size", 32)])
        with pytest.raises(ValueError, match=r"^unknown key 1 in config"):
            AugmentConfig.from_dict({1: 2, "img_size": 32})
