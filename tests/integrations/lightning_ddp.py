"""Lightning DDP on 2 CPU processes with ``batch_loader``: each rank writes the digests of the images it trained on.

Run as ``python lightning_ddp.py OUT_DIR``; Lightning starts the second process by running this script again.
``OUT_DIR/rank{r}.json`` maps each epoch to the SHA-1 digests of the images rank ``r`` received in it.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import defaultdict
from pathlib import Path

import lightning as L
import torch

from single_image_dataset import SingleImageDataset, batch_loader

NUM_IMGS, IMG_SIZE, BATCH_SIZE, EPOCHS = 48, 16, 4, 3


def dataset() -> SingleImageDataset:
    return SingleImageDataset(num_imgs=NUM_IMGS, img_size=IMG_SIZE, backend="fast", seed=7)


def digest(image: torch.Tensor) -> str:
    return hashlib.sha1(image.contiguous().numpy().tobytes()).hexdigest()


class Data(L.LightningDataModule):
    def train_dataloader(self):
        return batch_loader(dataset(), BATCH_SIZE, shuffle=True, num_workers=1)


class Recorder(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.seen: dict[int, list[str]] = defaultdict(list)

    def training_step(self, batch, batch_index):
        images, targets = batch
        self.seen[self.current_epoch] += [digest(image) for image in images]
        return self.layer(images.float().mean(dim=(1, 2, 3))[:, None]).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def main(out: Path) -> None:
    model = Recorder()
    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy="ddp", max_epochs=EPOCHS, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )
    trainer.fit(model, datamodule=Data())
    (out / f"rank{trainer.global_rank}.json").write_text(json.dumps(model.seen))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
