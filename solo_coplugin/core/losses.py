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

from typing import Iterator, Sequence, Tuple

import torch
import torch.nn.functional as F

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
