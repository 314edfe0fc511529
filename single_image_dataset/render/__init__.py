"""Renderers: each turns ``(source image, SampleParams)`` into the sample's PIL image.

:mod:`.base` holds the base class and the registry; importing this package registers the built-in
backends: ``"reference"`` (torchvision's ops, the oracle), ``"fast"`` and ``"torch"``, in that order.
"""

from .base import Renderer, available_backends, check_device, get_renderer, register_renderer

from . import reference  # noqa: F401  # isort: skip  (registers the built-in renderers, the oracle first)
from . import fast  # noqa: F401  # isort: skip  (listed second)
from . import tensor  # noqa: F401  # isort: skip  (listed third)
from .default import default_backend  # noqa: E402  # isort: skip  (needs the registered renderers)

__all__ = [
    "Renderer", "available_backends", "check_device", "default_backend", "get_renderer", "register_renderer"
]
