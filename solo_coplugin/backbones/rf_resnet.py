"""RF-ResNets: ResNets whose local representations have a bounded receptive field (pure torch).

CO-SSL (arXiv 2501.02860) trains "RF-ResNets", whose headline model is "RF99-ResNet50", and
compares receptive-field (RF) sizes against BagNet. The paper's construction is not available
here; ours follows BagNet (Brendel & Bethge, ICLR 2019): keep ResNet's stages and strides, keep
3x3 kernels in the first ``kernel3_blocks[i]`` blocks of stage ``i`` and make the other blocks'
3x3 convolutions 1x1, so the RF stops growing after the last 3x3 block. Choices made here:

- ``rf_resnet50`` puts a block's stride in its first 1x1 convolution (original ResNet v1),
  which with 3x3 kernels up to ``layer2`` gives RF 99 px; ``rf_resnet18`` (basic blocks) reaches
  99 px the same way. Preset names give the RF with the ImageNet stem; ``receptive_field`` gives
  the RF of the model as built (the CIFAR stem shrinks it);
- ``match_params`` (default) widens the hidden width of the 1x1 blocks so that each has the
  parameter count of the 3x3 block it replaces: the presets stay within a few percent of the
  plain ResNet's parameters (the paper: 23.7M for RF-ResNet50 vs 23.5M), so RF is not
  confounded with capacity;
- three stems (``stem``): ``imagenet`` (7x7 stride-2 convolution and 3x3 stride-2 max-pool, 224 px
  images), ``cifar`` (3x3 stride-1 convolution, no max-pool, 32 px images; also
  ``cifar_stem=True``) and ``half`` (3x3 stride-2 convolution, no max-pool, 64 px images: the
  first stage then runs at 32x32, what the CIFAR stem costs at 32 px, and the last map is 4x4);
- the ``tiny_*`` presets are for 64 px images (Tiny-ImageNet) and bring the ``half`` stem:
  ``tiny_rf31`` sees 31 px of 64 (48% of the side, as RF99 sees 44% of 224) and ``tiny_full``
  is the same network with 3x3 kernels everywhere (plain ResNet-18 blocks, unbounded RF);
- the optional "bag MLP" after average pooling (``bag_mlp``, ablated in the paper) is
  Linear-BatchNorm-ReLU-Linear at the feature width;
- parameter names follow torchvision (``conv1``, ``layer1.0.conv2``, ``downsample.0``, ...), so
  checkpoints map cleanly where the kernel sizes agree. There is no ``fc``: ``forward`` returns
  pooled features, as solo-learn expects from a backbone.
"""

import math
from typing import Optional, Sequence, Type, Union

import torch
import torch.nn as nn

from solo_coplugin.backbones.receptive_field import (
    feature_map_side,
    theoretical_receptive_field,
)

STAGE_DEPTHS = {"rf_resnet18": (2, 2, 2, 2), "rf_resnet50": (3, 4, 6, 3)}
#: preset -> number of leading 3x3 blocks per stage; names give the RF with the ImageNet stem
PRESETS = {
    "rf_resnet18": {
        "full": (2, 2, 2, 2),  # RF 435, torchvision's ResNet-18
        "rf99": (2, 2, 0, 0),
        "rf43": (2, 0, 0, 0),
        "rf27": (1, 0, 0, 0),
    },
    "rf_resnet50": {
        "full": (3, 4, 6, 3),  # RF 483 with the stride in the 1x1 convolutions
        "rf99": (3, 4, 0, 0),
        "rf51": (3, 1, 0, 0),
        "rf35": (3, 0, 0, 0),  # the closest to BagNet-33
        "rf19": (1, 0, 0, 0),  # the closest to BagNet-17
    },
}
DEFAULT_PRESET = "rf99"
#: presets for 64 px images, which also choose the stem (RF at 64 px with the ``half`` stem)
STEM_PRESETS = {
    "rf_resnet18": {"tiny_rf31": ((2, 1, 0, 0), "half"), "tiny_full": ((2, 2, 2, 2), "half")},
    "rf_resnet50": {},
}
for _name, _presets in STEM_PRESETS.items():
    PRESETS[_name].update({preset: blocks for preset, (blocks, _) in _presets.items()})
#: stem -> (first convolution's kernel and stride, whether a 3x3 stride-2 max-pool follows)
STEMS = {"imagenet": (7, 2, True), "cifar": (3, 1, False), "half": (3, 2, False)}


