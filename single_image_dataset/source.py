"""Loading the source image: paths, PIL images, arrays and tensors, all turned into one RGB image."""

from __future__ import annotations

import hashlib
import os
import re
import struct
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ._files import open_regular_file

__all__ = ["DEFAULT_IMAGE", "HUBBLE_IMAGE", "ImageLike", "Source", "load_image", "load_sources", "pixel_sha256"]

ImageLike = str | os.PathLike | Image.Image | np.ndarray | torch.Tensor

_DATA = resources.files(__package__) / "data"

#: The embedded default source: "Coffee cup" by Rachel Michetti, courtesy of Pikolo Espresso Bar (CC0), a 600x400
#: PNG. A photograph with a clear "up" and texture, so the rotation, the shear and the black fill show in a preview.
DEFAULT_IMAGE: Path = Path(str(_DATA / "coffee.png"))

#: The Hubble eXtreme Deep Field (NASA/ESA, public domain), a 1000x872 JPEG and the former default. A deep-sky
#: field has no "up": rotation prediction (RotNet) does not learn from it.
HUBBLE_IMAGE: Path = Path(str(_DATA / "hubble_deep_field.jpg"))

# How each Pillow mode becomes RGB (the table in load_image's docstring); a mode not named here is refused.
_GREY16 = ("I;16", "I;16B", "I;16L", "I;16N")
_CONVERTED = ("1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV")
# Pillow has no La -> RGB conversion, and warns when a palette with transparency goes straight to RGB.
_VIA = {"La": "LA", "P": "RGBA", "PA": "RGBA"}

# Pillow's decompression-bomb messages name the pixel count: "Image size (N pixels) exceeds limit of ...".
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")


