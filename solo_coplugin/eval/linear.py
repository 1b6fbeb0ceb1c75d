"""A linear probe on frozen features, fitted the same way for every checkpoint.

Multinomial logistic regression on the features standardized with the training set's mean and
standard deviation, fitted full-batch with L-BFGS (deterministic, no augmentation, seconds on a
CPU for a few thousand images). The L2 weight decay is chosen from ``WEIGHT_DECAYS`` on a 20%
hold-out of the training features, then the probe is refitted on all of them. (solo-learn's
``main_linear.py`` trains with SGD and augmentations for 100 epochs and evaluates custom datasets
at 224 px; this probe is for head-to-head comparisons at the training resolution.)
"""

from typing import Dict, Optional, Sequence

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
    num_classes: Optional[int] = None,
) -> Dict:
    """Fits the probe, choosing the weight decay on a hold-out split.

    Args:
        features (torch.Tensor): ``N x D`` training features (float32, CPU).
        labels (torch.Tensor): ``N`` labels.
        weight_decays (Sequence[float]): candidate weight decays.
        seed (int): seed of the hold-out split.
        num_classes (Optional[int]): outputs of the probe (default: the largest label + 1).

    Returns:
        Dict: ``probe`` (LinearProbe), ``weight_decay``, ``holdout_top1`` per weight decay.
    """

    features = features.float()
    num_classes = num_classes or int(labels.max()) + 1
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


class CrossFittedProbe(nn.Module):
    """Linear probes fitted on one half of a set of images, each applied to the other half.

    For features of those same images, in the same order: every image is classified by a probe
    that never saw it. (For analyses of the evaluation split when no probe fitted on the training
    split fits the features, e.g. those of an earlier stage.)

    Args:
        features (torch.Tensor): ``N x D`` features of the images.
        labels (torch.Tensor): ``N`` labels.
        seed (int): seed of the split into halves (and of each fit's hold-out split).
        weight_decays (Sequence[float]): candidate weight decays of each fit.
    """

    def __init__(
        self,
        features: torch.Tensor,
        labels: torch.Tensor,
        seed: int = 0,
        weight_decays: Sequence[float] = WEIGHT_DECAYS,
    ):
        super().__init__()
        order = torch.randperm(labels.shape[0], generator=torch.Generator().manual_seed(seed))
        second_half = torch.zeros(labels.shape[0], dtype=torch.bool)
        second_half[order[labels.shape[0] // 2 :]] = True
        self.register_buffer("second_half", second_half)
        num_classes = int(labels.max()) + 1
        #: [fitted on the first half, fitted on the second half]
        self.probes = nn.ModuleList(
            fit_linear_probe(
                features[rows], labels[rows], weight_decays, seed, num_classes=num_classes
            )["probe"]
            for rows in (~second_half, second_half)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.shape[0] != self.second_half.shape[0]:
            raise ValueError(
                f"a cross-fitted probe classifies features of the {self.second_half.shape[0]} "
                f"images it was fitted on, in their order; got {features.shape[0]} rows."
            )
        first_probe, second_probe = self.probes
        return torch.where(
            self.second_half.unsqueeze(1), first_probe(features), second_probe(features)
        )
