"""The renderers' base class and registry: a backend subclasses :class:`Renderer` and registers its name.

A renderer is built once per source image (it may precompute things from it, such as an image
pyramid) and then renders any number of parameter records. It never draws random numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import torch
import torchvision.transforms.functional as F
from PIL import Image

from ..params import ParamsBatch, SampleParams
from ..views.params import ViewParamsBatch
from .functional import apply_view

__all__ = ["Renderer", "available_backends", "check_device", "get_renderer", "register_renderer"]


class Renderer:
    """Base class of the renderers; subclasses implement :meth:`render`.

    Args:
        image: the RGB source image.
    """

    #: The backend name it is registered under, set by :func:`register_renderer`.
    name: ClassVar[str]
    #: Where :meth:`render_batch` writes; a renderer that works on an accelerator sets its own.
    device: torch.device = torch.device("cpu")
    #: Whether it renders on the CPU only; one that does not takes a ``device`` keyword.
    cpu_only: ClassVar[bool] = True

    def __init__(self, image: Image.Image) -> None:
        self.image = image

    def render(self, params: SampleParams) -> Image.Image:
        """The RGB image of the sample described by ``params``."""
        raise NotImplementedError

    def render_batch(self, batch: ParamsBatch, out: torch.Tensor) -> None:
        """Write image ``k`` of ``batch`` into ``out[k]`` (``uint8``, ``N x 3 x S x S``, on :attr:`device`).

        Image ``k`` must be byte for byte ``render(batch[k])``. This default renders one sample at a
        time through :meth:`render`; renderers with a batched path override it.
        """
        for k, params in enumerate(batch.to_list()):
            out[k].copy_(F.pil_to_tensor(self.render(params)))

    def render_views(self, batch: ParamsBatch, views: Sequence[ViewParamsBatch], outs: Sequence[torch.Tensor]) -> None:
        """Write view ``v`` of sample ``k`` into ``outs[v][k]``: every view of a batch of samples.

        ``outs[v]`` is a ``uint8`` ``N x 3 x s_v x s_v`` tensor on :attr:`device` (``s_v = views[v].size``); row
        ``k`` of ``views[v]`` is a view of the sample ``batch[k]``, its crop in that sample's pixels. The view is
        defined on this renderer's sample: ``apply_view(render(batch[k]), views[v][k])``
        (:func:`~single_image_dataset.render.functional.apply_view`). This default computes exactly that (so the
        reference renderer's views are the oracle's); an override may compute it another way, within the
        renderer's fidelity bound. Either way, image ``k`` is the same bytes whatever the rest of the batch.

        This default renders each sample with :meth:`render`, then applies each view to it on the CPU; a renderer
        with a faster way (views resampled from the sample in native code, or on the device) overrides it.
        """
        records = [view.to_list() for view in views]
        for k, params in enumerate(batch.to_list()):
            sample = self.render(params)
            for rows, out in zip(records, outs, strict=True):
                out[k].copy_(F.pil_to_tensor(apply_view(sample, rows[k])))

    def identity(self) -> dict[str, str]:
        """What, besides the parameters and the source, decides this renderer's pixels.

        An export's manifest records it, and resuming or sharding that export refuses a renderer
        whose identity differs. This default is the backend name; a renderer whose pixels depend on
        more (an implementation, a library version) adds it.
        """
        return {"backend": self.name}


_REGISTRY: dict[str, type[Renderer]] = {}


def register_renderer(name: str) -> Callable[[type[Renderer]], type[Renderer]]:
    """Class decorator that makes a :class:`Renderer` available as ``backend=name``.

    Raises:
        ValueError: a renderer is already registered as ``name`` (a second registration would hide it).
    """

    def decorate(cls: type[Renderer]) -> type[Renderer]:
        if name in _REGISTRY:
            raise ValueError(
                f"a renderer is already registered as backend {name!r} ({_REGISTRY[name].__qualname__}); "
                "register this one under another name"
            )
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def available_backends() -> tuple[str, ...]:
    """Names accepted by ``backend=``."""
    return tuple(_REGISTRY)


def get_renderer(name: str, image: Image.Image, device: torch.device | str = "cpu") -> Renderer:
    """Build the renderer called ``name`` for ``image``, rendering on ``device``.

    Raises:
        ValueError: ``name`` is not a registered backend; ``device`` is not the CPU for a renderer
            that works on the CPU only, or is unknown or not on this machine (:func:`check_device`).
    """
    try:
        cls = _REGISTRY[name]
    except (KeyError, TypeError):  # TypeError: an unhashable name, such as a list
        raise ValueError(
            f"unknown backend {name!r}; available backends: {', '.join(available_backends())}"
        ) from None
    if not cls.cpu_only:
        return cls(image, device=device)
    requested = _parse_device(device)
    if requested.type != "cpu":
        raise ValueError(
            f'backend {name!r} renders on the CPU only, got device {str(requested)!r}; use backend="torch" '
            f"to render on {requested.type}, or device='cpu'"
        )
    return cls(image)


def check_device(device: torch.device | str) -> torch.device:
    """``device`` as a ``torch.device`` that this machine has, named as its tensors name it (``cuda:0``).

    Raises:
        ValueError: ``device`` is not a device name, or this machine does not have it.

    Example:
        >>> check_device("cpu")
        device(type='cpu')
    """
    checked = _parse_device(device)
    if checked.type == "cpu":
        return torch.device("cpu")  # as CPU tensors name it, "cpu:0" included
    module = getattr(torch, checked.type, None)  # torch.cuda, torch.xpu, torch.mps, ...
    if not (hasattr(module, "is_available") and module.is_available()):
        raise ValueError(
            f"device {str(checked)!r} is not available: this machine has no {checked.type} device; use device='cpu'"
        )
    if checked.index is not None and checked.index >= module.device_count():
        raise ValueError(
            f"device {str(checked)!r} is not available: this machine has {module.device_count()} {checked.type} "
            "device(s), numbered from 0"
        )
    return torch.empty(0, device=checked).device


def _parse_device(device: torch.device | str) -> torch.device:
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device should be a torch device such as 'cpu' or 'cuda', got {device!r}") from None
    # torch accepts "cpu:3", but its tensors are all on "cpu": such a device would differ from theirs.
    if parsed.type == "cpu" and parsed.index not in (None, 0):
        raise ValueError(f"device {str(parsed)!r} does not exist: the CPU is one device, 'cpu'")
    return parsed
