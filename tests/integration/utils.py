"""Test helpers after solo-learn's tests/methods/utils.py (not installed with solo-learn)."""

import inspect

import torch
from lightning.pytorch import Trainer
from omegaconf import OmegaConf
from torch.utils.data import DataLoader
from torchvision.datasets import FakeData, ImageFolder

from solo.data.pretrain_dataloader import (
    FullTransformPipeline,
    NCropAugmentation,
    build_transform_pipeline,
    dataset_with_index,
    prepare_dataloader,
)

from solo_coplugin.core import co_byol_local_loss

SMALL_HEADS = {
    "byol": {"proj_hidden_dim": 64, "proj_output_dim": 32, "pred_hidden_dim": 64},
    "simclr": {"proj_hidden_dim": 64, "proj_output_dim": 32, "temperature": 0.2},
    "mocov3": {
        "proj_hidden_dim": 64,
        "proj_output_dim": 32,
        "pred_hidden_dim": 64,
        "temperature": 0.2,
    },
    "mocov2plus": {
        "proj_hidden_dim": 64,
        "proj_output_dim": 32,
        "temperature": 0.2,
        "queue_size": 16,
    },
    "vicreg": {"proj_hidden_dim": 64, "proj_output_dim": 32},
    "barlow_twins": {"proj_hidden_dim": 64, "proj_output_dim": 32},
    "dino": {
        "proj_hidden_dim": 64,
        "proj_output_dim": 16,
        "num_prototypes": 32,
        "warmup_teacher_temperature_epochs": 0,
    },
    "simsiam": {"proj_hidden_dim": 64, "proj_output_dim": 32, "pred_hidden_dim": 64},
    "nnbyol": {
        "proj_hidden_dim": 64,
        "proj_output_dim": 32,
        "pred_hidden_dim": 64,
        "queue_size": 16,
    },
    "nnclr": {
        "proj_hidden_dim": 64,
        "proj_output_dim": 32,
        "pred_hidden_dim": 64,
        "temperature": 0.2,
        "queue_size": 16,
    },
    "nnsiam": {
        "proj_hidden_dim": 64,
        "proj_output_dim": 32,
        "pred_hidden_dim": 64,
        "queue_size": 16,
    },
    "ressl": {
        "proj_hidden_dim": 64,
        "proj_output_dim": 32,
        "temperature_q": 0.1,
        "temperature_k": 0.04,
        "queue_size": 16,
    },
    # iternorm: the local projector ends in its own IterNorm
    "vibcreg": {"proj_hidden_dim": 64, "proj_output_dim": 32, "iternorm": True},
}


def gen_base_cfg(
    method,
    batch_size=4,
    num_classes=10,
    dataset="cifar10",
    backbone="resnet18",
    momentum=False,
    **method_kwargs,
):
    cfg = {
        "name": "test",
        "method": method,
        "backbone": {"name": backbone},
        "method_kwargs": dict(method_kwargs),
        "data": {
            "dataset": dataset,
            "train_path": ".",
            "val_path": ".",
            "format": "image_folder",
            "num_workers": 0,
            "num_large_crops": 2,
            "num_small_crops": 0,
            "num_classes": num_classes,
        },
        "optimizer": {
            "name": "lars",
            "batch_size": batch_size,
            "lr": 0.3,
            "classifier_lr": 0.1,
            "weight_decay": 1e-5,
            "kwargs": {"momentum": 0.9},
        },
        "scheduler": {"name": "warmup_cosine"},
        "checkpoint": {"enabled": False},
        "auto_resume": {"enabled": False},
        "max_epochs": 1,
        "devices": 1,
        "accelerator": "cpu",
        "num_nodes": 1,
    }
    if momentum:
        cfg["momentum"] = {"base_tau": 0.99, "final_tau": 1.0}
    cfg = OmegaConf.create(cfg)
    OmegaConf.set_struct(cfg, False)
    return cfg


