"""MP4 files of clips through PyAV (an optional extra: ``pip install -e ".[video]"``), imported when first used."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import torch

__all__ = ["CODEC", "DEFAULT_CRF", "DEFAULT_FPS", "decode_mp4", "encode_mp4", "encoder_identity"]

#: The video codec: H.264 (libx264) in 4:2:0, what video pipelines such as torchvision's and Kinetics' read.
CODEC = "libx264"
#: Frames per second written in the file; the frames themselves do not depend on it.
DEFAULT_FPS = 25
#: x264's constant rate factor: its default, 23 (lower is larger and closer to the frames).
DEFAULT_CRF = 23

_INSTALL_HINT = 'MP4 encoding needs PyAV, an optional extra: pip install -e ".[video]" in the clone (or pip install av)'


def _import_av() -> Any:
    try:
        import av
    except ImportError:
        raise ImportError(_INSTALL_HINT) from None
    return av


def encode_mp4(clip: torch.Tensor, fps: int = DEFAULT_FPS, crf: int = DEFAULT_CRF) -> bytes:
    """The MP4 file of ``clip``: H.264 (libx264, one thread) in YUV 4:2:0, one frame per frame of the clip.

    The encoder runs on one thread, so the same clip, settings and PyAV build give the same bytes on
    any machine (parallelise over clips, as the export does, rather than within one).

    Args:
        clip: ``uint8`` ``T x 3 x H x W`` tensor (torchvision's TCHW video layout), on any device;
            ``H`` and ``W`` even, as 4:2:0 needs.
        fps: frames per second written in the file.
        crf: x264's constant rate factor, 0 (lossless) to 51.

    Raises:
        ImportError: PyAV is not installed; the message names the pip command.
        TypeError, ValueError: ``clip``, ``fps`` or ``crf`` is not as described.
    """
    frames = _check_clip(clip)
    _check_settings(fps, crf)
    av = _import_av()
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream(CODEC, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        stream.options = {"crf": str(crf)}
        for t, frame in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts = t
            container.mux(stream.encode(picture))
        container.mux(stream.encode())
    return buffer.getvalue()


def decode_mp4(data: bytes) -> torch.Tensor:
    """The frames of an MP4 file (e.g. from :func:`encode_mp4`) as a ``uint8`` ``T x 3 x H x W`` tensor.

    Raises:
        ImportError: PyAV is not installed.
        ValueError: ``data`` is not a video PyAV can decode.
    """
    av = _import_av()
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    except (av.FFmpegError, IndexError) as exc:
        raise ValueError(f"cannot decode the MP4 data ({len(data)} bytes): {exc}") from None
    if not frames:
        raise ValueError(f"the MP4 data ({len(data)} bytes) holds no video frames")
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()


def encoder_identity(fps: int, crf: int) -> dict[str, Any]:
    """What, besides the frames, decides :func:`encode_mp4`'s bytes: the settings and the codec libraries.

    Raises:
        ImportError: PyAV is not installed.
    """
    av = _import_av()
    return {"codec": CODEC, "fps": fps, "crf": crf, "av": av.__version__, "libavcodec": _library_version(av)}


def _library_version(av: Any) -> str:
    major, minor, micro = av.library_versions["libavcodec"]
    return f"{major}.{minor}.{micro}"


def _check_clip(clip: torch.Tensor) -> np.ndarray:
    """``clip`` as a C-contiguous ``T x H x W x 3`` array, or a clear error."""
    if not isinstance(clip, torch.Tensor):
        raise TypeError(f"clip should be a uint8 tensor T x 3 x H x W, got {type(clip).__name__}")
    if clip.dtype != torch.uint8 or clip.ndim != 4 or clip.shape[1] != 3 or clip.shape[0] < 1:
        raise ValueError(f"clip should be a uint8 tensor T x 3 x H x W, got {clip.dtype} of shape {list(clip.shape)}")
    height, width = clip.shape[2:]
    if height % 2 or width % 2:
        raise ValueError(
            f"clip frames of {width}x{height} px cannot be encoded in YUV 4:2:0, which needs even sides; "
            "use an even img_size"
        )
    return np.ascontiguousarray(clip.detach().cpu().permute(0, 2, 3, 1).numpy())


def _check_settings(fps: int, crf: int) -> None:
    if isinstance(fps, bool) or not isinstance(fps, int) or fps < 1:
        raise ValueError(f"fps should be a positive integer, got {fps!r}")
    if isinstance(crf, bool) or not isinstance(crf, int) or not 0 <= crf <= 51:
        raise ValueError(f"crf should be an integer in [0, 51], got {crf!r}")
