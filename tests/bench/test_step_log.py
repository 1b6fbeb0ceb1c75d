"""The runner's callbacks, and the callbacks factory that Lightning loads in every program of an
environment where this package is installed: a plain Trainer must not import solo-learn, timm or
the CO methods because of it."""

import csv
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from solo_coplugin.bench.callbacks import MomentumTauOnResume, RngStatesInCheckpoint, StepLog
from solo_coplugin.bench.step_log import STEP_LOG_ENV, callbacks

ENTRY_POINT = "solo_coplugin.bench.step_log:callbacks"

# a Lightning program that knows nothing of solo-learn or of this package
PLAIN_TRAINER = """
import json, sys

import lightning.pytorch as pl

trainer = pl.Trainer(
    accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False
)
print("REPORT " + json.dumps({
    "callbacks": [type(c).__name__ for c in trainer.callbacks],
    "modules": sorted(sys.modules),
}))
"""


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


def plain_trainer(tmp_path, **env):
    """Runs PLAIN_TRAINER in a fresh interpreter; returns its report."""

    environment = {k: v for k, v in os.environ.items() if k != STEP_LOG_ENV}
    result = subprocess.run(
        [sys.executable, "-c", PLAIN_TRAINER],
        capture_output=True,
        text=True,
        env={**environment, **env},
        cwd=tmp_path,  # only the installed package is importable, as for any other program
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("REPORT ")]
    return json.loads(line[len("REPORT ") :])


def heavy(modules):
    """solo-learn, timm and this package's solo-learn side, among the imported modules."""

    return [
        m
        for m in modules
        if m.split(".")[0] in ("solo", "timm")
        or m.startswith(("solo_coplugin.methods", "solo_coplugin.backbones", "solo_coplugin.core"))
    ]


@pytest.fixture
def installed(tmp_path):
    # asked from where the trainers run: from the checkout, the metadata an editable install in
    # another venv left in it (solo_coplugin.egg-info) would pass for an installed package
    query = (
        "import importlib.metadata as m; "
        "print([e.value for e in m.entry_points(group='lightning.pytorch.callbacks_factory')])"
    )
    result = subprocess.run(
        [sys.executable, "-c", query], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    if ENTRY_POINT not in result.stdout:
        pytest.skip("solo-coplugin is not installed here (pip install -e .): no entry point")


def test_a_plain_trainer_imports_neither_solo_learn_nor_timm_nor_the_methods(installed, tmp_path):
    report = plain_trainer(tmp_path)
    assert "solo_coplugin.bench.step_log" in report["modules"]  # Lightning ran our factory...
    assert heavy(report["modules"]) == []  # ...which imported nothing heavy
    assert not {"StepLog", "RngStatesInCheckpoint"} & set(report["callbacks"])


def test_the_runner_still_gets_its_callbacks_from_a_trainer(installed, tmp_path):
    report = plain_trainer(tmp_path, **{STEP_LOG_ENV: str(tmp_path / "steps.csv")})
    assert {"StepLog", "RngStatesInCheckpoint", "MomentumTauOnResume"} <= set(report["callbacks"])
    # the callbacks need the pure-torch core, still not solo-learn (main_pretrain.py imports it)
    assert [m for m in heavy(report["modules"]) if not m.startswith("solo_coplugin.core")] == []
