"""``train_example.py`` and its ``training`` package: tiny CPU runs that must learn, resume, torchrun, probes."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from conftest import assert_one_line_error, png_header, run_torchrun
from PIL import Image

import training
from single_image_dataset import SingleImageDataset
from training import (
    CONV_NAMES,
    METHODS,
    AlexNet,
    LinearProbes,
    Method,
    RotNet,
    TrainConfig,
    compute_features,
    feature_shard,
    linear_probe,
    min_input_size,
    pca_whiten,
    register_method,
    run_training,
    uniform_cluster_indices,
)

pytestmark = [pytest.mark.filterwarnings("error"), pytest.mark.usefixtures("one_thread")]

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "train_example.py"


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cli() -> ModuleType:
    return _load(SCRIPT)


class TestAlexNet:
    def test_paper_geometry(self) -> None:
        with torch.device("meta"):
            net = AlexNet(1000, width=1.0, input_size=224)
            probes = LinearProbes(net, num_classes=1000)
        assert net.channels == (96, 256, 384, 384, 256)
        assert net.map_sizes == (55, 27, 13, 13, 13)
        assert net.classifier[1].in_features == 256 * 6 * 6
        assert net.feature_dim == 4096
        # The paper's ~9k features per layer: 96x10x10, 256x6x6, 384x5x5, 384x5x5, 256x6x6.
        assert [head[3].in_features for head in probes.heads.values()] == [9600, 9216, 9600, 9600, 9216]

    def test_width_and_small_input(self) -> None:
        net = AlexNet(4, width=0.25, input_size=64)
        maps = net.conv_features(torch.zeros(2, 3, 64, 64))
        assert [m.shape[1] for m in maps] == [24, 64, 96, 96, 64]
        assert net(torch.zeros(2, 3, 64, 64)).shape == (2, 4)

    def test_errors(self) -> None:
        assert min_input_size() == 63
        with pytest.raises(ValueError, match="input_size should be at least 63 px for AlexNet, got 62"):
            AlexNet(4, input_size=62)
        with pytest.raises(ValueError, match="width should be a positive channel multiplier, got 0"):
            AlexNet(4, width=0)
        with pytest.raises(ValueError, match=r"dropout should be a probability in \[0, 1\), got 1"):
            AlexNet(4, dropout=1.0)


class TestBuildingBlocks:
    def test_uniform_cluster_indices_balances_clusters(self) -> None:
        labels = torch.tensor([0] * 90 + [1] * 10)
        indices = uniform_cluster_indices(labels, 100, np.random.default_rng(0))
        assert len(indices) == 100
        counts = np.bincount(labels.numpy()[indices])
        assert abs(counts[0] - counts[1]) <= 2
        assert set(indices[labels.numpy()[indices] == 1]) <= set(range(90, 100))
        assert np.array_equal(indices, uniform_cluster_indices(labels, 100, np.random.default_rng(0)))

    def test_pca_whiten(self) -> None:
        x = torch.randn(200, 16, generator=torch.Generator().manual_seed(0)) * torch.linspace(0.1, 10, 16)
        y = pca_whiten(x, 4)
        assert y.shape == (200, 4)
        torch.testing.assert_close(y.norm(dim=1), torch.ones(200))
        assert pca_whiten(x, 64).shape == (200, 16)

    def test_features_are_per_index(self, coffee_path: Path) -> None:
        from torchvision.transforms import ToTensor

        dataset = SingleImageDataset(coffee_path, num_imgs=12, img_size=64, transform=ToTensor())
        net = AlexNet(10, width=0.125, input_size=64)
        shard = feature_shard(12)
        batches = [torch.stack([dataset[int(i)][0] for i in shard[k : k + 5]]) for k in range(0, 12, 5)]
        features = compute_features(net, batches, 12)
        assert features.shape == (12, net.feature_dim)
        net.eval()
        with torch.no_grad():
            torch.testing.assert_close(features[7], net.embed(dataset[7][0][None])[0])

    def test_feature_shards_interleave_and_pad(self) -> None:
        shards = [feature_shard(7, rank, 3).tolist() for rank in range(3)]
        assert shards == [[0, 3, 6], [1, 4, 1], [2, 5, 2]]
        assert sorted(set(sum(shards, []))) == list(range(7))


class TestRotNet:
    @pytest.mark.slow
    def test_learns_rotation_on_held_out_indices(self, tiny_config) -> None:
        config = tiny_config(num_imgs=960, val_imgs=256, batch_size=32, epochs=2, lr=0.003, width=0.25,
                             backend="fast")
        result = run_training(config)
        history = result["history"]
        assert [h["epoch"] for h in history] == [1, 2]
        # Chance is 25 %; 1024 held-out predictions put chance +- 3 sd at 21-29 %.
        assert history[-1]["val_rotation_acc"] > 0.35
        out = Path(config.out)
        assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
        assert "epoch 2/2" in (out / "train.log").read_text()
        state = torch.load(out / "checkpoint.pt", weights_only=True)
        assert state["epoch"] == 2 and state["method"] == "rotnet"

    def test_resume_continues_after_the_last_epoch(self, tiny_config, tmp_path: Path) -> None:
        first = run_training(tiny_config())
        assert [h["epoch"] for h in first["history"]] == [1]
        second = run_training(tiny_config(epochs=2, resume="auto"))
        assert [h["epoch"] for h in second["history"]] == [2]
        state = torch.load(tmp_path / "out" / "checkpoint.pt", weights_only=True)
        assert state["epoch"] == 2 and [h["epoch"] for h in state["history"]] == [1, 2]
        # From Python every setting counts as given: one that differs from the checkpoint's is refused.
        with pytest.raises(ValueError, match=r"was trained with method='rotnet', not method='deepcluster'; a resumed"):
            run_training(tiny_config(epochs=3, method="deepcluster", k=4, resume="auto"))
        with pytest.raises(ValueError, match=r"was trained with width=0\.125, not width=0\.5; "):
            run_training(tiny_config(epochs=3, width=0.5, resume="auto"))
        (tmp_path / "junk.pt").write_text("junk")
        with pytest.raises(ValueError, match=r"junk.pt could not be read \(\w+\); is it a checkpoint.pt"):
            run_training(tiny_config(epochs=3, resume=str(tmp_path / "junk.pt")))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, coffee_path: Path) -> Path:
    """The checkpoint of a finished one-epoch run whose dataset and network are not the defaults."""
    out = tmp_path_factory.mktemp("trained")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    run_training(TrainConfig(imgpath=str(coffee_path), out=str(out), num_imgs=32, val_imgs=8, batch_size=16,
                             epochs=1, workers=0, width=0.125, lr=0.005, log_every=1000))
    torch.set_num_threads(previous)
    return out / "checkpoint.pt"


def _resume(cli: ModuleType, tmp_path: Path, checkpoint: Path | dict, argv: list[str],
            capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """Run ``train_example.py --resume`` on a copy of ``checkpoint`` (or this state) in a fresh out folder."""
    out = tmp_path / "out"
    out.mkdir()
    state = torch.load(checkpoint, weights_only=True) if isinstance(checkpoint, Path) else checkpoint
    torch.save(state, out / "checkpoint.pt")
    status = cli.main(["--out", str(out), "--resume", "--workers", "0", *argv])
    return status, capsys.readouterr().err


def _one_line(err: str, pattern: str) -> None:
    assert_one_line_error(err, pattern, prog="train_example.py")


def _tampered(change: str) -> object:
    """Functions of a checkpoint's state that return it tampered with, by name."""

    def edit(state: dict) -> dict:
        config, model = state["config"], state["networks"]["encoder"]
        first = next(iter(model))
        if change == "not a dict":
            return [state]
        if change == "no epoch":
            del state["epoch"]
        elif change in ("string epoch", "negative epoch", "zero epoch", "epoch past epochs", "bool epoch"):
            state["epoch"] = {"string epoch": "1", "negative epoch": -1, "zero epoch": 0, "epoch past epochs": 5,
                              "bool epoch": True}[change]
        elif change in ("nan weights", "inf weights"):
            model[first] = torch.full_like(model[first], float("nan" if change == "nan weights" else "inf"))
        elif change == "nan momentum":
            buffers = next(iter(state["optimizers"]["sgd"]["state"].values()))
            buffers["momentum_buffer"] = torch.full_like(buffers["momentum_buffer"], float("nan"))
        elif change == "unknown config key":
            config["colour"] = 1
        elif change == "string num_imgs":
            config["num_imgs"] = "32"
        elif change == "config not a dict":
            state["config"] = [config]
        elif change == "config without num_imgs":
            del config["num_imgs"]
        elif change == "num_imgs out of range":
            config["num_imgs"] = -5
        elif change == "method disagrees":
            state["method"] = "deepcluster"
        elif change == "model not a dict":
            state["networks"]["encoder"] = "weights"
        elif change == "model holds a number":
            model["extra"] = 1
        elif change == "weight of another shape":
            model[first] = torch.zeros(3)
        elif change == "optimizer not a state dict":
            state["optimizers"]["sgd"] = {"lr": 0.1}
        elif change == "history not a list":
            state["history"] = "epoch 1"
        elif change == "assignments in a rotnet run":
            state["method_state"] = {"assignments": torch.zeros(32, dtype=torch.int64)}
        elif change == "other source image":
            state["sources_sha256"] = ["0" * 64]
        elif change == "another format":
            state["format"] = 1
        elif change == "no networks":
            del state["networks"]
        elif change == "another network":
            state["networks"]["generator"] = state["networks"].pop("encoder")
        elif change == "rng of another shape":
            state["rng"][0]["torch"] = torch.zeros(3, dtype=torch.uint8)
        elif change == "rng not a list":
            state["rng"] = {"torch": torch.zeros(3)}
        return state

    return edit


