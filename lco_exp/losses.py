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


def agg_weights(mask: Tensor, mode: str) -> Tensor:
    """(N, T) weights w with ``aggregate(x, mask, mode) == (x * w).sum()`` for any x: every mode is linear."""
    mask = upcast(mask)
    if mode == "token_mean":
        return mask / mask.sum().clamp(min=1)
    if mode == "seq_mean_token_mean":
        return mask / mask.sum(dim=1, keepdim=True).clamp(min=1) / mask.shape[0]
    if mode == "seq_mean_token_sum_norm":
        return mask / (mask.shape[1] * mask.shape[0])
    raise ValueError(f"unknown loss aggregation {mode!r}; expected one of {AGG_MODES}")


def agg_count(mask: Tensor, mode: str) -> float:
    """The denominator ``aggregate`` divides by: response tokens (token_mean) or sequences (the seq modes)."""
    if mode == "token_mean":
        return float(mask.sum().clamp(min=1))
    return float(mask.shape[0])


def logprobs_at(logits: Tensor, ids: Tensor) -> Tensor:
    """(N, T, V) logits, (N, T, K) token ids -> (N, T, K) log-softmax at those ids, in float32 or wider."""
    return torch.log_softmax(upcast(logits), dim=-1).gather(-1, ids)


def token_logprobs(logits: Tensor, tokens: Tensor) -> Tensor:
    """(N, T, V) logits, (N, T) token ids -> (N, T) log-softmax at those ids, in float32."""
    return logprobs_at(logits, tokens.unsqueeze(-1)).squeeze(-1)


def entropy(logits: Tensor) -> Tensor:
    """(N, T, V) -> (N, T) entropy of softmax(logits) in nats."""
    logp = torch.log_softmax(upcast(logits), dim=-1)
    return -(logp.exp() * logp).sum(-1)


@torch.no_grad()
def token_stats(logits: Tensor, tokens: Tensor, chunk_tokens: int) -> dict[str, Tensor]:
    """Per-token log-prob of ``tokens``, entropy and largest |logit|, (N, T) each, computed ``chunk_tokens``
    positions at a time so no float32 (N, T, V) copy of the logits is ever made."""
    flat, ids = logits.detach().reshape(-1, logits.shape[-1]), tokens.reshape(-1)
    parts: dict[str, list[Tensor]] = {"logp": [], "entropy": [], "max_abs_logit": []}
    for s in range(0, flat.shape[0], chunk_tokens):
        z = upcast(flat[s : s + chunk_tokens])
        logp = torch.log_softmax(z, dim=-1)
        parts["logp"].append(logp.gather(-1, ids[s : s + chunk_tokens, None])[:, 0])
        parts["entropy"].append(-(logp.exp() * logp).sum(-1))
        parts["max_abs_logit"].append(z.abs().amax(-1))
    return {k: torch.cat(v).view(tokens.shape) for k, v in parts.items()}


@torch.no_grad()
def logit_diagnostics(
    logits: Tensor,  # (N, T, V)
    g_z: Tensor,  # (N, T, V) gradient of the (weighted) loss with respect to the logits
    token_w: Tensor,  # (N, T) each token's weight in that loss
    mask: Tensor,  # (N, T)
    target_fn,  # as lco_kld_loss's: fn(rows, logits_rows) -> z* rows, or None
    chunk: int,
) -> dict[str, float]:
    """Sums over the micro-batch's response tokens of ||d l_t / d z_t|| (the per-token loss's logit gradient,
    g_z / token weight) and, where the algorithm has a target z*, of the cosine between -g_z and z* - z
    (both centred over the vocabulary: softmax ignores a constant shift)."""
    V = logits.shape[-1]
    flat_z, flat_g = logits.detach().reshape(-1, V), g_z.reshape(-1, V)
    live = mask.reshape(-1).bool()
    w = token_w.reshape(-1)
    norm_sum = cos_sum = 0.0
    for s in range(0, flat_z.shape[0], chunk):
        rows = slice(s, s + chunk)
        keep = live[rows]
        if not keep.any():
            continue
        g = upcast(flat_g[rows][keep])
        norm_sum += float((g.norm(dim=-1) / w[rows][keep]).sum())
        if target_fn is not None:
            gap = target_fn(rows, flat_z[rows])[keep] - upcast(flat_z[rows][keep])
            gap = gap - gap.mean(-1, keepdim=True)
            cos_sum += float(F.cosine_similarity(-(g - g.mean(-1, keepdim=True)), gap, dim=-1).sum())
    return {"logit_grad_norm": norm_sum, "directionality": cos_sum}


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


