"""SimCLR in the training program: its NT-Xent loss against a hand computation, its views from the library, a
step on CPU with either loader, its probes, its settings and their errors, and a run under torchrun."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_torchrun

import training.train
from single_image_dataset.views import preset
from training import CONV_NAMES, AlexNet, SimCLR, TrainConfig, TrainData, nt_xent, run_training
from training.methods import PROJECTION_DIM

pytestmark = [pytest.mark.filterwarnings("error"), pytest.mark.usefixtures("one_thread")]

REPO = Path(__file__).resolve().parent.parent


def _nt_xent_by_hand(z: np.ndarray, temperature: float) -> float:
    """The paper's equation 1, one anchor at a time: rows k and k + N are a positive pair."""
    n2 = len(z)
    unit = [[v / math.sqrt(sum(w * w for w in row)) for v in row] for row in z.tolist()]
    total = 0.0
    for i in range(n2):
        partner = (i + n2 // 2) % n2
        sim = [sum(a * b for a, b in zip(unit[i], unit[j], strict=True)) / temperature for j in range(n2)]
        total += -math.log(math.exp(sim[partner]) / sum(math.exp(sim[j]) for j in range(n2) if j != i))
    return total / n2


class TestNTXent:
    @pytest.mark.parametrize("temperature", [0.5, 0.1, 2.0])
    def test_equals_the_papers_equation_computed_by_hand(self, temperature: float) -> None:
        z = torch.randn(6, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        assert float(nt_xent(z, temperature)) == pytest.approx(_nt_xent_by_hand(z.numpy(), temperature), rel=1e-12)

    def test_the_pairing_matters(self) -> None:
        # Rows k and k + N are the pair: matching views give a low loss, the same rows paired otherwise a high one.
        first = torch.randn(4, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        paired = torch.cat([first, first + 0.01])
        mismatched = torch.cat([first, first.roll(1, 0) + 0.01])
        assert float(nt_xent(paired, 0.5)) < float(nt_xent(mismatched, 0.5)) - 1
        assert float(nt_xent(mismatched, 0.5)) == pytest.approx(_nt_xent_by_hand(mismatched.numpy(), 0.5), rel=1e-12)

    def test_scale_of_the_projections_does_not_matter(self) -> None:
        z = torch.randn(4, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
        torch.testing.assert_close(nt_xent(z, 0.5), nt_xent(z * torch.rand(4, 1, dtype=torch.float64) * 10, 0.5))

    @pytest.mark.parametrize(
        ("shape", "temperature", "pattern"),
        [
            ((3, 4), 0.5, r"z should be 2N x D projections \(two views of N images\), got shape \(3, 4\)"),
            ((4,), 0.5, r"z should be 2N x D projections .* got shape \(4,\)"),
            ((4, 4), 0.0, r"temperature should be a positive number, got 0$"),
            ((4, 4), -1.0, r"temperature should be a positive number, got -1$"),
            ((4, 4), float("inf"), r"temperature should be a positive number, got inf$"),
        ],
    )
    def test_errors(self, shape: tuple[int, ...], temperature: float, pattern: str) -> None:
        with pytest.raises(ValueError, match=pattern):
            nt_xent(torch.ones(shape), temperature)


class TestData:
    def test_batches_are_the_librarys_views_normalised(self, coffee_path: Path) -> None:
        views = preset("simclr", size=64)
        for loader in ("batch", "sample"):
            data = TrainData(str(coffee_path), num_imgs=8, val_imgs=0, img_size=64, seed=3, backend="fast",
                             loader=loader, batch_size=4, workers=0, device=torch.device("cpu"), views=views)
            (x, _), = data.batches(np.arange(8), np.array([5, 1, 6, 2]), None, 0)
            assert isinstance(x, list) and [tuple(v.shape) for v in x] == [(4, 3, 64, 64)] * 2
            mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
            std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
            for k, index in enumerate([5, 1, 6, 2]):
                rendered, _ = data.dataset[index]
                for v in range(2):
                    torch.testing.assert_close(x[v][k], (rendered[v].float() / 255 - mean) / std)
            assert not torch.equal(x[0], x[1])  # two different views of each sample


class TestTraining:
    def test_a_step_on_cpu_trains_encoder_and_projector(self, tiny_config) -> None:
        config = tiny_config(method="simclr", num_imgs=16, val_imgs=0, batch_size=8, backend="fast")
        torch.manual_seed(0)
        initial = SimCLR(config, training.methods.Context(0, 1, torch.device("cpu")))
        result = run_training(config, echo=False)
        method = result["method"]
        assert isinstance(method, SimCLR) and method.views() == preset("simclr", size=64)
        record = result["history"][0]
        # Two steps of 16 views each: the loss starts near log(2N - 1) of unrelated projections.
        assert abs(record["loss_first_quarter"] - math.log(15)) < 0.3 and math.isfinite(record["loss"])
        for name in ("encoder", "projector"):
            before, after = initial.networks()[name].state_dict(), method.networks()[name].state_dict()
            assert any(not torch.equal(before[k], after[k]) for k in before if before[k].is_floating_point()), name
        assert method.projector[-1].out_features == PROJECTION_DIM
        saved = torch.load(Path(config.out) / "checkpoint.pt", weights_only=True)
        assert set(saved["networks"]) == {"encoder", "projector"} and saved["config"]["temperature"] == 0.5

    def test_both_loaders_train_alike(self, tiny_config, tmp_path: Path) -> None:
        runs = [run_training(tiny_config(method="simclr", num_imgs=16, val_imgs=0, batch_size=8, loader=loader,
                                         out=str(tmp_path / loader)), echo=False) for loader in ("batch", "sample")]
        assert runs[0]["history"][0]["loss"] == runs[1]["history"][0]["loss"]
        a, b = (r["method"].encoder.state_dict() for r in runs)
        assert all(torch.equal(a[k], b[k]) for k in a)

    @pytest.mark.parametrize("resample", [False, True])
    def test_each_epoch_draws_fresh_views(self, tiny_config, monkeypatch, resample: bool) -> None:
        seen = []
        original = TrainData.batches

        def batches(self, indices, *args, **kwargs):
            # Each epoch's sample and views of index 0, as the loader delivers them in that epoch.
            sample = self.dataset.render_batch(self.dataset.params_batch([0]))
            views = self.dataset.render_views(self.dataset.params_batch([0]), self.dataset.view_params_batch([0]))
            seen.append((self.dataset.epoch, sample, views))
            return original(self, indices, *args, **kwargs)

        monkeypatch.setattr(TrainData, "batches", batches)
        run_training(tiny_config(method="simclr", num_imgs=8, val_imgs=0, batch_size=8, epochs=2, resample=resample),
                     echo=False)
        (epoch_a, sample_a, views_a), (epoch_b, sample_b, views_b) = seen[0], seen[-1]
        assert (epoch_a, epoch_b) == (0, 1)
        assert torch.equal(sample_a, sample_b) is not resample  # the paper's fixed samples unless --resample
        assert not any(torch.equal(a, b) for a, b in zip(views_a, views_b, strict=True))  # fresh views either way

    def test_the_temperature_is_the_losss(self, tiny_config, tmp_path: Path) -> None:
        losses = [run_training(tiny_config(method="simclr", num_imgs=8, val_imgs=0, batch_size=8, temperature=t,
                                           out=str(tmp_path / str(t))), echo=False)["history"][0]["loss"]
                  for t in (0.5, 0.1)]
        assert losses[0] != losses[1]

    def test_the_probes_read_the_trained_trunk(self, tiny_config, probe_set: Path, monkeypatch) -> None:
        probed: list[AlexNet] = []

        def fake_probe(trunk: AlexNet, root: str, **kwargs: object) -> dict[str, float]:
            probed.append(trunk)
            return dict.fromkeys(CONV_NAMES, 0.5)

        monkeypatch.setattr(training.train, "linear_probe", fake_probe)
        result = run_training(tiny_config(method="simclr", num_imgs=8, val_imgs=0, batch_size=8, probe=str(probe_set)),
                              echo=False)
        trained, random_init = probed
        encoder = result["method"].encoder.state_dict()
        assert all(torch.equal(trained.state_dict()[k], encoder[k]) for k in encoder)
        conv1 = "features.0.0.weight"
        assert not torch.equal(random_init.state_dict()[conv1], encoder[conv1])
        assert json.loads((Path(result["method"].config.out) / "probe.json").read_text())["trained"]["conv5"] == 0.5

    @pytest.mark.slow
    def test_real_probes_of_conv1_to_conv5(self, tiny_config, probe_set: Path) -> None:
        result = run_training(tiny_config(method="simclr", num_imgs=16, val_imgs=0, batch_size=8,
                                          probe=str(probe_set), probe_epochs=1), echo=False)
        assert list(result["probe"]["trained"]) == list(result["probe"]["random"]) == list(CONV_NAMES)
        assert all(0 <= a <= 1 for a in result["probe"]["trained"].values())


class TestSettings:
    def test_temperature_is_checked(self) -> None:
        for value, shown in ((0.0, "0"), (-0.5, "-0.5"), (float("nan"), "nan")):
            with pytest.raises(ValueError, match=rf"temperature should be a positive number \(SimCLR's is 0\.5\), "
                                                 rf"got {shown}$"):
                TrainConfig(method="simclr", temperature=value)
        with pytest.raises(TypeError, match=r"temperature should be a number, got '0\.5'"):
            TrainConfig(temperature="0.5")  # type: ignore[arg-type]

    def test_resume_keeps_the_temperature(self, tiny_config, tmp_path: Path) -> None:
        run_training(tiny_config(method="simclr", num_imgs=8, val_imgs=0, batch_size=8), echo=False)
        with pytest.raises(ValueError, match=r"was trained with temperature=0\.5, not temperature=0\.1; a resumed "):
            training.resumed_config(tiny_config(epochs=2, resume="auto", temperature=0.1).to_dict(),
                                    {"epochs", "resume", "temperature"})
        config = training.resumed_config(tiny_config(epochs=2, resume="auto").to_dict(), {"epochs", "resume"})
        assert (config.method, config.temperature) == ("simclr", 0.5)

    def test_other_methods_ignore_it_and_older_checkpoints_resume(self, tiny_config, tmp_path: Path) -> None:
        run_training(tiny_config(num_imgs=16, val_imgs=0, batch_size=16), echo=False)
        path = tmp_path / "out" / "checkpoint.pt"
        state = torch.load(path, weights_only=True)
        del state["config"]["temperature"]  # as a checkpoint written before SimCLR
        torch.save(state, path)
        config = training.resumed_config(tiny_config(epochs=2, resume="auto", temperature=0.1).to_dict(),
                                         {"epochs", "resume", "temperature"})
        assert (config.method, config.temperature) == ("rotnet", 0.1)


@pytest.mark.slow
def test_torchrun_two_processes(tmp_path: Path, coffee_path: Path) -> None:
    run = run_torchrun(REPO / "train_example.py", [
        "--method", "simclr", "--imgpath", str(coffee_path), "--out", str(tmp_path), "--num_imgs", "32",
        "--val_imgs", "0", "--batch_size", "8", "--epochs", "2", "--workers", "1", "--width", "0.125",
        "--device", "cpu", "--backend", "fast",
    ], timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    log = (tmp_path / "train.log").read_text()
    assert "simclr on" in log and "2 process(es) on cpu" in log
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    # 16 samples per process, 2 steps of 8: the global batch of 2 x 8 images has 32 views, so the first loss is
    # near log(31), not the log(15) of a process's own batch.
    assert len(records) == 2 and abs(records[0]["loss_first_quarter"] - math.log(31)) < 0.3
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert saved["epoch"] == 2 and len(saved["rng"]) == 2 and set(saved["networks"]) == {"encoder", "projector"}
