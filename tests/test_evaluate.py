"""pass@k and maj@k, the local judge and reward model, and `python -m lco_exp.evaluate` on a saved checkpoint."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lco_exp.config import HardwareConfig, ModelConfig, ModelSource, TinyModelConfig
from lco_exp.evaluate import majority, pass_at_k
from lco_exp.judges import LocalJudge, RewardModel
from lco_exp.models import build_tiny
from lco_exp.tracking import Run
from lco_exp.train import run_experiment

ROOT = Path(__file__).resolve().parents[1]
SMALL = TinyModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)


@pytest.mark.parametrize("n, c", [(4, 0), (4, 1), (5, 2), (6, 6), (7, 3)])
def test_pass_at_k_equals_the_fraction_of_k_subsets_with_a_correct_sample(n, c):
    outcomes = [True] * c + [False] * (n - c)
    for k in range(1, n + 1):
        subsets = list(itertools.combinations(outcomes, k))
        assert pass_at_k(n, c, k) == pytest.approx(sum(any(s) for s in subsets) / len(subsets))


def test_majority_picks_the_most_common_key_first_seen_on_ties():
    assert majority(["7", "5", "5", None]) == 1
    assert majority(["7", "5", "7", "5"]) == 0  # tie: the key seen first
    assert majority([None, None]) is None
    assert majority([None, "3"]) == 1


def tiny_cfg() -> ModelConfig:
    return ModelConfig(name="tiny", source=ModelSource.tiny, tiny=SMALL)


def test_local_judge_averages_both_orders():
    cfg = tiny_cfg()
    model, tok = build_tiny(cfg, seed=0)
    judge = LocalJudge(model, tok, cfg, HardwareConfig(), max_chars=200)
    outs, refs = ["a short answer", "no", "same"], ["a reference", "yes indeed", "same"]
    forward = judge.win_probability(["q1", "q2", "q3"], outs, refs)
    backward = judge.win_probability(["q1", "q2", "q3"], refs, outs)
    assert all(0.0 < w < 1.0 for w in forward)
    # swapping output and reference swaps the two presentations, so the two win rates sum to one exactly
    assert [f + b for f, b in zip(forward, backward, strict=True)] == pytest.approx([1.0, 1.0, 1.0])
    assert forward[2] == pytest.approx(0.5)  # identical responses tie


def test_reward_model_classifier_and_causal_verifier(tmp_path):
    from transformers import LlamaConfig, LlamaForSequenceClassification

    _, tok = build_tiny(tiny_cfg(), seed=0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, num_labels=1, pad_token_id=tok.pad_token_id)  # fmt: skip
    torch.manual_seed(0)
    LlamaForSequenceClassification(config).save_pretrained(tmp_path / "rm")
    tok.save_pretrained(tmp_path / "rm")
    hw = HardwareConfig()
    rm = RewardModel(ModelConfig(name="rm", path=str(tmp_path / "rm")), hw, tmp_path, seed=0, max_chars=4000)
    assert rm.classifier is not None
    s = rm.score(["question one", "question two"], ["answer", "a different answer"])
    assert all(0.0 < x < 1.0 for x in s) and s != pytest.approx([s[0], s[0]])
    assert rm.score(["question one"], ["answer"]) == pytest.approx(s[:1])  # padding does not change a score
    verifier = RewardModel(tiny_cfg(), hw, tmp_path, seed=0, max_chars=4000)
    assert verifier.classifier is None and all(0.0 < x < 1.0 for x in verifier.score(["q"], ["a"]))


def test_evaluate_cli_scores_a_saved_checkpoint_like_the_training_run(exp_factory, tmp_path):
    exp = exp_factory("task=reading", "evaluation.limit=6", "task.max_new_tokens=8")
    run = Run(tmp_path / "run", exp, {}, [])
    final = run_experiment(exp, run)
    run.finish()

    out = tmp_path / "eval"
    cmd = [
        sys.executable, "-m", "lco_exp.evaluate", "task=reading", "model=tiny", "logger=none",
        f"checkpoint={tmp_path / 'run'}", "evaluation.limit=6", "task.max_new_tokens=8",
        "evaluation.samples=4", "evaluation.ks=[1,2,4]", "task.train.size=200", f"hydra.run.dir={out}",
        f"cache_dir={tmp_path / 'cache'}",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "disabled"}
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "final_metrics.json").read_text())
    for bench in ("passages", "needle_haystack", "family_relationships"):
        for score in ("exact_match", "f1"):
            key = f"eval/reading/{bench}/{score}"
            assert metrics[key] == pytest.approx(final[key]), key  # same code path, same greedy outputs

    records = [json.loads(line) for line in (out / "eval" / "samples.jsonl").read_text().splitlines()]
    sampled = [r for r in records if r["decoding"] == "sampled" and r["benchmark"] == "passages"]
    assert len(sampled) == 4 * metrics["eval/reading/passages/n"]
    assert {"prompt", "output", "extracted", "references", "exact_match", "f1"} <= set(sampled[0])
    mean_em = sum(r["exact_match"] for r in sampled) / len(sampled)
    assert metrics["eval/reading/passages/pass@1"] == pytest.approx(mean_em)  # c/n, averaged over prompts
    first = [r["exact_match"] for r in sampled if r["sample"] == 0]
    assert metrics["eval/reading/passages/maj@1"] == pytest.approx(sum(first) / len(first))
    p = [metrics[f"eval/reading/passages/pass@{k}"] for k in (1, 2, 4)]
    assert p == sorted(p)


def test_evaluate_rejects_a_missing_checkpoint_before_loading(tmp_path):
    cmd = [sys.executable, "-m", "lco_exp.evaluate", "logger=none", f"checkpoint={tmp_path / 'nope'}",
           f"hydra.run.dir={tmp_path / 'out'}"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "disabled"}
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert done.returncode != 0
    assert "checkpoint=" in done.stderr and "neither a model directory" in done.stderr
