"""Loading a solo-learn pretraining checkpoint (any method, CO or not) for evaluation."""

import json
import pickle
import re
from pathlib import Path
from typing import Any, Dict, Tuple, Union

import torch
import torch.nn as nn
from omegaconf import DictConfig, OmegaConf

from solo_coplugin.eval.data import Normalize, mean_std_for
from solo_coplugin.eval.features import FrozenBackbone


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint's pickle asks for more than tensors and plain containers."""


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read, or does not match its run; the message names the file and
    the fix."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No checkpoint where one was given."""


#: what ``solo-co-eval`` and ``solo-co-export`` report as one message instead of a stack trace
CHECKPOINT_ERRORS = (CheckpointError, UnsafeCheckpointError)

#: what torch.load raises on a truncated or corrupt file: an empty one (EOFError), a cut zip
#: archive (RuntimeError from PytorchStreamReader, or OSError EINVAL when cut near its end), a
#: file that is no checkpoint at all (the legacy unpickler's KeyError or UnpicklingError)
_CORRUPT = (EOFError, RuntimeError, OSError, KeyError, pickle.UnpicklingError)


def load_checkpoint(path: Union[str, Path]) -> Dict[str, Any]:
    """Reads a Lightning checkpoint with ``torch.load(weights_only=True)``, on the CPU.

    A ``.ckpt`` is a pickle, and a pickle can run any code while it is read. Every checkpoint
    that solo-coplugin reads goes through here, so none can. Lightning 2.1 checkpoints of
    solo-learn 1.0.6 runs, CO or not, hold only tensors, numbers, strings, lists, dicts,
    ``OrderedDict`` and ``Counter`` (a step scheduler's milestones): all in torch's own
    allow-list (measured on 32-bit and bf16-mixed runs, LARS, warmup_cosine and step schedulers,
    and the CO methods' random-generator states), so nothing is added to it.

    Args:
        path (Union[str, Path]): the ``.ckpt`` file.

    Returns:
        Dict[str, Any]: the checkpoint (``state_dict``, ``global_step``, ...).
    """

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except pickle.UnpicklingError as error:
        if "Weights only load failed" not in str(error):
            raise _corrupt(path, error) from None
        unsafe = re.search(r"GLOBAL (\S+)", str(error))
        asks_for = f"`{unsafe.group(1)}`" if unsafe else "a type torch does not allow"
        raise UnsafeCheckpointError(
            f"Refusing to load {path}: its pickle asks for {asks_for}, not only tensors and "
            "plain containers, so reading it could run code. Checkpoints that solo-learn runs "
            "write never do. Fix: use a checkpoint from a solo-learn run; only if you made this "
            "file yourself and trust it, load it once with torch.load(path, weights_only=False) "
            "and save its tensors again."
        ) from None
    except _CORRUPT as error:
        raise _corrupt(path, error) from None


def _corrupt(path: Union[str, Path], error: BaseException) -> CheckpointError:
    first_line = str(error).strip().split("\n")[0][:200]
    return CheckpointError(
        f"{path} is not a complete PyTorch checkpoint: it is truncated or not a checkpoint "
        f"({type(error).__name__}: {first_line or 'the file ends early'}). Fix: use a checkpoint "
        "that was written to the end (a run killed while saving leaves a cut file; solo-learn "
        "keeps the previous epoch's .ckpt next to it unless checkpoint.keep_prev=False)."
    )


def find_checkpoint(path: Union[str, Path]) -> Path:
    """The checkpoint file: ``path`` itself, or the newest ``.ckpt`` under the folder ``path``."""

    path = Path(path)
    if path.is_file():
        return path
    if not path.exists():
        raise CheckpointNotFoundError(
            f"{path} does not exist. Fix: give a .ckpt file or the run folder solo-learn wrote "
            "it to (checkpoint.dir/<method>/<run id>/, e.g. trained_models/co_byol/abc123/)."
        )
    checkpoints = sorted(path.rglob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    if not checkpoints:
        raise CheckpointNotFoundError(
            f"No .ckpt file at {path}. Fix: give a .ckpt file or the run folder solo-learn wrote "
            "it to (checkpoint.dir/<method>/<run id>/); checkpoint.enabled=False runs write none."
        )
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

    from solo_coplugin.registration import register

    register()  # the CO methods and backbones, by name
    from solo.methods import METHODS

    checkpoint = find_checkpoint(path)
    args_file = checkpoint.parent / "args.json"
    if not args_file.exists():
        raise CheckpointNotFoundError(
            f"No args.json next to {checkpoint}: solo-learn's Checkpointer writes one per run. "
            "Fix: give the checkpoint in its run folder (trained_models/<method>/<id>/)."
        )
    cfg = OmegaConf.create(json.loads(args_file.read_text()))
    method = cfg.get("method")
    if method not in METHODS:
        raise CheckpointError(
            f"{args_file} says method={method}, which is not a pretraining method solo-learn "
            f"knows{' (a main_linear.py run?)' if method is None else ''}. Fix: give a "
            "main_pretrain.py checkpoint; for another plugin's method, import that plugin first."
        )
    with torch.random.fork_rng(devices=[]):  # building the model must not move anyone's RNG
        model = METHODS[method](cfg)
    state = load_checkpoint(checkpoint).get("state_dict")
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{checkpoint} has no state_dict: it is not a Lightning checkpoint. Fix: give a .ckpt "
            "that solo-learn's main_pretrain.py wrote."
        )
    missing, unexpected = _state_mismatch(model.state_dict(), state)
    if missing or unexpected:
        raise CheckpointError(
            f"{checkpoint} does not hold the weights of the run its args.json describes "
            f"(method={method}, backbone.name={cfg.backbone.name}): {len(missing)} missing "
            f"({_first(missing)}) and {len(unexpected)} unexpected or differently shaped "
            f"({_first(unexpected)}) entries. Fix: keep each .ckpt in the run folder with the "
            "args.json written with it (a checkpoint of another method or backbone does not load "
            "into this one)."
        )
    model.load_state_dict(state)
    return model.eval(), cfg


def _state_mismatch(expected: Dict[str, Any], state: Dict[str, Any]) -> Tuple[list, list]:
    """The keys missing from ``state`` and those it has in excess, or of another shape."""

    missing = [k for k in expected if k not in state]
    unexpected = [
        k
        for k, v in state.items()
        if k not in expected or getattr(v, "shape", None) != expected[k].shape
    ]
    return missing, unexpected


def _first(keys: list, count: int = 3) -> str:
    return ", ".join(keys[:count]) + (", ..." if len(keys) > count else "") if keys else "none"


def load_pretrained(path: Union[str, Path]) -> Tuple[nn.Module, DictConfig]:
    """The pretrained backbone of a checkpoint (on the CPU) and the run's cfg."""

    model, cfg = load_method(path)
    return model.backbone, cfg


def frozen_from_checkpoint(path: Union[str, Path]) -> Tuple[FrozenBackbone, DictConfig]:
    """The frozen, normalizing evaluation model of a checkpoint, and the run's cfg.

    Its feature-map tap reads the stage the run was configured with
    (``method_kwargs.local_stage``; the map the backbone pools when the run has none).
    """

    backbone, cfg = load_pretrained(path)
    normalize = Normalize(*mean_std_for(cfg.data.dataset, cfg))
    local_stage = OmegaConf.select(cfg, "method_kwargs.local_stage", default=None)
    return FrozenBackbone(backbone, cfg.backbone.name, normalize, local_stage), cfg


def training_crop_size(cfg: DictConfig) -> int:
    """The large crops' size the run trained with."""

    return int(cfg.augmentations[0].crop_size)
