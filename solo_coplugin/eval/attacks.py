"""L-inf PGD (Madry et al., 2018, https://arxiv.org/abs/1706.06083) on a frozen classifier.

Choices: 10 steps of size ``2.5 * eps / steps`` from a uniform random start inside the ball,
cross-entropy ascent, pixels kept in [0, 1]. Accuracies over several radii are *cumulative*: an
image counts as robust at ``eps`` only if no adversarial example was found at any radius up to
``eps`` (a perturbation found inside a smaller ball is also inside the larger one), so robust
accuracy never increases with ``eps`` and ``eps = 0`` is the clean accuracy.
"""

from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

PAPER_EPSILONS = (0.5 / 255, 1 / 255, 2 / 255, 4 / 255)
STEPS = 10


def pgd(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    eps: float,
    steps: int = STEPS,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Adversarial images inside the L-inf ball of radius ``eps`` around ``images``.

    Args:
        model (nn.Module): maps pixels in [0, 1] to logits (in eval mode).
        images (torch.Tensor): ``B x 3 x H x W`` pixels in [0, 1].
        labels (torch.Tensor): ``B`` labels.
        eps (float): the radius, in pixel units (e.g. 1/255).
        steps (int): PGD steps.
        generator (Optional[torch.Generator]): CPU generator of the random start.

    Returns:
        torch.Tensor: the adversarial images.
    """

    if eps == 0:
        return images
    step_size = 2.5 * eps / steps
    noise = torch.rand(images.shape, generator=generator, device="cpu").to(images.device)
    adversarial = (images + (2 * noise - 1) * eps).clamp(0, 1)
    for _ in range(steps):
        adversarial.requires_grad_(True)
        with torch.enable_grad():
            loss = F.cross_entropy(model(adversarial), labels)
            (grad,) = torch.autograd.grad(loss, adversarial)
        with torch.no_grad():
            adversarial = adversarial + step_size * grad.sign()
            adversarial = torch.min(torch.max(adversarial, images - eps), images + eps).clamp(0, 1)
    return adversarial.detach()


def robust_accuracy(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    epsilons: Sequence[float] = PAPER_EPSILONS,
    batch_size: int = 256,
    steps: int = STEPS,
    seed: int = 0,
) -> Dict[float, float]:
    """Cumulative robust top-1 accuracy (%) at each radius (plus 0: clean).

    Args:
        model (nn.Module): maps pixels in [0, 1] to logits.
        images (torch.Tensor): pixels in [0, 1] (on the model's device or CPU).
        labels (torch.Tensor): labels.
        epsilons (Sequence[float]): radii in pixel units.
        batch_size (int): images per attack batch.
        steps (int): PGD steps.
        seed (int): seed of the random starts.

    Returns:
        Dict[float, float]: ``{eps: accuracy}``, including ``0.0``.
    """

    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    radii = sorted({0.0, *map(float, epsilons)})
    robust = {eps: 0 for eps in radii}
    for start in range(0, images.shape[0], batch_size):
        x = images[start : start + batch_size].to(device)
        y = labels[start : start + batch_size].to(device)
        still_robust = torch.ones_like(y, dtype=torch.bool)
        for eps in radii:
            with torch.no_grad():
                correct = model(pgd(model, x, y, eps, steps, generator)).argmax(1) == y
            still_robust &= correct
            robust[eps] += still_robust.sum().item()
    return {eps: 100.0 * count / images.shape[0] for eps, count in robust.items()}
