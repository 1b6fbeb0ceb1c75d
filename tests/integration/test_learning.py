"""Twenty CO-BYOL steps on real CIFAR-10 images lower the local loss."""

import torch
from solo.data.pretrain_dataloader import (
    FullTransformPipeline,
    NCropAugmentation,
    build_transform_pipeline,
    dataset_with_index,
)
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder

from solo_coplugin.core import co_byol_local_loss
from solo_coplugin.methods import CoBYOL

from .utils import small_image_co_byol_cfg

STEPS = 20


def local_loss(model, views):
    with torch.no_grad():
        local_p = [model(x)["local_p"] for x in views]
        targets = [model.momentum_forward(x)["z"] for x in views]
        return co_byol_local_loss(local_p, targets).item()


def test_co_byol_lowers_the_local_loss_on_real_images(cifar10_subset):
    torch.manual_seed(0)
    cfg = small_image_co_byol_cfg(batch_size=16)
    model = CoBYOL(cfg)

    transform = FullTransformPipeline(
        [NCropAugmentation(build_transform_pipeline("custom", cfg.augmentations[0]), 2)]
    )
    data = dataset_with_index(ImageFolder)(cifar10_subset / "train", transform=transform)
    loader = DataLoader(data, batch_size=16, shuffle=True, drop_last=True)
    fixed_views = next(iter(loader))[1]

    before = local_loss(model, fixed_views)
    optimizer = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=0.05, momentum=0.9
    )
    step = 0
    while step < STEPS:
        for batch in loader:
            optimizer.zero_grad()
            model.training_step(batch, step).backward()
            optimizer.step()
            for online, momentum in model.momentum_pairs:
                model.momentum_updater.update(online, momentum)
            step += 1
            if step == STEPS:
                break
    after = local_loss(model, fixed_views)
    print(f"CO-BYOL local loss on a fixed real batch: {before:.4f} -> {after:.4f}")
    assert after < 0.7 * before
