"""MP4 files of clips through PyAV (an optional extra: ``pip install -e ".[video]"``), imported when first used."""

from __future__ import annotations

import io
import os
from typing import Any, BinaryIO

import numpy as np
import torch

from .._files import open_regular_file

__all__ = [
    "CODEC",
    "DEFAULT_CRF",
    "DEFAULT_FPS",
    "MAX_FPS",
    "X264_OPTIONS",
    "check_encodable",
    "decode_mp4",
    "encode_mp4",
    "encoder_versions",
    "is_whole_mp4",
]

#: The video codec: H.264 (libx264) in 4:2:0, what video pipelines such as torchvision's and Kinetics' read.
CODEC = "libx264"
#: Frames per second written in the file; the frames themselves do not depend on it.
DEFAULT_FPS = 25
#: x264's constant rate factor: its default, 23 (lower is larger and closer to the frames).
DEFAULT_CRF = 23
#: Most frames per second: high-speed cameras film at up to 1000; more is a typo (PyAV overflows past 2**31 - 1).
MAX_FPS = 1000
#: x264's settings besides ``crf`` and one thread, which make the bytes a function of the frames. Its
#: macroblock-tree rate control (``mbtree``, on by default) weighs macroblocks with floating-point SIMD code
#: whose results were seen to vary from run to run (with AVX-512, under CPU contention) and differ between
#: CPUs by design (approximate reciprocals); without it the same frames give the same bytes.
X264_OPTIONS = {"mbtree": "0"}

# A file of more top-level boxes than this is not one encode_mp4 wrote (it writes four: ftyp, free, mdat, moov).
_MAX_BOXES = 64

_INSTALL_HINT = 'MP4 encoding needs PyAV, an optional extra: pip install -e ".[video]" in the clone (or pip install av)'


def _import_av() -> Any:
    try:
        import av
    except ImportError:
        raise ImportError(_INSTALL_HINT) from None
    return av


def encode_mp4(clip: torch.Tensor, fps: int = DEFAULT_FPS, crf: int = DEFAULT_CRF) -> bytes:
    """The MP4 file of ``clip``: H.264 (libx264, one thread) in YUV 4:2:0, one frame per frame of the clip.

    The bytes are a function of the frames, ``fps``, ``crf`` and the PyAV build (which bundles FFmpeg and
    x264): the same clip gives the same bytes on every call, in every process and on every x86-64 CPU
    (measured from SSSE3 to AVX-512; x264's plain C code and other architectures may give other bytes). The
    encoder runs on one thread with :data:`X264_OPTIONS`; parallelise over clips, as the export does.

    Args:
        clip: ``uint8`` ``T x 3 x H x W`` tensor (torchvision's TCHW video layout), on any device;
            ``H`` and ``W`` even, as 4:2:0 needs.
        fps: frames per second written in the file, 1 to :data:`MAX_FPS`.
        crf: x264's constant rate factor, 0 (lossless) to 51.

    Raises:
        ImportError: PyAV is not installed; the message names the pip command.
        TypeError, ValueError: ``clip``, ``fps`` or ``crf`` is not as described.
        OSError: the encoder could not open or encode (e.g. out of memory); the message says which clip.
    """
    _check_clip(clip)
    check_encodable(clip.shape[3], clip.shape[2], fps, crf)
    frames = np.ascontiguousarray(clip.detach().cpu().permute(0, 2, 3, 1).numpy())
    av = _import_av()
    buffer = io.BytesIO()
    try:
        with av.open(buffer, mode="w", format="mp4") as container:
            stream = container.add_stream(CODEC, rate=fps)
            stream.width, stream.height = frames.shape[2], frames.shape[1]
            stream.pix_fmt = "yuv420p"
            stream.codec_context.thread_count = 1
            stream.options = {"crf": str(crf), **X264_OPTIONS}
            for t, frame in enumerate(frames):
                picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
                picture.pts = t
                container.mux(stream.encode(picture))
            container.mux(stream.encode())
    except av.FFmpegError as exc:
        what = f"{frames.shape[0]} frames of {frames.shape[2]}x{frames.shape[1]} px, fps {fps}, crf {crf}"
        raise OSError(exc.errno, f"the H.264 encoder ({CODEC}) failed on a clip of {what}: {exc.strerror}") from None
    return buffer.getvalue()


