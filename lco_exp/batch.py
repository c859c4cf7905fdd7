"""The rollout batch: field names and shapes are the project's tensor vocabulary.

| name | shape | meaning |
|---|---|---|
| B, G, N = B*G | dims | prompts, samples per prompt, sequences |
| P, T, K, V | dims | prompt width, response length, kept behaviour logits, vocabulary |
| tokens | (N, P+T) | left-padded prompt then right-padded response ids |
| attention_mask | (N, P+T) | 1 for real tokens (prompt and response up to and including EOS) |
| mask | (N, T) | 1 = response token that counts in the loss |
| old_logp | (N, T) | log pi_old(token), behaviour policy at temperature 1 |
| old_topk_values, old_topk_indices | (N, T, K) | behaviour logits of the K most likely tokens (LCO's anchor) |
| old_logit_sampled | (N, T) | behaviour logit of the sampled token (LCO-MSE/LCH anchor) |
| ref_logp | (N, T) | log pi_ref(token) under the frozen reference, when one is kept |
| rewards | (N,) | one scalar per completion from ``task.reward`` |
| adv | (N, T) | per-token advantages (broadcast sequence advantages, GAE, or the sampled token's candidate one) |
| old_values, returns | (N, T) | critic outputs at collection, and GAE returns (PPO) |
| cand_ids | (N, T, K) | candidate token ids per position (LCO dense_rm / dpo estimators) |
| cand_scores, cand_adv | (N, T, K) | raw estimator scores at the candidates, and their normalised advantages |
| old_cand_logits | (N, T, K) | behaviour logits at the candidates (the dense target's anchor) |
| verifier_logp | (N, T) | the verifier's log-prob of the sampled token (dense_rm agreement rule) |

Rows are group-major: rows [g*G, (g+1)*G) are the G completions of prompt g.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

from lco_exp.losses import token_stats, upcast


@dataclass
class RolloutBatch:
    tokens: Tensor
    attention_mask: Tensor
    mask: Tensor
    prompt_width: int
    truncated: Tensor  # (N,) bool: no EOS within the generation budget
    old_logp: Tensor | None = None
    old_topk_values: Tensor | None = None
    old_topk_indices: Tensor | None = None
    old_logit_sampled: Tensor | None = None
    ref_logp: Tensor | None = None
    rewards: Tensor | None = None
    adv: Tensor | None = None
    old_values: Tensor | None = None
    returns: Tensor | None = None
    cand_ids: Tensor | None = None
    cand_scores: Tensor | None = None
    cand_adv: Tensor | None = None
    old_cand_logits: Tensor | None = None
    verifier_logp: Tensor | None = None

    @property
    def response(self) -> Tensor:
        """(N, T) response token ids."""
        return self.tokens[:, self.prompt_width :]

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def select(self, idx: Tensor) -> RolloutBatch:
        """The rows ``idx`` of every per-sequence tensor."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = v[idx] if isinstance(v, Tensor) else v
        return replace(self, **out)

    def with_behaviour(
        self, logits: Tensor, keep_top_k: int | None, chunk_tokens: int, logp: Tensor | None = None
    ) -> RolloutBatch:
        """This batch with the behaviour fields taken from ``logits``, (N, T, V) at its response positions."""
        return replace(self, **behaviour_fields(logits, self.response, keep_top_k, chunk_tokens, self.cand_ids, logp))

    def to(self, device: torch.device | str) -> RolloutBatch:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return replace(self, **{k: v.to(device) if isinstance(v, Tensor) else v for k, v in out.items()})


@torch.no_grad()
def behaviour_fields(
    logits: Tensor,
    response: Tensor,
    keep_top_k: int | None,
    chunk_tokens: int,
    cand_ids: Tensor | None = None,
    logp: Tensor | None = None,  # (N, T) log-probs of ``response`` already computed from these logits, if any
) -> dict[str, Tensor]:
    """The behaviour policy's quantities from its logits: old_logp, old_logit_sampled, unless
    ``keep_top_k == 0`` the top-K logits and their ids (K = whole vocabulary when None), and the logits at
    ``cand_ids`` when given.

    (N, T, V) logits and (N, T) response ids -> tensors on the logits' device, float32 or wider.
    """
    logits = logits.detach()
    if logp is None:
        logp = token_stats(logits, response, chunk_tokens)["logp"]  # chunked: no float32 (N, T, V) copy
    out = {
        "old_logp": logp,
        "old_logit_sampled": upcast(logits.gather(-1, response.unsqueeze(-1)).squeeze(-1)),
    }
    if keep_top_k != 0:
        k = min(keep_top_k or logits.shape[-1], logits.shape[-1])
        values, indices = logits.topk(k, dim=-1)
        out["old_topk_values"], out["old_topk_indices"] = upcast(values), indices
    if cand_ids is not None:
        out["old_cand_logits"] = upcast(logits.gather(-1, cand_ids.to(logits.device)))
    return out


def group_permutation(n_rows: int, group_size: int, generator: torch.Generator | None = None) -> Tensor:
    """A random order of the rows that keeps each prompt's G completions together and in order. (N,)"""
    groups = torch.randperm(n_rows // group_size, generator=generator)
    return (groups[:, None] * group_size + torch.arange(group_size)).reshape(-1)
