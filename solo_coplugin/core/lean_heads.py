"""Memory-lean execution of the local heads' ``Linear -> BatchNorm1d -> ReLU -> Linear`` blocks.

A local head runs on every feature-map position, so its hidden activations are ``positions``
times larger than the global head's: for BYOL-size heads (4096 hidden units) on ResNet-18's
5 x 5 CIFAR map they are the largest part of what CO adds to a step's memory. Run layer by
layer, autograd keeps two hidden tensors per block for backward (BatchNorm's input and ReLU's
output). :func:`run_head` runs the same modules (same parameters, buffers and state dict, so
``local_head: shared`` and checkpoints are unaffected) through one autograd function per block
that keeps only BatchNorm's input and recomputes ``relu(batchnorm(h))`` in backward, an
elementwise pass, with PyTorch's own ``native_batch_norm``/``native_batch_norm_backward`` so
that the values, the gradients and the running-statistics updates are those of the modules.
With ``recompute=True`` it keeps only the block's input and also recomputes the first Linear in
backward: no hidden tensor at all, for one extra matmul per block.

Mixed precision: under ``torch.autocast`` the Linears run in the autocast dtype and BatchNorm in
float32 (its input stored in the autocast dtype), as autocast itself does.
"""

from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


def _autocast_dtype(device_type: str) -> Optional[torch.dtype]:
    """The autocast dtype active for ``device_type``, or None when autocast is off."""

    try:
        enabled = torch.is_autocast_enabled(device_type)
        return torch.get_autocast_dtype(device_type) if enabled else None
    except TypeError:  # torch < 2.4: per-device functions
        if device_type == "cpu":
            enabled, dtype = torch.is_autocast_cpu_enabled(), torch.get_autocast_cpu_dtype()
        else:
            enabled, dtype = torch.is_autocast_enabled(), torch.get_autocast_gpu_dtype()
        return dtype if enabled else None


def _cast(tensor: Optional[torch.Tensor], dtype: torch.dtype) -> Optional[torch.Tensor]:
    return None if tensor is None else tensor.to(dtype)


def _batch_norm_factor(bn: nn.BatchNorm1d) -> float:
    """BatchNorm's running-average factor for this step (counts the step, as its forward does)."""

    if bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        if bn.momentum is None:  # cumulative moving average
            return 1.0 / float(bn.num_batches_tracked)
    return 0.0 if bn.momentum is None else bn.momentum


def _relu_of_batch_norm(h, weight, mean, invstd, bias):
    """``relu(batchnorm(h))`` in float32 from the batch statistics BatchNorm saved."""

    scale = invstd if weight is None else invstd * weight
    shift = -mean * scale
    if bias is not None:
        shift = shift + bias
    return torch.addcmul(shift, h.to(mean.dtype), scale).clamp_min_(0)


