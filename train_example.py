"""Self-supervised pretraining on a single image: RotNet, DeepCluster or BiGAN on an AlexNet, then linear probes.

With no arguments: a few-minute CPU demo of RotNet on the embedded default photograph (coffee).

    python train_example.py                                      # CPU demo
    python train_example.py --method deepcluster --k 100         # DeepCluster
    python train_example.py --method bigan                       # BiGAN, a sample grid per epoch
    python train_example.py --probe probe_set/                   # + linear probes conv1..conv5
    torchrun --nproc_per_node 8 train_example.py --device cuda --num_imgs 1281167 --img_size 256 \\
        --crop 224 --width 1 --dropout 0.5 --batch_size 64 --lr 0.05 --epochs 30 --workers 8 --resume

The program lives in the ``training/`` package beside this file (not installed with the library; Python
finds it because it puts this file's folder on ``sys.path``, whatever the working directory); this file is
only its command line, :mod:`training.cli`.
"""

from __future__ import annotations

import sys

from training.cli import build_parser, given_settings, main

__all__ = ["build_parser", "given_settings", "main"]

if __name__ == "__main__":
    sys.exit(main())
