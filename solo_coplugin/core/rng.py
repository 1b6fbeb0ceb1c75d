"""Random-number-generator states in a checkpoint, so that a resumed run continues the same run.

Lightning restores weights, optimizer, scheduler and loop counters on resume, not the random
generators. solo-learn's data loaders draw their shuffling seed and their workers' seeds (and so
every augmentation) from the global torch generator when each epoch's iterator is created, right
after ``on_train_epoch_start``, so a run resumed from an epoch-end checkpoint sees other data
orders and augmentations than the same run trained straight, and X and CO-X stop being paired.
The states saved next to the weights are restored when the first epoch after the resume starts,
not when the checkpoint is loaded: on resume, Lightning creates (and drops) one iterator between
the two, which draws from the generators (measured). The resumed run is then the same run
(tested bit for bit on CPU).

Pure torch (plus numpy's and Python's generators, which augmentation code may use); the states
are stored as tensors and plain Python values, so checkpoints stay loadable with
``torch.load(weights_only=True)``.
"""

import random
from typing import Any, Dict

import numpy as np
import torch

#: the checkpoint key under which the states are saved
RNG_STATE_KEY = "solo_coplugin_rng_states"


def capture_rng_states() -> Dict[str, Any]:
    """The current states of torch's (CPU and initialized CUDA), numpy's and Python's generators.

    Returns:
        Dict[str, Any]: states that :func:`restore_rng_states` takes.
    """

    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    version, python_state, gauss_next = random.getstate()
    states = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "python": {"version": version, "state": list(python_state), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: Dict[str, Any]) -> None:
    """Sets every generator back to the states :func:`capture_rng_states` returned.

    Args:
        states (Dict[str, Any]): the captured states.
    """

    torch.set_rng_state(states["torch"])
    numpy_state = states["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    python_state = states["python"]
    random.setstate(
        (python_state["version"], tuple(python_state["state"]), python_state["gauss_next"])
    )
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class RngStatesOnResume:
    """Holds the states loaded from a checkpoint until the next training epoch starts.

    Call :meth:`load` from a checkpoint-loading hook and :meth:`restore_pending` from
    ``on_train_epoch_start``.
    """

    def __init__(self):
        self.pending = None

    def load(self, states: Dict[str, Any]) -> None:
        self.pending = states

    def restore_pending(self) -> None:
        if self.pending is not None:
            restore_rng_states(self.pending)
            self.pending = None
