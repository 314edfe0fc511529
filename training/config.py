"""``TrainConfig``: every setting of a training run, checked when it is made."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from single_image_dataset import MAX_IMG_SIZE, available_backends, default_backend

from .alexnet import min_input_size
from .data import LOADERS
from .methods import METHODS

__all__ = ["AUTO_RESUME", "MAX_NUM_IMGS", "MAX_WIDTH", "MAX_WORKERS", "SETTINGS_ADDED", "TrainConfig",
           "check_settings"]

#: ``resume`` value meaning "``out/checkpoint.pt`` if it exists, else start from scratch".
AUTO_RESUME = "auto"
#: Largest ``width``: four times the paper's AlexNet, about 16 times its 61 M parameters.
MAX_WIDTH = 4.0
#: Most DataLoader ``workers`` per training process: a typo such as 10000 must not start ten thousand processes.
MAX_WORKERS = 256
#: Most indices (``num_imgs + val_imgs``) a run may use: each epoch holds its shuffled order in memory
#: (8 bytes an index), so 10**8 indices (78 times ImageNet's 1,281,167) keep that under 1 GB.
MAX_NUM_IMGS = 10**8


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run; ``train_example.py`` exposes each field as a flag.

    The defaults are a CPU demo of a few minutes: RotNet on the embedded image, 64 px, a
    quarter-width AlexNet. The paper's scale is ``num_imgs=1281167, img_size=256, crop=224, width=1``.

    Args:
        method: a name of :data:`~training.methods.METHODS` (``"rotnet"``, ``"deepcluster"``, ``"bigan"``,
            ``"simclr"``).
        imgpath: the source image, several of them, or a directory of them (as ``SingleImageDataset`` takes
            them); ``None`` is the embedded default photograph (coffee).
        per_source_classes: the samples' sources as targets, for the methods that report against them
            (RotNet's held-out accuracy per source, DeepCluster's NMI between clusters and sources).
        backend: the dataset's renderer (default: the library's `default_backend()`, `fast` where its C extension
            was built).
        loader: ``"batch"``: whole batches from ``batch_loader``, the views and labels made as batch
            operations on the training device; ``"sample"``: a ``DataLoader`` of single samples. Both give
            the same batches.
        num_imgs: training indices ``0 .. num_imgs - 1`` of the dataset.
        val_imgs: held-out indices ``num_imgs ..`` (RotNet's rotation accuracy, BiGAN's reconstructions).
        img_size: side of the dataset's images.
        crop: side of the network's input (random crop in training, centre crop otherwise);
            ``None`` means ``img_size``.
        width: AlexNet channel multiplier (1 is the paper's network), at most :data:`MAX_WIDTH`.
        dropout: AlexNet's fc dropout (the paper's is 0.5; 0 suits the short demo).
        epochs: total epochs (a resumed run continues up to this number).
        batch_size: images per step and process (RotNet feeds all four rotations of each).
        workers: loader worker processes per training process, at most :data:`MAX_WORKERS`.
        lr: learning rate; ``None`` is the method's (SGD 0.01 for RotNet and DeepCluster, Adam 2e-4 for BiGAN,
            SGD 0.075 for SimCLR).
        weight_decay: weight decay; ``None`` is the method's (5e-4, 2.5e-5 for BiGAN, 1e-6 for SimCLR).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; ``None`` picks CUDA when available. Under
            torchrun each process uses ``cuda:LOCAL_RANK``.
        out: folder for ``checkpoint.pt``, ``train.log``, ``metrics.jsonl`` and ``probe.json``.
        k: DeepCluster's number of clusters.
        pca_dim: DeepCluster's PCA dimension (capped at the feature dimension).
        kmeans_iters: Lloyd iterations per clustering.
        temperature: SimCLR's NT-Xent temperature (0.5, the best of the paper's CIFAR-10 study for any batch size).
        probe: an ImageFolder root with ``train/`` and ``val/``; after training, linear probes on
            conv1..conv5 are evaluated there for the trained network and a random-init one.
        probe_epochs: epochs of probe training.
        probe_seed: seeds the probes and the random-init network, apart from ``seed``.
        probe_only: only probe the checkpoint ``resume`` names (no training, nothing written but
            ``probe.json`` and ``train.log``).
        seed: seeds the dataset, the crops and views, the network's initialisation, the data order and k-means.
        resume: a checkpoint to continue from, or ``"auto"`` for ``out/checkpoint.pt`` if present; the run
            must have the checkpoint's dataset and network settings (see :func:`~training.resumed_config`).
        resample: draw fresh samples every epoch (``set_epoch``) instead of the paper's fixed dataset.
        keep_checkpoints: also keep each epoch's checkpoint as ``checkpoint_epoch{N:03d}.pt``.
        log_indices: write the dataset indices each process trained on to ``out/indices_rank{r}.txt``.
        log_every: steps between progress lines.

    Raises:
        ValueError, FileNotFoundError, NotADirectoryError: a setting is out of range, empty, or names
            a missing file (``out``: a file); the message names the setting.
        TypeError: a setting of the wrong type.

    Example:
        >>> TrainConfig().input_size, TrainConfig(img_size=256, crop=224).input_size
        (64, 224)
        >>> TrainConfig(method="swav")
        Traceback (most recent call last):
        ...
        ValueError: method should be one of rotnet, deepcluster, bigan, simclr, got 'swav'
    """

    method: str = "rotnet"
    imgpath: tuple[str, ...] | None = None
    per_source_classes: bool = False
    backend: str = field(default_factory=default_backend)
    loader: str = "batch"
    num_imgs: int = 8192
    val_imgs: int = 512
    img_size: int = 64
    crop: int | None = None
    width: float = 0.25
    dropout: float = 0.0
    epochs: int = 4
    batch_size: int = 64
    workers: int = 1
    lr: float | None = None
    weight_decay: float | None = None
    device: str | None = None
    out: str = "runs/train_example"
    k: int = 100
    pca_dim: int = 256
    kmeans_iters: int = 20
    temperature: float = 0.5
    probe: str | None = None
    probe_epochs: int = 10
    probe_seed: int = 0
    probe_only: bool = False
    seed: int = 0
    resume: str | None = None
    resample: bool = False
    keep_checkpoints: bool = False
    log_indices: bool = False
    log_every: int = 20

    def __post_init__(self) -> None:
        if isinstance(self.imgpath, (str, list)):  # one path, or a list (as JSON and checkpoints hold it)
            paths = (self.imgpath,) if isinstance(self.imgpath, str) else tuple(self.imgpath)
            object.__setattr__(self, "imgpath", paths)
        check_settings(self.to_dict())
        if self.method not in METHODS:
            raise ValueError(f"method should be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.backend not in available_backends():
            raise ValueError(f"backend should be one of {', '.join(available_backends())}, got {self.backend!r}")
        if self.loader not in LOADERS:
            raise ValueError(f"loader should be one of {', '.join(LOADERS)}, got {self.loader!r}")
        for name, (low, high) in _INT_RANGES.items():
            value = getattr(self, name)
            if value < low or (high is not None and value > high):
                bounds = f"at least {low}" if high is None else f"in [{low}, {high}]"
                raise ValueError(f"{name} should be {bounds}, got {value}")
        if self.num_imgs + self.val_imgs > MAX_NUM_IMGS:
            raise ValueError(
                f"num_imgs + val_imgs should be at most {MAX_NUM_IMGS:,} (an epoch holds its shuffled order in "
                f"memory), got {self.num_imgs + self.val_imgs:,}"
            )
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr should be a positive learning rate, got {self.lr:g}")
        if self.weight_decay is not None and not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay should be non-negative, got {self.weight_decay:g}")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"temperature should be a positive number (SimCLR's is 0.5), got {self.temperature:g}")
        if not (math.isfinite(self.width) and 0 < self.width <= MAX_WIDTH):
            raise ValueError(
                f"width should be a positive channel multiplier of at most {MAX_WIDTH:g}, got {self.width:g}"
            )
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout should be a probability in [0, 1), got {self.dropout:g}")
        if not min_input_size() <= self.input_size <= self.img_size:
            raise ValueError(
                f"crop should be between {min_input_size()} (AlexNet's smallest input) and img_size={self.img_size}, "
                f"got {self.input_size}"
            )
        if self.batch_size > self.num_imgs:
            raise ValueError(f"batch_size={self.batch_size} should not exceed num_imgs={self.num_imgs}")
        METHODS[self.method].check_config(self)
        self._check_paths()
        if self.device is not None:
            _check_device(self.device)

    def _check_paths(self) -> None:
        if self.imgpath is not None:
            if len(self.imgpath) == 0:
                raise ValueError("imgpath is an empty list; leave it out for the default image, or give paths")
            for path in self.imgpath:
                if len(self.imgpath) == 1 and Path(path).is_dir():
                    continue
                if not Path(path).is_file():
                    what = "; give image files, or one directory alone" if Path(path).is_dir() else ""
                    raise FileNotFoundError(f"imgpath {path} is not a file{what}")
        if self.probe is not None:
            for split in ("train", "val"):
                if not (Path(self.probe) / split).is_dir():
                    raise FileNotFoundError(
                        f"probe {self.probe} should be an ImageFolder root with train/ and val/; {split}/ is missing"
                    )
        if self.probe_only and (self.probe is None or self.resume is None):
            raise ValueError("probe_only probes a checkpoint: give probe (an ImageFolder root) and resume (the "
                             "checkpoint, or auto for out/checkpoint.pt)")
        if Path(self.out).exists() and not Path(self.out).is_dir():
            raise NotADirectoryError(f"out {self.out} exists and is not a folder; give a folder for checkpoint.pt, "
                                     "train.log and metrics.jsonl")

    @property
    def input_size(self) -> int:
        """Side of the network's input images."""
        return self.img_size if self.crop is None else self.crop

    @property
    def images(self) -> str | list[str] | None:
        """``imgpath`` as ``SingleImageDataset`` takes it: ``None``, one path (a file or a directory), or a list."""
        if self.imgpath is None:
            return None
        return self.imgpath[0] if len(self.imgpath) == 1 else list(self.imgpath)

    def to_dict(self) -> dict[str, Any]:
        """Plain values, storable in a ``weights_only`` checkpoint and in JSON."""
        values = dataclasses.asdict(self)
        values["imgpath"] = None if self.imgpath is None else list(self.imgpath)
        return values


def _check_device(name: str) -> None:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device should be like cpu, cuda or cuda:1, got {name!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device {name!r} cannot train this program; use cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} was asked for but CUDA is not available")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(f"device {name!r} does not exist: this machine has {count} CUDA device(s), "
                             f"cuda:0 to cuda:{count - 1}")


def check_settings(settings: Mapping[str, Any]) -> None:
    """Each setting's type, and no empty string where a path or a device is expected.

    Raises:
        TypeError: a setting of the wrong type, or a name that is not a setting.
        ValueError: an empty path or device.
    """
    for name, value in settings.items():
        _check_setting_type(name, value)
    for name in ("out", "probe", "resume", "device"):
        if settings.get(name) == "":
            raise ValueError(f"{name} is empty; leave it out for the default, or give a value")
    if any(path == "" for path in settings.get("imgpath") or ()):
        raise ValueError("imgpath is empty; leave it out for the default, or give a value")


# The Python types each kind of TrainConfig annotation accepts (bools are not numbers here).
_KINDS: dict[str, tuple[type, ...]] = {
    "str": (str,), "int": (int,), "float": (int, float), "bool": (bool,), "tuple[str, ...]": (str, list, tuple),
}
_EXPECTED = {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false",
             "tuple[str, ...]": "a path or a list of paths"}


def _check_setting_type(name: str, value: Any) -> None:
    """Refuse a value of the wrong type for the :class:`TrainConfig` field ``name``, naming the field.

    Example:
        >>> _check_setting_type("num_imgs", "512")
        Traceback (most recent call last):
        ...
        TypeError: num_imgs should be an integer, got '512'
    """
    annotation = _ANNOTATIONS.get(name)
    if annotation is None:
        raise TypeError(f"{name!r} is not a setting of train_example.py")
    kind, optional = annotation.removesuffix(" | None"), annotation.endswith(" | None")
    if value is None and optional:
        return
    wrong = not isinstance(value, _KINDS[kind]) or (kind != "bool" and isinstance(value, bool))
    if kind == "tuple[str, ...]" and not wrong and not isinstance(value, str):
        wrong = not all(isinstance(path, str) for path in value)
    if wrong:
        none = " or None" if optional else ""
        raise TypeError(f"{name} should be {_EXPECTED[kind]}{none}, got {value!r}")


#: Settings added since checkpoint format 2 and the study's first cell records, with the value a checkpoint or
#: record that lacks them was trained with.
SETTINGS_ADDED: dict[str, Any] = {"temperature": TrainConfig.temperature}

_ANNOTATIONS = {f.name: str(f.type) for f in dataclasses.fields(TrainConfig)}
_INT_RANGES: dict[str, tuple[int, int | None]] = {
    "num_imgs": (1, MAX_NUM_IMGS),
    "val_imgs": (0, MAX_NUM_IMGS),
    "img_size": (1, MAX_IMG_SIZE),
    "epochs": (1, None),
    "batch_size": (1, None),
    "workers": (0, MAX_WORKERS),
    "pca_dim": (1, None),
    "probe_epochs": (1, None),
    "log_every": (1, None),
    "kmeans_iters": (0, None),
    "seed": (0, 2**63 - 1),
    "probe_seed": (0, 2**63 - 1),
}
