"""solo-co-export: a checkpoint's backbone as a plain state_dict that rebuilds without solo-learn,
with the checkpoint's features on real images; and no network use while training or exporting."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from solo.utils.checkpointer import Checkpointer
from torchvision import datasets, transforms

from solo_coplugin import export
from solo_coplugin.eval.checkpoint import UnsafeCheckpointError, load_method
from solo_coplugin.methods import CoBYOL

from .utils import SMALL_HEADS, augmentation_cfg, gen_base_cfg, gen_trainer
from .utils import prepare_dummy_dataloaders

REPO_ROOT = Path(__file__).resolve().parents[2]
# backbone name, backbone kwargs, dataset (cifar10: solo-learn replaces torchvision's stem)
CASES = {
    "resnet18_cifar": ("resnet18_cifar", {"width": 8}, "custom"),
    "torchvision_resnet18": ("resnet18", {}, "cifar10"),
}
SOLO_CIFAR10_MEAN_STD = ([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616])
IMAGENET_MEAN_STD = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


NETWORK_ATTEMPTS = []


def _refuse_network(*args, **kwargs):
    NETWORK_ATTEMPTS.append(args)  # recorded: a caller could swallow the error
    raise OSError("network is unreachable (refused by the test)")


def save_like_solo_learn(cfg, model, run_dir):
    """A checkpoint and args.json as solo-learn's Checkpointer writes them, without training."""

    run_dir.mkdir(parents=True)
    (run_dir / "args.json").write_text(json.dumps(OmegaConf.to_container(cfg)))
    checkpoint = {"epoch": 0, "global_step": 0, "state_dict": model.state_dict()}
    torch.save(checkpoint, run_dir / f"{cfg.name}-ep=0.ckpt")


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """CO-BYOL checkpoints, exported; all of it with socket connections and name lookups refused.

    The small-image ResNet trains a step, is saved by solo-learn's Checkpointer in a Trainer and
    exported with its local heads; torchvision's ResNet-18 (full width, slower) is saved the same
    way without training.
    """

    root = tmp_path_factory.mktemp("export")
    results = {}
    with pytest.MonkeyPatch.context() as patch:
        for attribute in ("connect", "connect_ex"):
            patch.setattr(socket.socket, attribute, _refuse_network)
        patch.setattr(socket, "create_connection", _refuse_network)
        patch.setattr(socket, "getaddrinfo", _refuse_network)
        for case, (backbone, kwargs, dataset) in CASES.items():
            torch.manual_seed(0)
            cfg = gen_base_cfg(
                "co_byol", dataset=dataset, backbone=backbone, momentum=True, **SMALL_HEADS["byol"]
            )
            cfg.backbone.kwargs = kwargs
            cfg.augmentations = augmentation_cfg(32)
            model = CoBYOL(cfg)
            if case == "resnet18_cifar":
                checkpointer = Checkpointer(cfg, logdir=root / case / "trained_models")
                trainer = gen_trainer(cfg, callbacks=[checkpointer], limit_val_batches=0)
                trainer.fit(model, *prepare_dummy_dataloaders(dataset))
                (run_dir,) = (root / case / "trained_models").iterdir()
            else:
                run_dir = root / case / "trained_models" / "run"
                save_like_solo_learn(cfg, model, run_dir)
            local_heads = ["--local-heads"] if case == "resnet18_cifar" else []
            export.main([str(run_dir), str(root / case / "exported"), *local_heads])
            results[case] = (run_dir, root / case / "exported")
    return results


def test_training_saving_and_exporting_never_reach_the_network(exports):
    assert len(exports) == len(CASES) and NETWORK_ATTEMPTS == []


def real_images(cifar10_subset, mean, std, count=8):
    normalize = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize(mean=mean, std=std)]
    )
    data = datasets.ImageFolder(cifar10_subset / "val", transform=normalize)
    step = len(data) // count  # one image of several classes
    return torch.stack([data[i * step][0] for i in range(count)])


def case_mean_std(case):
    return SOLO_CIFAR10_MEAN_STD if CASES[case][2] == "cifar10" else IMAGENET_MEAN_STD


@pytest.fixture(scope="module")
def checkpoint_features(exports, cifar10_subset):
    """Per case: real images, normalized as in training, and the checkpoint's backbone features
    of them (the method rebuilt from the checkpoint as solo-co-eval does)."""

    features = {}
    for case, (run_dir, _) in exports.items():
        images = real_images(cifar10_subset, *case_mean_std(case))
        model, _ = load_method(run_dir)
        with torch.no_grad():
            features[case] = (images, model.backbone(images))
    return features


