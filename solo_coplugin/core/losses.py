"""Local losses of CO-SSL and how they combine with the base method's loss (pure torch).

Reference: Aubret, Teulière, Triesch, "Seeing the Whole in the Parts in Self-Supervised
Representation Learning", arXiv 2501.02860, 2025.

CO-SSL aligns each *local* representation (a position of the backbone's feature map before
pooling, passed through the local heads) with the *global* target of the **other** view, using
the base method's own loss and stop-gradient rules (paper). Choices the paper leaves open, and
what this module does (see ``shared/design/co-ssl.md`` and the README):

- combination: ``L = (1 - w) * L_global + w * L_local`` with ``w = method_kwargs.local_weight``
  (default 0.3; the paper names a weight ``w_s`` and reports 0.2 to 0.5 as good). ``L_global``
  is the base method's loss exactly as solo-learn computes it, so ``w = 0`` reproduces the base
  method bit for bit;
- ``L_local`` is the mean over positions, images and (view, other view) pairs, whatever the
  base method's own reduction over views (BYOL sums its two view pairs);
- each local representation of view ``v`` is aligned with the global targets of every large
  view other than ``v`` (with two large crops: the other one);
- CO-SimCLR: the global side is a stop-gradient target by default
  (``method_kwargs.local_target_grad: false``); its negatives are the other images' global
  projections of both views, gathered over devices; the same image's global projection of the
  anchor's own view is neither positive nor negative.
"""

from typing import Callable, Iterator, Sequence, Tuple

import torch
import torch.distributed as dist
import torch.nn.functional as F

from solo_coplugin.core.distributed import is_distributed
from solo_coplugin.core.distributed import gather


def co_loss(global_loss: torch.Tensor, local_loss: torch.Tensor, local_weight: float):
    """Combines the base method's loss and the local loss: ``(1 - w) L_global + w L_local``.

    Args:
        global_loss (torch.Tensor): the base method's loss.
        local_loss (torch.Tensor): the CO local loss.
        local_weight (float): ``w`` in [0, 1].

    Returns:
        torch.Tensor: the combined loss.
    """

    return (1.0 - local_weight) * global_loss + local_weight * local_loss


def cross_view_pairs(num_views: int, num_target_views: int) -> Iterator[Tuple[int, int]]:
    """Yields (anchor view, target view) pairs with different views.

    Args:
        num_views (int): number of views with local representations (large crops first).
        num_target_views (int): number of views with global targets (the large crops).

    Yields:
        Tuple[int, int]: (anchor view index, target view index).
    """

    for anchor in range(num_views):
        for target in range(num_target_views):
            if target != anchor:
                yield anchor, target


def byol_local_loss(local_p: torch.Tensor, target_z: torch.Tensor) -> torch.Tensor:
    """BYOL's normalized MSE between every local prediction and its image's global target.

    ``2 - 2 * cos(p_local, z_target)``, averaged over images and positions; the target is
    detached (BYOL's stop-gradient on the momentum branch).

    Args:
        local_p (torch.Tensor): ``B x N x D`` local predictions of one view.
        target_z (torch.Tensor): ``B x D`` momentum projections of another view.

    Returns:
        torch.Tensor: the loss.
    """

    return 2 - 2 * F.cosine_similarity(local_p, target_z.detach().unsqueeze(1), dim=-1).mean()


def co_byol_local_loss(
    local_p: Sequence[torch.Tensor], momentum_z: Sequence[torch.Tensor]
) -> torch.Tensor:
    """CO-BYOL local loss: :func:`byol_local_loss` averaged over cross-view pairs.

    Args:
        local_p (Sequence[torch.Tensor]): per view, ``B x N x D`` local predictions (the large
            crops first, then any small crops whose locals are aligned).
        momentum_z (Sequence[torch.Tensor]): per large view, ``B x D`` momentum projections.

    Returns:
        torch.Tensor: the local loss.
    """

    losses = [
        byol_local_loss(local_p[anchor], momentum_z[target])
        for anchor, target in cross_view_pairs(len(local_p), len(momentum_z))
    ]
    return torch.stack(losses).mean()


