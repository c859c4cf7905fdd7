"""The one place that dispatches on the algorithm: match on the typed config, call pure functions.

A new algorithm is a new dataclass in ``config.py``, a YAML file in ``conf/algorithm/`` and one branch in each
function below; the test suite composes every algorithm file and fails if a branch is missing.
"""

from __future__ import annotations

from torch import Tensor

from lco_exp import advantages as A
from lco_exp import losses as L
from lco_exp.batch import RolloutBatch
from lco_exp.config import AlgorithmConfig, GRPOConfig, LCOAnchor, LCOConfig, LCOLoss


def needs_reference(algo: AlgorithmConfig) -> bool:
    """Whether the loss itself needs a frozen reference policy's log-probs."""
    match algo:
        case GRPOConfig():
            return algo.kl_coef != 0
        case LCOConfig():
            return False  # the KL regularisation is implicit in the target, relative to pi_old (paper-notes 3.4)
    raise TypeError(f"no reference rule for {type(algo).__name__}")


def resets_optimizer(algo: AlgorithmConfig) -> bool:
    """Whether the optimizer state is re-created before every iteration's update."""
    match algo:
        case LCOConfig():
            return algo.reset_optimizer_each_iteration  # the authors' LCO trainer re-creates Adam (paper-notes 3.4)
        case GRPOConfig():
            return False
    raise TypeError(f"no optimizer-reset rule for {type(algo).__name__}")


def behaviour_top_k(algo: AlgorithmConfig) -> int | None:
    """How many behaviour logits per position the rollout must keep: 0 for none, None for the whole vocabulary."""
    match algo:
        case LCOConfig():
            return algo.top_k
        case GRPOConfig():
            return 0
    raise TypeError(f"no behaviour-logit rule for {type(algo).__name__}")


def compute_advantages(batch: RolloutBatch, algo: AlgorithmConfig) -> Tensor:
    """Per-token advantages, (N, T)."""
    match algo:
        case GRPOConfig():
            seq = A.group_normalized(batch.rewards, algo.group_size, algo.scale_by_std)
        case LCOConfig():
            seq = A.lco_sparse_advantages(
                batch.rewards, algo.group_size, algo.baseline.value, algo.reward_scale, algo.reward_offset
            )
        case _:
            raise TypeError(f"no advantage estimator for {type(algo).__name__}")
    return A.broadcast_to_tokens(seq, batch.mask)


def policy_loss(
    logits: Tensor,  # (n, T, V) current logits at the response positions of the micro-batch
    mb: RolloutBatch,  # the micro-batch (n rows), with adv set
    algo: AlgorithmConfig,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The algorithm's loss on one micro-batch, aggregated with ``algo.loss_agg``."""
    agg = algo.loss_agg.value
    tokens = mb.response
    match algo:
        case GRPOConfig():
            logp = L.token_logprobs(logits, tokens)
            return L.grpo_loss(logp, mb.old_logp, mb.ref_logp, mb.adv, mb.mask, algo.clip_eps, algo.kl_coef, agg)
        case LCOConfig():
            shift = mb.adv / L.lco_beta(mb.adv, algo.beta, algo.negative_beta_scale)  # (n, T) A_t / beta_t
            if algo.loss == LCOLoss.kld:
                if algo.anchor == LCOAnchor.old:
                    values, indices = mb.old_topk_values, mb.old_topk_indices
                else:
                    k = algo.top_k or logits.shape[-1]
                    values, indices = logits.detach().float().topk(k, dim=-1)
                target = L.lco_target_logits(values, indices, tokens, shift, logits.shape[-1], algo.topk_fill)
                return L.lco_kld_loss(logits, target, mb.mask, agg)
            z_sampled = logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)  # (n, T)
            anchor = mb.old_logit_sampled if algo.anchor == LCOAnchor.old else z_sampled.detach()
            loss_fn = L.lco_mse_loss if algo.loss == LCOLoss.mse else L.lco_lch_loss
            return loss_fn(z_sampled, anchor.float() + shift, mb.mask, agg)
    raise TypeError(f"no policy loss for {type(algo).__name__}")
