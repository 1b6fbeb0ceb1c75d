"""A 2-process DDP run resumed from its first epoch's checkpoint continues the same run:
solo-learn's ``main_pretrain.py`` (Lightning's DDP strategy, 2 processes on CPU, gloo) trains a CO
method for 2 epochs straight, keeping each epoch's checkpoint; a second 2-process launch resumes
from the first epoch's checkpoint and must end with the same weights, bit for bit, and log the
same losses (every ``train_*`` scalar of every step, averaged over the two processes: the
global and local losses, ...). That covers both processes: DDP keeps their weights equal only while both see the
same data order and augmentations as in the run trained straight.

The images have several sizes and the data is read without workers, so each process's random
generators advance by a different amount in an epoch (``RandomResizedCrop`` draws again until a
crop fits its image). A checkpoint that restored the first process's generators on both (as before
``core.rng`` saved every process's) fails here: 235 of CO-BYOL's tensors differed, by up to 0.03.
With 32 px images only, the processes' generators stay equal and that mistake passed.
"""

import csv

import pytest
import torch
from PIL import Image

from solo_coplugin.core.rng import RNG_STATE_KEY
from .test_ddp import (
    LIGHTNING_LAUNCHES,
    PER_DEVICE_BATCH,
    SOLO_ROOT,
    needs_main_pretrain,
    run_in_own_sessions,
    small_overrides,
)
from .test_scripts import main_pretrain_overrides

CONFIG = "co_byol"  # a momentum method: its EMA coefficient is restored too (core.resume)
EPOCHS = 2
STEPS_PER_EPOCH = 2
#: 16 images, 4 per process and step: STEPS_PER_EPOCH steps an epoch
IMAGES_PER_CLASS, CLASSES = 8, 2
#: image sides; RandomResizedCrop's draws per image depend on its aspect ratio
SIZES = ((40, 24), (32, 32), (24, 48), (56, 32))


@pytest.fixture(scope="module")
def mixed_size_train_set(cifar10_subset, tmp_path_factory):
    """16 real CIFAR-10 images of 2 classes, resized to several shapes, in ImageFolder layout."""

    root = tmp_path_factory.mktemp("ddp_resume_images")
    classes = sorted(p for p in (cifar10_subset / "train").iterdir() if p.is_dir())[:CLASSES]
    for folder in classes:
        (root / folder.name).mkdir()
        for i, image in enumerate(sorted(folder.iterdir())[:IMAGES_PER_CLASS]):
            with Image.open(image) as picture:
                picture.convert("RGB").resize(SIZES[i % len(SIZES)]).save(
                    root / folder.name / image.name
                )
    return root


def pretrain_with_ddp(config, train_dir, out_dir, extra=()):
    """A 2-process main_pretrain.py run of ``config``; returns its checkpoints, oldest first, and
    the ``train_*`` scalars it logged at each step (averaged over the processes)."""

    _, _, overrides = small_overrides(config)
    args = [
        "main_pretrain.py",
        "--config-name",
        f"{config}.yaml",
        *overrides,
        *main_pretrain_overrides(
            train_dir,
            out_dir,
            batch_size=PER_DEVICE_BATCH,
            epochs=EPOCHS,
            strategy="ddp",
            devices="2",
        ),
        "++checkpoint.keep_prev=True",
        *extra,
    ]
    out_dir.mkdir(parents=True)
    run_in_own_sessions([[*launcher, *args] for launcher in LIGHTNING_LAUNCHES], out_dir, SOLO_ROOT)
    checkpoints = sorted((out_dir / "ckpt").rglob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    (metrics,) = out_dir.glob("lightning_logs/version_*/metrics.csv")
    with open(metrics) as f:
        steps = [
            {k: v for k, v in row.items() if k.startswith("train_") and k.endswith("_step") and v}
            for row in csv.DictReader(f)
        ]
    return checkpoints, [row for row in steps if row]


@needs_main_pretrain
def test_a_resumed_ddp_run_equals_the_run_trained_straight(mixed_size_train_set, tmp_path):
    straight, straight_steps = pretrain_with_ddp(
        CONFIG, mixed_size_train_set, tmp_path / "straight"
    )
    first_epoch, last = straight
    saved = torch.load(first_epoch, weights_only=True)
    assert saved["global_step"] == STEPS_PER_EPOCH
    # what makes the case: after an epoch on their own images the processes' generators differ
    per_rank = saved[RNG_STATE_KEY]["per_rank"]
    assert len(per_rank) == 2 and not torch.equal(per_rank[0]["torch"], per_rank[1]["torch"])

    resumed, resumed_steps = pretrain_with_ddp(
        CONFIG,
        mixed_size_train_set,
        tmp_path / "resumed",
        [f'++resume_from_checkpoint="{first_epoch}"'],
    )
    expected = torch.load(last, weights_only=True)
    got = torch.load(resumed[-1], weights_only=True)
    assert got["global_step"] == expected["global_step"] == EPOCHS * STEPS_PER_EPOCH
    expected, got = expected["state_dict"], got["state_dict"]
    assert got.keys() == expected.keys()
    different = [name for name, value in expected.items() if not torch.equal(value, got[name])]
    worst = max(
        ((expected[n].double() - got[n].double()).abs().max().item() for n in different),
        default=0.0,
    )
    assert not different, f"{len(different)} tensors differ (max abs {worst:.3g}): {different[:3]}"
    assert len(resumed_steps) == STEPS_PER_EPOCH and "train_local_loss_step" in resumed_steps[0]
    assert resumed_steps == straight_steps[STEPS_PER_EPOCH:]
