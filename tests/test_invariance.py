"""Hardware changes speed, never the objective: the update does not depend on the micro-batch size; and the
signed gradient diagnostics decompose the gradient exactly."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch

from lco_exp import models
from lco_exp.algorithms import behaviour_top_k, compute_advantages, needs_critic
from lco_exp.config import RolloutConfig
from lco_exp.rollout import make_engine
from lco_exp.train import critic_fields, reference_fields, update


def rollout(exp, n_prompts=2):
    model, tok = models.prepare(*models.build_tiny(exp.model, seed=0), exp.model, exp.hardware)
    engine = make_engine(RolloutConfig(), model, tok, exp.hardware)
    questions = ["1 + 2", "Calculate 3 - 9.", "4 + 4 - 1", "7 - 2"][:n_prompts]
    prompts = [models.encode_prompt(tok, [{"role": "user", "content": q}], True) for q in questions]
    torch.manual_seed(0)
    unscored = engine.generate(prompts, n=exp.algorithm.group_size, max_new_tokens=6)
    batch = engine.score(unscored, behaviour_top_k(exp.algorithm))
    batch.rewards = torch.tensor([1.0, 0.0, 0.0, 1.0] * n_prompts)[: len(batch)]
    return model, batch


@pytest.mark.parametrize(
    "algorithm",
    [
        ["algorithm=lco"],
        ["algorithm=lco", "algorithm.loss=mse"],
        ["algorithm=grpo", "algorithm.loss_agg=seq_mean_token_mean"],
        ["algorithm=ppo"],
        ["algorithm=tpo", "algorithm.group_size=2"],
        ["algorithm=rloo", "algorithm.group_size=2"],
    ],
    ids=lambda o: "-".join(x.split("=")[1] for x in o),
)
def test_micro_batch_1x4_equals_4x1(algorithm, exp_factory):
    """One optimizer step over 4 sequences: micro-batch 1 with 4 accumulations == micro-batch 4 in one pass."""
    overrides = algorithm if "algorithm.group_size=2" in algorithm else [*algorithm, "algorithm.group_size=2"]
    exp = exp_factory(*overrides)
    model, batch = rollout(exp)
    algo, hw = exp.algorithm, exp.hardware
    critic = models.build_critic(model, None, hw) if needs_critic(algo) else None
    batch = replace(batch, **reference_fields(models.frozen_copy(model), batch, hw))
    if critic is not None:
        batch = replace(batch, **critic_fields(critic, batch, hw))
        batch.old_values = batch.old_values + torch.randn(batch.old_values.shape) * batch.mask  # non-trivial values
    batch = replace(batch, **compute_advantages(batch, algo))
    results = []
    for micro in (1, 4) if algo.name != "tpo" else (2, 4):
        policy = copy.deepcopy(model).double()
        c = copy.deepcopy(critic).double() if critic is not None else None
        opt = torch.optim.SGD(policy.parameters(), lr=1.0)
        c_opt = torch.optim.SGD(c.parameters(), lr=1.0) if c is not None else None
        double = replace(
            batch, **{k: v.double() for k, v in vars(batch).items() if torch.is_tensor(v) and v.is_floating_point()}
        )
        torch.manual_seed(1)
        stats = update(policy, opt, double, algo, replace(hw, micro_batch_size=micro), True, c, c_opt)
        params = [p.detach() for p in policy.parameters()] + ([p.detach() for p in c.parameters()] if c else [])
        results.append((params, stats))
    (a, stats_a), (b, stats_b) = results
    for pa, pb in zip(a, b, strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-9, atol=1e-11)
    for key in ("train/loss", "train/grad_norm", "train/grad_norm_pos_adv", "train/logit_grad_norm"):
        assert stats_a[key] == pytest.approx(stats_b[key], rel=1e-8), key


def test_signed_gradient_norms_decompose_the_gradient(exp_factory):
    """With every advantage positive, the positive-advantage gradient is the whole gradient and the negative one
    is zero; with mixed signs, the two parts obey the triangle inequality with the total."""
    exp = exp_factory("algorithm=lco", "algorithm.group_size=2")
    model, batch = rollout(exp)
    algo, hw = exp.algorithm, exp.hardware
    for rewards, check in [
        (torch.ones(len(batch)), "all_positive"),
        (torch.tensor([1.0, 0.0, 0.0, 1.0]), "mixed"),
    ]:
        batch.rewards = rewards
        b = replace(batch, **compute_advantages(batch, algo))
        policy = copy.deepcopy(model)
        stats = update(policy, torch.optim.SGD(policy.parameters(), lr=0.0), b, algo, hw, True)
        total, pos, neg = stats["train/grad_norm"], stats["train/grad_norm_pos_adv"], stats["train/grad_norm_neg_adv"]
        if check == "all_positive":
            assert pos == pytest.approx(total, rel=1e-5) and neg == 0
        else:
            assert pos > 0 and neg > 0 and total <= pos + neg + 1e-6
        assert stats["train/directionality"] > 0
        assert stats["train/grad_norm_qkv"] < total
