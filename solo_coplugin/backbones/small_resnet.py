"""ResNets for small images (32 px): the CIFAR stem that solo-learn applies for CIFAR only, and a
base width for narrow networks.

solo-learn swaps a ResNet's stem for a 3x3, stride-1 convolution without max-pool only when
``data.dataset`` is ``cifar10``/``cifar100``. With ``data.dataset=custom`` on 32 px images
(e.g. CIFAR-10 as an ImageFolder) a ResNet then ends in a 1x1 feature map: nothing local for
CO-SSL, and not the network solo-learn trains on CIFAR. These backbones carry that stem
themselves, identical to solo-learn's (including its ``padding=2``, which gives a 5x5 map at
32 px), so head-to-head runs on small-image folders compare like with like.

``width`` (``backbone.kwargs.width``) is the number of channels of the first stage; the stages
have ``width``, ``2 width``, ``4 width`` and ``8 width`` channels, as torchvision's have 64 to 512.
The default, 64, builds exactly torchvision's network (same modules, same initialization from the
same seed). Narrow networks (16 or 32) are what makes studies with many runs affordable on CPUs.
Pure torchvision.
"""

from typing import List, Type, Union

import torch.nn as nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

TORCHVISION_WIDTH = 64


#: the keyword options of torchvision's ``ResNet`` that these networks pass on
TORCHVISION_OPTIONS = {
    "zero_init_residual",
    "num_classes",
    "groups",
    "width_per_group",
    "replace_stride_with_dilation",
    "norm_layer",
}
#: settings of the RF-ResNets that a config may still carry when only ``backbone.name`` changed
RF_RESNET_OPTIONS = {
    "preset",
    "kernel3_blocks",
    "stem",
    "cifar_stem",
    "bag_mlp",
    "match_params",
    "stride_in_1x1",
}


class SmallImageResNet(ResNet):
    """torchvision's ResNet with a base ``width`` and solo-learn's CIFAR stem.

    Built in torchvision's order (so ``width=64`` draws the same initial weights from the same
    seed), then the stem is replaced as solo-learn does. Parameter names are torchvision's.

    Args:
        block (Type[Union[BasicBlock, Bottleneck]]): torchvision's residual block.
        layers (List[int]): blocks per stage.
        width (int): channels of the first stage.
        **kwargs: torchvision's ``ResNet`` options (``zero_init_residual``, ``num_classes``,
            ``groups``, ``width_per_group``, ``replace_stride_with_dilation``, ``norm_layer``).
    """

    def __init__(
        self,
        block: Type[Union[BasicBlock, Bottleneck]],
        layers: List[int],
        width: int = TORCHVISION_WIDTH,
        **kwargs,
    ):
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(
                f"backbone.kwargs.width={width!r}: the first stage's channel count must be a "
                f"positive integer (64 is torchvision's ResNet; 16 or 32 for narrow networks)."
            )
        unknown = sorted(set(kwargs) - TORCHVISION_OPTIONS)
        if unknown:
            rf_only = [key for key in unknown if key in RF_RESNET_OPTIONS]
            hint = (
                f" ({', '.join(rf_only)}: settings of rf_resnet18/rf_resnet50; drop them with "
                f"{' '.join('~backbone.kwargs.' + key for key in rf_only)} on the command line, "
                "or train backbone.name=rf_resnet18)"
                if rf_only
                else ""
            )
            raise ValueError(
                f"{', '.join('backbone.kwargs.' + key for key in unknown)}: not a setting of the "
                f"small-image ResNets{hint}. They take width and torchvision's ResNet options "
                f"({', '.join(sorted(TORCHVISION_OPTIONS))})."
            )
        self.width = width
        super().__init__(block, layers, **kwargs)
        if width != TORCHVISION_WIDTH:
            self.fc = nn.Linear(self.inplanes, self.fc.out_features)
        self.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=2, bias=False)
        self.maxpool = nn.Identity()

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1, dilate: bool = False):
        # torchvision builds the stages with 64, 128, 256, 512 planes and a 64-channel stem;
        # scaling each stage here (and the stem before the first one) is the only change
        if planes == TORCHVISION_WIDTH and self.width != TORCHVISION_WIDTH:
            self.inplanes = self.width
            self.bn1 = self._norm_layer(self.width)
        return super()._make_layer(
            block, planes * self.width // TORCHVISION_WIDTH, blocks, stride, dilate
        )

    def __setattr__(self, name, value):
        # solo-learn gives every backbone whose name starts with "resnet" its CIFAR stem when
        # data.dataset is cifar10/100, as a 64-channel convolution: keep that stem's shape but
        # with this network's width, so narrow networks train on CIFAR too
        if (
            name == "conv1"
            and isinstance(value, nn.Conv2d)
            and "width" in self.__dict__
            and value.out_channels != self.width
            and value.in_channels == 3
        ):
            value = nn.Conv2d(
                3,
                self.width,
                kernel_size=value.kernel_size,
                stride=value.stride,
                padding=value.padding,
                bias=value.bias is not None,
            )
        super().__setattr__(name, value)


def resnet18_cifar(method: str = None, *args, width: int = TORCHVISION_WIDTH, **kwargs) -> ResNet:
    """ResNet-18 with the CIFAR stem, in solo-learn's backbone-constructor signature.

    Args:
        method (str): the solo-learn method name (unused, part of the registry signature).
        width (int): channels of the first stage (``backbone.kwargs.width``; 64 =
            torchvision's ResNet-18).
        *args, **kwargs: torchvision's ``ResNet`` options (e.g. ``zero_init_residual``).

    Returns:
        ResNet: the backbone.
    """

    return SmallImageResNet(BasicBlock, [2, 2, 2, 2], width, *args, **kwargs)


def resnet50_cifar(method: str = None, *args, width: int = TORCHVISION_WIDTH, **kwargs) -> ResNet:
    """ResNet-50 with the CIFAR stem, in solo-learn's backbone-constructor signature.

    Args:
        method (str): the solo-learn method name (unused, part of the registry signature).
        width (int): channels of the first stage (``backbone.kwargs.width``; 64 =
            torchvision's ResNet-50).
        *args, **kwargs: torchvision's ``ResNet`` options.

    Returns:
        ResNet: the backbone.
    """

    return SmallImageResNet(Bottleneck, [3, 4, 6, 3], width, *args, **kwargs)
