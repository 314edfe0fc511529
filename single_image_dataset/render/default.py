"""The backend a dataset renders with when none is named: the fastest this installation runs on the CPU."""

from __future__ import annotations

from .fast import native_available

__all__ = ["default_backend"]


def default_backend() -> str:
    """``"fast"`` where the package's C extension was built (its native kernels), else ``"reference"``.

    The fast renderer without its extension falls back on Pillow and OpenCV, whose bytes differ from
    the native kernels'; a dataset without a named backend therefore never depends on whether OpenCV
    is installed. Name ``backend=`` to pin the bytes across installations.

    Example:
        >>> default_backend() in ("fast", "reference")
        True
    """
    return "fast" if native_available() else "reference"
