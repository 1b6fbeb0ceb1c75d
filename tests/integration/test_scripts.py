"""solo-learn's own entry points on CO methods: main_pretrain.py (no edit, no --config-path)
and main_linear.py, run as subprocesses from solo-learn's root on a real CIFAR-10 extract."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import solo
import torch
from PIL import Image

from solo_coplugin.backbones import resnet18_cifar, rf_resnet18
from solo_coplugin.eval.checkpoint import load_checkpoint

SOLO_ROOT = Path(solo.__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(
    not (SOLO_ROOT / "main_pretrain.py").exists(),
    reason=f"solo-learn's scripts are not next to its package ({SOLO_ROOT}): install solo-learn "
    "from a checkout (pip install -e) to run these",
)


def main_pretrain_overrides(
    train_path,
    out_dir,
    val_path=None,
    workers=0,
    batch_size=8,
    epochs=1,
    strategy="auto",
    devices="1",
    steps=None,
):
    """The Hydra overrides that make any config a short CPU run of solo-learn's main_pretrain.py
    on custom data, checkpointed under ``out_dir`` (``strategy="ddp"``: gloo on CPU)."""

    return [
        "data.dataset=custom",
        f"data.train_path={train_path}",
        f"data.val_path={val_path}" if val_path else "++data.val_path=null",
        f"data.num_workers={workers}",
        f"optimizer.batch_size={batch_size}",
        f"max_epochs={epochs}",
        "accelerator=cpu",
        f"strategy={strategy}",
        # a string: solo-learn's parse_cfg takes len(devices), Lightning's CPU accelerator an int
        f'devices="{devices}"',
        "sync_batchnorm=False",  # PyTorch's SyncBatchNorm runs on GPUs only
        "precision=32",
        "wandb.enabled=False",
        "checkpoint.enabled=True",
        f"checkpoint.dir={out_dir / 'ckpt'}",
        "auto_resume.enabled=False",
        *([f"++limit_train_batches={steps}"] if steps else []),
        "++limit_val_batches=0",  # validation runs in the method tests and in main_linear below
        "++num_sanity_val_steps=0",
        "++log_every_n_steps=1",
        f"++default_root_dir={out_dir}",
    ]


def cpu_overrides(data, out_dir, steps=3):
    """:func:`main_pretrain_overrides` on ``data``'s train/ and val/ with ``resnet18_cifar``."""

    overrides = main_pretrain_overrides(data / "train", out_dir, data / "val", steps=steps)
    return [*overrides, "backbone.name=resnet18_cifar"]


