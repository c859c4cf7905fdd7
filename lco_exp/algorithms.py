"""The one place that dispatches on the algorithm: match on the typed config, call pure functions.

A new algorithm is a new dataclass in ``config.py``, a YAML file in ``conf/algorithm/`` and one branch in each
function below; the test suite composes every algorithm file and fails if a branch is missing.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from lco_exp import advantages as A
from lco_exp import losses as L
from lco_exp.batch import RolloutBatch
from lco_exp.config import (
    AlgorithmConfig,
    GRPOConfig,
    LCOAnchor,
    LCOConfig,
    LCOEstimator,
    LCOLoss,
    ModelConfig,
    PPOConfig,
    ReinforceConfig,
    RewardPlacement,
    RLOOConfig,
    SFTConfig,
    TPOConfig,
)

ALGORITHMS = (LCOConfig, GRPOConfig, PPOConfig, ReinforceConfig, RLOOConfig, TPOConfig, SFTConfig)


def needs_reference(algo: AlgorithmConfig) -> bool:
    """Whether the loss (or PPO's reward) needs a frozen reference policy's log-probs."""
    match algo:
        case GRPOConfig() | PPOConfig():
            return algo.kl_coef != 0
        case LCOConfig():
            return False  # the KL regularisation is implicit in the target, relative to pi_old (paper-notes 3.4)
        case ReinforceConfig() | RLOOConfig() | TPOConfig() | SFTConfig():
            return False
    raise TypeError(f"no reference rule for {type(algo).__name__}")


def needs_critic(algo: AlgorithmConfig) -> bool:
    """Whether a value model is trained beside the policy."""
    match algo:
        case PPOConfig():
            return True
        case LCOConfig() | GRPOConfig() | ReinforceConfig() | RLOOConfig() | TPOConfig() | SFTConfig():
            return False
    raise TypeError(f"no critic rule for {type(algo).__name__}")


def is_supervised(algo: AlgorithmConfig) -> bool:
    """Whether the update trains on the task's reference completions instead of the sampled ones."""
    match algo:
        case SFTConfig():
            return True
        case LCOConfig() | GRPOConfig() | PPOConfig() | ReinforceConfig() | RLOOConfig() | TPOConfig():
            return False
    raise TypeError(f"no data rule for {type(algo).__name__}")


def resets_optimizer(algo: AlgorithmConfig) -> bool:
    """Whether the optimizer state is re-created before every iteration's update."""
    match algo:
        case LCOConfig():
            return algo.reset_optimizer_each_iteration  # the authors' LCO trainer re-creates Adam (paper-notes 3.4)
        case GRPOConfig() | PPOConfig() | ReinforceConfig() | RLOOConfig() | TPOConfig() | SFTConfig():
            return False
    raise TypeError(f"no optimizer-reset rule for {type(algo).__name__}")


def behaviour_top_k(algo: AlgorithmConfig) -> int | None:
    """How many behaviour logits per position the rollout must keep: 0 for none, None for the whole vocabulary."""
    match algo:
        case LCOConfig():
            if algo.estimator == LCOEstimator.dpo:
                return algo.candidates_k  # dpo scores the policy's own top-k tokens (paper-notes 3.3)
            if algo.estimator == LCOEstimator.dense_rm or algo.loss != LCOLoss.kld:
                return 0  # candidates come from the verifier; MSE/LCH need only the sampled token's logit
            return algo.top_k
        case GRPOConfig() | PPOConfig() | ReinforceConfig() | RLOOConfig() | TPOConfig() | SFTConfig():
            return 0
    raise TypeError(f"no behaviour-logit rule for {type(algo).__name__}")


def auxiliary_models(algo: AlgorithmConfig) -> dict[str, ModelConfig | None]:
    """Frozen models the advantage estimator reads, by role (also the config key under ``algorithm``):
    ``verifier`` for dense_rm; ``dpo_model`` and ``dpo_reference`` for dpo, where a None reference means the
    initial policy. Empty for everything else."""
    match algo:
        case LCOConfig() if algo.estimator == LCOEstimator.dense_rm:
            return {"verifier": algo.verifier}
        case LCOConfig() if algo.estimator == LCOEstimator.dpo:
            return {"dpo_model": algo.dpo_model, "dpo_reference": algo.dpo_reference}
    return {}


def needs_scoring(algo: AlgorithmConfig) -> bool:
    """Whether the behaviour fields must be computed before the update (a scoring pass after the rollout).

    A single on-policy pass takes them from its own first forward instead (``train.update``); several passes,
    or an estimator that reads the policy's top-k before the update (dpo), need them up front.
    """
    match algo:
        case LCOConfig() if algo.estimator == LCOEstimator.dpo:
            return True
        case PPOConfig() if algo.kl_coef != 0:
            return True  # the KL penalty enters the rewards, hence the advantages, before the update
    return algo.epochs * algo.minibatches > 1


def actor_lr_scale(algo: AlgorithmConfig, step: int) -> float:
    """Multiplier on the policy's learning rate at RL step ``step`` (1-based): PPO's critic warm-up keeps the
    actor nearly still for the first iterations (paper-notes 4); 1 otherwise."""
    if isinstance(algo, PPOConfig) and step <= algo.critic_warmup_steps:
        return algo.critic_warmup_actor_lr_scale
    return 1.0


def loss_weights(mask: Tensor, algo: AlgorithmConfig) -> Tensor:
    """(N, T) weight of each token in the aggregated loss, so micro-batches add up to the minibatch loss.

    TPO's loss is a mean over groups: every sequence weighs the same, shared evenly over its tokens.
    """
    if isinstance(algo, TPOConfig):
        m = mask.float()
        return m / m.sum(1, keepdim=True).clamp(min=1) / m.shape[0]
    return L.agg_weights(mask, algo.loss_agg.value)


def compute_advantages(batch: RolloutBatch, algo: AlgorithmConfig) -> dict[str, Tensor]:
    """The batch fields the update needs from rewards (and values): always ``adv`` (N, T); PPO adds ``returns``,
    the dense LCO estimators ``cand_adv`` (N, T, K)."""
    mask = batch.mask
    match algo:
        case GRPOConfig():
            seq = A.group_normalized(batch.rewards, algo.group_size, algo.scale_by_std)
        case LCOConfig() if algo.estimator == LCOEstimator.sparse:
            seq = A.sequence_advantages(
                batch.rewards, algo.group_size, algo.baseline.value, algo.reward_scale, algo.reward_offset
            )
        case LCOConfig():
            center = algo.estimator == LCOEstimator.dpo or algo.loss != LCOLoss.kld  # paper-notes 3.3
            cand_adv = A.candidate_advantages(batch.cand_scores, center)
            on_sampled = (batch.cand_ids == batch.response.unsqueeze(-1)).float()
            return {"adv": (cand_adv * on_sampled).sum(-1) * mask, "cand_adv": cand_adv}
        case ReinforceConfig():
            seq = A.sequence_advantages(
                batch.rewards, algo.group_size, algo.baseline.value, algo.reward_scale, algo.reward_offset
            )
        case RLOOConfig():
            seq = A.rloo(batch.rewards, algo.group_size)
        case TPOConfig():
            seq = A.tpo_utilities(batch.rewards, algo.group_size, algo.temperature)
        case SFTConfig():
            seq = torch.zeros(len(batch))  # reference completions carry no advantage
        case PPOConfig():
            kl = None
            if batch.ref_logp is not None and algo.kl_coef:
                d = batch.old_logp - batch.ref_logp
                kl = {"abs": d.abs(), "k1": d, "k3": L.kl_k3(batch.old_logp, batch.ref_logp)}[algo.kl_penalty.value]
            shaped = algo.reward_scale * (batch.rewards.float() - algo.reward_offset)
            all_tokens = algo.reward_placement == RewardPlacement.all_tokens
            rewards = A.token_rewards(shaped, kl, mask, algo.kl_coef, all_tokens)
            adv, returns = A.gae(rewards, batch.old_values, mask, algo.gamma, algo.lam)
            if algo.whiten_advantages:
                adv = A.whiten(adv, mask)
            return {"adv": adv, "returns": returns}
        case _:
            raise TypeError(f"no advantage estimator for {type(algo).__name__}")
    return {"adv": A.broadcast_to_tokens(seq, mask)}


def lco_target_fn(logits: Tensor, mb: RolloutBatch, algo: LCOConfig) -> Callable[[slice, Tensor], Tensor]:
    """z* for rows of the flattened (n*T) positions: ``fn(rows, logits[rows]) -> (rows, V)`` float32.

    Sparse: z_anchor (top-k, others ``topk_fill``) + (A/beta_t) on the sampled token (paper-notes 3.2, KLD).
    Dense: z_anchor + A(v)/beta at the K candidates, ``topk_fill`` elsewhere (3.3). The anchor is the behaviour
    logits (``anchor=old``) or the current detached logits (``anchor=current``).
    """
    V = logits.shape[-1]
    tokens = mb.response.reshape(-1)
    if algo.estimator == LCOEstimator.sparse:
        shift = (mb.adv / L.lco_beta(mb.adv, algo.beta, algo.negative_beta_scale)).reshape(-1)
        k = algo.top_k or V
        if algo.anchor == LCOAnchor.old:
            kept = mb.old_topk_values.shape[-1]
            values, indices = mb.old_topk_values.reshape(-1, kept), mb.old_topk_indices.reshape(-1, kept)

        def target(rows: slice, z: Tensor) -> Tensor:
            if algo.anchor == LCOAnchor.old:
                v, i = values[rows], indices[rows]
            else:
                v, i = L.upcast(z.detach()).topk(min(k, V), dim=-1)
            return L.lco_target_logits(v, i, tokens[rows], shift[rows], V, algo.topk_fill)

        return target

    ids = mb.cand_ids.reshape(-1, mb.cand_ids.shape[-1])
    shift = (mb.cand_adv / algo.beta).reshape(ids.shape)
    old = mb.old_cand_logits.reshape(ids.shape) if algo.anchor == LCOAnchor.old else None

    def dense_target(rows: slice, z: Tensor) -> Tensor:
        anchor = old[rows] if old is not None else L.upcast(z.detach()).gather(-1, ids[rows])
        return L.lco_target_logits(anchor + shift[rows], ids[rows], None, None, V, algo.topk_fill)

    return dense_target


def target_logits(logits: Tensor, mb: RolloutBatch, algo: AlgorithmConfig) -> Callable[[slice, Tensor], Tensor] | None:
    """The per-logit target z* where the algorithm defines one (LCO), for the directionality diagnostic;
    None otherwise. For MSE/LCH the target equals the current logits except at the tokens the loss touches."""
    if not isinstance(algo, LCOConfig):
        return None
    if algo.loss == LCOLoss.kld:
        return lco_target_fn(logits, mb, algo)
    tokens = mb.response.reshape(-1)
    flat_ids = tokens[:, None] if mb.cand_ids is None else mb.cand_ids.reshape(-1, mb.cand_ids.shape[-1])
    _, z_target = _lco_pointwise(logits, mb, algo)
    flat_target = z_target.detach().reshape(flat_ids.shape)

    def target(rows: slice, z: Tensor) -> Tensor:
        return L.upcast(z.detach()).scatter(-1, flat_ids[rows], flat_target[rows])

    return target


def _lco_pointwise(logits: Tensor, mb: RolloutBatch, algo: LCOConfig) -> tuple[Tensor, Tensor]:
    """(current logits, targets) at the tokens LCO-MSE/LCH act on: (n, T) sampled, or (n, T, K) candidates."""
    if algo.estimator == LCOEstimator.sparse:
        z = logits.gather(-1, mb.response.unsqueeze(-1)).squeeze(-1)  # (n, T)
        anchor = mb.old_logit_sampled if algo.anchor == LCOAnchor.old else z.detach()
        shift = mb.adv / L.lco_beta(mb.adv, algo.beta, algo.negative_beta_scale)
        return z, L.upcast(anchor) + shift
    z = logits.gather(-1, mb.cand_ids)  # (n, T, K)
    anchor = mb.old_cand_logits if algo.anchor == LCOAnchor.old else z.detach()
    beta = torch.full_like(mb.response, algo.beta, dtype=torch.float32)
    if algo.estimator == LCOEstimator.dense_rm and mb.verifier_logp is not None:  # paper-notes 3.3 agreement
        agree = (mb.old_logp > algo.agreement_logp) & (mb.verifier_logp > algo.agreement_logp)
        beta = torch.where(agree, beta * algo.agreement_beta_scale, beta)
    return z, L.upcast(anchor) + mb.cand_adv / beta.unsqueeze(-1)


def policy_loss(
    logits: Tensor,  # (n, T, V) current logits at the response positions of the micro-batch
    mb: RolloutBatch,  # the micro-batch (n rows), with adv set
    algo: AlgorithmConfig,
    chunk_tokens: int,  # hardware.loss_chunk_tokens: tokens per chunk for losses with (tokens x V) temporaries
) -> tuple[Tensor, dict[str, Tensor]]:
    """The algorithm's loss on one micro-batch, aggregated with ``algo.loss_agg``."""
    agg = algo.loss_agg.value
    tokens = mb.response
    match algo:
        case GRPOConfig():
            logp = L.token_logprobs(logits, tokens)
            return L.grpo_loss(
                logp, mb.old_logp, mb.ref_logp, mb.adv, mb.mask, algo.clip_eps, algo.kl_coef, agg, algo.clip_eps_high
            )
        case PPOConfig():
            logp = L.token_logprobs(logits, tokens)
            return L.clipped_pg_loss(logp, mb.old_logp, mb.adv, mb.mask, algo.clip_eps, agg)
        case ReinforceConfig() | RLOOConfig():
            return L.pg_loss(L.token_logprobs(logits, tokens), mb.adv, mb.mask, agg)
        case TPOConfig():
            logp = L.token_logprobs(logits, tokens)
            seq_logp, old_seq_logp = (logp * mb.mask).sum(1), (mb.old_logp * mb.mask).sum(1)
            utilities = (mb.adv * mb.mask).sum(1) / mb.mask.sum(1).clamp(min=1)  # (n,) the broadcast u_i
            return L.tpo_loss(seq_logp, old_seq_logp, utilities, algo.group_size)
        case SFTConfig():
            return L.sft_loss(logits, tokens, mb.mask, agg)
        case LCOConfig():
            if algo.loss == LCOLoss.kld:
                return L.lco_kld_loss(logits, lco_target_fn(logits, mb, algo), mb.mask, agg, chunk_tokens)
            z, z_target = _lco_pointwise(logits, mb, algo)
            loss_fn = L.lco_mse_loss if algo.loss == LCOLoss.mse else L.lco_lch_loss
            return loss_fn(z, z_target, mb.mask, agg)
    raise TypeError(f"no policy loss for {type(algo).__name__}")
