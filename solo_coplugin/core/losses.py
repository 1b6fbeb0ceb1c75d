"""Local losses of CO-SSL and how they combine with the base method's loss (pure torch).

Reference: Aubret, Teulière, Triesch, "Seeing the Whole in the Parts in Self-Supervised
Representation Learning", arXiv 2501.02860, 2025.

CO-SSL aligns each *local* representation (a position of the backbone's feature map before
pooling, passed through the local heads) with the *global* target of the **other** view, using
the base method's own loss and stop-gradient rules (paper). Choices the paper leaves open, and
what this module does (see ``shared/design/co-ssl.md`` and the README):

- combination: ``L = (1 - w) * L_global + w * L_local`` with ``w = method_kwargs.local_weight``
  (default 0.3; the paper names a weight ``w_s`` and reports 0.2 to 0.5 as good, but not the
  form), or ``L = L_global + w * L_local`` with ``method_kwargs.local_loss_form: additive``, which
  leaves the base method's loss unscaled. ``L_global`` is the base method's loss exactly as
  solo-learn computes it, so ``w = 0`` reproduces the base method bit for bit in both forms;
- ``L_local`` is the mean over positions, images and (view, other view) pairs, whatever the
  base method's own reduction over views (BYOL sums its two view pairs);
- each local representation of view ``v`` is aligned with the global targets of every large
  view other than ``v`` (with two large crops: the other one);
- CO-SimCLR: the global side is a stop-gradient target by default
  (``method_kwargs.local_target_grad: false``); its negatives are the other images' global
  projections of both views, gathered over devices; the same image's global projection of the
  anchor's own view is neither positive nor negative;
- methods whose global target is a nearest neighbour (NNBYOL, NNSiam, NNCLR): the local
  representations of view ``v`` are aligned with the very neighbour that the global loss uses
  for the other view (found in the support queue before this step's enqueue); local outputs
  are never enqueued, so the support set stays the one the base method builds;
- CO-ReSSL keeps ReSSL's asymmetry: only the locals of the strongly augmented views are
  students, the weakly augmented view's relation distribution is the teacher.
"""

from typing import Callable, Iterator, Sequence, Tuple

import torch
import torch.distributed as dist
import torch.nn.functional as F

from solo_coplugin.core.distributed import is_distributed
from solo_coplugin.core.distributed import gather


def co_loss(
    global_loss: torch.Tensor,
    local_loss: torch.Tensor,
    local_weight: float,
    local_loss_form: str = "convex",
):
    """Combines the base method's loss and the local loss.

    The paper weighs the two with ``w_s`` but its form is not known here, so both are offered:
    ``convex``, ``(1 - w) L_global + w L_local`` (the default), which also scales the base
    method's own loss by ``1 - w``, and ``additive``, ``L_global + w L_local``, which leaves it
    as the base method trains it. Both are ``L_global`` exactly at ``w = 0``.

    Args:
        global_loss (torch.Tensor): the base method's loss.
        local_loss (torch.Tensor): the CO local loss.
        local_weight (float): ``w`` in [0, 1].
        local_loss_form (str): ``convex`` or ``additive``.

    Returns:
        torch.Tensor: the combined loss.
    """

    if local_loss_form == "additive":
        return global_loss + local_weight * local_loss
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

    return _cross_view_info_nce(local_q, keys, temperature, scale=2 * temperature)


