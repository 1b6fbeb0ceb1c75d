import copy

import pytest
import torch
import torch.nn as nn

from solo_coplugin.core import lean_blocks, run_head


def byol_like(in_dim=12, hidden=24, out=6, bias=True, last_bn=False, momentum=0.1):
    layers = [
        nn.Linear(in_dim, hidden, bias=bias),
        nn.BatchNorm1d(hidden, momentum=momentum),
        nn.ReLU(),
        nn.Linear(hidden, out, bias=bias),
    ]
    if last_bn:  # MoCo v3's heads end in a BatchNorm without affine parameters
        layers.append(nn.BatchNorm1d(out, affine=False))
    return nn.Sequential(*layers)


def saved_storages(fn):
    """Shapes of the distinct storages autograd keeps for backward while ``fn`` runs."""

    storages = {}

    def pack(tensor):
        storages[tensor.untyped_storage().data_ptr()] = tuple(tensor.shape)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = fn()
    return out, list(storages.values())


@pytest.mark.parametrize("recompute", [False, True])
@pytest.mark.parametrize(
    "head_kwargs",
    [{}, {"bias": False, "last_bn": True}, {"momentum": None}],
    ids=["byol", "mocov3", "cumulative-bn"],
)
def test_lean_head_gives_the_values_gradients_and_running_stats_of_the_head(recompute, head_kwargs):
    torch.manual_seed(0)
    plain = byol_like(**head_kwargs).double()
    lean = copy.deepcopy(plain)
    x_plain = torch.randn(40, 12, dtype=torch.double, requires_grad=True)
    x_lean = x_plain.detach().clone().requires_grad_()
    for step in range(3):  # several steps: running statistics and num_batches_tracked advance
        grad = torch.randn(40, 6, dtype=torch.double)
        out_plain, out_lean = plain(x_plain), run_head(lean, x_lean, recompute=recompute)
        torch.testing.assert_close(out_lean, out_plain, rtol=1e-12, atol=1e-12)
        (out_plain * grad).sum().backward()
        (out_lean * grad).sum().backward()
    torch.testing.assert_close(x_lean.grad, x_plain.grad, rtol=1e-10, atol=1e-12)
    for (name, p), q in zip(plain.named_parameters(), lean.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-10, atol=1e-12, msg=name)
    for (name, b), c in zip(plain.named_buffers(), lean.buffers()):
        torch.testing.assert_close(c, b, rtol=1e-12, atol=1e-12, msg=name)
    assert int(lean[1].num_batches_tracked) == 3


@pytest.mark.parametrize("recompute, hidden_tensors", [(False, 1), (True, 0)])
def test_lean_head_keeps_at_most_batchnorms_input_for_backward(recompute, hidden_tensors):
    torch.manual_seed(0)
    head = byol_like(hidden=32)
    x = torch.randn(20, 12, requires_grad=True)
    _, plain_saved = saved_storages(lambda: head(x))
    _, lean_saved = saved_storages(lambda: run_head(head, x, recompute=recompute))
    assert plain_saved.count((20, 32)) == 2  # BatchNorm's input and ReLU's output
    assert lean_saved.count((20, 32)) == hidden_tensors


def test_lean_path_only_when_gradients_are_recorded_in_training_mode():
    torch.manual_seed(0)
    head = byol_like()
    x = torch.randn(10, 12)
    head.eval()
    torch.testing.assert_close(run_head(head, x), head(x))
    head.train()
    before = head[1].running_mean.clone()
    with torch.no_grad():
        reference = copy.deepcopy(head)(x)
        torch.testing.assert_close(run_head(head, x), reference)
    assert not torch.equal(head[1].running_mean, before)  # a training-mode forward, as head(x)


def test_lean_blocks_are_found_in_solo_learn_head_layouts():
    linear_relu_linear = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))  # SimCLR
    three_layers = nn.Sequential(  # VICReg / Barlow Twins: the second block shares no Linear
        nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 8),
        nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2),
    )  # fmt: skip
    assert lean_blocks(byol_like()) == [(0, 4)]
    assert lean_blocks(byol_like(last_bn=True)) == [(0, 4)]
    assert lean_blocks(linear_relu_linear) == []
    assert lean_blocks(three_layers) == [(0, 4)]
    assert lean_blocks(nn.Linear(4, 2)) == []
    # multi-GPU runs convert BatchNorm to SyncBatchNorm: its statistics span all GPUs
    assert lean_blocks(nn.SyncBatchNorm.convert_sync_batchnorm(byol_like())) == []

    torch.manual_seed(0)
    x = torch.randn(16, 4, requires_grad=True)
    for head in (linear_relu_linear, three_layers):
        expected = copy.deepcopy(head)(x)
        torch.testing.assert_close(run_head(head, x), expected)


@pytest.mark.parametrize("recompute", [False, True])
def test_lean_head_under_bf16_autocast_is_finite_and_close_to_float32(recompute):
    torch.manual_seed(0)
    plain = byol_like(in_dim=64, hidden=128, out=32)
    lean = copy.deepcopy(plain)
    x_plain = torch.randn(64, 64, requires_grad=True)
    x_lean = x_plain.detach().clone().requires_grad_()
    plain(x_plain).pow(2).mean().backward()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = run_head(lean, x_lean, recompute=recompute)
        assert out.dtype == torch.bfloat16
        out.float().pow(2).mean().backward()
    assert x_lean.grad.dtype == torch.float32
    for (name, p), q in zip(plain.named_parameters(), lean.parameters()):
        assert q.grad.dtype == torch.float32 and torch.isfinite(q.grad).all()
        if name == "0.bias":  # BatchNorm cancels it: its gradient is 0 up to rounding
            continue
        cosine = nn.functional.cosine_similarity(q.grad.flatten(), p.grad.flatten(), dim=0)
        assert cosine > 0.98
