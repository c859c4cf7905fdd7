from __future__ import annotations

import pytest
import torch

from lco_exp.advantages import _reference_group_normalized, group_normalized, lco_sparse_advantages


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
    assert lco_sparse_advantages(r, 2, "none", 2.0, 0.5).tolist() == [1.0, -1.0, 1.0, 1.0]
    assert lco_sparse_advantages(r, 2, "group_mean", 2.0, 0.5).tolist() == [1.0, -1.0, 0.0, 0.0]
    normed = lco_sparse_advantages(r, 2, "group_norm", 2.0, 0.5)
    assert normed[2:].tolist() == [0.0, 0.0] and normed[0] > 0 > normed[1]
    with pytest.raises(ValueError, match="unknown LCO baseline"):
        lco_sparse_advantages(r, 2, "mean", 2.0, 0.5)
