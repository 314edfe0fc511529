"""Hugging Face Accelerate on 2 CPU processes with ``batch_loader``: each rank writes the digests of its images.

Run with ``accelerate launch --cpu --num_processes 2 accelerate_ranks.py OUT_DIR``. ``OUT_DIR/rank{r}.json`` maps
each epoch to the SHA-1 digests of the images rank ``r`` received in it; the loop calls no ``set_epoch``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch
from accelerate import Accelerator

from single_image_dataset import SingleImageDataset, batch_loader

NUM_IMGS, IMG_SIZE, BATCH_SIZE, EPOCHS = 48, 16, 4, 3


def dataset() -> SingleImageDataset:
    return SingleImageDataset(num_imgs=NUM_IMGS, img_size=IMG_SIZE, backend="fast", seed=7)


def digest(image: torch.Tensor) -> str:
    return hashlib.sha1(image.contiguous().numpy().tobytes()).hexdigest()


def main(out: Path) -> None:
    accelerator = Accelerator(cpu=True)
    loader = accelerator.prepare(batch_loader(dataset(), BATCH_SIZE, shuffle=True, num_workers=1))
    seen = {epoch: [digest(image) for images, _ in loader for image in images] for epoch in range(EPOCHS)}
    (out / f"rank{accelerator.process_index}.json").write_text(json.dumps(seen))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
