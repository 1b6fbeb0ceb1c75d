"""core.rng: the states a checkpoint holds, and which of them each process of a resumed run takes
(the 2-process run itself is tests/integration/test_ddp_resume.py)."""

import random

import numpy as np
import pytest
import torch

from solo_coplugin.core import rng


def draws():
    return torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)]


def states_after_seed(seed):
    torch.manual_seed(seed), np.random.seed(seed), random.seed(seed)
    return rng.capture_rng_states()


def test_restoring_replays_the_same_draws():
    states = states_after_seed(1)
    first = draws()
    rng.restore_rng_states(states)
    assert draws() == first
    assert "per_rank" not in states  # one process: nothing to gather


@pytest.fixture
def ddp_checkpoint():
    """A checkpoint of a 2-process run as the first process writes it: its own states on top,
    every process's under per_rank."""

    rank0, rank1 = states_after_seed(0), states_after_seed(1)
    return {**rank0, "per_rank": [rank0, rank1]}


def pretend_ddp(monkeypatch, rank, world_size):
    monkeypatch.setattr(rng, "_distributed", lambda: True)
    monkeypatch.setattr(rng.dist, "get_rank", lambda: rank)
    monkeypatch.setattr(rng.dist, "get_world_size", lambda: world_size)


@pytest.mark.parametrize("rank", [0, 1])
def test_each_process_of_a_resumed_ddp_run_takes_its_own_states(ddp_checkpoint, monkeypatch, rank):
    states_after_seed(rank)
    expected = draws()
    states_after_seed(7)
    pretend_ddp(monkeypatch, rank, world_size=2)
    rng.restore_rng_states(ddp_checkpoint)
    assert draws() == expected


@pytest.mark.parametrize("world_size", [1, 3])
def test_another_number_of_processes_takes_the_first_processs_states(
    ddp_checkpoint, monkeypatch, world_size
):
    states_after_seed(0)
    expected = draws()
    states_after_seed(7)
    if world_size > 1:
        pretend_ddp(monkeypatch, rank=2, world_size=world_size)
    rng.restore_rng_states(ddp_checkpoint)
    assert draws() == expected


def test_the_states_stay_loadable_without_unpickling_code(ddp_checkpoint, tmp_path):
    torch.save({rng.RNG_STATE_KEY: ddp_checkpoint}, tmp_path / "ckpt")
    loaded = torch.load(tmp_path / "ckpt", weights_only=True)[rng.RNG_STATE_KEY]
    rng.restore_rng_states(loaded["per_rank"][1])
    first = draws()
    states_after_seed(1)
    assert draws() == first
