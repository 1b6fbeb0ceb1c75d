import pytest
import torch
import torch.nn as nn
from torchvision.models import resnet18

from solo_coplugin.backbones import resnet18_cifar, resnet50_cifar
from solo_coplugin.core import FeatureMapTap, UnsupportedBackboneError, measure_feature_map_size


def headless(model):
    model.fc = nn.Identity()  # as solo-learn does
    return model


@pytest.mark.parametrize(
    "build, size, hw",
    [(resnet18, 64, (2, 2)), (resnet18, 224, (7, 7)), (resnet18_cifar, 32, (5, 5))],
)
def test_tap_reads_the_map_that_the_backbone_pools(build, size, hw):
    torch.manual_seed(0)
    backbone = headless(build())
    tap = FeatureMapTap(backbone, "test")
    x = torch.randn(2, 3, size, size)
    pooled = backbone(x)
    feature_map = tap.pop()
    assert feature_map.shape == (2, backbone.inplanes, *hw)
    # the pooled features are exactly the mean of the tapped map: the backbone ran unchanged
    torch.testing.assert_close(pooled, feature_map.mean(dim=(2, 3)))
    with pytest.raises(RuntimeError, match="before the tapped backbone ran"):
        tap.pop()


def test_small_image_backbones_have_the_cifar_stem():
    for build, dim in [(resnet18_cifar, 512), (resnet50_cifar, 2048)]:
        backbone = build("byol")
        assert backbone.conv1.kernel_size == (3, 3) and backbone.conv1.stride == (1, 1)
        assert isinstance(backbone.maxpool, nn.Identity)
        assert backbone.inplanes == dim


def test_measure_feature_map_size_leaves_state_untouched():
    backbone = headless(resnet18_cifar())
    tap = FeatureMapTap(backbone)
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    assert measure_feature_map_size(backbone, tap, 32) == (5, 5)
    assert backbone.training
    assert all(torch.equal(before[k], v) for k, v in backbone.state_dict().items())


def test_backbone_without_spatial_map_is_a_clear_error():
    with pytest.raises(UnsupportedBackboneError, match="backbone.name=vit_tiny"):
        FeatureMapTap(nn.Sequential(nn.Flatten(), nn.Linear(3, 3)), "vit_tiny")


def test_vit_without_patch_tokens_is_a_clear_error():
    class PatchEmbed(nn.Module):
        num_patches = 0

    class TokenOnlyViT(nn.Module):
        num_prefix_tokens = 1

        def __init__(self):
            super().__init__()
            self.patch_embed, self.blocks, self.norm = PatchEmbed(), nn.Sequential(), nn.Identity()

    with pytest.raises(UnsupportedBackboneError, match=r"backbone.name=vit_x has no patch tokens"):
        FeatureMapTap(TokenOnlyViT(), "vit_x")


def test_vit_patch_tokens_become_a_map_without_the_class_token():
    class ViTLike(nn.Module):
        num_prefix_tokens = 1

        def __init__(self):
            super().__init__()
            self.patch_embed = type("P", (), {"num_patches": 4})()
            self.blocks, self.norm = nn.Sequential(), nn.Identity()

        def forward(self, tokens):
            return self.norm(tokens)[:, 0]

    model = ViTLike()
    tap = FeatureMapTap(model, "vit")
    tokens = torch.arange(2 * 5 * 3, dtype=torch.float32).view(2, 5, 3)
    model(tokens)
    feature_map = tap.pop()
    assert feature_map.shape == (2, 3, 2, 2)
    torch.testing.assert_close(feature_map[1, :, 1, 0], tokens[1, 1 + 2])