class TestResume:
    def test_takes_the_checkpoint_settings_when_not_given(self, cli, trained, tmp_path, capsys):
        # The defaults are num_imgs 8192, width 0.25, batch_size 64, lr 0.01 and the embedded image (coffee too).
        status, err = _resume(cli, tmp_path, trained, ["--epochs", "2"], capsys)
        assert status == 0, err
        state = torch.load(tmp_path / "out" / "checkpoint.pt", weights_only=True)
        assert state["epoch"] == 2 and [h["epoch"] for h in state["history"]] == [1, 2]
        saved = torch.load(trained, weights_only=True)["config"]
        kept = ("imgpath", "num_imgs", "val_imgs", "width", "batch_size", "lr", "img_size", "seed")
        assert {k: state["config"][k] for k in kept} == {k: saved[k] for k in kept}
        assert state["config"]["num_imgs"] == 32 and state["config"]["width"] == 0.125

    def test_optimisation_settings_may_change(self, cli, trained, tmp_path, capsys):
        status, err = _resume(cli, tmp_path, trained, ["--epochs", "2", "--lr", "0.001", "--batch_size", "8"], capsys)
        assert status == 0, err
        config = torch.load(tmp_path / "out" / "checkpoint.pt", weights_only=True)["config"]
        assert (config["lr"], config["batch_size"], config["num_imgs"]) == (0.001, 8, 32)

    def test_the_same_image_elsewhere_is_accepted(self, cli, trained, tmp_path, coffee_path, capsys):
        copy = tmp_path / "moved.png"
        copy.write_bytes(coffee_path.read_bytes())
        status, err = _resume(cli, tmp_path, trained, ["--epochs", "2", "--imgpath", str(copy)], capsys)
        assert status == 0, err

    @pytest.mark.parametrize(
        ("argv", "pattern"),
        [
            (["--num_imgs", "64"], r"was trained with num_imgs=32, not num_imgs=64; a resumed run keeps its dataset "
                                   r"and network: leave these settings out \(or give the checkpoint's values\), or "
                                   r"start a new run in another out folder$"),
            (["--width", "0.25", "--seed", "1"], r"was trained with width=0\.125, seed=0, not width=0\.25, seed=1; "),
            (["--img_size", "96"], r"was trained with img_size=64, not img_size=96; "),
            (["--crop", "63"], r"was trained with crop=None, not crop=63; "),
            (["--method", "deepcluster", "--k", "4"], r"was trained with method='rotnet', not method='deepcluster'; "),
            (["--backend", "reference"], r"was trained with backend='fast', not backend='reference'; "),
            (["--resample"], r"was trained with resample=False, not resample=True; "),
            (["--dropout", "0.5"], r"was trained with dropout=0\.0, not dropout=0\.5; "),
        ],
    )
    def test_a_given_conflicting_setting_is_refused(self, cli, trained, tmp_path, argv, pattern, capsys):
        status, err = _resume(cli, tmp_path, trained, argv, capsys)
        assert status == 2
        _one_line(err, r"^train_example\.py: error: resume checkpoint .*checkpoint\.pt " + pattern)

    def test_settings_equal_to_the_checkpoint_are_fine(self, cli, trained, tmp_path, capsys):
        argv = ["--num_imgs", "32", "--width", "0.125", "--crop", "64", "--k", "7", "--epochs", "1"]
        status, err = _resume(cli, tmp_path, trained, argv, capsys)  # k: a rotnet run has no clusters
        assert status == 0, err

    def test_another_source_image_is_refused(self, cli, trained, tmp_path, hubble_path, coffee_path, capsys):
        status, err = _resume(cli, tmp_path, trained, ["--imgpath", str(hubble_path), "--epochs", "2"], capsys)
        assert status == 2
        _one_line(err, r"was trained on other source images than imgpath='.*hubble_deep_field\.jpg' \(other pixels "
                       r"in source 0\); give the image\(s\) it was trained on as imgpath$")
        (tmp_path / "out").rename(tmp_path / "first")
        status, err = _resume(cli, tmp_path, trained, ["--imgpath", str(coffee_path), str(hubble_path)], capsys)
        assert status == 2
        _one_line(err, r"was trained on other source images than imgpath=\['.*coffee\.png', '.*hubble_deep_field\.jpg'"
                       r"\] \(2 source\(s\), not its 1\)")

    @pytest.mark.parametrize(
        ("change", "pattern"),
        [
            ("not a dict", r" holds a list, not the dict train_example\.py writes$"),
            ("no epoch", r" has no 'epoch'; is it a checkpoint\.pt written by train_example\.py\?$"),
            ("string epoch", r" has epoch '1'; it should be the number of epochs trained, at least 1$"),
            ("bool epoch", r" has epoch True; "),
            ("negative epoch", r" has epoch -1; "),
            ("zero epoch", r" has epoch 0; "),
            ("epoch past epochs", r" is at epoch 5, past epochs=1; give epochs of 5 or more \(5 runs only the "
                                  r"probes\)$"),
            ("nan weights", r": network encoder has NaN or infinite weights in 'features\.0\.0\.weight'; resume "
                            r"from an "),
            ("inf weights", r": network encoder has NaN or infinite weights in 'features\.0\.0\.weight'"),
            ("nan momentum", r": optimizer sgd state 0 has NaN or infinite values in 'momentum_buffer'"),
            ("unknown config key", r": config: 'colour' is not a setting of train_example\.py$"),
            ("string num_imgs", r": config: num_imgs should be an integer, got '32'$"),
            ("config not a dict", r" has a config of type list, not a dict$"),
            ("config without num_imgs", r": its config has no 'num_imgs'$"),
            ("num_imgs out of range", r": num_imgs should be in \[1, \d+\], got -5$"),
            ("method disagrees", r" says method 'deepcluster' but its config method 'rotnet'$"),
            ("model not a dict", r": network encoder should be a dict of tensors, got str$"),
            ("model holds a number", r": network encoder should hold tensors, got a int at 'extra'$"),
            ("weight of another shape", r": network encoder does not fit the network of its own settings "
                                        r"\(width=0\.125, crop=None, "),
            ("optimizer not a state dict", r": optimizer sgd should be an optimizer state dict \(state, "
                                           r"param_groups\)$"),
            ("history not a list", r": history should be a list of per-epoch dicts$"),
            ("assignments in a rotnet run", r": method_state should be empty for rotnet, got \['assignments'\]$"),
            ("other source image", r" was trained on other source images than imgpath='.*coffee\.png' \(other "
                                   r"pixels in source 0\); give the image\(s\) it was trained on as imgpath$"),
            ("another format", r" has checkpoint format 1, not 2; it was written by another version of "
                               r"train_example\.py: resume it with that version, or start a new run$"),
            ("no networks", r" has no 'networks'; is it a checkpoint\.pt written by train_example\.py\?$"),
            ("another network", r": its networks are \['generator'\], rotnet has \['encoder'\]$"),
            ("rng of another shape", r": the saved random state cannot be restored \(RuntimeError: "),
            ("rng not a list", r": rng should be the random state of each process \(torch and cuda tensors\)$"),
        ],
    )
    def test_tampered_checkpoint_is_one_line(self, cli, trained, tmp_path, change, pattern, capsys):
        state = _tampered(change)(torch.load(trained, weights_only=True))
        status, err = _resume(cli, tmp_path, state, [], capsys)
        assert status == 2
        _one_line(err, r"^train_example\.py: error: resume checkpoint .*checkpoint\.pt" + pattern)

    def test_deepcluster_resumes_with_its_assignments(self, cli, tmp_path, coffee_path, capsys):
        out = tmp_path / "dc"
        argv = ["--out", str(out), "--workers", "0", "--method", "deepcluster", "--imgpath", str(coffee_path),
                "--num_imgs", "32", "--batch_size", "16", "--k", "4", "--pca_dim", "8", "--width", "0.125"]
        assert cli.main([*argv, "--epochs", "1"]) == 0
        assert cli.main(["--out", str(out), "--workers", "0", "--resume", "--epochs", "2"]) == 0, capsys.readouterr()
        second = json.loads((out / "metrics.jsonl").read_text().splitlines()[1])
        assert second["epoch"] == 2 and "nmi" in second  # the NMI compares with the restored assignments
        state = torch.load(out / "checkpoint.pt", weights_only=True)
        assert state["config"]["k"] == 4 and state["method_state"]["assignments"].shape == (32,)
        state["method_state"]["assignments"][0] = 4
        torch.save(state, out / "checkpoint.pt")
        assert cli.main(["--out", str(out), "--workers", "0", "--resume", "--epochs", "3"]) == 2
        _one_line(capsys.readouterr().err, r": assignments should be 32 cluster labels in \[0, 4\) of a deepcluster")

    def test_a_special_file_at_the_checkpoint_name_is_refused(self, cli, tmp_path, capsys):
        (tmp_path / "checkpoint.pt").mkdir()
        assert cli.main(["--out", str(tmp_path), "--resume"]) == 2
        _one_line(capsys.readouterr().err, r"checkpoint\.pt is not a regular file; remove it or give --resume a file$")


