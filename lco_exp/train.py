"""Entry point: ``python -m lco_exp.train [overrides]`` (console script ``lco-train``).

Composes the Hydra config, converts it once to typed dataclasses, then trains and evaluates. The loop in
``run_experiment`` reads top to bottom: sample, reward, advantages, update, log, periodic eval.
"""

from __future__ import annotations

import json
import math
import random
import signal
import statistics
import threading
import time
from collections import defaultdict, deque
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from lco_exp import checkpoint, models
from lco_exp.algorithms import (
    actor_lr_scale,
    auxiliary_models,
    behaviour_top_k,
    compute_advantages,
    is_supervised,
    loss_weights,
    needs_critic,
    needs_reference,
    needs_scoring,
    policy_loss,
    resets_optimizer,
    target_logits,
)
from lco_exp.batch import RolloutBatch, group_permutation
from lco_exp.config import (
    AlgorithmConfig,
    ExperimentConfig,
    HardwareConfig,
    benchmark_metric,
    register_configs,
    validate,
)
from lco_exp.evaluate import evaluate, fits, headline_score, write_samples
from lco_exp.judges import attach_models
from lco_exp.losses import kl_k3, logit_diagnostics, logprobs_at, masked_mean, token_logprobs, token_stats, value_loss
from lco_exp.rollout import make_engine
from lco_exp.sft import sft_batch, sft_warmup, warmup_key
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
    stats_file = warm_dir / "warmup_stats.json"  # how the cached warm-up went, reported again by runs that load it
    if mc.warmup.steps > 0 and (warm_dir / "config.json").is_file():
        model, tok = models.load_pretrained(warm_dir, mc, hw)
        stats = json.loads(stats_file.read_text()) if stats_file.is_file() else {}
        return model, tok, stats | {"warmup/cached": 1.0}
    model, tok = models.load_base(mc, hw, cache, exp.seed)
    if mc.warmup.steps == 0:
        return model, tok, {}
    stats = sft_warmup(model, tok, task, train_set, mc.warmup, mc, hw, exp.seed)
    models.save_atomically(model, tok, warm_dir)
    stats_file.write_text(json.dumps(stats))
    return model, tok, stats | {"warmup/cached": 0.0}


