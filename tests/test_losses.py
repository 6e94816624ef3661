"""The LEAD loss on random tensors: zero at agreement, non-negative, gradients where configured,
layer selection rules."""

from __future__ import annotations

import pytest
import torch

from lead_ray.config import LossWeights
from lead_ray.distill.losses import (
    contrastive_loss,
    kl_divergence,
    layer_pairs,
    layer_ranking_loss,
    layer_weights,
    lead_layer_loss,
    lead_objective,
    response_loss,
)

K, B, N = 3, 4, 6


def _scores(seed: int, *shape: int, requires_grad: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g) * 3).requires_grad_(requires_grad)


def test_kl_is_zero_when_equal_and_positive_otherwise():
    a, b = _scores(0, K, B, N), _scores(1, K, B, N)
    assert torch.allclose(kl_divergence(a, a), torch.zeros(K), atol=1e-6)
    assert (kl_divergence(a, b) > 0).all()
    # equals torch's own KL with batchmean
    ref = torch.nn.functional.kl_div(
        torch.log_softmax(b[0], -1), torch.softmax(a[0] / 2.0, -1), reduction="batchmean"
    )
    assert torch.allclose(kl_divergence(a[0], b[0], temperature=2.0), ref, atol=1e-6)


def test_layer_weights_follow_teacher_layer_quality_and_sum_to_one():
    labels = torch.zeros(B, dtype=torch.long)
    good = torch.full((B, N), -5.0)
    good[:, 0] = 5.0  # ranks the positive first
    bad = -good
    weights = layer_weights(torch.stack([bad, good]), labels, layer_temperature=10.0)
    assert torch.isclose(weights.sum(), torch.tensor(1.0))
    assert weights[1] > weights[0]
    ce = layer_ranking_loss(torch.stack([bad, good]), labels)
    assert torch.allclose(weights, torch.softmax(-ce / 10.0, 0))
    assert not weights.requires_grad


def test_objective_is_zero_when_student_equals_teacher_and_perfect():
    labels = torch.zeros(B, dtype=torch.long)
    final = torch.full((B, N), -50.0)
    final[:, 0] = 50.0  # certain and right: CE ~ 0
    layers = final.expand(K, B, N).clone()
    terms = lead_objective(
        final, layers, final.clone(), layers.clone(), labels, weights=LossWeights()
    )
    assert terms.total.item() == pytest.approx(0.0, abs=1e-6)
    # the KD parts vanish for any equal scores, even when both rank badly
    s, sl = _scores(2, B, N), _scores(3, K, B, N)
    terms = lead_objective(s, sl, s.clone(), sl.clone(), labels, weights=LossWeights())
    assert terms.response.item() == pytest.approx(0.0, abs=1e-6)
    assert terms.layer.item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_every_term_is_non_negative(seed):
    labels = torch.randint(0, N, (B,), generator=torch.Generator().manual_seed(seed))
    terms = lead_objective(
        _scores(seed, B, N),
        _scores(seed + 10, K, B, N),
        _scores(seed + 20, B, N),
        _scores(seed + 30, K, B, N),
        labels,
        weights=LossWeights(),
        temperature=0.7,
    )
    for name in ("total", "contrastive", "teacher", "response", "layer"):
        assert getattr(terms, name).item() >= 0, name
    assert (terms.layer_kl >= 0).all()


@pytest.mark.parametrize("teacher_trains", [True, False])
def test_gradients_reach_student_always_teacher_only_when_trained(teacher_trains):
    labels = torch.zeros(B, dtype=torch.long)
    s = _scores(0, B, N, requires_grad=True)
    sl = _scores(1, K, B, N, requires_grad=True)
    t = _scores(2, B, N, requires_grad=True)
    tl = _scores(3, K, B, N, requires_grad=True)
    terms = lead_objective(
        s, sl, t, tl, labels, weights=LossWeights(), teacher_trains=teacher_trains
    )
    terms.total.backward()
    assert s.grad.abs().sum() > 0 and sl.grad.abs().sum() > 0
    if teacher_trains:
        assert t.grad.abs().sum() > 0 and tl.grad.abs().sum() > 0
    else:
        assert t.grad is None and tl.grad is None
    assert not terms.layer_weights.requires_grad


def test_detached_targets_leave_teacher_only_its_own_ce():
    labels = torch.zeros(B, dtype=torch.long)
    t = _scores(2, B, N, requires_grad=True)
    tl = _scores(3, K, B, N, requires_grad=True)
    terms = lead_objective(
        _scores(0, B, N),
        _scores(1, K, B, N),
        t,
        tl,
        labels,
        weights=LossWeights(),
        teacher_kd_grad=False,
    )
    terms.total.backward()
    expected = torch.autograd.grad(contrastive_loss(t, labels), t)[0]
    assert torch.allclose(t.grad, expected)
    assert tl.grad is None  # layer scores only feed KD targets


def test_reweight_off_is_the_plain_sum():
    labels = torch.zeros(B, dtype=torch.long)
    s, t = _scores(0, K, B, N), _scores(1, K, B, N)
    loss, kl, w = lead_layer_loss(s, t, labels, reweight=False)
    assert torch.allclose(loss, kl.sum()) and torch.equal(w, torch.ones(K))


def test_response_loss_mutual_adds_reverse_direction():
    s, t = _scores(0, B, N), _scores(1, B, N)
    one_way = response_loss(t, s, 1.0, mutual=False)
    assert torch.allclose(response_loss(t, s, 1.0, mutual=True), one_way + kl_divergence(s, t))


@pytest.mark.parametrize("n_s,n_t,k", [(2, 4, 2), (6, 12, 5), (6, 24, 6), (3, 3, 5)])
def test_random_pairs_sorted_distinct_in_range_and_resampled_every_r_steps(n_s, n_t, k):
    r = 10
    draws = [
        layer_pairs("random", n_s, n_t, k, step=s, resample_every=r, seed=7) for s in range(60)
    ]
    for pairs in draws:
        st = [p[0] for p in pairs]
        te = [p[1] for p in pairs]
        assert len(pairs) == min(k, n_s, n_t)
        assert st == sorted(set(st)) and te == sorted(set(te))
        assert all(0 <= a < n_s for a in st) and all(0 <= b < n_t for b in te)
    for step in range(60):  # constant inside a window of R steps
        assert draws[step] == draws[step - step % r]
    windows = {tuple(draws[w * r]) for w in range(6)}
    if (n_s, n_t) != (3, 3):  # 3-of-3 has only one possible draw
        assert len(windows) > 1  # and it really changes between windows
    # same seed, same draw: every worker and every resume agree
    assert layer_pairs("random", n_s, n_t, k, step=23, resample_every=r, seed=7) == draws[23]


def test_fixed_selections():
    assert layer_pairs("last", 6, 12, 5) == list(zip(range(1, 6), range(7, 12), strict=True))
    # the official code's `layer_selection_skip`: student 1..5 <-> teacher 0, 2, 4, 6, 8
    assert layer_pairs("skip", 6, 12, 5) == [(1, 0), (2, 2), (3, 4), (4, 6), (5, 8)]
    assert layer_pairs("depth", 6, 12, 5) == [(1, 3), (2, 5), (3, 7), (4, 9), (5, 11)]
    assert layer_pairs("last", 2, 4, "all") == [(0, 2), (1, 3)]
    assert layer_pairs("map", 2, 4, 1, explicit=[(0, 1), (1, 3)]) == [(0, 1), (1, 3)]
    with pytest.raises(ValueError, match="out of range"):
        layer_pairs("map", 2, 4, 1, explicit=[(2, 1)])
