"""Training steps of every CO method under Lightning's DDP strategy, for ``test_ddp.py``.

``python ddp_step.py OUT_DIR [CASE ...]`` fits, for each case (default: all of ``CASES``), a
``Trainer(accelerator="cpu", strategy="ddp", devices=2)`` for ``STEPS`` steps, one case after the
other in the same two processes (gloo). Lightning's DDP launcher (``_SubprocessScriptLauncher``)
starts rank 1 by re-running this very command, as it re-runs ``main_pretrain.py``: this file is
a standalone script (no ``test_`` prefix: pytest does not collect it). Each rank trains on its
contiguous half of the global batch and writes ``OUT_DIR/<case>-rank<r>.pt`` with the first
step's loss, every parameter's gradient as the optimizer receives it (after DDP's all-reduce and
the method's ``on_after_backward``) and the buffers that are not normalization statistics (queues,
DINO's center) after that step's forward. ``test_ddp.py`` imports the same cases, model builder,
batch and trainer to compute the single-process reference.
"""

import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import torch
import torch.distributed as dist
from lightning.pytorch import Callback, Trainer
from solo.methods.base import BaseMomentumMethod
from solo.utils.whitening import IterNorm
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.data import DataLoader, Dataset

try:
    from .utils import SMALL_HEADS, gen_base_cfg
except ImportError:  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from integration.utils import SMALL_HEADS, gen_base_cfg

from solo_coplugin.methods import METHODS

WORLD_SIZE = 2
PER_RANK_BATCH = 4
GLOBAL_BATCH = WORLD_SIZE * PER_RANK_BATCH
IMAGE_SIZE = 16  # resnet18_cifar: 2x2 local representations; ViT with 8 px patches: 2x2 tokens
SMALL_RESNET = ("resnet18_cifar", {"width": 8})
#: steps trained; the first is recorded. The second makes DDP check that every parameter got a
#: gradient in the first (without ``find_unused_parameters``, as solo-learn's ``strategy: ddp``)
STEPS = 2

#: method_kwargs on top of SMALL_HEADS; DINO freezes its last layers' gradients in the first
#: epoch: unfrozen, they are compared too
METHOD_KWARGS = {"co_dino": {"freeze_last_layer": 0}}
#: case -> (method, (backbone, backbone kwargs), method_kwargs on top of SMALL_HEADS)
CASES: Dict[str, Tuple[str, Tuple[str, Dict[str, Any]], Dict[str, Any]]] = {
    **{name: (name, SMALL_RESNET, METHOD_KWARGS.get(name, {})) for name in sorted(METHODS)},
    # the plugin's own autograd all-gather (CO-SimCLR's global targets with gradient)
    "co_simclr-target_grad": ("co_simclr", SMALL_RESNET, {"local_target_grad": True}),
    "co_byol-vit": ("co_byol", ("vit_tiny", {"img_size": IMAGE_SIZE, "patch_size": 8}), {}),
}


def build_model(case: str):
    """The case's method, built from seed 0 (the same weights, queues and center everywhere)."""

    method, (backbone, backbone_kwargs), extra = CASES[case]
    cls = METHODS[method]
    cfg = gen_base_cfg(
        method,
        batch_size=PER_RANK_BATCH,
        dataset="custom",
        backbone=backbone,
        momentum=issubclass(cls, BaseMomentumMethod),
        **{**SMALL_HEADS[method[len("co_") :]], **extra},
    )
    cfg.backbone.kwargs = dict(backbone_kwargs)
    torch.manual_seed(0)
    return cls(cfg)


def global_batch(case: str) -> List[Any]:
    """The global batch ``[indexes, [view 1, view 2], labels]`` of ``GLOBAL_BATCH`` images."""

    generator = torch.Generator().manual_seed(sum(map(ord, case)))
    views = [
        torch.randn(GLOBAL_BATCH, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator) for _ in range(2)
    ]
    labels = torch.randint(0, 10, (GLOBAL_BATCH,), generator=generator)
    return [torch.arange(GLOBAL_BATCH), views, labels]


class _ThisRanksBatch(Dataset):
    """``STEPS`` items, each the batch of the process that reads it: its contiguous slice of the
    global batch, so that the ranks' all-gathers put the images back in the global order."""

    def __init__(self, batch: List[Any]):
        self.batch = batch

    def __len__(self) -> int:
        return STEPS

    def __getitem__(self, _: int) -> List[Any]:
        if not dist.is_initialized():
            return self.batch
        rank, size = dist.get_rank(), len(self.batch[0]) // dist.get_world_size()
        part = slice(rank * size, (rank + 1) * size)
        indexes, views, labels = self.batch
        return [indexes[part], [v[part] for v in views], labels[part]]


def _normalization_buffers(model: torch.nn.Module) -> set:
    """Names of the running statistics of BatchNorm and IterNorm layers (per process in DDP)."""

    return {
        f"{name}.{buffer}" if name else buffer
        for name, module in model.named_modules()
        if isinstance(module, (_BatchNorm, IterNorm))
        for buffer, _ in module.named_buffers(recurse=False)
    }


class StepRecorder(Callback):
    """Records the first step's loss, the gradients the optimizer gets and the buffers that are
    not normalization statistics, in ``self.record``."""

    def __init__(self):
        self.record: Dict[str, Any] = {}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if trainer.global_step > 0:
            return
        self.record["grads"] = {
            name: None if p.grad is None else p.grad.detach().clone()
            for name, p in pl_module.named_parameters()
        }
        skip = _normalization_buffers(pl_module)
        self.record["buffers"] = {
            name: b.detach().clone() for name, b in pl_module.named_buffers() if name not in skip
        }

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx == 0:
            self.record["loss"] = outputs["loss"].detach().clone()


def train_steps(model, batch: List[Any], **trainer_kwargs) -> Dict[str, Any]:
    """Fits ``model`` for ``STEPS`` steps on ``batch`` (each DDP rank on its slice); returns the
    first step's record."""

    recorder = StepRecorder()
    trainer = Trainer(
        accelerator="cpu",
        max_epochs=1,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,  # each rank reads its own slice (_ThisRanksBatch)
        callbacks=[recorder],
        **trainer_kwargs,
    )
    loader = DataLoader(_ThisRanksBatch(batch), batch_size=None, num_workers=0)
    trainer.fit(model, train_dataloaders=loader)
    return recorder.record


def main(out_dir: Path, cases: List[str]) -> None:
    torch.set_num_threads(1)  # two processes on two cores
    for case in cases:
        record = train_steps(
            build_model(case), global_batch(case), strategy="ddp", devices=WORLD_SIZE
        )
        torch.save(record, out_dir / f"{case}-rank{dist.get_rank()}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:] or list(CASES))
