"""Loading the source image: paths, PIL images, arrays and tensors, all turned into one RGB image."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

__all__ = ["DEFAULT_IMAGE", "HUBBLE_IMAGE", "ImageLike", "Source", "load_image", "load_sources", "pixel_sha256"]

ImageLike = str | os.PathLike | Image.Image | np.ndarray | torch.Tensor

_DATA = resources.files(__package__) / "data"

#: The embedded default source: "Coffee cup" by Rachel Michetti, courtesy of Pikolo Espresso Bar (CC0), a 600x400
#: PNG. A photograph with a clear "up" and texture, so the rotation, the shear and the black fill show in a preview.
DEFAULT_IMAGE: Path = Path(str(_DATA / "coffee.png"))

#: The Hubble eXtreme Deep Field (NASA/ESA, public domain), a 1000x872 JPEG and the former default. A deep-sky
#: field has no "up": rotation prediction (RotNet) does not learn from it.
HUBBLE_IMAGE: Path = Path(str(_DATA / "hubble_deep_field.jpg"))

# Modes holding more than 8 bits per pixel; PIL's convert("RGB") would clip them at 255.
_WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def load_image(image: ImageLike | None) -> Image.Image:
    """Return ``image`` as a loaded RGB PIL image.

    Args:
        image: a path, a PIL image of any mode, a ``uint8`` array ``H x W x 3`` (or ``H x W``),
            a ``uint8`` tensor ``3 x H x W`` (or ``1 x H x W`` / ``H x W``), or ``None`` for the
            embedded default image.

    Raises:
        FileNotFoundError: the path does not exist.
        IsADirectoryError: the path is a directory.
        PermissionError: the file may not be read.
        ValueError: the file is not a readable image, or is truncated or corrupt.
        TypeError: an array or tensor of the wrong dtype or shape, or another type altogether.

    Example:
        >>> load_image(None).size, load_image(HUBBLE_IMAGE).size
        ((600, 400), (1000, 872))
        >>> load_image(torch.zeros(3, 4, 5, dtype=torch.uint8)).size  # 3 x H x W
        (5, 4)
        >>> load_image(np.zeros((4, 5), dtype=np.uint8)).mode  # greyscale becomes RGB
        'RGB'
        >>> white16 = Image.fromarray(np.full((2, 2), 65535, dtype=np.uint16))  # 16-bit: scaled, not clipped
        >>> white16.mode, load_image(white16).getpixel((0, 0))
        ('I;16', (255, 255, 255))
        >>> load_image(np.zeros((4, 5, 3)))
        Traceback (most recent call last):
            ...
        TypeError: image array should be uint8 HxWx3, got dtype float64
        >>> load_image("no_such_photo.jpg")
        Traceback (most recent call last):
            ...
        FileNotFoundError: image file not found: no_such_photo.jpg
    """
    if image is None:
        image = DEFAULT_IMAGE
    if isinstance(image, (str, os.PathLike)):
        return _open(Path(image))
    if isinstance(image, Image.Image):
        return _to_rgb(image)
    if isinstance(image, torch.Tensor):
        if image.dtype != torch.uint8:
            raise TypeError(
                f"image tensor should be uint8 with shape 3xHxW, got dtype {image.dtype}; "
                "convert with (x * 255).round().to(torch.uint8)"
            )
        tensor = image.detach().cpu()
        if tensor.ndim == 3:
            tensor = tensor.permute(1, 2, 0)
        return _from_array(tensor.numpy(), layout="3xHxW (CHW)")
    if isinstance(image, np.ndarray):
        return _from_array(image, layout="HxWx3")
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


def _open(path: Path) -> Image.Image:
    if not path.exists():
        raise FileNotFoundError(f"image file not found: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; pass the path of an image file")
    try:
        with Image.open(path) as img:
            img.load()
            return _to_rgb(img)
    except PermissionError:
        raise PermissionError(f"image file {path} cannot be read: permission denied; check its permissions") from None
    except UnidentifiedImageError:
        raise ValueError(f"{path} is not an image file that Pillow can read") from None
    except (OSError, SyntaxError) as exc:  # PIL reports truncated and corrupt data this way
        raise ValueError(f"image file {path} is truncated or corrupt ({exc}); re-export or re-download it") from None


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in _WIDE_MODES:
        # 16-bit greyscale: map 0..65535 onto 0..255 instead of clipping like convert("RGB").
        wide = np.asarray(img, dtype=np.float64)
        img = Image.fromarray(np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8))
    # convert() copies even an RGB image, so the result never aliases the caller's or a closed file.
    return img.convert("RGB")


def _from_array(array: np.ndarray, layout: str) -> Image.Image:
    if array.dtype != np.uint8:
        raise TypeError(f"image array should be uint8 {layout}, got dtype {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise TypeError(f"image array should be uint8 {layout} (or greyscale), got shape {tuple(array.shape)}")
    return Image.fromarray(np.ascontiguousarray(array)).convert("RGB")


@dataclass(frozen=True)
class Source:
    """One source image of a dataset.

    Attributes:
        name: the file's stem, or ``image_<k>`` for an image given in memory; unique within a dataset.
        image: the loaded RGB image.
        path: the file it was read from, or ``None``.
    """

    name: str
    image: Image.Image
    path: Path | None


def load_sources(images: ImageLike | Sequence[ImageLike] | None) -> list[Source]:
    """The source images of a dataset: one image, a list of them, or a directory's images in sorted order.

    A list may mix paths, PIL images, arrays and tensors (each as for :func:`load_image`); a directory
    contributes its regular files whose extension Pillow knows (``.jpg``, ``.png``, ...), sorted by name.
    Names are the files' stems (``image_<k>`` for in-memory images, ``k`` its position), made unique
    with a ``_2``, ``_3``... suffix.

    Raises:
        ValueError: an empty list or a directory without image files.
        FileNotFoundError, ValueError, TypeError, ...: as :func:`load_image`, naming the file at fault.

    Example:
        >>> [(s.name, s.image.size) for s in load_sources([DEFAULT_IMAGE, HUBBLE_IMAGE, DEFAULT_IMAGE])]
        [('coffee', (600, 400)), ('hubble_deep_field', (1000, 872)), ('coffee_2', (600, 400))]
    """
    if isinstance(images, (str, os.PathLike)) and Path(images).is_dir():
        items: list[ImageLike | None] = list(_directory_images(Path(images)))
    elif isinstance(images, (list, tuple)):
        items = list(images)
        if not items:
            raise ValueError("the list of source images is empty; pass at least one image")
    else:
        items = [images]
    names: set[str] = set()
    sources = []
    for k, item in enumerate(items):
        path = _path_of(item)
        stem = path.stem if path is not None else f"image_{k}"
        name, n = stem, 1
        while name in names:
            n += 1
            name = f"{stem}_{n}"
        names.add(name)
        sources.append(Source(name, load_image(item), path))
    return sources


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
