"""The CO methods built like solo-learn's own method tests, plus the CO properties."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from solo.losses.ressl import ressl_loss_func
from solo.losses.simsiam import simsiam_loss_func
from solo.methods import (
    BYOL,
    DINO,
    METHODS,
    NNBYOL,
    NNCLR,
    VICReg,
    BarlowTwins,
    MoCoV2Plus,
    MoCoV3,
    NNSiam,
    ReSSL,
    SimCLR,
    SimSiam,
    VIbCReg,
)

from solo_coplugin.core import (
    CoConfigError,
    co_ressl_local_loss,
    co_simsiam_local_loss,
    lean_blocks,
    nearest_neighbour,
)
from solo_coplugin.methods import (
    CoBarlowTwins,
    CoBYOL,
    CoDINO,
    CoMoCoV2Plus,
    CoMoCoV3,
    CoNNBYOL,
    CoNNCLR,
    CoNNSiam,
    CoReSSL,
    CoSimCLR,
    CoSimSiam,
    CoVIbCReg,
    CoVICReg,
    co_method,
)
from solo_coplugin.methods import METHODS as CO_METHODS
from solo_coplugin.methods import UNSUPPORTED

from .utils import (
    augmentation_cfg,
    gen_base_cfg,
    gen_batch,
    gen_trainer,
    SMALL_HEADS,
    small_image_co_byol_cfg,
)
from .utils import prepare_dummy_dataloaders

# name, CO class, base class, base name, has momentum, local head keys
CASES = [
    ("co_byol", CoBYOL, BYOL, "byol", True, ("z", "p")),
    ("co_simclr", CoSimCLR, SimCLR, "simclr", False, ("z",)),
    ("co_mocov3", CoMoCoV3, MoCoV3, "mocov3", True, ("z", "q")),
    ("co_dino", CoDINO, DINO, "dino", True, ("z",)),
    ("co_vicreg", CoVICReg, VICReg, "vicreg", False, ("z",)),
    ("co_barlow_twins", CoBarlowTwins, BarlowTwins, "barlow_twins", False, ("z",)),
    ("co_mocov2plus", CoMoCoV2Plus, MoCoV2Plus, "mocov2plus", True, ("z",)),
]
OUTPUT_DIM = {"dino": 32}  # DINO's head ends in num_prototypes outputs
IDS = [case[0] for case in CASES]
# the other CO variants get the per-method properties (registration, forward, weight 0 = base,
# RNG, gradients; learning in test_learning.py); to keep the suite fast, the CO machinery they
# share (grids, small crops, backbones, recompute, bf16, Lightning) runs on CASES and a few of them
MORE_CASES = [
    ("co_simsiam", CoSimSiam, SimSiam, "simsiam", False, ("z", "p")),
    ("co_nnbyol", CoNNBYOL, NNBYOL, "nnbyol", True, ("z", "p")),
    ("co_nnclr", CoNNCLR, NNCLR, "nnclr", False, ("z", "p")),
    ("co_nnsiam", CoNNSiam, NNSiam, "nnsiam", False, ("z", "p")),
    ("co_ressl", CoReSSL, ReSSL, "ressl", True, ("z",)),
    ("co_vibcreg", CoVIbCReg, VIbCReg, "vibcreg", False, ("z",)),
]
ALL_CASES = CASES + MORE_CASES
ALL_IDS = [case[0] for case in ALL_CASES]


def build(name, cls, base, momentum, dataset="cifar10", backbone="resnet18", **co_kwargs):
    cfg = gen_base_cfg(
        name,
        dataset=dataset,
        backbone=backbone,
        momentum=momentum,
        **SMALL_HEADS[base],
        **co_kwargs,
    )
    return cls(cfg), cfg


@pytest.mark.parametrize("name, cls, base_cls, base, momentum, keys", ALL_CASES, ids=ALL_IDS)
def test_registered_and_forward_keys_and_shapes(name, cls, base_cls, base, momentum, keys):
    assert METHODS[name] is cls and issubclass(cls, base_cls)
    model, cfg = build(name, cls, base, momentum)
    model.add_and_assert_specific_cfg(cfg)
    assert cfg.method_kwargs.local_weight == 0.3 and cfg.method_kwargs.local_grid is None

    x = gen_batch(4)[1][0]
    out = model(x)
    base_out = base_cls.forward(model, x)  # the base method's keys are all still there
    model.feature_map_tap.pop()
    assert set(base_out) < set(out)
    assert out["feats"].shape == (4, model.features_dim) and out["logits"].shape == (4, 10)
    for key in keys:
        # resnet18 with solo-learn's CIFAR stem: 5x5 feature map at 32 px
        assert out[f"local_{key}"].shape == (4, 25, 32)
        assert out[key].shape == (4, 32)

    names = [group["name"] for group in model.learnable_params]
    assert [f"local_{cls.local_head_names[k]}" for k in keys] == names[-len(keys) :]
    assert "local_z" not in model.multicrop_forward(x)
    if momentum:
        assert "feats" in model.momentum_forward(x)


@pytest.mark.parametrize("name, cls, base_cls, base, momentum, keys", ALL_CASES, ids=ALL_IDS)
def test_local_weight_zero_reproduces_the_base_method_exactly(
    name, cls, base_cls, base, momentum, keys
):
    def step(model):
        torch.manual_seed(1)
        batch = gen_batch(4)
        loss = model.training_step(batch, 0)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        return loss.detach(), grads, model.state_dict()

    torch.manual_seed(0)
    base_model = base_cls(gen_base_cfg(base, momentum=momentum, **SMALL_HEADS[base]))
    base_loss, base_grads, base_state = step(base_model)

    results = {}
    for form in ("convex", "additive"):
        for weight in (0.0, 0.3):
            torch.manual_seed(0)
            model, _ = build(name, cls, base, momentum, local_weight=weight, local_loss_form=form)
            results[form, weight] = step(model)

    for form in ("convex", "additive"):
        co_loss, co_grads, _ = results[form, 0.0]
        assert torch.equal(co_loss, base_loss), form
        assert set(base_grads) <= set(co_grads)
        for param_name, grad in base_grads.items():
            assert torch.equal(co_grads[param_name], grad), (form, param_name)
        # the local heads did get their own gradient (zero-weighted) and a non-zero weight matters
        assert any(n.startswith("local_heads.") for n in co_grads)
        assert not torch.equal(results[form, 0.3][0], base_loss), form
    # the forms differ by w times the base method's loss (the classifiers' losses are common)
    assert not torch.equal(results["convex", 0.3][0], results["additive", 0.3][0])
    # whatever the weight, the step leaves the base method's state (queues, DINO's center,
    # BatchNorm statistics) as the base step does: nothing local is ever enqueued
    for setting, (_, _, co_state) in results.items():
        for key, value in base_state.items():
            assert torch.equal(co_state[key], value), (setting, key)


@pytest.mark.parametrize("name, cls, base_cls, base, momentum, keys", ALL_CASES, ids=ALL_IDS)
def test_co_parts_leave_the_global_rng_as_the_base_method_does(
    name, cls, base_cls, base, momentum, keys
):
    # same seed => same base weights and the same RNG state afterwards, i.e. the same data order
    # and augmentations for X and CO-X in main_pretrain.py (which seeds before building)
    torch.manual_seed(0)
    base_model = base_cls(gen_base_cfg(base, momentum=momentum, **SMALL_HEADS[base]))
    base_rng = torch.get_rng_state()
    torch.manual_seed(0)
    model, _ = build(name, cls, base, momentum)
    assert torch.equal(torch.get_rng_state(), base_rng)
    co_state = model.state_dict()
    for key, value in base_model.state_dict().items():
        assert torch.equal(co_state[key], value), key


@pytest.mark.parametrize("name, cls, base_cls, base, momentum, keys", ALL_CASES, ids=ALL_IDS)
def test_gradients_reach_local_heads_and_backbone_never_momentum_or_targets(
    name, cls, base_cls, base, momentum, keys
):
    torch.manual_seed(0)
    model, _ = build(name, cls, base, momentum, local_weight=1.0)
    loss = model.training_step(gen_batch(4), 0)
    loss.backward()
    for key in keys:
        trainable = [p for p in model.local_heads[key].parameters() if p.requires_grad]
        assert trainable and all(p.grad.abs().sum() > 0 for p in trainable)
    assert model.backbone.conv1.weight.grad.abs().sum() > 0
    # local_weight = 1: the global loss is weighted 0 and the local targets are stop-gradient
    global_head = getattr(model, cls.local_head_names[keys[0]])
    assert all(p.grad is None or not p.grad.any() for p in global_head.parameters())
    if momentum:
        assert all(p.grad is None for p in model.momentum_backbone.parameters())
        momentum_head = getattr(model, "momentum_" + cls.local_head_names[keys[0]])
        assert all(p.grad is None for p in momentum_head.parameters())


def test_co_simclr_local_target_grad_lets_gradient_reach_the_global_projector():
    torch.manual_seed(0)
    model, _ = build(
        "co_simclr", CoSimCLR, "simclr", False, local_weight=1.0, local_target_grad=True
    )
    model.training_step(gen_batch(4), 0).backward()
    assert all(p.grad.abs().sum() > 0 for p in model.projector.parameters())


# CO-VIbCReg: the only other variant with a layer of its own in its heads (IterNorm)
SHARED_CASES = CASES + [case for case in MORE_CASES if case[0] == "co_vibcreg"]


@pytest.mark.parametrize(
    "name, cls, base_cls, base, momentum, keys", SHARED_CASES, ids=[c[0] for c in SHARED_CASES]
)
def test_shared_heads_and_grid(name, cls, base_cls, base, momentum, keys):
    torch.manual_seed(0)
    model, _ = build(name, cls, base, momentum, local_head="shared", local_grid=2)
    assert not hasattr(model, "local_heads")
    groups = model.learnable_params
    assert not any(g["name"].startswith("local_") for g in groups)
    params = [id(p) for g in groups for p in g["params"]]
    assert len(params) == len(set(params))
    out = model(gen_batch(4)[1][0])
    assert out["local_z"].shape == (4, 4, OUTPUT_DIM.get(base, 32))  # 5x5 map to a 2x2 grid
    # shared: the local projection of a grid cell is the global projector applied to that cell
    model.eval()
    x = gen_batch(2)[1][0]
    out = model(x)
    model.backbone(x)
    cell = torch.nn.functional.adaptive_avg_pool2d(model.feature_map_tap.pop(), 2)[:, :, 1, 0]
    global_head = getattr(model, cls.local_head_names["z"])
    torch.testing.assert_close(out["local_z"][:, 2], global_head(cell))


@pytest.mark.parametrize("name, cls, base_cls, base, momentum, keys", CASES[:2], ids=IDS[:2])
def test_small_crops_locals_when_enabled(name, cls, base_cls, base, momentum, keys):
    torch.manual_seed(0)
    cfg = gen_base_cfg(name, momentum=momentum, **SMALL_HEADS[base], local_small_crops=True)
    cfg.augmentations = augmentation_cfg(32) + augmentation_cfg(24, num_crops=1)
    cfg.data.num_small_crops = 1  # as parse_cfg counts them
    model = cls(cfg)
    model.num_small_crops, model.num_crops, model.multicrop = 1, 3, True
    batch = gen_batch(4)
    batch[1].append(torch.randn(4, 3, 24, 24))
    assert model.multicrop_forward(batch[1][2])["local_z"].shape[:2] == (4, 16)
    loss = model.training_step(batch, 0)
    assert torch.isfinite(loss)


FIT_SETTINGS = [("cifar10", "resnet18"), ("custom", "resnet18_cifar")]
# of the other variants: a fixed-lr local predictor (CO-SimSiam) and a momentum network with a
# queue (CO-NNBYOL) through Lightning's optimizer set-up and momentum updates
FIT_CASES = [(*case, *setting) for case in CASES for setting in FIT_SETTINGS] + [
    (*case, *FIT_SETTINGS[0]) for case in MORE_CASES if case[0] in ("co_simsiam", "co_nnbyol")
]


@pytest.mark.parametrize(
    "name, cls, base_cls, base, momentum, keys, dataset, backbone",
    FIT_CASES,
    ids=[f"{case[0]}-{case[-2]}" for case in FIT_CASES],
)
def test_fit_with_lightning(name, cls, base_cls, base, momentum, keys, dataset, backbone):
    model, cfg = build(name, cls, base, momentum, dataset=dataset, backbone=backbone)
    train_dl, val_dl = prepare_dummy_dataloaders(dataset)
    trainer = gen_trainer(cfg)
    trainer.fit(model, train_dl, val_dl)
    logged = trainer.callback_metrics
    for key in ("train_global_loss", "train_local_loss", "train_local_z_std"):
        assert key in logged and torch.isfinite(logged[key])


def test_start_up_probe_uses_the_configured_crop_size():
    CoBYOL(small_image_co_byol_cfg(local_grid=5))  # 5x5 map at 32 px: fits


@pytest.mark.parametrize("name, cls, base_cls, base, momentum, keys", CASES[:1], ids=IDS[:1])
@pytest.mark.parametrize(
    "backbone, kwargs, hw",
    [
        ("rf_resnet18", {"preset": "rf99", "cifar_stem": True}, 4),
        ("rf_resnet50", {"preset": "rf35", "cifar_stem": True, "width": 16}, 4),
    ],
)
def test_base_and_co_methods_train_with_rf_resnets(
    name, cls, base_cls, base, momentum, keys, backbone, kwargs, hw
):
    for method, method_cls in ((base, base_cls), (name, cls)):
        cfg = gen_base_cfg(method, backbone=backbone, momentum=momentum, **SMALL_HEADS[base])
        cfg.backbone.kwargs = kwargs
        model = method_cls(cfg)
        assert model.features_dim == model.backbone.num_features
        if method_cls is cls:
            assert model(gen_batch(2)[1][0])["local_z"].shape == (2, hw * hw, 32)
        train_dl, val_dl = prepare_dummy_dataloaders("cifar10")
        gen_trainer(cfg).fit(model, train_dl, val_dl)


def test_unsupported_base_method_is_a_clear_error():
    assert co_method("dino") is CoDINO
    with pytest.raises(CoConfigError, match=r"'swav' has no CO variant \(a clustering method"):
        co_method("swav")
    with pytest.raises(CoConfigError, match=r"'mae' has no CO variant .* Supported: method="):
        co_method("mae")


def test_every_solo_learn_method_has_a_co_variant_or_a_reason():
    # walks solo-learn's own registry: a method added to solo-learn fails here until it gets a
    # CO variant or a reason in UNSUPPORTED
    co_classes = set(CO_METHODS.values())
    not_ssl = {"base", "linear"}
    solo_methods = {name for name, cls in METHODS.items() if cls not in co_classes} - not_ssl
    assert solo_methods >= {"byol", "simsiam", "all4one"}
    for name in sorted(solo_methods):
        has_variant = f"co_{name}" in CO_METHODS
        assert has_variant != (name in UNSUPPORTED), f"{name}: needs a CO variant or a reason"
        if has_variant:
            assert co_method(name) is CO_METHODS[f"co_{name}"]
            assert METHODS[name] in co_method(name).__mro__
        else:
            assert "not yet" not in UNSUPPORTED[name]
            with pytest.raises(CoConfigError, match=rf"{name!r} has no CO variant \(\w"):
                co_method(name)
    assert set(UNSUPPORTED) <= solo_methods  # no reason for a method solo-learn does not have


@pytest.mark.parametrize(
    "name, cls, base",
    [(c[0], c[1], c[3]) for c in MORE_CASES if c[0] in ("co_simsiam", "co_nnsiam", "co_nnclr")],
)
def test_stop_gradient_targets_refuse_local_target_grad(name, cls, base):
    with pytest.raises(CoConfigError, match=r"local_target_grad=True is not available .* Fix: "):
        build(name, cls, base, False, local_target_grad=True)


@pytest.mark.parametrize(
    "name, cls, base", [(c[0], c[1], c[3]) for c in CASES + MORE_CASES if c[4]]
)
def test_momentum_targets_refuse_local_target_grad(name, cls, base):
    # the momentum network gets no gradient: True would silently train as False does
    with pytest.raises(CoConfigError, match=r"not available .* momentum network.* Fix: "):
        build(name, cls, base, True, local_target_grad=True)


def test_local_heads_are_optimized_like_their_global_heads():
    model, _ = build("co_simsiam", CoSimSiam, "simsiam", False)
    groups = {group["name"]: group for group in model.learnable_params}
    # SimSiam keeps its predictor's learning rate fixed; so does CO-SimSiam for the local one
    assert groups["predictor"]["static_lr"] and groups["local_predictor"]["static_lr"]
    assert "static_lr" not in groups["local_projector"]


@pytest.mark.parametrize("base_cls", [NNBYOL, NNCLR, NNSiam])
def test_the_local_targets_are_the_neighbours_the_global_loss_uses(base_cls):
    torch.manual_seed(0)
    queue = F.normalize(torch.randn(64, 16), dim=-1)
    z = F.normalize(torch.randn(8, 16), dim=-1)
    _, neighbours = base_cls.find_nn(SimpleNamespace(queue=queue), z)  # solo-learn's own rule
    assert torch.equal(nearest_neighbour(z, queue), neighbours)


def test_with_one_position_the_local_losses_are_the_base_methods_own():
    torch.manual_seed(0)
    p, z = [torch.randn(8, 16) for _ in range(2)], [torch.randn(8, 16) for _ in range(2)]
    simsiam = simsiam_loss_func(p[0], z[1]) / 2 + simsiam_loss_func(p[1], z[0]) / 2
    local_p = [x.unsqueeze(1) for x in p]
    torch.testing.assert_close(co_simsiam_local_loss(local_p, z), simsiam)
    q, k = F.normalize(p[0], dim=-1), F.normalize(z[1], dim=-1)
    queue = F.normalize(torch.randn(32, 16), dim=-1)
    torch.testing.assert_close(
        co_ressl_local_loss([q.unsqueeze(1)], k, queue, 0.1, 0.04),
        ressl_loss_func(q, k, queue, 0.1, 0.04),
    )


def test_dino_local_head_must_have_the_global_prototypes():
    with pytest.raises(CoConfigError, match=r"local_num_prototypes=32"):
        build("co_dino", CoDINO, "dino", True, local_num_prototypes=16)


def test_dino_freezes_and_clips_the_local_head_too():
    torch.manual_seed(0)
    model, _ = build("co_dino", CoDINO, "dino", True, freeze_last_layer=1, clip_grad=1e-3)
    model.training_step(gen_batch(4), 0).backward()
    model.trainer = None
    type(model).current_epoch = property(lambda self: 0)
    try:
        model.on_after_backward()
    finally:
        del type(model).current_epoch
    assert all(p.grad is None for p in model.local_heads["z"].last_layer.parameters())
    norms = [p.grad.norm() for p in model.local_heads["z"].parameters() if p.grad is not None]
    assert norms and all(n <= 1e-3 + 1e-6 for n in norms)


@pytest.mark.parametrize(
    "name, cls, base, momentum, backbone, kwargs, size, side",
    [
        ("co_dino", CoDINO, "dino", True, "vit_tiny", {"img_size": 32, "patch_size": 8}, 32, 4),
        (
            "co_mocov3",
            CoMoCoV3,
            "mocov3",
            True,
            "vit_tiny",
            {"img_size": 32, "patch_size": 8},
            32,
            4,
        ),
        ("co_byol", CoBYOL, "byol", True, "swin_tiny", {"img_size": 64, "window_size": 2}, 64, 2),
        ("co_simclr", CoSimCLR, "simclr", False, "convnext_tiny", {}, 64, 2),
    ],
)
def test_transformer_and_convnext_backbones(
    name, cls, base, momentum, backbone, kwargs, size, side
):
    torch.manual_seed(0)
    cfg = gen_base_cfg(
        name, dataset="custom", backbone=backbone, momentum=momentum, **SMALL_HEADS[base]
    )
    cfg.backbone.kwargs = kwargs
    cfg.augmentations = augmentation_cfg(size)
    model = cls(cfg).eval()  # eval: Swin's stochastic depth would make two passes differ
    x = torch.randn(2, 3, size, size)
    out = model(x)
    assert out["local_z"].shape[:2] == (2, side * side)
    # the global feature is still the one solo-learn's probe reads (a ViT's class token)
    torch.testing.assert_close(out["feats"], model.backbone(x))
    model.train()
    model.feature_map_tap.pop()
    train_dl, val_dl = prepare_dummy_dataloaders("custom", size=size)
    trainer = gen_trainer(cfg)
    trainer.fit(model, train_dl, val_dl)
    assert torch.isfinite(trainer.callback_metrics["train_local_loss"])


@pytest.mark.parametrize(
    "name, cls, base, momentum, head",
    [("co_byol", CoBYOL, "byol", True, "z"), ("co_dino", CoDINO, "dino", True, "z")],
)
def test_slim_local_heads(name, cls, base, momentum, head):
    torch.manual_seed(0)
    model, _ = build(name, cls, base, momentum, local_hidden_dim=16)
    hidden = [
        m.out_features for m in model.local_heads[head].modules() if isinstance(m, torch.nn.Linear)
    ]
    assert 16 in hidden and 64 not in hidden
    out = model(gen_batch(4)[1][0])
    assert out["local_z"].shape == (4, 25, OUTPUT_DIM.get(base, 32))
    assert torch.isfinite(model.training_step(gen_batch(4), 0))
    with pytest.raises(CoConfigError, match=r"local_hidden_dim=16 needs separate local heads"):
        build(name, cls, base, momentum, local_hidden_dim=16, local_head="shared")


@pytest.mark.parametrize(
    "name, cls, base",
    [("co_vicreg", CoVICReg, "vicreg"), ("co_barlow_twins", CoBarlowTwins, "barlow_twins")],
)
@pytest.mark.parametrize("target_grad", [False, True])
def test_local_target_grad_for_methods_without_momentum(name, cls, base, target_grad):
    torch.manual_seed(0)
    model, _ = build(name, cls, base, False, local_weight=1.0, local_target_grad=target_grad)
    model.training_step(gen_batch(4), 0).backward()
    reached = any(p.grad is not None and p.grad.any() for p in model.projector.parameters())
    assert reached == target_grad


# the methods whose local heads have Linear, BatchNorm1d, ReLU, Linear blocks (run lean)
LEAN_CASES = [case for case in CASES if case[0] in ("co_byol", "co_mocov3", "co_vicreg")]


@pytest.mark.parametrize(
    "name, cls, base_cls, base, momentum, keys", LEAN_CASES, ids=[c[0] for c in LEAN_CASES]
)
def test_local_recompute_changes_memory_not_the_step(name, cls, base_cls, base, momentum, keys):
    def step(**co_kwargs):
        torch.manual_seed(0)
        model, _ = build(name, cls, base, momentum, **co_kwargs)
        torch.manual_seed(1)
        loss = model.training_step(gen_batch(4), 0)
        loss.backward()
        return loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}

    model, _ = build(name, cls, base, momentum)
    assert all(lean_blocks(head) for _, head in model.local_head_modules())
    loss, grads = step()
    recomputed_loss, recomputed_grads = step(local_recompute=True)
    torch.testing.assert_close(recomputed_loss, loss)
    assert set(recomputed_grads) == set(grads)
    for param_name, grad in grads.items():
        torch.testing.assert_close(recomputed_grads[param_name], grad, msg=param_name)


@pytest.mark.parametrize(
    "name, cls, base_cls, base, momentum, keys, co_kwargs",
    [(*case, {}) for case in CASES] + [(*CASES[0], {"local_recompute": True})],
    ids=IDS + ["co_byol-recompute"],
)
def test_bf16_mixed_precision_gives_finite_losses(
    name, cls, base_cls, base, momentum, keys, co_kwargs
):
    torch.manual_seed(0)
    model, _ = build(name, cls, base, momentum, **co_kwargs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model.training_step(gen_batch(4), 0)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(
        torch.isfinite(p.grad).all() for p in model.local_heads.parameters() if p.grad is not None
    )
