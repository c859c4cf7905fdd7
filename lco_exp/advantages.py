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


def sequence_advantages(
    rewards: Tensor,  # (N,) task rewards in [0, 1]
    group_size: int,
    baseline: str,  # none | group_mean | group_norm | batch_mean
    reward_scale: float,
    reward_offset: float,
) -> Tensor:
    """One advantage per sequence from its reward: LCO's sparse estimator (paper-notes 3.3) and REINFORCE.
    (N,) -> (N,)

    The authors use a +1/-1 rule reward with no baseline; ``reward_scale * (r - reward_offset)`` maps our 1/0
    rewards onto that. A baseline is optional (not in the authors' math scripts).
    """
    a = reward_scale * (rewards.float() - reward_offset)
    if baseline == "none":
        return a
    if baseline == "group_mean":
        return group_mean_baseline(a, group_size)
    if baseline == "group_norm":
        return group_normalized(a, group_size, scale_by_std=True)
    if baseline == "batch_mean":
        return a - a.mean()
    raise ValueError(f"unknown baseline {baseline!r}; expected none, group_mean, group_norm or batch_mean")


def rloo(rewards: Tensor, group_size: int) -> Tensor:
    """RLOO (Ahmadian et al. 2024, eq. 5 of arXiv 2402.14740): r_i - mean of the other G-1 rewards. (N,) -> (N,)

    Equal to G/(G-1) (r_i - mean_G), which is how it is computed here.
    """
    grouped = rewards.float().view(-1, group_size)
    return (grouped - grouped.mean(dim=1, keepdim=True)).mul(group_size / (group_size - 1)).reshape(-1)


def _reference_rloo(rewards: Tensor, group_size: int) -> Tensor:
    out = torch.empty(len(rewards), dtype=torch.float32)
    for start in range(0, len(rewards), group_size):
        group = [float(r) for r in rewards[start : start + group_size]]
        for i, r in enumerate(group):
            others = group[:i] + group[i + 1 :]
            out[start + i] = r - sum(others) / len(others)
    return out


def token_rewards(
    seq_rewards: Tensor,  # (N,) shaped sequence rewards
    kl: Tensor | None,  # (N, T) per-token KL estimate to the reference, or None
    mask: Tensor,  # (N, T)
    kl_coef: float,
    all_tokens: bool,
) -> Tensor:
    """PPO's per-token reward: the sequence reward on every response token (the authors' placement, paper-notes 4)
    or on the last one only, minus kl_coef x KL on every token. (N, T)"""
    mask = mask.float()
    if all_tokens:
        out = seq_rewards[:, None].float() * mask
    else:
        last = mask.sum(1).long().clamp(min=1) - 1  # index of the last response token
        out = torch.zeros_like(mask).scatter(1, last[:, None], seq_rewards[:, None].float()) * mask
    if kl is not None:
        out = out - kl_coef * kl * mask
    return out


def gae(
    rewards: Tensor,  # (N, T) per-token rewards
    values: Tensor,  # (N, T) V(s_t)
    mask: Tensor,  # (N, T) 1 on response tokens; the episode ends after the last one
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation (Schulman et al. 2015b, eq. 16). Returns (advantages, returns), (N, T).

    delta_t = r_t + gamma V(s_{t+1}) - V(s_t), with V = 0 after the last response token; A_t = sum_l (gamma
    lam)^l delta_{t+l}; returns = A + V. Positions outside the mask are 0.
    """
    mask = mask.float()
    values = values.float() * mask
    adv = torch.zeros_like(values)
    running = torch.zeros(values.shape[0], dtype=values.dtype, device=values.device)
    for t in reversed(range(values.shape[1])):
        next_value = values[:, t + 1] if t + 1 < values.shape[1] else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = (delta + gamma * lam * running) * mask[:, t]
        adv[:, t] = running
    return adv, (adv + values) * mask


def _reference_gae(rewards, values, mask, gamma, lam):
    """Plain per-sequence loops over Python floats."""
    N, T = rewards.shape
    adv = torch.zeros(N, T)
    for i in range(N):
        length = int(mask[i].sum())
        for t in range(length):
            total = 0.0
            for k in range(t, length):
                v_next = float(values[i, k + 1]) if k + 1 < length else 0.0
                delta = float(rewards[i, k]) + gamma * v_next - float(values[i, k])
                total += (gamma * lam) ** (k - t) * delta
            adv[i, t] = total
    return adv, (adv + values * mask) * mask


def whiten(adv: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """(A - mean) / std over the response tokens of the batch, zero outside the mask."""
    mask = mask.float()
    mean = (adv * mask).sum() / mask.sum().clamp(min=1)
    var = ((adv - mean).square() * mask).sum() / mask.sum().clamp(min=1)
    return (adv - mean) / (var.sqrt() + eps) * mask


def candidate_advantages(scores: Tensor, center: bool, eps: float = 1e-6) -> Tensor:
    """The dense estimators' normalisation over the K candidates of each position (paper-notes 3.3).
    (N, T, K) -> (N, T, K)

    dense_rm with KLD divides the verifier's log-probs by their std over the K candidates; with MSE/LCH, and for
    dpo always, it also subtracts their mean. std is the unbiased sample std (torch's default).
    """
    scores = scores.float()
    if center:
        scores = scores - scores.mean(-1, keepdim=True)
    return scores / (scores.std(-1, keepdim=True) + eps) if scores.shape[-1] > 1 else scores


def tpo_utilities(rewards: Tensor, group_size: int, temperature: float) -> Tensor:
    """TPO's u_i: group-standardised rewards over a temperature (assumed; see losses.tpo_loss). (N,) -> (N,)"""
    return group_normalized(rewards, group_size, scale_by_std=True) / temperature


def broadcast_to_tokens(seq_adv: Tensor, mask: Tensor) -> Tensor:
    """(N,) sequence advantages -> (N, T), zero outside the response mask."""
    return seq_adv[:, None].to(mask.dtype) * mask
