from __future__ import annotations

import pytest
import torch

from lco_exp.advantages import (
    _reference_gae,
    _reference_group_normalized,
    _reference_rloo,
    candidate_advantages,
    gae,
    group_normalized,
    rloo,
    sequence_advantages,
    token_rewards,
    tpo_utilities,
    whiten,
)


@pytest.mark.parametrize("scale_by_std", [True, False])
@pytest.mark.parametrize("group_size", [2, 4, 8])
def test_group_normalized_matches_the_loop(group_size, scale_by_std):
    torch.manual_seed(group_size)
    rewards = torch.randint(0, 2, (group_size * 6,)).float()
    rewards[:group_size] = 1.0  # one group whose rewards are all equal
    fast = group_normalized(rewards, group_size, scale_by_std)
    torch.testing.assert_close(
        fast, _reference_group_normalized(rewards, group_size, scale_by_std), rtol=1e-6, atol=1e-6
    )
    assert fast[:group_size].abs().max() == 0  # equal rewards carry no preference: advantage 0
    assert fast.view(-1, group_size).sum(1).abs().max() < 1e-5  # zero mean per group


def test_group_normalized_by_hand():
    adv = group_normalized(torch.tensor([1.0, 0.0, 0.0, 0.0]), 4, True, eps=0.0)
    std = (0.75**2 + 3 * 0.25**2) ** 0.5 / 3**0.5  # unbiased
    assert adv.tolist() == pytest.approx([0.75 / std, -0.25 / std, -0.25 / std, -0.25 / std])


def test_lco_sparse_maps_rewards_to_plus_minus_one():
    r = torch.tensor([1.0, 0.0, 1.0, 1.0])
    assert sequence_advantages(r, 2, "none", 2.0, 0.5).tolist() == [1.0, -1.0, 1.0, 1.0]
    assert sequence_advantages(r, 2, "group_mean", 2.0, 0.5).tolist() == [1.0, -1.0, 0.0, 0.0]
    normed = sequence_advantages(r, 2, "group_norm", 2.0, 0.5)
    assert normed[2:].tolist() == [0.0, 0.0] and normed[0] > 0 > normed[1]
    with pytest.raises(ValueError, match="unknown baseline"):
        sequence_advantages(r, 2, "median", 2.0, 0.5)


def test_sequence_advantages_batch_mean():
    r = torch.tensor([1.0, 0.0, 1.0, 1.0])  # +1 -1 +1 +1, mean 0.5
    assert sequence_advantages(r, 2, "batch_mean", 2.0, 0.5).tolist() == [0.5, -1.5, 0.5, 0.5]


def test_rloo_hand_computed_and_against_loop():
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0])  # groups of 3
    # r_0 - mean(0, 0) = 1; r_1 - mean(1, 0) = -0.5; r_3 - mean(1, 1) = 0
    torch.testing.assert_close(rloo(r, 3), torch.tensor([1.0, -0.5, -0.5, 0.0, 0.0, 0.0]))
    g = torch.Generator().manual_seed(0)
    r = torch.rand(40, generator=g)
    for G in (2, 4, 8):
        torch.testing.assert_close(rloo(r, G), _reference_rloo(r, G), rtol=1e-6, atol=1e-6)


def test_gae_hand_computed():
    # one sequence of 3 tokens, reward 1 on the last, values 0.5 each, gamma 0.9, lambda 0.95
    rewards = torch.tensor([[0.0, 0.0, 1.0, 0.0]])
    values = torch.tensor([[0.5, 0.5, 0.5, 7.0]])  # the 4th position is padding: its value must be ignored
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    adv, ret = gae(rewards, values, mask, gamma=0.9, lam=0.95)
    d2 = 1.0 - 0.5  # terminal: no bootstrap
    d1 = 0.0 + 0.9 * 0.5 - 0.5
    d0 = 0.0 + 0.9 * 0.5 - 0.5
    a2 = d2
    a1 = d1 + 0.855 * a2
    a0 = d0 + 0.855 * a1
    torch.testing.assert_close(adv, torch.tensor([[a0, a1, a2, 0.0]]))
    torch.testing.assert_close(ret, torch.tensor([[a0 + 0.5, a1 + 0.5, a2 + 0.5, 0.0]]))


def test_gae_against_loop_reference():
    g = torch.Generator().manual_seed(1)
    N, T = 6, 9
    rewards, values = torch.randn(N, T, generator=g), torch.randn(N, T, generator=g)
    lengths = torch.tensor([9, 1, 4, 7, 2, 9])
    mask = (torch.arange(T)[None] < lengths[:, None]).float()
    rewards = rewards * mask
    for gamma, lam in [(0.9, 0.95), (1.0, 1.0), (0.5, 0.0)]:
        adv, ret = gae(rewards, values, mask, gamma, lam)
        ref_adv, ref_ret = _reference_gae(rewards, values, mask, gamma, lam)
        torch.testing.assert_close(adv, ref_adv, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ret, ref_ret, rtol=1e-5, atol=1e-5)


def test_token_rewards_placement_and_kl():
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    kl = torch.tensor([[0.1, 0.2, 0.3], [0.4, 9.0, 9.0]])
    r = torch.tensor([1.0, -1.0])
    last = token_rewards(r, kl, mask, kl_coef=0.5, all_tokens=False)
    torch.testing.assert_close(last, torch.tensor([[-0.05, -0.1, 0.85], [-1.2, 0.0, 0.0]]))
    every = token_rewards(r, None, mask, kl_coef=0.5, all_tokens=True)
    torch.testing.assert_close(every, torch.tensor([[1.0, 1.0, 1.0], [-1.0, 0.0, 0.0]]))


def test_whiten_is_zero_mean_unit_std_on_the_mask():
    adv = torch.tensor([[1.0, 2.0, 3.0], [4.0, 100.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    w = whiten(adv, mask)
    live = w[mask.bool()]
    torch.testing.assert_close(live.mean(), torch.tensor(0.0), atol=1e-6, rtol=0)
    torch.testing.assert_close(live.pow(2).mean().sqrt(), torch.tensor(1.0), atol=1e-5, rtol=0)
    assert (w[~mask.bool()] == 0).all()


def test_candidate_advantages_normalisation():
    scores = torch.tensor([[[-1.0, -2.0, -3.0]]])  # mean -2, sample std 1
    torch.testing.assert_close(candidate_advantages(scores, center=False), scores / (1.0 + 1e-6))
    centred = torch.tensor([[[1.0, 0.0, -1.0]]]) / (1 + 1e-6)
    torch.testing.assert_close(candidate_advantages(scores, center=True), centred)


def test_tpo_utilities_are_standardised_group_rewards():
    r = torch.tensor([1.0, 0.0, 0.0, 0.0])
    u = tpo_utilities(r, 4, temperature=2.0)
    torch.testing.assert_close(u, group_normalized(r, 4, True) / 2.0)
    assert u[0] > 0 > u[1]
