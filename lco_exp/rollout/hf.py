"""Rollout with transformers ``generate`` (batched, KV cache), and a separate no-grad scoring pass.

The scoring pass runs the policy over the finished sequences with ``models.response_logits``, the same function
the update uses, so behaviour log-probs match the trainer's exactly on-policy (the ratio is 1 at the first
update; see anchors.md section 4.2 on rollout/trainer mismatch). It also keeps the top-K behaviour logits LCO
needs without ever holding (N, T, V) for the whole batch. The trainer calls it only when the update needs the
fields before its own first forward (``algorithms.needs_scoring``); otherwise that forward supplies them.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from transformers import GenerationConfig

from lco_exp.batch import RolloutBatch, behaviour_fields
from lco_exp.config import HardwareConfig, RolloutConfig
from lco_exp.models import autocast, eos_ids, response_logits


class HFEngine:
    def __init__(self, model, tokenizer, cfg: RolloutConfig, hw: HardwareConfig):
        self.model, self.tokenizer, self.cfg, self.hw = model, tokenizer, cfg, hw
        self.eos = eos_ids(model, tokenizer)
        self.pad = tokenizer.pad_token_id

    @torch.no_grad()
    def generate(
        self,
        prompts: list[list[int]],  # B prompts as token ids
        n: int,  # completions per prompt (G)
        max_new_tokens: int,
        greedy: bool = False,
        temperature: float | None = None,  # null: rollout.temperature (evaluation samples at its own)
        top_p: float | None = None,
    ) -> RolloutBatch:
        """Sampled (or greedy) completions, without behaviour fields; ``score`` adds them."""
        temperature = self.cfg.temperature if temperature is None else temperature
        top_p = self.cfg.top_p if top_p is None else top_p
        device = self.hw.device.value
        rows = [p for p in prompts for _ in range(n)]  # group-major, (N,)
        P = max(len(p) for p in rows)
        tokens = torch.full((len(rows), P), self.pad, dtype=torch.long)
        for i, p in enumerate(rows):
            tokens[i, P - len(p) :] = torch.tensor(p)
        prompt_mask = (torch.arange(P)[None, :] >= torch.tensor([P - len(p) for p in rows])[:, None]).long()

        sampling = not greedy and temperature > 0
        gen_cfg = GenerationConfig(
            do_sample=sampling,
            temperature=temperature if sampling else None,
            top_p=top_p if sampling else None,
            top_k=0 if sampling else None,  # no top-k truncation of the behaviour policy
            max_new_tokens=max_new_tokens,
            pad_token_id=self.pad,
            eos_token_id=self.eos,
        )
        was_training = self.model.training
        self.model.eval()
        chunks = []
        with autocast(self.hw):
            for s in range(0, len(rows), self.cfg.max_batch_size):
                ids = tokens[s : s + self.cfg.max_batch_size].to(device)
                am = prompt_mask[s : s + self.cfg.max_batch_size].to(device)
                out = self.model.generate(input_ids=ids, attention_mask=am, generation_config=gen_cfg)
                chunks.append(out[:, P:].cpu())
        T = max(c.shape[1] for c in chunks)
        response = torch.full((len(rows), T), self.pad, dtype=torch.long)
        s = 0
        for c in chunks:
            response[s : s + len(c), : c.shape[1]] = c
            s += len(c)

        # mask: tokens up to and including the first EOS; everything after it is padding
        is_eos = torch.isin(response, torch.tensor(self.eos))
        after_eos = (is_eos.long().cumsum(-1) - is_eos.long()) > 0
        mask = (~after_eos).long()
        truncated = ~is_eos.any(-1)
        response = torch.where(mask.bool(), response, torch.full_like(response, self.pad))
        batch = RolloutBatch(
            tokens=torch.cat([tokens, response], dim=1),
            attention_mask=torch.cat([prompt_mask, mask], dim=1),
            mask=mask.float(),
            prompt_width=P,
            truncated=truncated,
        )
        self.model.train(was_training)
        return batch

    @torch.no_grad()
    def score(self, batch: RolloutBatch, keep_top_k: int | None) -> RolloutBatch:
        """The batch with its behaviour fields (``batch.behaviour_fields``) filled, in micro-batches; the logits at
        ``batch.cand_ids`` too when the batch has candidates. keep_top_k: 0 none, None the whole vocabulary."""
        device, mb = self.hw.device.value, self.hw.micro_batch_size
        was_training = self.model.training
        self.model.eval()
        parts = []
        with autocast(self.hw):
            for s in range(0, len(batch), mb):
                tok = batch.tokens[s : s + mb].to(device)
                am = batch.attention_mask[s : s + mb].to(device)
                logits = response_logits(self.model, tok, am, batch.prompt_width)
                cand = None if batch.cand_ids is None else batch.cand_ids[s : s + mb]
                resp = tok[:, batch.prompt_width :]
                parts.append(behaviour_fields(logits, resp, keep_top_k, self.hw.loss_chunk_tokens, cand))
        self.model.train(was_training)
        return replace(batch, **{k: torch.cat([p[k].cpu() for p in parts]) for k in parts[0]})

    def decode(self, batch: RolloutBatch) -> list[str]:
        """Response texts, special tokens (EOS, padding) dropped."""
        return [
            self.tokenizer.decode(row[m.bool()].tolist(), skip_special_tokens=True)
            for row, m in zip(batch.response, batch.mask, strict=True)
        ]
