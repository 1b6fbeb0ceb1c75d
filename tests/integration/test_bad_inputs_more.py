"""More bad inputs, each stopped before any training step and before anything is written, with one
message that names the key, file or value and the fix: crops, the backbone against solo-learn's
validation resolution, the data folders, checkpoints, and the evaluation commands' arguments.
(The CO settings' own cases are in test_bad_input.py and tests/core.)"""

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import solo
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf
from PIL import Image

from solo_coplugin import export, preflight
from solo_coplugin.core import CoConfigError
from solo_coplugin.data_checks import DataCheckError, check_image_folder
from solo_coplugin.eval import __main__ as evaluation
from solo_coplugin.eval.checkpoint import CheckpointError, CheckpointNotFoundError, load_method
from solo_coplugin.methods import CoBYOL

from .utils import augmentation_cfg, small_image_co_byol_cfg

# the start-up checks run in-process here and wrap the data sets' __getitem__ for the process
pytestmark = pytest.mark.usefixtures("loader_wrappers_restored")

REPO_ROOT = Path(__file__).resolve().parents[2]
SOLO_ROOT = Path(solo.__file__).resolve().parents[1]
CUSTOM_CONFIGS = REPO_ROOT / "scripts" / "pretrain" / "custom"


def image_folder(root: Path, classes=("cat", "dog"), per_class=2) -> Path:
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (8, 8), (40 * i, 90, 0)).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def custom_config():
    """The packaged custom-data CO-BYOL config as main_pretrain.py receives it (hydra node
    included), with small images of its own."""

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.2", config_dir=str(CUSTOM_CONFIGS)):
            cfg = compose(config_name="co_byol.yaml", return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()
    OmegaConf.set_struct(cfg, False)
    return cfg


@pytest.fixture
def run_cfg(custom_config, tmp_path):
    cfg = copy.deepcopy(custom_config)
    cfg.data.train_path = str(image_folder(tmp_path / "train"))
    cfg.data.val_path = str(image_folder(tmp_path / "val"))
    cfg.checkpoint.dir = str(tmp_path / "trained_models")
    return cfg


def stopped(cfg) -> str:
    """The message the packaged configs' Hydra callback stops main_pretrain.py with; asserts that
    nothing was written."""

    with pytest.raises(SystemExit) as exit_info:
        preflight.PreflightCallback().on_job_start(config=cfg)
    assert not Path(cfg.checkpoint.dir).exists()
    message = str(exit_info.value.code)
    assert message.startswith("solo-coplugin: ") and "Fix: " in message
    return message


def test_a_sound_run_passes_the_start_up_checks(run_cfg):
    preflight.PreflightCallback().on_job_start(config=run_cfg)


def test_co_settings_are_checked_before_main(run_cfg):
    # the same checks as when the method is built, without the stack trace of main()
    run_cfg.method_kwargs.local_wieght = 0.5
    assert "method_kwargs.local_wieght (did you mean local_weight?)" in stopped(run_cfg)
    del run_cfg.method_kwargs["local_wieght"]
    run_cfg.method_kwargs.local_head, run_cfg.method_kwargs.local_hidden_dim = "shared", 64
    assert "local_hidden_dim=64 needs separate local heads" in stopped(run_cfg)


# ------------------------------------------------------------------------------------------ crops


def test_three_large_crops_in_the_augmentations(run_cfg):
    run_cfg.augmentations[0].num_crops = 2  # + 1 of the second 224 px pipeline
    message = stopped(run_cfg)
    assert "co_byol needs exactly 2 large crops, but the augmentations give 3" in message
    assert "augmentations[0]: num_crops=2, crop_size=224; augmentations[1]: num_crops=1" in message


def test_small_crops_too_small_for_local_representations():
    cfg = small_image_co_byol_cfg(local_small_crops=True)
    cfg.backbone.kwargs = {"width": 8}
    cfg.augmentations = augmentation_cfg(32) + augmentation_cfg(6, num_crops=4)
    cfg.data.num_small_crops = 4
    with pytest.raises(CoConfigError) as error:
        CoBYOL(cfg)
    assert str(error.value).startswith(
        "method_kwargs.local_small_crops=True aligns the local representations of the small "
        "crops, but backbone.name=resnet18_cifar ends in a 1x1 feature map at their 6 px "
        "(augmentations[1].crop_size=6)."
    )
    assert "Fix: method_kwargs.local_small_crops=False, or larger small crops" in str(error.value)
    cfg.augmentations[1].crop_size = 16  # 3x3: something to align
    CoBYOL(cfg)


def test_small_crops_alignment_without_small_crops_is_refused():
    cfg = small_image_co_byol_cfg(local_small_crops=True)
    cfg.backbone.kwargs = {"width": 8}
    cfg.data.num_small_crops = 0
    with pytest.raises(CoConfigError, match=r"but the augmentations have none \(data.num_small_"):
        CoBYOL(cfg)
    cfg.method_kwargs.local_small_crops = False
    CoBYOL(cfg)


def test_large_crops_smaller_than_the_network_stride():
    # the CIFAR-stem ResNet-18 has stride 8: a 6 px crop ends in one position
    with pytest.raises(CoConfigError, match=r"ends in a 1x1 feature map at 6 px crops.*Fix: "):
        cfg = small_image_co_byol_cfg(crop_size=6)
        cfg.backbone.kwargs = {"width": 8}
        CoBYOL(cfg)


# --------------------------------------------------- backbone vs solo-learn's validation size


def test_vit_for_small_images_with_custom_validation_data(run_cfg):
    run_cfg.backbone.name, run_cfg.backbone.kwargs = "vit_tiny", {"img_size": 32, "patch_size": 8}
    message = stopped(run_cfg)
    assert "backbone.name=vit_tiny with backbone.kwargs.img_size=32" in message
    assert "validates data.dataset=custom at 224 px (Resize(256) + CenterCrop(224))" in message
    assert "Input height (224) doesn't match model (32)" in message
    assert "Fix: data.val_path=null" in message and "++limit_val_batches=0" in message
    # either fix, or a dataset validated at 32 px, lets it through
    for key, value in (("data.val_path", None), ("limit_val_batches", 0)):
        fixed = copy.deepcopy(run_cfg)
        OmegaConf.update(fixed, key, value, force_add=True)
        preflight.check_validation_resolution(fixed)
    run_cfg.data.dataset = "cifar10"
    preflight.check_validation_resolution(run_cfg)


# ------------------------------------------------------------------------------------------- data


def test_missing_train_folder(run_cfg, tmp_path):
    run_cfg.data.train_path = str(tmp_path / "nowhere")
    message = stopped(run_cfg)
    assert f"data.train_path={tmp_path / 'nowhere'} does not exist. Fix: point data.train_path" in (
        message
    )


def test_missing_validation_folder(run_cfg, tmp_path):
    run_cfg.data.val_path = str(tmp_path / "no_val")
    assert f"data.val_path={tmp_path / 'no_val'} does not exist" in stopped(run_cfg)


def test_train_folder_without_class_folders(run_cfg, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("RGB", (8, 8)).save(flat / "0.png")
    run_cfg.data.train_path = str(flat)
    message = stopped(run_cfg)
    assert f"data.train_path={flat} has no class sub-folders" in message
    assert "or data.no_labels=True for a flat folder" in message
    run_cfg.data.no_labels = True  # ... which solo-learn reads as unlabeled images
    preflight.check_data(run_cfg)


def test_empty_class_folder(run_cfg, tmp_path):
    (tmp_path / "train" / "bird").mkdir()
    (tmp_path / "train" / "bird" / "notes.txt").write_text("not an image extension")
    message = stopped(run_cfg)
    assert f"data.train_path={tmp_path / 'train'}: the class folders bird hold no image" in message


def test_empty_image_file(run_cfg, tmp_path):
    (tmp_path / "train" / "cat" / "empty.jpg").touch()
    message = stopped(run_cfg)
    assert "1 image files are empty (0 bytes): " + str(tmp_path / "train/cat/empty.jpg") in message


@pytest.mark.parametrize("broken", ["not_an_image", "truncated"])
def test_file_that_is_not_a_readable_image(run_cfg, tmp_path, broken):
    bad = tmp_path / "train" / "dog" / "bad.jpg"
    if broken == "not_an_image":
        bad.write_text("<html>a web page saved as .jpg</html>")
    else:
        Image.new("RGB", (64, 64), (1, 2, 3)).save(bad)
        bad.write_bytes(bad.read_bytes()[:300])
    message = stopped(run_cfg)
    assert f"files the data loader would read are not images it can open: {bad} (" in message
    assert "the names and sizes of all 5 files of 2 class folders, and opened 5 of them" in message


def test_data_check_opens_a_bounded_sample(tmp_path):
    image_folder(tmp_path / "data", per_class=10)
    (tmp_path / "data" / "dog" / "9.png").write_text("broken")  # not in a sample of 4
    assert check_image_folder(tmp_path / "data", "data.train_path", sample=4) == 20
    with pytest.raises(DataCheckError, match="opened 20 of them"):
        check_image_folder(tmp_path / "data", "data.train_path", sample=64)


# ------------------------------------------------------------------------------------ checkpoints


@pytest.fixture(scope="module")
def co_byol_run(tmp_path_factory):
    """A small CO-BYOL checkpoint and args.json as solo-learn's Checkpointer writes them."""

    run_dir = tmp_path_factory.mktemp("trained_models") / "co_byol" / "abc"
    run_dir.mkdir(parents=True)
    cfg = small_image_co_byol_cfg(backbone="resnet18_cifar")
    cfg.backbone.kwargs = {"width": 8}
    model = CoBYOL(copy.deepcopy(cfg))
    (run_dir / "args.json").write_text(json.dumps(OmegaConf.to_container(cfg)))
    torch.save({"state_dict": model.state_dict(), "global_step": 0}, run_dir / "co_byol-ep=0.ckpt")
    return run_dir


def copy_run(run_dir: Path, to: Path, method=None, cut_checkpoint=False) -> Path:
    to.mkdir()
    args = json.loads((run_dir / "args.json").read_text())
    if method is not None:
        args["method"] = method
    (to / "args.json").write_text(json.dumps(args))
    data = (run_dir / "co_byol-ep=0.ckpt").read_bytes()
    (to / "co_byol-ep=0.ckpt").write_bytes(data[: len(data) // 2] if cut_checkpoint else data)
    return to


def test_missing_checkpoint_for_evaluation_and_export(tmp_path, capsys):
    missing = tmp_path / "trained_models" / "co_byol" / "nope"
    with pytest.raises(SystemExit) as exit_info:
        export.main([str(missing), str(tmp_path / "out")])
    assert str(exit_info.value.code) == (
        f"solo-co-export: {missing} does not exist. Fix: give a .ckpt file or the run folder "
        "solo-learn wrote it to (checkpoint.dir/<method>/<run id>/, e.g. "
        "trained_models/co_byol/abc123/)."
    )
    with pytest.raises(SystemExit) as exit_info:
        evaluation.main(f"knn --pretrained_checkpoint_dir {missing} --dataset cifar10".split())
    assert str(exit_info.value.code).startswith(f"solo-co-eval knn: {missing} does not exist. Fix")
    with pytest.raises(CheckpointNotFoundError, match="No .ckpt file at .*Fix: "):
        load_method(tmp_path)  # a folder without checkpoints
    assert not (tmp_path / "out").exists()


def test_truncated_checkpoint(co_byol_run, tmp_path):
    run_dir = copy_run(co_byol_run, tmp_path / "run", cut_checkpoint=True)
    checkpoint = run_dir / "co_byol-ep=0.ckpt"
    with pytest.raises(SystemExit) as exit_info:
        export.main([str(run_dir), str(tmp_path / "out")])
    message = str(exit_info.value.code)
    assert message.startswith(
        f"solo-co-export: {checkpoint} is not a complete PyTorch checkpoint: it is truncated or "
        "not a checkpoint (RuntimeError: PytorchStreamReader failed reading zip archive"
    )
    assert "Fix: use a checkpoint that was written to the end" in message
    with pytest.raises(CheckpointError, match="is not a complete PyTorch checkpoint"):
        load_method(run_dir)
    assert not (tmp_path / "out").exists()


def test_checkpoint_of_another_method(co_byol_run, tmp_path):
    # a CO-BYOL checkpoint next to the args.json of a BYOL run: the local heads are left over
    run_dir = copy_run(co_byol_run, tmp_path / "run", method="byol")
    with pytest.raises(CheckpointError) as error:
        load_method(run_dir)
    message = str(error.value)
    assert "does not hold the weights of the run its args.json describes (method=byol, " in message
    assert "0 missing (none) and " in message and "(local_heads.z." in message
    assert "Fix: keep each .ckpt in the run folder with the args.json written with it" in message


def test_args_json_of_a_run_that_is_no_pretraining(co_byol_run, tmp_path):
    run_dir = copy_run(co_byol_run, tmp_path / "run")
    args = json.loads((run_dir / "args.json").read_text())
    del args["method"]  # main_linear.py's args.json has pretrain_method instead
    (run_dir / "args.json").write_text(json.dumps(args))
    with pytest.raises(SystemExit) as exit_info:
        evaluation.main(
            f"knn --pretrained_checkpoint_dir {run_dir} --dataset cifar10 --device cpu".split()
        )
    assert "says method=None, which is not a pretraining method solo-learn knows (a " in str(
        exit_info.value.code
    )


def test_export_into_a_file(co_byol_run, tmp_path):
    (tmp_path / "out").write_text("a file")
    with pytest.raises(SystemExit, match=r"out is a file\. Fix: give a folder"):
        export.main([str(co_byol_run), str(tmp_path / "out")])


# ----------------------------------------------------------- the evaluation commands' arguments


@pytest.mark.parametrize(
    "argument, value, expected",
    [
        ("--k", "0", "argument --k: must be a positive integer, got '0'"),
        ("--batch_size", "-4", "argument --batch_size: must be a positive integer, got '-4'"),
        ("--crop_size", "32px", "argument --crop_size: must be a positive integer, got '32px'"),
        ("--temperature", "0", "argument --temperature: must be a number > 0, got '0'"),
        ("--num_workers", "-1", "argument --num_workers: must be an integer >= 0, got '-1'"),
        ("--device", "gpu", "argument --device: 'gpu' is not a torch device: use cpu, cuda"),
        ("--dataset", "mnist", "argument --dataset: invalid choice: 'mnist'"),
    ],
)
def test_bad_numbers_and_names_for_solo_co_eval_knn(argument, value, expected, capsys, tmp_path):
    argv = ["knn", "--pretrained_checkpoint_dir", str(tmp_path), "--dataset", "cifar10"]
    with pytest.raises(SystemExit) as exit_info:
        evaluation.main(argv + [argument, value])
    assert exit_info.value.code == 2 and expected in capsys.readouterr().err


def test_bad_numbers_for_solo_co_eval_robustness(capsys, tmp_path):
    with pytest.raises(SystemExit):
        evaluation.main(f"robustness --bench {tmp_path} --attack-images 0".split())
    assert (
        "argument --attack-images: must be a positive integer, got '0'" in capsys.readouterr().err
    )


@pytest.mark.parametrize("which", ["train", "val"])
def test_solo_co_eval_with_a_missing_or_empty_data_folder(co_byol_run, tmp_path, which):
    train = image_folder(tmp_path / "train")
    val = tmp_path / "missing"
    if which == "val":
        val = image_folder(tmp_path / "val")
        (val / "empty_class").mkdir()
        train, val = val, train  # the broken folder as --train_data_path
    argv = (
        f"knn --pretrained_checkpoint_dir {co_byol_run} --dataset custom --device cpu "
        f"--train_data_path {train} --val_data_path {val}"
    ).split()
    with pytest.raises(SystemExit) as exit_info:
        evaluation.main(argv)
    message = str(exit_info.value.code)
    if which == "train":
        assert message.startswith(f"solo-co-eval knn: --val_data_path={val} does not exist. Fix: ")
    else:
        assert message.startswith(f"solo-co-eval knn: --train_data_path={train}: the class ")
        assert "folders empty_class hold no image file" in message


def test_solo_co_eval_robustness_of_a_folder_that_is_no_benchmark(tmp_path):
    with pytest.raises(SystemExit, match=r"solo-co-eval: .*nowhere is not a solo-co-bench folder"):
        evaluation.main(f"robustness --bench {tmp_path / 'nowhere'} --device cpu".split())


# ----------------------------------------------------- what a user of main_pretrain.py sees


@pytest.mark.skipif(
    not (SOLO_ROOT / "main_pretrain.py").exists(),
    reason=f"solo-learn's main_pretrain.py is not next to its package ({SOLO_ROOT})",
)
def test_main_pretrain_stops_with_one_message_and_writes_nothing(tmp_path):
    # the case of the issue: a ViT for 32 px images on custom data with a validation folder
    data = image_folder(tmp_path / "data")
    result = subprocess.run(
        [
            sys.executable,
            str(SOLO_ROOT / "main_pretrain.py"),
            "--config-path",
            str(CUSTOM_CONFIGS),
            "--config-name",
            "co_byol.yaml",
            "backbone.name=vit_tiny",
            "++backbone.kwargs.img_size=32",
            "++backbone.kwargs.patch_size=8",
            f"data.train_path={data}",
            f"data.val_path={data}",
            f"checkpoint.dir={tmp_path / 'trained_models'}",
            "accelerator=cpu",
            'devices="1"',
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(SOLO_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("solo-coplugin: ")]
    assert len(lines) == 1 and "backbone.kwargs.img_size=32" in lines[0]
    assert "Fix: data.val_path=null" in lines[0]
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