def make_optimizer(policy: torch.nn.Module, algo: AlgorithmConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(policy.parameters(), lr=algo.lr, weight_decay=algo.weight_decay, eps=algo.adam_eps)


@torch.no_grad()
def per_microbatch(batch: RolloutBatch, hw: HardwareConfig, fn) -> dict[str, torch.Tensor]:
    """``fn(micro_batch_on_device) -> dict of tensors`` over the batch in micro-batches, concatenated on the CPU."""
    parts = []
    for s in range(0, len(batch), hw.micro_batch_size):
        mb = batch.select(slice(s, s + hw.micro_batch_size)).to(hw.device.value)
        with models.autocast(hw):
            parts.append({k: v.cpu() for k, v in fn(mb).items()})
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def logits_of(model, mb: RolloutBatch) -> torch.Tensor:
    return models.response_logits(model, mb.tokens, mb.attention_mask, mb.prompt_width)


def reference_fields(ref, batch: RolloutBatch, hw: HardwareConfig) -> dict[str, torch.Tensor]:
    return per_microbatch(batch, hw, lambda mb: {"ref_logp": token_logprobs(logits_of(ref, mb), mb.response)})


def critic_fields(critic, batch: RolloutBatch, hw: HardwareConfig) -> dict[str, torch.Tensor]:
    return per_microbatch(batch, hw, lambda mb: {"old_values": critic(mb.tokens, mb.attention_mask, mb.prompt_width)})


def verifier_fields(verifier, batch: RolloutBatch, hw: HardwareConfig, k: int) -> dict[str, torch.Tensor]:
    """dense_rm (paper-notes 3.3): the verifier's top-k tokens per position and their log-probs, plus its
    log-prob of the sampled token (for the agreement rule)."""

    def fn(mb):
        logits = logits_of(verifier, mb)
        ids = logits.topk(k, dim=-1).indices  # the verifier's top-k = the top-k of its log-probs
        logp = logprobs_at(logits, torch.cat([ids, mb.response[..., None]], dim=-1))  # (n, T, k + 1)
        return {"cand_ids": ids, "cand_scores": logp[..., :k], "verifier_logp": logp[..., k]}

    return per_microbatch(batch, hw, fn)


def dpo_fields(dpo, dpo_ref, batch: RolloutBatch, hw: HardwareConfig) -> dict[str, torch.Tensor]:
    """dpo (paper-notes 3.3): log pi_DPO(v) - log pi_ref(v) at the behaviour policy's top-k tokens v."""

    def fn(mb):
        ids = mb.old_topk_indices
        d = logprobs_at(logits_of(dpo, mb), ids) - logprobs_at(logits_of(dpo_ref, mb), ids)
        return {"cand_ids": ids, "cand_scores": d, "old_cand_logits": mb.old_topk_values}

    return per_microbatch(batch, hw, fn)


QKV = ("q_proj", "k_proj", "v_proj")


def grad_norm(grads) -> float:
    """L2 norm over a list of gradient tensors (None entries count as zero)."""
    norms = [g.detach().float().norm() for g in grads if g is not None]
    return float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0


def update(
    policy,
    opt,
    batch: RolloutBatch,
    algo: AlgorithmConfig,
    hw: HardwareConfig,
    diagnose: bool = False,
    critic=None,
    critic_opt=None,
) -> dict[str, float]:
    """``algo.epochs`` passes of ``algo.minibatches`` optimizer steps; each minibatch accumulates micro-batches.

    Micro-batch losses are weighted by their share of the minibatch's loss (``algorithms.loss_weights``), so the
    gradient is the same for any ``hardware.micro_batch_size`` (hardware changes speed, never the objective).
    Minibatches keep each prompt's group together (TPO's loss is per group).

    A batch without behaviour fields (an unscored rollout) is allowed only for a single pass: the policy has not
    changed since it sampled the batch, so its forward here *is* the behaviour policy's, and the fields are taken
    from it instead of from a second, identical forward pass.

    With ``diagnose``, the logit gradient g_z = dL/dz is taken first and pushed through the model three times:
    masked to positive-advantage tokens, to negative-advantage tokens, and whole (the ordinary backward), giving
    the two signed gradient norms of paper-notes 6.2 exactly, at the cost of two extra backward passes.
    """
    if batch.old_logp is None and algo.epochs * algo.minibatches > 1:
        raise ValueError(
            "the rollout was not scored, but the update makes "
            f"{algo.epochs} epochs x {algo.minibatches} minibatches: later passes need the behaviour fields"
        )
    keep_top_k = behaviour_top_k(algo)
    named = [(n, p) for n, p in policy.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    qkv = [i for i, (n, _) in enumerate(named) if any(s in n for s in QKV)]
    group = algo.group_size if len(batch) % algo.group_size == 0 else 1
    sums: dict[str, float] = defaultdict(float)
    n_steps = skipped = 0
    policy.train()
    for _ in range(algo.epochs):
        for mb_idx in group_permutation(len(batch), group).chunk(algo.minibatches):
            minibatch = batch.select(mb_idx)
            full_w = loss_weights(minibatch.mask, algo)  # (n, T): each token's weight in the minibatch loss
            n_tokens = float(minibatch.mask.sum().clamp(min=1))
            opt.zero_grad(set_to_none=True)
            if critic_opt is not None:
                critic_opt.zero_grad(set_to_none=True)
            signed = {"pos": [None] * len(params), "neg": [None] * len(params)}
            step_stats: dict[str, float] = defaultdict(float)
            for micro_idx in torch.arange(len(minibatch)).split(hw.micro_batch_size):
                micro = minibatch.select(micro_idx).to(hw.device.value)
                with models.autocast(hw):
                    logits = logits_of(policy, micro)
                ts = token_stats(logits, micro.response, hw.loss_chunk_tokens)  # no grad: log-prob, entropy, |z|
                if micro.old_logp is None:  # single on-policy pass: this forward is the behaviour policy's
                    micro = micro.with_behaviour(logits, keep_top_k, hw.loss_chunk_tokens, logp=ts["logp"])
                loss, stats = policy_loss(logits, micro, algo, hw.loss_chunk_tokens)
                micro_w = loss_weights(micro.mask, algo)
                weight = float(full_w[micro_idx].sum() / micro_w.sum().clamp(min=1e-12))
                share = float(micro.mask.sum()) / n_tokens  # token means of diagnostics
                if diagnose:
                    (g_z,) = torch.autograd.grad(loss * weight, logits, retain_graph=True)
                    live = micro.mask.bool()
                    for sign, sel in (("pos", (micro.adv > 0) & live), ("neg", (micro.adv < 0) & live)):
                        if sel.any():
                            grads = torch.autograd.grad(
                                logits, params, grad_outputs=g_z * sel[..., None], retain_graph=True, allow_unused=True
                            )
                            signed[sign] = [
                                a if b is None else (b if a is None else a + b)
                                for a, b in zip(signed[sign], grads, strict=True)
                            ]
                    logits.backward(g_z)
                    target_fn = target_logits(logits, micro, algo)
                    diag = logit_diagnostics(logits, g_z, micro_w * weight, micro.mask, target_fn, hw.loss_chunk_tokens)
                    step_stats["train/logit_grad_norm"] += diag["logit_grad_norm"] / n_tokens
                    if target_fn is not None:
                        step_stats["train/directionality"] += diag["directionality"] / n_tokens
                else:
                    (loss * weight).backward()
                if critic is not None:  # PPO: the value model's loss, on its own optimizer
                    with models.autocast(hw):
                        values = critic(micro.tokens, micro.attention_mask, micro.prompt_width)
                    v_loss, v_stats = value_loss(
                        values, micro.old_values, micro.returns, micro.mask, algo.value_clip, algo.loss_agg.value
                    )
                    (v_loss * weight * algo.vf_coef).backward()
                    stats = stats | v_stats
                with torch.no_grad():  # diagnostics from this forward, token means weighted by token count
                    m = micro.mask
                    diag_stats = {
                        "train/entropy": masked_mean(ts["entropy"], m),
                        "train/sampled_prob": masked_mean(ts["logp"].exp(), m),
                        "train/kl_behaviour": masked_mean(kl_k3(ts["logp"], micro.old_logp), m),
                    }
                    if micro.ref_logp is not None:
                        diag_stats["train/kl_ref"] = masked_mean(kl_k3(ts["logp"], micro.ref_logp), m)
                    max_logit = float((ts["max_abs_logit"] * m).max())
                    step_stats["train/max_abs_logit"] = max(step_stats["train/max_abs_logit"], max_logit)
                step_stats["train/loss"] += weight * float(loss.detach())
                for k, v in diag_stats.items():
                    step_stats[k] += share * float(v)
                for k, v in stats.items():
                    step_stats[k if k.startswith("train/") else f"loss/{k}"] += weight * float(v)
            grads = [p.grad for p in params]
            step_stats["train/grad_norm_qkv"] = grad_norm([grads[i] for i in qkv])
            if diagnose:
                step_stats["train/grad_norm_pos_adv"] = grad_norm(signed["pos"])
                step_stats["train/grad_norm_neg_adv"] = grad_norm(signed["neg"])
            max_norm = algo.max_grad_norm if algo.max_grad_norm is not None else math.inf
            norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))  # the norm before clipping
            finite = math.isfinite(norm) and math.isfinite(step_stats["train/loss"])
            if critic is not None:
                c_norm = float(torch.nn.utils.clip_grad_norm_(critic.parameters(), max_norm))
                step_stats["train/critic_grad_norm"] = c_norm
                finite = finite and math.isfinite(c_norm)
            if finite:
                opt.step()
                if critic_opt is not None:
                    critic_opt.step()
            else:
                skipped += 1
            step_stats["train/grad_norm"] = norm
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
    }
    if group_size > 1:
        out["rollout/frac_reward_zero_std"] = float((r.view(-1, group_size).std(1) == 0).float().mean())
    return out