def _cross_view_info_nce(
    local: Sequence[torch.Tensor],
    keys: Sequence[torch.Tensor],
    temperature: float,
    scale: float = 1.0,
) -> torch.Tensor:
    """InfoNCE of local anchors against the other view's keys, gathered over devices.

    The anchor at each position of view ``v`` of image ``b`` has the key of image ``b`` in view
    ``t != v`` as positive and the keys of the other images in view ``t`` as negatives; cosine
    similarities over ``temperature``, keys without gradient. Each pair's cross-entropy is
    multiplied by ``scale``; averaged over positions, images and cross-view pairs.
    """

    batch_size = keys[0].size(0)
    offset = batch_size * (dist.get_rank() if is_distributed() else 0)
    labels = torch.arange(batch_size, device=keys[0].device) + offset
    # in float32: F.normalize divides by max(norm, 1e-12), and 1e-12 is 0 in float16, so a
    # zero key (MoCo v3's last BatchNorm has no affine: a batch of identical images gives
    # one) would be 0 / 0 under fp16 autocast
    gathered = [gather(F.normalize(k.float(), dim=-1).detach()) for k in keys]
    losses = []
    for anchor, target in cross_view_pairs(len(local), len(keys)):
        query = F.normalize(local[anchor].float(), dim=-1)  # B x N x D
        logits = torch.einsum("bnd,md->bmn", query, gathered[target]) / temperature
        num_positions = query.size(1)
        losses.append(
            F.cross_entropy(logits, labels.unsqueeze(1).expand(-1, num_positions)) * scale
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


def nearest_neighbour(z: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """The row of ``support`` with the largest dot product with each row of ``z``, without gradient.

    NNCLR's neighbour rule (Dwibedi et al., "With a Little Help from My Friends", arXiv
    2104.14548) as solo-learn's ``find_nn`` applies it in NNCLR, NNSiam and NNBYOL: the rows are
    L2-normalized projections, so the dot product is the cosine similarity, and ties go to the
    index ``torch.max`` returns. Same operations as ``find_nn``, so on the same support set it
    returns the same neighbours.

    Args:
        z (torch.Tensor): ``B x D`` normalized projections.
        support (torch.Tensor): ``K x D`` support set (the queue of past projections).

    Returns:
        torch.Tensor: ``B x D`` nearest neighbours.
    """

    with torch.no_grad():
        return support[(z @ support.T).max(dim=1)[1]]


def co_simsiam_local_loss(
    local_p: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]
) -> torch.Tensor:
    """CO-SimSiam / CO-NNSiam local loss: SimSiam's negative cosine similarity per position.

    SimSiam (Chen and He, "Exploring Simple Siamese Representation Learning", arXiv 2011.10566)
    minimizes ``-cos(p1, stopgrad(z2))``, averaged over its two view pairs. Here the local
    prediction at every position of view ``v`` takes the place of ``p1`` and the global target
    of the other view takes the place of ``z2``: its projection (SimSiam) or that projection's
    nearest neighbour in the support queue (NNSiam). The target is always detached: SimSiam's
    stop-gradient is what keeps it from collapsing, so it is not a setting here. The loss keeps
    SimSiam's scale (in ``[-1, 1]``, not BYOL's ``2 - 2 cos``) and is averaged over positions,
    images and cross-view pairs.

    Args:
        local_p (Sequence[torch.Tensor]): per view, ``B x N x D`` local predictions (the large
            crops first, then any small crops whose locals are aligned).
        targets (Sequence[torch.Tensor]): per large view, ``B x D`` global targets.

    Returns:
        torch.Tensor: the local loss.
    """

    losses = [
        -F.cosine_similarity(local_p[anchor], targets[target].detach().unsqueeze(1), dim=-1).mean()
        for anchor, target in cross_view_pairs(len(local_p), len(targets))
    ]
    return torch.stack(losses).mean()


def co_nnclr_local_loss(
    local_p: Sequence[torch.Tensor], neighbours: Sequence[torch.Tensor], temperature: float
) -> torch.Tensor:
    """CO-NNCLR local loss: InfoNCE of each local prediction against the other view's neighbours.

    NNCLR (Dwibedi et al., arXiv 2104.14548) replaces SimCLR's positive by the nearest
    neighbour, in a support queue, of the other view's projection. solo-learn's
    ``nnclr_loss_func`` takes the neighbour of image ``b`` as the anchor and the predictions of
    all images (gathered over devices) as the candidates. For a local representation the
    orientation is turned around, as in CO-MoCoV3 and CO-SimCLR: the local prediction at each
    position of view ``v`` of image ``b`` is the anchor, the neighbour of image ``b`` in the
    other view is the positive and the neighbours of the other images in that view, gathered
    over devices, are the negatives, with NNCLR's cosine similarity and temperature (no ``2T``
    scaling). The neighbours come from a queue, so they carry no gradient. Averaged over
    positions, images and cross-view pairs (NNCLR averages its two pairs too).

    Args:
        local_p (Sequence[torch.Tensor]): per view, ``B x N x D`` local predictions.
        neighbours (Sequence[torch.Tensor]): per large view, ``B x D`` nearest neighbours of
            that view's projections, as the global loss uses them.
        temperature (float): NNCLR's temperature.

    Returns:
        torch.Tensor: the local loss.
    """

    return _cross_view_info_nce(local_p, neighbours, temperature)


def co_ressl_local_loss(
    local_z: Sequence[torch.Tensor],
    teacher_z: torch.Tensor,
    queue: torch.Tensor,
    temperature_q: float,
    temperature_k: float,
) -> torch.Tensor:
    """CO-ReSSL local loss: ReSSL's relational cross-entropy between the teacher and each local.

    ReSSL (Zheng et al., "ReSSL: Relational Self-Supervised Learning with Weak Augmentation",
    arXiv 2107.09282) turns the momentum projection ``k`` of the weakly augmented view into a
    distribution over a queue of past momentum projections, ``softmax(k . queue / t_k)``, and
    trains the online projection ``q`` of the strongly augmented view to give the same
    distribution, ``softmax(q . queue / t_q)``, by cross-entropy. Here each normalized local
    projection of a student view is a ``q``, against the teacher distribution of its image: the
    distribution is per image, so every position has a well-defined target. Choices: the queue
    is the one the global loss used (before this step's enqueue) and only global momentum
    projections are ever enqueued; ReSSL's asymmetry is kept: the caller passes the locals of
    the student views and the teacher of the weak view (a weakly augmented teacher is the point
    of ReSSL), never a target from a strongly augmented view. Averaged over positions, images
    and student views. Memory: one ``B x N x K`` logit tensor per student view, as the queue
    negatives of CO-MoCoV2+.

    Args:
        local_z (Sequence[torch.Tensor]): per student view, ``B x N x D`` local projections.
        teacher_z (torch.Tensor): ``B x D`` normalized momentum projections of the weak view.
        queue (torch.Tensor): ``K x D`` queue of past normalized momentum projections.
        temperature_q (float): the student temperature ``t_q``.
        temperature_k (float): the teacher temperature ``t_k``.

    Returns:
        torch.Tensor: the local loss.
    """

    queue = queue.detach()
    teacher = F.softmax(teacher_z.detach() @ queue.T / temperature_k, dim=-1)  # B x K
    losses = []
    for view_local_z in local_z:
        query = F.normalize(view_local_z, dim=-1)  # B x N x D
        log_student = F.log_softmax(query @ queue.T / temperature_q, dim=-1)  # B x N x K
        losses.append(-(teacher.unsqueeze(1) * log_student).sum(dim=-1).mean())
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
