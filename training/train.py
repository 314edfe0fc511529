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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Subset

from single_image_dataset import NUM_ROTATIONS, PseudoLabelled, SingleImageDataset, available_backends, rotate_batch

from .alexnet import AlexNet, min_input_size
from .deepcluster import cluster_features, compute_features, uniform_cluster_indices
from .kmeans import normalized_mutual_info
from .probe import linear_probe
from .rotnet import rotation_accuracy
from .transforms import pretrain_transforms

__all__ = ["AUTO_RESUME", "METHODS", "TrainConfig", "train"]

METHODS = ("rotnet", "deepcluster")
#: ``resume`` value meaning "``out/checkpoint.pt`` if it exists, else start from scratch".
AUTO_RESUME = "auto"
_CHECKPOINT = "checkpoint.pt"
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
        width: AlexNet channel multiplier (1 is the paper's network).
        dropout: AlexNet's fc dropout (the paper's is 0.5; 0 suits the short demo).
        epochs: total epochs (a resumed run continues up to this number).
        batch_size: images per step and process (RotNet feeds all four rotations of each).
        workers: DataLoader worker processes per training process.
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
        resume: a checkpoint to continue from, or ``"auto"`` for ``out/checkpoint.pt`` if present.
        resample: draw fresh augmentations every epoch (``set_epoch``) instead of the paper's
            fixed dataset.
        log_indices: write the dataset indices each process trained on to ``out/indices_rank{r}.txt``.
        log_every: steps between progress lines.

    Raises:
        ValueError, FileNotFoundError: a setting is out of range or names a missing file; the
            message names the setting.

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
        if self.method not in METHODS:
            raise ValueError(f"method should be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.backend not in available_backends():
            raise ValueError(f"backend should be one of {', '.join(available_backends())}, got {self.backend!r}")
        for name in ("num_imgs", "val_imgs", "img_size", "epochs", "batch_size", "pca_dim", "probe_epochs",
                     "log_every", "kmeans_iters"):
            low = 0 if name in ("val_imgs", "kmeans_iters") else 1
            if getattr(self, name) < low:
                raise ValueError(f"{name} should be at least {low}, got {getattr(self, name)}")
        if self.workers < 0:
            raise ValueError(f"workers should be a non-negative number of processes, got {self.workers}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr should be a positive learning rate, got {self.lr:g}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay should be non-negative, got {self.weight_decay:g}")
        if not (math.isfinite(self.width) and self.width > 0):
            raise ValueError(f"width should be a positive channel multiplier, got {self.width:g}")
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
        if self.resume not in (None, AUTO_RESUME) and not Path(self.resume).is_file():
            raise FileNotFoundError(f"resume checkpoint {self.resume} is not a file")
        if self.device is not None:
            try:
                device = torch.device(self.device)
            except RuntimeError:
                raise ValueError(f"device should be like cpu, cuda or cuda:1, got {self.device!r}") from None
            if device.type == "cuda" and not torch.cuda.is_available():
                raise ValueError(f"device {self.device!r} was asked for but CUDA is not available")

    @property
    def input_size(self) -> int:
        """Side of the network's input images."""
        return self.img_size if self.crop is None else self.crop

    def to_dict(self) -> dict[str, Any]:
        """Plain values, storable in a ``weights_only`` checkpoint and in JSON."""
        return dataclasses.asdict(self)


@dataclass
class _Context:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def train(config: TrainConfig) -> dict[str, Any]:
    """Run ``config`` in this process (one rank of it under torchrun) and return its record.

    Returns:
        ``{"history": [one dict per epoch trained now], "probe": {"trained": {...}, "random": {...}}
        or None, "assignments": the last DeepCluster labels or None}``.
    """
    out = Path(config.out)
    ctx = _init_distributed(config)
    # The run seeds torch's global RNG (initialisation, dropout, the transforms' crops and flips);
    # forking it leaves the caller's random state as it was.
    rng_devices = [ctx.device.index or 0] if ctx.device.type == "cuda" else []
    try:
        out.mkdir(parents=True, exist_ok=True)
        with _logging_to(out / "train.log" if ctx.is_main else None), torch.random.fork_rng(devices=rng_devices):
            return _train(config, ctx, out)
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


def _train(config: TrainConfig, ctx: _Context, out: Path) -> dict[str, Any]:
    train_tf, eval_tf = pretrain_transforms(config.method, config.input_size)
    data_args = {"backend": config.backend, "img_size": config.img_size, "seed": config.seed}
    train_set = SingleImageDataset(config.imgpath, num_imgs=config.num_imgs, transform=train_tf, **data_args)
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
    start_epoch, assignments, history = _resume(config, out, model, optimizer, ctx.device)
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
            _save_checkpoint(out / _CHECKPOINT, config, epoch + 1, model, optimizer, assignments, history)

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
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for optimizer in optimizers:
            optimizer.step()
        losses.append(loss.item())
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
) -> None:
    # Tensors and plain containers only, so torch.load(weights_only=True) can read it back.
    state = {
        "method": config.method,
        "epoch": epoch,
        "config": config.to_dict(),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "assignments": assignments,
        "history": history,
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _resume(
    config: TrainConfig, out: Path, model: AlexNet, optimizer: torch.optim.Optimizer, device: torch.device
) -> tuple[int, torch.Tensor | None, list[dict[str, Any]]]:
    if config.resume is None:
        return 0, None, []
    path = out / _CHECKPOINT if config.resume == AUTO_RESUME else Path(config.resume)
    if not path.is_file():
        _log.info("no checkpoint at %s, starting from scratch", path)
        return 0, None, []
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors alike for a bad file
        raise ValueError(
            f"resume checkpoint {path} could not be read ({type(exc).__name__}); "
            "is it a checkpoint.pt written by train_example.py, and complete?"
        ) from None
    if state.get("method") != config.method:
        raise ValueError(f"resume checkpoint {path} is a {state.get('method')} run, not {config.method}")
    try:
        model.load_state_dict(state["model"])
    except RuntimeError:
        raise ValueError(
            f"resume checkpoint {path} does not fit this network; its settings were width={state['config']['width']}, "
            f"crop={state['config']['crop']}, img_size={state['config']['img_size']}, k={state['config']['k']}"
        ) from None
    optimizer.load_state_dict(state["optimizer"])
    assignments = state["assignments"]
    _log.info("resumed from %s after epoch %d", path, state["epoch"])
    return state["epoch"], None if assignments is None else assignments.cpu(), list(state["history"])


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
