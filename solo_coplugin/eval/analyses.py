"""The paper's analyses of a frozen backbone with its linear probe.

- Noise corruption: probe accuracy on corrupted images (:mod:`solo_coplugin.eval.corruptions`).
- Internal corruption: a fraction ``p`` of the feature-map positions is dropped before pooling
  (the mean over the kept positions replaces the full mean), accuracy vs ``p``.
- Small adversarial attacks: cumulative L-inf PGD robust accuracy (:mod:`.attacks`).
- Redundancy of local representations: the probe (fitted on the full pool) applied to the mean
  of ``k`` random positions (``k = 1``: a single local representation), and the mean pairwise
  cosine similarity of the local representations of the same image (and with its global one).

Positions are dropped or sampled independently per image, with a fixed seed, so two checkpoints
are compared on the same draws. Dropping and sampling need a backbone whose pooled feature is
the mean of its feature map (ResNets, RF-ResNets without the bag MLP, ConvNeXt); for the others
(ViT class token, bag MLP) these two analyses raise an error that says so.

Internal corruption and redundancy read the local representations where the run took them: the
stage of the backbone's :class:`~solo_coplugin.core.FeatureMapTap` (``method_kwargs.local_stage``
of a CO run). For an earlier stage than the pooled map, "the pool" is the mean of that stage's
map, whose channels the probe of the pooled features does not read: those two analyses then use
a probe of the stage's pooled map, fitted on the training split by the caller (``local_probe``)
or else cross-fitted on the evaluation images (:class:`~solo_coplugin.eval.linear.CrossFittedProbe`:
each image classified by a probe fitted on the other half). The record says which.
"""

from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from solo_coplugin.backbones import stage_receptive_field
from solo_coplugin.eval.attacks import PAPER_EPSILONS, robust_accuracy
from solo_coplugin.eval.corruptions import CORRUPTIONS, corrupt
from solo_coplugin.eval.features import FrozenBackbone, extract
from solo_coplugin.eval.linear import CrossFittedProbe, LinearProbe, top1

DROP_FRACTIONS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


class ProbedModel(nn.Module):
    """Pixels in [0, 1] -> logits: the frozen backbone followed by its linear probe."""

    def __init__(self, backbone: FrozenBackbone, probe: LinearProbe):
        super().__init__()
        self.backbone = backbone
        self.probe = probe.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.probe(self.backbone(x))


def check_mean_pooled(feats: torch.Tensor, maps: torch.Tensor) -> None:
    """Raises unless the pooled features are the mean of the feature maps."""

    pooled = maps.flatten(2).mean(2)
    if pooled.shape != feats.shape or not torch.allclose(pooled, feats, rtol=1e-3, atol=1e-4):
        raise ValueError(
            "Dropping or sampling feature-map positions needs a backbone whose pooled feature is "
            "the mean of its feature map (ResNets, RF-ResNets with bag_mlp=False, ConvNeXt); "
            "this one pools differently (e.g. a ViT's class token or a bag MLP)."
        )


def subset_pooled_features(maps: torch.Tensor, keep: int, seed: int = 0) -> torch.Tensor:
    """The mean of ``keep`` random positions of each feature map (drawn per image).

    Args:
        maps (torch.Tensor): ``N x C x H x W`` feature maps.
        keep (int): positions kept (1 to H*W).
        seed (int): seed of the draws.

    Returns:
        torch.Tensor: ``N x C`` features.
    """

    rows = maps.flatten(2).transpose(1, 2)  # N x HW x C
    num_positions = rows.shape[1]
    keep = min(max(1, keep), num_positions)
    if keep == num_positions:
        return rows.mean(1)
    scores = torch.rand(rows.shape[:2], generator=torch.Generator().manual_seed(seed))
    kept = scores.argsort(1)[:, :keep]
    return rows.gather(1, kept.unsqueeze(-1).expand(-1, -1, rows.shape[2])).mean(1)


