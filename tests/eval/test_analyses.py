import pytest
import torch

from solo_coplugin.backbones import resnet18_cifar
from solo_coplugin.eval.analyses import (
    check_mean_pooled,
    describe_local_representations,
    evaluation_subset,
    internal_corruption,
    redundancy,
    run_analyses,
    subset_pooled_features,
)
from solo_coplugin.eval.data import Normalize
from solo_coplugin.eval.features import FrozenBackbone, extract
from solo_coplugin.eval.linear import CrossFittedProbe, fit_linear_probe, top1


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
    # the pooled map, read with the probe of the pooled features, as before local_stage existed
    assert results["local_stage"] == "layer4" and results["local_probe"] == "pooled features"
    assert results["receptive_field"] == {"local_stage": 109, "pooled": 109}


def test_costly_analyses_use_a_seeded_subset_across_classes():
    # an ImageFolder split is sorted by class: the subset must not be its first classes only
    labels = torch.arange(1000) // 100
    subset = evaluation_subset(1000, 50, seed=0)
    assert len(set(subset.tolist())) == 50 and len(set(labels[subset].tolist())) >= 8
    assert torch.equal(subset, evaluation_subset(1000, 50, seed=0))
    assert len(evaluation_subset(1000, None)) == 1000


def test_analyses_of_an_earlier_stage_read_its_map_with_a_probe_of_its_pool():
    torch.manual_seed(0)
    backbone = resnet18_cifar(width=8)
    backbone.fc = torch.nn.Identity()
    normalize = Normalize((0.5,) * 3, (0.25,) * 3)
    model = FrozenBackbone(backbone, "resnet18_cifar", normalize, local_stage="layer3")
    images, labels = torch.rand(40, 3, 32, 32), torch.arange(40) % 4
    feats, maps = extract(model, images, with_maps=True)
    assert feats.shape == (40, 64) and maps.shape == (40, 32, 9, 9)
    probe = fit_linear_probe(feats, labels, weight_decays=(1e-2,))["probe"]
    cheap = {"corruptions": (), "epsilons": (), "batch_size": 64}
    results = run_analyses(model, probe, images, labels, **cheap)
    pool = maps.flatten(2).mean(2)
    assert results["clean"] == top1(probe, feats, labels)  # the global feature, unchanged
    assert results["local_stage"] == "layer3" and results["local_probe"] == "cross-fitted"
    assert results["internal_corruption"][0.0] == top1(CrossFittedProbe(pool, labels), pool, labels)
    assert results["sizes"]["feature_map"] == [32, 9, 9]
    assert results["receptive_field"] == {"local_stage": 53, "pooled": 109}
    assert describe_local_representations(results) == (
        "internal corruption and redundancy on layer3 (32x9x9 map), receptive field 53 px "
        "(pooled map: 109 px), probe of its pooled map: cross-fitted"
    )

    stage_probe = fit_linear_probe(pool, labels, weight_decays=(1e-2,))["probe"]
    given = run_analyses(model, probe, images, labels, local_probe=stage_probe, **cheap)
    assert given["local_probe"] == "given"
    assert given["redundancy"]["accuracy_from_k"][81] == top1(stage_probe, pool, labels)


def test_cross_fitted_probe_never_classifies_an_image_it_was_fitted_on():
    torch.manual_seed(0)
    features, labels = torch.randn(40, 64), torch.randint(0, 2, (40,))  # nothing to learn
    assert top1(fit_linear_probe(features, labels)["probe"], features, labels) >= 90
    cross_fitted = CrossFittedProbe(features, labels)
    assert top1(cross_fitted, features, labels) <= 75
    second_half = cross_fitted.second_half
    assert second_half.sum() == 20
    # the probe that classifies the second half is the one fitted on the first half only
    first_half_probe = fit_linear_probe(features[~second_half], labels[~second_half])["probe"]
    torch.testing.assert_close(
        cross_fitted(features)[second_half], first_half_probe(features)[second_half]
    )
    with pytest.raises(ValueError, match="features of the 40 images it was fitted on"):
        cross_fitted(features[:10])
