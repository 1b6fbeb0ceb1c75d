import math

import pytest
import torch
import torch.nn.functional as F

from solo_coplugin.core import (
    byol_local_loss,
    co_byol_local_loss,
    co_loss,
    co_mocov3_local_loss,
    co_nnclr_local_loss,
    co_ressl_local_loss,
    co_simclr_local_loss,
    co_simsiam_local_loss,
    cross_view_pairs,
    nearest_neighbour,
)


def test_cross_view_pairs():
    assert list(cross_view_pairs(2, 2)) == [(0, 1), (1, 0)]
    # small crops (views 2, 3) are aligned with both large views
    assert list(cross_view_pairs(4, 2)) == [(0, 1), (1, 0), (2, 0), (2, 1), (3, 0), (3, 1)]


def test_co_loss_weights_and_is_exact_at_zero():
    g, l = torch.tensor(1.2345678), torch.tensor(7.0)
    assert co_loss(g, l, 0.0).item() == g.item()
    torch.testing.assert_close(co_loss(g, l, 0.3), 0.7 * g + 0.3 * l)
    assert co_loss(g, l, 1.0).item() == l.item()


def test_additive_form_leaves_the_base_loss_unscaled():
    g, l = torch.tensor(1.2345678), torch.tensor(7.0)
    assert co_loss(g, l, 0.0, "additive").item() == g.item()
    torch.testing.assert_close(co_loss(g, l, 0.3, "additive"), g + 0.3 * l)
    # the two forms differ by w L_global, whatever L_local
    torch.testing.assert_close(
        co_loss(g, l, 0.3, "additive") - co_loss(g, l, 0.3, "convex"), 0.3 * g
    )


def test_byol_local_loss_matches_a_loop_over_positions():
    torch.manual_seed(0)
    p, z = torch.randn(3, 5, 8), torch.randn(3, 8)
    reference = (
        sum(
            2 - 2 * (F.normalize(p[b, n], dim=0) * F.normalize(z[b], dim=0)).sum()
            for b in range(3)
            for n in range(5)
        )
        / 15
    )
    torch.testing.assert_close(byol_local_loss(p, z), reference)


def test_co_byol_local_loss_is_the_mean_over_cross_view_pairs_and_stops_target_gradients():
    torch.manual_seed(0)
    local_p = [torch.randn(4, 9, 8, requires_grad=True) for _ in range(2)]
    targets = [torch.randn(4, 8, requires_grad=True) for _ in range(2)]
    loss = co_byol_local_loss(local_p, targets)
    expected = (
        byol_local_loss(local_p[0], targets[1]) + byol_local_loss(local_p[1], targets[0])
    ) / 2
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert all(t.grad is None for t in targets)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in local_p)


def simclr_local_reference(local_z, global_z, indexes, temperature):
    """Straightforward loops: anchor = one position of one view of one image."""

    global_all = [
        (v, b, F.normalize(global_z[v][b], dim=0)) for v in range(2) for b in range(len(indexes))
    ]
    losses = []
    for v, views in enumerate(local_z):
        for b in range(views.size(0)):
            for n in range(views.size(1)):
                anchor = F.normalize(views[b, n], dim=0)
                pos, neg = 0.0, 0.0
                for tv, tb, target in global_all:
                    sim = math.exp((anchor @ target).item() / temperature)
                    if indexes[tb] == indexes[b] and tv != v:
                        pos += sim
                    elif indexes[tb] != indexes[b]:
                        neg += sim
                losses.append(-math.log(pos / (pos + neg)))
    return sum(losses) / len(losses)


def test_co_simclr_local_loss_matches_a_reference_computation():
    torch.manual_seed(0)
    local_z = [torch.randn(3, 4, 6) for _ in range(2)]
    global_z = [torch.randn(3, 6) for _ in range(2)]
    indexes = torch.tensor([10, 11, 12])
    loss = co_simclr_local_loss(local_z, global_z, indexes, temperature=0.2)
    assert loss.item() == pytest.approx(
        simclr_local_reference(local_z, global_z, indexes, 0.2), rel=1e-5
    )


@pytest.mark.parametrize("target_grad", [False, True])
def test_co_simclr_local_loss_gradients(target_grad):
    torch.manual_seed(0)
    local_z = [torch.randn(3, 4, 6, requires_grad=True) for _ in range(2)]
    global_z = [torch.randn(3, 6, requires_grad=True) for _ in range(2)]
    loss = co_simclr_local_loss(local_z, global_z, torch.arange(3), 0.2, target_grad=target_grad)
    loss.backward()
    assert all(z.grad.abs().sum() > 0 for z in local_z)
    if target_grad:
        assert all(z.grad.abs().sum() > 0 for z in global_z)
    else:
        assert all(z.grad is None for z in global_z)


@pytest.mark.parametrize("loss_name", ["byol", "simclr"])
def test_local_losses_decrease_under_gradient_descent(loss_name):
    torch.manual_seed(0)
    local = [torch.randn(8, 4, 16, requires_grad=True) for _ in range(2)]
    targets = [torch.randn(8, 16) for _ in range(2)]

    def compute():
        if loss_name == "byol":
            return co_byol_local_loss(local, targets)
        return co_simclr_local_loss(local, targets, torch.arange(8), 0.2)

    initial = compute().item()
    optimizer = torch.optim.SGD(local, lr=20.0 if loss_name == "byol" else 2.0)
    for _ in range(30):
        optimizer.zero_grad()
        compute().backward()
        optimizer.step()
    assert compute().item() < 0.8 * initial


