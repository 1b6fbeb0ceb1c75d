"""A linear probe on frozen features, fitted the same way for every checkpoint.

Multinomial logistic regression on the features standardized with the training set's mean and
standard deviation, fitted full-batch with L-BFGS (deterministic, no augmentation, seconds on a
CPU for a few thousand images). The L2 weight decay is chosen from ``WEIGHT_DECAYS`` on a 20%
hold-out of the training features, then the probe is refitted on all of them. (solo-learn's
``main_linear.py`` trains with SGD and augmentations for 100 epochs and evaluates custom datasets
at 224 px; this probe is for head-to-head comparisons at the training resolution.)
"""

from typing import Dict, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

WEIGHT_DECAYS = (1e-4, 1e-3, 1e-2, 1e-1)
HOLDOUT_FRACTION = 0.2
MAX_ITERATIONS = 300


class LinearProbe(nn.Module):
    """Standardization and a linear layer: ``W (x - mean) / std + b``.

    Args:
        mean (torch.Tensor): ``D`` feature means.
        std (torch.Tensor): ``D`` feature standard deviations.
        num_classes (int): classes.
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, num_classes: int):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.linear = nn.Linear(mean.numel(), num_classes)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear((features - self.mean) / self.std)


def _fit(features, labels, num_classes, weight_decay) -> LinearProbe:
    mean, std = features.mean(0), features.std(0).clamp_min(1e-6)
    probe = LinearProbe(mean, std, num_classes)
    optimizer = torch.optim.LBFGS(
        probe.linear.parameters(),
        lr=1.0,
        max_iter=MAX_ITERATIONS,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(probe(features), labels)
        loss = loss + 0.5 * weight_decay * probe.linear.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return probe.eval()


@torch.no_grad()
def top1(probe: LinearProbe, features: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy (%) of ``probe`` on ``features``."""

    return 100.0 * (probe(features).argmax(1) == labels).float().mean().item()


def fit_linear_probe(
    features: torch.Tensor,
    labels: torch.Tensor,
    weight_decays: Sequence[float] = WEIGHT_DECAYS,
    seed: int = 0,
) -> Dict:
    """Fits the probe, choosing the weight decay on a hold-out split.

    Args:
        features (torch.Tensor): ``N x D`` training features (float32, CPU).
        labels (torch.Tensor): ``N`` labels.
        weight_decays (Sequence[float]): candidate weight decays.
        seed (int): seed of the hold-out split.

    Returns:
        Dict: ``probe`` (LinearProbe), ``weight_decay``, ``holdout_top1`` per weight decay.
    """

    features = features.float()
    num_classes = int(labels.max()) + 1
    order = torch.randperm(features.shape[0], generator=torch.Generator().manual_seed(seed))
    num_holdout = max(1, int(HOLDOUT_FRACTION * features.shape[0]))
    held, kept = order[:num_holdout], order[num_holdout:]
    with torch.enable_grad():
        holdout = {
            wd: top1(
                _fit(features[kept], labels[kept], num_classes, wd), features[held], labels[held]
            )
            for wd in weight_decays
        }
        best = max(weight_decays, key=lambda wd: (holdout[wd], wd))
        probe = _fit(features, labels, num_classes, best)
    return {"probe": probe, "weight_decay": best, "holdout_top1": holdout}
