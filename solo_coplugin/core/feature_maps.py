"""Access to a backbone's feature map before pooling (pure torch).

solo-learn's backbones return pooled features (``self.backbone(X)`` is ``B x C``). CO-SSL needs
the ``B x C x H x W`` map that was pooled. Rather than re-implementing each backbone's forward
pass, :class:`FeatureMapTap` registers a forward hook on the last spatial stage and keeps its
output: the backbone runs exactly once, unchanged, so the pooled features (and the online
linear probe, kNN, UMAP, ``main_linear.py``) are bit-identical to the base method's.
"""

from typing import Optional, Tuple

import torch
import torch.nn as nn

from solo_coplugin.core.config import CoConfigError

SUPPORTED_BACKBONES = (
    "ResNets (resnet18, resnet50, resnet18_cifar, resnet50_cifar, rf_resnet18, rf_resnet50)"
)


class UnsupportedBackboneError(CoConfigError):
    """The backbone has no spatial feature map that CO-SSL can read."""


def find_spatial_stage(backbone: nn.Module, backbone_name: str = "?") -> nn.Module:
    """Finds the module whose output is the feature map that the backbone pools.

    Args:
        backbone (nn.Module): the backbone as solo-learn builds it (``fc`` already removed).
        backbone_name (str): ``backbone.name``, for the error message.

    Returns:
        nn.Module: the last spatial stage (``layer4`` of a ResNet).
    """

    stage = getattr(backbone, "layer4", None)
    pool = getattr(backbone, "avgpool", None)
    if isinstance(stage, nn.Module) and isinstance(pool, nn.AdaptiveAvgPool2d):
        return stage
    raise UnsupportedBackboneError(
        f"backbone.name={backbone_name} ({type(backbone).__name__}) has no spatial feature map "
        f"that solo-coplugin can read yet; CO methods support {SUPPORTED_BACKBONES}. "
        "Fix: backbone.name=resnet18 (or resnet18_cifar for small images)."
    )


class FeatureMapTap:
    """Keeps the output of a backbone's last spatial stage from its latest forward pass.

    Args:
        backbone (nn.Module): the backbone to tap.
        backbone_name (str): ``backbone.name``, for error messages.
    """

    def __init__(self, backbone: nn.Module, backbone_name: str = "?"):
        self.backbone_name = backbone_name
        self._last: Optional[torch.Tensor] = None
        stage = find_spatial_stage(backbone, backbone_name)
        self._handle = stage.register_forward_hook(self._keep)

    def _keep(self, module: nn.Module, inputs, output: torch.Tensor) -> None:
        self._last = output

    def pop(self) -> torch.Tensor:
        """Returns the feature map of the latest forward pass and forgets it.

        Forgetting it matters: the map holds the autograd graph of the step.

        Returns:
            torch.Tensor: ``B x C x H x W`` feature map.
        """

        if self._last is None:
            raise RuntimeError(
                "FeatureMapTap.pop() was called before the tapped backbone ran a forward pass."
            )
        feature_map, self._last = self._last, None
        return feature_map

    def remove(self) -> None:
        """Removes the hook from the backbone."""

        self._handle.remove()


@torch.no_grad()
def measure_feature_map_size(
    backbone: nn.Module, tap: FeatureMapTap, crop_size: int, in_channels: int = 3
) -> Tuple[int, int]:
    """Measures the (H, W) of the tapped feature map for square crops of ``crop_size`` pixels.

    Runs one forward pass in eval mode on a zero image, so BatchNorm statistics and the
    training mode of the backbone are left as they were.

    Args:
        backbone (nn.Module): the tapped backbone.
        tap (FeatureMapTap): the tap registered on it.
        crop_size (int): input side in pixels.
        in_channels (int): input channels.

    Returns:
        Tuple[int, int]: feature-map height and width.
    """

    was_training = backbone.training
    backbone.eval()
    try:
        param = next(backbone.parameters())
        backbone(torch.zeros(1, in_channels, crop_size, crop_size, device=param.device))
    finally:
        backbone.train(was_training)
    feature_map = tap.pop()
    return int(feature_map.shape[-2]), int(feature_map.shape[-1])
