"""Checkpoints: what an epoch leaves behind, read back and checked before a run resumes from it.

A checkpoint holds tensors and plain containers only (``torch.load(weights_only=True)`` reads it): the
settings, every network's weights and optimiser's state, the method's own state (DeepCluster's clusters),
the history, the pixel hash of every source, and every process's random state, so that "N epochs, then
``--resume`` to N+1" equals "N+1 epochs" bit for bit.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .config import AUTO_RESUME, SETTINGS_ADDED, TrainConfig, check_settings
from .methods import METHODS, Context, Method
from .rng import set_rng_state

__all__ = [
    "CHECKPOINT",
    "FORMAT",
    "RESUME_FIXED",
    "RESUME_TAKEN",
    "Checkpoint",
    "checkpoint_path",
    "read_checkpoint",
    "restore",
    "resumed",
    "resumed_config",
    "save_checkpoint",
]

#: Name of the latest checkpoint in ``out``.
CHECKPOINT = "checkpoint.pt"
#: Version of the checkpoint's layout; another version is refused.
FORMAT = 2
#: Settings that make the dataset and the network: a resumed run takes them from its checkpoint and
#: refuses a different value given explicitly.
RESUME_FIXED = (
    "method", "backend", "num_imgs", "img_size", "crop", "width", "dropout", "k", "pca_dim", "kmeans_iters",
    "temperature", "seed", "resample",
)
#: Settings a resumed run takes from its checkpoint unless they are given: the optimisation, the held-out
#: indices, how batches are made, and the paths of the sources (whose pixels must still be the checkpoint's).
RESUME_TAKEN = (
    "imgpath", "per_source_classes", "loader", "val_imgs", "epochs", "batch_size", "lr", "weight_decay",
)
_STATE_KEYS = ("format", "method", "epoch", "config", "sources_sha256", "networks", "optimizers", "method_state",
               "history", "rng")
_log = logging.getLogger("training")


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint read and checked for resuming: its ``path`` and its ``state``."""

    path: Path
    state: dict[str, Any]

    @property
    def where(self) -> str:
        """How errors name it."""
        return f"resume checkpoint {self.path}"


def save_checkpoint(
    out: Path, config: TrainConfig, epoch: int, method: Method, history: list[dict[str, Any]],
    sources_sha256: list[str], rng: list[dict[str, torch.Tensor]],
) -> Path:
    """Write ``out/checkpoint.pt`` atomically after ``epoch`` epochs (and ``checkpoint_epoch{N:03d}.pt`` with
    ``config.keep_checkpoints``); ``rng`` holds each process's random state, by rank."""
    state = {
        "format": FORMAT,
        "method": config.method,
        "epoch": epoch,
        "config": config.to_dict(),
        "sources_sha256": sources_sha256,
        "networks": {name: network.state_dict() for name, network in method.networks().items()},
        "optimizers": {name: optimizer.state_dict() for name, optimizer in method.optimizers().items()},
        "method_state": method.state(),
        "history": history,
        "rng": rng,
    }
    path = out / CHECKPOINT
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    if config.keep_checkpoints:
        kept = out / f"checkpoint_epoch{epoch:03d}.pt"
        kept.unlink(missing_ok=True)
        try:  # the next epoch replaces checkpoint.pt by another file, so a hard link keeps this one's bytes
            os.link(path, kept)
        except OSError:
            shutil.copyfile(path, kept)
    return path


def checkpoint_path(out: str, resume: str) -> Path:
    """The file ``resume`` names: ``out/checkpoint.pt`` for ``"auto"``."""
    return Path(out) / CHECKPOINT if resume == AUTO_RESUME else Path(resume)


