"""The wheel carries the configs (from scripts/pretrain via the symlink), the Hydra plugin and the
benchmark/evaluation commands."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

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
        "imagenet/co_byol.yaml",
        "cifar/co_dino.yaml",
    ):
        assert f"solo_coplugin/configs/{config}" in names
    assert "hydra_plugins/solo_coplugin_searchpath/solo_coplugin_searchpath.py" in names
    assert "solo_coplugin/bench/runner.py" in names and "solo_coplugin/eval/analyses.py" in names
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    entry_points = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "solo-co-bench = solo_coplugin.bench.runner:main" in entry_points
    assert "solo-co-eval = solo_coplugin.eval.__main__:main" in entry_points
    # Lightning's callbacks_factory: how the runner gets a per-step log out of main_pretrain.py
    assert "[lightning.pytorch.callbacks_factory]" in entry_points
    assert not any(name.startswith(("tests/", "scripts/")) for name in names)
