"""``train_example.py`` and its ``training`` package: tiny CPU runs that must learn, torchrun, probes."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from PIL import Image

from single_image_dataset import SingleImageDataset
from training import (
    CONV_NAMES,
    AlexNet,
    LinearProbes,
    TrainConfig,
    compute_features,
    linear_probe,
    min_input_size,
    pca_whiten,
    train,
    uniform_cluster_indices,
)

pytestmark = pytest.mark.filterwarnings("error")

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


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One intra-op thread: faster than two on a shared 2-core machine, and reproducible."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _stripes_folder(root: Path, per_class: dict[str, int], size: int = 64) -> Path:
    """A labelled ImageFolder of horizontal / vertical stripes and flat colour, random colours."""
    y, x = np.mgrid[0:size, 0:size] / size
    for split, count in per_class.items():
        for class_id, name in enumerate(("horizontal", "vertical", "flat")):
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                rng = np.random.default_rng([class_id, i, len(split)])
                coord = {"horizontal": y, "vertical": x, "flat": np.zeros_like(x)}[name]
                mask = (np.sin(2 * np.pi * rng.uniform(3, 6) * coord + rng.uniform(0, 6)) > 0)[..., None]
                image = np.where(mask, rng.random(3), rng.random(3)) + rng.normal(0, 0.05, (size, size, 3))
                Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8)).save(root / split / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def probe_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _stripes_folder(tmp_path_factory.mktemp("probe"), {"train": 32, "val": 12})


def _tiny(tmp_path: Path, coffee_path: Path, **changes: object) -> TrainConfig:
    values: dict[str, object] = {
        "imgpath": str(coffee_path), "out": str(tmp_path / "out"), "num_imgs": 64, "val_imgs": 16,
        "batch_size": 16, "epochs": 1, "workers": 0, "log_every": 1000,
    }
    return TrainConfig(**{**values, **changes})


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
        features = compute_features(net, dataset, batch_size=5, workers=0, device=torch.device("cpu"))
        assert features.shape == (12, net.feature_dim)
        net.eval()
        with torch.no_grad():
            torch.testing.assert_close(features[7], net.embed(dataset[7][0][None])[0])


class TestRotNet:
    def test_learns_rotation_on_held_out_indices(self, tmp_path: Path, coffee_path: Path) -> None:
        config = _tiny(tmp_path, coffee_path, num_imgs=960, val_imgs=256, batch_size=32, epochs=2, lr=0.003)
        result = train(config)
        history = result["history"]
        assert [h["epoch"] for h in history] == [1, 2]
        # Chance is 25 %; 1024 held-out predictions put chance +- 3 sd at 21-29 %.
        assert history[-1]["val_rotation_acc"] > 0.35
        out = Path(config.out)
        assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
        assert "epoch 2/2" in (out / "train.log").read_text()
        state = torch.load(out / "checkpoint.pt", weights_only=True)
        assert state["epoch"] == 2 and state["method"] == "rotnet"

    def test_resume_continues_after_the_last_epoch(self, tmp_path: Path, coffee_path: Path) -> None:
        first = train(_tiny(tmp_path, coffee_path))
        assert [h["epoch"] for h in first["history"]] == [1]
        second = train(_tiny(tmp_path, coffee_path, epochs=2, resume="auto"))
        assert [h["epoch"] for h in second["history"]] == [2]
        state = torch.load(tmp_path / "out" / "checkpoint.pt", weights_only=True)
        assert state["epoch"] == 2 and [h["epoch"] for h in state["history"]] == [1, 2]
        with pytest.raises(ValueError, match="is a rotnet run, not deepcluster"):
            train(_tiny(tmp_path, coffee_path, epochs=3, method="deepcluster", k=4, resume="auto"))
        with pytest.raises(ValueError, match="does not fit this network"):
            train(_tiny(tmp_path, coffee_path, epochs=3, width=0.5, resume="auto"))
        (tmp_path / "junk.pt").write_text("junk")
        with pytest.raises(ValueError, match=r"junk.pt could not be read \(\w+\); is it a checkpoint.pt"):
            train(_tiny(tmp_path, coffee_path, epochs=3, resume=str(tmp_path / "junk.pt")))


class TestDeepCluster:
    def test_loss_falls_and_assignments_are_stable(self, tmp_path: Path, coffee_path: Path) -> None:
        config = _tiny(tmp_path, coffee_path, method="deepcluster", num_imgs=512, k=10, pca_dim=32,
                       batch_size=32, epochs=3, lr=0.01)
        result = train(config)
        history = result["history"]
        for h in history:
            # The head is re-initialised each epoch, so each epoch starts near ln(10) = 2.3.
            assert h["loss_last_quarter"] < h["loss_first_quarter"] - 0.3
            assert h["clusters"] == 10
        assert "nmi" not in history[0]
        assert min(h["nmi"] for h in history[1:]) > 0.2
        assert result["assignments"].shape == (512,)


class TestProbe:
    def test_reports_per_layer_accuracy(self, probe_set: Path) -> None:
        torch.manual_seed(0)
        accuracy = linear_probe(AlexNet(4, width=0.25, input_size=64), probe_set, epochs=8, batch_size=16)
        assert list(accuracy) == list(CONV_NAMES)
        assert all(0 <= a <= 1 and round(a * 36) == pytest.approx(a * 36) for a in accuracy.values())
        # Even random filters separate stripes by orientation from flat colour: chance is 1/3.
        assert min(accuracy.values()) > 0.45 and max(accuracy.values()) > 0.6

    def test_errors(self, tmp_path: Path, probe_set: Path) -> None:
        with pytest.raises(FileNotFoundError, match="val/ is missing"):
            linear_probe(AlexNet(4, width=0.25, input_size=64), _stripes_folder(tmp_path, {"train": 1}))
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
        assert set(probe) == {"trained", "random"}
        assert all(list(accs) == list(CONV_NAMES) for accs in probe.values())
        log = (tmp_path / "train.log").read_text()
        assert "linear probe top-1" in log and "random " in log
        assert "linear probe top-1" in capsys.readouterr().out

    @pytest.mark.parametrize(
        ("argv", "message"),
        [
            (["--method", "simclr"], "argument --method: invalid choice: 'simclr'"),
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
            (["--workers", "-1"], "workers should be a non-negative number of processes, got -1"),
            (["--dropout", "1"], r"dropout should be a probability in \[0, 1\), got 1"),
            (["--weight_decay", "-1"], "weight_decay should be non-negative, got -1"),
            (["--width", "0"], "width should be a positive channel multiplier, got 0"),
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
        assert len(err.splitlines()) == 1 and err.startswith("train_example.py: error: ")
        assert __import__("re").search(message, err)

    def test_bad_input_in_a_real_process(self, tmp_path: Path) -> None:
        # From another folder and without PYTHONPATH: the script finds training/ beside itself.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        run = subprocess.run(
            [sys.executable, str(SCRIPT), "--out", str(tmp_path), "--width", "-1"],
            capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env,
        )
        assert run.returncode == 2
        assert run.stderr == "train_example.py: error: width should be a positive channel multiplier, got -1\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_ranks_see_disjoint_indices(tmp_path: Path, coffee_path: Path) -> None:
    torchrun = Path(sys.executable).parent / "torchrun"
    command = [
        str(torchrun), "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
        str(SCRIPT), "--imgpath", str(coffee_path), "--out", str(tmp_path), "--num_imgs", "100", "--val_imgs", "8",
        "--batch_size", "16", "--epochs", "2", "--workers", "1", "--log_indices", "--device", "cpu",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env)
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