def internal_corruption(
    maps: torch.Tensor,
    labels: torch.Tensor,
    probe: LinearProbe,
    fractions: Sequence[float] = DROP_FRACTIONS,
    seed: int = 0,
) -> Dict[float, float]:
    """Probe accuracy (%) when a fraction ``p`` of the positions is dropped before pooling."""

    num_positions = maps.shape[2] * maps.shape[3]
    return {
        float(p): top1(
            probe, subset_pooled_features(maps, round((1 - p) * num_positions), seed), labels
        )
        for p in fractions
    }


def redundancy(
    maps: torch.Tensor,
    feats: torch.Tensor,
    labels: torch.Tensor,
    probe: LinearProbe,
    seed: int = 0,
) -> Dict:
    """Accuracy from ``k`` random positions and the similarity of local representations.

    Args:
        maps (torch.Tensor): ``N x C x H x W`` local representations.
        feats (torch.Tensor): ``N x C`` their pool (the pooled features, for the pooled map).
        labels (torch.Tensor): ``N`` labels.
        probe (LinearProbe): the probe of the pool, fitted on all positions.
        seed (int): seed of the draws.

    Returns:
        Dict: ``accuracy_from_k`` (``{k: accuracy}`` for k = 1, 2, 4, ..., H*W),
        ``local_local_cosine`` (mean over images of the mean pairwise cosine similarity of
        distinct positions), ``local_global_cosine`` (mean cosine of positions with the pooled
        feature).
    """

    num_positions = maps.shape[2] * maps.shape[3]
    ks = sorted(
        {*(2**i for i in range(num_positions.bit_length()) if 2**i < num_positions), num_positions}
    )
    accuracy = {k: top1(probe, subset_pooled_features(maps, k, seed), labels) for k in ks}
    rows = F.normalize(maps.flatten(2).transpose(1, 2), dim=2)  # N x HW x C
    gram = rows @ rows.transpose(1, 2)
    off_diagonal = (gram.sum((1, 2)) - gram.diagonal(dim1=1, dim2=2).sum(1)) / (
        num_positions * (num_positions - 1)
    )
    local_global = (rows * F.normalize(feats, dim=1).unsqueeze(1)).sum(2).mean(1)
    return {
        "accuracy_from_k": accuracy,
        "local_local_cosine": off_diagonal.mean().item(),
        "local_global_cosine": local_global.mean().item(),
    }


@torch.no_grad()
def corruption_accuracy(
    model: ProbedModel,
    images: torch.Tensor,
    labels: torch.Tensor,
    corruptions: Sequence[str] = CORRUPTIONS,
    severities: Sequence[int] = (1, 2, 3, 4, 5),
    batch_size: int = 256,
    seed: int = 0,
) -> Dict[str, Dict[int, float]]:
    """Probe accuracy (%) per corruption and severity (severity 0: clean)."""

    model.eval()
    device = next(model.parameters()).device
    results: Dict[str, Dict[int, float]] = {}
    for name in corruptions:
        results[name] = {}
        for severity in (0, *severities):
            generator = torch.Generator().manual_seed(seed)
            correct = 0
            for start in range(0, images.shape[0], batch_size):
                x = corrupt(
                    images[start : start + batch_size].to(device), name, severity, generator
                )
                correct += (
                    (model(x).argmax(1).cpu() == labels[start : start + batch_size]).sum().item()
                )
            results[name][severity] = 100.0 * correct / images.shape[0]
    return results


def evaluation_subset(total: int, size: Optional[int], seed: int = 0) -> torch.Tensor:
    """Indices of a seeded random subset of ``size`` images (all when None), the same for every
    checkpoint. (The first images of an ImageFolder split would be its first classes only.)"""

    order = torch.randperm(total, generator=torch.Generator().manual_seed(seed))
    return order[: size or total]