def load_image(image: ImageLike | None, *, exif_orientation: bool = True) -> Image.Image:
    """Return ``image`` as a loaded RGB PIL image.

    Every Pillow mode is turned into RGB by a fixed rule that does not depend on the content:

    ========================================  ==================================================================
    mode                                      rule
    ========================================  ==================================================================
    ``RGB``                                   as is
    ``1``, ``L``                              grey to RGB (``1``: 0 or 255)
    ``P``                                     the palette's colours; its transparency is dropped
    ``LA``, ``La``, ``PA``, ``RGBA``,         alpha dropped, colours kept as stored (premultiplied ``La``,
    ``RGBa``                                  ``RGBa`` divided by alpha first): ``convert("RGB")`` as the original
    ``RGBX``                                  padding dropped
    ``CMYK``                                  Pillow's conversion, without an ICC profile
    ``YCbCr``                                 JPEG's YCbCr to RGB
    ``LAB``                                   CIELAB to sRGB (Pillow's conversion)
    ``HSV``                                   HSV to RGB
    ``I;16``, ``I;16B``, ``I;16L``, ``I;16N``  16-bit grey, scaled by 1/257 and rounded (65535 becomes 255)
    ``I``                                     32-bit integers read as 16-bit grey: values must be in
                                              [0, 65535], then scaled like ``I;16``
    ``F``                                     floating-point grey in [0, 1], scaled by 255 and rounded; values
                                              outside [0, 1], NaN and infinities are refused
    ========================================  ==================================================================

    ``I`` and ``F`` are refused outside their range rather than clipped or stretched: a clip would
    silently turn 0-255 float data white, and a stretch to the image's own minimum and maximum would
    make one value mean different colours in different images.

    A ``uint8`` array or tensor is read as the mode of its channels and follows that mode's rule:
    1 channel (or none) is ``L``, 2 are ``LA``, 3 are ``RGB`` and 4 are ``RGBA`` (so an alpha channel
    is dropped, as for the PIL image of the same pixels).

    A file is opened only if it is a regular file (a FIFO or a device is refused at once) and only if
    its pixel count is within Pillow's decompression-bomb limit, ``PIL.Image.MAX_IMAGE_PIXELS``:
    above it, where Pillow itself merely warns up to twice the limit, it is refused too, since a
    dataset from a photograph of a hundred megapixels or more should be a deliberate choice. Raise
    the limit in Python to load such a file.

    Args:
        image: a path, a PIL image of any mode, a ``uint8`` array ``H x W x C`` (or ``H x W``),
            a ``uint8`` tensor ``C x H x W`` (or ``H x W``) with ``C`` channels, 1 to 4, or ``None``
            for the embedded default image.
        exif_orientation: turn a file or PIL image upright by its EXIF orientation tag (1-8), as photo
            viewers and ``PIL.ImageOps.exif_transpose`` do; ``False`` keeps the pixels as stored.

    Raises:
        FileNotFoundError: the path does not exist.
        IsADirectoryError: the path is a directory.
        PermissionError: the file may not be read.
        ValueError: the path is empty or not a regular file; the file is not a readable image, is
            truncated or corrupt, or is over the decompression-bomb limit; a mode ``I`` or ``F`` image
            is out of range; or the mode is unknown.
        TypeError: an array or tensor of the wrong dtype or shape, or another type altogether.

    Example:
        >>> load_image(None).size, load_image(HUBBLE_IMAGE).size
        ((600, 400), (1000, 872))
        >>> load_image(torch.zeros(3, 4, 5, dtype=torch.uint8)).size  # 3 x H x W
        (5, 4)
        >>> load_image(np.zeros((4, 5), dtype=np.uint8)).mode  # greyscale becomes RGB
        'RGB'
        >>> load_image(np.full((4, 5, 4), 200, dtype=np.uint8)).getpixel((0, 0))  # RGBA: alpha dropped
        (200, 200, 200)
        >>> white16 = Image.fromarray(np.full((2, 2), 65535, dtype=np.uint16))  # 16-bit: scaled, not clipped
        >>> white16.mode, load_image(white16).getpixel((0, 0))
        ('I;16', (255, 255, 255))
        >>> load_image(Image.fromarray(np.full((2, 2), 0.5, dtype=np.float32))).getpixel((0, 0))  # F: [0, 1]
        (128, 128, 128)
        >>> load_image(np.zeros((4, 5, 3)))
        Traceback (most recent call last):
            ...
        TypeError: image array should be uint8 HxWx3 (or HxW, HxWx1, HxWx2, HxWx4), got dtype float64
        >>> load_image("no_such_photo.jpg")
        Traceback (most recent call last):
            ...
        FileNotFoundError: image file not found: no_such_photo.jpg
    """
    if not isinstance(exif_orientation, bool):
        raise TypeError(f"exif_orientation should be True or False, got {exif_orientation!r}")
    if image is None:
        image = DEFAULT_IMAGE
    if isinstance(image, (str, os.PathLike)):
        return _open(image, exif_orientation)
    if isinstance(image, Image.Image):
        return _to_rgb(_upright(image, exif_orientation, "image"), "image")
    if isinstance(image, torch.Tensor):
        return _from_tensor(image)
    if isinstance(image, np.ndarray):
        return _from_array(image, "HxWx3 (or HxW, HxWx1, HxWx2, HxWx4)", tuple(image.shape))
    raise TypeError(
        f"image should be a path, a PIL image, a uint8 numpy array or tensor, or None, got {type(image).__name__}"
    )