def pg_loss(
    logp: Tensor,  # (N, T) log pi_theta(token)
    adv: Tensor,  # (N, T)
    mask: Tensor,  # (N, T)
    agg: str = "token_mean",
) -> tuple[Tensor, dict[str, Tensor]]:
    """Vanilla policy gradient, -A log pi(a) (Williams 1992); REINFORCE and RLOO. Convex in the logits for A > 0,
    concave for A < 0, where its logit gradient |A| (e_a - p) grows as p_a -> 0 (paper-notes 2.3)."""
    return aggregate(-adv * logp, mask, agg), {}


def clipped_pg_loss(
    logp: Tensor,  # (N, T) log pi_theta(token), current policy
    old_logp: Tensor,  # (N, T) same under the behaviour policy that sampled the batch
    adv: Tensor,  # (N, T) advantages broadcast over tokens
    mask: Tensor,  # (N, T) 1 for response tokens that count
    clip_eps: float,
    agg: str = "token_mean",
    clip_eps_high: float | None = None,  # DAPO's clip-higher: ratio capped at 1 + clip_eps_high; None = clip_eps
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO-clip surrogate (Schulman et al. 2017, eq. 7), shared by PPO and GRPO; asymmetric bounds as DAPO."""
    high = clip_eps if clip_eps_high is None else clip_eps_high
    ratio = torch.exp(logp - old_logp)
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1 - clip_eps, 1 + high)
    loss = aggregate(torch.maximum(unclipped, clipped), mask, agg)
    return loss, {"clip_frac": masked_mean((clipped > unclipped).float(), mask).detach()}


def value_loss(
    values: Tensor,  # (N, T) current critic outputs
    old_values: Tensor,  # (N, T) critic outputs when the batch was collected
    returns: Tensor,  # (N, T) GAE returns (targets)
    mask: Tensor,
    clip: float | None,
    agg: str = "token_mean",
) -> tuple[Tensor, dict[str, Tensor]]:
    """0.5 (V - R)^2, with PPO2's value clipping: max of the plain and the clipped error (Schulman et al. 2017)."""
    err = (upcast(values) - returns).square()
    if clip is not None:
        clipped = old_values + (upcast(values) - old_values).clamp(-clip, clip)
        err = torch.maximum(err, (clipped - returns).square())
    loss = 0.5 * aggregate(err, mask, agg)
    explained = 1 - masked_mean((returns - values.detach()).square(), mask) / masked_mean(
        (returns - masked_mean(returns, mask)).square(), mask
    ).clamp(min=1e-8)
    return loss, {
        "value_loss": loss.detach(),
        "value_mean": masked_mean(values.detach(), mask),
        "value_explained_var": explained,
    }


def tpo_loss(
    seq_logp: Tensor,  # (N,) log pi_theta(y_i | x), summed over the response tokens
    old_seq_logp: Tensor,  # (N,) the same under the behaviour policy
    utilities: Tensor,  # (N,) u_i, e.g. standardised group rewards
    group_size: int,
) -> tuple[Tensor, dict[str, Tensor]]:
    """TPO (Kaddour 2026, arXiv 2604.06159): q = softmax_G(log p_old + u) over each group, loss = CE(q, p_theta)
    with p_theta = softmax_G(log pi_theta(y_i)); its gradient on the group's sequence logits is p_theta - q.

    Mean over groups. Deviation, assumed: u is the group-standardised reward (the paper's "standardise") divided
    by a temperature; the paper's exact scaling was not available.
    """
    log_p = torch.log_softmax(upcast(seq_logp).view(-1, group_size), dim=-1)  # (B, G)
    log_q = torch.log_softmax(upcast(old_seq_logp).view(-1, group_size) + utilities.view(-1, group_size), dim=-1)
    q = log_q.exp()
    per_group = (q * (log_q - log_p)).sum(-1)  # KL(q || p_theta) = CE - H(q): same gradient, 0 at the optimum
    return per_group.mean(), {"target_kl": per_group.mean().detach()}


def grpo_loss(
    logp: Tensor,  # (N, T)
    old_logp: Tensor,  # (N, T)
    ref_logp: Tensor | None,  # (N, T) frozen reference, or None when kl_coef == 0
    adv: Tensor,  # (N, T)
    mask: Tensor,  # (N, T)
    clip_eps: float,
    kl_coef: float,
    agg: str = "token_mean",
    clip_eps_high: float | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """GRPO (Shao et al. 2024, eq. 3): clipped surrogate plus kl_coef x k3 KL to the reference, per token."""
    pg, stats = clipped_pg_loss(logp, old_logp, adv, mask, clip_eps, agg, clip_eps_high)
    if ref_logp is None or kl_coef == 0:
        return pg, stats | {"pg_loss": pg.detach()}
    kl = aggregate(kl_k3(logp, ref_logp), mask, agg)
    return pg + kl_coef * kl, stats | {"pg_loss": pg.detach(), "kl_penalty": kl.detach()}


# ------------------------------------------------------------------------------------------------ LCO


def lco_beta(adv: Tensor, beta: float, negative_beta_scale: float) -> Tensor:
    """Per-token beta: beta where A > 0, beta x negative_beta_scale where A <= 0 (paper-notes 3.2, [C])."""
    return torch.where(adv > 0, torch.full_like(adv, beta), torch.full_like(adv, beta * negative_beta_scale))


def lco_target_logits(
    anchor_values: Tensor,  # (..., K) anchor logits kept for K tokens per position (dense: already shifted)
    anchor_indices: Tensor,  # (..., K) their vocabulary ids
    tokens: Tensor | None,  # (...) sampled tokens a_t; None when the shift is already in anchor_values
    shift: Tensor | None,  # (...) A_t / beta_t on the sampled token
    vocab_size: int,
    fill: float,
) -> Tensor:
    """z* = z_anchor + (A/beta) e_a over the full vocabulary; tokens outside the kept K get ``fill``.

    (..., V). This is the exponential tilt pi* ~ pi_anchor exp(A/beta) of paper-notes 3.1, restricted to the
    kept top-K as the authors' code does (3.2): a sampled token outside the top-K keeps ~zero target mass.
    For the dense estimators every candidate carries its own advantage, so the caller passes
    anchor + A(v)/beta as ``anchor_values`` and no ``shift``.
    """
    dtype = torch.promote_types(anchor_values.dtype, torch.float32)
    z = torch.full((*anchor_values.shape[:-1], vocab_size), fill, dtype=dtype, device=anchor_values.device)
    z.scatter_(-1, anchor_indices, anchor_values.to(z.dtype))
    if shift is None:
        return z
    return z.scatter_add(-1, tokens.unsqueeze(-1), shift.unsqueeze(-1).to(z.dtype))


class _ChunkedTargetKL(torch.autograd.Function):
    """sum_t w_t KL(softmax(target_t) || softmax(z_t)), computed ``chunk`` tokens at a time.

    Forward and backward each hold at most a few (chunk x V) float32 temporaries; nothing of size (tokens x V) is
    saved for backward beyond the logits themselves, and the backward writes the logit gradient (w_t (p_t - q_t))
    chunk by chunk into one tensor shaped like the logits, as any loss's backward must produce.
    """

    @staticmethod
    def forward(ctx, logits, weights, target_fn, chunk):  # logits (M, V), weights (M,)
        ctx.save_for_backward(logits, weights)
        ctx.target_fn, ctx.chunk = target_fn, chunk
        dtype = torch.promote_types(logits.dtype, torch.float32)
        total = torch.zeros((), dtype=dtype, device=logits.device)
        per_token = torch.zeros(logits.shape[0], dtype=dtype, device=logits.device)
        for s in range(0, logits.shape[0], chunk):
            rows = slice(s, s + chunk)
            log_q = torch.log_softmax(target_fn(rows, logits[rows]), dim=-1)
            log_p = torch.log_softmax(upcast(logits[rows]), dim=-1)
            per_token[rows] = (log_q.exp() * (log_q - log_p)).sum(-1)
            total += (per_token[rows] * weights[rows]).sum()
        ctx.mark_non_differentiable(per_token)
        return total, per_token

    @staticmethod
    def backward(ctx, grad_total, _grad_per_token):
        logits, weights = ctx.saved_tensors
        grad = torch.empty_like(logits)
        for s in range(0, logits.shape[0], ctx.chunk):
            rows = slice(s, s + ctx.chunk)
            q = torch.softmax(ctx.target_fn(rows, logits[rows]), dim=-1)
            p = torch.softmax(upcast(logits[rows]), dim=-1)
            grad[rows] = ((p - q) * (weights[rows] * grad_total)[:, None]).to(grad.dtype)
        return grad, None, None, None


def lco_kld_loss(
    logits: Tensor,  # (N, T, V) current logits
    target,  # (N, T, V) target logits z*, or fn(rows: slice, logits_rows (M, V)) -> (M, V) z* of flat (N*T) rows
    mask: Tensor,  # (N, T)
    agg: str = "token_mean",
    chunk_tokens: int = 1024,
) -> tuple[Tensor, dict[str, Tensor]]:
    """LCO-KLD: KL(pi* || pi_theta) summed over the vocabulary (paper-notes 3.2). d/dz = pi_theta - pi*.

    Given a function, the target is built per chunk (see ``lco_target_logits``), so its (N, T, V) tensor never
    exists. Deviation from the authors' code (KLDivLoss on full tensors): the same value, computed in chunks.
    """
    V = logits.shape[-1]
    if isinstance(target, Tensor):
        flat_target = target.detach().reshape(-1, V)

        def target_fn(rows: slice, _z: Tensor) -> Tensor:
            return upcast(flat_target[rows])
    else:
        target_fn = target
    weights = agg_weights(mask, agg).reshape(-1).to(logits.device)
    loss, per_token = _ChunkedTargetKL.apply(logits.reshape(-1, V), weights, target_fn, chunk_tokens)
    return loss, {"target_kl": masked_mean(per_token.view(mask.shape), mask).detach()}


def _reference_lco_kld_loss(logits: Tensor, target_logits: Tensor, mask: Tensor, agg: str) -> Tensor:
    """The unchunked definition, kept for the tests."""
    log_q = torch.log_softmax(upcast(target_logits), dim=-1)
    log_p = torch.log_softmax(upcast(logits), dim=-1)
    return aggregate((log_q.exp() * (log_q - log_p)).sum(-1), mask, agg)


def _per_position(x: Tensor) -> Tensor:
    """(N, T) stays; (N, T, K) candidate terms are summed over K, as the authors' dense variant does (3.5)."""
    return x.sum(-1) if x.dim() == 3 else x


def lco_mse_loss(
    z_sampled: Tensor,  # (N, T) current logit of the sampled token, or (N, T, K) of K candidate tokens
    z_target: Tensor,  # same shape: z*, no gradient
    mask: Tensor,  # (N, T)
    agg: str = "token_mean",
) -> tuple[Tensor, dict[str, Tensor]]:
    """LCO-MSE: (z_a - z*_a)^2 on the sampled token's logit (paper-notes 3.2). d/dz_a = 2 (z_a - z*_a)."""
    diff = upcast(z_sampled) - upcast(z_target)
    gap = _per_position(diff.abs()) / (diff.shape[-1] if diff.dim() == 3 else 1)
    return aggregate(_per_position(diff.square()), mask, agg), {"target_gap": masked_mean(gap, mask).detach()}


def log_cosh(x: Tensor) -> Tensor:
    """log cosh(x) computed as |x| + log(1 + e^{-2|x|}) - log 2, stable for large |x| (the authors' form)."""
    ax = x.abs()
    return ax + F.softplus(-2 * ax) - math.log(2.0)


def lco_lch_loss(
    z_sampled: Tensor,  # (N, T) or (N, T, K), as lco_mse_loss
    z_target: Tensor,  # same shape
    mask: Tensor,  # (N, T)
    agg: str = "token_mean",
) -> tuple[Tensor, dict[str, Tensor]]:
    """LCO-LCH: log cosh(z_a - z*_a) (paper-notes 3.2); gradient tanh(z_a - z*_a), bounded by 1."""
    diff = upcast(z_sampled) - upcast(z_target)
    gap = _per_position(diff.abs()) / (diff.shape[-1] if diff.dim() == 3 else 1)
    return aggregate(_per_position(log_cosh(diff)), mask, agg), {"target_gap": masked_mean(gap, mask).detach()}
