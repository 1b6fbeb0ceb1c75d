"""Local representations from an earlier stage (``method_kwargs.local_stage``): what the tap reads,
that the backbone is unchanged, and the stage's receptive field."""

import pytest
import torch
import torchvision
from timm.models.convnext import ConvNeXt
from timm.models.swin_transformer import SwinTransformer
from timm.models.vision_transformer import VisionTransformer

from solo_coplugin.backbones import (
    effective_receptive_field,
    feature_map_side,
    resnet18_cifar,
    rf_resnet18,
    stage_receptive_field,
    theoretical_receptive_field,
)
from solo_coplugin.core import CoConfigError, FeatureMapTap, spatial_stages

RESNET_CASES = [
    ("resnet18_cifar", lambda: resnet18_cifar(width=8), "layer2", 16),
    ("resnet18_cifar", lambda: resnet18_cifar(width=8), "layer3", 32),
    ("rf_resnet18", lambda: rf_resnet18(preset="rf99", cifar_stem=True, width=8), "layer3", 32),
]


def up_to(backbone, stage, x):
    """The stage's output, computed explicitly."""

    x = backbone.maxpool(backbone.relu(backbone.bn1(backbone.conv1(x))))
    for name in ("layer1", "layer2", "layer3", "layer4"):
        x = getattr(backbone, name)(x)
        if name == stage:
            return x


@pytest.mark.parametrize("name, build, stage, channels", RESNET_CASES)
def test_an_earlier_stage_is_read_without_changing_the_backbone(name, build, stage, channels):
    torch.manual_seed(0)
    backbone = build()
    backbone.fc = torch.nn.Identity()
    x = torch.randn(2, 3, 32, 32)
    backbone.eval()
    untapped = backbone(x)
    tap = FeatureMapTap(backbone, name, stage)
    assert (tap.stage, tap.last_stage, tap.is_last_stage) == (stage, "layer4", False)
    # the backbone returns the same features, and the map is what the next stage received
    assert torch.equal(backbone(x), untapped)
    feature_map = tap.pop()
    assert feature_map.shape[1] == channels
    assert torch.equal(feature_map, up_to(backbone, stage, x))

    # a loss on the local representations reaches the stage and below, never the stages above
    backbone.train()
    backbone(x)
    tap.pop().square().mean().backward()
    assert backbone.conv1.weight.grad.abs().sum() > 0
    assert all(p.grad.abs().sum() > 0 for p in getattr(backbone, stage).parameters())
    assert all(p.grad is None for p in backbone.layer4.parameters())


def test_receptive_field_of_each_stage():
    resnet = torchvision.models.resnet18()
    assert [stage_receptive_field(resnet, s) for s in ("layer2", "layer3", "layer4")] == [
        99,
        211,
        435,
    ]
    assert stage_receptive_field(resnet, "layer4") == theoretical_receptive_field(resnet).size
    assert stage_receptive_field(resnet, "blocks.3") is None  # not a ResNet stage
    assert stage_receptive_field(torch.nn.Linear(2, 2), "layer4") is None


def stage_map(stage):
    def run(model, x):
        tap = FeatureMapTap(model, stage=stage)
        model(x)
        return tap.pop()

    return run


@pytest.mark.parametrize(
    "build, stage",
    [
        (lambda: resnet18_cifar(width=8), "layer2"),
        (lambda: rf_resnet18(preset="full", cifar_stem=True, width=8), "layer3"),
    ],
)
def test_gradients_vanish_exactly_outside_the_stage_receptive_field(build, stage):
    torch.manual_seed(0)
    model = build()
    model.fc = torch.nn.Identity()
    rf = theoretical_receptive_field(model, stage)
    assert rf.size < theoretical_receptive_field(model).size
    side = ((rf.size + 2 * rf.jump) // rf.jump + 1) * rf.jump
    centre = feature_map_side(model, side, stage) // 2
    first, last = rf.bounds(centre)
    assert 0 <= first and last < side, (first, last, side)

    grad = effective_receptive_field(model, side, (centre, centre), stage_map(stage))
    inside = torch.zeros_like(grad, dtype=torch.bool)
    inside[first : last + 1, first : last + 1] = True
    assert (grad[~inside] == 0).all(), "an input pixel outside the receptive field has a gradient"
    assert (grad[first, first : last + 1] > 0).any() and (grad[first : last + 1, last] > 0).any()


def tiny_transformers():
    vit = VisionTransformer(
        img_size=32, patch_size=8, embed_dim=16, depth=3, num_heads=2, num_classes=0
    )
    swin = SwinTransformer(
        img_size=32,
        patch_size=4,
        window_size=2,
        embed_dim=8,
        depths=(1, 1, 1),
        num_heads=(1, 1, 1),
        num_classes=0,
    )
    convnext = ConvNeXt(depths=(1, 1, 1, 1), dims=(8, 16, 32, 64), num_classes=0)
    return vit.eval(), swin.eval(), convnext.eval()


def test_stages_of_transformers_and_convnext():
    torch.manual_seed(0)
    vit, swin, convnext = tiny_transformers()
    x = torch.randn(2, 3, 32, 32)
    for model, stages, earlier, last_before_pooled, shape in [
        (vit, ["blocks.0", "blocks.1", "blocks.2", "norm"], "blocks.0", "blocks.2", (16, 4, 4)),
        (swin, ["layers.0", "layers.1", "layers.2", "norm"], "layers.1", "layers.2", (16, 4, 4)),
        (convnext, [f"stages.{i}" for i in range(4)] + ["norm_pre"], "stages.1", "stages.3", None),
    ]:
        assert list(spatial_stages(model)) == stages
        default = FeatureMapTap(model)
        taps = {stage: FeatureMapTap(model, stage=stage) for stage in (earlier, last_before_pooled)}
        untapped = model(x)
        maps = {stage: tap.pop() for stage, tap in taps.items()}
        pooled_map = default.pop()
        assert default.stage == stages[-1] and not taps[earlier].is_last_stage
        if shape is not None:
            assert maps[earlier].shape == (2, *shape)
        # the last stage, through the final norm, is the default map
        norm = getattr(model, stages[-1])
        last = norm(maps[last_before_pooled].permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        torch.testing.assert_close(last, pooled_map)
        for tap in (default, *taps.values()):
            tap.remove()
        assert torch.equal(model(x), untapped)


def test_an_unknown_stage_names_the_allowed_ones():
    vit, _, _ = tiny_transformers()
    with pytest.raises(
        CoConfigError,
        match=r"method_kwargs\.local_stage='layer1' is not a stage of backbone\.name=resnet18; "
        r"choose one of layer2, layer3, layer4 \(null: layer4",
    ):
        FeatureMapTap(torchvision.models.resnet18(), "resnet18", "layer1")
    with pytest.raises(
        CoConfigError, match=r"'blocks\.3' .* choose one of blocks\.0, blocks\.1, blocks\.2, norm"
    ):
        FeatureMapTap(vit, "vit_tiny", "blocks.3")