class RunStopped(RuntimeError):
    """The run stopped early on purpose (a signal, or too many non-finite steps) after saving a checkpoint."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


class StopRequest:
    """While entered, SIGTERM / SIGINT set a flag instead of killing the process; the loop saves a checkpoint after
    the current step and stops. The previous handlers come back on exit, however the block ends. Installed only in
    the main thread (where Python delivers signals)."""

    def __init__(self):
        self.signum: int | None = None
        self._previous = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        self.signum = signum
        print(f"\n[lco_exp] {signal.Signals(signum).name}: saving a checkpoint after this step, then stopping")

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    @property
    def code(self) -> int:
        return 128 + (self.signum or 0)


class SpikeDetector:
    """Instability events: a step whose gradient norm exceeds ``factor`` x the median of the previous ``window``
    finite norms, or whose loss or gradient is not finite. Counts are cumulative over the run."""

    def __init__(self, factor: float, window: int):
        self.factor, self.history = factor, deque(maxlen=window)
        self.spikes = self.nonfinite = 0

    def __call__(self, norm: float, skipped: float) -> dict[str, float]:
        bad = skipped > 0 or not math.isfinite(norm)
        full = len(self.history) == self.history.maxlen
        spike = not bad and full and norm > self.factor * statistics.median(self.history)
        self.spikes += spike
        self.nonfinite += bad
        if not bad:
            self.history.append(norm)
        return {
            "train/instability_event": float(spike or bad),
            "train/grad_spikes_total": float(self.spikes),
            "train/nonfinite_steps_total": float(self.nonfinite),
        }

    def state(self) -> dict:
        return {"history": list(self.history), "spikes": self.spikes, "nonfinite": self.nonfinite}

    def load_state(self, state: dict) -> None:
        self.history.clear()
        self.history.extend(state["history"])
        self.spikes, self.nonfinite = state["spikes"], state["nonfinite"]


def run_experiment(exp: ExperimentConfig, run: Run) -> dict[str, float]:
    """Train, then evaluate. Returns the final evaluation metrics."""
    run_start = time.perf_counter()
    validate(exp)
    seed_everything(exp.seed)
    if exp.hardware.num_threads:
        torch.set_num_threads(exp.hardware.num_threads)
    algo, hw = exp.algorithm, exp.hardware
    cache = Path(exp.cache_dir).expanduser()

    # data, models (policy, reference, critic, estimator models), rollout engine
    task = make_task(exp.task)
    train_set = task.load_train()
    benchmarks = task.load_benchmarks(train_set, exp.evaluation.limit)
    attach_models(task, hw, cache, exp.seed)  # the task's judge / reward model, when configured
    policy, tok, warm = load_policy(exp, task, train_set)
    ref = models.frozen_copy(policy) if needs_reference(algo) or exp.reference_kl_metric else None
    critic = models.build_critic(policy, algo.critic_path, hw) if needs_critic(algo) else None
    critic_opt = torch.optim.AdamW(critic.parameters(), lr=algo.critic_lr) if critic is not None else None
    aux = {  # the estimator's frozen models by role; an unset dpo_reference is the initial policy
        role: models.load_auxiliary(f"algorithm.{role}", mc, hw, cache, exp.seed, tok)
        if mc is not None
        else ref or models.frozen_copy(policy)
        for role, mc in auxiliary_models(algo).items()
    }
    engine = make_engine(exp.rollout, policy, tok, hw)
    opt = make_optimizer(policy, algo)
    use_chat = exp.model.use_chat_template
    encode = {ex.id: models.encode_prompt(tok, task.messages(ex), use_chat) for ex in train_set}
    fitting = [ex for ex in train_set if fits(engine, encode[ex.id], exp.task.max_new_tokens)]
    if not fitting:
        raise ValueError(
            f"task.train: no prompt fits the model's context with task.max_new_tokens={exp.task.max_new_tokens}"
        )
    if len(fitting) < len(train_set):
        print(f"[lco_exp] {len(train_set) - len(fitting)} training prompts are too long for the model and were dropped")
    train_set = fitting
    spikes = SpikeDetector(exp.diagnostics.spike_factor, exp.diagnostics.spike_window)

    start_scores: dict[tuple[str, str], float] = {}  # (benchmark, id) -> score at step 0, for paired changes

    def run_eval(step: int) -> dict[str, float]:
        start = time.perf_counter()
        metrics, samples = evaluate(engine, task, benchmarks, exp.evaluation, use_chat, exp.task.max_new_tokens)
        metrics["perf/time_eval_s"] = time.perf_counter() - start
        greedy = [s for s in samples if s["decoding"] == "greedy"]
        headline = {name: headline_score(b.metric) for name, b in benchmarks.items()}
        if not start_scores:
            start_scores.update({(s["benchmark"], s["id"]): s[headline[s["benchmark"]]] for s in greedy})
        for name in benchmarks:
            pairs = [
                (start_scores[(s["benchmark"], s["id"])], s[headline[name]]) for s in greedy if s["benchmark"] == name
            ]
            metrics[f"eval/{task.cfg.name}/{name}/gained"] = float(sum(a < b for a, b in pairs))
            metrics[f"eval/{task.cfg.name}/{name}/lost"] = float(sum(a > b for a, b in pairs))
        write_samples(run.dir / "eval" / f"step_{step:06d}.jsonl", samples)
        run.log(metrics, step)
        run.log_table("eval/samples", samples[: exp.evaluation.max_table_rows], step)
        return metrics

    bad_streak = 0  # consecutive RL steps with a skipped (non-finite) optimizer step

    def save_checkpoint(step: int, finished: bool = False) -> Path:
        state = {
            "optimizer": opt.state_dict(),
            "critic_optimizer": critic_opt.state_dict() if critic_opt is not None else None,
            "order": order,
            "cursor": cursor,
            "bad_streak": bad_streak,
            "spikes": spikes.state(),
            "start_scores": [[b, i, v] for (b, i), v in start_scores.items()],
            "summary": dict(run.summary),
            "wandb_id": run.wandb_id,
            "finished": finished,
        }
        return checkpoint.save(run.dir, step, policy, critic, state, exp.checkpoint.keep)

    resume_from = checkpoint.latest(run.dir) if exp.checkpoint.resume else None
    if resume_from is not None:
        state = checkpoint.load(resume_from, policy, critic)
        if state["finished"]:
            print(f"[lco_exp] {run.dir} already finished (checkpoint {resume_from.name}); nothing to do")
            run.summary.update(json.loads((run.dir / "final_metrics.json").read_text()))
            return {k: v for k, v in run.summary.items() if not k.endswith("@before")}
        opt.load_state_dict(state["optimizer"])
        if critic_opt is not None:
            critic_opt.load_state_dict(state["critic_optimizer"])
        order, cursor, bad_streak = state["order"], state["cursor"], state["bad_streak"]
        spikes.load_state(state["spikes"])
        start_scores.update({(b, i): v for b, i, v in state["start_scores"]})
        run.summary.update(state["summary"])
        run.rewind(state["step"])  # records logged after the checkpoint are logged again below
        first_step = state["step"] + 1
        checkpoint.set_rng_state(state["rng"])  # last: from here on the random stream continues exactly
        print(f"[lco_exp] resumed from {resume_from} at step {first_step}")
    else:
        if warm:
            run.log(warm, step=0)
        if task.skipped_rows:
            run.log({"data/skipped_rows": float(sum(task.skipped_rows.values()))}, step=0)
        before = run_eval(step=0)
        run.summary.update({f"{k}@before": v for k, v in before.items() if k.startswith("eval/")})
        order = torch.randperm(len(train_set)).tolist()
        cursor, first_step = 0, 1

    with StopRequest() as stop:
        bar = tqdm(range(first_step, exp.steps + 1), desc=f"{algo.name}", dynamic_ncols=True)
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
            with timed(timings, "rollout"):
                batch = engine.generate(
                    [encode[ex.id] for ex in examples], n=algo.group_size, max_new_tokens=exp.task.max_new_tokens
                )
            # 2. reward every completion
            with timed(timings, "reward"):
                texts = engine.decode(batch)
                group = [ex for ex in examples for _ in range(algo.group_size)]
                batch.rewards = torch.tensor(task.rewards(task.train_metric, group, texts), dtype=torch.float32)
            sampled = batch
            if is_supervised(algo):  # SFT trains on the reference completions; the samples only measure reward
                batch = sft_batch(tok, task, examples, use_chat)
            # 3. what the loss needs besides the samples: reference, estimator models, behaviour fields, values
            with timed(timings, "score"):
                if ref is not None:
                    batch = replace(batch, **reference_fields(ref, batch, hw))
                if "verifier" in aux:
                    batch = replace(batch, **verifier_fields(aux["verifier"], batch, hw, algo.candidates_k))
                if needs_scoring(algo):
                    batch = engine.score(batch, behaviour_top_k(algo))
                if "dpo_model" in aux:
                    batch = replace(batch, **dpo_fields(aux["dpo_model"], aux["dpo_reference"], batch, hw))
                if critic is not None:
                    batch = replace(batch, **critic_fields(critic, batch, hw))
            # 4. advantages, 5. update
            batch = replace(batch, **compute_advantages(batch, algo))
            if resets_optimizer(algo):
                opt = make_optimizer(policy, algo)
            for g in opt.param_groups:
                g["lr"] = algo.lr * actor_lr_scale(algo, step)
            diagnose = exp.diagnostics.every > 0 and step % exp.diagnostics.every == 0
            with timed(timings, "update"):
                stats = update(policy, opt, batch, algo, hw, diagnose, critic, critic_opt)
            timings["perf/time_step_s"] = time.perf_counter() - step_start
            # 6. log
            n_generated = float(sampled.mask.sum())
            n_processed = float(batch.attention_mask.sum()) * algo.epochs
            metrics = rollout_metrics(sampled, algo.group_size) | stats | timings
            metrics |= spikes(stats["train/grad_norm"], stats["train/skipped_steps"])
            metrics["train/advantage_abs_mean"] = float(masked_mean(batch.adv.abs(), batch.mask))
            metrics["perf/rollout_tokens_per_s"] = n_generated / timings["perf/time_rollout_s"]
            metrics["perf/update_tokens_per_s"] = n_processed / timings["perf/time_update_s"]
            run.log(metrics, step)
            bar.set_postfix(reward=f"{metrics['rollout/reward_mean']:.3f}", gnorm=f"{stats['train/grad_norm']:.3g}")
            # 7. periodic eval, checkpoint, and the ways a run stops early
            if exp.eval_every and step % exp.eval_every == 0 and step != exp.steps:
                run_eval(step)
            bad_streak = bad_streak + 1 if stats["train/skipped_steps"] > 0 else 0
            if exp.max_bad_steps and bad_streak >= exp.max_bad_steps:
                path = save_checkpoint(step)  # skipped optimizer steps never touched the parameters: the last good ones
                raise RunStopped(
                    f"{bad_streak} consecutive steps had a non-finite loss or gradient (max_bad_steps="
                    f"{exp.max_bad_steps}); the last good parameters are saved in {path}. Lower algorithm.lr, set "
                    "algorithm.max_grad_norm, or use hardware.compute_dtype=float32, then re-run to resume"
                )
            if stop.signum is not None:
                path = save_checkpoint(step)
                raise RunStopped(
                    f"stopped by {stop.name} after step {step}; checkpoint {path}; re-run to resume", stop.code
                )
            if exp.checkpoint.every and step % exp.checkpoint.every == 0 and step != exp.steps:
                save_checkpoint(step)

    after = run_eval(step=exp.steps)
    after["perf/time_run_s"] = time.perf_counter() - run_start  # this process: data, warm-up, RL and evaluations
    run.log({"perf/time_run_s": after["perf/time_run_s"]}, exp.steps)
    run.summary.update(after)
    if exp.save_final_policy:
        models.save_atomically(policy, tok, run.dir / "final_policy")
        if critic is not None:
            critic.save(run.dir / "critic")
    save_checkpoint(exp.steps, finished=True)
    return after


CONF_DIR = Path(__file__).resolve().parents[1] / "conf"  # absolute: works for `python -m` and the console script


@hydra.main(config_path=str(CONF_DIR), config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    exp: ExperimentConfig = OmegaConf.to_object(cfg)  # typed from here on
    validate(exp)  # fail before any data or model loads
    run = Run.from_hydra(cfg, exp)
    try:
        final = run_experiment(exp, run)
    except RunStopped as stopped:
        print(f"[lco_exp] {stopped}")
        raise SystemExit(stopped.exit_code) from None
    finally:
        run.finish()
    headlines = [f"eval/{exp.task.name}/{name}/{headline_score(benchmark_metric(exp.task, src))}"
                 for name, src in exp.task.benchmarks.items()]  # fmt: skip
    for key in headlines:
        if key in final:
            print(f"[lco_exp] {key}: {run.summary.get(f'{key}@before', float('nan')):.3f} -> {final[key]:.3f}")
    print(f"[lco_exp] run directory: {run.dir}")
    return final.get(headlines[0]) if headlines else None  # the first benchmark's headline score (sweeps optimise it)


if __name__ == "__main__":
    main()
