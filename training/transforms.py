"""The input pipelines of the training program: each method's augmentation and the probes', ImageNet-normalised."""

from __future__ import annotations

from torchvision import transforms

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "pretrain_transforms", "probe_transforms"]

#: Per-channel RGB mean and standard deviation of ImageNet, the normalisation AlexNet is trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _to_normalized_tensor() -> list[transforms.ToTensor | transforms.Normalize]:
    return [transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)]


def pretrain_transforms(method: str, size: int) -> tuple[transforms.Compose, transforms.Compose]:
    """The method's augmentation on top of the dataset's samples (train) and the plain view (eval).

    Args:
        method: ``"rotnet"`` (random crop + horizontal flip) or ``"deepcluster"`` (random resized
            crop + horizontal flip).
        size: side of the network's input; eval centre-crops to it.

    Example:
        >>> from PIL import Image
        >>> train, val = pretrain_transforms("rotnet", 63)
        >>> tuple(train(Image.new("RGB", (64, 64))).shape), tuple(val(Image.new("RGB", (64, 64))).shape)
        ((3, 63, 63), (3, 63, 63))
    """
    if method == "rotnet":
        # No flips of the rotation's axes beyond a horizontal one: it keeps "upright" upright.
        train = [transforms.RandomCrop(size), transforms.RandomHorizontalFlip()]
    else:
        train = [transforms.RandomResizedCrop(size, scale=(0.2, 1.0)), transforms.RandomHorizontalFlip()]
    return (
        transforms.Compose(train + _to_normalized_tensor()),
        transforms.Compose([transforms.CenterCrop(size), *_to_normalized_tensor()]),
    )


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
