"""Loss values checked against numbers computed by hand from the formulas, closed-form logit gradients, and
the paper's central claim: the LCO losses are convex in the logits, the PPO-clip surrogate is not."""

from __future__ import annotations

import math

import pytest
import torch
from torch.autograd.functional import hessian

from lco_exp import losses as L


def t(x):
    return torch.tensor(x, dtype=torch.float64)


# ---------------------------------------------------------------------------------------------- aggregation


def test_aggregate_modes_by_hand():
    x = t([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    m = t([[1, 1, 1], [1, 0, 0]])
    assert L.aggregate(x, m, "token_mean").item() == pytest.approx(10 / 4)
    assert L.aggregate(x, m, "seq_mean_token_mean").item() == pytest.approx((2.0 + 4.0) / 2)
    assert L.aggregate(x, m, "seq_mean_token_sum_norm").item() == pytest.approx((6 / 3 + 4 / 3) / 2)
    with pytest.raises(ValueError, match="unknown loss aggregation"):
        L.aggregate(x, m, "mean")


@pytest.mark.parametrize("mode", L.AGG_MODES)
def test_micro_batch_weights_recover_the_full_batch(mode):
    torch.manual_seed(0)
    x = torch.randn(6, 5, dtype=torch.float64)
    m = (torch.rand(6, 5) > 0.3).double()
    m[:, 0] = 1
    full = L.aggregate(x, m, mode)
    total = L.agg_count(m, mode)
    parts = sum(
        L.aggregate(x[i : i + 2], m[i : i + 2], mode) * L.agg_count(m[i : i + 2], mode) / total for i in range(0, 6, 2)
    )
    torch.testing.assert_close(parts, full, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------- LCO by hand


def test_lco_beta_is_asymmetric():
    adv = t([1.0, 0.0, -1.0])
    assert L.lco_beta(adv, 2.0, 100.0).tolist() == [2.0, 200.0, 200.0]


def test_lco_mse_and_lch_by_hand():
    # anchor (old) logit 0.5, A = +1, beta = 2 -> z* = 1.0 ; current logit 1.5 -> gap 0.5
    # second token: anchor 0.0, A = -1, beta = 2 * 100 -> z* = -0.005 ; current 0.0 -> gap 0.005
    z = t([[1.5, 0.0]])
    target = t([[0.5 + 1 / 2, 0.0 - 1 / 200]])
    m = t([[1.0, 1.0]])
    mse, _ = L.lco_mse_loss(z, target, m)
    assert mse.item() == pytest.approx((0.5**2 + 0.005**2) / 2, rel=1e-9)
    lch, _ = L.lco_lch_loss(z, target, m)
    assert lch.item() == pytest.approx((math.log(math.cosh(0.5)) + math.log(math.cosh(0.005))) / 2, rel=1e-6)


def test_log_cosh_is_stable_for_large_gaps():
    x = t([0.0, 1.0, 800.0, -800.0])
    expected = [0.0, math.log(math.cosh(1.0)), 800 - math.log(2), 800 - math.log(2)]
    assert L.log_cosh(x).tolist() == pytest.approx(expected, rel=1e-9)


def test_lco_target_and_kld_by_hand():
    # V = 3, behaviour top-2 logits [2.0, 1.0] at ids [0, 1]; sampled token 1 with A = +1, beta = 2.
    # z* = [2.0, 1.0 + 0.5, -100] ; q = softmax(z*) ; current logits 0 -> p uniform.
    target = L.lco_target_logits(
        t([[[2.0, 1.0]]]), torch.tensor([[[0, 1]]]), torch.tensor([[1]]), t([[0.5]]), vocab_size=3, fill=-100.0
    )
    assert target[0, 0].tolist() == pytest.approx([2.0, 1.5, -100.0])
    q0 = 1 / (1 + math.exp(-0.5))
    q1 = 1 - q0
    expected = q0 * math.log(q0) + q1 * math.log(q1) + math.log(3)  # sum q (log q - log 1/3); q2 ~ e^-101
    loss, stats = L.lco_kld_loss(torch.zeros(1, 1, 3, dtype=torch.float64), target, t([[1.0]]))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert stats["target_kl"].item() == pytest.approx(expected, rel=1e-6)


def test_lco_target_sampled_token_outside_top_k_stays_at_fill():
    target = L.lco_target_logits(t([[[2.0]]]), torch.tensor([[[0]]]), torch.tensor([[2]]), t([[0.5]]), 3, -100.0)
    assert target[0, 0].tolist() == pytest.approx([2.0, -100.0, -99.5])


# ---------------------------------------------------------------------------------------------- GRPO by hand


def test_clipped_pg_by_hand():
    logp = torch.log(t([[0.5, 0.5]]))
    old = torch.log(t([[0.4, 0.4]]))  # ratio 1.25, outside the 0.2 band
    adv = t([[1.0, -1.0]])
    loss, stats = L.clipped_pg_loss(logp, old, adv, t([[1.0, 1.0]]), clip_eps=0.2)
    # A=+1: -min(1.25, 1.2) = -1.2 (clipped) ; A=-1: -min(-1.25, -1.2) = 1.25 (not clipped)
    assert loss.item() == pytest.approx((-1.2 + 1.25) / 2)
    assert stats["clip_frac"].item() == pytest.approx(0.5)


def test_grpo_kl_term_by_hand():
    logp = torch.log(t([[0.5]]))
    ref = torch.log(t([[0.25]]))
    d = math.log(0.25) - math.log(0.5)
    k3 = math.exp(d) - d - 1
    loss, stats = L.grpo_loss(logp, logp.clone(), ref, t([[2.0]]), t([[1.0]]), 0.2, kl_coef=0.1)
    assert stats["kl_penalty"].item() == pytest.approx(k3)
    assert loss.item() == pytest.approx(-2.0 + 0.1 * k3)
    assert L.kl_k3(logp, logp).item() == 0.0


# ---------------------------------------------------------------------------------------------- gradients


def test_kld_gradient_is_p_minus_q():
    torch.manual_seed(1)
    z = torch.randn(2, 3, 7, dtype=torch.float64, requires_grad=True)
    target = torch.randn(2, 3, 7, dtype=torch.float64)
    mask = torch.ones(2, 3, dtype=torch.float64)
    loss, _ = L.lco_kld_loss(z, target, mask)
    loss.backward()
    expected = (torch.softmax(z.detach(), -1) - torch.softmax(target, -1)) / 6  # token_mean over 6 tokens
    torch.testing.assert_close(z.grad, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["mse", "lch"])
def test_sampled_logit_losses_have_closed_form_gradients(name):
    torch.manual_seed(2)
    logits = torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True)
    tokens = torch.randint(5, (2, 3))
    target = torch.randn(2, 3, dtype=torch.float64)
    mask = torch.ones(2, 3, dtype=torch.float64)
    z_a = logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    fn = L.lco_mse_loss if name == "mse" else L.lco_lch_loss
    fn(z_a, target, mask)[0].backward()
    diff = z_a.detach() - target
    per_token = 2 * diff if name == "mse" else torch.tanh(diff)
    expected = torch.zeros_like(logits).scatter_(-1, tokens.unsqueeze(-1), (per_token / 6).unsqueeze(-1))
    torch.testing.assert_close(logits.grad, expected, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------- convexity


def _eigs(fn, z):
    return torch.linalg.eigvalsh(hessian(fn, z))


V, A_IDX = 6, 2


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("adv", [1.0, -1.0])
def test_lco_losses_are_convex_in_the_logits(seed, adv):
    g = torch.Generator().manual_seed(seed)
    z0 = 2 * torch.randn(V, generator=g, dtype=torch.float64)
    z_old = z0 + 0.3 * torch.randn(V, generator=g, dtype=torch.float64)
    z_star = z_old.clone()
    z_star[A_IDX] += adv / 2.0
    one = torch.ones(1, 1, dtype=torch.float64)

    def kld(z):
        return L.lco_kld_loss(z.view(1, 1, V), z_star.view(1, 1, V), one)[0]

    def mse(z):
        return L.lco_mse_loss(z[A_IDX].view(1, 1), z_star[A_IDX].view(1, 1), one)[0]

    def lch(z):
        return L.lco_lch_loss(z[A_IDX].view(1, 1), z_star[A_IDX].view(1, 1), one)[0]

    for fn in (kld, mse, lch):
        eig = _eigs(fn, z0)
        assert eig.min() >= -1e-10, f"{fn.__name__}: Hessian has a negative eigenvalue {eig.min():.3g}"
        assert eig.max() > 1e-6  # and it is not trivially flat


@pytest.mark.parametrize("adv", [1.0, -1.0])
def test_ppo_clip_surrogate_is_not_convex_inside_the_band(adv):
    """Inside the clip band PPO-clip equals PG-IS, whose logit Hessian -A r [(e_a-p)(e_a-p)^T - (diag p - pp^T)]
    is indefinite at typical points (paper-notes 2.3-2.4); at points where one token dominates it can be
    semi-definite, so the claim is checked over random points in the band: most are indefinite, none is flat."""
    one = torch.ones(1, 1, dtype=torch.float64)
    indefinite = 0
    for seed in range(20):
        g = torch.Generator().manual_seed(seed)
        z_old = 2 * torch.randn(V, generator=g, dtype=torch.float64)
        z0 = z_old + 0.01 * torch.randn(V, generator=g, dtype=torch.float64)
        old_logp = torch.log_softmax(z_old, -1)[A_IDX].view(1, 1)

        def ppo(z, old_logp=old_logp):
            logp = torch.log_softmax(z, -1)[A_IDX].view(1, 1)
            return L.clipped_pg_loss(logp, old_logp, torch.full((1, 1), adv, dtype=torch.float64), one, 0.2)[0]

        ratio = torch.exp(torch.log_softmax(z0, -1)[A_IDX] - old_logp).item()
        assert 0.8 < ratio < 1.2  # inside the band, where the surrogate is not flat
        eig = _eigs(ppo, z0)
        assert eig.abs().max() > 1e-4
        indefinite += bool(eig.min() < -1e-6 and eig.max() > 1e-6)
    assert indefinite >= 15, f"only {indefinite}/20 points had an indefinite Hessian"


@pytest.mark.parametrize("mode", L.AGG_MODES)
def test_agg_weights_reproduce_aggregate(mode):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(5, 7, generator=g, dtype=torch.float64)
    mask = (torch.rand(5, 7, generator=g) > 0.3).double()
    torch.testing.assert_close((x * L.agg_weights(mask, mode)).sum(), L.aggregate(x, mask, mode), rtol=1e-12, atol=0)


@pytest.mark.parametrize("chunk", [1, 3, 1024])
@pytest.mark.parametrize("mode", L.AGG_MODES)
def test_chunked_kld_matches_the_unchunked_definition(chunk, mode):
    """Loss and logit gradient of the chunked LCO-KLD equal the plain full-tensor computation, whatever the chunk,
    for a tensor target and for a per-chunk target function."""
    g = torch.Generator().manual_seed(4)
    N, T, V, K = 3, 4, 9, 2
    logits = torch.randn(N, T, V, generator=g, dtype=torch.float64)
    values, indices = (logits + torch.randn(N, T, V, generator=g, dtype=torch.float64)).topk(K, -1)
    tokens = torch.randint(V, (N, T), generator=g)
    shift = torch.randn(N, T, generator=g, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]], dtype=torch.float64)
    target = L.lco_target_logits(values, indices, tokens, shift, V, -100.0)

    def target_fn(rows, _z):
        flat = lambda x: x.reshape(-1, *x.shape[2:])[rows]  # noqa: E731
        return L.lco_target_logits(flat(values), flat(indices), flat(tokens), flat(shift), V, -100.0)

    z_ref = logits.clone().requires_grad_(True)
    L._reference_lco_kld_loss(z_ref, target, mask, mode).backward()
    for tgt in (target, target_fn):
        z = logits.clone().requires_grad_(True)
        loss, _ = L.lco_kld_loss(z, tgt, mask, mode, chunk_tokens=chunk)
        loss.backward()
        torch.testing.assert_close(loss, L._reference_lco_kld_loss(logits, target, mask, mode), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(z.grad, z_ref.grad, rtol=1e-10, atol=1e-12)


def test_clip_higher_bounds_by_hand():
    logp = torch.log(t([[1.5, 0.5, 1.25]]))  # ratios 1.5, 0.5, 1.25 against old_logp = 0
    old, mask = torch.zeros(1, 3, dtype=torch.float64), torch.ones(1, 3, dtype=torch.float64)
    adv = t([[1.0, -1.0, 1.0]])
    # symmetric 0.2, loss max(-rA, -clip(r)A): A=+1, r=1.5 -> -1.2; A=-1, r=0.5 -> 0.8 (clipped up); r=1.25 -> -1.2
    sym, _ = L.clipped_pg_loss(logp, old, adv, mask, 0.2)
    torch.testing.assert_close(sym, t((-1.2 + 0.8 - 1.2) / 3))
    # clip-higher 0.28: the third ratio 1.25 is inside [0.8, 1.28], the first is cut at 1.28
    high, stats = L.clipped_pg_loss(logp, old, adv, mask, 0.2, clip_eps_high=0.28)
    torch.testing.assert_close(high, t((-1.28 + 0.8 - 1.25) / 3))
    assert stats["clip_frac"] == pytest.approx(2 / 3)


def test_pg_loss_by_hand_and_concave_for_negative_advantage():
    logp = torch.log(t([[0.5, 0.25]]))
    loss, _ = L.pg_loss(logp, t([[2.0, -1.0]]), torch.ones(1, 2, dtype=torch.float64))
    torch.testing.assert_close(loss, t((-2.0 * math.log(0.5) + math.log(0.25)) / 2))
    # A < 0: the logit gradient |A|(e_a - p) grows as p_a -> 0 (paper-notes 2.3)
    norms = []
    for za in (0.0, -3.0, -6.0):
        z = t([[[za, 0.0, 0.0]]]).requires_grad_(True)
        L.pg_loss(L.token_logprobs(z, torch.tensor([[0]])), t([[-1.0]]), t([[1.0]]))[0].backward()
        norms.append(float(z.grad.norm()))
    assert norms[0] < norms[1] < norms[2]


def test_value_loss_with_clipping_by_hand():
    values, old, returns = t([[1.0, 0.0]]), t([[0.5, 0.0]]), t([[0.0, 1.0]])
    mask = t([[1.0, 1.0]])
    # token 0: plain (1-0)^2 = 1; clipped: 0.5 + clamp(0.5, -0.2, 0.2) = 0.7 -> 0.49; max = 1
    # token 1: plain (0-1)^2 = 1; clipped: 0 + 0 = 0 -> 1; max = 1
    loss, stats = L.value_loss(values, old, returns, mask, clip=0.2)
    torch.testing.assert_close(loss, t(0.5 * 1.0))
    # the clipped error wins when the new value moves away from the return
    loss, _ = L.value_loss(t([[-1.0]]), t([[0.0]]), t([[0.5]]), t([[1.0]]), clip=0.2)
    torch.testing.assert_close(loss, t(0.5 * 2.25))  # max((-1-0.5)^2, (-0.2-0.5)^2)
    assert "value_explained_var" in stats


def test_tpo_loss_by_hand_and_gradient_is_p_minus_q():
    seq_logp = t([-1.0, -2.0]).requires_grad_(True)
    old = t([-1.0, -2.0])
    u = t([1.0, -1.0])
    loss, _ = L.tpo_loss(seq_logp, old, u, group_size=2)
    p = torch.softmax(t([-1.0, -2.0]), 0)
    q = torch.softmax(t([-1.0 + 1.0, -2.0 - 1.0]), 0)
    torch.testing.assert_close(loss, (q * (q.log() - p.log())).sum())
    loss.backward()
    torch.testing.assert_close(seq_logp.grad, p - q)  # one group: the mean over groups is the group itself


def test_dense_lco_pointwise_losses_sum_over_candidates():
    z, target = t([[[1.0, 2.0, 0.0]]]), t([[[0.0, 2.5, 1.0]]])
    mask = t([[1.0]])
    mse, stats = L.lco_mse_loss(z, target, mask)
    torch.testing.assert_close(mse, t(1.0 + 0.25 + 1.0))
    torch.testing.assert_close(stats["target_gap"], t((1.0 + 0.5 + 1.0) / 3))
    lch, _ = L.lco_lch_loss(z, target, mask)
    torch.testing.assert_close(lch, t(sum(math.log(math.cosh(d)) for d in (1.0, -0.5, -1.0))))


def test_token_stats_match_full_computations():
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 5, 13, generator=g)
    tokens = torch.randint(13, (2, 5), generator=g)
    stats = L.token_stats(logits, tokens, chunk_tokens=3)
    torch.testing.assert_close(stats["logp"], L.token_logprobs(logits, tokens))
    torch.testing.assert_close(stats["entropy"], L.entropy(logits))
    torch.testing.assert_close(stats["max_abs_logit"], logits.abs().amax(-1))


def test_logit_diagnostics_by_hand():
    """Per-token logit-gradient norms are undone from their aggregation weight; the directionality cosine is
    taken between centred -g and centred z* - z, and padding is ignored."""
    z = t([[[0.0, 1.0, 2.0], [5.0, 5.0, 5.0]]])
    g = t([[[0.3, -0.1, -0.2], [9.0, 9.0, 9.0]]])  # the second position is padding
    w, mask = t([[0.5, 0.5]]), t([[1.0, 0.0]])
    z_star = t([[[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]])
    out = L.logit_diagnostics(z, g, w, mask, lambda rows, zr: z_star.reshape(-1, 3)[rows], chunk=1)
    assert out["logit_grad_norm"] == pytest.approx(math.sqrt(0.09 + 0.01 + 0.04) / 0.5)
    gap = torch.tensor([1.0, 0.0, -2.0])
    gap = gap - gap.mean()
    neg_g = -torch.tensor([0.3, -0.1, -0.2])
    assert out["directionality"] == pytest.approx(float(torch.nn.functional.cosine_similarity(neg_g, gap, dim=0)))
    assert L.logit_diagnostics(z, g, w, mask, None, chunk=4)["directionality"] == 0.0
