"""The command line of ``train_example.py``: every flag is a field of :class:`~training.TrainConfig`."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable

from single_image_dataset import available_backends
from single_image_dataset.cli import OneLineErrorParser

from .checkpoint import resumed_config
from .config import AUTO_RESUME, TrainConfig
from .data import LOADERS
from .methods import METHODS
from .train import run_training

__all__ = ["build_parser", "exit_status", "given_settings", "main", "one_line"]

_DEFAULTS = dataclasses.asdict(TrainConfig())  # the defaults as this installation resolves them


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    def _get_help_string(self, action: argparse.Action) -> str | None:
        # Unset (None) and off (False) defaults are described in the help text itself.
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def build_parser(with_defaults: bool = True, prog: str = "train_example.py") -> argparse.ArgumentParser:
    """The command line; every flag is a field of :class:`TrainConfig` with its default.

    Args:
        with_defaults: ``False`` leaves a flag that is not given out of the parsed namespace.
        prog: the program name errors start with.
    """
    p = OneLineErrorParser(
        prog=prog,
        help_hint=False,
        description="RotNet, DeepCluster, BiGAN or SimCLR on a SingleImageDataset, with linear probes; torchrun-ready.",
        formatter_class=_Formatter,
        argument_default=None if with_defaults else argparse.SUPPRESS,
    )
    d = _DEFAULTS if with_defaults else dict.fromkeys(_DEFAULTS, argparse.SUPPRESS)
    data = p.add_argument_group("data")
    data.add_argument("--imgpath", nargs="+", metavar="PATH", default=d["imgpath"],
                      help="source image(s), or a directory of them (default: the embedded coffee photograph)")
    data.add_argument("--per_source_classes", action="store_true",
                      help="the samples' sources as targets: RotNet's accuracy and DeepCluster's NMI per source")
    data.add_argument(
        "--backend", default=d["backend"], choices=available_backends(),
        help="dataset renderer; its default is fast where the library's C extension was built, else reference",
    )
    data.add_argument("--loader", default=d["loader"], choices=LOADERS,
                      help="batch: whole batches from batch_loader; sample: a DataLoader of single samples")
    data.add_argument("--num_imgs", type=int, default=d["num_imgs"], help="training indices 0..num_imgs-1")
    data.add_argument("--val_imgs", type=int, default=d["val_imgs"], help="held-out indices after them")
    data.add_argument("--img_size", type=int, default=d["img_size"], help="side of the dataset's images")
    data.add_argument("--resample", action="store_true", help="fresh samples every epoch (set_epoch)")
    data.add_argument("--workers", type=int, default=d["workers"], help="loader workers per process")

    model = p.add_argument_group("method and network")
    model.add_argument("--method", default=d["method"], choices=list(METHODS), help="self-supervised method")
    model.add_argument("--crop", type=int, default=d["crop"], help="network input side (default: img_size)")
    model.add_argument("--width", type=float, default=d["width"], help="AlexNet channel multiplier (1 = paper)")
    model.add_argument("--dropout", type=float, default=d["dropout"], help="fc dropout (paper: 0.5)")
    model.add_argument("--k", type=int, default=d["k"], help="DeepCluster clusters")
    model.add_argument("--pca_dim", type=int, default=d["pca_dim"], help="DeepCluster PCA dimension")
    model.add_argument("--kmeans_iters", type=int, default=d["kmeans_iters"], help="k-means iterations")
    model.add_argument("--temperature", type=float, default=d["temperature"], help="SimCLR's NT-Xent temperature")

    opt = p.add_argument_group("optimisation")
    opt.add_argument("--epochs", type=int, default=d["epochs"], help="total epochs, counting resumed ones")
    opt.add_argument("--batch_size", type=int, default=d["batch_size"], help="images per step and process")
    opt.add_argument("--lr", type=float, default=d["lr"],
                     help="learning rate (default: SGD 0.01 for rotnet and deepcluster, Adam 2e-4 for bigan, "
                          "SGD 0.075 for simclr)")
    opt.add_argument("--weight_decay", type=float, default=d["weight_decay"],
                     help="weight decay (default: 5e-4, 2.5e-5 for bigan, 1e-6 for simclr)")
    opt.add_argument("--seed", type=int, default=d["seed"], help="dataset, crops, views, init, order, k-means")
    opt.add_argument("--device", default=d["device"], help="cpu, cuda, cuda:1 (default: cuda if available)")

    run = p.add_argument_group("outputs")
    run.add_argument("--out", default=d["out"], help="folder for checkpoint.pt, train.log, metrics.jsonl")
    run.add_argument(
        "--resume", nargs="?", const=AUTO_RESUME, default=d["resume"], metavar="CKPT",
        help="continue from CKPT; alone: from OUT/checkpoint.pt if it exists",
    )
    run.add_argument("--keep_checkpoints", action="store_true", help="also keep OUT/checkpoint_epochNNN.pt")
    run.add_argument("--probe", default=d["probe"], metavar="DIR", help="ImageFolder with train/ and val/ to probe")
    run.add_argument("--probe_epochs", type=int, default=d["probe_epochs"], help="epochs of probe training")
    run.add_argument("--probe_seed", type=int, default=d["probe_seed"],
                     help="seed of the probes and the random-init network")
    run.add_argument("--probe_only", action="store_true", help="only probe the --resume checkpoint")
    run.add_argument("--log_every", type=int, default=d["log_every"], help="steps between progress lines")
    run.add_argument("--log_indices", action="store_true", help="write each rank's indices to OUT/indices_rank*.txt")
    return p


def given_settings(argv: list[str] | None = None) -> set[str]:
    """The settings given on the command line ``argv``; on ``--resume`` the others come from the checkpoint.

    Example:
        >>> sorted(given_settings(["--resume", "--num_imgs", "512", "--resample"]))
        ['num_imgs', 'resample', 'resume']
    """
    return set(vars(build_parser(with_defaults=False).parse_args(argv)))


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, train, and return the exit status: 2 and one stderr line for bad input (a bad flag, image,
    checkpoint or folder), 1 and one line if the training diverges."""
    args = build_parser().parse_args(argv)
    return exit_status("train_example.py", lambda: run_training(resumed_config(vars(args), given_settings(argv))))


def exit_status(prog: str, run: Callable[[], object], interrupted: str = "interrupted") -> int:
    """Call ``run`` and return the exit status of a training program: 0; 1 and one stderr line if the training
    diverges; 2 and one line for bad input (a bad image, checkpoint or folder); 130 and ``interrupted`` on Ctrl-C."""
    try:
        run()
    except FloatingPointError as exc:
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        return 1
    except (ValueError, TypeError, OSError) as exc:
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: {interrupted}", file=sys.stderr)
        return 130
    return 0


def one_line(exc: BaseException) -> str:
    """An exception's message on one line."""
    return " ".join(str(exc).split())
