"""Unknown ``local_*`` settings are refused with the known ones and a "did you mean"."""

import pytest

from solo_coplugin.core import CO_SETTINGS, CoConfigError, check_local_keys


@pytest.mark.parametrize(
    "typo, meant",
    [
        ("local_wieght", "local_weight"),
        ("local_weights", "local_weight"),
        ("local_heads", "local_head"),
        ("local_hiden_dim", "local_hidden_dim"),
        ("local_small_crop", "local_small_crops"),
    ],
)
def test_a_misspelt_setting_names_the_setting_it_resembles(typo, meant):
    with pytest.raises(CoConfigError) as error:
        check_local_keys(["proj_hidden_dim", typo, "local_grid"], CO_SETTINGS, "co_byol")
    message = str(error.value)
    assert (
        f"Unknown CO setting for co_byol: method_kwargs.{typo} (did you mean {meant}?)" in message
    )
    assert "The local_* settings of co_byol are " + ", ".join(sorted(CO_SETTINGS)) in message


def test_an_unrelated_local_key_gets_no_guess_and_every_unknown_key_is_named():
    with pytest.raises(CoConfigError) as error:
        check_local_keys(["local_foo", "local_wieght"], CO_SETTINGS, "co_byol")
    message = str(error.value)
    assert "method_kwargs.local_foo, method_kwargs.local_wieght (did you mean local_weight?)" in (
        message
    )


def test_known_settings_and_keys_of_the_base_method_pass():
    check_local_keys(["proj_output_dim", "temperature", *CO_SETTINGS], CO_SETTINGS)
    check_local_keys(["local_num_prototypes"], CO_SETTINGS + ("local_num_prototypes",))
    with pytest.raises(CoConfigError, match="local_num_prototypes"):
        check_local_keys(["local_num_prototypes"], CO_SETTINGS)
