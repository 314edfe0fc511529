"""The training program's data path: the methods' crops, the epoch order, and the two loaders giving the same
batches (``batch_loader`` and a per-sample ``DataLoader``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from training import PositionCrop, TrainData, epoch_positions, run_training

pytestmark = [pytest.mark.filterwarnings("error"), pytest.mark.usefixtures("one_thread")]


class TestPositionCrop:
    def test_centre_crop_is_torchvisions_centre_crop(self) -> None:
        images = torch.rand(3, 3, 64, 64)
        crop = PositionCrop(51, random=False)
        expected = v2.CenterCrop(51)(images)
        assert torch.equal(crop.apply(images, crop.params(64, seed=0, epoch=0, positions=[0, 1, 2])), expected)

    def test_a_crop_depends_on_seed_epoch_and_position_only(self) -> None:
        crop = PositionCrop(48, scale=(0.2, 1.0))
        params = crop.params(64, seed=3, epoch=1, positions=range(50))
        assert np.array_equal(crop.params(64, 3, 1, [7, 8]), params[7:9])
        assert not np.array_equal(crop.params(64, 4, 1, range(50)), params)
        assert not np.array_equal(crop.params(64, 3, 2, range(50)), params)

    def test_random_crops_and_flips_cover_their_range(self) -> None:
        params = PositionCrop(56).params(64, seed=0, epoch=0, positions=range(400))
        top, left, height, width, flip = params.T
        assert set(top) == set(left) == set(range(9)) and set(height) == set(width) == {56}
        assert 0.4 < flip.mean() < 0.6

    def test_resized_crops_have_torchvisions_area_and_ratio(self) -> None:
        params = PositionCrop(32, scale=(0.2, 1.0)).params(64, seed=0, epoch=0, positions=range(400))
        top, left, height, width, _ = params.T
        area, ratio = height * width / 64**2, width / height
        assert np.all((area > 0.19) & (area < 1.01)) and np.all((ratio > 0.74) & (ratio < 1.35))
        assert np.all((top + height <= 64) & (left + width <= 64)) and len(set(height)) > 20

    def test_batch_equals_one_at_a_time(self) -> None:
        images = torch.rand(6, 3, 64, 64)
        for crop in (PositionCrop(63), PositionCrop(40, scale=(0.2, 1.0)), PositionCrop(63, random=False)):
            params = crop.params(64, seed=1, epoch=2, positions=range(6))
            whole = crop.apply(images, params)
            assert whole.shape == (6, 3, crop.size, crop.size)
            for i in range(6):
                assert torch.equal(whole[i], crop.apply(images[i : i + 1], params[i : i + 1])[0])


class TestEpochPositions:
    def test_ranks_share_one_permutation_in_full_batches(self) -> None:
        shares = [epoch_positions(103, seed=0, epoch=2, rank=r, world_size=3, batch_size=8) for r in range(3)]
        assert [len(s) for s in shares] == [32, 32, 32]
        assert len(set(np.concatenate(shares))) == 96 and set(np.concatenate(shares)) <= set(range(103))
        assert not np.array_equal(shares[0], epoch_positions(103, 0, 3, 0, 3, 8))

    def test_too_few_samples_for_a_batch(self) -> None:
        with pytest.raises(ValueError, match=r"batch_size=16 exceeds the 7 samples each of the 2 processes gets"):
            epoch_positions(15, seed=0, epoch=0, rank=0, world_size=2, batch_size=16)


def _data(coffee_path: Path, loader: str, workers: int = 0, **changes: object) -> TrainData:
    settings: dict = {"num_imgs": 24, "val_imgs": 4, "img_size": 64, "seed": 5, "backend": "reference",
                      "batch_size": 8, "workers": workers, "device": torch.device("cpu"), **changes}
    return TrainData(str(coffee_path), loader=loader, **settings)


class TestLoadersAgree:
    @pytest.mark.parametrize(
        "crop", [PositionCrop(63), PositionCrop(56, scale=(0.2, 1.0)), PositionCrop(64, random=False)],
        ids=["crop", "resized", "centre"],
    )
    def test_batched_and_per_sample_batches_are_identical(self, coffee_path: Path, crop: PositionCrop) -> None:
        indices = np.array([3, 3, 17, 0, 23, 5, 9, 9, 11, 2, 1, 20])  # repeats, as DeepCluster's
        positions = np.array([4, 0, 1, 11, 7, 6, 2, 3, 10])  # the last batch is smaller
        labels = torch.arange(28) % 5
        for epoch in (0, 3):
            batched = list(_data(coffee_path, "batch").batches(indices, positions, crop, epoch, labels))
            single = list(_data(coffee_path, "sample").batches(indices, positions, crop, epoch, labels))
            assert [len(x) for x, _ in batched] == [8, 1]
            for (xb, yb), (xs, ys) in zip(batched, single, strict=True):
                assert xb.dtype == xs.dtype == torch.float32 and torch.equal(xb, xs)
                assert yb.tolist() == ys.tolist() == (labels[indices[positions]].tolist()[:8] if len(yb) == 8
                                                       else labels[indices[positions]].tolist()[8:])

    @pytest.mark.slow
    def test_with_workers_too(self, coffee_path: Path) -> None:
        indices, positions = np.arange(24), np.arange(24)[::-1]
        expected = [x for x, _ in _data(coffee_path, "batch").batches(indices, positions, PositionCrop(56), 1)]
        for loader in ("batch", "sample"):
            got = [x for x, _ in _data(coffee_path, loader, workers=2).batches(indices, positions, PositionCrop(56), 1)]
            assert all(torch.equal(a, b) for a, b in zip(expected, got, strict=True))

    def test_targets_are_the_sources_with_per_source_classes(self, coffee_path: Path, hubble_path: Path) -> None:
        data = TrainData([str(coffee_path), str(hubble_path)], loader="batch", num_imgs=24, val_imgs=0, img_size=64,
                         seed=0, backend="reference", batch_size=24, workers=0, device=torch.device("cpu"),
                         per_source_classes=True)
        (_, targets), = data.batches(np.arange(24), np.arange(24), PositionCrop(64, random=False), 0)
        assert targets.tolist() == [data.dataset.params(i).source for i in range(24)]
        assert set(targets.tolist()) == {0, 1}
        assert data.sources_sha256() != [data.sources_sha256()[0]] * 2

    def test_crops_are_normalised_samples(self, coffee_path: Path) -> None:
        data = _data(coffee_path, "batch")
        (x, _), = data.batches(np.arange(2), np.arange(2), PositionCrop(64, random=False), 0)
        mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
        pixels = data.dataset[1][0].float() / 255
        torch.testing.assert_close(x[1], (pixels - mean[:, None, None]) / std[:, None, None])


class TestSameLossCurve:
    """The batched path and the per-sample path train on the same batches, so their losses are the same."""

    @pytest.mark.parametrize("method", ["rotnet", "deepcluster"])
    def test_losses_equal_for_the_same_seed_and_indices(self, tiny_config, tmp_path: Path, method: str) -> None:
        extra = {"k": 4, "pca_dim": 8} if method == "deepcluster" else {}
        runs = {
            loader: run_training(tiny_config(method=method, loader=loader, epochs=2, out=str(tmp_path / loader),
                                             log_indices=True, **extra))
            for loader in ("batch", "sample")
        }
        timing = ("seconds", "steps_per_second", "cluster_seconds")
        batch, sample = ([{k: v for k, v in h.items() if k not in timing} for h in r["history"]] for r in runs.values())
        assert batch == sample and len(batch) == 2
        assert (tmp_path / "batch" / "indices_rank0.txt").read_text() == (tmp_path / "sample" /
                                                                         "indices_rank0.txt").read_text()
        for a, b in zip(*(r["method"].encoder.state_dict().values() for r in runs.values()), strict=True):
            assert torch.equal(a, b)


class TestSeveralSources:
    def test_a_directory_of_sources_with_per_source_classes(self, tiny_config, tmp_path: Path, coffee_path: Path,
                                                            hubble_path: Path) -> None:
        folder = tmp_path / "two"
        folder.mkdir()
        for path in (coffee_path, hubble_path):
            (folder / path.name).write_bytes(path.read_bytes())
        rotnet = run_training(tiny_config(imgpath=str(folder), per_source_classes=True, val_imgs=32))
        (record,) = rotnet["history"]
        by_source = record["val_rotation_acc_by_source"]
        assert list(by_source) == ["coffee", "hubble_deep_field"] and all(0 <= a <= 1 for a in by_source.values())
        deepcluster = run_training(tiny_config(imgpath=str(folder), per_source_classes=True, method="deepcluster",
                                               k=4, pca_dim=8, out=str(tmp_path / "dc")))
        assert 0 <= deepcluster["history"][0]["nmi_sources"] <= 1
        assert len(torch.load(tmp_path / "dc" / "checkpoint.pt", weights_only=True)["sources_sha256"]) == 2
