"""A misspelt CO setting (``method_kwargs.local_wieght``) stops the run at start-up, for every CO
method, and the list of known settings is the one the methods actually read."""

import pytest
from hydra import compose, initialize
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf
from solo.args.pretrain import parse_cfg
from solo.methods import METHODS as SOLO_METHODS
from solo.methods.base import BaseMomentumMethod

from solo_coplugin.core import CO_SETTINGS, CoConfigError
from solo_coplugin.methods import METHODS

from .utils import SMALL_HEADS, gen_base_cfg


def method_cfg(name, **method_kwargs):
    cls = METHODS[name]
    return gen_base_cfg(
        name,
        momentum=issubclass(cls, BaseMomentumMethod),
        **SMALL_HEADS[name[len("co_") :]],
        **method_kwargs,
    )


@pytest.mark.parametrize("name", sorted(METHODS))
def test_the_known_settings_are_those_the_method_reads(name):
    # what the method fills in on a cfg without any local_* key: if a new setting is read
    # without being listed (core.config.CO_SETTINGS, or the method's local_settings), setting it
    # would be refused as unknown; if a listed one is no longer read, a typo of it would pass
    cls = METHODS[name]
    cfg = cls.add_and_assert_specific_cfg(method_cfg(name))
    read = {key for key in cfg.method_kwargs if key.startswith("local_")}
    assert read == set(CO_SETTINGS) | set(cls.local_settings)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_a_misspelt_setting_stops_every_method_with_a_suggestion(name):
    with pytest.raises(
        CoConfigError, match=r"method_kwargs\.local_wieght \(did you mean local_weight\?\)"
    ):
        METHODS[name](method_cfg(name, local_wieght=0.5))


def test_a_misspelt_setting_on_the_command_line_stops_main_pretrain_before_training():
    # main_pretrain.py's path up to building the method (the Trainer comes after it)
    GlobalHydra.instance().clear()
    try:
        with initialize(version_base="1.2", config_path=None):
            cfg = compose(config_name="co_byol.yaml", overrides=["+method_kwargs.local_wieght=0.5"])
    finally:
        GlobalHydra.instance().clear()
    OmegaConf.set_struct(cfg, False)
    cfg = parse_cfg(cfg)
    with pytest.raises(CoConfigError) as error:
        SOLO_METHODS[cfg.method](cfg)
    assert "method_kwargs.local_wieght (did you mean local_weight?)" in str(error.value)
    assert "The local_* settings of co_byol are local_grid, local_head, " in str(error.value)
