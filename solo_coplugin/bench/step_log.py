"""Lightning's callbacks factory for the head-to-head runner (this package's
``lightning.pytorch.callbacks_factory`` entry point).

Lightning imports this module and calls :func:`callbacks` in every program that builds a Trainer,
in every environment where solo-coplugin is installed. So it imports nothing but the standard
library (``solo_coplugin/__init__.py`` is as light: no torch, no solo-learn, no registration), and
returns no callback unless ``SOLO_CO_STEP_LOG`` names a file, which only the runner sets; then it
returns the runner's callbacks (:mod:`solo_coplugin.bench.callbacks`): a per-step training log and
the random generators' states in checkpoints.
"""

import os
from typing import List

STEP_LOG_ENV = "SOLO_CO_STEP_LOG"


def callbacks() -> List[object]:
    """Lightning's callbacks factory: the runner's callbacks when ``SOLO_CO_STEP_LOG`` is set,
    else nothing (and nothing imported)."""

    path = os.environ.get(STEP_LOG_ENV)
    if not path:
        return []
    from solo_coplugin.bench.callbacks import MomentumTauOnResume, RngStatesInCheckpoint, StepLog

    return [StepLog(path), RngStatesInCheckpoint(), MomentumTauOnResume()]
