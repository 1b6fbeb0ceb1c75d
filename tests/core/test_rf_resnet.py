"""RF-ResNets: the receptive field is measured by gradients, not assumed."""

import pytest
import torch
import torch.nn as nn
import torchvision

from solo_coplugin.backbones import (
    RF_PRESETS,
    RFResNetConfigError,
    effective_receptive_field,
    feature_map_side,
    resnet18_cifar,
    rf_resnet18,
    rf_resnet50,
    theoretical_receptive_field,
)
from solo_coplugin.core import FeatureMapTap

BUILDERS = {"rf_resnet18": rf_resnet18, "rf_resnet50": rf_resnet50}
CASES = [(name, preset, False) for name in BUILDERS for preset in RF_PRESETS[name]]
CASES += [("rf_resnet18", "rf99", True), ("rf_resnet50", "rf35", True)]


def tapped_features(model, x):
    tap = FeatureMapTap(model)
    model(x)
    return tap.pop()


@pytest.mark.parametrize("name, preset, cifar_stem", CASES)
def test_gradients_vanish_exactly_outside_the_theoretical_receptive_field(name, preset, cifar_stem):
    torch.manual_seed(0)
    # narrow (width 8) for speed: the receptive field does not depend on the width
    model = BUILDERS[name](preset=preset, cifar_stem=cifar_stem, width=8)
    rf = theoretical_receptive_field(model)
    assert rf.size == model.receptive_field
    side = ((rf.size + 2 * rf.jump) // rf.jump + 1) * rf.jump
    centre = feature_map_side(model, side) // 2
    first, last = rf.bounds(centre)
    assert 0 <= first and last < side, (first, last, side)

    grad = effective_receptive_field(model, side, (centre, centre))
    inside = torch.zeros_like(grad, dtype=torch.bool)
    inside[first : last + 1, first : last + 1] = True
    assert (grad[~inside] == 0).all(), "an input pixel outside the receptive field has a gradient"
    border = torch.cat(
        [
            grad[first, first : last + 1],
            grad[last, first : last + 1],
            grad[first : last + 1, first],
            grad[first : last + 1, last],
        ]
    )
    assert (border > 0).any(), "no pixel on the receptive field's border has a gradient"
    if not preset.endswith("full"):  # the name gives the RF (rf99; tiny_rf31 with its stem)
        assert rf.size == int(preset.rsplit("rf", 1)[1]) or cifar_stem


@pytest.mark.parametrize("name", BUILDERS)
def test_presets_keep_the_parameter_count_of_the_plain_resnet(name):
    plain = getattr(torchvision.models, name[3:])()
    plain.fc = nn.Identity()
    reference = sum(p.numel() for p in plain.parameters())
    for preset in RF_PRESETS[name]:
        model = BUILDERS[name](preset=preset)
        count = sum(p.numel() for p in model.parameters())
        print(
            f"{name} {preset}: RF {model.receptive_field} px, {count / 1e6:.2f}M parameters "
            f"(plain {reference / 1e6:.2f}M)"
        )
        assert abs(count / reference - 1) < 0.02
    bag = BUILDERS[name](preset="rf99", bag_mlp=True)
    assert bag(torch.randn(2, 3, 64, 64)).shape == (2, bag.num_features)


def test_torchvision_parameter_names_and_checkpoints():
    plain = torchvision.models.resnet18()
    weights = {k: v for k, v in plain.state_dict().items() if not k.startswith("fc.")}
    rf_resnet18(preset="full").load_state_dict(weights, strict=True)
    rf99 = rf_resnet18(preset="rf99").state_dict()
    assert set(rf99) == set(weights)
    same = [k for k in weights if rf99[k].shape == weights[k].shape]
    assert all(k in same for k in weights if k.startswith(("conv1", "layer1", "layer2")))


@pytest.mark.parametrize("name, dim", [("rf_resnet18", 512), ("rf_resnet50", 2048)])
@pytest.mark.parametrize("size, cifar_stem, side", [(224, False, 7), (32, True, 4)])
def test_forward_shapes(name, dim, size, cifar_stem, side):
    model = BUILDERS[name](preset="rf99", cifar_stem=cifar_stem, width=16)
    x = torch.randn(2, 3, size, size)
    assert model(x).shape == (2, dim // 4)
    assert model.forward_features(x).shape == (2, dim // 4, side, side)
    assert model.feature_map_size(size) == side
    torch.testing.assert_close(model(x), tapped_features(model, x).mean(dim=(2, 3)))


def test_theoretical_receptive_field_of_torchvision_and_small_image_resnets():
    assert theoretical_receptive_field(torchvision.models.resnet18()).size == 435
    assert theoretical_receptive_field(torchvision.models.resnet50()).size == 427
    assert theoretical_receptive_field(resnet18_cifar()).size == 109


@pytest.mark.parametrize("preset, rf", [("tiny_rf31", 31), ("tiny_full", 215)])
def test_tiny_presets_see_a_part_of_a_64_px_image_on_a_4x4_grid(preset, rf):
    model = rf_resnet18(preset=preset, width=16)
    assert model.stem == "half" and model.receptive_field == rf
    x = torch.randn(2, 3, 64, 64)
    assert model.forward_features(x).shape == (2, 128, 4, 4)
    # measured: a corner position depends on no pixel beyond its receptive field
    grad = effective_receptive_field(model, 64, (0, 0))
    first, last = theoretical_receptive_field(model).bounds(0)
    seen = grad.nonzero()
    assert seen.max().item() == min(last, 63)
    if rf < 64:
        assert (grad[last + 1 :, :] == 0).all() and (grad[:, last + 1 :] == 0).all()


def test_tiny_presets_differ_only_in_kernels():
    bounded, full = rf_resnet18(preset="tiny_rf31"), rf_resnet18(preset="tiny_full")
    assert isinstance(bounded.maxpool, nn.Identity) and bounded.conv1.stride == (2, 2)
    assert (bounded.conv1.weight.shape, bounded.num_features) == (
        full.conv1.weight.shape,
        full.num_features,
    )
    counts = [sum(p.numel() for p in m.parameters()) for m in (bounded, full)]
    assert abs(counts[0] / counts[1] - 1) < 0.02


def test_settings_that_would_override_each_other_are_refused():
    with pytest.raises(
        RFResNetConfigError, match=r"preset='rf7' and backbone.kwargs.kernel3_blocks=\[2, 1, 0, 0\]"
    ):
        rf_resnet18(preset="rf7", kernel3_blocks=[2, 1, 0, 0])
    with pytest.raises(RFResNetConfigError, match=r"preset='rf99' and .*kernel3_blocks"):
        rf_resnet18(preset="rf99", kernel3_blocks=[2, 2, 0, 0])
    with pytest.raises(
        RFResNetConfigError, match=r"cifar_stem=True and backbone.kwargs.stem='half'"
    ):
        rf_resnet18(stem="half", cifar_stem=True)
    with pytest.raises(RFResNetConfigError, match=r"preset='tiny_rf31' brings the 'half' stem"):
        rf_resnet18(preset="tiny_rf31", cifar_stem=True)
    with pytest.raises(RFResNetConfigError, match=r"preset='tiny_full' brings .* 'imagenet'"):
        rf_resnet18(preset="tiny_full", stem="imagenet")
    with pytest.raises(RFResNetConfigError, match=r"stem='tiny' is not a stem"):
        rf_resnet18(stem="tiny")
    with pytest.raises(RFResNetConfigError, match=r"backbone.kwargs.widht: not a setting of rf_"):
        rf_resnet18(widht=16)
    assert rf_resnet18(stem="cifar", cifar_stem=True).stem == "cifar"
    assert rf_resnet18(preset="tiny_rf31", stem="half").stem == "half"


def test_bad_input():
    with pytest.raises(RFResNetConfigError, match=r"backbone.kwargs.preset='rf7' .* choose one"):
        rf_resnet18(preset="rf7")
    with pytest.raises(RFResNetConfigError, match=r"kernel3_blocks=\[3, 3, 0, 0\] does not fit"):
        rf_resnet18(kernel3_blocks=[3, 3, 0, 0])
    with pytest.raises(RFResNetConfigError, match=r"kernel3_blocks=\[1, 1\] does not fit"):
        rf_resnet50(kernel3_blocks=[1, 1])
    model = rf_resnet18()
    with pytest.raises(RFResNetConfigError, match=r"16 px input is smaller than .*cifar_stem"):
        model(torch.randn(2, 3, 16, 16))
    assert rf_resnet18(kernel3_blocks=[1, 1, 0, 0]).kernel3_blocks == (1, 1, 0, 0)
