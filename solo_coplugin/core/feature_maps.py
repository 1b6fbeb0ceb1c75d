"""Access to a backbone's local representations before pooling (pure torch).

solo-learn's backbones return pooled features (``self.backbone(X)`` is ``B x C``). CO-SSL needs
the ``B x C x H x W`` map that was pooled: a ResNet's last feature map, a ConvNeXt's last stage,
a Swin's last stage, a ViT's patch tokens (without the class token) on their grid. Rather than
re-implementing each backbone's forward pass, :class:`FeatureMapTap` registers a forward hook on
the module that produces them and keeps its output: the backbone runs exactly once, unchanged,
so the global features (and the online linear probe, kNN, UMAP, ``main_linear.py``) stay what
solo-learn computes, bit for bit (a ViT's global feature stays its class token).

The tap can also read an earlier stage (``method_kwargs.local_stage``): a ResNet's ``layer2`` or
``layer3``, a ViT's ``blocks.<i>`` (its tokens after block ``i``), a Swin's ``layers.<i>``, a
ConvNeXt's ``stages.<i>``. The hook only keeps a reference to that stage's output, which autograd
keeps anyway as the next stage's input: no copy, no second pass, and the global features and
their gradient path are those of the unchanged backbone; the local heads add a second consumer
of the stage's output, so their gradient reaches that stage and the layers below it only.
"""

from typing import Callable, Dict, Optional, Tuple

import torch
import torch.nn as nn

from solo_coplugin.core.config import CoConfigError

SUPPORTED_BACKBONES = (
    "ResNets (resnet18, resnet50, resnet18_cifar, resnet50_cifar, rf_resnet18, rf_resnet50), "
    "ViTs (vit_tiny, vit_small, vit_base, vit_large: patch tokens), Swin (swin_*) and ConvNeXt "
    "(convnext_*)"
)


#: the ResNet stages that can hold the local representations (layer1: too many positions)
RESNET_LOCAL_STAGES = ("layer2", "layer3", "layer4")

Stage = Tuple[nn.Module, Callable[[torch.Tensor], torch.Tensor]]


class UnsupportedBackboneError(CoConfigError):
    """The backbone has no spatial feature map that CO-SSL can read."""


def _identity(output: torch.Tensor) -> torch.Tensor:
    return output


def _nhwc_to_nchw(output: torch.Tensor) -> torch.Tensor:
    return output.permute(0, 3, 1, 2)


class _PatchTokensToMap:
    """ViT tokens ``B x T x D`` -> ``B x D x h x w`` map of the patch tokens (prefix tokens such
    as the class token dropped); a view, no copy of the tokens."""

    def __init__(self, num_prefix_tokens: int, backbone_name: str):
        self.num_prefix_tokens = num_prefix_tokens
        self.backbone_name = backbone_name

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        patches = tokens[:, self.num_prefix_tokens :]
        b, n, d = patches.shape
        side = int(round(n**0.5))
        if n == 0 or side * side != n:
            raise UnsupportedBackboneError(
                f"backbone.name={self.backbone_name} gives {n} patch tokens (after "
                f"{self.num_prefix_tokens} prefix tokens), not a square grid of local "
                "representations. Fix: a ViT with patch tokens on square inputs (e.g. "
                "backbone.kwargs.img_size equal to the crop size, a multiple of the patch size)."
            )
        return patches.view(b, side, side, d).permute(0, 3, 1, 2)


