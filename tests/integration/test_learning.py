"""Twenty CO-BYOL steps on real CIFAR-10 images lower the local loss, and so do a few steps of
each other CO variant."""

import pytest
import torch
from solo.data.pretrain_dataloader import (
    FullTransformPipeline,
    NCropAugmentation,
    build_transform_pipeline,
    dataset_with_index,
)
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder

from solo_coplugin.methods import METHODS, CoBYOL

from .utils import (
    SMALL_HEADS,
    augmentation_cfg,
    co_byol_local_loss_before_and_after,
    gen_base_cfg,
    small_image_co_byol_cfg,
)

STEPS = 20


def test_co_byol_lowers_the_local_loss_on_real_images(cifar10_subset):
    torch.manual_seed(0)
    model = CoBYOL(small_image_co_byol_cfg(batch_size=16))
    before, after = co_byol_local_loss_before_and_after(model, cifar10_subset / "train", STEPS)
    print(f"CO-BYOL local loss on a fixed real batch: {before:.4f} -> {after:.4f}")
    assert after < 0.7 * before


# the other CO variants: a few steps on one batch of 4 real images, kept cheap with a small
# ResNet-18 input (64 px, imagenet stem: a 2x2 map); Adam, so one learning rate fits losses of
# very different scales (VIbCReg's is ~100). SimSiam's loss is a negative cosine, down to -1.
FEW_STEPS = 8
LOSS_MINIMUM = {"co_simsiam": -1.0, "co_nnsiam": -1.0}


def evaluate_local_loss(model, batch):
    """The model's local loss on ``batch`` with its current targets, queue or center."""

    views = batch[1]
    with torch.no_grad():
        outs = [model(x) for x in views]
        target = model.global_target
        if target.startswith("momentum_"):
            key = target[len("momentum_") :]
            targets = [model.momentum_forward(x)[key] for x in views]
        else:
            targets = [out[target] for out in outs]
        last_key = list(model.local_head_names)[-1]
        local = [out[f"local_{last_key}"] for out in outs]
        return model.local_loss(local, targets, batch, model.state_before_step()).item()


@pytest.mark.parametrize(
    "name, base, momentum",
    [
        ("co_simsiam", "simsiam", False),
        ("co_nnbyol", "nnbyol", True),
        ("co_nnclr", "nnclr", False),
        ("co_nnsiam", "nnsiam", False),
        ("co_ressl", "ressl", True),
        ("co_vibcreg", "vibcreg", False),
    ],
)
def test_a_few_steps_lower_the_local_loss(name, base, momentum, cifar10_subset):
    torch.manual_seed(0)
    cfg = gen_base_cfg(name, batch_size=4, dataset="custom", momentum=momentum, **SMALL_HEADS[base])
    cfg.augmentations = augmentation_cfg(64)
    model = METHODS[name](cfg)
    transform = FullTransformPipeline(
        [NCropAugmentation(build_transform_pipeline("custom", cfg.augmentations[0]), 2)]
    )
    data = dataset_with_index(ImageFolder)(cifar10_subset / "train", transform=transform)
    batch = next(iter(DataLoader(data, batch_size=4, shuffle=True)))

    before = evaluate_local_loss(model, batch)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    for step in range(FEW_STEPS):
        optimizer.zero_grad()
        model.training_step(batch, step).backward()
        optimizer.step()
        if momentum:
            for online, momentum_module in model.momentum_pairs:
                model.momentum_updater.update(online, momentum_module)
    after = evaluate_local_loss(model, batch)
    print(f"{name} local loss on the batch: {before:.4f} -> {after:.4f}")
    minimum = LOSS_MINIMUM.get(name, 0.0)
    assert after - minimum < 0.9 * (before - minimum)
