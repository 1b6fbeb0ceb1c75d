"""Local heads of CO-SSL: the base method's heads applied at every feature-map position.

The paper implements local heads as 1x1 convolutions. A 1x1 convolution over a ``B x C x H x W``
map is the same linear map applied to each of the ``B * H * W`` position vectors, and a
BatchNorm2d over the map is a BatchNorm1d over those rows (statistics over batch and
positions). So the local heads here are ordinary ``nn.Linear``/``nn.BatchNorm1d`` MLPs run on
the position rows, in one batched matmul per layer: the same module type as solo-learn's global
heads, which is what lets ``local_head: shared`` reuse a global head as it is. On a
channels-last map (solo-learn's default memory format) the rows are a free view, no copy.
"""

import copy
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


def clone_head(head: nn.Module, in_features: Optional[int] = None) -> nn.Module:
    """Builds a head with the same layers as ``head`` and freshly initialised weights.

    Args:
        head (nn.Module): a global head (projector, predictor, ...).
        in_features (Optional[int]): input size of the copy, for local representations with
            another channel count than the global ones (an earlier stage); None: ``head``'s.

    Returns:
        nn.Module: an independent copy, re-initialised with each layer's own initialiser.
    """

    local_head = copy.deepcopy(head)
    if in_features is not None:
        local_head = _with_in_features(local_head, in_features)
    for module in local_head.modules():
        if module is not local_head and hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return local_head


def _with_in_features(head: nn.Module, in_features: int) -> nn.Module:
    """``head`` with its first ``nn.Linear`` (the layer that reads the input) replaced by one
    that reads ``in_features`` (unchanged when it already does)."""

    for name, module in head.named_modules():
        if isinstance(module, nn.Linear):
            if module.in_features == in_features:
                return head
            resized = nn.Linear(in_features, module.out_features, bias=module.bias is not None)
            if not name:
                return resized
            parent, _, child = name.rpartition(".")
            setattr(head.get_submodule(parent), child, resized)
            return head
    raise ValueError(f"a head that reads another input size must start with nn.Linear: {head}")


def pool_to_grid(feature_map: torch.Tensor, local_grid: Optional[int]) -> torch.Tensor:
    """Average-pools a feature map to an ``n x n`` grid (``None`` or ``n = H = W``: unchanged).

    Args:
        feature_map (torch.Tensor): ``B x C x H x W`` map.
        local_grid (Optional[int]): grid side, or None for the native grid.

    Returns:
        torch.Tensor: ``B x C x n x n`` map.
    """

    if local_grid is None or tuple(feature_map.shape[-2:]) == (local_grid, local_grid):
        return feature_map
    return F.adaptive_avg_pool2d(feature_map, local_grid)


def feature_map_to_rows(
    feature_map: torch.Tensor, local_grid: Optional[int] = None
) -> Tuple[torch.Tensor, int]:
    """Turns a feature map into one row per (image, position).

    Args:
        feature_map (torch.Tensor): ``B x C x H x W`` map.
        local_grid (Optional[int]): optional grid side to pool to first.

    Returns:
        Tuple[torch.Tensor, int]: ``(B * N) x C`` rows, image-major, and ``N`` positions.
    """

    feature_map = pool_to_grid(feature_map, local_grid)
    b, c, h, w = feature_map.shape
    # NHWC order: a view when the map is channels-last, one transpose copy otherwise
    rows = feature_map.permute(0, 2, 3, 1).reshape(b * h * w, c)
    return rows, h * w


def clone_head_with_hidden_dim(
    head: nn.Sequential, hidden_dim: int, in_features: Optional[int] = None
) -> nn.Sequential:
    """A head with the layers of ``head`` but ``hidden_dim`` units in its hidden layers.

    For a "slim" local head: the input and output sizes stay those of the global head, every
    hidden Linear/BatchNorm gets ``hidden_dim`` units, weights are fresh.

    Args:
        head (nn.Sequential): an MLP head of ``nn.Linear``, ``nn.BatchNorm1d`` and activations.
        hidden_dim (int): the new hidden width.
        in_features (Optional[int]): input size (an earlier stage's channels); None: ``head``'s.

    Returns:
        nn.Sequential: the slim head.
    """

    linears = [i for i, layer in enumerate(head) if isinstance(layer, nn.Linear)]
    if not isinstance(head, nn.Sequential) or len(linears) < 2:
        raise ValueError(
            f"a slim local head needs an MLP head (nn.Sequential with 2+ Linear layers), got "
            f"{type(head).__name__}"
        )
    layers = []
    width = None
    for i, layer in enumerate(head):
        if isinstance(layer, nn.Linear):
            first_in = layer.in_features if in_features is None else in_features
            layer_in = first_in if i == linears[0] else hidden_dim
            out_features = layer.out_features if i == linears[-1] else hidden_dim
            layers.append(nn.Linear(layer_in, out_features, bias=layer.bias is not None))
            width = out_features
        elif isinstance(layer, nn.BatchNorm1d):
            layers.append(nn.BatchNorm1d(width, affine=layer.affine))
        else:
            layers.append(copy.deepcopy(layer))
    return nn.Sequential(*layers)
