"""The training loop of ``train_example.py``: RotNet or DeepCluster on a SingleImageDataset, DDP-ready."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import math
import os
import sys
import time
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Subset

from single_image_dataset import (
    MAX_IMG_SIZE,
    NUM_ROTATIONS,
    PseudoLabelled,
    SingleImageDataset,
    available_backends,
    rotate_batch,
)
from single_image_dataset.source import pixel_sha256

from .alexnet import AlexNet, min_input_size
from .deepcluster import cluster_features, compute_features, uniform_cluster_indices
from .kmeans import normalized_mutual_info
from .probe import linear_probe
from .rotnet import rotation_accuracy
from .transforms import pretrain_transforms

__all__ = [
    "AUTO_RESUME",
    "MAX_WIDTH",
    "MAX_WORKERS",
    "METHODS",
    "RESUME_FIXED",
    "RESUME_TAKEN",
    "TrainConfig",
    "resumed_config",
    "train",
]

METHODS = ("rotnet", "deepcluster")
#: ``resume`` value meaning "``out/checkpoint.pt`` if it exists, else start from scratch".
AUTO_RESUME = "auto"
_CHECKPOINT = "checkpoint.pt"
#: Largest ``width``: four times the paper's AlexNet, about 16 times its 61 M parameters.
MAX_WIDTH = 4.0
#: Most DataLoader ``workers`` per training process: a typo such as 10000 must not start ten thousand processes.
MAX_WORKERS = 256
# The package's logger, so that the probes' (training.probe) lines reach the same handlers.
_log = logging.getLogger("training")


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run; ``train_example.py`` exposes each field as a flag.

    The defaults are a CPU demo of a few minutes: RotNet on the embedded image, 64 px, a
    quarter-width AlexNet. The paper's scale is ``num_imgs=1281167, img_size=256, crop=224, width=1``.

    Args:
        method: ``"rotnet"`` or ``"deepcluster"``.
        imgpath: the source image; ``None`` is the embedded default photograph (coffee).
        backend: the dataset's renderer.
        num_imgs: training indices ``0 .. num_imgs - 1`` of the dataset.
        val_imgs: held-out indices ``num_imgs ..`` on which RotNet's rotation accuracy is measured.
        img_size: side of the dataset's images.
        crop: side of the network's input (random crop in training, centre crop otherwise);
            ``None`` means ``img_size``.
        width: AlexNet channel multiplier (1 is the paper's network), at most :data:`MAX_WIDTH`.
        dropout: AlexNet's fc dropout (the paper's is 0.5; 0 suits the short demo).
        epochs: total epochs (a resumed run continues up to this number).
        batch_size: images per step and process (RotNet feeds all four rotations of each).
        workers: DataLoader worker processes per training process, at most :data:`MAX_WORKERS`.
        lr: SGD learning rate (momentum 0.9).
        weight_decay: SGD weight decay.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; ``None`` picks CUDA when available. Under
            torchrun each process uses ``cuda:LOCAL_RANK``.
        out: folder for ``checkpoint.pt``, ``train.log``, ``metrics.jsonl`` and ``probe.json``.
        k: DeepCluster's number of clusters.
        pca_dim: DeepCluster's PCA dimension (capped at the feature dimension).
        kmeans_iters: Lloyd iterations per clustering.
        probe: an ImageFolder root with ``train/`` and ``val/``; after training, linear probes on
            conv1..conv5 are evaluated there for the trained network and a random-init one.
        probe_epochs: epochs of probe training.
        seed: seeds the dataset, the network's initialisation, the data order and k-means.
        resume: a checkpoint to continue from, or ``"auto"`` for ``out/checkpoint.pt`` if present; the run
            must have the checkpoint's dataset and network settings (see :func:`resumed_config`).
        resample: draw fresh augmentations every epoch (``set_epoch``) instead of the paper's
            fixed dataset.
        log_indices: write the dataset indices each process trained on to ``out/indices_rank{r}.txt``.
        log_every: steps between progress lines.

    Raises:
        ValueError, FileNotFoundError, NotADirectoryError: a setting is out of range, empty, or names
            a missing file (``out``: a file); the message names the setting.
        TypeError: a setting of the wrong type.

    Example:
        >>> TrainConfig().input_size, TrainConfig(img_size=256, crop=224).input_size
        (64, 224)
        >>> TrainConfig(method="simclr")
        Traceback (most recent call last):
        ...
        ValueError: method should be one of rotnet, deepcluster, got 'simclr'
    """

    method: str = "rotnet"
    imgpath: str | None = None
    backend: str = "reference"
    num_imgs: int = 8192
    val_imgs: int = 512
    img_size: int = 64
    crop: int | None = None
    width: float = 0.25
    dropout: float = 0.0
    epochs: int = 4
    batch_size: int = 64
    workers: int = 1
    lr: float = 0.01
    weight_decay: float = 5e-4
    device: str | None = None
    out: str = "runs/train_example"
    k: int = 100
    pca_dim: int = 256
    kmeans_iters: int = 20
    probe: str | None = None
    probe_epochs: int = 10
    seed: int = 0
    resume: str | None = None
    resample: bool = False
    log_indices: bool = False
    log_every: int = 20

    def __post_init__(self) -> None:
        _check_kinds(self.to_dict())
        if self.method not in METHODS:
            raise ValueError(f"method should be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.backend not in available_backends():
            raise ValueError(f"backend should be one of {', '.join(available_backends())}, got {self.backend!r}")
        for name, (low, high) in _INT_RANGES.items():
            value = getattr(self, name)
            if value < low or (high is not None and value > high):
                bounds = f"at least {low}" if high is None else f"in [{low}, {high}]"
                raise ValueError(f"{name} should be {bounds}, got {value}")
        if self.num_imgs + self.val_imgs > sys.maxsize:
            raise ValueError(f"num_imgs + val_imgs should be at most sys.maxsize ({sys.maxsize}), the most len() "
                             f"can return, got {self.num_imgs + self.val_imgs}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr should be a positive learning rate, got {self.lr:g}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay should be non-negative, got {self.weight_decay:g}")
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
        if self.method == "deepcluster" and not 2 <= self.k <= self.num_imgs:
            raise ValueError(f"k should be in [2, num_imgs={self.num_imgs}], got {self.k}")
        if self.imgpath is not None and not Path(self.imgpath).is_file():
            raise FileNotFoundError(f"imgpath {self.imgpath} is not a file")
        if self.probe is not None:
            for split in ("train", "val"):
                if not (Path(self.probe) / split).is_dir():
                    raise FileNotFoundError(
                        f"probe {self.probe} should be an ImageFolder root with train/ and val/; {split}/ is missing"
                    )
        if Path(self.out).exists() and not Path(self.out).is_dir():
            raise NotADirectoryError(f"out {self.out} exists and is not a folder; give a folder for checkpoint.pt, "
                                     "train.log and metrics.jsonl")
        if self.device is not None:
            _check_device(self.device)

    @property
    def input_size(self) -> int:
        """Side of the network's input images."""
        return self.img_size if self.crop is None else self.crop

    def to_dict(self) -> dict[str, Any]:
        """Plain values, storable in a ``weights_only`` checkpoint and in JSON."""
        return dataclasses.asdict(self)


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


def _check_kinds(settings: Mapping[str, Any]) -> None:
    """Each setting's type, and no empty string where a path or a device is expected."""
    for name, value in settings.items():
        _check_setting_type(name, value)
    for name in ("imgpath", "out", "probe", "resume", "device"):
        if settings.get(name) == "":
            raise ValueError(f"{name} is empty; leave it out for the default, or give a value")


# The Python types each kind of TrainConfig annotation accepts (bools are not numbers here).
_KINDS: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,)}
_EXPECTED = {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false"}


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
    if not isinstance(value, _KINDS[kind]) or (kind != "bool" and isinstance(value, bool)):
        none = " or None" if optional else ""
        raise TypeError(f"{name} should be {_EXPECTED[kind]}{none}, got {value!r}")


_ANNOTATIONS = {f.name: str(f.type) for f in dataclasses.fields(TrainConfig)}
_INT_RANGES: dict[str, tuple[int, int | None]] = {
    "num_imgs": (1, sys.maxsize),
    "val_imgs": (0, sys.maxsize),
    "img_size": (1, MAX_IMG_SIZE),
    "epochs": (1, None),
    "batch_size": (1, None),
    "workers": (0, MAX_WORKERS),
    "pca_dim": (1, None),
    "probe_epochs": (1, None),
    "log_every": (1, None),
    "kmeans_iters": (0, None),
    "seed": (0, 2**63 - 1),
}


@dataclass
class _Context:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resumed_config(settings: Mapping[str, Any], given: Collection[str]) -> TrainConfig:
    """The :class:`TrainConfig` of ``settings``; if they resume a checkpoint, its settings replace those not given.

    This is how ``train_example.py`` treats its flags: ``settings`` holds every field (the flags' defaults where
    not given) and ``given`` names the flags given. A resumed run continues the checkpoint's run: it takes its
    dataset and network settings (:data:`RESUME_FIXED`) and refuses a given one that differs, and it takes its
    optimisation settings (:data:`RESUME_TAKEN`) unless they are given.

    Raises:
        ValueError, TypeError, FileNotFoundError: as :class:`TrainConfig`; or a resume checkpoint that
            cannot be read, was altered, or conflicts with a given setting (the message names the
            checkpoint, the settings and both values).
    """
    _check_kinds(settings)
    found = _read_checkpoint(settings["out"], settings["resume"])
    if found is None:
        return TrainConfig(**settings)
    return _resumed(settings, *found, set(given))


def train(config: TrainConfig) -> dict[str, Any]:
    """Run ``config`` in this process (one rank of it under torchrun) and return its record.

    A resumed run must have the checkpoint's dataset and network settings (:data:`RESUME_FIXED`;
    :func:`resumed_config` takes them from the checkpoint) and the source image's pixels.

    Returns:
        ``{"history": [one dict per epoch trained now], "probe": {"trained": {...}, "random": {...}}
        or None, "assignments": the last DeepCluster labels or None}``.

    Raises:
        ValueError, FileNotFoundError: a resume checkpoint that cannot be read, was altered, or
            conflicts with ``config`` or with the source image; a bad source image.
        OSError: ``out`` cannot be created.
        FloatingPointError: the loss became NaN or infinite.
    """
    checkpoint = None
    found = _read_checkpoint(config.out, config.resume)
    if found is not None:
        config = _resumed(config.to_dict(), *found, set(config.to_dict()))
        checkpoint = _Checkpoint(*found)
    out = Path(config.out)
    ctx = _init_distributed(config)
    # The run seeds torch's global RNG (initialisation, dropout, the transforms' crops and flips);
    # forking it leaves the caller's random state as it was.
    rng_devices = [ctx.device.index or 0] if ctx.device.type == "cuda" else []
    try:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OSError(f"cannot create the out folder {out}: {exc.strerror or exc}") from None
        with _logging_to(out / "train.log" if ctx.is_main else None), torch.random.fork_rng(devices=rng_devices):
            return _train(config, ctx, out, checkpoint)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _init_distributed(config: TrainConfig) -> _Context:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    wants_cuda = torch.cuda.is_available() if config.device is None else torch.device(config.device).type == "cuda"
    if world_size == 1:
        device = torch.device(config.device or ("cuda" if wants_cuda else "cpu"))
        return _Context(0, 1, device)
    local_rank = int(os.environ["LOCAL_RANK"])
    if wants_cuda:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        device = torch.device("cpu")
        dist.init_process_group("gloo")
    return _Context(dist.get_rank(), dist.get_world_size(), device)


@contextlib.contextmanager
def _logging_to(path: Path | None) -> Iterator[None]:
    """Progress lines to stdout and ``path`` on the main process; warnings only elsewhere."""
    handlers: list[logging.Handler] = []
    if path is not None:
        formatter = logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S")
        handlers = [logging.StreamHandler(sys.stdout), logging.FileHandler(path)]
        for handler in handlers:
            handler.setFormatter(formatter)
            _log.addHandler(handler)
    previous = _log.level
    _log.setLevel(logging.INFO if path is not None else logging.WARNING)
    try:
        yield
    finally:
        _log.setLevel(previous)
        for handler in handlers:
            _log.removeHandler(handler)
            handler.close()


def _seed(*words: int) -> int:
    """A 63-bit seed from several integers (never ``hash()``, which is salted per process)."""
    return int(np.random.SeedSequence(list(words)).generate_state(1, np.uint64)[0] >> np.uint64(1))


def _train(config: TrainConfig, ctx: _Context, out: Path, checkpoint: _Checkpoint | None) -> dict[str, Any]:
    train_tf, eval_tf = pretrain_transforms(config.method, config.input_size)
    data_args = {"backend": config.backend, "img_size": config.img_size, "seed": config.seed}
    train_set = SingleImageDataset(config.imgpath, num_imgs=config.num_imgs, transform=train_tf, **data_args)
    source_sha256 = pixel_sha256(train_set.source)
    # Features (DeepCluster) and held-out accuracy (RotNet) use the un-augmented samples; indices
    # past num_imgs are new images of the same stream, never trained on.
    eval_set = SingleImageDataset(
        config.imgpath, num_imgs=config.num_imgs + config.val_imgs, transform=eval_tf, **data_args
    )
    num_classes = NUM_ROTATIONS if config.method == "rotnet" else config.k

    torch.manual_seed(_seed(config.seed, 0))
    model = AlexNet(num_classes, width=config.width, input_size=config.input_size, dropout=config.dropout)
    model.to(ctx.device)
    trunk_params = [p for n, p in model.named_parameters() if not n.startswith("top_layer.")]
    optimizer = torch.optim.SGD(
        trunk_params if config.method == "deepcluster" else model.parameters(),
        lr=config.lr, momentum=0.9, weight_decay=config.weight_decay,
    )
    start_epoch, assignments, history = 0, None, []
    if checkpoint is not None:
        start_epoch, assignments, history = _restore(checkpoint, config, model, optimizer, source_sha256)
    elif config.resume is not None:
        _log.info("no checkpoint at %s, starting from scratch", _checkpoint_path(config.out, config.resume))
    _log.info(
        "%s on %s: %d images of %d px (input %d), AlexNet width %g, %d process(es) on %s, %s",
        config.method, train_set.root, config.num_imgs, config.img_size, config.input_size, config.width,
        ctx.world_size, ctx.device,
        f"epochs {start_epoch + 1}..{config.epochs}" if start_epoch < config.epochs else "already trained",
    )
    net: nn.Module = model
    if ctx.world_size > 1:
        net = DistributedDataParallel(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)

    new_history = []
    for epoch in range(start_epoch, config.epochs):
        if config.resample:
            train_set.set_epoch(epoch)
            eval_set.set_epoch(epoch)
        record: dict[str, Any] = {"epoch": epoch + 1}
        if config.method == "deepcluster":
            labels = _recluster(config, ctx, model, Subset(eval_set, range(config.num_imgs)), epoch)
            if assignments is not None:
                record["nmi"] = normalized_mutual_info(labels, assignments)
            record["clusters"] = int(labels.unique().numel())
            assignments = labels.cpu()
            indices = uniform_cluster_indices(labels, config.num_imgs, np.random.default_rng([config.seed, epoch]))
            view = PseudoLabelled(train_set, indices, assignments)
            model.reset_top_layer(torch.Generator(device=ctx.device).manual_seed(_seed(config.seed, epoch, 1)))
            head_optimizer = torch.optim.SGD(
                model.top_layer.parameters(), lr=config.lr, weight_decay=config.weight_decay
            )
            optimizers = [optimizer, head_optimizer]
        else:
            view = PseudoLabelled(train_set)
            optimizers = [optimizer]
        record.update(_train_epoch(config, ctx, net, view, optimizers, epoch, out))
        if config.method == "rotnet" and ctx.is_main and config.val_imgs:
            held_out = Subset(eval_set, range(config.num_imgs, config.num_imgs + config.val_imgs))
            loader = DataLoader(held_out, batch_size=config.batch_size, num_workers=config.workers)
            record["val_rotation_acc"] = rotation_accuracy(model, (x for x, _ in loader), ctx.device)
        _log.info("epoch %d/%d: %s", epoch + 1, config.epochs, _format(record))
        history.append(record)
        new_history.append(record)
        if ctx.is_main:
            with open(out / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
            _save_checkpoint(
                out / _CHECKPOINT, config, epoch + 1, model, optimizer, assignments, history, source_sha256
            )

    probe = None
    if config.probe is not None:
        if ctx.is_main:
            probe = _probe(config, ctx, model, out)
        if ctx.world_size > 1:
            dist.barrier()
    return {"history": new_history, "probe": probe, "assignments": assignments}


def _recluster(
    config: TrainConfig, ctx: _Context, model: AlexNet, dataset: Subset, epoch: int
) -> torch.Tensor:
    """Features of every training index, PCA + whitening + L2, k-means: this epoch's pseudo-labels."""
    t0 = time.perf_counter()
    features = compute_features(
        model, dataset, config.batch_size, config.workers, ctx.device, ctx.rank, ctx.world_size
    )
    labels = torch.empty(len(dataset), dtype=torch.int64, device=ctx.device)
    if features is not None:
        generator = torch.Generator(device=ctx.device).manual_seed(_seed(config.seed, epoch, 2))
        labels = cluster_features(features, config.k, config.pca_dim, generator, config.kmeans_iters)
    if ctx.world_size > 1:
        dist.broadcast(labels, 0)
    _log.info("epoch %d: clustered %d features into %d clusters in %.1fs",
              epoch + 1, len(dataset), config.k, time.perf_counter() - t0)
    return labels


def _train_epoch(
    config: TrainConfig,
    ctx: _Context,
    net: nn.Module,
    view: PseudoLabelled,
    optimizers: list[torch.optim.Optimizer],
    epoch: int,
    out: Path,
) -> dict[str, float]:
    sampler = DistributedSampler(
        view, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=config.seed, drop_last=True
    )
    sampler.set_epoch(epoch)
    loader = DataLoader(
        view, batch_size=config.batch_size, sampler=sampler, num_workers=config.workers, drop_last=True,
        pin_memory=ctx.device.type == "cuda",
    )
    if len(loader) == 0:
        raise ValueError(
            f"batch_size={config.batch_size} exceeds the {len(sampler)} samples each of the {ctx.world_size} "
            "processes gets; lower batch_size or raise num_imgs"
        )
    loss_fn = nn.CrossEntropyLoss()
    net.train()
    losses = []
    t0 = time.perf_counter()
    for step, (x, y) in enumerate(loader, 1):
        x, y = x.to(ctx.device, non_blocking=True), y.to(ctx.device, non_blocking=True)
        if config.method == "rotnet":
            x, y = rotate_batch(x)
        loss = loss_fn(net(x), y)
        losses.append(loss.item())
        if not math.isfinite(losses[-1]):
            raise FloatingPointError(
                f"training diverged: the loss is {losses[-1]} at epoch {epoch + 1}, step {step}/{len(loader)}; "
                f"lower lr (now {config.lr:g}) and train again (checkpoint.pt, if any, holds the last finished epoch)"
            )
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for optimizer in optimizers:
            optimizer.step()
        if step % config.log_every == 0 or step == len(loader):
            rate = step * config.batch_size * ctx.world_size / (time.perf_counter() - t0)
            _log.info("epoch %d step %d/%d loss %.4f (%.0f img/s)", epoch + 1, step, len(loader), losses[-1], rate)
    if config.log_indices:
        # The loader took the sampler's positions in order, in full batches: the dataset indices trained on.
        positions = list(sampler)[: len(loader) * config.batch_size]
        with open(out / f"indices_rank{ctx.rank}.txt", "a", encoding="utf-8") as f:
            f.write(f"{epoch}: " + " ".join(str(int(view.indices[p])) for p in positions) + "\n")
    quarter = max(1, len(losses) // 4)
    return {
        "loss": sum(losses) / len(losses),
        "loss_first_quarter": sum(losses[:quarter]) / quarter,
        "loss_last_quarter": sum(losses[-quarter:]) / quarter,
        "seconds": time.perf_counter() - t0,
    }


def _save_checkpoint(
    path: Path,
    config: TrainConfig,
    epoch: int,
    model: AlexNet,
    optimizer: torch.optim.Optimizer,
    assignments: torch.Tensor | None,
    history: list[dict[str, Any]],
    source_sha256: str,
) -> None:
    # Tensors and plain containers only, so torch.load(weights_only=True) can read it back.
    state = {
        "method": config.method,
        "epoch": epoch,
        "config": config.to_dict(),
        "source_sha256": source_sha256,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "assignments": assignments,
        "history": history,
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


#: Settings that make the dataset and the network: a resumed run takes them from its checkpoint and
#: refuses a different value given explicitly.
RESUME_FIXED = (
    "method", "backend", "num_imgs", "img_size", "crop", "width", "dropout", "k", "pca_dim", "kmeans_iters", "seed",
    "resample",
)
#: Settings a resumed run takes from its checkpoint unless they are given: the optimisation, the held-out
#: indices, and the path of the source image (whose pixels must still be the checkpoint's).
RESUME_TAKEN = ("imgpath", "val_imgs", "epochs", "batch_size", "lr", "weight_decay")
_DEEPCLUSTER_ONLY = ("k", "pca_dim", "kmeans_iters")
_STATE_KEYS = ("method", "epoch", "config", "model", "optimizer", "assignments", "history")


@dataclass(frozen=True)
class _Checkpoint:
    """A checkpoint read and checked for resuming."""

    path: Path
    state: dict[str, Any]


def _checkpoint_path(out: str, resume: str) -> Path:
    return Path(out) / _CHECKPOINT if resume == AUTO_RESUME else Path(resume)


def _read_checkpoint(out: str, resume: str | None) -> tuple[Path, dict[str, Any]] | None:
    """The path and checked content of the checkpoint ``resume`` names; ``None`` if there is none (yet)."""
    if resume is None:
        return None
    path = _checkpoint_path(out, resume)
    if resume == AUTO_RESUME and not os.path.lexists(path):
        return None
    if not path.is_file():
        what = "is not a file" if resume != AUTO_RESUME else "is not a regular file; remove it or give --resume a file"
        raise FileNotFoundError(f"resume checkpoint {path} {what}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors alike for a bad file
        raise ValueError(
            f"resume checkpoint {path} could not be read ({type(exc).__name__}); "
            "is it a checkpoint.pt written by train_example.py, and complete?"
        ) from None
    _check_state(state, f"resume checkpoint {path}")
    return path, state


def _check_state(state: Any, where: str) -> None:
    """Refuse a checkpoint that was not written by :func:`_save_checkpoint` or was altered since."""
    if not isinstance(state, dict):
        raise ValueError(f"{where} holds a {type(state).__name__}, not the dict train_example.py writes")
    missing = [key for key in _STATE_KEYS if key not in state]
    if missing:
        raise ValueError(f"{where} has no {missing[0]!r}; is it a checkpoint.pt written by train_example.py?")
    epoch = state["epoch"]
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
        raise ValueError(f"{where} has epoch {epoch!r}; it should be the number of epochs trained, at least 1")
    saved = state["config"]
    if not isinstance(saved, dict):
        raise ValueError(f"{where} has a config of type {type(saved).__name__}, not a dict")
    try:
        for name, value in saved.items():
            _check_setting_type(name, value)
    except TypeError as exc:
        raise ValueError(f"{where}: config: {exc}") from None
    missing = [name for name in (*RESUME_FIXED, *RESUME_TAKEN) if name not in saved]
    if missing:
        raise ValueError(f"{where}: its config has no {missing[0]!r}")
    if state["method"] != saved["method"]:
        raise ValueError(f"{where} says method {state['method']!r} but its config method {saved['method']!r}")
    if not isinstance(state.get("source_sha256", ""), str):
        raise ValueError(f"{where} has a source_sha256 that is not a string")
    _check_tensors(state["model"], f"{where}: model", "weights", (torch.Tensor,))
    optimizer = state["optimizer"]
    if not (isinstance(optimizer, dict) and isinstance(optimizer.get("state"), dict)
            and isinstance(optimizer.get("param_groups"), list)):
        raise ValueError(f"{where}: optimizer should be an optimizer state dict (state, param_groups)")
    for key, buffers in optimizer["state"].items():
        _check_tensors(buffers, f"{where}: optimizer state {key}", "values", (torch.Tensor, int, float, type(None)))
    assignments = state["assignments"]
    if assignments is not None and not (isinstance(assignments, torch.Tensor) and assignments.dtype == torch.int64
                                        and assignments.ndim == 1):
        raise ValueError(f"{where}: assignments should be None or a 1-D int64 tensor")
    if not (isinstance(state["history"], list) and all(isinstance(h, dict) for h in state["history"])):
        raise ValueError(f"{where}: history should be a list of per-epoch dicts")


def _check_tensors(values: Any, where: str, what: str, kinds: tuple[type, ...]) -> None:
    """``values`` is a dict of ``kinds`` (tensors first), with no NaN or infinity in its floating-point tensors."""
    if not isinstance(values, dict):
        raise ValueError(f"{where} should be a dict of tensors, got {type(values).__name__}")
    for name, value in values.items():
        if not isinstance(value, kinds):
            raise ValueError(f"{where} should hold tensors, got a {type(value).__name__} at {name!r}")
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
            raise ValueError(f"{where} has NaN or infinite {what} in {name!r}; resume from an earlier checkpoint "
                             "or start again")


def _resumed(mine: Mapping[str, Any], path: Path, state: dict[str, Any], chosen: set[str]) -> TrainConfig:
    """The settings ``mine`` continuing checkpoint ``state``, with its settings for those not ``chosen``."""
    where = f"resume checkpoint {path}"
    saved = state["config"]
    conflicts = [name for name in RESUME_FIXED if name in chosen and _differs(name, mine, saved)]
    if conflicts:
        raise ValueError(
            f"{where} was trained with {_listed(saved, conflicts)}, not {_listed(mine, conflicts)}; a resumed run "
            "keeps its dataset and network: leave these settings out (or give the checkpoint's values), or start a "
            "new run in another out folder"
        )
    taken = {name: saved[name] for name in (*RESUME_FIXED, *RESUME_TAKEN) if name not in chosen}
    try:
        resumed = TrainConfig(**{**mine, **taken})
    except (ValueError, TypeError, FileNotFoundError) as exc:
        raise type(exc)(f"{where}: {exc}") from None
    epoch = state["epoch"]
    if epoch > resumed.epochs:
        raise ValueError(
            f"{where} is at epoch {epoch}, past epochs={resumed.epochs}; give epochs of {epoch} or more "
            f"({epoch} runs only the probes)"
        )
    return resumed


def _differs(name: str, mine: Mapping[str, Any], saved: dict[str, Any]) -> bool:
    """Whether setting ``name`` changes the run of the checkpoint ``saved``."""
    if name in _DEEPCLUSTER_ONLY and saved["method"] != "deepcluster":
        return False
    if name == "crop":  # no crop is a crop of img_size
        return mine["crop"] != saved["crop"] and (mine["crop"] or mine["img_size"]) != (
            saved["crop"] or saved["img_size"]
        )
    return mine[name] != saved[name]


def _listed(values: Mapping[str, Any], names: list[str]) -> str:
    return ", ".join(f"{name}={values[name]!r}" for name in names)


def _restore(
    checkpoint: _Checkpoint, config: TrainConfig, model: AlexNet, optimizer: torch.optim.Optimizer, source_sha256: str
) -> tuple[int, torch.Tensor | None, list[dict[str, Any]]]:
    """Load ``checkpoint`` into ``model`` and ``optimizer``: the epoch to start at, the last assignments, the
    history so far."""
    where, state = f"resume checkpoint {checkpoint.path}", checkpoint.state
    if state.get("source_sha256", source_sha256) != source_sha256:
        raise ValueError(
            f"{where} was trained on another source image than imgpath={config.imgpath!r} (the pixels differ); "
            "give the image it was trained on as imgpath"
        )
    try:
        model.load_state_dict(state["model"])
    except RuntimeError:
        raise ValueError(
            f"{where} does not fit the network of its own settings (width={config.width:g}, crop={config.crop}, "
            f"img_size={config.img_size}, k={config.k}): it was altered, or written by another version"
        ) from None
    try:
        optimizer.load_state_dict(state["optimizer"])
    except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as exc:
        raise ValueError(f"{where}: its optimizer state does not fit the network ({exc})") from None
    assignments = state["assignments"]
    if assignments is not None and (config.method != "deepcluster" or assignments.shape != (config.num_imgs,)
                                    or assignments.min() < 0 or assignments.max() >= config.k):
        raise ValueError(f"{where}: assignments should be {config.num_imgs} cluster labels in [0, {config.k}) "
                         "of a deepcluster run")
    _log.info("resumed from %s after epoch %d", checkpoint.path, state["epoch"])
    return state["epoch"], assignments, list(state["history"])


def _probe(config: TrainConfig, ctx: _Context, model: AlexNet, out: Path) -> dict[str, dict[str, float]]:
    """Linear probes on conv1..conv5 of the trained network and of a random-init one."""
    torch.manual_seed(_seed(config.seed, 3))
    random_init = AlexNet(model.top_layer.out_features, width=config.width, input_size=config.input_size)
    results = {}
    for name, net in (("trained", copy.deepcopy(model)), ("random", random_init.to(ctx.device))):
        t0 = time.perf_counter()
        results[name] = linear_probe(
            net, config.probe, epochs=config.probe_epochs, batch_size=config.batch_size,
            workers=config.workers, device=ctx.device, seed=config.seed,
        )
        _log.info("probe %s network (%.0fs): %s", name, time.perf_counter() - t0, _format(results[name]))
    (out / "probe.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    _log.info("linear probe top-1 (%%) on %s:", config.probe)
    _log.info("%-8s %s", "layer", " ".join(f"{n:>7}" for n in results["trained"]))
    for name, accs in results.items():
        _log.info("%-8s %s", name, " ".join(f"{100 * a:7.1f}" for a in accs.values()))
    return results


def _format(record: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items())
