"""BiGAN: its networks, a tiny CPU run, its per-epoch grid, exact resume, and probes that read its encoder."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from PIL import Image

import training.train
from training import AlexNet, BiGAN, LinearProbes, run_training
from training.methods import LATENT_DIM, Generator, JointDiscriminator, step_size_factor

pytestmark = [pytest.mark.filterwarnings("error"), pytest.mark.usefixtures("one_thread")]


class TestNetworks:
    @pytest.mark.parametrize("size", [63, 64, 96, 128, 224])
    def test_generator_makes_images_of_the_input_size(self, size: int) -> None:
        with torch.device("meta"):
            images = Generator(LATENT_DIM, size, width=1.0)(torch.zeros(2, LATENT_DIM))
            logits = JointDiscriminator(LATENT_DIM, size, width=1.0)(images, torch.zeros(2, LATENT_DIM))
        assert tuple(images.shape) == (2, 3, size, size) and tuple(logits.shape) == (2,)

    def test_generator_output_is_in_tanh_range(self) -> None:
        torch.manual_seed(0)
        images = Generator(LATENT_DIM, 64, width=0.25)(torch.rand(4, LATENT_DIM) * 2 - 1)
        assert images.min() >= -1 and images.max() <= 1 and images.std() > 0

    def test_paper_width_channels(self) -> None:
        generator = Generator(LATENT_DIM, 64, width=1.0)
        deconvs = [m.out_channels for m in generator.deconv if isinstance(m, torch.nn.ConvTranspose2d)]
        assert deconvs == [256, 128, 64, 3]
        assert generator.channels == 512

    def test_step_size_is_constant_then_decays_to_one_percent(self) -> None:
        factors = [step_size_factor(e, 100) for e in range(100)]
        assert factors[:50] == [1.0] * 50 and math.isclose(factors[-1], 0.01)
        assert all(a > b for a, b in zip(factors[49:-1], factors[50:], strict=True))
        assert step_size_factor(0, 1) == 1.0


def test_two_steps_train_write_a_grid_and_probe_the_encoder(tiny_config, tmp_path: Path, probe_set: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    probed: list[AlexNet] = []

    def spy(trunk: AlexNet, root: str, **kwargs: object) -> dict[str, float]:
        probed.append(trunk)
        return dict.fromkeys(("conv1", "conv2", "conv3", "conv4", "conv5"), 0.5)

    monkeypatch.setattr(training.train, "linear_probe", spy)
    result = run_training(tiny_config(method="bigan", probe=str(probe_set), val_imgs=16))
    (record,) = result["history"]
    assert 32 // 16 == 2 and record["lr"] == 2e-4  # two steps at the paper's step size
    for name in ("loss_d", "loss_eg", "reconstruction_l1"):
        assert math.isfinite(record[name]) and record[name] > 0, name
    method = result["method"]
    assert isinstance(method, BiGAN) and isinstance(method.encoder, AlexNet)
    assert method.encoder.top_layer.out_features == LATENT_DIM
    assert {id(p) for p in method.encoder.parameters()} <= {id(p) for g in method.optimizer.param_groups
                                                            for p in g["params"]}
    # The grid: 4 rows of samples, then 2 x (8 held-out images, their 8 reconstructions), 64 px with 2 px gaps.
    with Image.open(tmp_path / "out" / "samples" / "epoch_001.png") as grid:
        assert grid.size == (8 * 66 + 2, 8 * 66 + 2) and grid.mode == "RGB"
    assert record["samples"] == "samples/epoch_001.png"
    # The probes read the encoder's weights (the trained one first, then a random-init AlexNet).
    trained, random_init = probed
    for key, value in method.encoder.state_dict().items():
        assert torch.equal(trained.state_dict()[key], value)
    assert not torch.equal(random_init.features[0][0].weight, trained.features[0][0].weight.cpu())
    maps = LinearProbes(trained, 3).trunk.conv_features(torch.zeros(2, 3, 64, 64))
    assert [m.shape[1] for m in maps] == list(method.encoder.channels)


def test_resumed_equals_uninterrupted(tiny_config, tmp_path: Path) -> None:
    straight = run_training(tiny_config(method="bigan", epochs=2, out=str(tmp_path / "a")))
    run_training(tiny_config(method="bigan", epochs=1, out=str(tmp_path / "b")))
    resumed = run_training(tiny_config(method="bigan", epochs=2, out=str(tmp_path / "b"), resume="auto"))
    losses = ("loss_d", "loss_eg", "loss_d_first_quarter", "loss_eg_last_quarter", "reconstruction_l1", "lr")
    assert [resumed["history"][0][k] for k in losses] == [straight["history"][1][k] for k in losses]
    a, b = (r["method"] for r in (straight, resumed))
    for name, network in a.networks().items():
        for key, value in network.state_dict().items():
            assert torch.equal(value, b.networks()[name].state_dict()[key]), (name, key)
    assert (tmp_path / "a" / "samples" / "epoch_002.png").read_bytes() == (tmp_path / "b" / "samples" /
                                                                          "epoch_002.png").read_bytes()
