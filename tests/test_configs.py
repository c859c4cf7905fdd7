"""Every config file composes and converts to its schema; bad values fail early and name the key."""

from __future__ import annotations

import re

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from lco_exp.config import (
    AlgorithmConfig,
    ConfigError,
    ExperimentConfig,
    GRPOConfig,
    HardwareConfig,
    LCOConfig,
    LoggerConfig,
    ModelConfig,
    RolloutConfig,
    TaskConfig,
    validate,
)
from lco_exp.tasks import TASKS

from .conftest import CONF_DIR, compose_cfg

SCHEMAS = {
    "algorithm": AlgorithmConfig,
    "task": TaskConfig,
    "model": ModelConfig,
    "rollout": RolloutConfig,
    "hardware": HardwareConfig,
    "logger": LoggerConfig,
}
GROUPS = list(SCHEMAS)


def options(group: str) -> list[str]:
    root = CONF_DIR / group
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.yaml"))


@pytest.mark.parametrize("group, option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_group_option_composes_to_its_schema(group, option):
    cfg = compose_cfg([f"{group}={option}"])
    required_files = {"math_local": "test", "reading_qa_feedback": "qa_feedback"}  # paths the user must fill in
    if option in required_files:
        bench = required_files[option]
        cfg = compose_cfg([f"{group}={option}", "task.train.name=a.jsonl", f"task.benchmarks.{bench}.name=b.jsonl"])
    exp = OmegaConf.to_object(cfg)
    assert isinstance(exp, ExperimentConfig)
    section = getattr(exp, group)
    assert isinstance(section, SCHEMAS[group])
    if group in ("model", "algorithm"):
        assert section.name == option
    if group == "task":
        assert section.name in TASKS  # several sources (math, math_gsm8k, ...) share one task's reward


# paper/ settings pin their algorithm and its hyperparameters (tests/test_reproduce.py composes each as is)
@pytest.mark.parametrize("experiment", [e for e in options("experiment") if not e.startswith("paper/")])
@pytest.mark.parametrize("algorithm", options("algorithm"))
def test_every_experiment_composes_with_every_algorithm(experiment, algorithm):
    exp = OmegaConf.to_object(compose_cfg([f"experiment={experiment}", f"algorithm={algorithm}"]))
    assert exp.name == {"cpu_grid": "reproduce_cpu"}.get(experiment, experiment)  # the W&B group of its runs
    assert exp.algorithm.name == algorithm


def test_default_is_lco_quickstart_on_offline_math():
    exp = OmegaConf.to_object(compose_cfg([]))
    assert isinstance(exp.algorithm, LCOConfig) and exp.name == "quickstart"
    assert exp.model.source.value == "tiny" and exp.task.train.kind.value == "reasoning_gym"
    assert exp.logger.kind.value == "wandb"


@pytest.mark.parametrize(
    "override, key",
    [
        ("algorithm.betaa=3", "algorithm.betaa"),
        ("algorithm.beta=abc", "algorithm.beta"),
        ("algorithm.loss=l2", "algorithm.loss"),
        ("stepz=3", "stepz"),
        ("hardware.micro_batch_size=1.5", "hardware.micro_batch_size"),
    ],
)
def test_bad_override_fails_at_compose_naming_the_key(override, key):
    with pytest.raises((ConfigCompositionException, ConfigKeyError, ValidationError)) as err:
        OmegaConf.to_object(compose_cfg([override]))
    assert key.split(".")[-1] in str(err.value) + str(err.value.__cause__)


def test_grpo_only_key_is_rejected_for_lco():
    with pytest.raises(ConfigCompositionException) as err:
        compose_cfg(["algorithm=lco", "algorithm.clip_eps=0.1"])
    assert "clip_eps" in str(err.value) + str(err.value.__cause__)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["algorithm=grpo", "algorithm.group_size=1"], "algorithm.group_size=1"),
        (["algorithm.baseline=group_norm"], "algorithm.group_size=1"),
        (["algorithm.minibatches=3"], "algorithm.minibatches=3 must divide"),
        (["steps=0"], "steps=0"),
        (
            ["task=math_local", "task.train.name=/nonexistent.jsonl", "task.benchmarks.test.name=/x.jsonl"],
            "task.train.name='/nonexistent.jsonl'",
        ),
        (["task=math_gsm8k"], "HF_HUB_OFFLINE=1"),
        (["model=qwen2.5-0.5b-instruct"], "model.path='Qwen/Qwen2.5-0.5B-Instruct' is not a local directory"),
        (["model=tiny", "model.source=pretrained", "model.path=./no/such/dir"], "model.path='./no/such/dir'"),
        (["evaluation.benchmarks=[nope]"], "evaluation.benchmarks: unknown benchmark(s) ['nope']"),
        (["task=reading", "task.reward=accuracy"], "task.reward='accuracy': training on squad allows"),
        (["task=instruct_judge_local"], "task.judge is null"),
        (["task=instruct", "task.benchmarks.ifbench.name=ifbench/no_such.jsonl"], "no file 'no_such.jsonl'"),
        (["task=reading", "task.train.kind=generator", "task.train.name=nope"], "unknown generator"),
        (["evaluation.samples=2", "evaluation.ks=[4]"], "evaluation.ks=[4]"),
        (["checkpoint.keep=0"], "checkpoint.keep"),
    ],
)
def test_validate_names_the_key(overrides, message):
    exp = OmegaConf.to_object(compose_cfg(["experiment=smoke", *overrides]))
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(exp)


def test_group_schemas_are_typed():
    exp = OmegaConf.to_object(compose_cfg(["algorithm=grpo"]))
    assert isinstance(exp.algorithm, GRPOConfig) and exp.algorithm.group_size == 4


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LCO_EXP_CACHE", str(tmp_path))
    assert OmegaConf.to_object(compose_cfg([])).cache_dir == str(tmp_path)
    monkeypatch.delenv("LCO_EXP_CACHE")
    assert OmegaConf.to_object(compose_cfg([])).cache_dir == "~/.cache/lco_exp"


@pytest.mark.parametrize("algorithm", ["lco", "grpo", "ppo"])
def test_peer_experiment_matches_the_trl_peer_setup(algorithm):
    """reference/peer-baseline.md: 3.2M tiny Llama, char tokenizer, 4,000 addition rows at seed 0, 150 s of SFT
    at batch 64, 300 steps of 8 prompts x 8 completions, 16 new tokens, 200 held-out rows, first-integer grading."""
    exp = OmegaConf.to_object(compose_cfg(["experiment=peer_addition", f"algorithm={algorithm}"]))
    validate(exp)
    assert (exp.steps, exp.prompts_per_step, exp.algorithm.group_size, exp.task.max_new_tokens) == (300, 8, 8, 16)
    assert exp.model.source.value == "tiny" and exp.model.tiny.hidden_size == 256 and exp.model.tiny.num_layers == 4
    assert exp.model.warmup.time_budget_s == 150 and exp.model.warmup.batch_size == 64
    train = exp.task.train
    assert (train.size, train.seed, train.options["operators"], train.options["max_terms"]) == (4000, 0, ["+"], 3)
    held = exp.task.benchmarks["arithmetic"]
    assert held.options == train.options and held.seed != train.seed and exp.evaluation.limit == 200
    assert exp.task.exclude_train_overlap and exp.task.math_answer.value == "first_number"
