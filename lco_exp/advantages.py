"""Pure advantage estimators, each beside a slow loop reference that the tests hold it to.

Sequences are laid out group-major: rows [g*G, (g+1)*G) are the G completions of prompt g.
"""

from __future__ import annotations

import torch
from torch import Tensor


def group_normalized(rewards: Tensor, group_size: int, scale_by_std: bool, eps: float = 1e-6) -> Tensor:
    """GRPO advantages (Shao et al. 2024, eq. 3's outcome supervision): (r - mean_G) / (std_G + eps). (N,) -> (N,)

    std is the unbiased sample std, as TRL and verl use. A group whose rewards are all equal gets advantage 0.
    Deviation: the authors' framework keeps the raw reward for such a group (paper-notes 4); we follow TRL/verl,
    since a constant reward carries no preference between the group's completions.
    """
    grouped = rewards.float().view(-1, group_size)  # (B, G)
    centred = grouped - grouped.mean(dim=1, keepdim=True)
    if scale_by_std:
        centred = centred / (grouped.std(dim=1, keepdim=True) + eps)
    return centred.reshape(-1)


def _reference_group_normalized(rewards: Tensor, group_size: int, scale_by_std: bool, eps: float = 1e-6) -> Tensor:
    out = torch.empty(len(rewards), dtype=torch.float32)
    for start in range(0, len(rewards), group_size):
        group = [float(r) for r in rewards[start : start + group_size]]
        mean = sum(group) / len(group)
        var = sum((r - mean) ** 2 for r in group) / (len(group) - 1)
        for i, r in enumerate(group):
            out[start + i] = (r - mean) / (var**0.5 + eps) if scale_by_std else r - mean
    return out


def group_mean_baseline(rewards: Tensor, group_size: int) -> Tensor:
    """r - mean of its group (RLOO-free plain baseline). (N,) -> (N,)"""
    return group_normalized(rewards, group_size, scale_by_std=False)


def lco_sparse_advantages(
    rewards: Tensor,  # (N,) task rewards in [0, 1]
    group_size: int,
    baseline: str,  # none | group_mean | group_norm
    reward_scale: float,
    reward_offset: float,
) -> Tensor:
    """LCO's sparse estimator (paper-notes 3.3): the sequence reward as the sampled tokens' advantage. (N,) -> (N,)

    The authors use a +1/-1 rule reward with no baseline; ``reward_scale * (r - reward_offset)`` maps our 1/0
    rewards onto that. A group baseline is optional (not in the authors' math scripts).
    """
    a = reward_scale * (rewards.float() - reward_offset)
    if baseline == "none":
        return a
    if baseline == "group_mean":
        return group_mean_baseline(a, group_size)
    if baseline == "group_norm":
        return group_normalized(a, group_size, scale_by_std=True)
    raise ValueError(f"unknown LCO baseline {baseline!r}; expected none, group_mean or group_norm")


def broadcast_to_tokens(seq_adv: Tensor, mask: Tensor) -> Tensor:
    """(N,) sequence advantages -> (N, T), zero outside the response mask."""
    return seq_adv[:, None].to(mask.dtype) * mask
