"""Checkpoints are read with ``torch.load(weights_only=True)``: a pickle that would run code is
refused with a message naming the file, and its code never runs."""

import pathlib

import pytest
import torch

from solo_coplugin.bench.runner import checkpoint_step
from solo_coplugin.eval.checkpoint import UnsafeCheckpointError, load_checkpoint


class RunsCodeWhenUnpickled:
    """Unpickling this calls ``Path.touch(marker)``: any function could stand in its place."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def malicious_checkpoint(folder: pathlib.Path) -> pathlib.Path:
    checkpoint = folder / "model-ep=0.ckpt"
    payload = RunsCodeWhenUnpickled(folder / "code-ran")
    torch.save({"state_dict": {"w": torch.zeros(1)}, "global_step": 3, "x": payload}, checkpoint)
    return checkpoint


def test_a_checkpoint_whose_pickle_would_run_code_is_refused(tmp_path):
    checkpoint = malicious_checkpoint(tmp_path)
    for load in (load_checkpoint, checkpoint_step):  # evaluation/export, benchmark resume
        with pytest.raises(UnsafeCheckpointError) as error:
            load(checkpoint)
        message = str(error.value)
        assert message.startswith(f"Refusing to load {checkpoint}: its pickle asks for `")
        assert "could run code" in message and "Fix: " in message
    assert not (tmp_path / "code-ran").exists()

    # the file is a real attack: an unsafe load runs its code
    torch.load(checkpoint, weights_only=False)
    assert (tmp_path / "code-ran").exists()


def test_a_checkpoint_of_tensors_and_plain_values_loads(tmp_path):
    state = {"state_dict": {"w": torch.arange(3.0)}, "global_step": 7, "loops": {"a": [1, 2.5]}}
    torch.save(state, tmp_path / "plain.ckpt")
    loaded = load_checkpoint(tmp_path / "plain.ckpt")
    assert torch.equal(loaded["state_dict"]["w"], state["state_dict"]["w"])
    assert checkpoint_step(tmp_path / "plain.ckpt") == 7