def pixel_sha256(image: Image.Image) -> str:
    """SHA-256 of an RGB image's size and pixels: identifies a source whatever its file encoding.

    Example:
        >>> import io
        >>> image = load_image(None)
        >>> as_bmp = io.BytesIO()
        >>> image.save(as_bmp, format="BMP")
        >>> pixel_sha256(load_image(Image.open(as_bmp))) == pixel_sha256(image)
        True
        >>> pixel_sha256(image.rotate(180)) == pixel_sha256(image)
        False
    """
    digest = hashlib.sha256(f"{image.width}x{image.height}:".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def _open(path: str | os.PathLike[str], exif_orientation: bool) -> Image.Image:
    what = f"image file {os.fsdecode(path)}"
    with open_regular_file(path, "image file") as file:
        try:
            with warnings.catch_warnings():
                # Refuse the band where Pillow only warns as well (see load_image).
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(file) as img:
                    img.load()
                    return _to_rgb(_upright(img, exif_orientation, what), what)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ValueError(_bomb_message(what, exc)) from None
        except UnidentifiedImageError:
            raise ValueError(f"{os.fsdecode(path)} is not an image file that Pillow can read") from None
        except (OSError, SyntaxError) as exc:  # PIL reports truncated and corrupt data this way
            raise ValueError(f"{what} is truncated or corrupt ({exc}); re-export or re-download it") from None


def _bomb_message(what: str, exc: Exception) -> str:
    found = _BOMB_PIXELS.search(str(exc))
    pixels = int(found.group(1)) if found else None
    size = f"{pixels:,} pixels" if pixels else "more pixels"
    return (
        f"{what} has {size}, over Pillow's decompression-bomb limit of {Image.MAX_IMAGE_PIXELS:,}; if you trust "
        f"the file, raise the limit deliberately before loading it (in Python: PIL.Image.MAX_IMAGE_PIXELS = "
        f"{pixels or 'N'}, or None for no limit), or use a smaller copy of the image"
    )


def _upright(img: Image.Image, exif_orientation: bool, what: str) -> Image.Image:
    if not exif_orientation:
        return img
    try:
        return ImageOps.exif_transpose(img)
    except (ValueError, TypeError, KeyError, IndexError, struct.error, SyntaxError) as exc:
        raise ValueError(
            f"{what} has unreadable EXIF data ({exc}); pass exif_orientation=False (--no-exif-orientation) to use "
            "its pixels as stored"
        ) from None


def _to_rgb(img: Image.Image, what: str) -> Image.Image:
    mode = img.mode
    if mode in _GREY16:
        return _grey(np.asarray(img, dtype=np.float64) / 257.0)
    if mode == "I":
        values = np.asarray(img, dtype=np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ValueError(
                f"{what} has mode I (32-bit integers), read as 16-bit grey: its values should be in [0, 65535], "
                f"got [{values.min()}, {values.max()}]; scale it to 8 bits yourself and pass an L or RGB image"
            )
        return _grey(values / 257.0)
    if mode == "F":
        values = np.asarray(img, dtype=np.float64)
        if not np.isfinite(values).all():
            raise ValueError(f"{what} has mode F (floating point) with NaN or infinite values; replace them first")
        if values.size and (values.min() < 0 or values.max() > 1):
            raise ValueError(
                f"{what} has mode F (floating point), read as grey in [0, 1]: got values in "
                f"[{values.min():g}, {values.max():g}]; divide 0-255 data by 255 (or pass img.convert('L'))"
            )
        return _grey(values * 255.0)
    if mode not in _CONVERTED:
        raise ValueError(f"{what} has the Pillow mode {mode!r}, which has no rule here; convert it to RGB first")
    if mode in _VIA:
        img = img.convert(_VIA[mode])
    # convert() copies even an RGB image, so the result never aliases the caller's or a closed file.
    return img.convert("RGB")


def _grey(values: np.ndarray) -> Image.Image:
    """An RGB image from grey levels already on the 0-255 scale."""
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8)).convert("RGB")


def _from_tensor(tensor: torch.Tensor) -> Image.Image:
    shape = tuple(tensor.shape)
    layout = "3xHxW (CHW; or HxW, 1xHxW, 2xHxW, 4xHxW)"
    if tensor.dtype != torch.uint8:
        raise TypeError(
            f"image tensor should be uint8 {layout}, got dtype {tensor.dtype}; "
            "convert with (x * 255).round().to(torch.uint8)"
        )
    if tensor.is_meta:
        raise TypeError("image tensor is on the meta device, which holds no data; pass a CPU or CUDA tensor")
    if tensor.layout != torch.strided:
        raise TypeError(f"image tensor should be dense (torch.strided), got {tensor.layout}; pass tensor.to_dense()")
    tensor = tensor.detach().cpu()
    if tensor.ndim == 3:
        tensor = tensor.permute(1, 2, 0)
    return _from_array(tensor.numpy(), layout, shape)


