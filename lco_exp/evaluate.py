"""Held-out evaluation: greedy decoding on each benchmark, scored by the task's own reward (pass@1).

Used before training, every ``eval_every`` steps and after training; each call also returns the per-sample
records (prompt, output, extracted answer, gold, score) so every number can be audited.
"""

from __future__ import annotations

from typing import Any

from lco_exp.models import encode_prompt
from lco_exp.tasks import Example


def evaluate(engine, task, benchmarks: dict[str, list[Example]], use_chat_template: bool, max_new_tokens: int):
    """-> ({"eval/<task>/<benchmark>/<metric>": value}, [per-sample record])"""
    metrics: dict[str, float] = {}
    samples: list[dict[str, Any]] = []
    for name, examples in benchmarks.items():
        if not examples:
            continue
        prompts = [encode_prompt(engine.tokenizer, task.messages(ex), use_chat_template) for ex in examples]
        batch = engine.generate(prompts, n=1, max_new_tokens=max_new_tokens, greedy=True)
        texts = engine.decode(batch)
        scores = [task.reward(ex, text) for ex, text in zip(examples, texts, strict=True)]
        prefix = f"eval/{task.cfg.name}/{name}"
        metrics[f"{prefix}/accuracy"] = sum(scores) / len(scores)
        metrics[f"{prefix}/response_length"] = float(batch.mask.sum(1).mean())
        metrics[f"{prefix}/truncation_rate"] = float(batch.truncated.float().mean())
        samples += [
            {
                "benchmark": name,
                "id": ex.id,
                "question": ex.question,
                "output": text,
                "extracted": task.extract(text),
                "answer": ex.answer,
                "score": score,
            }
            for ex, text, score in zip(examples, texts, scores, strict=True)
        ]
    return metrics, samples
