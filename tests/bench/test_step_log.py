import csv
from types import SimpleNamespace

import torch

from solo_coplugin.bench.step_log import (
    STEP_LOG_ENV,
    MomentumTauOnResume,
    RngStatesInCheckpoint,
    StepLog,
    callbacks,
)


def fake_trainer(step, metrics):
    return SimpleNamespace(
        global_rank=0, global_step=step, current_epoch=0, callback_metrics=metrics
    )


def test_no_callback_unless_the_runner_asks(monkeypatch, tmp_path):
    monkeypatch.delenv(STEP_LOG_ENV, raising=False)
    assert callbacks() == []
    monkeypatch.setenv(STEP_LOG_ENV, str(tmp_path / "steps.csv"))
    step_log, rng_states, momentum_tau = callbacks()
    assert isinstance(step_log, StepLog) and step_log.path == str(tmp_path / "steps.csv")
    assert isinstance(rng_states, RngStatesInCheckpoint)
    assert isinstance(momentum_tau, MomentumTauOnResume)


def test_the_rng_states_callback_restores_every_generator(tmp_path):
    import random

    import numpy as np

    callback = RngStatesInCheckpoint()
    # through a save/load round trip that refuses anything but tensors and plain values
    path = tmp_path / "states.pt"
    torch.save(callback.state_dict(), path)
    state = torch.load(path, weights_only=True)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.rand(5), np.random.rand(7), random.random()  # the generators move on
    callback.load_state_dict(state)  # on resume, before Lightning's throwaway iterator ...
    callback.on_train_epoch_start(None, None)  # ... restored when the epoch starts
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], again[0])
    assert np.array_equal(expected[1], again[1]) and expected[2] == again[2]


def test_one_row_per_step_and_a_resumed_run_appends(tmp_path):
    path = tmp_path / "steps.csv"
    metrics = {
        "train_nce_loss": torch.tensor(3.0),
        "train_nce_loss_step": torch.tensor(3.0),  # Lightning's on_step copy: skipped
        "val_acc1": torch.tensor(10.0),  # not a training scalar: skipped
    }
    log = StepLog(str(path))
    log.on_train_batch_end(fake_trainer(1, metrics), None, {"loss": torch.tensor(4.0)}, None, 0)
    log.on_train_batch_end(fake_trainer(2, metrics), None, torch.tensor(3.5), None, 1)
    StepLog(str(path)).on_train_batch_end(fake_trainer(3, {}), None, torch.tensor(3.0), None, 0)
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["step", "epoch", "seconds", "loss", "train_nce_loss"]
    assert [(r["step"], r["loss"]) for r in rows] == [("1", "4.0"), ("2", "3.5"), ("3", "3.0")]
    assert rows[2]["train_nce_loss"] == ""
