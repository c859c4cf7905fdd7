"""Pure, shape-annotated loss functions. No config, model or logging imports here.

Shapes (see ``batch.py``): N sequences, T response positions, V vocabulary, K kept behaviour logits.
Every loss returns ``(loss, stats)``: a scalar aggregated over the response tokens of its input, and a dict of
detached scalars. Aggregation has one definition, ``aggregate``; ``agg_count`` gives the matching denominator so a
caller can weight micro-batches and get exactly the full-batch value.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

AGG_MODES = ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm")


def upcast(x: Tensor) -> Tensor:
    """At least float32 (bf16/fp16 logits are upcast before any softmax; float64 stays float64)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``x`` over positions where ``mask`` is 1 (0 when the mask is empty)."""
    return (x * mask).sum() / mask.sum().clamp(min=1)


def aggregate(per_token: Tensor, mask: Tensor, mode: str) -> Tensor:
    """Reduce an (N, T) per-token loss to a scalar.

    token_mean: sum over all response tokens / their count (DAPO).
    seq_mean_token_mean: each sequence's token mean, then the mean over sequences (GRPO paper).
    seq_mean_token_sum_norm: each sequence's token sum / T (the padded generation budget), mean over sequences
        (Dr. GRPO, arXiv 2503.20783): no length bias.
    """
    if mode == "token_mean":
        return masked_mean(per_token, mask)
    seq_sum = (per_token * mask).sum(dim=1)  # (N,)
    if mode == "seq_mean_token_mean":
        return (seq_sum / mask.sum(dim=1).clamp(min=1)).mean()
    if mode == "seq_mean_token_sum_norm":
        return (seq_sum / mask.shape[1]).mean()
    raise ValueError(f"unknown loss aggregation {mode!r}; expected one of {AGG_MODES}")


def agg_count(mask: Tensor, mode: str) -> float:
    """The denominator ``aggregate`` divides by: response tokens (token_mean) or sequences (the seq modes)."""
    if mode == "token_mean":
        return float(mask.sum().clamp(min=1))
    return float(mask.shape[0])


def token_logprobs(logits: Tensor, tokens: Tensor) -> Tensor:
    """(N, T, V) logits, (N, T) token ids -> (N, T) log-softmax at those ids, in float32."""
    return torch.log_softmax(upcast(logits), dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def entropy(logits: Tensor) -> Tensor:
    """(N, T, V) -> (N, T) entropy of softmax(logits) in nats."""
    logp = torch.log_softmax(upcast(logits), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def kl_k3(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """Per-token k3 estimator of KL(pi_theta || pi_ref) from samples of pi_theta: e^d - d - 1, d = ref - logp.

    Unbiased and always >= 0 (Schulman, "Approximating KL divergence", 2020). Shapes (N, T) -> (N, T).
    """
    d = ref_logp - logp
    return torch.exp(d) - d - 1


def sft_loss(logits: Tensor, tokens: Tensor, mask: Tensor, agg: str = "token_mean") -> tuple[Tensor, dict]:
    """Negative log-likelihood of the target tokens: the convex-in-logits reference objective (paper-notes 2.1)."""
    nll = -token_logprobs(logits, tokens)  # (N, T)
    return aggregate(nll, mask, agg), {"nll": masked_mean(nll, mask).detach()}


def clipped_pg_loss(
    logp: Tensor,  # (N, T) log pi_theta(token), current policy
    old_logp: Tensor,  # (N, T) same under the behaviour policy that sampled the batch
    adv: Tensor,  # (N, T) advantages broadcast over tokens
    mask: Tensor,  # (N, T) 1 for response tokens that count
    clip_eps: float,
    agg: str = "token_mean",
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO-clip surrogate (Schulman et al. 2017, eq. 7), shared by PPO and GRPO."""
    ratio = torch.exp(logp - old_logp)
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps)
    loss = aggregate(torch.maximum(unclipped, clipped), mask, agg)
    return loss, {"clip_frac": masked_mean((clipped > unclipped).float(), mask).detach()}


