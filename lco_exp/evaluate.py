"""Benchmark evaluation: ``evaluate`` (used before, during and after training) and the CLI
``python -m lco_exp.evaluate`` that scores any checkpoint, local path or hub id through the same function.

Per benchmark: greedy decoding, every score of the benchmark's metric averaged (pass@1); with
``evaluation.samples`` = n > 0 also n sampled completions per prompt, giving pass@k (the unbiased estimator of
Chen et al. 2021, arXiv 2107.03374) and maj@k (the majority answer among the first k samples, where the task
has answers to vote on). Every output is kept as a per-sample record (prompt, output, extracted answer, gold,
scores) so each number can be audited.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from lco_exp.config import (
    METRIC_SCORES,
    EvalConfig,
    EvaluateConfig,
    Metric,
    ModelSource,
    register_configs,
    validate_evaluate,
)
from lco_exp.models import encode_prompt
from lco_exp.tasks import Benchmark

register_configs()

# the 0/1 score of each metric that counts as "solved" for pass@k and maj@k; the judge's score is a probability
HEADLINE = {
    Metric.math: "accuracy",
    Metric.squad: "exact_match",
    Metric.ifeval: "prompt_strict",
    Metric.ifbench: "prompt_strict",
}


def headline_score(metric: Metric) -> str:
    """The score a benchmark is summarised by (paired gained/lost counts, pass@k)."""
    return HEADLINE.get(metric, METRIC_SCORES[metric][0])


def pass_at_k(n: int, c: int, k: int) -> float:
    """P(at least one of k samples drawn without replacement from n, c of them correct, is correct)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def majority(keys: list[str | None]) -> int | None:
    """Index of the first sample holding the most common non-None key (ties: the key seen first); None if none."""
    counts = Counter(k for k in keys if k is not None)
    if not counts:
        return None
    best = max(counts.values())
    return next(i for i, k in enumerate(keys) if k is not None and counts[k] == best)


def fits(engine, prompt_ids: list[int], max_new_tokens: int) -> bool:
    limit = getattr(engine.model.config, "max_position_embeddings", None)
    return limit is None or len(prompt_ids) + max_new_tokens <= limit


def evaluate(
    engine, task, benchmarks: dict[str, Benchmark], ev: EvalConfig, use_chat_template: bool, max_new_tokens: int
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """-> ({"eval/<task>/<benchmark>/<score>": value}, [per-sample record])"""
    metrics: dict[str, float] = {}
    samples: list[dict[str, Any]] = []
    for name, bench in benchmarks.items():
        prefix = f"eval/{task.cfg.name}/{name}"
        encoded = [(ex, encode_prompt(engine.tokenizer, task.messages(ex), use_chat_template)) for ex in bench.examples]
        kept = [(ex, ids) for ex, ids in encoded if fits(engine, ids, max_new_tokens)]
        metrics[f"{prefix}/n"] = float(len(kept))
        metrics[f"{prefix}/skipped_too_long"] = float(len(encoded) - len(kept))
        if not kept:
            continue
        examples, prompts = [ex for ex, _ in kept], [ids for _, ids in kept]

        batch = engine.generate(prompts, n=1, max_new_tokens=max_new_tokens, greedy=True)
        texts = engine.decode(batch)
        scores = task.score(bench.metric, examples, texts)
        for key in scores[0]:
            metrics[f"{prefix}/{key}"] = sum(s[key] for s in scores) / len(scores)
        metrics[f"{prefix}/response_length"] = float(batch.mask.sum(1).mean())
        metrics[f"{prefix}/truncation_rate"] = float(batch.truncated.float().mean())
        samples += [
            record(name, ex, text, s, task, "greedy", 0) for ex, text, s in zip(examples, texts, scores, strict=True)
        ]

        headline = HEADLINE.get(bench.metric)
        if ev.samples and headline:
            n = ev.samples
            sampled = engine.generate(
                prompts, n=n, max_new_tokens=max_new_tokens, temperature=ev.temperature, top_p=ev.top_p
            )
            s_texts = engine.decode(sampled)
            group = [ex for ex in examples for _ in range(n)]
            s_scores = task.score(bench.metric, group, s_texts)
            samples += [
                record(name, ex, text, s, task, "sampled", j % n)
                for j, (ex, text, s) in enumerate(zip(group, s_texts, s_scores, strict=True))
            ]
            solved = [[s_scores[i * n + j][headline] >= 1.0 for j in range(n)] for i in range(len(examples))]
            keys = [[task.vote_key(s_texts[i * n + j]) for j in range(n)] for i in range(len(examples))]
            votes = any(k is not None for row in keys for k in row)
            for k in ev.ks:
                metrics[f"{prefix}/pass@{k}"] = sum(pass_at_k(n, sum(row), k) for row in solved) / len(solved)
                if votes:
                    winners = [majority(row[:k]) for row in keys]
                    maj = [w is not None and solved[i][w] for i, w in enumerate(winners)]
                    metrics[f"{prefix}/maj@{k}"] = sum(maj) / len(maj)
    return metrics, samples


def record(bench: str, ex, text: str, scores: dict[str, float], task, decoding: str, index: int) -> dict[str, Any]:
    return {
        "benchmark": bench,
        "id": ex.id,
        "decoding": decoding,
        "sample": index,
        "prompt": ex.prompt,
        "output": text,
        "extracted": task.extract(text),
        "answer": ex.answer,
        "references": list(ex.references),
        **scores,
    }


def write_samples(path: Path, samples: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(s) + "\n" for s in samples))


