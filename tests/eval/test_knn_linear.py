import torch

from solo_coplugin.eval.knn import knn_top1
from solo_coplugin.eval.linear import fit_linear_probe, top1


def clusters(n, d=16, classes=4, noise=0.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, d, generator=torch.Generator().manual_seed(99)) * 3
    labels = torch.randint(0, classes, (n,), generator=g)
    return centers[labels] + noise * torch.randn(n, d, generator=g), labels


def test_knn_and_probe_separate_clusters_and_fail_on_shuffled_labels():
    x, y = clusters(400)
    xt, yt = clusters(100, seed=1)
    assert knn_top1(x, y, xt, yt) == 100.0
    probe = fit_linear_probe(x, y)
    assert top1(probe["probe"], xt, yt) == 100.0
    shuffled = y[torch.randperm(400, generator=torch.Generator().manual_seed(0))]
    assert knn_top1(x, shuffled, xt, yt) < 50.0
    assert top1(fit_linear_probe(x, shuffled)["probe"], xt, yt) < 50.0


def test_knn_votes_are_weighted_by_similarity():
    # one very close neighbour of class 1 outweighs two distant ones of class 0 at a low T
    train = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.1, 1.0]])
    labels = torch.tensor([1, 0, 0])
    test = torch.tensor([[1.0, 0.3]])
    assert knn_top1(train, labels, test, torch.tensor([1]), k=3, temperature=0.07) == 100.0
    assert knn_top1(train, labels, test, torch.tensor([0]), k=3, temperature=100.0) == 100.0


def test_probe_is_deterministic_and_picks_a_weight_decay_on_the_holdout():
    x, y = clusters(200, noise=3.0)
    first, second = fit_linear_probe(x, y), fit_linear_probe(x, y)
    assert torch.equal(first["probe"].linear.weight, second["probe"].linear.weight)
    assert first["weight_decay"] in first["holdout_top1"]
    assert first["holdout_top1"][first["weight_decay"]] == max(first["holdout_top1"].values())
