"""The wheel carries the configs (from scripts/pretrain via the symlink), the Hydra plugin and the
benchmark/evaluation commands; the commands show their help without third-party warnings."""

import importlib.metadata
import os
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import pytest

from solo_coplugin.third_party_warnings import ignoring_known_import_warnings

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_configs_folder_is_the_single_source():
    link = REPO_ROOT / "solo_coplugin" / "configs"
    assert link.is_symlink() and link.resolve() == (REPO_ROOT / "scripts" / "pretrain").resolve()


def test_wheel_contains_configs_and_hydra_plugin(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO_ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0 and "No module named" in result.stderr:
        pytest.skip(f"cannot build a wheel here: {result.stderr[-300:]}")
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = tmp_path.glob("solo_coplugin-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for dataset in ("cifar", "custom"):
        for config in (
            "co_byol.yaml",
            "co_simclr.yaml",
            "augmentations/asymmetric.yaml",
            "augmentations/symmetric.yaml",
            "wandb/private.yaml",
            "__init__.py",
        ):
            assert f"solo_coplugin/configs/{dataset}/{config}" in names
    for config in (
        "imagenet-100/co_byol_rf99.yaml",
        "imagenet-100/co_dino_vit.yaml",
        "imagenet-100/__init__.py",
        "tiny-imagenet/co_simclr.yaml",
        "tiny-imagenet/augmentations/asymmetric.yaml",
        "tiny-imagenet/__init__.py",
        "imagenet/co_byol.yaml",
        "cifar/co_dino.yaml",
    ):
        assert f"solo_coplugin/configs/{config}" in names
    assert "hydra_plugins/solo_coplugin_searchpath/solo_coplugin_searchpath.py" in names
    assert "solo_coplugin/bench/runner.py" in names and "solo_coplugin/eval/analyses.py" in names
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    entry_points = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "solo-co-bench = solo_coplugin.bench.runner:main" in entry_points
    assert "solo-co-data = solo_coplugin.data.__main__:main" in entry_points
    assert "solo_coplugin/data/image_check.py" in names
    assert "solo-co-eval = solo_coplugin.eval.__main__:main" in entry_points
    assert "solo-co-export = solo_coplugin.export:main" in entry_points
    assert "solo-co-upstream = solo_coplugin.upstream:main" in entry_points
    assert "solo_coplugin/upstream_templates/test_co_method.py.tmpl" in names
    # Lightning's callbacks_factory: how the runner gets a per-step log out of main_pretrain.py
    assert "[lightning.pytorch.callbacks_factory]" in entry_points
    assert not any(name.startswith(("tests/", "scripts/")) for name in names)


# each console script's target, called as the script calls it, with --help
SHOW_HELP = """
import importlib, sys
for target in sys.argv[1:]:
    module, function = target.split(":")
    sys.argv = [target, "--help"]
    try:
        getattr(importlib.import_module(module), function)()
    except SystemExit as exit:
        assert exit.code == 0, (target, exit.code)
"""


def test_commands_show_their_help_without_third_party_warnings():
    scripts = [
        "solo-co-bench",
        "solo-co-data",
        "solo-co-eval",
        "solo-co-export",
        "solo-co-upstream",
    ]
    targets = [
        importlib.metadata.entry_points(group="console_scripts", name=script)[script].value
        for script in scripts
    ]
    # a fresh process with Python's default warning filters (importing solo-learn used to print
    # about 25 warning lines first); one process for both commands: solo-learn imports once
    env = {key: value for key, value in os.environ.items() if key != "PYTHONWARNINGS"}
    result = subprocess.run(
        [sys.executable, "-c", SHOW_HELP, *targets],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr == "", result.stderr[-2000:]
    for script in scripts:
        assert f"usage: {script}" in result.stdout


def test_only_the_known_import_warnings_are_hidden():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with ignoring_known_import_warnings():
            warnings.warn("pkg_resources is deprecated as an API. See https://...", UserWarning)
            warnings.warn(
                "Importing from timm.models.layers is deprecated, please import via timm.layers",
                FutureWarning,
            )
            warnings.warn(
                "Overwriting convnext_tiny in registry with solo.backbones.convnext.convnext.convnext_tiny.",
                UserWarning,
            )
            warnings.warn(
                "`torch.cuda.amp.custom_fwd(args...)` is deprecated. Please use `torch.amp.custom_fwd(args..., device_type='cuda')` instead.",
                FutureWarning,
            )
            warnings.warn("Overwriting resnet18 in registry with mypackage.resnet18.", UserWarning)
            warnings.warn("Importing from timm.models.layers is deprecated", UserWarning)
            warnings.warn("The dataloader does not have many workers", UserWarning)
        warnings.warn("Importing from timm.models.layers is deprecated", FutureWarning)
    assert [(str(w.message), w.category) for w in caught] == [
        # another package overwriting timm's models, a known message in another category, a
        # real warning, and a known one after the imports: all visible
        ("Overwriting resnet18 in registry with mypackage.resnet18.", UserWarning),
        ("Importing from timm.models.layers is deprecated", UserWarning),
        ("The dataloader does not have many workers", UserWarning),
        ("Importing from timm.models.layers is deprecated", FutureWarning),
    ]
