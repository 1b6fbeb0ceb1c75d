"""A resumed run continues the same run: solo-learn's main_pretrain.py trains 2 epochs straight,
keeping each epoch's checkpoint; a second process resumes from the first epoch's checkpoint
(what an interrupted run would hold), by ``resume_from_checkpoint`` or by ``auto_resume``, and
must end with the same weights, bit for bit, and log the same losses (CPU, real images).
Without ``core.resume``, the momentum methods' cases fail: 241 of CO-BYOL's tensors differ."""

import csv
import shutil

import pytest
import torch

from solo_coplugin.bench.step_log import STEP_LOG_ENV
from .test_scripts import cpu_overrides, run

EPOCHS = 2
STEPS_PER_EPOCH = 3


def pretrain(config, data, out_dir, extra=(), env=None, precision="32"):
    overrides = [
        a
        for a in cpu_overrides(data, out_dir, steps=STEPS_PER_EPOCH)
        if not a.startswith(("max_epochs=", "data.val_path="))
    ]
    overrides += [
        f"max_epochs={EPOCHS}",
        "++data.val_path=null",
        "++backbone.kwargs.width=8",
        "++checkpoint.keep_prev=True",
        "data.num_workers=1",  # worker seeds come from the generators too
        f"precision={precision}",
    ]
    keys = {a.split("=")[0].lstrip("+") for a in extra}
    overrides = [a for a in overrides if a.split("=")[0].lstrip("+") not in keys]
    result = run("main_pretrain.py", ["--config-name", config, *overrides, *extra], env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return sorted((out_dir / "ckpt").rglob("*.ckpt"), key=lambda p: p.stat().st_mtime)


def steps(path):
    with open(path) as f:
        return [(int(r["step"]), float(r["loss"])) for r in csv.DictReader(f)]


@pytest.mark.parametrize(
    "method, how, precision",
    [
        ("co_simclr", "resume_from_checkpoint", "32"),  # a CO method saves the generators itself
        ("simclr", "auto_resume", "32"),  # solo-learn's own, through the runner's callbacks
        # the evidence study's setting: bf16-mixed on CPU, the runner's resume; momentum methods
        # also need their EMA coefficient restored (core.resume: solo-learn keeps it in memory)
        ("co_byol", "resume_from_checkpoint", "bf16-mixed"),
        ("byol", "resume_from_checkpoint", "bf16-mixed"),
    ],
)
def test_a_resumed_run_equals_the_run_trained_straight(
    method, how, precision, cifar10_subset, tmp_path
):
    straight_dir, resumed_dir = tmp_path / "straight", tmp_path / "resumed"
    env = {STEP_LOG_ENV: str(tmp_path / "straight.csv")}
    config = "co_byol.yaml" if method.endswith("byol") else "co_simclr.yaml"
    checkpoints = pretrain(
        config, cifar10_subset, straight_dir, [f"method={method}"], env, precision
    )
    first_epoch, last = checkpoints[0], checkpoints[-1]
    assert torch.load(first_epoch, weights_only=False)["global_step"] == STEPS_PER_EPOCH

    env = {STEP_LOG_ENV: str(tmp_path / "resumed.csv")}
    if how == "auto_resume":
        # an interrupted run's folder: its args.json and its first epoch's checkpoint only
        interrupted = resumed_dir / "ckpt" / method / first_epoch.parent.name
        interrupted.mkdir(parents=True)
        shutil.copy(first_epoch.parent / "args.json", interrupted)
        shutil.copy(first_epoch, interrupted)
        resume = ["auto_resume.enabled=True"]
    else:
        resume = [f"++resume_from_checkpoint='{first_epoch}'"]
    resumed = pretrain(
        config, cifar10_subset, resumed_dir, [f"method={method}", *resume], env, precision
    )[-1]

    expected = torch.load(last, weights_only=False)
    got = torch.load(resumed, weights_only=False)
    assert got["global_step"] == expected["global_step"] == EPOCHS * STEPS_PER_EPOCH
    assert got["state_dict"].keys() == expected["state_dict"].keys()
    different = [
        name
        for name, value in expected["state_dict"].items()
        if not torch.equal(value, got["state_dict"][name])
    ]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"
    straight_losses = steps(tmp_path / "straight.csv")[STEPS_PER_EPOCH:]
    assert steps(tmp_path / "resumed.csv") == straight_losses
