"""Backbones that solo-coplugin adds to solo-learn's backbone registry (pure torchvision)."""

from solo_coplugin.backbones.small_resnet import resnet18_cifar, resnet50_cifar

#: name -> constructor, registered into ``BaseMethod._BACKBONES`` by ``solo_coplugin.registration``
BACKBONES = {
    "resnet18_cifar": resnet18_cifar,
    "resnet50_cifar": resnet50_cifar,
}

__all__ = ["BACKBONES", "resnet18_cifar", "resnet50_cifar"]
