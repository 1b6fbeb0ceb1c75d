import copy

import pytest
import torch
import torch.nn as nn

from solo_coplugin.core import (
    clone_head,
    clone_head_with_hidden_dim,
    feature_map_to_rows,
    pool_to_grid,
)


def projector(in_dim=8, hidden=16, out=4):
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, out)
    )


def as_conv(head: nn.Sequential) -> nn.Sequential:
    """The same head written the paper's way: 1x1 convolutions and BatchNorm2d."""

    layers = []
    for layer in head:
        if isinstance(layer, nn.Linear):
            conv = nn.Conv2d(layer.in_features, layer.out_features, 1)
            conv.weight.data = layer.weight.data[:, :, None, None].clone()
            conv.bias.data = layer.bias.data.clone()
            layers.append(conv)
        elif isinstance(layer, nn.BatchNorm1d):
            bn = nn.BatchNorm2d(layer.num_features)
            bn.load_state_dict(layer.state_dict())
            layers.append(bn)
        else:
            layers.append(copy.deepcopy(layer))
    return nn.Sequential(*layers)


def test_rows_head_equals_1x1_convolutions_with_batchnorm_over_batch_and_positions():
    torch.manual_seed(0)
    head = projector()
    conv_head = as_conv(head)
    feature_map = torch.randn(3, 8, 5, 5)

    rows, num_positions = feature_map_to_rows(feature_map)
    local = head(rows).view(3, num_positions, -1)
    reference = conv_head(feature_map).flatten(2).transpose(1, 2)  # B x N x D

    assert num_positions == 25
    torch.testing.assert_close(local, reference, rtol=1e-5, atol=1e-5)
    # the BatchNorm statistics were taken over batch and positions, like BatchNorm2d
    torch.testing.assert_close(head[1].running_mean, conv_head[1].running_mean)
    torch.testing.assert_close(head[1].running_var, conv_head[1].running_var)


def test_rows_keep_image_major_order_and_share_weights_across_positions():
    torch.manual_seed(0)
    head = projector().eval()
    feature_map = torch.randn(2, 8, 3, 3)
    rows, _ = feature_map_to_rows(feature_map)
    local = head(rows).view(2, 9, -1)
    # position (i, j) of image b is row b * 9 + i * 3 + j, through the same weights
    for b, i, j in [(0, 0, 0), (1, 2, 1), (1, 0, 2)]:
        single = head(feature_map[b, :, i, j].unsqueeze(0))[0]
        torch.testing.assert_close(local[b, i * 3 + j], single)


def test_rows_are_a_view_of_a_channels_last_map():
    feature_map = torch.randn(2, 8, 4, 4).to(memory_format=torch.channels_last)
    rows, _ = feature_map_to_rows(feature_map)
    assert rows.data_ptr() == feature_map.data_ptr()


def test_pool_to_grid():
    feature_map = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    pooled = pool_to_grid(feature_map, 2)
    assert pooled.shape == (2, 3, 2, 2)
    torch.testing.assert_close(pooled[1, 2, 1, 0], feature_map[1, 2, 2:4, 0:2].mean())
    assert pool_to_grid(feature_map, None) is feature_map
    assert pool_to_grid(feature_map, 4) is feature_map
    rows, num_positions = feature_map_to_rows(feature_map, 2)
    assert rows.shape == (8, 3) and num_positions == 4


def test_clone_head_has_same_layers_and_fresh_independent_weights():
    torch.manual_seed(0)
    head = projector()
    with torch.no_grad():
        head[0].weight.fill_(0.5)
    local = clone_head(head)
    assert [type(m) for m in local] == [type(m) for m in head]
    assert [p.shape for p in local.parameters()] == [p.shape for p in head.parameters()]
    assert not torch.equal(local[0].weight, head[0].weight)
    assert all(a is not b for a, b in zip(local.parameters(), head.parameters()))


@pytest.mark.parametrize("dtype", [torch.bfloat16])
def test_rows_under_cpu_autocast_are_finite(dtype):
    head = projector()
    feature_map = torch.randn(4, 8, 5, 5)
    with torch.autocast("cpu", dtype=dtype):
        rows, n = feature_map_to_rows(feature_map)
        out = head(rows)
    assert torch.isfinite(out.float()).all()


def test_slim_head_keeps_input_and_output_sizes():
    head = nn.Sequential(
        nn.Linear(8, 64),
        nn.BatchNorm1d(64),
        nn.ReLU(),
        nn.Linear(64, 64),
        nn.BatchNorm1d(64, affine=False),
        nn.ReLU(),
        nn.Linear(64, 4, bias=False),
    )
    slim = clone_head_with_hidden_dim(head, 16)
    shapes = [tuple(m.weight.shape) for m in slim if isinstance(m, nn.Linear)]
    assert shapes == [(16, 8), (16, 16), (4, 16)]
    assert slim[-1].bias is None and slim[4].affine is False and slim[4].num_features == 16
    assert slim(torch.randn(5, 8)).shape == (5, 4)
    with pytest.raises(ValueError, match="needs an MLP head"):
        clone_head_with_hidden_dim(nn.Sequential(nn.Linear(8, 4)), 16)


def test_local_heads_of_an_earlier_stage_read_its_channels():
    torch.manual_seed(0)
    head = projector(in_dim=8)
    local = clone_head(head, in_features=6)
    shapes = [tuple(p.shape) for p in local.parameters()]
    assert shapes[0] == (16, 6) and shapes[1:] == [tuple(p.shape) for p in head.parameters()][1:]
    assert local(torch.randn(5, 6)).shape == (5, 4)
    # the stage's own channel count keeps the head as it is (same layers, same draws)
    torch.manual_seed(1)
    same = clone_head(head, in_features=8)
    torch.manual_seed(1)
    assert all(torch.equal(a, b) for a, b in zip(same.parameters(), clone_head(head).parameters()))
    slim = clone_head_with_hidden_dim(head, 3, in_features=6)
    assert [tuple(m.weight.shape) for m in slim if isinstance(m, nn.Linear)] == [(3, 6), (4, 3)]
    with pytest.raises(ValueError, match="must start with nn.Linear"):
        clone_head(nn.Sequential(nn.ReLU()), in_features=6)