class _LinearBatchNormReLULinear(torch.autograd.Function):
    """``linear2(relu(batchnorm(linear1(x))))`` in training mode, storing at most ``linear1(x)``."""

    @staticmethod
    def forward(ctx, x, w1, b1, bn_weight, bn_bias, w2, b2, bn, recompute):
        device_type = x.device.type
        dtype = _autocast_dtype(device_type) or x.dtype
        bn_dtype = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
        factor = _batch_norm_factor(bn)
        with torch.autocast(device_type, enabled=False):
            h = F.linear(x.to(dtype), w1.to(dtype), _cast(b1, dtype))
            y, mean, invstd = torch.ops.aten.native_batch_norm(
                h.to(bn_dtype),
                bn_weight,
                bn_bias,
                bn.running_mean,
                bn.running_var,
                True,
                factor,
                bn.eps,
            )
            out = F.linear(y.clamp_min_(0).to(dtype), w2.to(dtype), _cast(b2, dtype))
        ctx.dtype, ctx.eps = dtype, bn.eps
        ctx.has_b1, ctx.has_b2 = b1 is not None, b2 is not None
        ctx.save_for_backward(x, w1, b1, None if recompute else h, bn_weight, bn_bias, w2)
        ctx.mean, ctx.invstd = mean, invstd
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, w1, b1, h, bn_weight, bn_bias, w2 = ctx.saved_tensors
        dtype, mean, invstd = ctx.dtype, ctx.mean, ctx.invstd
        with torch.autocast(grad_out.device.type, enabled=False):
            if h is None:
                h = F.linear(x.to(dtype), w1.to(dtype), _cast(b1, dtype))
            r = _relu_of_batch_norm(h, bn_weight, mean, invstd, bn_bias)
            grad_out = grad_out.to(dtype)
            grad_w2 = grad_out.t().mm(r.to(dtype)).to(w2.dtype)
            grad_b2 = grad_out.sum(0).to(w2.dtype) if ctx.has_b2 else None
            bn_dtype = r.dtype
            grad_y = torch.ops.aten.threshold_backward(grad_out.mm(w2.to(dtype)).to(bn_dtype), r, 0)
            del r  # free it before the next matmuls allocate
            grad_h, grad_bn_weight, grad_bn_bias = torch.ops.aten.native_batch_norm_backward(
                grad_y,
                h.to(bn_dtype),
                bn_weight,
                None,
                None,
                mean,
                invstd,
                True,
                ctx.eps,
                [True, bn_weight is not None, bn_bias is not None],
            )
            grad_h = grad_h.to(dtype)
            grad_x = grad_h.mm(w1.to(dtype)).to(x.dtype) if ctx.needs_input_grad[0] else None
            grad_w1 = grad_h.t().mm(x.to(dtype)).to(w1.dtype)
            grad_b1 = grad_h.sum(0).to(w1.dtype) if ctx.has_b1 else None
        return grad_x, grad_w1, grad_b1, grad_bn_weight, grad_bn_bias, grad_w2, grad_b2, None, None


def _is_lean_block(layers: List[nn.Module]) -> bool:
    return (
        len(layers) == 4
        # exact types: SyncBatchNorm (multi-GPU runs) or a Linear subclass compute something
        # else than what the lean function reproduces, so they run as they are
        and type(layers[0]) is nn.Linear
        and type(layers[1]) is nn.BatchNorm1d
        and type(layers[2]) is nn.ReLU
        and type(layers[3]) is nn.Linear
    )


def lean_blocks(head: nn.Module) -> List[Tuple[int, int]]:
    """The ``(start, stop)`` index ranges of the ``Linear, BatchNorm1d, ReLU, Linear`` blocks of
    ``head`` that :func:`run_head` runs lean (none when ``head`` is not an ``nn.Sequential``).

    Args:
        head (nn.Module): a head.

    Returns:
        List[Tuple[int, int]]: non-overlapping ranges, in order.
    """

    if not isinstance(head, nn.Sequential):
        return []
    layers, blocks, i = list(head), [], 0
    while i + 4 <= len(layers):
        if _is_lean_block(layers[i : i + 4]):
            blocks.append((i, i + 4))
            i += 4
        else:
            i += 1
    return blocks


def run_head(head: nn.Module, x: torch.Tensor, recompute: bool = False) -> torch.Tensor:
    """Applies ``head`` to ``x``, its ``Linear, BatchNorm1d, ReLU, Linear`` blocks memory-lean.

    Gives the values and gradients of ``head(x)`` and updates BatchNorm's running statistics as
    ``head(x)`` does. The lean path applies when gradients are recorded and the block's
    BatchNorm is in training mode (in evaluation, or under ``no_grad``, nothing is stored and
    ``head(x)`` runs as it is). Other layers and heads run as they are.

    Args:
        head (nn.Module): the head (a local head or a global head applied locally).
        x (torch.Tensor): ``rows x features`` input.
        recompute (bool): also recompute each block's first Linear in backward instead of
            storing its output: less memory, one more matmul per block. Defaults to False.

    Returns:
        torch.Tensor: ``head(x)``.
    """

    blocks = lean_blocks(head) if torch.is_grad_enabled() else []
    if not blocks:
        return head(x)
    layers, i = list(head), 0
    for start, stop in blocks:
        for layer in layers[i:start]:
            x = layer(x)
        linear1, bn, _, linear2 = layers[start:stop]
        if bn.training:
            x = _LinearBatchNormReLULinear.apply(
                x,
                linear1.weight,
                linear1.bias,
                bn.weight,
                bn.bias,
                linear2.weight,
                linear2.bias,
                bn,
                recompute,
            )
        else:
            for layer in layers[start:stop]:
                x = layer(x)
        i = stop
    for layer in layers[i:]:
        x = layer(x)
    return x
