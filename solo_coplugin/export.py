"""``solo-co-export``: the backbone of a solo-learn checkpoint (CO or not) for use elsewhere.

    solo-co-export trained_models/co_byol/<id>/ exported/ [--local-heads]

writes into ``exported/``:

- ``backbone.pt``: the backbone's weights as a plain state_dict (tensors only, solo-learn's
  ``backbone.`` prefix removed), readable with ``torch.load(weights_only=True)``;
- ``backbone.json``: what they are: the method, solo-learn's ``backbone.name`` and
  ``backbone.kwargs``, the model to build for them (a torchvision, timm or solo-coplugin
  constructor and the modules solo-learn replaced in it, also as a Python snippet), the input
  crop size and normalization, and the feature size;
- with ``--local-heads`` (CO checkpoints): ``local_heads.pt``, the local heads' weights as
  ``<output key>.<parameter>``, and their description in the JSON.

solo-learn changes torchvision ResNets after building them (``fc`` becomes ``Identity``; for
CIFAR-10/100 a 3x3 stride-1 ``conv1`` and no max-pool), so the weights only load, with
``strict=True``, into a model changed the same way: :func:`build_backbone` does that from the
JSON, and the export checks it before writing anything. Rebuilding needs torchvision, timm or
solo-coplugin's pure-torch backbones (``resnet18_cifar``, ``rf_resnet18``, ...), not solo-learn.
"""

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from omegaconf import DictConfig, OmegaConf

from solo_coplugin.eval.checkpoint import (
    CHECKPOINT_ERRORS,
    find_checkpoint,
    load_checkpoint,
    load_method,
)
from solo_coplugin.eval.data import IMAGENET_MEAN_STD, SOLO_MEAN_STD

EXPORT_FORMAT = "solo-coplugin backbone export"
EXPORT_VERSION = 1
BACKBONE_FILE = "backbone.pt"
METADATA_FILE = "backbone.json"
LOCAL_HEADS_FILE = "local_heads.pt"

# solo-learn normalizes these datasets with fixed statistics (ImageNet's for the ImageNets) and any
# other with its augmentation pipeline's ``mean``/``std``, ImageNet's by default
FIXED_MEAN_STD = {**SOLO_MEAN_STD, "imagenet": IMAGENET_MEAN_STD, "imagenet100": IMAGENET_MEAN_STD}
CIFAR_DATASETS = ("cifar10", "cifar100")

# solo-learn backbone name -> the model that has its parameters
TORCHVISION_RESNETS = {
    "resnet18": "torchvision.models.resnet18",
    "resnet50": "torchvision.models.resnet50",
}
SOLO_COPLUGIN_BACKBONES = {
    "resnet18_cifar": "solo_coplugin.backbones.small_resnet.resnet18_cifar",
    "resnet50_cifar": "solo_coplugin.backbones.small_resnet.resnet50_cifar",
    "rf_resnet18": "solo_coplugin.backbones.rf_resnet.rf_resnet18",
    "rf_resnet50": "solo_coplugin.backbones.rf_resnet.rf_resnet50",
}
# solo-learn builds these with timm's builders, as timm's models of these names with
# ``num_classes=0`` (named by module: solo-learn re-registers "convnext_tiny" etc. in timm's
# registry)
TIMM_MODELS = {
    **{
        f"vit_{size}": f"timm.models.vision_transformer.vit_{size}_patch16_224"
        for size in ("tiny", "small", "base", "large")
    },
    **{
        f"swin_{size}": f"timm.models.swin_transformer.swin_{size}_patch4_window7_224"
        for size in ("tiny", "small", "base", "large")
    },
    **{
        f"convnext_{size}": f"timm.models.convnext.convnext_{size}"
        for size in ("tiny", "small", "base", "large")
    },
}
# solo-learn gives ViTs of these methods its own classes (sin-cos position embedding, MAE decoder)
SOLO_VIT_METHODS = ("mocov3", "mae")


class ExportError(ValueError):
    """The checkpoint cannot be exported; the message says why and what to do."""


def _identity() -> Dict[str, Any]:
    return {"with": "torch.nn.Identity", "args": [], "kwargs": {}}


def backbone_kwargs(cfg: DictConfig) -> Dict[str, Any]:
    """``backbone.kwargs`` as a plain dict."""

    kwargs = cfg.backbone.get("kwargs")
    return {} if kwargs is None else OmegaConf.to_container(kwargs, resolve=True)


