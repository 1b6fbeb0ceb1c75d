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

Under DDP only the first process writes the checkpoint, but every process's generators matter:
they advance by different amounts when the processes' images differ in size (``RandomResizedCrop``
draws again until a crop fits), so restoring the first process's states everywhere sends the
others down another run (measured: 2 processes on CPU, 235 of CO-BYOL's tensors differ after one
resumed epoch). The states of every process are therefore gathered into the checkpoint (under
``per_rank``) and each process restores its own, when the resumed run has as many processes.

Pure torch (plus numpy's and Python's generators, which augmentation code may use); the states
are stored as tensors and plain Python values, so checkpoints stay loadable with
``torch.load(weights_only=True)``.
"""

import random
from typing import Any, Dict

import numpy as np
import torch
import torch.distributed as dist

#: the checkpoint key under which the states are saved
RNG_STATE_KEY = "solo_coplugin_rng_states"


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def capture_rng_states() -> Dict[str, Any]:
    """The current states of torch's (CPU and initialized CUDA), numpy's and Python's generators.

    Under DDP it gathers every process's states (a collective: every process must call it, as
    Lightning's ``save_checkpoint`` does, which calls the checkpoint hooks on every process).

    Returns:
        Dict[str, Any]: states that :func:`restore_rng_states` takes: this process's, and under
        DDP every process's under ``per_rank``, in rank order.
    """

    states = _this_process_states()
    if _distributed():
        per_rank = [None] * dist.get_world_size()
        dist.all_gather_object(per_rank, states)
        states["per_rank"] = per_rank
    return states


def _this_process_states() -> Dict[str, Any]:
    """This process's generators' states, as tensors and plain Python values."""

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

    A process of a DDP run takes its own rank's states when the checkpoint holds one per process
    of a run of the same size; otherwise (a checkpoint from one process, or from a run with
    another number of processes, which splits the data differently anyway) the states of the
    process that wrote it.

    Args:
        states (Dict[str, Any]): the captured states.
    """

    per_rank = states.get("per_rank")
    if per_rank is not None and _distributed() and len(per_rank) == dist.get_world_size():
        states = per_rank[dist.get_rank()]
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
