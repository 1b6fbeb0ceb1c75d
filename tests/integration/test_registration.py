"""Registration into solo-learn and discovery of the configs through Hydra's plugin."""

import importlib
import warnings

import pytest
from hydra import compose, initialize, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.plugins import Plugins
from hydra.plugins.search_path_plugin import SearchPathPlugin
import torch
from omegaconf import OmegaConf
from solo.args.pretrain import parse_cfg
from solo.methods import METHODS
from solo.methods.base import BaseMethod

import solo_coplugin
import solo_coplugin.methods
from solo_coplugin import registration
from solo_coplugin.backbones import BACKBONES
from solo_coplugin.methods import METHODS as CO_METHODS
from solo_coplugin.methods import CoBYOL, CoSimCLR

from .utils import gen_batch


@pytest.fixture(autouse=True)
def clear_hydra():
    GlobalHydra.instance().clear()
    yield
    GlobalHydra.instance().clear()


def test_register_registers_everything_idempotently():
    solo_coplugin.register()
    solo_coplugin.register()
    assert METHODS["co_byol"] is CoBYOL and METHODS["co_simclr"] is CoSimCLR
    assert len(CO_METHODS) == 13
    for name, cls in CO_METHODS.items():
        assert METHODS[name] is cls and METHODS[name[len("co_") :]] in cls.__mro__
    assert METHODS["byol"].__name__ == "BYOL"  # solo-learn's own entries untouched
    for name, constructor in BACKBONES.items():
        assert BaseMethod._BACKBONES[name] is constructor


def test_importing_the_methods_registers_them(monkeypatch):
    monkeypatch.delitem(METHODS, "co_byol")
    monkeypatch.delitem(BaseMethod._BACKBONES, "resnet18_cifar")
    importlib.reload(solo_coplugin.methods)  # its submodules, and so the classes, stay
    assert METHODS["co_byol"] is CoBYOL
    assert BaseMethod._BACKBONES["resnet18_cifar"] is BACKBONES["resnet18_cifar"]


class ForeignBYOL:
    """A method of another package, registered under one of our names."""


def test_registration_refuses_to_replace_a_foreign_entry(monkeypatch):
    monkeypatch.setitem(METHODS, "co_byol", ForeignBYOL)
    with pytest.raises(RuntimeError, match=r"a method named 'co_byol' \(.*ForeignBYOL.*Fix: "):
        registration.register()


