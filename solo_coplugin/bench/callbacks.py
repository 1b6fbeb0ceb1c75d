"""The head-to-head runner's callbacks, attached to solo-learn's own Trainer: a per-step
training log, and the random generators' states in checkpoints.

``main_pretrain.py`` builds its Trainer without a logger when wandb is off, so the runner could
neither draw training curves nor show progress; and a base method resumed from a checkpoint would
not continue the run it was (Lightning does not restore the random generators, see
``solo_coplugin.core.rng``; CO methods save them themselves). Lightning gets these callbacks from
this package's callbacks factory (:mod:`solo_coplugin.bench.step_log`), only when the runner sets
``SOLO_CO_STEP_LOG``.
"""

import csv
import math
import os
import time
from typing import Any, Dict, List

from lightning.pytorch.callbacks import Callback

from solo_coplugin.core.resume import restore_momentum_tau
from solo_coplugin.core.rng import RngStatesOnResume, capture_rng_states


class StepLog(Callback):
    """Appends one CSV row per optimizer step: step, epoch, seconds, loss and the train_* scalars.

    Args:
        path (str): the CSV file (appended to, so a resumed run continues its curve).
    """

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self.fields: List[str] = []
        self.start = time.time()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_rank != 0:
            return
        row: Dict[str, Any] = {
            "step": trainer.global_step,
            "epoch": trainer.current_epoch,
            "seconds": round(time.time() - self.start, 3),
        }
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None:
            row["loss"] = float(loss)
        for name, value in trainer.callback_metrics.items():
            # Lightning also lists on_step/on_epoch values as name_step/name_epoch: skip copies
            if name.endswith(("_step", "_epoch")) or not name.startswith("train_"):
                continue
            if getattr(value, "numel", lambda: 1)() == 1:
                row[name] = float(value)
        row = {k: v for k, v in row.items() if not (isinstance(v, float) and math.isnan(v))}
        if not self.fields:
            # a resumed run appends with the header it started with
            if os.path.exists(self.path) and os.path.getsize(self.path) > 0:
                with open(self.path) as f:
                    self.fields = next(csv.reader(f))
            else:
                self.fields = list(row)
                with open(self.path, "w", newline="") as f:
                    csv.writer(f).writerow(self.fields)
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.fields, extrasaction="ignore").writerow(row)


class RngStatesInCheckpoint(Callback):
    """Saves the random generators' states in each checkpoint and restores them on resume, so
    that a resumed X run continues the same run, as a resumed CO-X run does."""

    def __init__(self):
        super().__init__()
        self.on_resume = RngStatesOnResume()

    def state_dict(self) -> Dict[str, Any]:
        return capture_rng_states()

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        self.on_resume.load(state_dict)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.on_resume.restore_pending()


class MomentumTauOnResume(Callback):
    """Sets a resumed momentum method's EMA coefficient from the restored step, so that a resumed
    X run (BYOL, ...) continues the same run, as a resumed CO-X run does (``core.resume``)."""

    def on_train_start(self, trainer, pl_module) -> None:
        restore_momentum_tau(pl_module)
