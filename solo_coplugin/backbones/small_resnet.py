"""ResNets for small images (32 px): the CIFAR stem that solo-learn applies for CIFAR only.

solo-learn swaps a ResNet's stem for a 3x3, stride-1 convolution without max-pool only when
``data.dataset`` is ``cifar10``/``cifar100``. With ``data.dataset=custom`` on 32 px images
(e.g. CIFAR-10 as an ImageFolder) a ResNet then ends in a 1x1 feature map: nothing local for
CO-SSL, and not the network solo-learn trains on CIFAR. These backbones carry that stem
themselves, identical to solo-learn's (including its ``padding=2``, which gives a 5x5 map at
32 px), so head-to-head runs on small-image folders compare like with like. Pure torchvision.
"""

import torch.nn as nn
from torchvision.models import ResNet
from torchvision.models import resnet18 as torchvision_resnet18
from torchvision.models import resnet50 as torchvision_resnet50


def with_cifar_stem(model: ResNet) -> ResNet:
    """Replaces a torchvision ResNet's stem with solo-learn's CIFAR stem, in place.

    Args:
        model (ResNet): a torchvision ResNet.

    Returns:
        ResNet: the same model, 3x3 stride-1 first convolution and no max-pool.
    """

    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=2, bias=False)
    model.maxpool = nn.Identity()
    return model


def resnet18_cifar(method: str = None, *args, **kwargs) -> ResNet:
    """ResNet-18 with the CIFAR stem, in solo-learn's backbone-constructor signature.

    Args:
        method (str): the solo-learn method name (unused, part of the registry signature).
        *args, **kwargs: passed to torchvision's ``resnet18`` (e.g. ``zero_init_residual``).

    Returns:
        ResNet: the backbone.
    """

    return with_cifar_stem(torchvision_resnet18(*args, **kwargs))


def resnet50_cifar(method: str = None, *args, **kwargs) -> ResNet:
    """ResNet-50 with the CIFAR stem, in solo-learn's backbone-constructor signature.

    Args:
        method (str): the solo-learn method name (unused, part of the registry signature).
        *args, **kwargs: passed to torchvision's ``resnet50``.

    Returns:
        ResNet: the backbone.
    """

    return with_cifar_stem(torchvision_resnet50(*args, **kwargs))