def decode_mp4(source: bytes | str | os.PathLike[str]) -> torch.Tensor:
    """The frames of an MP4 file (e.g. from :func:`encode_mp4`) as a ``uint8`` ``T x 3 x H x W`` tensor.

    Args:
        source: the file's content (``bytes``, ``bytearray``, ``memoryview``) or its path.

    Raises:
        ImportError: PyAV is not installed.
        TypeError: ``source`` is neither bytes nor a path.
        FileNotFoundError, IsADirectoryError, PermissionError, OSError: the path cannot be read.
        ValueError: the data is not a video PyAV can decode; the message names the path or the size.

    Example:
        >>> import torch
        >>> clip = torch.zeros(2, 3, 16, 16, dtype=torch.uint8)
        >>> decode_mp4(encode_mp4(clip)).shape
        torch.Size([2, 3, 16, 16])
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, what = bytes(source), f"the MP4 data ({len(source)} bytes)"
    elif isinstance(source, (str, os.PathLike)):
        with open_regular_file(source, "MP4 file") as f:
            data, what = f.read(), f"the MP4 file {os.fsdecode(source)}"
    else:
        raise TypeError(f"decode_mp4 takes an MP4 file's bytes or path, got {type(source).__name__}")
    av = _import_av()
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    except (av.FFmpegError, IndexError) as exc:
        raise ValueError(f"cannot decode {what}: {exc}") from None
    if not frames:
        raise ValueError(f"{what} holds no video frames")
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()


def is_whole_mp4(file: BinaryIO, size: int) -> bool:
    """Whether the ``size`` bytes of ``file`` are a whole MP4 file, as far as its box structure tells.

    The top-level boxes must tile the file exactly, starting with ``ftyp`` and including ``mdat`` (the
    frames) and ``moov`` (the index, written last): a file cut short anywhere fails. A few small reads,
    no decoding (:func:`decode_mp4` decodes).

    Example:
        >>> box = lambda kind, body=b"": (8 + len(body)).to_bytes(4, "big") + kind + body
        >>> whole = box(b"ftyp", b"isom") + box(b"mdat", b"frames") + box(b"moov", b"index")
        >>> is_whole_mp4(io.BytesIO(whole), len(whole)), is_whole_mp4(io.BytesIO(whole[:-1]), len(whole) - 1)
        (True, False)
    """
    kinds = []
    position = 0
    while position < size and len(kinds) < _MAX_BOXES:
        file.seek(position)
        header = file.read(8)
        if len(header) < 8:
            return False
        box_size = int.from_bytes(header[:4], "big")
        if box_size == 1:  # a 64-bit size follows the type
            large = file.read(8)
            if len(large) < 8:
                return False
            box_size = int.from_bytes(large, "big")
        elif box_size == 0:  # the box runs to the end of the file
            box_size = size - position
        if box_size < 8 or position + box_size > size:
            return False
        kinds.append(header[4:])
        position += box_size
    return position == size and kinds[:1] == [b"ftyp"] and b"mdat" in kinds and b"moov" in kinds


def encoder_versions() -> dict[str, str]:
    """The versions of PyAV and of the FFmpeg codec library it bundles (libx264's is part of the build).

    Raises:
        ImportError: PyAV is not installed; the message names the pip command.
    """
    av = _import_av()
    return {"av": av.__version__, "libavcodec": ".".join(map(str, av.library_versions["libavcodec"]))}


def check_encodable(width: int, height: int, fps: int, crf: int) -> None:
    """Check that frames of ``width`` x ``height`` px can be encoded with ``fps`` and ``crf`` by :func:`encode_mp4`.

    The export calls it before it starts, so that a setting it cannot encode fails at once.

    Raises:
        ValueError: an odd side (YUV 4:2:0 needs even ones), ``fps`` not an integer in [1, :data:`MAX_FPS`],
            or ``crf`` not an integer in [0, 51]; the message names it.

    Example:
        >>> check_encodable(64, 64, DEFAULT_FPS, DEFAULT_CRF)
        >>> check_encodable(63, 64, DEFAULT_FPS, DEFAULT_CRF)
        Traceback (most recent call last):
        ...
        ValueError: clip frames of 63x64 px cannot be encoded in YUV 4:2:0, which needs even sides; use an even img_size
    """
    if height % 2 or width % 2:
        raise ValueError(
            f"clip frames of {width}x{height} px cannot be encoded in YUV 4:2:0, which needs even sides; "
            "use an even img_size"
        )
    if isinstance(fps, bool) or not isinstance(fps, int) or not 1 <= fps <= MAX_FPS:
        raise ValueError(f"fps should be an integer in [1, {MAX_FPS}] frames per second, got {fps!r}")
    if isinstance(crf, bool) or not isinstance(crf, int) or not 0 <= crf <= 51:
        raise ValueError(f"crf should be an integer in [0, 51], got {crf!r}")


def _check_clip(clip: torch.Tensor) -> None:
    """Refuse anything but a ``uint8`` ``T x 3 x H x W`` tensor, with a clear error."""
    if not isinstance(clip, torch.Tensor):
        raise TypeError(f"clip should be a uint8 tensor T x 3 x H x W, got {type(clip).__name__}")
    if clip.dtype != torch.uint8 or clip.ndim != 4 or clip.shape[1] != 3 or clip.shape[0] < 1:
        raise ValueError(f"clip should be a uint8 tensor T x 3 x H x W, got {clip.dtype} of shape {list(clip.shape)}")
