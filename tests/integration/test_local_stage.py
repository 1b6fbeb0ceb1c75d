"""``method_kwargs.local_stage``: CO methods with the local representations of an earlier stage."""

import json

import pytest
import torch
from omegaconf import OmegaConf
from solo.methods import BYOL, DINO, SimCLR

from solo_coplugin.eval.checkpoint import frozen_from_checkpoint
from solo_coplugin.methods import CoBYOL, CoDINO, CoMoCoV3, CoSimCLR

from .utils import (
    SMALL_HEADS,
    augmentation_cfg,
    co_byol_local_loss_before_and_after,
    gen_base_cfg,
    gen_batch,
    small_image_co_byol_cfg,
)

# name, CO class, base class, base name, has momentum
METHODS = {
    "co_byol": (CoBYOL, BYOL, "byol", True),
    "co_simclr": (CoSimCLR, SimCLR, "simclr", False),
    "co_dino": (CoDINO, DINO, "dino", True),
}
# a narrow ResNet-18 with the CIFAR stem (for speed) at 32 px: (channels, side) of each stage
WIDTH = 16
STAGES = {"layer2": (32, 17), "layer3": (64, 9), "layer4": (128, 5)}


def narrow_cfg(method, momentum, **method_kwargs):
    cfg = gen_base_cfg(
        method, dataset="custom", backbone="resnet18_cifar", momentum=momentum, **method_kwargs
    )
    cfg.backbone.kwargs = {"width": WIDTH}
    return cfg


def build(name, **co_kwargs):
    cls, _, base, momentum = METHODS[name]
    return cls(narrow_cfg(name, momentum, **SMALL_HEADS[base], **co_kwargs))


def step(model, batch_seed=1):
    torch.manual_seed(batch_seed)
    loss = model.training_step(gen_batch(4), 0)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), grads


@pytest.mark.parametrize("name", ["co_byol", "co_simclr"])
def test_the_default_stage_is_the_pooled_map_bit_for_bit(name):
    runs = {}
    for stage in (None, "layer4"):
        torch.manual_seed(0)
        model = build(name, local_stage=stage)
        assert (model.local_stage, model.local_channels) == ("layer4", STAGES["layer4"][0])
        runs[stage] = model.state_dict(), *step(model)
    (state, loss, grads), (explicit_state, explicit_loss, explicit_grads) = runs.values()
    assert state.keys() == explicit_state.keys()
    assert all(torch.equal(state[k], explicit_state[k]) for k in state)
    assert torch.equal(loss, explicit_loss) and grads.keys() == explicit_grads.keys()
    assert all(torch.equal(grads[k], explicit_grads[k]) for k in grads)


@pytest.mark.parametrize(
    "name, stage",
    [("co_byol", "layer2"), ("co_byol", "layer3"), ("co_simclr", "layer2"), ("co_dino", "layer3")],
)
def test_local_weight_zero_reproduces_the_base_method_at_every_stage(name, stage):
    cls, base_cls, base, momentum = METHODS[name]
    torch.manual_seed(0)
    base_loss, base_grads = step(base_cls(narrow_cfg(base, momentum, **SMALL_HEADS[base])))
    results = {}
    for weight in (0.0, 0.3):
        torch.manual_seed(0)
        model = build(name, local_weight=weight, local_stage=stage)
        results[weight] = step(model)
    co_loss, co_grads = results[0.0]
    assert torch.equal(co_loss, base_loss)
    assert set(base_grads) <= set(co_grads)
    for param_name, grad in base_grads.items():
        assert torch.equal(co_grads[param_name], grad), param_name
    assert not torch.equal(results[0.3][0], base_loss)