def test_registration_steps_aside_for_solo_learns_own_entries_with_one_warning(monkeypatch):
    # what solo-co-upstream writes into solo-learn: classes and functions of solo's own modules
    upstreamed = type("CoBYOL", (METHODS["byol"],), {"__module__": "solo.methods.co_byol"})

    def resnet18_cifar():
        """solo-learn's own copy."""

    resnet18_cifar.__module__ = "solo.backbones.small_resnet.small_resnet"
    monkeypatch.setitem(METHODS, "co_byol", upstreamed)
    monkeypatch.setitem(BaseMethod._BACKBONES, "resnet18_cifar", resnet18_cifar)
    monkeypatch.setattr(registration, "_reported_as_solo_learns", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        registration.register()
        registration.register()  # e.g. the Hydra plugin, once per config load: no repeat
    (warning,) = [w for w in caught if issubclass(w.category, registration.SoloLearnHasItWarning)]
    assert "already has resnet18_cifar, co_byol (" in str(warning.message)
    assert "registers its 15 other names" in str(warning.message)
    assert METHODS["co_byol"] is upstreamed
    assert BaseMethod._BACKBONES["resnet18_cifar"] is resnet18_cifar
    assert METHODS["co_simclr"] is CoSimCLR  # the names solo-learn lacks are still ours


def test_hydra_discovers_the_search_path_plugin():
    names = [p.__name__ for p in Plugins.instance().discover(SearchPathPlugin)]
    assert "SoloCoPluginSearchPathPlugin" in names


@pytest.mark.parametrize(
    "config, method, aug_crops", [("co_simclr", "co_simclr", [2]), ("co_byol", "co_byol", [1, 1])]
)
def test_bare_config_names_resolve_to_the_cifar_configs(config, method, aug_crops):
    # config_path=None: the same search path as main_pretrain.py (no --config-path)
    with initialize(version_base="1.2", config_path=None):
        cfg = compose(config_name=f"{config}.yaml")
    assert cfg.method == method and cfg.data.dataset == "cifar10"
    assert [a.num_crops for a in cfg.augmentations] == aug_crops
    assert all(a.crop_size == 32 for a in cfg.augmentations)
    assert cfg.method_kwargs.local_weight == 0.3 and cfg.wandb.enabled is False


@pytest.mark.parametrize(
    "config, method",
    [
        ("co_mocov3", "co_mocov3"),
        ("co_dino", "co_dino"),
        ("co_vicreg", "co_vicreg"),
        ("co_barlow_twins", "co_barlow_twins"),
        ("co_mocov2plus", "co_mocov2plus"),
        ("co_byol_rf", "co_byol"),
    ],
)
def test_every_other_bare_config_builds_its_method_and_takes_a_step(config, method):
    # what main_pretrain.py does with a bare config name, up to the first training step
    # (co_simclr/co_byol also run as main_pretrain.py subprocesses in test_scripts.py)
    extra = []
    if config in ("co_vicreg", "co_barlow_twins"):  # per-position 2048-d losses: slow on 2 cores
        extra = ["method_kwargs.proj_hidden_dim=256", "method_kwargs.proj_output_dim=256"]
    with initialize(version_base="1.2", config_path=None):
        cfg = compose(config_name=f"{config}.yaml", overrides=["optimizer.batch_size=4", *extra])
    OmegaConf.set_struct(cfg, False)
    cfg = parse_cfg(cfg)
    assert cfg.method == method and cfg.data.dataset == "cifar10"
    assert cfg.method_kwargs.local_weight == 0.3 and cfg.wandb.enabled is False
    model = METHODS[cfg.method](cfg)
    loss = model.training_step(gen_batch(4), 0)
    loss.backward()
    assert torch.isfinite(loss)
    assert any(p.grad is not None for p in model.local_heads.parameters())


@pytest.mark.parametrize(
    "dataset, initialize_configs",
    [
        # CIFAR: the bare names, main_pretrain.py's search path (no --config-path)
        ("cifar10", lambda: initialize(version_base="1.2", config_path=None)),
        (
            "imagenet100",
            lambda: initialize_config_module(
                version_base="1.2", config_module="solo_coplugin.configs.imagenet-100"
            ),
        ),
    ],
    ids=["cifar", "imagenet-100"],
)
def test_configs_of_the_other_variants_compose_and_pass_their_method_checks(
    dataset, initialize_configs
):
    # the methods themselves are built and stepped in test_methods.py (small heads)
    for method in ("co_simsiam", "co_nnbyol", "co_nnclr", "co_nnsiam", "co_ressl", "co_vibcreg"):
        with initialize_configs():
            cfg = compose(config_name=f"{method}.yaml")
        OmegaConf.set_struct(cfg, False)
        cfg = parse_cfg(cfg)
        assert cfg.method == method and cfg.data.dataset == dataset, method
        assert cfg.data.num_large_crops == 2 and cfg.wandb.enabled is False
        cfg = METHODS[method].add_and_assert_specific_cfg(cfg)
        assert cfg.method_kwargs.local_weight == 0.3 and cfg.method_kwargs.local_grid is None
        if method == "co_ressl":  # its teacher is the second large crop, ReSSL's weak one
            strong, weak = cfg.augmentations
            assert weak.color_jitter.prob == 0.0 < strong.color_jitter.prob


@pytest.mark.parametrize("config", ["co_byol", "co_simclr"])
def test_custom_dataset_configs(config):
    with initialize_config_module(version_base="1.2", config_module="solo_coplugin.configs.custom"):
        cfg = compose(config_name=f"{config}.yaml")
    assert cfg.data.dataset == "custom" and cfg.augmentations[0].crop_size == 224
