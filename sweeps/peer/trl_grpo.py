"""TRL's GRPO on the peer_addition work, timed step by step, for the side-by-side in sweeps/peer/speed.sh.

Runs in a scratch virtualenv that has trl (the peer used trl 1.16.0, transformers 5.23.0, torch 2.13.0 CPU);
trl is not a dependency of lco_exp and nothing in lco_exp imports this file. The setup follows
reference/peer-baseline.md: reasoning-gym addition (2-3 terms, 1-2 digits, 4,000 rows at seed 0), 8 prompts x 8
completions per step, 16 new tokens, temperature 1, beta 0, loss_type "dapo", gradient checkpointing off, reward 1
when the first integer of the completion equals the answer. The model is a directory saved by lco_exp (the
tiny Llama and its character tokenizer), so both frameworks time the same weights on the same prompts.
"""

import argparse
import json
import re
import statistics
import time

import reasoning_gym
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import GRPOConfig, GRPOTrainer

FIRST_INT = re.compile(r"-?\d+")
ADDITION = dict(min_terms=2, max_terms=3, min_digits=1, max_digits=2, operators=["+"], allow_parentheses=False,
                allow_negation=False)  # fmt: skip


def first_integer_reward(completions, answer, **_):
    found = [FIRST_INT.search(c) for c in completions]
    return [float(m is not None and m.group(0) == a) for m, a in zip(found, answer, strict=True)]


class StepTimer(TrainerCallback):
    """Wall time of each optimizer step, generation included (one generation per step here)."""

    def __init__(self):
        self.times, self.start = [], None

    def on_step_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self.start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="a model directory saved by lco_exp")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", required=True, help="where to write the timings (json)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = reasoning_gym.create_dataset("basic_arithmetic", size=4000, seed=0, **ADDITION)
    # the prompt as lco_exp renders it for the tiny model (its chat template ends each message with a newline)
    data = Dataset.from_list([{"prompt": r["question"] + "\n", "answer": str(r["answer"])} for r in rows])
    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    config = GRPOConfig(
        output_dir="/tmp/trl_grpo_speed",
        learning_rate=args.lr,
        per_device_train_batch_size=64,  # completions: 8 prompts x 8 generations
        num_generations=8,
        max_completion_length=16,
        temperature=1.0,
        beta=0.0,
        loss_type="dapo",
        max_steps=args.steps,
        gradient_checkpointing=False,
        logging_steps=10,
        save_strategy="no",
        report_to="none",
        use_vllm=False,
        use_cpu=True,
        bf16=False,  # TRL turns bf16 on by default; this CPU run stays in float32 as lco_exp's
        seed=0,
    )
    timer = StepTimer()
    trainer = GRPOTrainer(
        model=model, reward_funcs=first_integer_reward, args=config, train_dataset=data, processing_class=tok,
        callbacks=[timer],
    )  # fmt: skip
    start = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - start
    rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    result = {
        "framework": "trl",
        "steps": len(timer.times),
        "median_step_s": statistics.median(timer.times),
        "mean_step_s": statistics.fmean(timer.times),
        "wall_s": wall,
        "reward_logs": rewards,
        "threads": args.threads,
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps({k: v for k, v in result.items() if k != "reward_logs"}))


if __name__ == "__main__":
    main()
