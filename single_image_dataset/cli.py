"""The ``single-image-dataset`` command: a drop-in for the paper's ``make_dataset_single.py``.

Without ``--materialize`` it prints the resolved config and writes a preview grid; with it, it
writes the dataset as an ImageFolder tree (see :mod:`single_image_dataset.export`). With ``--video`` it
does the same for fake-video clips (:mod:`single_image_dataset.video`): a filmstrip preview, MP4 files.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from .config import AugmentConfig, ConfigBase
from .dataset import SingleImageDataset
from .export import (
    DEFAULT_QUALITY,
    FORMATS,
    MANIFEST_NAME,
    ExportResult,
    Terminated,
    available_cpus,
    estimate_bytes,
    estimate_video_bytes,
    file_range,
    format_bytes,
    materialize,
    materialize_video,
    shard_range,
)
from .preview import PREVIEW_COUNT, PREVIEW_NROW, save_preview
from .render import available_backends, default_backend
from .sampling import DEBUG_SIZE
from .version import __version__
from .video import DEFAULT_CRF, DEFAULT_FPS, FakeVideoDataset, VideoConfig, save_filmstrip
from .video.encode import MAX_FPS
from .video.preview import FILMSTRIP_CLIPS

__all__ = ["OneLineErrorParser", "build_parser", "main"]

PROG = "single-image-dataset"
PREVIEW_NAME = "preview.png"
DEBUG_NUM_IMGS = 64
DEBUG_THREADS = 2
#: Most ``--threads``: a typo such as 10000 must not start ten thousand processes.
MAX_THREADS = 1024
# Samples handed to a worker process at a time, by default: images, clips.
IMAGE_CHUNK, CLIP_CHUNK = 32, 4
# AugmentConfig's flags that VideoConfig has no field for, and the image export's.
_IMAGE_ONLY = ("deg", "shear", "vflip", "cropfirst", "randinterp", "debug", "format", "quality")
_VIDEO_ONLY = ("clip_len", "fps", "crf")


class OneLineErrorParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that reports a usage error as one line on stderr (exit status 2), no usage block.

    The line is ``PROG: error: MESSAGE (see PROG --help)``, or without the hint when ``help_hint``
    is false: one line, like the library errors a command reports (argparse's messages already
    name the flag and the problem).

    Args:
        *args: as for ``argparse.ArgumentParser``.
        help_hint: end the line with ``(see PROG --help)``.
        **kwargs: as for ``argparse.ArgumentParser``.

    Example:
        >>> import contextlib, io
        >>> parser = OneLineErrorParser(prog="demo")
        >>> _ = parser.add_argument("--n", type=int)
        >>> with contextlib.redirect_stderr(io.StringIO()) as err:
        ...     try:
        ...         parser.parse_args(["--n", "x"])
        ...     except SystemExit as stop:
        ...         print(stop.code, err.getvalue(), end="")
        2 demo: error: argument --n: invalid int value: 'x' (see demo --help)
    """

    def __init__(self, *args: Any, help_hint: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help_hint = help_hint

    def error(self, message: str) -> NoReturn:
        hint = f" (see {self.prog} --help)" if self.help_hint else ""
        self.exit(2, f"{self.prog}: error: {message}{hint}\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; flags that map to :class:`AugmentConfig` fields default to ``None``,
    meaning "not given", so that a ``--config`` file fills them in.

    Example:
        >>> args = build_parser().parse_args(["--deg", "10", "--no-cropfirst"])
        >>> args.deg, args.cropfirst, args.shear, args.targetpath
        (10.0, False, None, './out')
    """
    p = OneLineErrorParser(
        prog=PROG,
        description="Make a dataset of augmented views of one image (Asano et al., ICLR 2020). Without "
        "--materialize, print the resolved config and write a preview grid; with it, write the images "
        "to TARGETPATH/train/dummy for torchvision's ImageFolder.",
        epilog="Precedence: built-in defaults < --config file < flags given on the command line.",
    )
    cfg = AugmentConfig()
    io = p.add_argument_group("input and output")
    io.add_argument(
        "--imgpath", metavar="PATH", nargs="+", type=_path,
        help="source image (default: the embedded coffee-cup photograph); several paths or a directory: one dataset "
        "of several sources, each sample's source drawn uniformly",
    )
    io.add_argument(
        "--exif-orientation", action=argparse.BooleanOptionalAction, default=True,
        help="turn the source upright by its EXIF orientation tag, as photo viewers do (default: on)",
    )
    io.add_argument(
        "--targetpath", metavar="DIR", type=_path, default="./out",
        help=f"export root, and where the preview {PREVIEW_NAME} goes (default: ./out)",
    )
    io.add_argument(
        "--config", metavar="FILE.toml", type=_path, help="TOML preset, e.g. configs/paper_imagenet.toml"
    )
    io.add_argument("--materialize", action="store_true", help=(
        f"write the dataset: the files to TARGETPATH/train/dummy, and {MANIFEST_NAME}, shards/K-of-N.json and the "
        f"lock file .lock to TARGETPATH; no {PREVIEW_NAME} (except with --debug): run without --materialize for one"
    ))
    io.add_argument("--format", choices=tuple(FORMATS), help="image file format (default: jpg)")
    io.add_argument(
        "--quality", type=_int_in(1, 100), metavar="Q",
        help=f"JPEG quality, 1-100 (default: {DEFAULT_QUALITY}, as the original)",
    )
    io.add_argument("--shard", metavar="K/N", type=_shard, help="write only shard K (0-based) of N contiguous ranges")
    io.add_argument("--overwrite", action="store_true", help="replace a different export already in TARGETPATH")
    io.add_argument(
        "--verify", action="store_true",
        help="render every file of the shard again and rewrite those whose bytes differ (as slow as writing them)",
    )
    io.add_argument(
        "--threads", type=_int_in(1, MAX_THREADS), metavar="N",
        help=f"worker processes, at most {MAX_THREADS} (default: the CPUs available to this process; "
        "materialize() in Python defaults to 1)",
    )
    io.add_argument(
        "--batch_size", type=_int_in(1, None), metavar="N",
        help=f"images (clips) handed to a worker process at a time (default: {IMAGE_CHUNK}; {CLIP_CHUNK} clips)",
    )
    io.add_argument(
        "--backend", choices=available_backends(),
        help=f"renderer (default here: {default_backend()}: fast where the package's C extension was built, "
        "else reference)",
    )
    io.add_argument("--debug", action=argparse.BooleanOptionalAction, help=(
        f"debug run: {DEBUG_NUM_IMGS} images shrunk to {DEBUG_SIZE} px, {DEBUG_THREADS} processes, exported with a "
        "preview grid (default: off)"
    ))

    aug = p.add_argument_group("augmentation (AugmentConfig fields)")
    aug.add_argument("--img_size", type=int, metavar="PX", help=f"output side in pixels (default: {cfg.img_size})")
    aug.add_argument("--num_imgs", type=int, metavar="N", help=f"number of images (default: {cfg.num_imgs})")
    aug.add_argument("--seed", type=int, help=f"seed of the per-index random streams (default: {cfg.seed})")
    aug.add_argument("--deg", type=float, help=f"max rotation in degrees (default: {cfg.deg:g})")
    aug.add_argument("--shear", type=float, help=f"max x-shear in degrees (default: {cfg.shear:g})")
    aug.add_argument("--vflip", action=argparse.BooleanOptionalAction, help="random vertical flips (default: off)")
    aug.add_argument(
        "--cropfirst", action=argparse.BooleanOptionalAction,
        help="start with a random square crop of initcrop * the short side (default: on; the original's "
        "--cropfirst switched it off, ours keeps it on)",
    )
    aug.add_argument("--initcrop", type=float, help=f"side of the initial crop, relative (default: {cfg.initcrop:g})")
    aug.add_argument(
        "--scale", type=float, nargs=2, metavar=("MAX", "MIN"),
        help="inverse area range of the resized crop: areas in [1/MAX, 1/MIN] (default: 500 1)",
    )
    aug.add_argument(
        "--randinterp", action=argparse.BooleanOptionalAction,
        help="draw the resized crop's interpolation from bilinear/bicubic/lanczos (default: off, bicubic)",
    )

    vcfg = VideoConfig()
    video = p.add_argument_group(
        "fake-video clips (Asano & Saeed, ICLR 2023; VideoConfig fields, with --img_size, --num_imgs, --seed, "
        "--initcrop and --scale above)"
    )
    video.add_argument("--video", action="store_true", help=(
        f"make fake-video clips instead of images: {vcfg.num_imgs} clips of {vcfg.clip_len} frames of "
        f"{vcfg.img_size} px by default; a filmstrip preview, or clip_<i>.mp4 files with --materialize"
    ))
    video.add_argument("--clip_len", type=int, metavar="T", help=f"frames per clip (default: {vcfg.clip_len})")
    video.add_argument(
        "--fps", type=_int_in(1, MAX_FPS),
        help=f"frames per second in the MP4 files, at most {MAX_FPS} (default: {DEFAULT_FPS})",
    )
    video.add_argument(
        "--crf", type=_int_in(0, 51), help=f"x264 constant rate factor, 0 (lossless) to 51 (default: {DEFAULT_CRF})"
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (argparse exits 2 itself on a usage error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.quality is not None and args.format not in (None, "jpg"):
        parser.error("argument --quality: applies to --format jpg only")
    wrong = _IMAGE_ONLY if args.video else _VIDEO_ONLY
    given = next((name for name in wrong if getattr(args, name) is not None), None)
    if given is not None:
        mode = "images (without --video)" if args.video else "--video"
        parser.error(f"argument --{given}: applies to {mode} only")
    try:
        with _sigterm_as_interrupt():
            return _run(args)
    except Terminated:
        print(f"{PROG}: terminated; run the same command again to resume", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; run the same command again to resume", file=sys.stderr)
        return 128 + signal.SIGINT
    except (ValueError, TypeError, OSError, ImportError) as exc:
        print(f"{PROG}: error: {_describe(exc)}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    if args.video:
        return _run_video(args)
    config = _resolve_config(args, AugmentConfig)
    threads = args.threads or (DEBUG_THREADS if config.debug else available_cpus())
    image_format = args.format or "jpg"
    quality = args.quality or DEFAULT_QUALITY
    shard = args.shard or (0, 1)
    dataset = SingleImageDataset(
        _image(args), config=config, backend=args.backend, exif_orientation=args.exif_orientation
    )
    target = Path(args.targetpath)
    out = sys.stdout

    side = DEBUG_SIZE if config.debug else config.img_size
    _print_start(config, dataset, f"{config.num_imgs} images of {side}x{side} px")
    indices = shard_range(config.num_imgs, *shard)
    where = file_range(target, indices, config.num_imgs, image_format)
    if args.materialize or config.debug:
        # materialize says what it writes once the target has accepted the run.
        result = materialize(
            dataset, target, image_format=image_format, quality=quality, processes=threads, shard=shard,
            overwrite=args.overwrite, verify=args.verify, chunk_size=args.batch_size or IMAGE_CHUNK,
        )
        _print_result(result, "images", "img", target)
    else:
        need = estimate_bytes(dataset, indices, image_format, quality)
        print(f"--materialize would write {len(indices)} files, about {format_bytes(need)}: {where}", file=out)
    if not args.materialize or config.debug:
        path = save_preview(dataset, target / PREVIEW_NAME)
        last = min(PREVIEW_COUNT, config.num_imgs) - 1
        print(f"preview: {path} (samples 0-{last}, {PREVIEW_NROW} per row)", file=out)
    return 0


def _run_video(args: argparse.Namespace) -> int:
    config = _resolve_config(args, VideoConfig)
    threads = args.threads or available_cpus()
    fps, crf = args.fps or DEFAULT_FPS, args.crf if args.crf is not None else DEFAULT_CRF
    shard = args.shard or (0, 1)
    dataset = FakeVideoDataset(
        _image(args), config=config, backend=args.backend, exif_orientation=args.exif_orientation
    )
    target = Path(args.targetpath)
    out = sys.stdout

    side = config.img_size
    _print_start(config, dataset, f"{config.num_imgs} clips of {config.clip_len} frames of {side}x{side} px")
    indices = shard_range(config.num_imgs, *shard)
    where = file_range(target, indices, config.num_imgs, "mp4")
    if args.materialize:
        result = materialize_video(
            dataset, target, fps=fps, crf=crf, processes=threads, shard=shard, overwrite=args.overwrite,
            verify=args.verify, chunk_size=args.batch_size or CLIP_CHUNK,
        )
        _print_result(result, "clips", "clip", target)
        return 0
    try:
        size = f", about {format_bytes(estimate_video_bytes(dataset, indices, fps, crf))}"
    except ImportError as exc:  # the preview needs no encoder
        size = f" (size unknown: {exc})"
    print(f"--materialize would write {len(indices)} files{size}: {where}", file=out)
    path = save_filmstrip(dataset, target / PREVIEW_NAME)
    last = min(FILMSTRIP_CLIPS, config.num_imgs) - 1
    print(f"preview: {path} (clips 0-{last}, one row each, {config.clip_len} frames)", file=out)
    return 0


def _print_start(config: AugmentConfig | VideoConfig, dataset: Any, what: str) -> None:
    """The resolved config, the source, what the dataset holds and the backend that renders it."""
    out = sys.stdout
    print("# resolved config (TOML: save it and pass it back with --config)", file=out)
    print(config.to_toml(), file=out)
    for name, path, src in zip(dataset.source_names, dataset.source_paths, dataset.sources, strict=True):
        print(f"source: {path or name} ({src.width}x{src.height} px)", file=out)
    print(f"dataset: {what}, seed {config.seed}, backend {dataset.backend}", file=out)


def _image(args: argparse.Namespace) -> Any:
    """What ``--imgpath`` gives the dataset: ``None`` (the default image), one path, or several."""
    if args.imgpath is None:
        return None
    return args.imgpath[0] if len(args.imgpath) == 1 else args.imgpath


def _print_result(result: ExportResult, noun: str, unit: str, target: Path) -> None:
    rate = result.written / result.seconds if result.seconds > 0 else 0.0
    print(
        f"wrote {result.written} {noun} ({result.skipped} already there) in {result.seconds:.1f} s "
        f"({rate:.0f} {unit}/s); manifest: {target / MANIFEST_NAME}",
        file=sys.stdout,
    )


def _resolve_config(args: argparse.Namespace, cls: type[ConfigBase]) -> Any:
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    given = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    if args.debug and args.num_imgs is None:
        given["num_imgs"] = DEBUG_NUM_IMGS
    if args.config is None:
        return cls.from_dict({}, **given)
    try:
        return cls.from_toml(args.config, **given)
    except ValueError as exc:
        if not args.video and "unknown key 'clip_len'" in str(exc):
            raise ValueError(f"{exc}; this is a fake-video preset: add --video") from None
        raise


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror if exc.filename is None else f"{exc.strerror}: {exc.filename}"
    else:
        text = str(exc)
    return " ".join(text.split())


def _int_in(lo: int, hi: int | None) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"should be an integer, got {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            bounds = f"in [{lo}, {hi}]" if hi is not None else f"at least {lo}"
            raise argparse.ArgumentTypeError(f"should be {bounds}, got {value}")
        return value

    return parse


def _path(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("should be a path, got an empty string")
    return text


def _shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(part) for part in text.split("/"))
        shard_range(1, k, n)
    except ValueError:
        raise argparse.ArgumentTypeError(f"should be K/N with 0 <= K < N (K counts from 0), got {text!r}") from None
    return k, n