def spatial_stages(backbone: nn.Module, backbone_name: str = "?") -> Dict[str, Stage]:
    """The stages whose output can hold the local representations, in forward order.

    The last entry is the map the backbone pools (the default stage).

    Args:
        backbone (nn.Module): the backbone as solo-learn builds it (``fc`` already removed).
        backbone_name (str): ``backbone.name``, for the error message.

    Returns:
        Dict[str, Stage]: stage name -> (the module to tap, the function that turns its output
        into a ``B x C x H x W`` map). ResNets: ``layer2``, ``layer3``, ``layer4``; ViTs:
        ``blocks.0`` ... and ``norm`` (the final tokens); Swin: ``layers.0`` ... and ``norm``;
        ConvNeXt: ``stages.0`` ... and ``norm_pre``.
    """

    kind = type(backbone).__name__
    if isinstance(getattr(backbone, "layer4", None), nn.Module) and isinstance(
        getattr(backbone, "avgpool", None), nn.AdaptiveAvgPool2d
    ):
        return {
            name: (getattr(backbone, name), _identity)
            for name in RESNET_LOCAL_STAGES
            if isinstance(getattr(backbone, name, None), nn.Module)
        }
    if hasattr(backbone, "patch_embed") and hasattr(backbone, "blocks"):  # timm ViT
        if not getattr(backbone, "num_prefix_tokens", 1) < _num_tokens(backbone):
            raise UnsupportedBackboneError(
                f"backbone.name={backbone_name} has no patch tokens to use as local "
                "representations. Fix: a ViT that keeps its patch tokens (vit_tiny, vit_small)."
            )
        converter = _PatchTokensToMap(getattr(backbone, "num_prefix_tokens", 1), backbone_name)
        return _numbered("blocks", backbone.blocks, converter, ("norm", backbone.norm))
    if kind == "SwinTransformer" and hasattr(backbone, "norm"):  # timm Swin: NHWC output
        return _numbered("layers", backbone.layers, _nhwc_to_nchw, ("norm", backbone.norm))
    if hasattr(backbone, "stages") and hasattr(backbone, "norm_pre"):  # timm ConvNeXt
        return _numbered("stages", backbone.stages, _identity, ("norm_pre", backbone.norm_pre))
    raise UnsupportedBackboneError(
        f"backbone.name={backbone_name} ({kind}) has no spatial feature map that solo-coplugin "
        f"can read; CO methods support {SUPPORTED_BACKBONES}. "
        "Fix: backbone.name=resnet18 (or resnet18_cifar for small images)."
    )


def _numbered(prefix: str, modules: nn.Module, converter, last: Tuple[str, nn.Module]):
    stages = {f"{prefix}.{i}": (module, converter) for i, module in enumerate(modules)}
    stages[last[0]] = (last[1], converter)
    return stages


def resolve_stage(stages: Dict[str, Stage], stage: Optional[str], backbone_name: str = "?") -> str:
    """The name of the stage to tap: ``stage``, or the last one when it is None.

    Args:
        stages (Dict[str, Stage]): what :func:`spatial_stages` returns.
        stage (Optional[str]): ``method_kwargs.local_stage``.
        backbone_name (str): ``backbone.name``, for the message.

    Returns:
        str: a key of ``stages``.
    """

    last = list(stages)[-1]
    if stage is None:
        return last
    if stage not in stages:
        raise CoConfigError(
            f"method_kwargs.local_stage={stage!r} is not a stage of backbone.name={backbone_name}"
            f"; choose one of {', '.join(stages)} (null: {last}, the map the backbone pools). "
            f"Fix: method_kwargs.local_stage=null, or one of those names."
        )
    return stage


def find_spatial_stage(
    backbone: nn.Module, backbone_name: str = "?", stage: Optional[str] = None
) -> Stage:
    """Finds the module whose output holds the local representations, and how to read them.

    Args:
        backbone (nn.Module): the backbone as solo-learn builds it (``fc`` already removed).
        backbone_name (str): ``backbone.name``, for the error message.
        stage (Optional[str]): a stage name of :func:`spatial_stages`; None: the last stage.

    Returns:
        Tuple[nn.Module, Callable]: the module to tap (by default a ResNet's ``layer4``, a ViT's
        or Swin's final ``norm``, a ConvNeXt's ``norm_pre``) and the function that turns its
        output into a ``B x C x H x W`` map.
    """

    stages = spatial_stages(backbone, backbone_name)
    return stages[resolve_stage(stages, stage, backbone_name)]


