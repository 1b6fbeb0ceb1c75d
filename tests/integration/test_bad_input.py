"""Each bad input fails at start-up with one message that names the key and the fix."""

import importlib.metadata

import pytest

from solo_coplugin import solo_compat
from solo_coplugin.core import CoConfigError, UnsupportedBackboneError
from solo_coplugin.methods import CoBYOL, CoSimCLR

from .utils import SMALL_HEADS, small_image_co_byol_cfg


@pytest.mark.parametrize(
    "co_kwargs, match",
    [
        ({"local_weight": 1.5}, r"method_kwargs\.local_weight must be in \[0, 1\], got 1.5"),
        ({"local_weight": -0.1}, r"method_kwargs\.local_weight must be in \[0, 1\]"),
        ({"local_grid": 0}, r"method_kwargs\.local_grid must be null .* or an integer >= 1"),
        (
            {"local_grid": 6},
            r"local_grid=6 is larger than the 5x5 feature map of "
            r"backbone.name=resnet18_cifar at 32 px",
        ),
        ({"local_head": "both"}, r"method_kwargs\.local_head must be one of"),
        (
            {"local_recompute": "yes"},
            r"method_kwargs\.local_recompute must be True or False, got 'yes'\. "
            r"Fix: method_kwargs\.local_recompute=False",
        ),
        ({"local_small_crops": 1}, r"method_kwargs\.local_small_crops must be True or False"),
        (
            {"local_stage": "layer1"},
            r"method_kwargs\.local_stage='layer1' is not a stage of backbone\.name=resnet18_cifar; "
            r"choose one of layer2, layer3, layer4 \(null: layer4",
        ),
        ({"local_stage": 3}, r"method_kwargs\.local_stage must be null .* got 3"),
        (
            {"local_stage": "layer3", "local_head": "shared"},
            r"local_head=shared applies the global heads, which read the backbone's 512 "
            r"features, to the local representations of method_kwargs\.local_stage=layer3, "
            r"which have 256 channels\. Fix: method_kwargs\.local_head=separate",
        ),
    ],
)
@pytest.mark.parametrize("cls", [CoBYOL, CoSimCLR])
def test_bad_co_kwargs(cls, co_kwargs, match):
    cfg = small_image_co_byol_cfg(**co_kwargs)
    if cls is CoSimCLR:
        cfg.method, cfg.method_kwargs = "co_simclr", {**SMALL_HEADS["simclr"], **co_kwargs}
    with pytest.raises(CoConfigError, match=match):
        cls(cfg)


def test_backbone_without_spatial_feature_map():
    with pytest.raises(UnsupportedBackboneError, match=r"backbone.name=poolformer_s12 .* Fix"):
        CoBYOL(small_image_co_byol_cfg(backbone="poolformer_s12", crop_size=32))


def test_backbone_that_does_not_fit_the_crop_size():
    with pytest.raises(CoConfigError, match=r"vit_tiny does not run on the configured 32 px crops"):
        CoBYOL(small_image_co_byol_cfg(backbone="vit_tiny", crop_size=32))  # built for 224 px


def test_imagenet_stem_on_small_images_has_nothing_local():
    with pytest.raises(CoConfigError, match=r"resnet18 ends in a 1x1 feature map at 32 px"):
        CoBYOL(small_image_co_byol_cfg(backbone="resnet18"))


def test_large_crops_other_than_two():
    cfg = small_image_co_byol_cfg()
    cfg.data.num_large_crops = 3
    with pytest.raises(CoConfigError, match=r"exactly 2 large crops.*data.num_large_crops=3"):
        CoBYOL(cfg)


def test_solo_learn_missing(monkeypatch):
    monkeypatch.setattr(solo_compat, "solo_learn_available", lambda: False)
    with pytest.raises(solo_compat.SoloLearnMissingError, match="need solo-learn.*pip install"):
        solo_compat.require_solo_learn()


def test_solo_learn_too_old(monkeypatch):
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "1.0.5")
    with pytest.raises(solo_compat.SoloLearnMissingError, match=">= 1.0.6, found 1.0.5"):
        solo_compat.require_solo_learn()