def read_checkpoint(out: str, resume: str | None) -> Checkpoint | None:
    """The checked checkpoint ``resume`` names; ``None`` if there is none (yet).

    Raises:
        FileNotFoundError: ``resume`` names no regular file.
        ValueError: the file is not a checkpoint of this program, or was altered (the message says how).
    """
    if resume is None:
        return None
    path = checkpoint_path(out, resume)
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
    checkpoint = Checkpoint(path, state)
    _check_state(state, checkpoint.where)
    return checkpoint


def _check_state(state: Any, where: str) -> None:
    """Refuse a checkpoint that was not written by :func:`save_checkpoint` or was altered since."""
    if not isinstance(state, dict):
        raise ValueError(f"{where} holds a {type(state).__name__}, not the dict train_example.py writes")
    if state.get("format") != FORMAT:
        raise ValueError(
            f"{where} has checkpoint format {state.get('format')!r}, not {FORMAT}; it was written by another "
            "version of train_example.py: resume it with that version, or start a new run"
        )
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
        check_settings(saved)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: config: {exc}") from None
    saved = state["config"] = {**SETTINGS_ADDED, **saved}  # a checkpoint older than a setting ran with its default
    missing = [name for name in (*RESUME_FIXED, *RESUME_TAKEN) if name not in saved]
    if missing:
        raise ValueError(f"{where}: its config has no {missing[0]!r}")
    if state["method"] != saved["method"]:
        raise ValueError(f"{where} says method {state['method']!r} but its config method {saved['method']!r}")
    hashes = state["sources_sha256"]
    if not (isinstance(hashes, list) and hashes and all(isinstance(h, str) for h in hashes)):
        raise ValueError(f"{where}: sources_sha256 should be a list of the sources' pixel hashes")
    for kind, group in (("networks", state["networks"]), ("optimizers", state["optimizers"])):
        if not isinstance(group, dict):
            raise ValueError(f"{where}: {kind} should be a dict by name, got {type(group).__name__}")
    for name, weights in state["networks"].items():
        _check_tensors(weights, f"{where}: network {name}", "weights", (torch.Tensor,))
    for name, optimizer in state["optimizers"].items():
        if not (isinstance(optimizer, dict) and isinstance(optimizer.get("state"), dict)
                and isinstance(optimizer.get("param_groups"), list)):
            raise ValueError(f"{where}: optimizer {name} should be an optimizer state dict (state, param_groups)")
        for key, buffers in optimizer["state"].items():
            _check_tensors(buffers, f"{where}: optimizer {name} state {key}", "values",
                           (torch.Tensor, int, float, type(None)))
    if not (isinstance(state["method_state"], dict)
            and all(v is None or isinstance(v, torch.Tensor) for v in state["method_state"].values())):
        raise ValueError(f"{where}: method_state should be a dict of tensors")
    if not (isinstance(state["history"], list) and all(isinstance(h, dict) for h in state["history"])):
        raise ValueError(f"{where}: history should be a list of per-epoch dicts")
    rng = state["rng"]
    if not (isinstance(rng, list) and rng and all(
        isinstance(r, dict) and set(r) == {"torch", "cuda"} and all(isinstance(t, torch.Tensor) for t in r.values())
        for r in rng
    )):
        raise ValueError(f"{where}: rng should be the random state of each process (torch and cuda tensors)")


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
    check_settings(settings)
    checkpoint = read_checkpoint(settings["out"], settings["resume"])
    if checkpoint is None:
        return TrainConfig(**settings)
    return resumed(settings, checkpoint, set(given))