@pytest.mark.parametrize("case", list(CASES))
def test_exported_backbone_has_the_checkpoints_features(
    case, exports, checkpoint_features, monkeypatch
):
    backbone, kwargs, dataset = CASES[case]
    run_dir, out_dir = exports[case]
    metadata = json.loads((out_dir / "backbone.json").read_text())
    assert metadata["method"] == "co_byol"
    assert metadata["global_step"] == (1 if case == "resnet18_cifar" else 0)
    assert metadata["backbone"] == {"name": backbone, "kwargs": kwargs}
    mean, std = case_mean_std(case)
    assert metadata["input"]["crop_size"] == 32
    assert metadata["input"]["mean"] == mean and metadata["input"]["std"] == std
    replaced = set(metadata["architecture"]["replace"])
    if dataset == "cifar10":  # solo-learn's CIFAR stem on torchvision's ResNet
        assert metadata["architecture"]["constructor"] == "torchvision.models.resnet18"
        assert replaced == {"fc", "conv1", "maxpool"}
    else:  # the small-image ResNet has that stem already
        assert replaced == {"fc"}

    # the rebuild snippet from the JSON, run as a user would, next to backbone.pt
    monkeypatch.chdir(out_dir)
    namespace = {}
    exec(metadata["architecture"]["python"], namespace)
    rebuilt = namespace["model"].eval()
    state = torch.load(out_dir / "backbone.pt", weights_only=True)
    assert all(isinstance(value, torch.Tensor) for value in state.values())

    images, expected = checkpoint_features[case]
    with torch.no_grad():
        features = rebuilt(images)
    assert features.shape == (len(images), metadata["features"]["dim"])
    assert torch.equal(features, expected)
    assert expected.std(dim=0).mean() > 0  # distinct features of distinct images


def test_local_heads_are_exported_with_their_order(exports):
    run_dir, out_dir = exports["resnet18_cifar"]
    metadata = json.loads((out_dir / "backbone.json").read_text())
    assert metadata["local_heads"]["order"] == ["z", "p"]  # CO-BYOL: projector, predictor
    assert metadata["local_heads"]["mode"] == "separate"
    exported = torch.load(out_dir / "local_heads.pt", weights_only=True)
    (checkpoint,) = run_dir.glob("*.ckpt")
    state = torch.load(checkpoint, weights_only=True)["state_dict"]
    local = {k[len("local_heads.") :]: v for k, v in state.items() if k.startswith("local_heads.")}
    assert local and exported.keys() == local.keys()
    assert all(torch.equal(exported[k], v) for k, v in local.items())


HIDE_SOLO_LEARN = """
import importlib.machinery, sys
# uninstall solo-learn for this process: drop whatever finds the `solo` package
for finder in list(sys.meta_path):
    if finder is not importlib.machinery.PathFinder and getattr(finder, "find_spec", None):
        if finder.find_spec("solo", None) is not None:
            sys.meta_path.remove(finder)
sys.path[:] = [p for p in sys.path if not (p and __import__("os").path.isdir(p + "/solo"))]
sys.path_importer_cache.clear()
import importlib.util
assert importlib.util.find_spec("solo") is None
"""

REBUILD_WITHOUT_SOLO_LEARN = """
import json, sys, torch
from solo_coplugin.backbones import RFResNet, resnet18_cifar  # importable without solo-learn
from solo_coplugin.export import build_backbone
out_dir, images, features = sys.argv[1:]
model = build_backbone(out_dir + "/backbone.json")
model.load_state_dict(torch.load(out_dir + "/backbone.pt", weights_only=True), strict=True)
with torch.no_grad():
    torch.save(model.eval()(torch.load(images)), features)
assert not any(name == "solo" or name.startswith("solo.") for name in sys.modules)
"""


def test_backbone_rebuilds_without_solo_learn(exports, checkpoint_features, tmp_path):
    _, out_dir = exports["resnet18_cifar"]
    images, expected = checkpoint_features["resnet18_cifar"]
    torch.save(images, tmp_path / "images.pt")
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            HIDE_SOLO_LEARN + REBUILD_WITHOUT_SOLO_LEARN,
            str(out_dir),
            str(tmp_path / "images.pt"),
            str(tmp_path / "features.pt"),
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONWARNINGS": "ignore"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert torch.equal(torch.load(tmp_path / "features.pt"), expected)


def test_export_without_args_json_says_where_to_find_the_run(exports, tmp_path):
    run_dir, _ = exports["resnet18_cifar"]
    (checkpoint,) = run_dir.glob("*.ckpt")
    shutil.copy(checkpoint, tmp_path / checkpoint.name)
    with pytest.raises(export.ExportError, match="No args.json next to .*Checkpointer"):
        export.export_checkpoint(tmp_path / checkpoint.name, tmp_path / "out")
    assert not (tmp_path / "out").exists()


class RunsCodeWhenUnpickled:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_export_and_evaluation_refuse_a_checkpoint_that_would_run_code(exports, tmp_path):
    run_dir, _ = exports["resnet18_cifar"]
    shutil.copy(run_dir / "args.json", tmp_path / "args.json")
    checkpoint = tmp_path / "model-ep=0.ckpt"
    torch.save({"state_dict": {}, "x": RunsCodeWhenUnpickled(tmp_path / "code-ran")}, checkpoint)
    with pytest.raises(UnsafeCheckpointError, match=f"Refusing to load {checkpoint}"):
        export.export_checkpoint(tmp_path, tmp_path / "out")
    with pytest.raises(UnsafeCheckpointError, match=f"Refusing to load {checkpoint}"):
        load_method(tmp_path)
    assert not (tmp_path / "code-ran").exists() and not (tmp_path / "out").exists()