def test_local_losses_are_finite_under_bf16_autocast():
    torch.manual_seed(0)
    local = [torch.randn(8, 25, 32) for _ in range(2)]
    targets = [torch.randn(8, 32) for _ in range(2)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        byol = co_byol_local_loss([x.bfloat16() for x in local], [t.bfloat16() for t in targets])
        simclr = co_simclr_local_loss(
            [x.bfloat16() for x in local], [t.bfloat16() for t in targets], torch.arange(8), 0.1
        )
    assert torch.isfinite(byol) and torch.isfinite(simclr)


def test_nearest_neighbour_is_the_most_similar_support_row_without_gradient():
    torch.manual_seed(0)
    support = F.normalize(torch.randn(20, 8), dim=-1)
    z = F.normalize(torch.randn(5, 8), dim=-1).requires_grad_()
    neighbours = nearest_neighbour(z, support)
    for b in range(5):
        best = max(range(20), key=lambda k: (z[b] @ support[k]).item())
        assert torch.equal(neighbours[b], support[best])
    assert not neighbours.requires_grad


def test_co_simsiam_local_loss_is_the_negative_cosine_with_detached_targets():
    torch.manual_seed(0)
    local_p = [torch.randn(3, 4, 8, requires_grad=True) for _ in range(2)]
    targets = [torch.randn(3, 8, requires_grad=True) for _ in range(2)]
    loss = co_simsiam_local_loss(local_p, targets)
    reference = sum(
        -(F.normalize(local_p[v][b, n], dim=0) @ F.normalize(targets[1 - v][b], dim=0))
        for v in range(2)
        for b in range(3)
        for n in range(4)
    ) / (2 * 3 * 4)
    torch.testing.assert_close(loss, reference)
    loss.backward()
    assert all(t.grad is None for t in targets)  # SimSiam's stop-gradient, always
    assert all(p.grad.abs().sum() > 0 for p in local_p)


def info_nce_reference(local, keys, temperature):
    """Loops: anchor = one position of one view of one image, candidates = the other view's keys."""

    losses = []
    for v, t in ((0, 1), (1, 0)):
        for b in range(local[v].size(0)):
            for n in range(local[v].size(1)):
                anchor = F.normalize(local[v][b, n], dim=0)
                logits = [anchor @ F.normalize(k, dim=0) / temperature for k in keys[t]]
                losses.append(-(logits[b] - torch.stack(logits).logsumexp(0)))
    return torch.stack(losses).mean()


def test_co_nnclr_local_loss_contrasts_each_local_prediction_with_the_other_views_neighbours():
    torch.manual_seed(0)
    local_p = [torch.randn(3, 4, 8, requires_grad=True) for _ in range(2)]
    neighbours = [torch.randn(3, 8) for _ in range(2)]
    loss = co_nnclr_local_loss(local_p, neighbours, 0.2)
    torch.testing.assert_close(loss, info_nce_reference(local_p, neighbours, 0.2))
    # the same InfoNCE as CO-MoCoV3's, which scales it by 2T as MoCo v3 does
    torch.testing.assert_close(co_mocov3_local_loss(local_p, neighbours, 0.2), 0.4 * loss)
    loss.backward()
    assert all(p.grad.abs().sum() > 0 for p in local_p)


def test_co_ressl_local_loss_matches_a_loop_over_positions():
    torch.manual_seed(0)
    students = [torch.randn(3, 4, 8, requires_grad=True)]
    teacher_z = F.normalize(torch.randn(3, 8), dim=-1).requires_grad_()
    queue = F.normalize(torch.randn(10, 8), dim=-1).requires_grad_()
    loss = co_ressl_local_loss(students, teacher_z, queue, 0.1, 0.04)
    reference = []
    for b in range(3):
        teacher = F.softmax(queue @ teacher_z[b] / 0.04, dim=0)
        for n in range(4):
            student = F.log_softmax(queue @ F.normalize(students[0][b, n], dim=0) / 0.1, dim=0)
            reference.append(-(teacher * student).sum())
    torch.testing.assert_close(loss, torch.stack(reference).mean())
    loss.backward()
    assert teacher_z.grad is None and queue.grad is None  # the teacher and queue are targets
    assert students[0].grad.abs().sum() > 0


@pytest.mark.parametrize("loss_name", ["simsiam", "nnclr", "ressl"])
def test_the_other_local_losses_decrease_under_gradient_descent(loss_name):
    torch.manual_seed(0)
    local = [torch.randn(8, 4, 16, requires_grad=True) for _ in range(2)]
    targets = [F.normalize(torch.randn(8, 16), dim=-1) for _ in range(2)]
    queue = F.normalize(torch.randn(32, 16), dim=-1)

    def compute():
        if loss_name == "simsiam":
            return co_simsiam_local_loss(local, targets) + 1  # >= 0
        if loss_name == "nnclr":
            return co_nnclr_local_loss(local, targets, 0.2)
        return co_ressl_local_loss(local, targets[1], queue, 0.1, 0.04)

    initial = compute().item()
    optimizer = torch.optim.SGD(local, lr=20.0 if loss_name == "simsiam" else 2.0)
    for _ in range(30):
        optimizer.zero_grad()
        compute().backward()
        optimizer.step()
    assert compute().item() < 0.8 * initial