class TestDeepCluster:
    @pytest.mark.slow
    def test_loss_falls_and_assignments_are_stable(self, tiny_config) -> None:
        config = tiny_config(method="deepcluster", num_imgs=512, k=10, pca_dim=32, batch_size=32, epochs=3, lr=0.01,
                             width=0.25, backend="fast")
        result = run_training(config)
        history = result["history"]
        for h in history:
            # The head is re-initialised each epoch, so each epoch starts near ln(10) = 2.3.
            assert h["loss_last_quarter"] < h["loss_first_quarter"] - 0.3
            assert h["clusters"] == 10
        assert "nmi" not in history[0]
        assert min(h["nmi"] for h in history[1:]) > 0.2
        assert result["method"].assignments.shape == (512,)


class TestProbe:
    def test_reports_per_layer_accuracy(self, probe_set: Path) -> None:
        torch.manual_seed(0)
        accuracy = linear_probe(AlexNet(4, width=0.25, input_size=64), probe_set, epochs=8, batch_size=16)
        assert list(accuracy) == list(CONV_NAMES)
        assert all(0 <= a <= 1 and round(a * 36) == pytest.approx(a * 36) for a in accuracy.values())
        # Even random filters separate stripes by orientation from flat colour: chance is 1/3.
        assert min(accuracy.values()) > 0.45 and max(accuracy.values()) > 0.6

    def test_errors(self, tmp_path: Path, probe_set: Path, stripes_folder) -> None:
        with pytest.raises(FileNotFoundError, match="val/ is missing"):
            linear_probe(AlexNet(4, width=0.25, input_size=64), stripes_folder(tmp_path, {"train": 1}))
        (tmp_path / "other" / "train" / "a").mkdir(parents=True)
        (tmp_path / "other" / "val" / "b").mkdir(parents=True)
        for split, name in (("train", "a"), ("val", "b")):
            Image.new("RGB", (8, 8)).save(tmp_path / "other" / split / name / "0.png")
        with pytest.raises(ValueError, match="should have the same classes"):
            linear_probe(AlexNet(4, width=0.25, input_size=64), tmp_path / "other")