def run(script, args, timeout=300, env=None):
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.run(
        [sys.executable, script, *args],
        cwd=SOLO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def logged_metrics(out_dir):
    files = list(out_dir.glob("lightning_logs/version_*/metrics.csv"))
    assert len(files) == 1, files
    with open(files[0]) as f:
        return list(csv.DictReader(f))


def pretrain(config_args, data, out_dir, backbone="resnet18_cifar"):
    overrides = cpu_overrides(data, out_dir)
    if backbone is None:  # keep the config's backbone
        overrides = [a for a in overrides if not a.startswith("backbone.name=")]
    result = run("main_pretrain.py", [*config_args, *overrides])
    assert result.returncode == 0, result.stderr[-3000:]
    rows = logged_metrics(out_dir)
    local = [float(r["train_local_loss_step"]) for r in rows if r.get("train_local_loss_step")]
    assert len(local) == 3 and all(v > 0 for v in local)
    ckpts = list((out_dir / "ckpt").rglob("*.ckpt"))
    assert len(ckpts) == 1 and (ckpts[0].parent / "args.json").exists()
    return ckpts[0]


# the other bare config names are composed, built and stepped in-process in test_registration.py
@pytest.mark.parametrize("config", ["co_simclr.yaml", "co_byol.yaml"])
def test_main_pretrain_bare_config_name(config, cifar10_subset, tmp_path):
    args = ["--config-name", config]
    ckpt = pretrain(args, cifar10_subset, tmp_path / "run")
    if config == "co_simclr.yaml":  # resuming a CO checkpoint trains the next epoch
        out_dir = tmp_path / "resumed"
        overrides = [a for a in cpu_overrides(cifar10_subset, out_dir) if a != "max_epochs=1"]
        result = run(
            "main_pretrain.py",
            [
                "--config-name",
                config,
                *overrides,
                "max_epochs=2",
                f'++resume_from_checkpoint="{ckpt}"',
            ],
        )
        assert result.returncode == 0, result.stderr[-3000:]
        epochs = {r["epoch"] for r in logged_metrics(out_dir) if r.get("train_local_loss_step")}
        assert epochs == {"1"}


def linear(ckpt, data, out_dir, backbone_overrides=()):
    """main_linear.py on a CO checkpoint; returns the encoder weights it loads."""

    args = [
        "--config-path",
        "scripts/linear/imagenet-100",
        "--config-name",
        "byol.yaml",
        f'pretrained_feature_extractor="{ckpt}"',
        "pretrain_method=co_byol",
        "data.format=image_folder",
        "++data.augmentations.crop_size=32",
        *[a for a in cpu_overrides(data, out_dir) if not a.startswith("++limit_")],
        *backbone_overrides,
        "++limit_train_batches=2",
        "++limit_val_batches=1",
    ]
    result = run("main_linear.py", args)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = logged_metrics(out_dir)
    assert any(r.get("train_loss_step") or r.get("train_loss") for r in rows)

    # main_linear keeps the checkpoint keys that contain "backbone" and strips "backbone.":
    # the CO encoder must be complete there, and nothing CO-specific may look like a backbone
    state = load_checkpoint(ckpt)["state_dict"]  # a real checkpoint loads with weights_only
    assert any(k.startswith("local_heads.") for k in state)
    assert not any("backbone" in k for k in state if k.startswith("local_heads."))
    return {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}


def test_main_pretrain_with_solo_learn_config_and_main_linear(cifar10_subset, tmp_path):
    ckpt = pretrain(
        ["--config-path", "scripts/pretrain/cifar", "--config-name", "byol.yaml", "method=co_byol"],
        cifar10_subset,
        tmp_path / "pretrain",
    )
    encoder = linear(ckpt, cifar10_subset, tmp_path / "linear")
    backbone = resnet18_cifar()
    backbone.fc = torch.nn.Identity()
    backbone.load_state_dict(encoder, strict=True)


def test_rf_resnet_config_and_main_linear(cifar10_subset, tmp_path):
    ckpt = pretrain(
        ["--config-name", "co_byol_rf.yaml"], cifar10_subset, tmp_path / "pretrain", backbone=None
    )
    rf_kwargs = ["++backbone.kwargs.cifar_stem=True", "++backbone.kwargs.kernel3_blocks=[2,1,0,0]"]
    encoder = linear(
        ckpt, cifar10_subset, tmp_path / "linear", ["backbone.name=rf_resnet18", *rf_kwargs]
    )
    rf_resnet18(cifar_stem=True, kernel3_blocks=[2, 1, 0, 0]).load_state_dict(encoder, strict=True)


def test_custom_dataset_config_through_pkg_config_path(cifar10_subset, tmp_path):
    pretrain(
        [
            "--config-path",
            "pkg://solo_coplugin.configs.custom",
            "--config-name",
            "co_byol.yaml",
            "method_kwargs.proj_hidden_dim=64",
            "method_kwargs.pred_hidden_dim=64",
            "augmentations.0.crop_size=32",
            "augmentations.1.crop_size=32",
        ],
        cifar10_subset,
        tmp_path,
    )


def test_bad_input_fails_at_start_up_with_one_clear_message(cifar10_subset, tmp_path):
    result = run(
        "main_pretrain.py",
        [
            "--config-name",
            "co_byol.yaml",
            "method_kwargs.local_weight=1.5",
            *cpu_overrides(cifar10_subset, tmp_path),
        ],
    )
    assert result.returncode != 0
    assert "method_kwargs.local_weight must be in [0, 1], got 1.5" in result.stderr
    assert not list(tmp_path.glob("lightning_logs"))  # nothing trained


def test_tiny_imagenet_config_trains_the_rf31_network_and_validates_at_64_px(
    cifar10_subset, tmp_path
):
    overrides = [
        a
        for a in cpu_overrides(cifar10_subset, tmp_path)
        if not a.startswith(("backbone.name=", "++limit_val_batches"))
    ]
    result = run(
        "main_pretrain.py",
        [
            "--config-path",
            "pkg://solo_coplugin.configs.tiny-imagenet",
            "--config-name",
            "co_simclr.yaml",
            "++backbone.kwargs.width=8",
            "method_kwargs.proj_hidden_dim=64",
            *overrides,
            "++limit_val_batches=1",
        ],
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = logged_metrics(tmp_path)
    assert any(r.get("val_acc1") for r in rows)  # validated online
    (ckpt,) = (tmp_path / "ckpt").rglob("*.ckpt")
    from solo_coplugin.eval.checkpoint import load_pretrained

    backbone, cfg = load_pretrained(ckpt)
    assert cfg.backbone.kwargs.preset == "tiny_rf31" and cfg.data.val_crop_size == 64
    assert backbone.receptive_field == 31 and backbone.feature_map_size(64) == 4


def test_val_crop_size_validates_custom_data_at_that_size_with_the_training_normalization(
    cifar10_subset, monkeypatch
):
    from omegaconf import OmegaConf
    import solo.data.classification_dataloader as loaders

    from solo_coplugin.validation import ValidationSizeError, use_validation_size

    monkeypatch.setattr(loaders, "prepare_transforms", loaders.prepare_transforms)  # restored
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    cfg = OmegaConf.create(
        {
            "data": {"dataset": "custom", "val_crop_size": 48},
            "augmentations": [{"crop_size": 48, "mean": mean, "std": std}],
        }
    )
    _, solo_val = loaders.prepare_transforms("custom")
    assert use_validation_size(cfg)
    _, val_loader = loaders.prepare_data(
        "custom",
        train_data_path=cifar10_subset / "train",
        val_data_path=cifar10_subset / "val",
        batch_size=4,
        num_workers=0,
    )
    images, _ = next(iter(val_loader))
    assert images.shape == (4, 3, 48, 48)  # solo-learn's own: 224
    assert solo_val(Image.new("RGB", (32, 32))).shape == (3, 224, 224)
    # the training normalization: a mid-grey pixel maps to (0.5 - mean) / std
    grey = Image.new("RGB", (32, 32), (128, 128, 128))
    _, patched_val = loaders.prepare_transforms("custom")
    pixel = patched_val(grey)[:, 0, 0]
    expected = (torch.tensor([128 / 255] * 3) - torch.tensor(mean)) / torch.tensor(std)
    torch.testing.assert_close(pixel, expected)
    assert loaders.prepare_transforms("cifar10")[1] is not None  # other datasets: solo-learn's
    cfg.data.dataset = "cifar10"
    with pytest.raises(ValidationSizeError, match=r"data.val_crop_size=48 only applies to data"):
        use_validation_size(cfg)
    cfg.data.dataset, cfg.data.val_crop_size = "custom", "64"
    with pytest.raises(ValidationSizeError, match=r"data.val_crop_size='64': give the validation"):
        use_validation_size(cfg)
    cfg.data.val_crop_size = None
    assert not use_validation_size(cfg)
