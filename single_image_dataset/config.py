"""The one configuration object shared by the Dataset, the CLI and the TOML presets in ``configs/``.

:class:`AugmentConfig` configures the image dataset; the fake-video clips' config
(:class:`~single_image_dataset.video.VideoConfig`) shares its machinery (:class:`ConfigBase`: validation,
TOML, ``replace``) and the checks of the fields both have (:func:`check_output`, :func:`check_crops`,
:func:`check_jitter`).
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from ._files import open_regular_file
from .crops import CropSettings, check_fit

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

__all__ = [
    "IMAGENET_TRAIN_SIZE",
    "MAX_IMG_SIZE",
    "AugmentConfig",
    "ConfigBase",
    "check_crops",
    "check_jitter",
    "check_output",
]

IMAGENET_TRAIN_SIZE = 1_281_167

#: Largest ``img_size``: one 8192 px sample is 192 MiB of RGB, and the reference renderer's resized crop
#: before the rotation is sqrt(2) times as wide (11585 px, 384 MiB).
MAX_IMG_SIZE = 8192

_C = TypeVar("_C", bound="ConfigBase")


class ConfigBase:
    """What the frozen config dataclasses share: type checks, TOML and dict round trips, ``replace``.

    A subclass is a frozen dataclass whose fields are annotated ``bool``, ``int``, ``float`` or a tuple
    of numbers; it lists the lengths of its tuple fields in :attr:`TUPLE_LENGTHS` and checks its values
    in :meth:`check_ranges`. Every field is checked in ``__post_init__``, so an invalid value fails
    when the config is built, not hours into an export.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass(frozen=True)
        ... class Blur(ConfigBase):
        ...     sigma: float = 1.0
        ...     def check_ranges(self) -> None:
        ...         if not self.sigma > 0:
        ...             raise ValueError(f"sigma should be positive, got {self.sigma:g}")
        >>> Blur.from_dict({"sigma": 2}), Blur().to_toml()
        (Blur(sigma=2.0), 'sigma = 1.0')
        >>> Blur(sigma="2")
        Traceback (most recent call last):
        ...
        TypeError: sigma should be a number, got '2'
    """

    #: The number of items of each tuple field, by field name.
    TUPLE_LENGTHS: ClassVar[Mapping[str, int]] = {}

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            _check_type(f.name, value, f.type, self.TUPLE_LENGTHS)
            # TOML and argparse hand over lists and ints; store tuples of floats and floats, so the
            # config stays hashable and prints the same however it was built.
            if f.name in self.TUPLE_LENGTHS:
                object.__setattr__(self, f.name, tuple(float(v) for v in value))
            elif f.type == "float":
                object.__setattr__(self, f.name, float(value))
        self.check_ranges()

    def check_ranges(self) -> None:
        """Check the values, whose types are already checked; a subclass implements it.

        Raises:
            ValueError: a value out of range; the message names the field, the range and the value.
        """
        raise NotImplementedError

    @property
    def area_range(self) -> tuple[float, float]:
        """The range of the resized crop's area fraction, ``(1 / scale[0], 1 / scale[1])``."""
        scale = self.scale  # type: ignore[attr-defined]
        return (1.0 / scale[0], 1.0 / scale[1])

    def replace(self: _C, **changes: Any) -> _C:
        """A copy with ``changes`` applied and validated.

        Raises:
            TypeError: an unknown name, as :func:`dataclasses.replace` raises; or a value of the wrong type.
            ValueError: a value out of range.
        """
        _check_keys(type(self), changes, f"{type(self).__name__}.replace()", TypeError)
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/TOML-serialisable values (tuples become lists)."""
        values = dataclasses.asdict(self)  # type: ignore[call-overload]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}

    def to_toml(self) -> str:
        """The config as a flat TOML preset that :meth:`from_toml` reads back to an equal config."""
        return "\n".join(f"{key} = {_toml_value(value)}" for key, value in self.to_dict().items())

    @classmethod
    def from_dict(cls: type[_C], values: Mapping[str, Any], **overrides: Any) -> _C:
        """Build from a mapping (e.g. a parsed preset); an unknown key raises ``ValueError``, a non-mapping
        ``TypeError``."""
        if not isinstance(values, Mapping):
            raise TypeError(f"values should be a mapping of {cls.__name__} fields, got {type(values).__name__}")
        merged = {**values, **overrides}
        _check_keys(cls, merged, "config")
        return cls(**merged)

    @classmethod
    def from_toml(cls: type[_C], path: str | Path, **overrides: Any) -> _C:
        """Read a TOML preset such as ``configs/paper_imagenet.toml``; ``overrides`` win over the file.

        Raises:
            FileNotFoundError: the file does not exist.
            IsADirectoryError: the path is a directory.
            PermissionError: the file may not be read.
            ValueError: an empty path or a special file (a FIFO, a device); malformed TOML, an unknown
                key, or an invalid value.
        """
        with open_regular_file(path, "config file") as file:
            data = file.read()
        path = Path(path)
        try:
            values = tomllib.loads(data.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"config file {path} is not valid TOML: {exc}") from None
        try:
            return cls.from_dict(values, **overrides)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"config file {path}: {exc}") from None


@dataclass(frozen=True)
class AugmentConfig(ConfigBase):
    """Everything that defines a single-image dataset apart from its source image.

    The defaults are those of the paper's ``make_dataset_single.py``. Every field is checked in
    ``__post_init__``, so an invalid value fails when the config is built, not hours into an export.
    Derive variants with :func:`dataclasses.replace` (or :meth:`replace`), which validates again.

    Args:
        img_size: side of the square output images, in pixels, at most :data:`MAX_IMG_SIZE`.
        num_imgs: virtual length of the dataset, at most ``sys.maxsize`` (2**63 - 1 on 64-bit
            machines), the largest length ``len()`` can return.
        seed: seed of the per-index random streams (a non-negative integer).
        deg: rotation angles are drawn from ``U(-deg, deg)`` degrees.
        shear: x-shear angles are drawn from ``U(-shear, shear)`` degrees; 0 turns the affine
            into a plain rotation (or nothing when ``deg`` is 0 too).
        vflip: flip vertically with probability 0.5.
        cropfirst: start with a random square crop of side ``initcrop * min(W, H)``.
        initcrop: relative side of that initial crop, in ``(0, 1]``.
        scale: inverse area range of the random resized crop: the area fraction is drawn from
            ``U(1 / scale[0], 1 / scale[1])``.
        randinterp: draw the resized crop's interpolation from {bilinear, bicubic, lanczos}
            instead of always bicubic.
        jitter: colour-jitter strengths (brightness, contrast, saturation, hue), with
            torchvision ``ColorJitter`` semantics.
        jitter_p: probability that the colour jitter is applied to a sample.
        debug: replace the colour jitter by a resize to 32x32 (the original's debug mode).

    Example:
        >>> cfg = AugmentConfig(img_size=64)
        >>> cfg.resize_size, cfg.area_range
        (90, (0.002, 1.0))
        >>> AugmentConfig(initcrop=1.5)
        Traceback (most recent call last):
        ...
        ValueError: initcrop should be in (0, 1], got 1.5
    """

    img_size: int = 256
    num_imgs: int = IMAGENET_TRAIN_SIZE
    seed: int = 0
    deg: float = 30.0
    shear: float = 30.0
    vflip: bool = False
    cropfirst: bool = True
    initcrop: float = 0.5
    scale: tuple[float, float] = (500.0, 1.0)
    randinterp: bool = False
    jitter: tuple[float, float, float, float] = field(default=(0.4, 0.4, 0.4, 0.1))
    jitter_p: float = 0.5
    debug: bool = False

    TUPLE_LENGTHS: ClassVar[Mapping[str, int]] = {"scale": 2, "jitter": 4}

    def check_ranges(self) -> None:
        check_output(self)
        if not 0 <= self.deg <= 180:
            raise ValueError(f"deg should be in [0, 180] degrees, got {self.deg:g}")
        if not 0 <= self.shear < 90:
            raise ValueError(f"shear should be in [0, 90) degrees, got {self.shear:g}")
        check_crops(self)
        check_jitter(self)

    @property
    def resize_size(self) -> int:
        """Side of the random resized crop: ``sqrt(2) * img_size``, so a 45° turn leaves no corners."""
        return int(math.sqrt(2) * self.img_size)


def check_output(config: Any) -> None:
    """Check a config's ``img_size``, ``num_imgs`` and ``seed``, as every config of a dataset has them.

    Raises:
        ValueError: a value out of range; the message names it.
    """
    if not 1 <= config.img_size <= MAX_IMG_SIZE:
        raise ValueError(f"img_size should be in [1, {MAX_IMG_SIZE}] pixels, got {config.img_size}")
    if not 1 <= config.num_imgs <= sys.maxsize:
        raise ValueError(
            f"num_imgs should be in [1, {sys.maxsize}] (sys.maxsize, the most len() can return), "
            f"got {config.num_imgs}"
        )
    if not 0 <= config.seed < 2**63:
        raise ValueError(f"seed should be in [0, 2**63), got {config.seed}")


def check_crops(config: CropSettings) -> None:
    """Check a config's ``initcrop`` and ``scale``, and that the crop box fits often enough
    (:func:`~single_image_dataset.crops.check_fit` on the config alone).

    Raises:
        ValueError: a value out of range, or a crop box that would rarely fit; the message names it.
    """
    if not 0 < config.initcrop <= 1:
        raise ValueError(f"initcrop should be in (0, 1], got {config.initcrop:g}")
    s0, s1 = config.scale
    if not (math.isfinite(s0) and math.isfinite(s1) and s0 >= s1 > 0):
        raise ValueError(
            "scale should be two inverse area fractions (max, min) with scale[0] >= scale[1] > 0, "
            f"e.g. (500, 1), got {config.scale}"
        )
    if s0 <= 1:
        raise ValueError(
            f"scale={config.scale} draws crop areas of at least {1 / s0:g} times the image, so the crop "
            "box never fits; scale[0] must exceed 1 (the paper uses 500 1)"
        )
    check_fit(config)  # the config alone; the dataset checks again on its source


def check_jitter(config: Any) -> None:
    """Check a config's ``jitter`` strengths and ``jitter_p``.

    Raises:
        ValueError: a value out of range; the message names it.

    Example:
        >>> from types import SimpleNamespace
        >>> check_jitter(SimpleNamespace(jitter=(0.4, 0.4, 0.4, 0.6), jitter_p=0.5))
        Traceback (most recent call last):
        ...
        ValueError: jitter hue should be in [0, 0.5], got 0.6
    """
    brightness, contrast, saturation, hue = config.jitter
    for name, value in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"jitter {name} should be a non-negative number, got {value:g}")
    if not 0 <= hue <= 0.5:
        raise ValueError(f"jitter hue should be in [0, 0.5], got {hue:g}")
    if not 0 <= config.jitter_p <= 1:
        raise ValueError(f"jitter_p should be a probability in [0, 1], got {config.jitter_p:g}")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def _check_keys(cls: type, values: Mapping[str, Any], where: str, error: type[Exception] = ValueError) -> None:
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted((key for key in values if key not in names), key=str)
    if unknown:
        raise error(f"unknown key {unknown[0]!r} in {where}; valid keys are: {', '.join(names)}")


def _check_type(name: str, value: Any, annotation: str, tuple_lengths: Mapping[str, int]) -> None:
    """Reject values of the wrong kind with a message naming the field (bools are not numbers here)."""
    if annotation == "bool":
        ok = isinstance(value, bool)
        expected = "true or false"
    elif annotation == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
        expected = "an integer"
    elif annotation == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        expected = "a number"
    else:
        n = tuple_lengths[name]
        ok = (
            isinstance(value, (tuple, list))
            and len(value) == n
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        )
        expected = f"a sequence of {n} numbers"
    if not ok:
        raise TypeError(f"{name} should be {expected}, got {value!r}")