def run_analyses(
    backbone: FrozenBackbone,
    probe: LinearProbe,
    images: torch.Tensor,
    labels: torch.Tensor,
    corruption_images: Optional[int] = None,
    attack_images: Optional[int] = None,
    epsilons: Sequence[float] = PAPER_EPSILONS,
    corruptions: Sequence[str] = CORRUPTIONS,
    batch_size: int = 256,
    seed: int = 0,
    pgd_steps: int = 10,
    local_probe: Optional[nn.Module] = None,
) -> Dict:
    """All analyses of one checkpoint on one evaluation split.

    Args:
        backbone (FrozenBackbone): the frozen backbone.
        probe (LinearProbe): its linear probe (fitted on the training split's pooled features).
        images (torch.Tensor): evaluation pixels in [0, 1].
        labels (torch.Tensor): evaluation labels.
        corruption_images (Optional[int]): use N random images (seeded) for corruptions (cost).
        attack_images (Optional[int]): use N random images (seeded) for PGD (cost).
        epsilons (Sequence[float]): PGD radii.
        corruptions (Sequence[str]): corruptions to apply.
        batch_size (int): images per batch.
        seed (int): seed of every random draw.
        pgd_steps (int): PGD steps per radius.
        local_probe (Optional[nn.Module]): for a tapped stage before the pooled map, a probe of
            that stage's pooled map fitted on the training split; None: cross-fitted on
            ``images``. Unused for the pooled map itself (``probe`` reads it).

    Returns:
        Dict: ``clean``, ``internal_corruption``, ``redundancy``, ``corruption``, ``pgd``, and
        which local representations the second and third read: ``local_stage``,
        ``local_probe`` (``pooled features``, ``given`` or ``cross-fitted``),
        ``receptive_field`` (px, ``local_stage`` and ``pooled`` map; None where not computed).
    """

    device = next(backbone.parameters()).device
    probe = probe.to(device)
    feats, maps = extract(backbone, images, batch_size, with_maps=True)
    cpu_probe = probe.cpu()
    tap = backbone.tap
    if tap.is_last_stage:
        check_mean_pooled(feats, maps)
        pooled, local_probe, local_probe_kind = feats, cpu_probe, "pooled features"
    else:
        pooled = maps.flatten(2).mean(2)
        local_probe_kind = "cross-fitted" if local_probe is None else "given"
        if local_probe is None:
            local_probe = CrossFittedProbe(pooled, labels, seed)
        local_probe = local_probe.cpu()
    results = {
        "clean": top1(cpu_probe, feats, labels),
        "internal_corruption": internal_corruption(maps, labels, local_probe, seed=seed),
        "redundancy": redundancy(maps, pooled, labels, local_probe, seed=seed),
        "local_stage": tap.stage,
        "local_probe": local_probe_kind,
        "receptive_field": {
            "local_stage": stage_receptive_field(backbone.backbone, tap.stage),
            "pooled": stage_receptive_field(backbone.backbone, tap.last_stage),
        },
    }
    model = ProbedModel(backbone, probe.to(device))
    subset = evaluation_subset(images.shape[0], corruption_images, seed)
    results["corruption"] = corruption_accuracy(
        model, images[subset], labels[subset], corruptions, batch_size=batch_size, seed=seed
    )
    subset = evaluation_subset(images.shape[0], attack_images, seed)
    results["pgd"] = robust_accuracy(
        model,
        images[subset],
        labels[subset],
        epsilons,
        batch_size=batch_size,
        steps=pgd_steps,
        seed=seed,
    )
    results["sizes"] = {
        "images": images.shape[0],
        "corruption_images": min(corruption_images or images.shape[0], images.shape[0]),
        "attack_images": min(attack_images or images.shape[0], images.shape[0]),
        "feature_map": list(maps.shape[1:]),
        "pgd_steps": pgd_steps,
    }
    return results


def describe_local_representations(record: Dict) -> str:
    """Which local representations a :func:`run_analyses` record's internal corruption and
    redundancy read, in one line (records written before ``local_stage`` existed read the
    pooled map)."""

    text = f"internal corruption and redundancy on {record.get('local_stage', 'the pooled map')}"
    shape = record.get("sizes", {}).get("feature_map")
    if shape:
        text += f" ({'x'.join(str(n) for n in shape)} map)"
    receptive_field = record.get("receptive_field") or {}
    if receptive_field.get("local_stage") is not None:
        text += (
            f", receptive field {receptive_field['local_stage']} px (pooled map: "
            f"{receptive_field['pooled']} px)"
        )
    if record.get("local_probe") not in (None, "pooled features"):
        text += f", probe of its pooled map: {record['local_probe']}"
    return text
