"""Small-image ResNets: torchvision's network at the default width, narrow ones otherwise."""

import pytest
import torch
import torch.nn as nn
from torchvision.models import resnet18, resnet50

from solo_coplugin.backbones import resnet18_cifar, resnet50_cifar, rf_resnet18
from solo_coplugin.backbones.rf_resnet import RFResNetConfigError


def cifar_stem(model):
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=2, bias=False)
    model.maxpool = nn.Identity()
    return model


@pytest.mark.parametrize("ours, theirs", [(resnet18_cifar, resnet18), (resnet50_cifar, resnet50)])
def test_the_default_width_is_torchvisions_network_from_the_same_seed(ours, theirs):
    torch.manual_seed(0)
    a = ours().state_dict()
    torch.manual_seed(0)
    b = cifar_stem(theirs()).state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("width", [8, 16, 32])
def test_a_narrow_network_scales_every_stage(width):
    model = resnet18_cifar(width=width, num_classes=10)
    assert model.conv1.out_channels == model.bn1.num_features == width
    assert [getattr(model, f"layer{i}")[0].conv1.out_channels for i in (1, 2, 3, 4)] == [
        width,
        2 * width,
        4 * width,
        8 * width,
    ]
    assert model.inplanes == 8 * width  # what solo-learn reads as the feature size
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_solo_learns_cifar_stem_surgery_keeps_the_width():
    # solo-learn replaces conv1 of any backbone named resnet* with a 64-channel CIFAR stem when
    # data.dataset is cifar10/100
    model = resnet18_cifar(width=16)
    model.fc = nn.Identity()
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=2, bias=False)
    assert model.conv1.out_channels == 16 and model.conv1.kernel_size == (3, 3)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 128)


@pytest.mark.parametrize("width", [0, -8, 16.0, True, "16"])
def test_a_bad_width_names_the_key(width):
    with pytest.raises(ValueError, match="backbone.kwargs.width"):
        resnet18_cifar(width=width)
    with pytest.raises(RFResNetConfigError, match="backbone.kwargs.width"):
        rf_resnet18(width=width, cifar_stem=True)


def test_settings_of_other_backbones_are_named_not_passed_to_torchvision():
    with pytest.raises(
        ValueError,
        match=r"backbone.kwargs.bag_mlp, backbone.kwargs.preset: not a .*"
        r"~backbone.kwargs.bag_mlp ~backbone.kwargs.preset",
    ):
        resnet18_cifar(width=16, preset="tiny_rf31", bag_mlp=False)
    with pytest.raises(ValueError, match=r"backbone.kwargs.widht: not a setting .* zero_init"):
        resnet18_cifar(widht=16)
    assert resnet18_cifar(width=16, zero_init_residual=True).width == 16
