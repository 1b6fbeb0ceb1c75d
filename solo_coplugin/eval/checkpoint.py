"""Loading a solo-learn pretraining checkpoint (any method, CO or not) for evaluation."""

import json
from pathlib import Path
from typing import Tuple, Union

import torch
import torch.nn as nn
from omegaconf import DictConfig, OmegaConf

from solo_coplugin.eval.data import Normalize, mean_std_for
from solo_coplugin.eval.features import FrozenBackbone


def find_checkpoint(path: Union[str, Path]) -> Path:
    """The checkpoint file: ``path`` itself, or the newest ``.ckpt`` under the folder ``path``."""

    path = Path(path)
    if path.is_file():
        return path
    checkpoints = (
        sorted(path.rglob("*.ckpt"), key=lambda p: p.stat().st_mtime) if path.is_dir() else []
    )
    if not checkpoints:
        raise FileNotFoundError(f"No .ckpt file at {path}.")
    return checkpoints[-1]


def load_method(path: Union[str, Path]) -> Tuple[nn.Module, DictConfig]:
    """Builds the method from the ``args.json`` saved next to the checkpoint and loads it.

    Args:
        path (Union[str, Path]): a ``.ckpt`` file or a folder holding one (solo-learn's
            ``trained_models/<method>/<id>/``).

    Returns:
        Tuple[nn.Module, DictConfig]: the pretrained method (on the CPU, in eval mode) and the
        run's cfg.
    """

    import solo_coplugin  # noqa: F401  (registers the CO methods and backbones)
    from solo.methods import METHODS

    checkpoint = find_checkpoint(path)
    args_file = checkpoint.parent / "args.json"
    if not args_file.exists():
        raise FileNotFoundError(
            f"No args.json next to {checkpoint}: solo-learn's Checkpointer writes one per run."
        )
    cfg = OmegaConf.create(json.loads(args_file.read_text()))
    with torch.random.fork_rng(devices=[]):  # building the model must not move anyone's RNG
        model = METHODS[cfg.method](cfg)
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    model.load_state_dict(state)
    return model.eval(), cfg


def load_pretrained(path: Union[str, Path]) -> Tuple[nn.Module, DictConfig]:
    """The pretrained backbone of a checkpoint (on the CPU) and the run's cfg."""

    model, cfg = load_method(path)
    return model.backbone, cfg


def frozen_from_checkpoint(path: Union[str, Path]) -> Tuple[FrozenBackbone, DictConfig]:
    """The frozen, normalizing evaluation model of a checkpoint, and the run's cfg."""

    backbone, cfg = load_pretrained(path)
    normalize = Normalize(*mean_std_for(cfg.data.dataset))
    return FrozenBackbone(backbone, cfg.backbone.name, normalize), cfg


def training_crop_size(cfg: DictConfig) -> int:
    """The large crops' size the run trained with."""

    return int(cfg.augmentations[0].crop_size)
