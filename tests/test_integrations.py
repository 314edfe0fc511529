"""``batch_loader`` under the frameworks themselves: PyTorch Lightning and Hugging Face Accelerate.

They are in the ``integrations`` extra (``pip install -e ".[integrations]"``, which ``.ci/run`` installs); without
it these tests are skipped. Each checks what the framework delivers to a training step, identified by the images'
digests against the dataset's samples: fresh samples each epoch, with no ``set_epoch`` of the user's, and across
processes, disjoint shares that cover the epoch. The multi-process runs start the scripts of
``tests/integrations/`` in subprocesses, as a user launches them.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import torch

from single_image_dataset import SingleImageDataset, batch_loader, collate_batch

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent / "integrations"
NUM_IMGS, IMG_SIZE, BATCH_SIZE, EPOCHS = 48, 16, 4, 3  # as in the scripts


def _dataset() -> SingleImageDataset:
    return SingleImageDataset(num_imgs=NUM_IMGS, img_size=IMG_SIZE, backend="fast", seed=7)


def _digest(image: torch.Tensor) -> str:
    return hashlib.sha1(image.contiguous().numpy().tobytes()).hexdigest()


def _epoch_digests(epoch: int) -> set[str]:
    """The digests of all samples of the dataset at ``epoch``."""
    ds = _dataset()
    ds.set_epoch(epoch)
    return {_digest(image) for image in ds.render_indices(range(NUM_IMGS))[0]}


def _check_shares(shares: list[dict[str, list[str]]]) -> None:
    """Per epoch, the processes' images are disjoint and together are that epoch's samples, each once."""
    for epoch in range(EPOCHS):
        seen = [digest for share in shares for digest in share[str(epoch)]]
        assert len(seen) == len(set(seen)) == NUM_IMGS, f"epoch {epoch}: shares overlap or miss samples"
        assert set(seen) == _epoch_digests(epoch), f"epoch {epoch}: not that epoch's samples"


def _run(argv: list[str], cwd: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


class TestLightning:
    @pytest.mark.slow
    def test_a_trainer_gets_fresh_samples_each_epoch(self, tmp_path):
        L = pytest.importorskip("lightning")

        class Recorder(L.LightningModule):
            def __init__(self) -> None:
                super().__init__()
                self.layer = torch.nn.Linear(1, 1)
                self.seen: dict[str, list[str]] = defaultdict(list)

            def training_step(self, batch, batch_index):
                images, _ = batch
                self.seen[str(self.current_epoch)] += [_digest(image) for image in images]
                return self.layer(images.float().mean(dim=(1, 2, 3))[:, None]).sum()

            def configure_optimizers(self):
                return torch.optim.SGD(self.parameters(), lr=0.0)

        class Data(L.LightningDataModule):
            def train_dataloader(self):
                return batch_loader(_dataset(), BATCH_SIZE, shuffle=True, num_workers=2, persistent_workers=True)

        model = Recorder()
        trainer = L.Trainer(
            accelerator="cpu", devices=1, max_epochs=EPOCHS, logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
        )
        trainer.fit(model, datamodule=Data())
        _check_shares([model.seen])

    @pytest.mark.slow
    def test_ddp_ranks_get_disjoint_shares_of_fresh_epochs(self, tmp_path):
        pytest.importorskip("lightning")
        _run([sys.executable, str(SCRIPTS / "lightning_ddp.py"), str(tmp_path)], tmp_path)
        _check_shares([json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)])


class TestAccelerate:
    def test_prepared_shards_are_disjoint_and_fresh_each_epoch(self):
        accelerate = pytest.importorskip("accelerate")
        loader = batch_loader(_dataset(), BATCH_SIZE, num_workers=2, persistent_workers=True)
        # Both processes' loaders, made here as prepare makes them in each: batches 0, 2, ... and 1, 3, ...
        shards = [
            accelerate.data_loader.prepare_data_loader(loader, num_processes=2, process_index=rank)
            for rank in range(2)
        ]
        assert all(shard.dataset is loader.dataset and shard.collate_fn is collate_batch for shard in shards)
        seen = [defaultdict(list) for _ in shards]
        for epoch in range(EPOCHS):  # no set_epoch: the prepared loader calls its sampler's at each pass
            for shard, share in zip(shards, seen, strict=True):
                share[str(epoch)] = [_digest(image) for images, _ in shard for image in images]
        _check_shares(seen)

    @pytest.mark.slow
    def test_two_processes_get_disjoint_shares_of_fresh_epochs(self, tmp_path):
        pytest.importorskip("accelerate")
        launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
        _run([*launch, str(SCRIPTS / "accelerate_ranks.py"), str(tmp_path)], tmp_path)
        _check_shares([json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)])
