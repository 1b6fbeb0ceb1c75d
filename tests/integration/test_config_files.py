"""Every packaged CO config (scripts/pretrain/*/co_*.yaml) lists exactly the CO settings its method
reads, with the defaults of ``core.config.SETTINGS``, and runs the start-up checks."""

import functools
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf
from solo.methods.base import BaseMomentumMethod

from solo_coplugin.core import SETTINGS, CoConfigError, check_co_settings, setting_names
from solo_coplugin.methods import METHODS

from .utils import SMALL_HEADS, gen_base_cfg

CONFIG_ROOT = Path(__file__).resolve().parents[2] / "scripts" / "pretrain"
CONFIGS = sorted(CONFIG_ROOT.glob("*/co_*.yaml"))

#: (config, setting) -> why that config sets another value than the table's default. A value
#: that differs from the default without an entry here is taken for a slip
DELIBERATE = {}


def composed(config: Path) -> DictConfig:
    """The config merged with the sibling configs its defaults list names (``co_byol_rf.yaml``
    extends ``co_byol``), in Hydra's order; the other groups (augmentations, wandb) are left out:
    a tenth of the time of Hydra's compose."""

    own = OmegaConf.load(config)
    defaults = list(own.pop("defaults", None) or [])
    if "_self_" not in defaults:
        defaults.append("_self_")
    cfg = OmegaConf.create()
    for entry in defaults:
        if entry == "_self_":
            cfg = OmegaConf.merge(cfg, own)
        elif isinstance(entry, str) and entry.startswith("co_"):
            cfg = OmegaConf.merge(cfg, composed(config.parent / f"{entry.split('.')[0]}.yaml"))
    return cfg


def refuses(name: str, key: str, value) -> bool:
    cls = METHODS[name]
    cfg = gen_base_cfg(
        name,
        momentum=issubclass(cls, BaseMomentumMethod),
        **SMALL_HEADS[name[len("co_") :]],
        **{key: value},
    )
    try:
        cls.add_and_assert_specific_cfg(cfg)
    except CoConfigError:
        return True
    return False


@functools.lru_cache(maxsize=None)
def listed_settings(method: str):
    """The settings a config of ``method`` lists: those the method reads whose default is a value
    (not another key's), without those that have no effect for it or that it refuses to change."""

    cls = METHODS[method]
    rows = {}
    for row in SETTINGS:
        if row.method not in (None, method) or row.default_key is not None:
            continue
        if row.only_without_momentum and issubclass(cls, BaseMomentumMethod):
            continue
        if row.type == "bool" and refuses(method, row.name, not row.default):
            continue
        rows[row.name] = row
    return rows


def test_the_configs_are_found():
    assert len(CONFIGS) >= 10 and {c.parent.name for c in CONFIGS} >= {"cifar", "imagenet"}


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.parent.name}/{c.name}")
def test_a_config_lists_exactly_the_settings_of_its_method_with_the_defaults(config):
    cfg = composed(config)
    name = f"{config.parent.name}/{config.name}"
    listed = {k: v for k, v in cfg.method_kwargs.items() if str(k).startswith("local_")}
    expected = listed_settings(cfg.method)
    assert set(listed) == set(expected), name
    check_co_settings(listed)  # types, ranges, combinations
    for key, value in listed.items():
        if (name, key) in DELIBERATE:
            assert value != expected[key].default, f"{name}: {key} is the default again"
        else:
            assert value == expected[key].default, f"{name}: {key}={value}, not the default"
    callbacks = [c.get("_target_") for c in (cfg.hydra.callbacks or {}).values()]
    assert "solo_coplugin.preflight.PreflightCallback" in callbacks, name


def test_the_merge_of_a_config_that_extends_another_is_hydras():
    config = CONFIG_ROOT / "cifar" / "co_byol_rf.yaml"
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.2", config_dir=str(config.parent)):
            hydra_cfg = compose(config_name=config.name, return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()
    ours = composed(config)
    assert ours.backbone == hydra_cfg.backbone and ours.method_kwargs == hydra_cfg.method_kwargs
    assert ours.hydra.callbacks == hydra_cfg.hydra.callbacks


def test_local_target_grad_is_listed_only_where_it_can_change_something():
    assert "local_target_grad" in listed_settings("co_simclr")
    assert "local_target_grad" not in listed_settings("co_byol")  # momentum targets
    assert "local_target_grad" not in listed_settings("co_simsiam")  # refused


@pytest.mark.parametrize("name", sorted(METHODS))
def test_a_method_s_own_settings_are_rows_of_the_table(name):
    # so the documented table, checked against SETTINGS, covers them too
    own = set(setting_names(name)) - set(setting_names())
    assert set(METHODS[name].local_settings) == own