def grpo_loss(
    logp: Tensor,  # (N, T)
    old_logp: Tensor,  # (N, T)
    ref_logp: Tensor | None,  # (N, T) frozen reference, or None when kl_coef == 0
    adv: Tensor,  # (N, T)
    mask: Tensor,  # (N, T)
    clip_eps: float,
    kl_coef: float,
    agg: str = "token_mean",
) -> tuple[Tensor, dict[str, Tensor]]:
    """GRPO (Shao et al. 2024, eq. 3): clipped surrogate plus kl_coef x k3 KL to the reference, per token."""
    pg, stats = clipped_pg_loss(logp, old_logp, adv, mask, clip_eps, agg)
    if ref_logp is None or kl_coef == 0:
        return pg, stats | {"pg_loss": pg.detach()}
    kl = aggregate(kl_k3(logp, ref_logp), mask, agg)
    return pg + kl_coef * kl, stats | {"pg_loss": pg.detach(), "kl_penalty": kl.detach()}


# ------------------------------------------------------------------------------------------------ LCO


def lco_beta(adv: Tensor, beta: float, negative_beta_scale: float) -> Tensor:
    """Per-token beta: beta where A > 0, beta x negative_beta_scale where A <= 0 (paper-notes 3.2, [C])."""
    return torch.where(adv > 0, torch.full_like(adv, beta), torch.full_like(adv, beta * negative_beta_scale))


def lco_target_logits(
    anchor_values: Tensor,  # (N, T, K) anchor logits kept for K tokens per position
    anchor_indices: Tensor,  # (N, T, K) their vocabulary ids
    tokens: Tensor,  # (N, T) sampled tokens a_t
    shift: Tensor,  # (N, T) A_t / beta_t
    vocab_size: int,
    fill: float,
) -> Tensor:
    """z* = z_anchor + (A/beta) e_a over the full vocabulary; tokens outside the kept K get ``fill``.

    (N, T, V). This is the exponential tilt pi* ~ pi_anchor exp(A/beta) of paper-notes 3.1, restricted to the
    kept top-K as the authors' code does (3.2): a sampled token outside the top-K keeps ~zero target mass.
    """
    dtype = torch.promote_types(anchor_values.dtype, torch.float32)
    z = torch.full((*tokens.shape, vocab_size), fill, dtype=dtype, device=tokens.device)
    z.scatter_(-1, anchor_indices, anchor_values.to(z.dtype))
    return z.scatter_add(-1, tokens.unsqueeze(-1), shift.unsqueeze(-1).to(z.dtype))


def lco_kld_loss(
    logits: Tensor,  # (N, T, V) current logits
    target_logits: Tensor,  # (N, T, V) z*, no gradient
    mask: Tensor,  # (N, T)
    agg: str = "token_mean",
) -> tuple[Tensor, dict[str, Tensor]]:
    """LCO-KLD: KL(pi* || pi_theta) summed over the vocabulary (paper-notes 3.2). d/dz = pi_theta - pi*."""
    log_q = torch.log_softmax(upcast(target_logits), dim=-1)
    log_p = torch.log_softmax(upcast(logits), dim=-1)
    per_token = (log_q.exp() * (log_q - log_p)).sum(-1)  # (N, T)
    return aggregate(per_token, mask, agg), {"target_kl": masked_mean(per_token, mask).detach()}


def lco_mse_loss(
    z_sampled: Tensor,  # (N, T) current logit of the sampled token
    z_target: Tensor,  # (N, T) z*_a, no gradient
    mask: Tensor,
    agg: str = "token_mean",
) -> tuple[Tensor, dict[str, Tensor]]:
    """LCO-MSE: (z_a - z*_a)^2 on the sampled token's logit (paper-notes 3.2). d/dz_a = 2 (z_a - z*_a)."""
    diff = upcast(z_sampled) - upcast(z_target)
    return aggregate(diff.square(), mask, agg), {"target_gap": masked_mean(diff.abs(), mask).detach()}


def log_cosh(x: Tensor) -> Tensor:
    """log cosh(x) computed as |x| + log(1 + e^{-2|x|}) - log 2, stable for large |x| (the authors' form)."""
    ax = x.abs()
    return ax + F.softplus(-2 * ax) - math.log(2.0)


def lco_lch_loss(
    z_sampled: Tensor,  # (N, T)
    z_target: Tensor,  # (N, T)
    mask: Tensor,
    agg: str = "token_mean",
) -> tuple[Tensor, dict[str, Tensor]]:
    """LCO-LCH: log cosh(z_a - z*_a) (paper-notes 3.2); gradient tanh(z_a - z*_a), bounded by 1."""
    diff = upcast(z_sampled) - upcast(z_target)
    return aggregate(log_cosh(diff), mask, agg), {"target_gap": masked_mean(diff.abs(), mask).detach()}
