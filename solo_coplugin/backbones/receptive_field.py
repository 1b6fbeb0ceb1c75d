"""Receptive fields of ResNet-like backbones: theoretical (by arithmetic) and effective (by
gradients). Pure torch.

The theoretical receptive field (RF) of a position of a stage's feature map (by default the last,
``layer4``) is computed along the main path (stem, then every block's convolutions in order, up
to the end of that stage); the shortcuts are 1x1 convolutions or identities, which never widen
it. With ``r`` the RF, ``j`` the jump (distance in
input pixels between neighbouring positions) and ``c`` the centre of position 0, a layer of
kernel ``k``, stride ``s`` and padding ``p`` gives ``r += (k - 1) j``, ``c += ((k - 1) / 2 - p) j``,
``j *= s``.
"""

from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
import torch.nn as nn

#: the stages of a ResNet-like backbone, in forward order; the last one is pooled
RESNET_STAGES = ("layer1", "layer2", "layer3", "layer4")


@dataclass(frozen=True)
class ReceptiveField:
    """Theoretical receptive field of the positions of a feature map (square, in pixels).

    Attributes:
        size (int): side of the receptive field.
        jump (int): input pixels between the centres of neighbouring positions.
        start (float): centre of position 0 in input coordinates.
    """

    size: int
    jump: int
    start: float

    def bounds(self, position: int) -> Tuple[int, int]:
        """First and last input pixel (inclusive, unclipped) seen by a position along one axis."""

        centre = self.start + position * self.jump
        half = (self.size - 1) / 2
        return int(round(centre - half)), int(round(centre + half))


def _as_int(value) -> int:
    return value[0] if isinstance(value, tuple) else value


def main_path_layers(backbone: nn.Module, stage: str = "layer4") -> List[nn.Module]:
    """The convolutions and poolings of a ResNet-like backbone's main path, in order.

    Supports torchvision ResNets (as solo-learn modifies them) and solo-coplugin's RF-ResNets.

    Args:
        backbone (nn.Module): a module with ``conv1``, ``maxpool`` and ``layer1`` to ``layer4``.
        stage (str): the stage whose output ends the path (``layer1`` to ``layer4``).

    Returns:
        List[nn.Module]: Conv2d / MaxPool2d modules in forward order.
    """

    if not all(hasattr(backbone, name) for name in ("conv1", *RESNET_STAGES)):
        raise ValueError(
            f"{type(backbone).__name__} is not a ResNet-like backbone (conv1, layer1..layer4); "
            "its receptive field cannot be computed here."
        )
    if stage not in RESNET_STAGES:
        raise ValueError(f"stage={stage!r} is not one of {list(RESNET_STAGES)}.")
    layers = [backbone.conv1]
    if isinstance(getattr(backbone, "maxpool", None), nn.MaxPool2d):
        layers.append(backbone.maxpool)
    for name in RESNET_STAGES[: RESNET_STAGES.index(stage) + 1]:
        for block in getattr(backbone, name):
            for conv_name in ("conv1", "conv2", "conv3"):
                conv = getattr(block, conv_name, None)
                if isinstance(conv, nn.Conv2d):
                    layers.append(conv)
    return layers


def theoretical_receptive_field(backbone: nn.Module, stage: str = "layer4") -> ReceptiveField:
    """Theoretical receptive field of a stage's feature map of a ResNet-like backbone.

    Args:
        backbone (nn.Module): torchvision ResNet or RF-ResNet.
        stage (str): ``layer1`` to ``layer4`` (the last feature map, the default).

    Returns:
        ReceptiveField: size, jump and start.
    """

    size, jump, start = 1, 1, 0.0
    for layer in main_path_layers(backbone, stage):
        k, s, p = _as_int(layer.kernel_size), _as_int(layer.stride), _as_int(layer.padding)
        size += (k - 1) * jump
        start += ((k - 1) / 2 - p) * jump
        jump *= s
    return ReceptiveField(size=size, jump=jump, start=start)


def feature_map_side(backbone: nn.Module, input_side: int, stage: str = "layer4") -> int:
    """Side of a stage's feature map for a square input of ``input_side`` pixels.

    Args:
        backbone (nn.Module): torchvision ResNet or RF-ResNet.
        input_side (int): input height (= width) in pixels.
        stage (str): ``layer1`` to ``layer4`` (the last feature map, the default).

    Returns:
        int: feature-map side (< 1 when the input is too small).
    """

    side = input_side
    for layer in main_path_layers(backbone, stage):
        k, s, p = _as_int(layer.kernel_size), _as_int(layer.stride), _as_int(layer.padding)
        side = (side + 2 * p - k) // s + 1
        if side < 1:
            return 0
    return side


def stage_receptive_field(backbone: nn.Module, stage: str) -> Optional[int]:
    """The theoretical receptive field (px) of a stage's positions, or None where it is not
    computed here (not a ResNet-like backbone, or not one of its ``layer`` stages).

    Args:
        backbone (nn.Module): any backbone.
        stage (str): a stage name (``layer3``, ``blocks.5``, ...).

    Returns:
        Optional[int]: the receptive field's side in pixels.
    """

    try:
        return theoretical_receptive_field(backbone, stage).size
    except ValueError:
        return None


def effective_receptive_field(
    backbone: nn.Module, input_side: int, position: Tuple[int, int], feature_map_fn=None
) -> torch.Tensor:
    """Measures which input pixels a local representation depends on, by gradients.

    Runs the backbone in eval mode (BatchNorm with running statistics, so positions do not
    interact through batch statistics) in float64 on a random input, and returns the absolute
    gradient of the sum of the channels at ``position`` of the last feature map.

    Args:
        backbone (nn.Module): the backbone (not modified; a float64 copy is used).
        input_side (int): input side in pixels.
        position (Tuple[int, int]): (row, column) in the feature map.
        feature_map_fn (callable): maps (backbone, input) to the ``B x C x H x W`` map;
            defaults to ``backbone.forward_features``.

    Returns:
        torch.Tensor: ``input_side x input_side`` map of |d output / d pixel| summed over
        input channels.
    """

    import copy

    model = copy.deepcopy(backbone).double().eval()
    feature_map_fn = feature_map_fn or (lambda m, x: m.forward_features(x))
    x = torch.randn(1, 3, input_side, input_side, dtype=torch.float64, requires_grad=True)
    feature_map = feature_map_fn(model, x)
    feature_map[0, :, position[0], position[1]].sum().backward()
    return x.grad[0].abs().sum(dim=0)