def resumed(mine: Mapping[str, Any], checkpoint: Checkpoint, chosen: set[str]) -> TrainConfig:
    """The settings ``mine`` continuing ``checkpoint``, with its settings for those not ``chosen``."""
    where, saved = checkpoint.where, checkpoint.state["config"]
    conflicts = [name for name in RESUME_FIXED if name in chosen and _differs(name, mine, saved)]
    if conflicts:
        raise ValueError(
            f"{where} was trained with {_listed(saved, conflicts)}, not {_listed(mine, conflicts)}; a resumed run "
            "keeps its dataset and network: leave these settings out (or give the checkpoint's values), or start a "
            "new run in another out folder"
        )
    taken = {name: saved[name] for name in (*RESUME_FIXED, *RESUME_TAKEN) if name not in chosen}
    try:
        config = TrainConfig(**{**mine, **taken})
    except (ValueError, TypeError, FileNotFoundError) as exc:
        raise type(exc)(f"{where}: {exc}") from None
    epoch = checkpoint.state["epoch"]
    if epoch > config.epochs and not config.probe_only:
        raise ValueError(
            f"{where} is at epoch {epoch}, past epochs={config.epochs}; give epochs of {epoch} or more "
            f"({epoch} runs only the probes)"
        )
    return config


def _differs(name: str, mine: Mapping[str, Any], saved: dict[str, Any]) -> bool:
    """Whether setting ``name`` changes the run of the checkpoint ``saved``."""
    owners = [method for method, cls in METHODS.items() if name in cls.own_settings]
    if owners and saved["method"] not in owners:  # a setting of another method only
        return False
    if name == "crop":  # no crop is a crop of img_size
        return mine["crop"] != saved["crop"] and (mine["crop"] or mine["img_size"]) != (
            saved["crop"] or saved["img_size"]
        )
    return mine[name] != saved[name]


def _listed(values: Mapping[str, Any], names: list[str]) -> str:
    return ", ".join(f"{name}={values[name]!r}" for name in names)


def restore(
    checkpoint: Checkpoint, config: TrainConfig, method: Method, sources_sha256: list[str], ctx: Context
) -> tuple[int, list[dict[str, Any]]]:
    """Load ``checkpoint`` into ``method`` and this process's random state: the epoch to start at, and the
    history so far.

    Raises:
        ValueError: the sources' pixels differ from the checkpoint's, or its weights, optimiser states or
            method state do not fit ``method`` (the message names the part).
    """
    where, state = checkpoint.where, checkpoint.state
    saved = state["sources_sha256"]
    if saved != sources_sha256:
        changed = [k for k, (a, b) in enumerate(zip(saved, sources_sha256, strict=False)) if a != b]
        what = (f"{len(sources_sha256)} source(s), not its {len(saved)}" if len(saved) != len(sources_sha256)
                else f"other pixels in source {changed[0]}")
        raise ValueError(
            f"{where} was trained on other source images than imgpath={config.images!r} ({what}); give the "
            "image(s) it was trained on as imgpath"
        )
    networks, optimizers = method.networks(), method.optimizers()
    for kind, mine, theirs in (("networks", networks, state["networks"]), ("optimizers", optimizers,
                                                                            state["optimizers"])):
        if set(mine) != set(theirs):
            raise ValueError(f"{where}: its {kind} are {sorted(theirs)}, {config.method} has {sorted(mine)}")
    for name, network in networks.items():
        try:
            network.load_state_dict(state["networks"][name])
        except RuntimeError:
            raise ValueError(
                f"{where}: network {name} does not fit the network of its own settings (width={config.width:g}, "
                f"crop={config.crop}, img_size={config.img_size}, k={config.k}): it was altered, or written by "
                "another version"
            ) from None
    for name, optimizer in optimizers.items():
        try:
            optimizer.load_state_dict(state["optimizers"][name])
        except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as exc:
            raise ValueError(f"{where}: optimizer {name} does not fit the network ({exc})") from None
    method.load_state(state["method_state"], where)
    rng = state["rng"]
    if len(rng) == ctx.world_size:
        try:
            set_rng_state(rng[ctx.rank], ctx.device)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    else:
        _log.warning("%s was written by %d process(es), this run has %d: the random state starts afresh, so the "
                     "run goes on but not bit for bit as an uninterrupted one", where, len(rng), ctx.world_size)
    _log.info("resumed from %s after epoch %d", checkpoint.path, state["epoch"])
    return state["epoch"], list(state["history"])
