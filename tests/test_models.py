"""Model loading, the rollout engine's bookkeeping, and the warm-up cache."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch

from lco_exp import models, sft
from lco_exp.algorithms import behaviour_top_k, compute_advantages
from lco_exp.config import AlgorithmConfig, ConfigError, RolloutConfig, validate
from lco_exp.losses import token_logprobs
from lco_exp.rollout import make_engine
from lco_exp.tasks import make_task
from lco_exp.train import load_policy, make_optimizer, update


def test_local_directory_loads_through_the_hub_code_path(exp_factory, tmp_path):
    exp = exp_factory()
    model, tok = models.prepare(*models.build_tiny(exp.model, seed=3), exp.model, exp.hardware)
    models.save_atomically(model, tok, tmp_path / "saved")
    loaded, loaded_tok = models.load_pretrained(tmp_path / "saved", exp.model, exp.hardware)  # == from_pretrained(id)
    msgs = [{"role": "user", "content": "Calculate 12 + 7."}]
    ids = models.encode_prompt(tok, msgs, use_chat_template=True)
    assert ids == models.encode_prompt(loaded_tok, msgs, use_chat_template=True)
    assert loaded_tok.decode(ids) == "Calculate 12 + 7.\n"  # the tiny chat template, reloaded from disk
    x = torch.tensor([ids])
    torch.testing.assert_close(loaded(x).logits, model(x).logits, rtol=0, atol=0)


def test_rollout_batch_is_group_major_masked_and_scored_on_policy(exp_factory):
    exp = exp_factory()
    torch.manual_seed(0)
    model, tok = models.prepare(*models.build_tiny(exp.model, seed=0), exp.model, exp.hardware)
    engine = make_engine(RolloutConfig(max_batch_size=3), model, tok, exp.hardware)
    questions = ["1 + 1", "Calculate 22 + 9."]
    prompts = [models.encode_prompt(tok, [{"role": "user", "content": q}], True) for q in questions]
    batch = engine.score(engine.generate(prompts, n=3, max_new_tokens=7), keep_top_k=4)
    N, T = batch.mask.shape
    assert N == 6 and T <= 7 and batch.old_topk_values.shape == (6, T, 4)
    # rows 0-2 share prompt 0 (left-padded), rows 3-5 prompt 1
    P = batch.prompt_width
    for row in range(3):
        assert batch.tokens[row, P - len(prompts[0]) : P].tolist() == prompts[0]
        assert batch.tokens[row + 3, P - len(prompts[1]) : P].tolist() == prompts[1]
    # the mask covers tokens up to and including the first EOS and nothing after
    for row in range(N):
        resp, m = batch.response[row].tolist(), batch.mask[row].tolist()
        n = int(sum(m))
        assert m == [1.0] * n + [0.0] * (T - n)
        if tok.eos_token_id in resp[:n]:
            assert resp.index(tok.eos_token_id) == n - 1 and not batch.truncated[row]
        else:
            assert batch.truncated[row] and n == 7
    # behaviour log-probs equal the training forward pass's (the ratio is exactly 1 on-policy)
    with torch.no_grad():
        logits = models.response_logits(model, batch.tokens, batch.attention_mask, P)
    live = batch.mask.bool()
    torch.testing.assert_close(token_logprobs(logits, batch.response)[live], batch.old_logp[live], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits.topk(4, -1).values[live], batch.old_topk_values[live], rtol=1e-5, atol=1e-5)


def test_greedy_generation_is_deterministic(exp_factory):
    exp = exp_factory()
    model, tok = models.prepare(*models.build_tiny(exp.model, seed=0), exp.model, exp.hardware)
    engine = make_engine(RolloutConfig(), model, tok, exp.hardware)
    prompts = [models.encode_prompt(tok, [{"role": "user", "content": "Calculate 3 + 4."}], True)]
    a = engine.generate(prompts, n=2, max_new_tokens=6, greedy=True)
    b = engine.generate(prompts, n=2, max_new_tokens=6, greedy=True)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.tokens[0], a.tokens[1])


def test_warm_up_is_cached_and_reused(exp_factory):
    exp = exp_factory("model.warmup.steps=3", "model.warmup.batch_size=8", "model.warmup.lr_warmup_steps=1")
    task = make_task(exp.task)
    train = task.load_train()
    first, _, stats = load_policy(exp, task, train)
    assert stats["warmup/cached"] == 0.0 and stats["warmup/steps"] == 3
    second, _, stats2 = load_policy(exp, task, train)
    assert stats2 == {**stats, "warmup/cached": 1.0}  # how the cached warm-up went is reported again
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    init, _ = models.build_tiny(exp.model, exp.seed)
    assert not torch.equal(init.state_dict()["lm_head.weight"], first.state_dict()["lm_head.weight"])
    exp.seed += 1  # a different seed is a different warm-start, not a cache hit
    _, _, stats3 = load_policy(exp, task, train)
    assert stats3["warmup/cached"] == 0.0


def test_time_budget_ends_the_warm_up_and_decays_the_learning_rate(exp_factory, monkeypatch):
    """With model.warmup.time_budget_s the warm-up stops when the (fake) clock passes the budget, however many
    steps are allowed, and its cosine schedule follows elapsed time down to the 10% floor."""
    exp = exp_factory("model.warmup.steps=1000", "model.warmup.time_budget_s=30", "model.warmup.batch_size=4",
                      "model.warmup.lr_warmup_steps=1")  # fmt: skip
    clock = iter(range(10**6))  # every perf_counter() call advances one fake second
    monkeypatch.setattr(sft, "time", SimpleNamespace(perf_counter=lambda: float(next(clock))))
    lrs = []
    adam_step = torch.optim.AdamW.step

    def recording_step(self, *args, **kwargs):
        lrs.append(self.param_groups[0]["lr"])
        return adam_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", recording_step)
    task = make_task(exp.task)
    model, tok = models.prepare(*models.build_tiny(exp.model, seed=0), exp.model, exp.hardware)
    stats = sft.sft_warmup(model, tok, task, task.load_train()[:16], exp.model.warmup, exp.model, exp.hardware, 0)
    assert 3 <= stats["warmup/steps"] < 30 and stats["warmup/steps"] == len(lrs)
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] < 0.5 * lrs[0]  # decaying with time, not with steps


def test_adam_eps_scales_steps_on_tiny_gradients():
    """AdamW's first step is ~lr on every parameter whatever the gradient's size; algorithm.adam_eps well above
    the gradient makes the step proportional to it instead."""
    steps = {}
    for eps in (1e-8, 1e-3):
        layer = torch.nn.Linear(4, 1, bias=False)
        before = layer.weight.detach().clone()
        opt = make_optimizer(layer, AlgorithmConfig(name="x", lr=1e-2, adam_eps=eps))
        layer.weight.grad = torch.full_like(layer.weight, 1e-6)
        opt.step()
        steps[eps] = (before - layer.weight.detach()).abs().max().item()
    assert steps[1e-8] == pytest.approx(1e-2 * 1e-6 / (1e-6 + 1e-8), rel=1e-3)  # 0.0099: ~lr
    assert steps[1e-3] == pytest.approx(1e-2 * 1e-6 / (1e-6 + 1e-3), rel=1e-2)


def test_bad_adam_eps_is_refused(exp_factory):
    with pytest.raises(ConfigError, match="algorithm.adam_eps"):
        validate(exp_factory("algorithm.adam_eps=0"))


@pytest.mark.parametrize("budget, steps", [(0, 100), (-5, 100), (10, 0)])
def test_bad_time_budget_is_refused_before_loading(budget, steps, exp_factory):
    exp = exp_factory(f"model.warmup.time_budget_s={budget}", f"model.warmup.steps={steps}")
    with pytest.raises(ConfigError, match="model.warmup.time_budget_s"):
        validate(exp)


@pytest.mark.parametrize("algorithm", ["lco", "grpo"])
def test_single_pass_update_needs_no_scoring_pass(algorithm, exp_factory):
    """An unscored rollout updated in one pass gives the same step as a scored one: the update's own forward
    supplies the behaviour fields, so the rollout's scoring pass would only repeat it."""
    exp = exp_factory(f"algorithm={algorithm}", "algorithm.group_size=2", "hardware.micro_batch_size=3")
    algo = exp.algorithm
    model, tok = models.prepare(*models.build_tiny(exp.model, seed=0), exp.model, exp.hardware)
    engine = make_engine(RolloutConfig(), model, tok, exp.hardware)
    prompts = [models.encode_prompt(tok, [{"role": "user", "content": q}], True) for q in ["1 + 2", "Calculate 3 - 9."]]
    torch.manual_seed(0)
    unscored = engine.generate(prompts, n=2, max_new_tokens=6)
    assert unscored.old_logp is None
    scored = engine.score(unscored, behaviour_top_k(algo))
    for batch in (unscored, scored):
        batch.rewards = torch.tensor([1.0, 0.0, 0.0, 1.0])
        batch.ref_logp = scored.old_logp - 0.05  # any fixed reference
        batch.adv = compute_advantages(batch, algo)["adv"]
    deltas = []
    for batch in (unscored, scored):
        policy = copy.deepcopy(model)
        before = [p.detach().clone() for p in policy.parameters()]
        torch.manual_seed(1)  # same minibatch permutation
        update(policy, torch.optim.SGD(policy.parameters(), lr=1.0), batch, algo, exp.hardware)
        deltas.append([p.detach() - b for p, b in zip(policy.parameters(), before, strict=True)])
    assert any(d.abs().max() > 0 for d in deltas[0])
    for a, b in zip(*deltas, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_unscored_rollout_is_refused_for_multi_pass_updates(exp_factory):
    exp = exp_factory("algorithm=grpo", "algorithm.group_size=2", "algorithm.minibatches=2")
    model, tok = models.prepare(*models.build_tiny(exp.model, seed=0), exp.model, exp.hardware)
    engine = make_engine(RolloutConfig(), model, tok, exp.hardware)
    batch = engine.generate([[1, 40, 41], [1, 42]], n=2, max_new_tokens=4)
    batch.rewards, batch.ref_logp = torch.ones(4), torch.zeros_like(batch.mask)
    batch.adv = compute_advantages(batch, exp.algorithm)
    with pytest.raises(ValueError, match="later passes need the behaviour fields"):
        update(model, torch.optim.SGD(model.parameters(), lr=1.0), batch, exp.algorithm, exp.hardware)
