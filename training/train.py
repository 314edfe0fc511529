"""The training loop of ``train_example.py``: any registered method on a SingleImageDataset, DDP-ready."""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from .alexnet import AlexNet
from .checkpoint import Checkpoint, checkpoint_path, read_checkpoint, restore, resumed, save_checkpoint
from .config import TrainConfig
from .data import TrainData, epoch_positions
from .methods import METHODS, Context, EpochPlan, Method
from .probe import linear_probe
from .rng import derived_seed, get_rng_state

__all__ = ["probe_network", "run_training"]

# The package's logger, so that the probes' (training.probe) lines reach the same handlers.
_log = logging.getLogger("training")


def run_training(config: TrainConfig, *, echo: bool = True) -> dict[str, Any]:
    """Run ``config`` in this process (one rank of it under torchrun) and return its record.

    Progress lines go to ``out/train.log`` and, with ``echo``, to stdout.

    A resumed run must have the checkpoint's dataset and network settings (:data:`~training.RESUME_FIXED`;
    :func:`~training.resumed_config` takes them from the checkpoint) and the sources' pixels.

    Returns:
        ``{"history": [one dict per epoch trained now], "probe": {"trained": {...}, "random": {...}}
        or None, "method": the trained Method (its networks, e.g. method.encoder)}``.

    Raises:
        ValueError, FileNotFoundError: a resume checkpoint that cannot be read, was altered, or
            conflicts with ``config`` or with the sources; a bad source image; ``probe_only`` without a checkpoint.
        OSError: ``out`` cannot be created.
        FloatingPointError: a loss became NaN or infinite.
    """
    checkpoint = read_checkpoint(config.out, config.resume)
    if checkpoint is not None:
        config = resumed(config.to_dict(), checkpoint, set(config.to_dict()))
    elif config.probe_only:
        raise FileNotFoundError(f"probe_only needs a checkpoint, and {checkpoint_path(config.out, config.resume)} "
                                "does not exist; give resume the checkpoint to probe")
    out = Path(config.out)
    ctx = _init_distributed(config)
    # The run seeds torch's global RNG (initialisation, dropout, latent codes); forking it leaves the
    # caller's random state as it was.
    rng_devices = [ctx.device.index or 0] if ctx.device.type == "cuda" else []
    try:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OSError(f"cannot create the out folder {out}: {exc.strerror or exc}") from None
        with _logging_to(out / "train.log" if ctx.is_main else None, echo), torch.random.fork_rng(devices=rng_devices):
            return _run(config, ctx, out, checkpoint)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _init_distributed(config: TrainConfig) -> Context:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    wants_cuda = torch.cuda.is_available() if config.device is None else torch.device(config.device).type == "cuda"
    if world_size == 1:
        return Context(0, 1, torch.device(config.device or ("cuda" if wants_cuda else "cpu")))
    local_rank = int(os.environ["LOCAL_RANK"])
    if wants_cuda:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        device = torch.device("cpu")
        dist.init_process_group("gloo")
    return Context(dist.get_rank(), dist.get_world_size(), device)


@contextlib.contextmanager
def _logging_to(path: Path | None, echo: bool) -> Iterator[None]:
    """Progress lines to ``path`` (and stdout with ``echo``) on the main process; warnings only elsewhere."""
    handlers: list[logging.Handler] = []
    if path is not None:
        formatter = logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S")
        handlers = [logging.FileHandler(path), *([logging.StreamHandler(sys.stdout)] if echo else [])]
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


