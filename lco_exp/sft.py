"""Supervised fine-tuning on reference completions: the warm-start stage (and, later, the SFT baseline).

The warm-started model is cached under ``cache_dir/warmup/<model>-<key>``, where the key hashes everything that
determines it (model config, training data, templates, warm-up settings, seed), so a second run loads it instead
of training again.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict

import torch
from tqdm import tqdm

from lco_exp.batch import RolloutBatch
from lco_exp.config import HardwareConfig, ModelConfig, TaskConfig, WarmupConfig
from lco_exp.losses import sft_loss
from lco_exp.models import autocast, encode_prompt, response_logits


def warmup_key(model: ModelConfig, task: TaskConfig, seed: int) -> str:
    spec = {"model": asdict(model), "train": asdict(task.train), "seed": seed}
    spec["templates"] = [task.system_prompt, task.prompt_template, task.completion_template]
    blob = json.dumps(spec, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def sft_batch(tok, task, examples, use_chat_template: bool) -> RolloutBatch:
    """Left-padded prompts and right-padded target completions (+ EOS), in the rollout layout."""
    prompts = [encode_prompt(tok, task.messages(ex), use_chat_template) for ex in examples]
    targets = [tok(task.completion(ex), add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for ex in examples]
    P, T = max(map(len, prompts)), max(map(len, targets))
    tokens = torch.full((len(examples), P + T), tok.pad_token_id, dtype=torch.long)
    attn = torch.zeros_like(tokens)
    for i, (p, t) in enumerate(zip(prompts, targets, strict=True)):
        tokens[i, P - len(p) : P] = torch.tensor(p)
        tokens[i, P : P + len(t)] = torch.tensor(t)
        attn[i, P - len(p) : P + len(t)] = 1
    return RolloutBatch(tokens, attn, attn[:, P:].float(), P, torch.zeros(len(examples), dtype=torch.bool))


def sft_warmup(model, tok, task, examples, cfg: WarmupConfig, model_cfg: ModelConfig, hw: HardwareConfig, seed: int):
    """Train ``model`` in place on random batches of reference completions, for ``cfg.steps`` steps or until
    ``cfg.time_budget_s`` seconds have passed, whichever comes first."""
    device = hw.device.value
    full = sft_batch(tok, task, examples, model_cfg.use_chat_template)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)

    start, losses = time.perf_counter(), []

    def lr_factor(step: int) -> float:  # linear warm-up, then cosine decay to 10% over steps or time
        if step < cfg.lr_warmup_steps:
            return (step + 1) / cfg.lr_warmup_steps
        progress = (step - cfg.lr_warmup_steps) / max(1, cfg.steps - cfg.lr_warmup_steps)
        if cfg.time_budget_s is not None:
            progress = max(progress, (time.perf_counter() - start) / cfg.time_budget_s)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    bar = tqdm(desc="sft warm-up", total=None if cfg.time_budget_s else cfg.steps, dynamic_ncols=True)
    for _ in range(cfg.steps):
        if cfg.time_budget_s is not None and time.perf_counter() - start >= cfg.time_budget_s:
            break
        idx = torch.randint(len(examples), (cfg.batch_size,), generator=gen)
        mb = full.select(idx)
        # trim columns that are padding in every row of this batch
        keep_from = int((mb.attention_mask[:, : mb.prompt_width].sum(0) == 0).sum())
        T = int(mb.mask.sum(1).max())
        tokens = mb.tokens[:, keep_from : mb.prompt_width + T].to(device)
        attn = mb.attention_mask[:, keep_from : mb.prompt_width + T].to(device)
        with autocast(hw):
            logits = response_logits(model, tokens, attn, mb.prompt_width - keep_from)
        loss, _ = sft_loss(logits, tokens[:, mb.prompt_width - keep_from :], mb.mask[:, :T].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    bar.close()
    tail = losses[-20:] or [float("nan")]
    elapsed = time.perf_counter() - start
    return {"warmup/loss": sum(tail) / len(tail), "warmup/steps": len(losses), "warmup/time_s": elapsed}
