"""Every algorithm config reaches a branch of the one dispatch point, on a small fake batch."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from omegaconf import OmegaConf

from lco_exp.algorithms import (
    ALGORITHMS,
    behaviour_top_k,
    compute_advantages,
    is_supervised,
    needs_critic,
    needs_reference,
    needs_scoring,
    policy_loss,
    resets_optimizer,
)
from lco_exp.batch import RolloutBatch

from .conftest import compose_cfg
from .test_configs import options

N, P, T, V = 4, 3, 5, 11


def fake_batch(k: int) -> RolloutBatch:
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(V, (N, P + T), generator=g)
    logits = torch.randn(N, T, V, generator=g)
    resp = tokens[:, P:]
    mask = torch.ones(N, T)
    mask[0, 3:] = 0
    values, indices = logits.topk(k, -1)
    cand_ids = logits.topk(3, -1).indices.flip(-1)  # the dense estimators' K = 3 candidates per position
    return RolloutBatch(
        tokens=tokens,
        attention_mask=torch.ones(N, P + T, dtype=torch.long),
        mask=mask,
        prompt_width=P,
        truncated=torch.zeros(N, dtype=torch.bool),
        old_logp=torch.log_softmax(logits, -1).gather(-1, resp[..., None])[..., 0],
        old_topk_values=values,
        old_topk_indices=indices,
        old_logit_sampled=logits.gather(-1, resp[..., None])[..., 0],
        ref_logp=torch.log_softmax(logits, -1).gather(-1, resp[..., None])[..., 0] - 0.1,
        rewards=torch.tensor([1.0, 0.0, 0.0, 1.0]),
        old_values=torch.randn(N, T, generator=g) * mask,
        cand_ids=cand_ids,
        cand_scores=-torch.rand(N, T, 3, generator=g),
        old_cand_logits=logits.gather(-1, cand_ids),
        verifier_logp=-torch.rand(N, T, generator=g),
    ), logits


@pytest.mark.parametrize("algorithm", options("algorithm"))
def test_every_algorithm_has_a_branch(algorithm):
    algo = OmegaConf.to_object(compose_cfg([f"algorithm={algorithm}"])).algorithm
    algo.group_size = 2  # N = 4 rows: two groups of two
    assert isinstance(algo, ALGORITHMS)
    for rule in (needs_reference, resets_optimizer, needs_critic, is_supervised, needs_scoring):
        assert isinstance(rule(algo), bool)
    k = behaviour_top_k(algo) or V
    batch, logits = fake_batch(k)
    batch = replace(batch, **compute_advantages(batch, algo))
    assert batch.adv.shape == (N, T) and (batch.adv[0, 3:] == 0).all()
    if algorithm != "sft":
        assert batch.adv.abs().sum() > 0
    logits = logits.clone().requires_grad_(True)
    loss, stats = policy_loss(logits, batch, algo, chunk_tokens=3)
    loss.backward()
    assert torch.isfinite(loss) and logits.grad.abs().sum() > 0
    assert all(torch.isfinite(v) for v in stats.values())


@pytest.mark.parametrize("loss", ["kld", "mse", "lch"])
@pytest.mark.parametrize("anchor", ["old", "current"])
def test_lco_on_policy_gradient_pushes_rewarded_tokens_up(loss, anchor):
    """On-policy (current logits == behaviour logits), the first LCO step raises the sampled token's logit
    where A > 0 and lowers it where A < 0: the target z* = z_old + A/beta points that way for all three losses."""
    algo = OmegaConf.to_object(
        compose_cfg(["algorithm=lco", f"algorithm.loss={loss}", f"algorithm.anchor={anchor}", "algorithm.top_k=null"])
    ).algorithm
    batch, logits = fake_batch(V)
    batch = replace(batch, **compute_advantages(batch, algo))  # rewards 1, 0, 0, 1 -> A = +1, -1, -1, +1
    logits = logits.clone().requires_grad_(True)
    policy_loss(logits, batch, algo, chunk_tokens=3)[0].backward()
    resp = batch.response
    grad_sampled = logits.grad.gather(-1, resp[..., None])[..., 0]  # d loss / d z_a
    live = batch.mask.bool()
    assert (grad_sampled[[1, 2]][live[[1, 2]]] > 0).all()  # A < 0: gradient descent lowers z_a
    assert (grad_sampled[[0, 3]][live[[0, 3]]] < 0).all()  # A > 0: raises z_a
