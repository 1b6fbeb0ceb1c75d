import pytest

from solo_coplugin.core import (
    CoConfigError,
    check_grid_fits,
    check_local_grid,
    check_local_head,
    check_local_stage,
    check_local_weight,
)


@pytest.mark.parametrize("value", [-0.1, 1.5, "0.3", None, True])
def test_local_weight_outside_unit_interval(value):
    with pytest.raises(CoConfigError, match=r"method_kwargs\.local_weight.*Fix"):
        check_local_weight(value)


@pytest.mark.parametrize("value", [0, 0.3, 1])
def test_local_weight_accepted(value):
    assert check_local_weight(value) == float(value)


@pytest.mark.parametrize("value", [0, -2, 2.5, "4"])
def test_local_grid_below_one_or_not_an_integer(value):
    with pytest.raises(CoConfigError, match=r"method_kwargs\.local_grid"):
        check_local_grid(value)


def test_local_grid_larger_than_the_feature_map():
    check_grid_fits((5, 5), 5, "resnet18_cifar", 32)
    with pytest.raises(CoConfigError, match=r"local_grid=6 is larger than the 5x5 feature map"):
        check_grid_fits((5, 5), 6, "resnet18_cifar", 32)


def test_one_by_one_feature_map_has_nothing_local():
    with pytest.raises(
        CoConfigError, match=r"backbone.name=resnet18 ends in a 1x1.*resnet18_cifar"
    ):
        check_grid_fits((1, 1), None, "resnet18", 32)


def test_unknown_local_head():
    assert check_local_head("shared") == "shared"
    with pytest.raises(CoConfigError, match=r"method_kwargs\.local_head.*separate"):
        check_local_head("both")


def test_local_stage_is_null_or_a_name():
    assert check_local_stage(None) is None and check_local_stage("layer3") == "layer3"
    for value in (3, "", ["layer3"]):
        with pytest.raises(CoConfigError, match=r"method_kwargs\.local_stage must be null .* got"):
            check_local_stage(value)