@pytest.mark.parametrize(
    "name, stage", [("co_byol", "layer2"), ("co_byol", "layer3"), ("co_simclr", "layer3")]
)
def test_the_stage_feeds_the_local_heads_and_their_gradient_stops_there(name, stage):
    torch.manual_seed(0)
    model = build(name, local_weight=1.0, local_stage=stage)
    channels, side = STAGES[stage]
    first_key = next(iter(model.local_head_names))
    assert model.local_heads[first_key][0].in_features == channels == model.local_channels
    x = gen_batch(4)[1][0]
    out = model(x)
    assert out[f"local_{first_key}"].shape == (4, side * side, 32)
    # the global representation is still the backbone's pooled output
    assert out["feats"].shape == (4, STAGES["layer4"][0])
    model.eval()
    torch.testing.assert_close(model(x)["feats"], model.backbone(x))
    model.feature_map_tap.pop()
    model.train()

    model.training_step(gen_batch(4), 0).backward()
    for key in model.local_head_names:
        assert all(p.grad.abs().sum() > 0 for p in model.local_heads[key].parameters())
    stages = ["layer1", "layer2", "layer3", "layer4"]
    below, above = stages[: stages.index(stage) + 1], stages[stages.index(stage) + 1 :]
    assert model.backbone.conv1.weight.grad.abs().sum() > 0
    for layer in below:
        assert any(p.grad.abs().sum() > 0 for p in getattr(model.backbone, layer).parameters())
    # local_weight = 1: only the local loss trains the backbone, and it never reaches above
    for layer in above:
        grads = [p.grad for p in getattr(model.backbone, layer).parameters()]
        assert all(g is None or not g.any() for g in grads), layer
    global_head = getattr(model, model.local_head_names[first_key])
    assert all(p.grad is None or not p.grad.any() for p in global_head.parameters())


def narrow_co_byol_cfg(**co_kwargs):
    cfg = small_image_co_byol_cfg(**co_kwargs)
    cfg.backbone.kwargs = {"width": WIDTH}
    return cfg


def test_receptive_field_of_the_stage_is_reported_next_to_the_backbones():
    model = CoBYOL(narrow_co_byol_cfg(local_stage="layer3"))
    assert (model.local_receptive_field, model.backbone_receptive_field) == (53, 109)
    assert model.describe_local_stage(32, (64, 9, 9)) == (
        "co_byol: local representations from layer3 of resnet18_cifar (64 channels, 9x9 at "
        "32 px), receptive field 53 px (the pooled layer4: 109 px)"
    )
    default = CoBYOL(narrow_co_byol_cfg())
    assert default.describe_local_stage() == (
        "co_byol: local representations from layer4 of resnet18_cifar (128 channels), receptive "
        "field 109 px"
    )


def test_an_intermediate_vit_block_gives_its_patch_tokens():
    torch.manual_seed(0)
    cfg = gen_base_cfg(
        "co_mocov3",
        dataset="custom",
        backbone="vit_tiny",
        momentum=True,
        **SMALL_HEADS["mocov3"],
        local_stage="blocks.5",
        local_head="shared",  # the blocks have the backbone's width: shared heads fit
    )
    cfg.backbone.kwargs = {"img_size": 32, "patch_size": 8}
    cfg.augmentations = augmentation_cfg(32)
    model = CoMoCoV3(cfg).eval()
    assert (model.local_stage, model.local_channels, model.local_receptive_field) == (
        "blocks.5",
        192,
        None,
    )
    x = torch.randn(2, 3, 32, 32)
    out = model(x)
    assert out["local_z"].shape == (2, 16, 32)
    torch.testing.assert_close(out["feats"], model.backbone(x))  # still the class token
    model.feature_map_tap.pop()
    assert out["feats"].shape == (2, 192)
    assert torch.isfinite(model.train().training_step(gen_batch(2), 0))


def test_a_few_real_steps_lower_the_local_loss_at_an_earlier_stage(cifar10_subset):
    torch.manual_seed(0)
    model = CoBYOL(narrow_co_byol_cfg(batch_size=16, local_stage="layer3"))
    before, after = co_byol_local_loss_before_and_after(model, cifar10_subset / "train", 10)
    print(f"CO-BYOL (layer3) local loss on a fixed real batch: {before:.4f} -> {after:.4f}")
    assert after < 0.8 * before


def test_evaluation_reads_the_stage_a_run_was_trained_with(tmp_path):
    torch.manual_seed(0)
    cfg = narrow_co_byol_cfg(local_stage="layer3")
    model = CoBYOL(cfg)
    torch.save({"state_dict": model.state_dict()}, tmp_path / "last.ckpt")
    (tmp_path / "args.json").write_text(json.dumps(OmegaConf.to_container(cfg)))
    frozen, loaded_cfg = frozen_from_checkpoint(tmp_path)
    assert loaded_cfg.method_kwargs.local_stage == frozen.tap.stage == "layer3"
    feats, feature_map = frozen.forward_map(torch.rand(2, 3, 32, 32))
    assert feats.shape == (2, 128) and feature_map.shape == (2, 64, 9, 9)
