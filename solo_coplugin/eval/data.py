"""Evaluation images at the training resolution, as pixel tensors in [0, 1].

solo-learn's validation and ``main_linear.py`` transforms for ``data.dataset=custom`` are fixed at
ImageNet size (Resize 256, CenterCrop 224) whatever the training crop size, which evaluates a
network trained on 32 px crops at 224 px. Here the evaluation crop is the training crop size:
small images (crop <= 64 px, solo-learn's CIFAR/STL regime) are resized to it and center-cropped
(the identity for 32 px CIFAR), larger ones are resized by ImageNet's 256/224 ratio first.
Normalization is left to the model (:class:`Normalize`), so that corruptions and attacks act on
pixels.
"""

from pathlib import Path
from typing import Any, Sequence, Tuple

import torch
import torch.nn as nn
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
# solo-learn's normalization per dataset (solo.data.pretrain_dataloader); custom -> ImageNet's
SOLO_MEAN_STD = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "stl10": ((0.4914, 0.4823, 0.4466), (0.247, 0.243, 0.261)),
}
SMALL_IMAGE_MAX = 64


def eval_transform(crop_size: int) -> transforms.Compose:
    """Resize and center-crop to the training crop size, as pixels in [0, 1] (no normalization)."""

    resize = crop_size if crop_size <= SMALL_IMAGE_MAX else round(crop_size * 256 / 224)
    return transforms.Compose(
        [transforms.Resize(resize), transforms.CenterCrop(crop_size), transforms.ToTensor()]
    )


def describe_transform(crop_size: int) -> str:
    resize = crop_size if crop_size <= SMALL_IMAGE_MAX else round(crop_size * 256 / 224)
    return f"Resize({resize}) + CenterCrop({crop_size}) + ToTensor + the training normalization"


def mean_std_for(dataset: str, cfg: Any = None) -> Tuple[Sequence[float], Sequence[float]]:
    """The normalization solo-learn trains ``dataset`` with.

    Args:
        dataset (str): ``cfg.data.dataset``.
        cfg (Any): the run's config; for datasets without a fixed normalization (``custom``),
            solo-learn's pretraining pipeline takes ``mean`` and ``std`` from the first
            augmentation pipeline (ImageNet's where it has none), and so does this.

    Returns:
        Tuple[Sequence[float], Sequence[float]]: mean and std per channel.
    """

    if dataset in SOLO_MEAN_STD:
        return SOLO_MEAN_STD[dataset]
    pipelines = _get(cfg, "augmentations") or [{}]
    mean, std = _get(pipelines[0], "mean"), _get(pipelines[0], "std")
    if mean is None or std is None:
        return IMAGENET_MEAN_STD
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def _get(node: Any, key: str) -> Any:
    if node is None:
        return None
    getter = getattr(node, "get", None)
    return getter(key) if getter else getattr(node, key, None)


class Normalize(nn.Module):
    """Per-channel normalization as a module, so a model can take pixels in [0, 1]."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def load_image_folder(
    folder: Path, crop_size: int, batch_size: int = 256, num_workers: int = 0
) -> Tuple[torch.Tensor, torch.Tensor, Sequence[str]]:
    """Loads a whole ImageFolder split into memory (evaluation splits are small here).

    Args:
        folder (Path): the split's root (one folder per class).
        crop_size (int): the training crop size.
        batch_size (int): images per loading batch.
        num_workers (int): loader workers.

    Returns:
        Tuple[torch.Tensor, torch.Tensor, Sequence[str]]: pixels ``N x 3 x S x S`` in [0, 1],
        labels ``N``, and the class names.
    """

    dataset = datasets.ImageFolder(str(folder), transform=eval_transform(crop_size))
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, shuffle=False)
    images, labels = zip(*loader)
    return torch.cat(images), torch.cat(labels), dataset.classes
