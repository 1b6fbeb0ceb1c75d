import csv
from types import SimpleNamespace

import torch

from solo_coplugin.bench.step_log import STEP_LOG_ENV, StepLog, callbacks


def fake_trainer(step, metrics):
    return SimpleNamespace(
        global_rank=0, global_step=step, current_epoch=0, callback_metrics=metrics
    )


def test_no_callback_unless_the_runner_asks(monkeypatch, tmp_path):
    monkeypatch.delenv(STEP_LOG_ENV, raising=False)
    assert callbacks() == []
    monkeypatch.setenv(STEP_LOG_ENV, str(tmp_path / "steps.csv"))
    (callback,) = callbacks()
    assert isinstance(callback, StepLog) and callback.path == str(tmp_path / "steps.csv")


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