def co_simclr_local_loss(
    local_z: Sequence[torch.Tensor],
    global_z: Sequence[torch.Tensor],
    indexes: torch.Tensor,
    temperature: float,
    target_grad: bool = False,
) -> torch.Tensor:
    """CO-SimCLR local loss: InfoNCE with local anchors and global positives and negatives.

    For the local projection at position ``n`` of view ``v`` of image ``b``, the positive is the
    global projection of image ``b`` in every other large view, the negatives are the global
    projections of all other images in all large views, gathered over devices (as solo-learn's
    ``simclr_loss_func``), with SimCLR's cosine similarity and temperature. Images are told apart
    by ``indexes`` (dataset indexes, unique across devices). The loss is averaged over the
    positions and images of each view, then over views.

    Args:
        local_z (Sequence[torch.Tensor]): per view, ``B x N x D`` local projections (the large
            crops first, then any small crops whose locals are aligned).
        global_z (Sequence[torch.Tensor]): per large view, ``B x D`` global projections.
        indexes (torch.Tensor): ``B`` dataset indexes of the images of the batch.
        temperature (float): SimCLR's temperature.
        target_grad (bool): let gradients flow into the global projections too. Defaults to
            False (global side as a stop-gradient target).

    Returns:
        torch.Tensor: the local loss.
    """

    num_target_views = len(global_z)
    targets = F.normalize(torch.cat(list(global_z)), dim=-1)  # (V_t * B) x D
    if not target_grad:
        targets = targets.detach()
    target_indexes = indexes.repeat(num_target_views)
    target_views = torch.arange(num_target_views, device=indexes.device).repeat_interleave(
        indexes.numel()
    )
    targets = gather(targets)
    target_indexes = gather(target_indexes)
    target_views = gather(target_views)
    same_image = indexes.view(-1, 1, 1) == target_indexes.view(1, 1, -1)  # B x 1 x K

    losses = []
    for view, view_local_z in enumerate(local_z):  # views may differ in positions (small crops)
        anchors = F.normalize(view_local_z, dim=-1)  # B x N x D
        logits = torch.einsum("bnd,kd->bnk", anchors, targets) / temperature
        positives = same_image & (target_views != view).view(1, 1, -1)
        candidates = positives | ~same_image
        log_positive = logits.masked_fill(~positives, float("-inf")).logsumexp(dim=-1)
        log_all = logits.masked_fill(~candidates, float("-inf")).logsumexp(dim=-1)
        losses.append((log_all - log_positive).mean())
    return torch.stack(losses).mean()


def co_mocov3_local_loss(
    local_q: Sequence[torch.Tensor], keys: Sequence[torch.Tensor], temperature: float
) -> torch.Tensor:
    """CO-MoCoV3 local loss: MoCo v3's InfoNCE with local queries and global keys.

    Each local query of view ``v`` of image ``b`` is an anchor; the momentum key of image ``b``
    in the other view is the positive and the keys of the other images, gathered over devices
    without gradient, are the negatives. As in MoCo v3 the loss is scaled by ``2 * temperature``;
    it is averaged over positions, images and cross-view pairs (MoCo v3 sums its two pairs).

    Args:
        local_q (Sequence[torch.Tensor]): per view, ``B x N x D`` local predictor outputs.
        keys (Sequence[torch.Tensor]): per large view, ``B x D`` momentum keys.
        temperature (float): MoCo v3's temperature.

    Returns:
        torch.Tensor: the local loss.
    """

    batch_size = keys[0].size(0)
    offset = batch_size * (dist.get_rank() if is_distributed() else 0)
    labels = torch.arange(batch_size, device=keys[0].device) + offset
    gathered = [gather(F.normalize(k, dim=-1).detach()) for k in keys]
    losses = []
    for anchor, target in cross_view_pairs(len(local_q), len(keys)):
        query = F.normalize(local_q[anchor], dim=-1)  # B x N x D
        logits = torch.einsum("bnd,md->bmn", query, gathered[target]) / temperature
        num_positions = query.size(1)
        losses.append(
            F.cross_entropy(logits, labels.unsqueeze(1).expand(-1, num_positions))
            * (2 * temperature)
        )
    return torch.stack(losses).mean()


