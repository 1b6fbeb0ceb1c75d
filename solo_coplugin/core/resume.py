"""The momentum coefficient on resume, so that a resumed momentum method continues the same run.

solo-learn's ``BaseMomentumMethod`` updates the momentum networks at the end of each step ``g``
with tau(g - 1) and then sets tau(g) for the next step (``momentum_updater.update_tau``); tau lives
only in memory. A run resumed from a checkpoint at global step ``k`` starts with ``base_tau`` and
applies it at step ``k + 1`` instead of tau(k): every momentum tensor, and from then on every
tensor, differs from the run trained straight (measured for BYOL and CO-BYOL, fp32 and bf16).
Setting tau from the restored global step when training starts removes the difference.

Pure Python: it needs only the module's ``momentum_updater`` (solo-learn's
``MomentumUpdater``) and its trainer's ``global_step`` and ``estimated_stepping_batches``.
"""

from typing import Any


def restore_momentum_tau(module: Any) -> None:
    """Sets ``module.momentum_updater``'s tau for the step after the restored global step.

    Does nothing for a module without a momentum updater, outside a trainer, or at step 0
    (a fresh run already starts with ``base_tau`` = tau(0)). Call it from ``on_train_start``,
    after Lightning has restored the loop counters.

    Args:
        module (Any): a LightningModule, e.g. a solo-learn ``BaseMomentumMethod``.
    """

    updater = getattr(module, "momentum_updater", None)
    trainer = getattr(module, "_trainer", None)
    if updater is None or trainer is None or trainer.global_step == 0:
        return
    updater.update_tau(cur_step=trainer.global_step, max_steps=trainer.estimated_stepping_batches)
