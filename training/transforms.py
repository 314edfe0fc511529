"""The probes' input pipelines, and the ImageNet normalisation every network of the program sees.

The methods' own crops of a sample are in :mod:`training.crops`.
"""

from __future__ import annotations

from torchvision import transforms

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "probe_transforms"]

#: Per-channel RGB mean and standard deviation of ImageNet, the normalisation AlexNet is trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _to_normalized_tensor() -> list[transforms.ToTensor | transforms.Normalize]:
    return [transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)]


def probe_transforms(input_size: int) -> tuple[transforms.Compose, transforms.Compose]:
    """Train (random resized crop + flip) and val (resize + centre crop) transforms to ``input_size`` px, normalised.

    Example:
        >>> from PIL import Image
        >>> train, val = probe_transforms(64)
        >>> tuple(val(Image.new("RGB", (100, 80))).shape)
        (3, 64, 64)
    """
    train = [transforms.RandomResizedCrop(input_size, scale=(0.5, 1.0)), transforms.RandomHorizontalFlip()]
    val = [transforms.Resize(input_size), transforms.CenterCrop(input_size)]
    return transforms.Compose(train + _to_normalized_tensor()), transforms.Compose(val + _to_normalized_tensor())