def _run(config: TrainConfig, ctx: Context, out: Path, checkpoint: Checkpoint | None) -> dict[str, Any]:
    torch.manual_seed(derived_seed(config.seed, 0))
    method = METHODS[config.method](config, ctx)
    views = method.views()
    data = TrainData(
        config.images, num_imgs=config.num_imgs, val_imgs=config.val_imgs, img_size=config.img_size,
        seed=config.seed, backend=config.backend, loader=config.loader, batch_size=config.batch_size,
        workers=config.workers, device=ctx.device, per_source_classes=config.per_source_classes,
        views=views, fixed_samples=views is not None and not config.resample,
    )
    sources_sha256 = data.sources_sha256()
    # The run's own draws (dropout, latent codes, loader seeds), apart on each process.
    torch.manual_seed(derived_seed(config.seed, 1, ctx.rank))
    start_epoch, history = 0, []
    if checkpoint is not None:
        start_epoch, history = restore(checkpoint, config, method, sources_sha256, ctx)
    elif config.resume is not None:
        _log.info("no checkpoint at %s, starting from scratch", checkpoint_path(config.out, config.resume))
    epochs = range(start_epoch, 0 if config.probe_only else config.epochs)
    _log.info(
        "%s on %s (%d source(s)): %d images of %d px (input %d), AlexNet width %g, %d process(es) on %s, %s "
        "loader, %s", config.method, data.dataset.root, len(sources_sha256), config.num_imgs, config.img_size,
        config.input_size, config.width, ctx.world_size, ctx.device, config.loader,
        f"epochs {epochs.start + 1}..{epochs.stop}" if len(epochs) else "no training",
    )
    new_history = []
    for epoch in epochs:
        if config.resample or views is not None:  # fresh samples, or fresh views of the fixed ones
            data.set_epoch(epoch)
        record: dict[str, Any] = {"epoch": epoch + 1}
        plan, planned = method.plan_epoch(epoch, data)
        record.update(planned)
        record.update(_train_epoch(config, ctx, method, data, plan, epoch, out))
        if ctx.is_main:
            record.update(method.evaluate(epoch, data, out))
        _log.info("epoch %d/%d: %s", epoch + 1, config.epochs, _format(record))
        history.append(record)
        new_history.append(record)
        rng = _gathered_rng_states(ctx)
        if ctx.is_main:
            with open(out / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
            save_checkpoint(out, config, epoch + 1, method, history, sources_sha256, rng)
    probe = None
    if config.probe is not None:
        if ctx.is_main:
            probe = probe_network(config, method.encoder, ctx.device, out)
        if ctx.world_size > 1:
            dist.barrier()
    return {"history": new_history, "probe": probe, "method": method}


def _train_epoch(
    config: TrainConfig, ctx: Context, method: Method, data: TrainData, plan: EpochPlan, epoch: int, out: Path
) -> dict[str, float]:
    positions = epoch_positions(len(plan.indices), config.seed, epoch, ctx.rank, ctx.world_size, config.batch_size)
    steps = len(positions) // config.batch_size
    method.train()
    losses: dict[str, list[float]] = {}
    t0 = time.perf_counter()
    batches = data.batches(plan.indices, positions, method.train_crop(), epoch, plan.labels)
    for step, (x, y) in enumerate(batches, 1):
        for name, value in method.train_step(x, y).items():
            losses.setdefault(name, []).append(value.item())
            if not math.isfinite(losses[name][-1]):
                raise FloatingPointError(
                    f"training diverged: the {name} is {losses[name][-1]} at epoch {epoch + 1}, step {step}/{steps}; "
                    f"lower lr (now {method.lr:g}) and train again (checkpoint.pt, if any, holds the last finished "
                    "epoch)"
                )
        if step % config.log_every == 0 or step == steps:
            rate = step * config.batch_size * ctx.world_size / (time.perf_counter() - t0)
            shown = " ".join(f"{name} {values[-1]:.4f}" for name, values in losses.items())
            _log.info("epoch %d step %d/%d %s (%.0f img/s)", epoch + 1, step, steps, shown, rate)
    seconds = time.perf_counter() - t0
    if config.log_indices:
        with open(out / f"indices_rank{ctx.rank}.txt", "a", encoding="utf-8") as f:
            f.write(f"{epoch}: " + " ".join(map(str, plan.indices[positions].tolist())) + "\n")
    quarter = max(1, steps // 4)
    record: dict[str, float] = {}
    for name, values in losses.items():
        record[name] = sum(values) / len(values)
        record[f"{name}_first_quarter"] = sum(values[:quarter]) / quarter
        record[f"{name}_last_quarter"] = sum(values[-quarter:]) / quarter
    return {**record, "seconds": seconds, "steps_per_second": steps / seconds}


def _gathered_rng_states(ctx: Context) -> list[dict[str, torch.Tensor]]:
    """Every process's random state, by rank (on every process)."""
    state = get_rng_state(ctx.device)
    if ctx.world_size == 1:
        return [state]
    states: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(states, state)
    return states


def probe_network(config: TrainConfig, encoder: AlexNet, device: torch.device, out: Path) -> dict[str, Any]:
    """Linear probes on conv1..conv5 of ``encoder`` and of a random-init AlexNet of the same architecture, both
    seeded by ``config.probe_seed``; written to ``out/probe.json`` and returned."""
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(derived_seed(config.probe_seed, 3))
        # The probes never read the top layer; one size for all keeps the random trunk the same for every method.
        random_init = AlexNet(1, width=config.width, input_size=config.input_size)
    results: dict[str, Any] = {}
    for name, net in (("trained", copy.deepcopy(encoder)), ("random", random_init.to(device))):
        t0 = time.perf_counter()
        results[name] = linear_probe(
            net, config.probe, epochs=config.probe_epochs, batch_size=config.batch_size,
            workers=config.workers, device=device, seed=config.probe_seed,
        )
        _log.info("probe %s network (%.0fs): %s", name, time.perf_counter() - t0, _format(results[name]))
    results["probe_seed"] = config.probe_seed
    (out / "probe.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    _log.info("linear probe top-1 (%%) on %s (probe seed %d):", config.probe, config.probe_seed)
    _log.info("%-8s %s", "layer", " ".join(f"{n:>7}" for n in results["trained"]))
    for name in ("trained", "random"):
        _log.info("%-8s %s", name, " ".join(f"{100 * a:7.1f}" for a in results[name].values()))
    return results


def _format(record: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items())
