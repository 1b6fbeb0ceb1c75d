"""Gathering across devices (pure torch), as solo-learn's ``solo.utils.misc.gather`` does."""

from typing import Tuple

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class _GatherLayer(torch.autograd.Function):
    """All-gather that sends each rank the gradient of its own slice back."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        output = [torch.zeros_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(output, x)
        return tuple(output)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor) -> torch.Tensor:
        all_gradients = torch.stack(grads)
        dist.all_reduce(all_gradients)
        return all_gradients[dist.get_rank()]


def gather(x: torch.Tensor) -> torch.Tensor:
    """Concatenates ``x`` from all ranks along dim 0, keeping gradients (identity on one device).

    Args:
        x (torch.Tensor): the local tensor, same shape on every rank.

    Returns:
        torch.Tensor: the gathered tensor, ranks in order.
    """

    if not is_distributed():
        return x
    if x.requires_grad:
        return torch.cat(_GatherLayer.apply(x))
    output = [torch.zeros_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(output, x)
    return torch.cat(output)
