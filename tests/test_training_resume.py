"""Exact resume (N epochs, then ``--resume`` to N+1, equals N+1 straight, bit for bit), kept checkpoints, and
probing a checkpoint on its own with probe seeds apart from the training seed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import training.train
from training import TrainConfig, run_training

pytestmark = [pytest.mark.filterwarnings("error"), pytest.mark.usefixtures("one_thread")]

_TIMING = ("seconds", "steps_per_second", "cluster_seconds")
_METHOD = {"rotnet": {}, "deepcluster": {"k": 4, "pca_dim": 8}, "bigan": {}, "simclr": {}}


def _untimed(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in h.items() if k not in _TIMING and k != "samples"} for h in history]


def _assert_same_checkpoints(a: Path, b: Path) -> None:
    first, second = (torch.load(p, weights_only=True) for p in (a, b))
    assert first["epoch"] == second["epoch"]
    assert _untimed(first["history"]) == _untimed(second["history"])
    for kind in ("networks", "optimizers"):
        assert first[kind].keys() == second[kind].keys()
    for name in first["networks"]:
        for key, value in first["networks"][name].items():
            assert torch.equal(value, second["networks"][name][key]), (name, key)
    for name in first["optimizers"]:
        for key, buffers in first["optimizers"][name]["state"].items():
            for buffer, value in buffers.items():
                assert torch.equal(torch.as_tensor(value), torch.as_tensor(
                    second["optimizers"][name]["state"][key][buffer])), (name, key, buffer)
    for key, value in first["method_state"].items():
        assert (value is None and second["method_state"][key] is None) or torch.equal(value,
                                                                                      second["method_state"][key])
    assert all(torch.equal(x["torch"], y["torch"]) for x, y in zip(first["rng"], second["rng"], strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("resample", [False, True])
@pytest.mark.parametrize("method", list(_METHOD))
def test_resumed_equals_uninterrupted(tiny_config, tmp_path: Path, method: str, resample: bool, workers: int) -> None:
    # Dropout draws from torch's global generator every step, as do BiGAN's latent codes: a resumed run
    # must continue that stream, not seed it again.
    settings = {"method": method, "resample": resample, "workers": workers, "dropout": 0.3, **_METHOD[method]}
    straight = run_training(tiny_config(out=str(tmp_path / "straight"), epochs=2, **settings))
    run_training(tiny_config(out=str(tmp_path / "resumed"), epochs=1, **settings))
    resumed = run_training(tiny_config(out=str(tmp_path / "resumed"), epochs=2, resume="auto", **settings))
    assert _untimed(resumed["history"]) == _untimed(straight["history"][1:])
    _assert_same_checkpoints(tmp_path / "straight" / "checkpoint.pt", tmp_path / "resumed" / "checkpoint.pt")


def test_resume_restores_the_random_state(tiny_config, tmp_path: Path) -> None:
    """The cheap version of the matrix above, for every run of the suite: RotNet with dropout."""
    straight = run_training(tiny_config(out=str(tmp_path / "straight"), epochs=2, dropout=0.5))
    run_training(tiny_config(out=str(tmp_path / "resumed"), epochs=1, dropout=0.5))
    resumed = run_training(tiny_config(out=str(tmp_path / "resumed"), epochs=2, dropout=0.5, resume="auto"))
    assert _untimed(resumed["history"]) == _untimed(straight["history"][1:])
    _assert_same_checkpoints(tmp_path / "straight" / "checkpoint.pt", tmp_path / "resumed" / "checkpoint.pt")


def test_kept_checkpoints_are_each_epochs(tiny_config, tmp_path: Path) -> None:
    run_training(tiny_config(epochs=2, keep_checkpoints=True))
    out = tmp_path / "out"
    assert sorted(p.name for p in out.glob("checkpoint*.pt")) == [
        "checkpoint.pt", "checkpoint_epoch001.pt", "checkpoint_epoch002.pt"]
    first, last = (torch.load(out / f"checkpoint_epoch00{e}.pt", weights_only=True) for e in (1, 2))
    assert first["epoch"] == 1 and last["epoch"] == 2
    assert (out / "checkpoint_epoch002.pt").read_bytes() == (out / "checkpoint.pt").read_bytes()
    weights = "features.0.0.weight"
    assert not torch.equal(first["networks"]["encoder"][weights], last["networks"]["encoder"][weights])
    # An epoch's checkpoint resumes like the latest one.
    again = run_training(tiny_config(epochs=2, resume=str(out / "checkpoint_epoch001.pt"), out=str(tmp_path / "b")))
    assert [h["epoch"] for h in again["history"]] == [2]


def test_the_checkpoint_records_every_source(tiny_config, tmp_path: Path, coffee_path: Path, hubble_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    from single_image_dataset import load_image
    from single_image_dataset.source import pixel_sha256

    sources = [str(coffee_path), str(hubble_path)]
    run_training(tiny_config(imgpath=sources))
    state = torch.load(tmp_path / "out" / "checkpoint.pt", weights_only=True)
    assert state["sources_sha256"] == [pixel_sha256(load_image(p)) for p in sources]
    changed = tmp_path / "hubble_flipped.png"
    load_image(hubble_path).transpose(0).save(changed)
    with pytest.raises(ValueError, match=r"was trained on other source images than imgpath=\[.*\] \(other pixels in "
                                         r"source 1\); give the image\(s\) it was trained on as imgpath$"):
        run_training(tiny_config(imgpath=[str(coffee_path), str(changed)], epochs=2, resume="auto"))


class TestProbing:
    def test_probe_seed_not_seed_decides_the_probes(self, tiny_config, tmp_path: Path, probe_set: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
        seen: list[tuple[int, torch.Tensor]] = []

        def spy(trunk, root, **kwargs):  # the probes' networks, recorded instead of probed
            seen.append((kwargs["seed"], trunk.features[0][0].weight.detach().clone()))
            return dict.fromkeys(("conv1", "conv2", "conv3", "conv4", "conv5"), 0.5)

        monkeypatch.setattr(training.train, "linear_probe", spy)
        for seed, probe_seed in ((0, 0), (1, 0), (0, 7)):
            run_training(tiny_config(seed=seed, probe_seed=probe_seed, probe=str(probe_set),
                                     out=str(tmp_path / f"{seed}_{probe_seed}")))
        random_inits = [weights for _, weights in seen[1::2]]
        assert [s for s, _ in seen] == [0, 0, 0, 0, 7, 7]
        assert torch.equal(random_inits[0], random_inits[1])  # another training seed: the same random network
        assert not torch.equal(random_inits[0], random_inits[2])  # another probe seed: another one
        assert not torch.equal(seen[0][1], seen[2][1])  # the trained networks differ with the training seed

    @pytest.mark.slow
    def test_probe_only_reads_the_checkpoints_encoder(self, tiny_config, tmp_path: Path, probe_set: Path) -> None:
        config = {"probe": str(probe_set), "probe_epochs": 1, "method": "bigan"}  # from Python, every setting is given
        trained = run_training(tiny_config(**config))
        checkpoint = tmp_path / "out" / "checkpoint.pt"
        before = checkpoint.read_bytes()
        again = run_training(tiny_config(resume=str(checkpoint), probe_only=True, out=str(tmp_path / "p0"),
                                         epochs=99, **config))
        assert again["history"] == [] and again["probe"] == trained["probe"]
        assert sorted(p.name for p in (tmp_path / "p0").iterdir()) == ["probe.json", "train.log"]
        assert checkpoint.read_bytes() == before
        other = run_training(tiny_config(resume=str(checkpoint), probe_only=True, probe_seed=1,
                                         out=str(tmp_path / "p1"), **config))
        assert json.loads((tmp_path / "p1" / "probe.json").read_text())["probe_seed"] == 1
        assert other["probe"]["random"] != trained["probe"]["random"] or other["probe"]["trained"] != trained[
            "probe"]["trained"]

    def test_probe_only_needs_a_checkpoint(self, tiny_config, tmp_path: Path, probe_set: Path) -> None:
        with pytest.raises(FileNotFoundError, match=r"probe_only needs a checkpoint, and .*out/checkpoint\.pt does "
                                                    r"not exist; give resume the checkpoint to probe$"):
            run_training(tiny_config(probe=str(probe_set), probe_only=True, resume="auto"))
        assert not (tmp_path / "out").exists()

    def test_probe_only_from_the_command_line(self, tmp_path: Path, probe_set: Path, coffee_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
        from training.cli import main

        out = tmp_path / "run"
        argv = ["--imgpath", str(coffee_path), "--num_imgs", "32", "--val_imgs", "0", "--batch_size", "16",
                "--epochs", "1", "--workers", "0", "--width", "0.125"]
        assert main([*argv, "--out", str(out)]) == 0
        # The training seed may not change on resume, the probe seed may.
        assert main(["--resume", str(out / "checkpoint.pt"), "--probe_only", "--probe", str(probe_set),
                     "--probe_seed", "3", "--probe_epochs", "1", "--out", str(tmp_path / "probe3")]) == 0
        assert json.loads((tmp_path / "probe3" / "probe.json").read_text())["probe_seed"] == 3
        assert "(probe seed 3)" in capsys.readouterr().out


def test_a_config_round_trips_through_a_checkpoint(tiny_config, coffee_path: Path, hubble_path: Path) -> None:
    config = tiny_config(imgpath=[str(coffee_path), str(hubble_path)], per_source_classes=True, lr=0.02)
    assert config.imgpath == (str(coffee_path), str(hubble_path))
    assert TrainConfig(**config.to_dict()) == config and isinstance(config.to_dict()["imgpath"], list)
    assert tiny_config(imgpath=str(coffee_path)).images == str(coffee_path)
