"""Entry point: ``python -m lco_exp.train [overrides]`` (console script ``lco-train``).

Composes the Hydra config, converts it once to typed dataclasses, then trains and evaluates. The loop in
``run_experiment`` reads top to bottom: sample, reward, advantages, update, log, periodic eval.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from lco_exp import models
from lco_exp.algorithms import behaviour_top_k, compute_advantages, needs_reference, policy_loss, resets_optimizer
from lco_exp.batch import RolloutBatch
from lco_exp.config import AlgorithmConfig, ExperimentConfig, HardwareConfig, register_configs, validate
from lco_exp.evaluate import evaluate
from lco_exp.losses import agg_count, entropy, kl_k3, masked_mean, token_logprobs
from lco_exp.rollout import make_engine
from lco_exp.sft import sft_warmup, warmup_key
from lco_exp.tasks import make_task
from lco_exp.tracking import Run

register_configs()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


@contextmanager
def timed(timings: dict[str, float], phase: str):
    start = time.perf_counter()
    yield
    timings[f"perf/time_{phase}_s"] = time.perf_counter() - start


def load_policy(exp: ExperimentConfig, task, train_set):
    """The policy and tokenizer, warm-started by SFT when ``model.warmup.steps > 0`` (cached across runs)."""
    mc, hw = exp.model, exp.hardware
    cache = Path(exp.cache_dir).expanduser()
    warm_dir = cache / "warmup" / f"{mc.name}-{warmup_key(mc, exp.task, exp.seed)}"
    if mc.warmup.steps > 0 and (warm_dir / "config.json").is_file():
        model, tok = models.load_pretrained(warm_dir, mc, hw)
        return model, tok, {"warmup/cached": 1.0}
    base = models.base_model_dir(mc, cache)
    if base is None:
        model, tok = models.prepare(*models.build_tiny(mc, exp.seed), mc, hw)
    else:
        model, tok = models.load_pretrained(base, mc, hw)
    if mc.warmup.steps == 0:
        return model, tok, {}
    stats = sft_warmup(model, tok, task, train_set, mc.warmup, mc, hw, exp.seed)
    models.save_atomically(model, tok, warm_dir)
    return model, tok, stats | {"warmup/cached": 0.0}


def make_optimizer(policy: torch.nn.Module, algo: AlgorithmConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(policy.parameters(), lr=algo.lr, weight_decay=algo.weight_decay)


@torch.no_grad()
def reference_logprobs(ref: torch.nn.Module, batch: RolloutBatch, hw: HardwareConfig) -> torch.Tensor:
    out = []
    for s in range(0, len(batch), hw.micro_batch_size):
        mb = batch.select(slice(s, s + hw.micro_batch_size)).to(hw.device.value)
        with models.autocast(hw):
            logits = models.response_logits(ref, mb.tokens, mb.attention_mask, mb.prompt_width)
        out.append(token_logprobs(logits, mb.response).cpu())
    return torch.cat(out)


def update(policy, opt, batch: RolloutBatch, algo: AlgorithmConfig, hw: HardwareConfig) -> dict[str, float]:
    """``algo.epochs`` passes of ``algo.minibatches`` optimizer steps; each minibatch accumulates micro-batches.

    Micro-batch losses are weighted by their share of the minibatch's aggregation denominator, so the gradient
    is the same for any ``hardware.micro_batch_size`` (hardware changes speed, never the objective).

    A batch without behaviour fields (an unscored rollout) is allowed only for a single pass: the policy has not
    changed since it sampled the batch, so its forward here *is* the behaviour policy's, and the fields are taken
    from it instead of from a second, identical forward pass.
    """
    if batch.old_logp is None and algo.epochs * algo.minibatches > 1:
        raise ValueError(
            "the rollout was not scored, but the update makes "
            f"{algo.epochs} epochs x {algo.minibatches} minibatches: later passes need the behaviour fields"
        )
    agg = algo.loss_agg.value
    keep_top_k = behaviour_top_k(algo)
    params = [p for p in policy.parameters() if p.requires_grad]
    sums: dict[str, float] = defaultdict(float)
    n_steps = skipped = 0
    policy.train()
    for _ in range(algo.epochs):
        for mb_idx in torch.randperm(len(batch)).chunk(algo.minibatches):
            minibatch = batch.select(mb_idx)
            total = agg_count(minibatch.mask, agg)
            opt.zero_grad(set_to_none=True)
            step_stats: dict[str, float] = defaultdict(float)
            for micro_idx in torch.arange(len(minibatch)).split(hw.micro_batch_size):
                micro = minibatch.select(micro_idx).to(hw.device.value)
                with models.autocast(hw):
                    logits = models.response_logits(policy, micro.tokens, micro.attention_mask, micro.prompt_width)
                if micro.old_logp is None:  # single on-policy pass: this forward is the behaviour policy's
                    micro = micro.with_behaviour(logits, keep_top_k)
                loss, stats = policy_loss(logits, micro, algo)
                weight = agg_count(micro.mask, agg) / total
                (loss * weight).backward()
                with torch.no_grad():  # diagnostics, token means weighted like the loss
                    logp = token_logprobs(logits.detach(), micro.response)
                    stats = stats | {
                        "train/loss": loss.detach(),
                        "train/entropy": masked_mean(entropy(logits.detach()), micro.mask),
                        "train/sampled_prob": masked_mean(logp.exp(), micro.mask),
                        "train/kl_behaviour": masked_mean(kl_k3(logp, micro.old_logp), micro.mask),
                    }
                    if micro.ref_logp is not None:
                        stats["train/kl_ref"] = masked_mean(kl_k3(logp, micro.ref_logp), micro.mask)
                for k, v in stats.items():
                    step_stats[k if k.startswith("train/") else f"loss/{k}"] += weight * float(v)
            max_norm = algo.max_grad_norm if algo.max_grad_norm is not None else math.inf
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))  # the norm before clipping
            if math.isfinite(grad_norm) and math.isfinite(step_stats["train/loss"]):
                opt.step()
            else:
                skipped += 1
            step_stats["train/grad_norm"] = grad_norm
            for k, v in step_stats.items():
                sums[k] += v
            n_steps += 1
    out = {k: v / n_steps for k, v in sums.items()}
    out["train/skipped_steps"] = float(skipped)
    out["train/lr"] = opt.param_groups[0]["lr"]
    return out


def rollout_metrics(batch: RolloutBatch, group_size: int) -> dict[str, float]:
    r = batch.rewards
    lengths = batch.mask.sum(1)
    out = {
        "rollout/reward_mean": float(r.mean()),
        "rollout/reward_std": float(r.std()) if len(r) > 1 else 0.0,
        "rollout/accuracy": float((r >= 1.0).float().mean()),
        "rollout/response_length": float(lengths.mean()),
        "rollout/response_length_max": float(lengths.max()),
        "rollout/truncation_rate": float(batch.truncated.float().mean()),
        "train/advantage_abs_mean": float(masked_mean(batch.adv.abs(), batch.mask)),
    }
    if group_size > 1:
        out["rollout/frac_reward_zero_std"] = float((r.view(-1, group_size).std(1) == 0).float().mean())
    return out


def run_experiment(exp: ExperimentConfig, run: Run) -> dict[str, float]:
    """Train, then evaluate. Returns the final evaluation metrics."""
    validate(exp)
    seed_everything(exp.seed)
    if exp.hardware.num_threads:
        torch.set_num_threads(exp.hardware.num_threads)
    algo, hw = exp.algorithm, exp.hardware

    # data, model, reference, rollout engine
    task = make_task(exp.task)
    train_set = task.load_train()
    benchmarks = task.load_benchmarks(train_set, exp.eval_limit)
    policy, tok, warm = load_policy(exp, task, train_set)
    ref = models.frozen_copy(policy) if needs_reference(algo) or exp.reference_kl_metric else None
    engine = make_engine(exp.rollout, policy, tok, hw)
    opt = make_optimizer(policy, algo)
    use_chat = exp.model.use_chat_template
    encode = {ex.id: models.encode_prompt(tok, task.messages(ex), use_chat) for ex in train_set}

    start_scores: dict[tuple[str, str], float] = {}  # (benchmark, id) -> score at step 0, for paired changes

    def run_eval(step: int) -> dict[str, float]:
        start = time.perf_counter()
        metrics, samples = evaluate(engine, task, benchmarks, use_chat, exp.task.max_new_tokens)
        metrics["perf/time_eval_s"] = time.perf_counter() - start
        if not start_scores:
            start_scores.update({(s["benchmark"], s["id"]): s["score"] for s in samples})
        for name in benchmarks:
            pairs = [(start_scores[(s["benchmark"], s["id"])], s["score"]) for s in samples if s["benchmark"] == name]
            metrics[f"eval/{task.cfg.name}/{name}/gained"] = float(sum(a < b for a, b in pairs))
            metrics[f"eval/{task.cfg.name}/{name}/lost"] = float(sum(a > b for a, b in pairs))
        out = run.dir / "eval" / f"step_{step:06d}.jsonl"
        out.parent.mkdir(exist_ok=True)
        out.write_text("".join(json.dumps(s) + "\n" for s in samples))
        run.log(metrics, step)
        run.log_table("eval/samples", samples[:200], step)
        return metrics

    if warm:
        run.log(warm, step=0)
    before = run_eval(step=0)
    run.summary.update({f"{k}@before": v for k, v in before.items() if k.startswith("eval/")})

    order = torch.randperm(len(train_set)).tolist()
    cursor = 0
    bar = tqdm(range(1, exp.steps + 1), desc=f"{algo.name}", dynamic_ncols=True)
    for step in bar:
        timings: dict[str, float] = {}
        step_start = time.perf_counter()
        # 1. sample B prompts (reshuffle at the end of each pass over the data) and G completions each
        examples = []
        for _ in range(exp.prompts_per_step):
            if cursor == len(order):
                order, cursor = torch.randperm(len(train_set)).tolist(), 0
            examples.append(train_set[order[cursor]])
            cursor += 1
        with timed(timings, "rollout"):  # a single-pass update takes the behaviour fields from its own forward
            batch = engine.generate(
                [encode[ex.id] for ex in examples],
                n=algo.group_size,
                max_new_tokens=exp.task.max_new_tokens,
                keep_top_k=behaviour_top_k(algo),
                score=algo.epochs * algo.minibatches > 1,
            )
        # 2. reward every completion
        with timed(timings, "reward"):
            texts = engine.decode(batch)
            group = [ex for ex in examples for _ in range(algo.group_size)]
            batch.rewards = torch.tensor([task.reward(ex, text) for ex, text in zip(group, texts, strict=True)])
        if ref is not None:
            with timed(timings, "reference"):
                batch.ref_logp = reference_logprobs(ref, batch, hw)
        # 3. advantages, 4. update
        batch.adv = compute_advantages(batch, algo)
        if resets_optimizer(algo):
            opt = make_optimizer(policy, algo)
        with timed(timings, "update"):
            stats = update(policy, opt, batch, algo, hw)
        timings["perf/time_step_s"] = time.perf_counter() - step_start
        # 5. log
        n_generated = float(batch.mask.sum())
        n_processed = float(batch.attention_mask.sum()) * algo.epochs
        metrics = rollout_metrics(batch, algo.group_size) | stats | timings
        metrics["perf/rollout_tokens_per_s"] = n_generated / timings["perf/time_rollout_s"]
        metrics["perf/update_tokens_per_s"] = n_processed / timings["perf/time_update_s"]
        run.log(metrics, step)
        bar.set_postfix(reward=f"{metrics['rollout/reward_mean']:.3f}", gnorm=f"{stats['train/grad_norm']:.3g}")
        # 6. periodic eval
        if exp.eval_every and step % exp.eval_every == 0 and step != exp.steps:
            run_eval(step)

    after = run_eval(step=exp.steps)
    run.summary.update(after)
    if exp.save_final_policy:
        models.save_atomically(policy, tok, run.dir / "final_policy")
    return after


CONF_DIR = Path(__file__).resolve().parents[1] / "conf"  # absolute: works for `python -m` and the console script


@hydra.main(config_path=str(CONF_DIR), config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    exp: ExperimentConfig = OmegaConf.to_object(cfg)  # typed from here on
    validate(exp)  # fail before any data or model loads
    hydra_cfg = HydraConfig.get()
    run = Run(
        Path(hydra_cfg.runtime.output_dir),
        exp,
        OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
        list(hydra_cfg.overrides.task),
    )
    try:
        final = run_experiment(exp, run)
    finally:
        run.finish()
    for key, value in final.items():
        if key.endswith("/accuracy"):
            before = run.summary.get(f"{key}@before")
            print(f"[lco_exp] {key}: {before:.3f} -> {value:.3f}")
    print(f"[lco_exp] run directory: {run.dir}")
    accuracies = [v for k, v in final.items() if k.endswith("/accuracy")]
    return accuracies[0] if accuracies else None


if __name__ == "__main__":
    main()