def architecture(cfg: DictConfig) -> Dict[str, Any]:
    """How to build the model that a run's backbone weights load into with ``strict=True``.

    Args:
        cfg (DictConfig): the run's cfg (``args.json``).

    Returns:
        Dict[str, Any]: ``constructor`` (an importable dotted name), its ``args`` and ``kwargs``,
        ``replace`` (``{module: {"with", "args", "kwargs"}}``, the modules solo-learn replaced
        after building, in order), ``requires`` (packages) and ``python`` (the same as a snippet).
    """

    name = cfg.backbone.name
    kwargs = backbone_kwargs(cfg)
    replace: Dict[str, Dict[str, Any]] = {}
    args: List[Any] = []
    if name in TORCHVISION_RESNETS:
        constructor, requires = TORCHVISION_RESNETS[name], ["torchvision"]
    elif name in SOLO_COPLUGIN_BACKBONES:
        constructor, requires = SOLO_COPLUGIN_BACKBONES[name], ["solo-coplugin"]
    elif name in TIMM_MODELS and str(cfg.method).lower() not in SOLO_VIT_METHODS:
        constructor, requires = TIMM_MODELS[name], ["timm"]
        kwargs = {"num_classes": 0, **kwargs}
    else:  # solo-learn's own code (poolformer, wide_resnet, MoCo v3 / MAE ViTs)
        constructor, requires = f"solo.backbones.{name}", ["solo-learn"]
        args = [cfg.method]

    # what BaseMethod.__init__ does to every backbone whose name starts with "resnet"
    if name.startswith("resnet"):
        replace["fc"] = _identity()
        if cfg.data.dataset in CIFAR_DATASETS and name in TORCHVISION_RESNETS:
            # (the small-image ResNets already have this stem, at their own width)
            replace["conv1"] = {
                "with": "torch.nn.Conv2d",
                "args": [3, 64],
                "kwargs": {"kernel_size": 3, "stride": 1, "padding": 2, "bias": False},
            }
            replace["maxpool"] = _identity()
    return {
        "constructor": constructor,
        "args": args,
        "kwargs": kwargs,
        "replace": replace,
        "requires": requires,
        "python": _snippet(constructor, args, kwargs, replace),
    }


def _call(function: str, args: Sequence[Any], kwargs: Dict[str, Any]) -> str:
    arguments = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"{function}({', '.join(arguments)})"


def _snippet(constructor, args, kwargs, replace) -> str:
    module = constructor.rsplit(".", 1)[0]
    lines = ["import torch", f"import {module}", f"model = {_call(constructor, args, kwargs)}"]
    lines += [
        f"model.{name} = {_call(new['with'], new['args'], new['kwargs'])}"
        for name, new in replace.items()
    ]
    lines.append(
        f"model.load_state_dict(torch.load({BACKBONE_FILE!r}, weights_only=True), strict=True)"
    )
    return "\n".join(lines)


def _resolve(dotted: str):
    module, _, attribute = dotted.rpartition(".")
    return getattr(importlib.import_module(module), attribute)


def build_backbone(metadata: Union[Dict[str, Any], str, Path]) -> nn.Module:
    """Builds the model that an export's ``backbone.pt`` loads into with ``strict=True``.

    Needs the packages in ``metadata["architecture"]["requires"]``, never solo-learn for the
    ResNets, RF-ResNets, ViTs, Swins and ConvNeXts that CO methods train.

    Args:
        metadata (Union[Dict[str, Any], str, Path]): the export's ``backbone.json`` (parsed, or
            its path).

    Returns:
        nn.Module: the model with freshly initialized weights; ``model(x)`` gives the pooled
        features, as solo-learn's backbone does.
    """

    if not isinstance(metadata, dict):
        metadata = json.loads(Path(metadata).read_text())
    spec = metadata["architecture"]
    model = _resolve(spec["constructor"])(*spec["args"], **spec["kwargs"])
    for name, new in spec["replace"].items():
        setattr(model, name, _resolve(new["with"])(*new["args"], **new["kwargs"]))
    return model


def normalization(cfg: DictConfig) -> Dict[str, List[float]]:
    """The per-channel mean and std that the run's images were normalized with."""

    if cfg.data.dataset in FIXED_MEAN_STD:
        mean, std = FIXED_MEAN_STD[cfg.data.dataset]
    else:
        pipeline = cfg.augmentations[0] if cfg.get("augmentations") else {}
        mean = list(pipeline.get("mean", IMAGENET_MEAN_STD[0]))
        std = list(pipeline.get("std", IMAGENET_MEAN_STD[1]))
    return {"mean": [float(m) for m in mean], "std": [float(s) for s in std]}