def _num_tokens(backbone: nn.Module) -> int:
    num_patches = getattr(getattr(backbone, "patch_embed", None), "num_patches", 0) or 0
    return num_patches + getattr(backbone, "num_prefix_tokens", 1)


class FeatureMapTap:
    """Keeps the local representations from a backbone's latest forward pass.

    Args:
        backbone (nn.Module): the backbone to tap.
        backbone_name (str): ``backbone.name``, for error messages.
        stage (Optional[str]): the stage to read (``method_kwargs.local_stage``, see
            :func:`spatial_stages`); None: the map the backbone pools.

    Attributes:
        stage (str): the name of the tapped stage.
        last_stage (str): the name of the map the backbone pools (the default stage).
        is_last_stage (bool): whether the tapped stage is that one.
    """

    def __init__(self, backbone: nn.Module, backbone_name: str = "?", stage: Optional[str] = None):
        self.backbone_name = backbone_name
        self._last: Optional[torch.Tensor] = None
        stages = spatial_stages(backbone, backbone_name)
        self.stage = resolve_stage(stages, stage, backbone_name)
        self.last_stage = list(stages)[-1]
        self.is_last_stage = self.stage == self.last_stage
        module, self._to_map = stages[self.stage]
        self._handle = module.register_forward_hook(self._keep)

    def _keep(self, module: nn.Module, inputs, output: torch.Tensor) -> None:
        self._last = output

    def pop(self) -> torch.Tensor:
        """Returns the feature map of the latest forward pass and forgets it.

        Forgetting it matters: the map holds the autograd graph of the step.

        Returns:
            torch.Tensor: ``B x C x H x W`` feature map (a view of the tapped output).
        """

        if self._last is None:
            raise RuntimeError(
                "FeatureMapTap.pop() was called before the tapped backbone ran a forward pass."
            )
        output, self._last = self._last, None
        return self._to_map(output)

    def remove(self) -> None:
        """Removes the hook from the backbone."""

        self._handle.remove()


@torch.no_grad()
def measure_feature_map_shape(
    backbone: nn.Module, tap: FeatureMapTap, crop_size: int, in_channels: int = 3
) -> Tuple[int, int, int]:
    """Measures the (C, H, W) of the tapped feature map for square crops of ``crop_size`` pixels.

    Runs one forward pass in eval mode on a zero image, so BatchNorm statistics and the
    training mode of the backbone are left as they were.

    Args:
        backbone (nn.Module): the tapped backbone.
        tap (FeatureMapTap): the tap registered on it.
        crop_size (int): input side in pixels.
        in_channels (int): input channels.

    Returns:
        Tuple[int, int, int]: feature-map channels, height and width.
    """

    was_training = backbone.training
    backbone.eval()
    try:
        param = next(backbone.parameters())
        backbone(torch.zeros(1, in_channels, crop_size, crop_size, device=param.device))
    except (AssertionError, RuntimeError, ValueError) as error:
        raise CoConfigError(
            f"backbone.name={tap.backbone_name} does not run on the configured {crop_size} px "
            f"crops ({type(error).__name__}: {error}). Fix: make backbone.kwargs match the crop "
            f"size (e.g. backbone.kwargs.img_size={crop_size} for a ViT or Swin), or change "
            "augmentations crop_size."
        ) from error
    finally:
        backbone.train(was_training)
    c, h, w = tap.pop().shape[-3:]
    return int(c), int(h), int(w)


def measure_feature_map_size(
    backbone: nn.Module, tap: FeatureMapTap, crop_size: int, in_channels: int = 3
) -> Tuple[int, int]:
    """Measures the (H, W) of the tapped feature map for square crops of ``crop_size`` pixels
    (see :func:`measure_feature_map_shape`).

    Returns:
        Tuple[int, int]: feature-map height and width.
    """

    return measure_feature_map_shape(backbone, tap, crop_size, in_channels)[1:]
