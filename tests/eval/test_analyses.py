import pytest
import torch

from solo_coplugin.backbones import resnet18_cifar
from solo_coplugin.eval.analyses import (
    check_mean_pooled,
    evaluation_subset,
    internal_corruption,
    redundancy,
    run_analyses,
    subset_pooled_features,
)
from solo_coplugin.eval.data import Normalize
from solo_coplugin.eval.features import FrozenBackbone, extract
from solo_coplugin.eval.linear import fit_linear_probe, top1


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    backbone = resnet18_cifar()
    backbone.fc = torch.nn.Identity()
    model = FrozenBackbone(backbone, "resnet18_cifar", Normalize((0.5,) * 3, (0.25,) * 3))
    images = torch.rand(40, 3, 32, 32)
    labels = torch.arange(40) % 4
    feats, maps = extract(model, images, with_maps=True)
    probe = fit_linear_probe(feats, labels, weight_decays=(1e-2,))["probe"]
    return model, probe, images, labels, feats, maps


def test_frozen_backbone_stays_in_eval_mode_and_pools_its_map(tiny):
    model, _, images, _, feats, maps = tiny
    model.train()
    assert not model.backbone.training
    assert maps.shape == (40, 512, 5, 5)
    check_mean_pooled(feats, maps)
    assert torch.equal(extract(model, images)[0], feats)  # deterministic, eval-mode BN


def test_dropping_nothing_is_the_plain_accuracy(tiny):
    _, probe, _, labels, feats, maps = tiny
    plain = top1(probe, feats, labels)
    curve = internal_corruption(maps, labels, probe, fractions=(0.0, 0.5, 0.9))
    assert curve[0.0] == plain
    assert set(curve) == {0.0, 0.5, 0.9}
    assert redundancy(maps, feats, labels, probe)["accuracy_from_k"][25] == plain


def test_one_position_is_one_of_the_maps_positions(tiny):
    _, _, _, _, _, maps = tiny
    one = subset_pooled_features(maps, 1, seed=3)
    rows = maps.flatten(2).transpose(1, 2)
    distances = (rows - one.unsqueeze(1)).abs().amax(2)
    assert torch.all(distances.min(1).values == 0)
    # the same seed gives the same draws (X and CO-X are compared on the same positions)
    assert torch.equal(one, subset_pooled_features(maps, 1, seed=3))


def test_similarity_of_identical_positions_is_one():
    maps = torch.randn(3, 8, 1, 1).expand(3, 8, 4, 4).contiguous()
    feats = maps.mean((2, 3))
    probe = fit_linear_probe(feats, torch.tensor([0, 1, 0]), weight_decays=(1e-2,))["probe"]
    result = redundancy(maps, feats, torch.tensor([0, 1, 0]), probe)
    assert result["local_local_cosine"] == pytest.approx(1.0, abs=1e-5)
    assert result["local_global_cosine"] == pytest.approx(1.0, abs=1e-5)


def test_backbones_that_do_not_mean_pool_are_refused():
    maps = torch.randn(2, 4, 3, 3)
    with pytest.raises(ValueError, match="mean of its feature map"):
        check_mean_pooled(maps.amax((2, 3)), maps)


def test_all_analyses_of_one_model(tiny):
    model, probe, images, labels, feats, _ = tiny
    results = run_analyses(
        model,
        probe,
        images,
        labels,
        corruption_images=8,
        attack_images=4,
        corruptions=("contrast", "gaussian_noise"),
        pgd_steps=2,
    )
    assert results["clean"] == top1(probe, feats, labels)
    assert results["internal_corruption"][0.0] == results["clean"]
    assert set(results["corruption"]) == {"contrast", "gaussian_noise"}
    assert set(results["corruption"]["contrast"]) == {0, 1, 2, 3, 4, 5}
    assert list(results["pgd"])[0] == 0.0 and len(results["pgd"]) == 5
    assert results["sizes"] == {
        "images": 40,
        "corruption_images": 8,
        "attack_images": 4,
        "feature_map": [512, 5, 5],
        "pgd_steps": 2,
    }


def test_costly_analyses_use_a_seeded_subset_across_classes():
    # an ImageFolder split is sorted by class: the subset must not be its first classes only
    labels = torch.arange(1000) // 100
    subset = evaluation_subset(1000, 50, seed=0)
    assert len(set(subset.tolist())) == 50 and len(set(labels[subset].tolist())) >= 8
    assert torch.equal(subset, evaluation_subset(1000, 50, seed=0))
    assert len(evaluation_subset(1000, None)) == 1000
