"""Frozen features of an evaluation model: pooled ``feats`` and the feature map before pooling."""

from typing import Optional, Tuple

import torch
import torch.nn as nn

from solo_coplugin.core import FeatureMapTap
from solo_coplugin.eval.data import Normalize


class FrozenBackbone(nn.Module):
    """A pretrained backbone in eval mode that takes pixels in [0, 1].

    ``forward`` returns the pooled features (what solo-learn calls ``feats``);
    ``forward_map`` also returns the map of the local representations (``B x C x H x W``: by
    default the feature map before pooling, else the ``local_stage`` a CO run was trained with),
    read by the same forward hook the CO methods use.

    Args:
        backbone (nn.Module): the backbone (solo-learn's, with its classifier removed).
        backbone_name (str): its solo-learn name (tells the tap where the map is).
        normalize (Normalize): the training normalization.
        local_stage (Optional[str]): the stage ``forward_map`` reads
            (``method_kwargs.local_stage``); None: the map the backbone pools.
    """

    def __init__(
        self,
        backbone: nn.Module,
        backbone_name: str,
        normalize: Normalize,
        local_stage: Optional[str] = None,
    ):
        super().__init__()
        self.normalize = normalize
        self.backbone = backbone.eval()
        self.tap = FeatureMapTap(backbone, backbone_name, local_stage)
        for parameter in self.parameters():
            parameter.requires_grad_(False)

    def train(self, mode: bool = True) -> "FrozenBackbone":
        # frozen: BatchNorm keeps its running statistics whatever the caller does
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(self.normalize(x))
        self.tap.pop()
        return feats

    def forward_map(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        feats = self.backbone(self.normalize(x))
        return feats, self.tap.pop()


@torch.no_grad()
def extract(
    model: FrozenBackbone,
    images: torch.Tensor,
    batch_size: int = 256,
    with_maps: bool = False,
    device: Optional[torch.device] = None,
) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Pooled features (and optionally feature maps) of ``images``, on the CPU.

    Args:
        model (FrozenBackbone): the model.
        images (torch.Tensor): pixels ``N x 3 x S x S`` in [0, 1].
        batch_size (int): images per forward.
        with_maps (bool): also return the feature maps.
        device (Optional[torch.device]): where to run (default: the model's device).

    Returns:
        Tuple[torch.Tensor, Optional[torch.Tensor]]: ``N x D`` features, ``N x C x H x W`` maps.
    """

    device = device or next(model.parameters()).device
    feats, maps = [], []
    for start in range(0, images.shape[0], batch_size):
        x = images[start : start + batch_size].to(device)
        if with_maps:
            f, m = model.forward_map(x)
            maps.append(m.float().cpu())
        else:
            f = model(x)
        feats.append(f.float().cpu())
    return torch.cat(feats), (torch.cat(maps) if with_maps else None)