def backbone_state(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The online backbone's entries of a method's state_dict, without the ``backbone.``."""

    prefix = "backbone."
    return {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}


def _run_cfg(checkpoint: Path) -> DictConfig:
    args_file = checkpoint.parent / "args.json"
    if not args_file.exists():
        raise ExportError(
            f"No args.json next to {checkpoint}: it says which backbone the weights belong to. "
            "Fix: export a checkpoint from its solo-learn run folder "
            "(trained_models/<method>/<id>/), where solo-learn's Checkpointer writes both."
        )
    return OmegaConf.create(json.loads(args_file.read_text()))


def _check_rebuild(model: nn.Module, state: Dict[str, torch.Tensor], spec: Dict[str, Any]) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ExportError(
            f"The backbone's weights do not load with strict=True into {spec['python']!r}: "
            f"{error}. This backbone is not supported by solo-co-export; please report it."
        ) from error


def _local_heads(checkpoint: Path) -> Dict[str, Any]:
    """The local heads of a CO checkpoint: their weights and what they are."""

    model, cfg = load_method(checkpoint)
    if not hasattr(model, "local_head_modules"):
        raise ExportError(
            f"{checkpoint} is a {cfg.method} checkpoint, which has no local heads. Fix: drop "
            "--local-heads (it is for CO methods)."
        )
    heads = model.local_head_modules()
    state = {
        f"{key}.{name}": tensor for key, head in heads for name, tensor in head.state_dict().items()
    }
    description = {
        "file": LOCAL_HEADS_FILE,
        "order": [key for key, _ in heads],
        "modules": {key: repr(head) for key, head in heads},
        "mode": cfg.method_kwargs.get("local_head", "separate"),
        "stage": cfg.method_kwargs.get("local_stage"),
        "grid": cfg.method_kwargs.get("local_grid"),
        "input": "the feature map (B x C x H x W) of the backbone's module `stage` (null: the map "
        "the backbone pools, a ResNet's layer4), average-pooled to grid x grid when grid is "
        "set, as rows of B*H*W C-vectors; the heads are applied in order, each on the "
        "previous one's output",
    }
    return {"state": state, "description": description}


def export_checkpoint(
    checkpoint: Union[str, Path], out_dir: Union[str, Path], local_heads: bool = False
) -> Dict[str, Any]:
    """Writes a checkpoint's backbone (and optionally its local heads) for use without solo-learn.

    Args:
        checkpoint (Union[str, Path]): a ``.ckpt`` file or its run folder.
        out_dir (Union[str, Path]): where to write ``backbone.pt`` and ``backbone.json``.
        local_heads (bool): also write ``local_heads.pt`` (CO checkpoints; needs solo-learn to
            read the method). Defaults to False.

    Returns:
        Dict[str, Any]: the metadata written to ``backbone.json``.
    """

    if Path(out_dir).is_file():
        raise ExportError(f"{out_dir} is a file. Fix: give a folder (it is created if missing).")
    checkpoint = find_checkpoint(checkpoint)
    cfg = _run_cfg(checkpoint)
    content = load_checkpoint(checkpoint)
    state = backbone_state(content.get("state_dict") or {})
    if not state:
        raise ExportError(f"{checkpoint} has no 'backbone.' weights: not a solo-learn checkpoint?")

    spec = architecture(cfg)
    model = build_backbone({"architecture": spec})
    _check_rebuild(model, state, spec)
    crop_size = int(cfg.augmentations[0].crop_size) if cfg.get("augmentations") else None
    with torch.no_grad():
        features = model.eval()(torch.zeros(1, 3, crop_size or 224, crop_size or 224))

    metadata = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "checkpoint": str(checkpoint.resolve()),
        "epoch": content.get("epoch"),
        "global_step": content.get("global_step"),
        "method": cfg.method,
        "dataset": cfg.data.dataset,
        "backbone": {
            "name": cfg.backbone.name,
            "kwargs": backbone_kwargs(cfg),
        },
        "architecture": spec,
        "input": {
            "crop_size": crop_size,
            "pixels": "RGB in [0, 1], then (x - mean) / std per channel",
            **normalization(cfg),
        },
        "features": {"dim": int(features.shape[-1]), "output": "model(x): B x dim, pooled"},
        "files": {"backbone": BACKBONE_FILE},
    }

    heads = _local_heads(checkpoint) if local_heads else None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.clone() for k, v in state.items()}, out_dir / BACKBONE_FILE)
    if heads is not None:
        torch.save({k: v.clone() for k, v in heads["state"].items()}, out_dir / LOCAL_HEADS_FILE)
        metadata["local_heads"] = heads["description"]
        metadata["files"]["local_heads"] = LOCAL_HEADS_FILE
    (out_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    return metadata


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        prog="solo-co-export", description=__doc__.split("\n")[0].split(": ", 1)[-1]
    )
    parser.add_argument("checkpoint", type=Path, help="a .ckpt file or its solo-learn run folder")
    parser.add_argument("out", type=Path, help="folder for backbone.pt and backbone.json")
    parser.add_argument(
        "--local-heads", action="store_true", help="also write the CO local heads (local_heads.pt)"
    )
    args = parser.parse_args(argv)
    try:
        metadata = export_checkpoint(args.checkpoint, args.out, local_heads=args.local_heads)
    except (ExportError, *CHECKPOINT_ERRORS) as error:
        sys.exit(f"solo-co-export: {error}")
    print(f"wrote {args.out / METADATA_FILE}; rebuild with:\n{metadata['architecture']['python']}")


if __name__ == "__main__":
    main()