class RFResNetConfigError(ValueError):
    """An RF-ResNet setting is invalid; the message names the key and the fix."""


def conv(in_planes: int, out_planes: int, kernel: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel, stride=stride, padding=kernel // 2, bias=False)


class RFBasicBlock(nn.Module):
    """torchvision's BasicBlock with ``kernel`` x ``kernel`` convolutions and a hidden width."""

    expansion = 1

    def __init__(self, inplanes, planes, stride, kernel, hidden, downsample=None, **_):
        super().__init__()
        self.conv1 = conv(inplanes, hidden, kernel, stride)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv(hidden, planes, kernel)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    @staticmethod
    def matched_hidden(inplanes: int, planes: int, width: int) -> int:
        # 9 (in p + p^2) = in h + h p  ->  h = 9 p
        return 9 * planes

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class RFBottleneck(nn.Module):
    """torchvision's Bottleneck with a ``kernel`` x ``kernel`` middle convolution."""

    expansion = 4

    def __init__(
        self, inplanes, planes, stride, kernel, hidden, downsample=None, stride_in_1x1=True
    ):
        super().__init__()
        self.conv1 = conv(inplanes, hidden, 1, stride if stride_in_1x1 else 1)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.conv2 = conv(hidden, hidden, kernel, 1 if stride_in_1x1 else stride)
        self.bn2 = nn.BatchNorm2d(hidden)
        self.conv3 = conv(hidden, planes * self.expansion, 1)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    @staticmethod
    def matched_hidden(inplanes: int, planes: int, width: int) -> int:
        # in w + 9 w^2 + 4 p w = in h + h^2 + 4 p h, solved for h and rounded to a multiple of 8
        b = inplanes + 4 * planes
        target = inplanes * width + 9 * width**2 + 4 * planes * width
        hidden = (-b + math.sqrt(b * b + 4 * target)) / 2
        return max(8, int(round(hidden / 8)) * 8)

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class RFResNet(nn.Module):
    """A ResNet whose last feature map has a bounded receptive field.

    Args:
        block (Type): ``RFBasicBlock`` or ``RFBottleneck``.
        stage_depths (Sequence[int]): blocks per stage.
        kernel3_blocks (Sequence[int]): leading blocks per stage that keep 3x3 kernels.
        cifar_stem (bool): 3x3 stride-1 first convolution and no max-pool, for 32 px images
            (the same as ``stem="cifar"``).
        bag_mlp (bool): an MLP after average pooling.
        match_params (bool): widen the 1x1 blocks to the parameter count of 3x3 blocks.
        width (int): channels of the first stage (``backbone.kwargs.width``; 64 in ResNets),
            the name the small-image ResNets use too.
        stride_in_1x1 (bool): bottleneck stride in the first 1x1 convolution.
        zero_init_residual (bool): zero-initialise the last BatchNorm of each block.
        name (str): backbone name, for messages.
        stem (Optional[str]): ``imagenet``, ``cifar`` or ``half`` (see the module); None: from
            ``cifar_stem``.
    """

    def __init__(
        self,
        block: Type[Union[RFBasicBlock, RFBottleneck]],
        stage_depths: Sequence[int],
        kernel3_blocks: Sequence[int],
        cifar_stem: bool = False,
        bag_mlp: bool = False,
        match_params: bool = True,
        width: int = 64,
        stride_in_1x1: bool = True,
        zero_init_residual: bool = False,
        name: str = "rf_resnet",
        stem: Optional[str] = None,
    ):
        super().__init__()
        self.name = name
        self.kernel3_blocks = tuple(kernel3_blocks)
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise RFResNetConfigError(
                f"backbone.kwargs.width={width!r}: the first stage's channel count must be a "
                "positive integer (64 is ResNet's; 16 or 32 for narrow networks)."
            )
        self.inplanes = width
        self.stem = resolve_stem(stem, cifar_stem)
        kernel, stride, maxpool = STEMS[self.stem]
        self.conv1 = nn.Conv2d(3, width, kernel, stride=stride, padding=kernel // 2, bias=False)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1) if maxpool else nn.Identity()
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)

        stages = []
        for index, (depth, kernel3) in enumerate(zip(stage_depths, kernel3_blocks)):
            planes = width * 2**index
            stride = 1 if index == 0 else 2
            blocks = []
            for b in range(depth):
                kernel = 3 if b < kernel3 else 1
                hidden = planes  # torchvision's bottleneck width at groups=1, width_per_group=64
                if kernel == 1 and match_params:
                    hidden = block.matched_hidden(self.inplanes, planes, planes)
                downsample = None
                if b == 0 and (stride != 1 or self.inplanes != planes * block.expansion):
                    downsample = nn.Sequential(
                        conv(self.inplanes, planes * block.expansion, 1, stride),
                        nn.BatchNorm2d(planes * block.expansion),
                    )
                blocks.append(
                    block(
                        self.inplanes,
                        planes,
                        stride if b == 0 else 1,
                        kernel,
                        hidden,
                        downsample,
                        stride_in_1x1=stride_in_1x1,
                    )
                )
                self.inplanes = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.num_features = self.inplanes
        self.bag_mlp = None
        if bag_mlp:
            self.bag_mlp = nn.Sequential(
                nn.Linear(self.num_features, self.num_features),
                nn.BatchNorm1d(self.num_features),
                nn.ReLU(inplace=True),
                nn.Linear(self.num_features, self.num_features),
            )

        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.constant_(module.weight, 1)
                nn.init.constant_(module.bias, 0)
        if zero_init_residual:
            for stage in stages:
                for blk in stage:
                    nn.init.constant_(blk.last_bn().weight, 0)

        rf = theoretical_receptive_field(self)
        #: theoretical receptive field of a local representation, in pixels
        self.receptive_field: int = rf.size
        #: input pixels between neighbouring positions of the feature map
        self.total_stride: int = rf.jump

    def feature_map_size(self, input_size: int) -> int:
        """Side of the last feature map for square inputs of ``input_size`` pixels.

        Args:
            input_size (int): input side in pixels.

        Returns:
            int: feature-map side.
        """

        self._check_input_size(input_size)
        return feature_map_side(self, input_size)

    def _check_input_size(self, input_size: int) -> None:
        if input_size < self.total_stride:
            raise RFResNetConfigError(
                f"{self.name}: a {input_size} px input is smaller than the network's total "
                f"stride ({self.total_stride} px), so its feature map would be one position made "
                f"mostly of padding. Fix: crops of at least {self.total_stride} px "
                "(augmentations crop_size), or backbone.kwargs.cifar_stem=True for small images."
            )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map, before pooling.

        Args:
            x (torch.Tensor): ``B x 3 x H x W`` images.

        Returns:
            torch.Tensor: ``B x C x h x w`` feature map.
        """

        self._check_input_size(min(x.shape[-2:]))
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features (then the bag MLP, if any), as solo-learn's backbones return.

        Args:
            x (torch.Tensor): ``B x 3 x H x W`` images.

        Returns:
            torch.Tensor: ``B x num_features`` features.
        """

        x = torch.flatten(self.avgpool(self.forward_features(x)), 1)
        if self.bag_mlp is not None:
            x = self.bag_mlp(x)
        return x


def resolve_stem(stem: Optional[str], cifar_stem: bool) -> str:
    """The stem from ``stem`` or the older ``cifar_stem`` switch; refuses the two disagreeing."""

    if stem is None:
        return "cifar" if cifar_stem else "imagenet"
    if stem not in STEMS:
        raise RFResNetConfigError(
            f"backbone.kwargs.stem={stem!r} is not a stem; choose one of {sorted(STEMS)} "
            "(imagenet: 224 px images, half: 64 px, cifar: 32 px)."
        )
    if cifar_stem and stem != "cifar":
        raise RFResNetConfigError(
            f"backbone.kwargs.cifar_stem=True and backbone.kwargs.stem={stem!r} ask for two "
            "different stems. Fix: keep one of them (stem=cifar is cifar_stem=True)."
        )
    return stem


def resolve_kernel3_blocks(
    name: str, preset: Optional[str], kernel3_blocks: Optional[Sequence[int]]
) -> tuple:
    """The per-stage 3x3 block counts from a preset or an explicit list, checked.

    Args:
        name (str): ``rf_resnet18`` or ``rf_resnet50``.
        preset (Optional[str]): a preset name; giving it together with ``kernel3_blocks`` is an
            error, since one would silently override the other.
        kernel3_blocks (Optional[Sequence[int]]): explicit counts, one per stage.

    Returns:
        tuple: four counts.
    """

    depths = STAGE_DEPTHS[name]
    if preset is not None and kernel3_blocks is not None:
        raise RFResNetConfigError(
            f"backbone.kwargs.preset={preset!r} and backbone.kwargs.kernel3_blocks="
            f"{list(kernel3_blocks)} both choose {name}'s 3x3 blocks. Fix: keep one of them (on "
            "the command line, ~backbone.kwargs.kernel3_blocks drops a config's list)."
        )
    if kernel3_blocks is None:
        preset = DEFAULT_PRESET if preset is None else preset
        if preset not in PRESETS[name]:
            raise RFResNetConfigError(
                f"backbone.kwargs.preset={preset!r} is not a preset of {name}; choose one of "
                f"{sorted(PRESETS[name])} or give backbone.kwargs.kernel3_blocks (3x3 blocks "
                f"per stage, stage depths {list(depths)})."
            )
        return PRESETS[name][preset]
    counts = tuple(int(c) for c in kernel3_blocks)
    if len(counts) != len(depths) or any(not 0 <= c <= d for c, d in zip(counts, depths)):
        raise RFResNetConfigError(
            f"backbone.kwargs.kernel3_blocks={list(kernel3_blocks)} does not fit the stage depths "
            f"{list(depths)} of {name}: give one count per stage, each between 0 and the stage's "
            "depth."
        )
    return counts


#: the ``backbone.kwargs`` that :func:`rf_resnet18` and :func:`rf_resnet50` pass to RFResNet
RF_OPTIONS = (
    "stem",
    "cifar_stem",
    "bag_mlp",
    "match_params",
    "width",
    "stride_in_1x1",
    "zero_init_residual",
)


def _build(name, block, preset, kernel3_blocks, **kwargs) -> RFResNet:
    unknown = sorted(set(kwargs) - set(RF_OPTIONS))
    if unknown:
        raise RFResNetConfigError(
            f"{', '.join('backbone.kwargs.' + key for key in unknown)}: not a setting of {name}; "
            f"its settings are preset, kernel3_blocks, {', '.join(RF_OPTIONS)}."
        )
    counts = resolve_kernel3_blocks(name, preset, kernel3_blocks)
    if preset in STEM_PRESETS[name]:
        preset_stem = STEM_PRESETS[name][preset][1]
        asked = kwargs.get("stem") or ("cifar" if kwargs.get("cifar_stem") else None)
        if asked not in (None, preset_stem):
            raise RFResNetConfigError(
                f"backbone.kwargs.preset={preset!r} brings the {preset_stem!r} stem, but "
                f"backbone.kwargs.{'stem' if kwargs.get('stem') else 'cifar_stem'} asks for "
                f"{asked!r}. Fix: drop the stem setting, or give kernel3_blocks instead of the "
                "preset."
            )
        kwargs["stem"] = preset_stem
    return RFResNet(block, STAGE_DEPTHS[name], counts, name=name, **kwargs)


def rf_resnet18(
    method: str = None, preset: Optional[str] = None, kernel3_blocks=None, **kwargs
) -> RFResNet:
    """RF-ResNet-18 in solo-learn's backbone-constructor signature.

    Args:
        method (str): the solo-learn method name (unused, part of the registry signature).
        preset (Optional[str]): ``full``, ``rf99`` (default), ``rf43`` or ``rf27`` (224 px);
            ``tiny_rf31`` or ``tiny_full`` (64 px, with the ``half`` stem).
        kernel3_blocks (Optional[Sequence[int]]): 3x3 blocks per stage, instead of a preset.
        **kwargs: ``stem``, ``cifar_stem``, ``bag_mlp``, ``match_params``,
            ``zero_init_residual``, ``width`` (see :class:`RFResNet`).

    Returns:
        RFResNet: the backbone.
    """

    return _build("rf_resnet18", RFBasicBlock, preset, kernel3_blocks, **kwargs)


def rf_resnet50(
    method: str = None, preset: Optional[str] = None, kernel3_blocks=None, **kwargs
) -> RFResNet:
    """RF-ResNet-50 in solo-learn's backbone-constructor signature.

    Args:
        method (str): the solo-learn method name (unused, part of the registry signature).
        preset (Optional[str]): ``full``, ``rf99`` (default), ``rf51``, ``rf35`` or ``rf19``.
        kernel3_blocks (Optional[Sequence[int]]): 3x3 blocks per stage, instead of a preset.
        **kwargs: ``stem``, ``cifar_stem``, ``bag_mlp``, ``match_params``,
            ``zero_init_residual``, ``width``, ``stride_in_1x1`` (see :class:`RFResNet`).

    Returns:
        RFResNet: the backbone.
    """

    return _build("rf_resnet50", RFBottleneck, preset, kernel3_blocks, **kwargs)