def resolve_checkpoint(checkpoint: str) -> str:
    """A run directory means its final policy; a model directory or a hub id is used as given."""
    local = Path(checkpoint).expanduser()
    if (local / "final_policy" / "config.json").is_file():
        return str(local / "final_policy")
    return str(local) if local.exists() else checkpoint


def run_evaluation(cfg: EvaluateConfig, run) -> dict[str, float]:
    """Load the task, its benchmarks and the model, then evaluate once; writes ``eval/samples.jsonl``."""
    from dataclasses import replace

    from lco_exp import models
    from lco_exp.judges import attach_models
    from lco_exp.rollout import make_engine
    from lco_exp.tasks import make_task
    from lco_exp.train import seed_everything

    validate_evaluate(cfg)
    seed_everything(cfg.seed)
    cache = Path(cfg.cache_dir).expanduser()
    task = make_task(cfg.task)
    train = task.load_train() if cfg.task.exclude_train_overlap else []
    benchmarks = task.load_benchmarks(train, cfg.evaluation.limit, cfg.evaluation.benchmarks)
    attach_models(task, cfg.hardware, cache, cfg.seed)
    if cfg.checkpoint is not None:
        mc = replace(cfg.model, source=ModelSource.pretrained, path=resolve_checkpoint(cfg.checkpoint))
        model, tok = models.load_pretrained(mc.path, mc, cfg.hardware)
    else:
        model, tok = models.load_base(cfg.model, cfg.hardware, cache, cfg.seed)
    engine = make_engine(cfg.rollout, model, tok, cfg.hardware)
    start = time.perf_counter()
    metrics, samples = evaluate(
        engine, task, benchmarks, cfg.evaluation, cfg.model.use_chat_template, cfg.task.max_new_tokens
    )
    metrics["perf/time_eval_s"] = time.perf_counter() - start
    write_samples(run.dir / "eval" / "samples.jsonl", samples)
    run.log(metrics, step=0)
    run.log_table("eval/samples", samples[: cfg.evaluation.max_table_rows], step=0)
    run.summary.update(metrics)
    return metrics


CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


@hydra.main(config_path=str(CONF_DIR), config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from lco_exp.tracking import Run

    ev: EvaluateConfig = OmegaConf.to_object(cfg)
    validate_evaluate(ev)  # fail before any data or model loads
    run = Run.from_hydra(cfg, ev, job_type="eval")
    try:
        metrics = run_evaluation(ev, run)
    finally:
        run.finish()
    for key, value in sorted(metrics.items()):
        if key.startswith("eval/"):
            print(f"[lco_exp] {key}: {value:.4f}")
    print(f"[lco_exp] per-sample records: {run.dir / 'eval' / 'samples.jsonl'}")


if __name__ == "__main__":
    main()