def co_mocov2plus_local_loss(
    local_z: Sequence[torch.Tensor],
    keys: Sequence[torch.Tensor],
    queues: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """CO-MoCoV2+ local loss: MoCo's InfoNCE with local queries, global keys and the queue.

    Each local query of view ``v`` (normalized) has the momentum key of its image in view ``t``
    as positive and the queue of view ``t`` (as MoCo v2+ pairs them, taken before this step's
    enqueue) as negatives; averaged over positions, images and cross-view pairs.

    Args:
        local_z (Sequence[torch.Tensor]): per view, ``B x N x D`` local projections.
        keys (Sequence[torch.Tensor]): per large view, ``B x D`` normalized momentum keys.
        queues (torch.Tensor): ``V x D x K`` queue of past keys per large view.
        temperature (float): MoCo's temperature.

    Returns:
        torch.Tensor: the local loss.
    """

    losses = []
    for anchor, target in cross_view_pairs(len(local_z), len(keys)):
        query = F.normalize(local_z[anchor], dim=-1)  # B x N x D
        positive = torch.einsum("bnd,bd->bn", query, keys[target].detach()).unsqueeze(-1)
        negative = torch.einsum("bnd,dk->bnk", query, queues[target].detach())
        logits = torch.cat([positive, negative], dim=-1) / temperature
        labels = torch.zeros(logits.shape[:2], dtype=torch.long, device=logits.device)
        losses.append(F.cross_entropy(logits.flatten(0, 1), labels.flatten()))
    return torch.stack(losses).mean()


def co_dino_local_loss(
    local_logits: Sequence[torch.Tensor],
    teacher_logits: Sequence[torch.Tensor],
    center: torch.Tensor,
    teacher_temperature: float,
    student_temperature: float,
) -> torch.Tensor:
    """CO-DINO local loss: DINO's cross-entropy between the teacher and each local student output.

    The teacher output of view ``t`` is centered with DINO's center (as it was before this
    step's update: the center is updated from global teacher outputs only, by DINO's own loss)
    and sharpened with the teacher temperature; each local student output of another view is
    softened with the student temperature. Averaged over positions, images and cross-view pairs.

    Args:
        local_logits (Sequence[torch.Tensor]): per view, ``B x N x P`` local DINO-head outputs.
        teacher_logits (Sequence[torch.Tensor]): per large view, ``B x P`` teacher outputs.
        center (torch.Tensor): ``1 x P`` center of the teacher outputs.
        teacher_temperature (float): the teacher temperature of the current epoch.
        student_temperature (float): the student temperature.

    Returns:
        torch.Tensor: the local loss.
    """

    teacher = [
        F.softmax((t.detach() - center) / teacher_temperature, dim=-1) for t in teacher_logits
    ]
    losses = []
    for anchor, target in cross_view_pairs(len(local_logits), len(teacher_logits)):
        log_student = F.log_softmax(local_logits[anchor] / student_temperature, dim=-1)
        losses.append(torch.sum(-teacher[target].unsqueeze(1) * log_student, dim=-1).mean())
    return torch.stack(losses).mean()


def per_position_loss(
    loss_func: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    local: Sequence[torch.Tensor],
    targets: Sequence[torch.Tensor],
) -> torch.Tensor:
    """Applies a base method's pairwise loss between every position and the other view's target.

    For losses with batch statistics (VICReg's variance and covariance, Barlow Twins'
    cross-correlation) each position is its own batch of ``B`` local representations, compared
    with the ``B`` global targets of the other view; the loss is averaged over positions and
    cross-view pairs.

    Args:
        loss_func (Callable): ``loss_func(z_local, z_target)`` on ``B x D`` tensors.
        local (Sequence[torch.Tensor]): per view, ``B x N x D`` local projections.
        targets (Sequence[torch.Tensor]): per large view, ``B x D`` global targets.

    Returns:
        torch.Tensor: the local loss.
    """

    losses = [
        loss_func(local[anchor][:, position], targets[target])
        for anchor, target in cross_view_pairs(len(local), len(targets))
        for position in range(local[anchor].size(1))
    ]
    return torch.stack(losses).mean()
