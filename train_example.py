"""Self-supervised pretraining on a single image: RotNet or DeepCluster on an AlexNet, then linear probes.

With no arguments: a few-minute CPU demo of RotNet on the embedded default photograph (coffee).

    python train_example.py                                      # CPU demo
    python train_example.py --method deepcluster --k 100         # DeepCluster
    python train_example.py --probe probe_set/                   # + linear probes conv1..conv5
    torchrun --nproc_per_node 8 train_example.py --device cuda --num_imgs 1281167 --img_size 256 \\
        --crop 224 --width 1 --dropout 0.5 --batch_size 64 --lr 0.05 --epochs 30 --workers 8 --resume

The program lives in the ``training/`` package beside this file (not installed with the library; Python
finds it because it puts this file's folder on ``sys.path``, whatever the working directory); this file is
only its command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from single_image_dataset import available_backends
from single_image_dataset.cli import OneLineErrorParser
from training import AUTO_RESUME, METHODS, TrainConfig, resumed_config, train

__all__ = ["build_parser", "given_settings", "main"]

_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    def _get_help_string(self, action: argparse.Action) -> str | None:
        # Unset (None) and off (False) defaults are described in the help text itself.
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def build_parser(with_defaults: bool = True) -> argparse.ArgumentParser:
    """The command line; every flag is a field of :class:`TrainConfig` with its default.

    Args:
        with_defaults: ``False`` leaves a flag that is not given out of the parsed namespace.
    """
    p = OneLineErrorParser(
        prog="train_example.py",
        help_hint=False,
        description="RotNet or DeepCluster on a SingleImageDataset, with linear probes; runs under torchrun.",
        formatter_class=_Formatter,
        argument_default=None if with_defaults else argparse.SUPPRESS,
    )
    d = _DEFAULTS if with_defaults else dict.fromkeys(_DEFAULTS, argparse.SUPPRESS)
    data = p.add_argument_group("data")
    data.add_argument("--imgpath", default=d["imgpath"], help="source image (default: the embedded coffee photograph)")
    data.add_argument("--backend", default=d["backend"], choices=available_backends(), help="dataset renderer")
    data.add_argument("--num_imgs", type=int, default=d["num_imgs"], help="training indices 0..num_imgs-1")
    data.add_argument("--val_imgs", type=int, default=d["val_imgs"], help="held-out indices for RotNet accuracy")
    data.add_argument("--img_size", type=int, default=d["img_size"], help="side of the dataset's images")
    data.add_argument("--resample", action="store_true", help="fresh augmentations every epoch (set_epoch)")
    data.add_argument("--workers", type=int, default=d["workers"], help="DataLoader workers per process")

    model = p.add_argument_group("method and network")
    model.add_argument("--method", default=d["method"], choices=METHODS, help="self-supervised task")
    model.add_argument("--crop", type=int, default=d["crop"], help="network input side (default: img_size)")
    model.add_argument("--width", type=float, default=d["width"], help="AlexNet channel multiplier (1 = paper)")
    model.add_argument("--dropout", type=float, default=d["dropout"], help="fc dropout (paper: 0.5)")
    model.add_argument("--k", type=int, default=d["k"], help="DeepCluster clusters")
    model.add_argument("--pca_dim", type=int, default=d["pca_dim"], help="DeepCluster PCA dimension")
    model.add_argument("--kmeans_iters", type=int, default=d["kmeans_iters"], help="k-means iterations")

    opt = p.add_argument_group("optimisation")
    opt.add_argument("--epochs", type=int, default=d["epochs"], help="total epochs, counting resumed ones")
    opt.add_argument("--batch_size", type=int, default=d["batch_size"], help="images per step and process")
    opt.add_argument("--lr", type=float, default=d["lr"], help="SGD learning rate (momentum 0.9)")
    opt.add_argument("--weight_decay", type=float, default=d["weight_decay"], help="SGD weight decay")
    opt.add_argument("--seed", type=int, default=d["seed"], help="dataset, initialisation, order and k-means seed")
    opt.add_argument("--device", default=d["device"], help="cpu, cuda, cuda:1 (default: cuda if available)")

    run = p.add_argument_group("outputs")
    run.add_argument("--out", default=d["out"], help="folder for checkpoint.pt, train.log, metrics.jsonl")
    run.add_argument(
        "--resume", nargs="?", const=AUTO_RESUME, default=d["resume"], metavar="CKPT",
        help="continue from CKPT; alone: from OUT/checkpoint.pt if it exists",
    )
    run.add_argument("--probe", default=d["probe"], metavar="DIR", help="ImageFolder with train/ and val/ to probe")
    run.add_argument("--probe_epochs", type=int, default=d["probe_epochs"], help="epochs of probe training")
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
    try:
        train(resumed_config(vars(args), given_settings(argv)))
    except FloatingPointError as exc:
        print(f"train_example.py: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except (ValueError, TypeError, OSError) as exc:
        print(f"train_example.py: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("train_example.py: interrupted", file=sys.stderr)
        return 130
    return 0


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


if __name__ == "__main__":
    sys.exit(main())