def small_image_co_byol_cfg(
    backbone="resnet18_cifar", crop_size=32, batch_size=4, dataset="custom", **co_kwargs
):
    """A CO-BYOL cfg with small heads for 32 px images, with augmentations (so the start-up
    feature-map check runs)."""

    cfg = gen_base_cfg(
        "co_byol",
        batch_size=batch_size,
        dataset=dataset,
        backbone=backbone,
        momentum=True,
        **SMALL_HEADS["byol"],
        **co_kwargs,
    )
    cfg.augmentations = augmentation_cfg(crop_size)
    return cfg


def gen_trainer(cfg, **overrides):
    valid = inspect.signature(Trainer.__init__).parameters
    kwargs = {k: v for k, v in OmegaConf.to_container(cfg).items() if k in valid}
    kwargs.update(
        {
            "logger": False,
            "enable_checkpointing": False,
            "fast_dev_run": True,
            "enable_progress_bar": False,
            "enable_model_summary": False,
        }
    )
    kwargs.update(overrides)
    return Trainer(**kwargs)


def gen_batch(batch_size, size=32, num_classes=10):
    x1 = torch.randn(batch_size, 3, size, size)
    x2 = torch.randn(batch_size, 3, size, size)
    return [torch.arange(batch_size), [x1, x2], torch.randint(0, num_classes, (batch_size,))]


def augmentation_cfg(crop_size=32, num_crops=2):
    return OmegaConf.create(
        [
            {
                "rrc": {"enabled": True, "crop_min_scale": 0.08, "crop_max_scale": 1.0},
                "color_jitter": {
                    "prob": 0.8,
                    "brightness": 0.4,
                    "contrast": 0.4,
                    "saturation": 0.2,
                    "hue": 0.1,
                },
                "grayscale": {"prob": 0.2},
                "gaussian_blur": {"prob": 0.0},
                "solarization": {"prob": 0.0},
                "equalization": {"prob": 0.0},
                "horizontal_flip": {"prob": 0.5},
                "crop_size": crop_size,
                "num_crops": num_crops,
            }
        ]
    )


def prepare_dummy_dataloaders(dataset, num_classes=10, batch_size=4, size=32):
    """FakeData through solo-learn's real pretraining transform pipeline, as solo's tests do."""

    pipelines = [build_transform_pipeline(dataset, aug) for aug in augmentation_cfg(size)]
    transform = FullTransformPipeline([NCropAugmentation(pipelines[0], 2)])
    train = dataset_with_index(FakeData)(
        image_size=(3, size, size),
        num_classes=num_classes,
        transform=transform,
        size=batch_size * 2,
    )
    train_loader = prepare_dataloader(train, batch_size=batch_size, num_workers=0)
    from torchvision import transforms

    val = FakeData(
        image_size=(3, size, size),
        num_classes=num_classes,
        transform=transforms.ToTensor(),
        size=batch_size * 2,
    )
    val_loader = DataLoader(val, batch_size=batch_size, num_workers=0)
    return train_loader, val_loader


def co_byol_local_loss_before_and_after(model, images, steps, batch_size=16):
    """Trains CO-BYOL ``model`` for ``steps`` SGD steps on the real images of the ImageFolder
    ``images`` (its config's augmentations, momentum updates included) and returns its local loss
    on one fixed batch of views before and after."""

    def local_loss(views):
        with torch.no_grad():
            local_p = [model(x)["local_p"] for x in views]
            targets = [model.momentum_forward(x)["z"] for x in views]
            return co_byol_local_loss(local_p, targets).item()

    pipeline = build_transform_pipeline("custom", model.cfg.augmentations[0])
    transform = FullTransformPipeline([NCropAugmentation(pipeline, 2)])
    data = dataset_with_index(ImageFolder)(images, transform=transform)
    loader = DataLoader(data, batch_size=batch_size, shuffle=True, drop_last=True)
    fixed_views = next(iter(loader))[1]
    before = local_loss(fixed_views)
    optimizer = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=0.05, momentum=0.9
    )
    step = 0
    while step < steps:
        for batch in loader:
            optimizer.zero_grad()
            model.training_step(batch, step).backward()
            optimizer.step()
            for online, momentum in model.momentum_pairs:
                model.momentum_updater.update(online, momentum)
            step += 1
            if step == steps:
                break
    return before, local_loss(fixed_views)