def test_make_probe_set_builds_an_image_folder(tmp_path: Path) -> None:
    from torchvision.datasets import ImageFolder

    builder = _load(REPO / "benchmarks" / "make_probe_set.py")
    assert builder.main([str(tmp_path), "--train", "2", "--val", "1", "--size", "16"]) == 0
    train_set, val_set = ImageFolder(str(tmp_path / "train")), ImageFolder(str(tmp_path / "val"))
    assert train_set.classes == val_set.classes == sorted(builder.CLASSES) and len(builder.CLASSES) == 10
    assert len(train_set) == 20 and len(val_set) == 10 and train_set[0][0].size == (16, 16)
    again = builder.make_probe_set(tmp_path / "again", train=2, val=1, size=16)
    name = Path("train", "rings", "0001.png")
    assert (again / name).read_bytes() == (tmp_path / name).read_bytes()


class TestCommandLine:
    def test_train_and_probe_against_random_init(
        self, cli: ModuleType, tmp_path: Path, coffee_path: Path, probe_set: Path, capsys: pytest.CaptureFixture
    ) -> None:
        argv = ["--imgpath", str(coffee_path), "--out", str(tmp_path), "--num_imgs", "32", "--val_imgs", "8",
                "--batch_size", "16", "--epochs", "1", "--workers", "0", "--probe", str(probe_set),
                "--probe_epochs", "1", "--width", "0.125"]
        assert cli.main(argv) == 0
        probe = json.loads((tmp_path / "probe.json").read_text())
        assert set(probe) == {"trained", "random", "probe_seed"} and probe["probe_seed"] == 0
        assert list(probe["trained"]) == list(probe["random"]) == list(CONV_NAMES)
        log = (tmp_path / "train.log").read_text()
        assert "linear probe top-1" in log and "random " in log
        assert "linear probe top-1" in capsys.readouterr().out

    @pytest.mark.parametrize(
        ("argv", "message"),
        [
            (["--method", "swav"], "argument --method: invalid choice: 'swav'"),
            (["--method", "simclr", "--temperature", "0"], r"temperature should be a positive number \(SimCLR's is "
                                                           r"0\.5\), got 0$"),
            (["--temperature", "-1"], r"temperature should be a positive number \(SimCLR's is 0\.5\), got -1$"),
            (["--temperature", "x"], r"argument --temperature: invalid float value: 'x'"),
            (["--epochs", "0"], "epochs should be at least 1, got 0"),
            (["--num_imgs", "x"], "argument --num_imgs: invalid int value: 'x'"),
            (["--imgpath", "/nonexistent.png"], "imgpath /nonexistent.png is not a file"),
            (["--crop", "32"], r"crop should be between 63 \(AlexNet's smallest input\) and img_size=64, got 32"),
            (["--method", "deepcluster", "--k", "1"], r"k should be in \[2, num_imgs=8192\], got 1"),
            (["--lr", "-1"], "lr should be a positive learning rate, got -1"),
            (["--probe", "/nonexistent"], "probe /nonexistent should be an ImageFolder root with train/ and val/"),
            (["--resume", "/nonexistent.pt"], "resume checkpoint /nonexistent.pt is not a file"),
            (["--device", "gpu"], "device should be like cpu, cuda or cuda:1, got 'gpu'"),
            (["--batch_size", "9000"], "batch_size=9000 should not exceed num_imgs=8192"),
            (["--workers", "-1"], r"workers should be in \[0, 256\], got -1"),
            (["--workers", "100000"], r"workers should be in \[0, 256\], got 100000"),
            (["--img_size", "100000"], r"img_size should be in \[1, 8192\], got 100000"),
            (["--num_imgs", str(2**63)], r"num_imgs should be in \[1, 100000000\], got 9223372036854775808$"),
            (["--num_imgs", str(2**63 - 1)], r"num_imgs should be in \[1, 100000000\], got 9223372036854775807$"),
            (["--num_imgs", "10000000000"], r"num_imgs should be in \[1, 100000000\], got 10000000000$"),
            (["--num_imgs", "99999999", "--val_imgs", "2"], r"num_imgs \+ val_imgs should be at most 100,000,000 \(an "
                                                            r"epoch holds its shuffled order in memory\), got "
                                                            r"100,000,001$"),
            (["--val_imgs", str(2**63 - 100)], r"val_imgs should be in \[0, 100000000\], got 9223372036854775708$"),
            (["--method", "deepcluster", "--num_imgs", "100000000", "--val_imgs", "0", "--width", "4"],
             r"deepcluster holds a feature row per training image: 6,103\.5 GiB for num_imgs=100,000,000 at width=4, "
             r"more than this machine's [\d,.]+ GiB of memory; lower num_imgs or width$"),
            (["--method", "bigan", "--per_source_classes"], r"per_source_classes has no use in bigan \(it reports "
                                                            r"nothing per source\); leave it out$"),
            (["--loader", "fast"], r"argument --loader: invalid choice: 'fast'"),
            (["--probe_only"], r"probe_only probes a checkpoint: give probe \(an ImageFolder root\) and resume"),
            (["--probe_seed", "-1"], r"probe_seed should be in \[0, 9223372036854775807\], got -1$"),
            (["--imgpath", "a.png", ""], r"imgpath is empty; leave it out for the default, or give a value$"),
            (["--imgpath", __file__, "/nonexistent.png"], r"imgpath /nonexistent\.png is not a file$"),
            (["--imgpath", __file__, str(Path(__file__).parent)], r"imgpath .*tests is not a file; give image files, "
                                                                  r"or one directory alone$"),
            (["--lr", "nan"], "lr should be a positive learning rate, got nan$"),
            (["--seed", str(2**64)], r"seed should be in \[0, 9223372036854775807\], got 18446744073709551616"),
            (["--width", "1e30"], r"width should be a positive channel multiplier of at most 4, got 1e\+30"),
            (["--epochs", str(-(10**30))], r"epochs should be at least 1, got -10{30}"),
            (["--device", "meta"], r"device 'meta' cannot train this program; use cpu, cuda or cuda:N"),
            (["--device", "xpu"], r"device 'xpu' cannot train this program"),
            (["--device", "cuda:99"], r"device 'cuda:99' (was asked for but CUDA is not available|does not exist)"),
            (["--out", ""], r"out is empty; leave it out for the default, or give a value"),
            (["--imgpath", ""], r"imgpath is empty; "),
            (["--device", ""], r"device is empty; "),
            (["--out", __file__], r"out .*test_train_example\.py exists and is not a folder; give a folder for"),
            (["--dropout", "1"], r"dropout should be a probability in \[0, 1\), got 1"),
            (["--weight_decay", "-1"], "weight_decay should be non-negative, got -1"),
            (["--width", "0"], "width should be a positive channel multiplier of at most 4, got 0"),
        ],
    )
    def test_bad_input_is_one_line(
        self, cli: ModuleType, argv: list[str], message: str, capsys: pytest.CaptureFixture
    ) -> None:
        try:
            status = cli.main(argv)
        except SystemExit as exc:  # argparse's own errors
            status = exc.code
        err = capsys.readouterr().err
        assert status == 2
        assert len(err.splitlines()) == 1 and err.startswith("train_example.py: error: "), err
        assert re.search(message, err), err

    def test_nan_loss_stops_the_run(self, cli: ModuleType, tmp_path: Path, coffee_path: Path,
                                    capsys: pytest.CaptureFixture) -> None:
        argv = ["--imgpath", str(coffee_path), "--out", str(tmp_path), "--num_imgs", "64", "--val_imgs", "0",
                "--batch_size", "16", "--epochs", "1", "--workers", "0", "--lr", "1e30"]
        assert cli.main(argv) == 1
        _one_line(capsys.readouterr().err, r"^train_example\.py: error: training diverged: the loss is (nan|inf) at "
                                           r"epoch 1, step [2-4]/4; lower lr \(now 1e\+30\) and train again")
        assert not (tmp_path / "checkpoint.pt").exists()

    def test_special_and_huge_sources_are_one_line(self, cli: ModuleType, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
        fifo = tmp_path / "fifo.png"
        os.mkfifo(fifo)
        bomb = tmp_path / "bomb.png"
        bomb.write_bytes(png_header(50_000, 50_000))
        for image, pattern in ((fifo, r"imgpath .*fifo\.png is not a file$"),
                               (bomb, r"bomb\.png has 2,500,000,000 pixels, over Pillow's decompression-bomb limit")):
            assert cli.main(["--imgpath", str(image), "--out", str(tmp_path / "out"), "--workers", "0"]) == 2
            _one_line(capsys.readouterr().err, pattern)

    @pytest.mark.slow
    def test_bad_input_in_a_real_process(self, tmp_path: Path) -> None:
        # From another folder and without PYTHONPATH: the script finds training/ beside itself.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        run = subprocess.run(
            [sys.executable, str(SCRIPT), "--out", str(tmp_path), "--width", "-1"],
            capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env,
        )
        assert run.returncode == 2
        assert run.stderr == (
            "train_example.py: error: width should be a positive channel multiplier of at most 4, got -1\n"
        )


