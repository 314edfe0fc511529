"""Shared by the benchmark scripts: one thread per process, so that a figure is per core."""

from __future__ import annotations

import torch

__all__ = ["one_thread"]


def one_thread() -> None:
    """Limit torch and, where it is installed, OpenCV to one thread in this process."""
    torch.set_num_threads(1)
    try:
        import cv2
    except ImportError:
        return
    cv2.setNumThreads(1)