def _from_array(array: np.ndarray, layout: str, shape: tuple[int, ...]) -> Image.Image:
    """``array`` laid out ``HxW`` or ``HxWxC``; ``layout`` and ``shape`` are the caller's, for the messages."""
    if array.dtype != np.uint8:
        raise TypeError(f"image array should be uint8 {layout}, got dtype {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and 2 <= array.shape[2] <= 4)):
        raise TypeError(f"image array should be uint8 {layout}, got shape {shape}")
    # Pillow reads 1, 2, 3 and 4 channels as L, LA, RGB and RGBA; their rules make them RGB.
    return _to_rgb(Image.fromarray(np.ascontiguousarray(array)), "image")


@dataclass(frozen=True)
class Source:
    """One source image of a dataset.

    Attributes:
        name: the name it was given in a mapping, else the file's stem, or ``image_<k>`` for an image
            given in memory; unique within a dataset.
        image: the loaded RGB image.
        path: the file it was read from, or ``None``.
    """

    name: str
    image: Image.Image
    path: Path | None


def load_sources(
    images: ImageLike | Sequence[ImageLike] | Mapping[str, ImageLike] | None, *, exif_orientation: bool = True
) -> list[Source]:
    """The source images of a dataset: one image, a list or a mapping of them, or a directory's images.

    A list may mix paths, PIL images, arrays and tensors (each as for :func:`load_image`); a directory
    contributes its regular files whose extension Pillow knows (``.jpg``, ``.png``, ...), sorted by name.
    Names are the files' stems (``image_<k>`` for in-memory images, ``k`` its position), made unique
    with a ``_2``, ``_3``... suffix. A mapping ``{name: image}`` names its sources itself, in the
    mapping's order (a ``dict``'s insertion order). ``exif_orientation`` is passed to :func:`load_image`
    for each.

    Raises:
        ValueError: an empty list or mapping, a directory without image files, or an empty name.
        TypeError: a name that is not a string.
        FileNotFoundError, ValueError, TypeError, ...: as :func:`load_image`, naming the file or the
            source at fault.

    Example:
        >>> [(s.name, s.image.size) for s in load_sources([DEFAULT_IMAGE, HUBBLE_IMAGE, DEFAULT_IMAGE])]
        [('coffee', (600, 400)), ('hubble_deep_field', (1000, 872)), ('coffee_2', (600, 400))]
        >>> [s.name for s in load_sources({"cup": DEFAULT_IMAGE, "stars": np.zeros((8, 8, 4), np.uint8)})]
        ['cup', 'stars']
    """
    if isinstance(images, Mapping):
        named = [(_check_name(name), item) for name, item in images.items()]
        if not named:
            raise ValueError("the mapping of source images is empty; pass at least one name: image pair")
    else:
        named = [(None, item) for item in _unnamed(images)]
    names: set[str] = set()
    sources = []
    for k, (given, item) in enumerate(named):
        path = _path_of(item)
        stem = given or (path.stem if path is not None else f"image_{k}")
        name, n = stem, 1
        while name in names:
            n += 1
            name = f"{stem}_{n}"
        names.add(name)
        try:
            image = load_image(item, exif_orientation=exif_orientation)
        except (TypeError, ValueError) as exc:
            if path is not None or (given is None and len(named) == 1):  # a file's message names it
                raise
            error = TypeError if isinstance(exc, TypeError) else ValueError
            raise error(f"source {k} ({name}): {exc}") from None
        sources.append(Source(name, image, path))
    return sources


def _unnamed(images: ImageLike | Sequence[ImageLike] | None) -> list[ImageLike | None]:
    """The images of one image, a list of them or a directory."""
    if isinstance(images, (str, os.PathLike)) and os.fspath(images) and Path(images).is_dir():
        return list(_directory_images(Path(images)))
    if isinstance(images, (list, tuple)):
        if not images:
            raise ValueError("the list of source images is empty; pass at least one image")
        return list(images)
    return [images]


def _check_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"source names should be non-empty strings, got {name!r} ({type(name).__name__})")
    if not name.strip():
        raise ValueError(f"source names should be non-empty strings, got {name!r}")
    return name


def _path_of(item: ImageLike | None) -> Path | None:
    if item is None:
        return DEFAULT_IMAGE
    return Path(item) if isinstance(item, (str, os.PathLike)) else None


def _directory_images(folder: Path) -> list[Path]:
    extensions = {ext.lower() for ext in Image.registered_extensions()}
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in extensions and p.is_file())
    if not files:
        raise ValueError(
            f"directory {folder} holds no image files (none with an extension Pillow reads, such as .jpg or .png)"
        )
    return files