@pytest.mark.slow
def test_torchrun_two_ranks_see_disjoint_indices(tmp_path: Path, coffee_path: Path) -> None:
    run = run_torchrun(SCRIPT, [
        "--imgpath", str(coffee_path), "--out", str(tmp_path), "--num_imgs", "100", "--val_imgs", "8",
        "--batch_size", "16", "--epochs", "2", "--workers", "1", "--log_indices", "--device", "cpu",
    ], timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    seen = {}
    for rank in (0, 1):
        lines = (tmp_path / f"indices_rank{rank}.txt").read_text().splitlines()
        seen[rank] = {int(line.split(":")[0]): [int(i) for i in line.split(":")[1].split()] for line in lines}
    for epoch in (0, 1):
        a, b = seen[0][epoch], seen[1][epoch]
        # 100 indices over 2 ranks: 50 each, 3 full batches of 16 each, no index twice.
        assert len(a) == len(b) == 48
        assert len(set(a) | set(b)) == 96 and set(a) | set(b) <= set(range(100))
    assert seen[0][0] != seen[0][1]  # DistributedSampler.set_epoch reshuffles
    assert "2 process(es) on cpu" in (tmp_path / "train.log").read_text()
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2


class TestPackage:
    def test_import_training_train_gives_the_module(self) -> None:
        module = importlib.import_module("training.train")
        assert isinstance(training.train, ModuleType) and training.train is module
        assert training.run_training is module.run_training and callable(module.run_training)

    def test_registry_refuses_a_second_name_and_non_methods(self) -> None:
        assert list(METHODS) == ["rotnet", "deepcluster", "bigan", "simclr"]
        with pytest.raises(ValueError, match=r"a method is already registered as 'rotnet' \(RotNet\); register this "):
            register_method("rotnet", RotNet)
        with pytest.raises(TypeError, match=r"method should be a Method subclass, got <class 'int'>"):
            register_method("int", int)  # type: ignore[arg-type]
        assert issubclass(METHODS["bigan"], Method) and "int" not in METHODS
