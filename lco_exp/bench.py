"""Benchmark one update step of each algorithm on the same batch of tokens: time and peak memory, side by side.

    python -m lco_exp.bench                       # tiny model, CPU
    python -m lco_exp.bench --model smollm2_135m  # SmolLM2-135M (49k vocabulary), CPU
    python -m lco_exp.bench --model qwen2.5-0.5b-instruct --device cuda --sequences 8 --response-len 512

Each algorithm runs in its own fresh process, so one's allocations cannot hide another's peak. Inside it, the
model and a random batch are built, what the loss needs besides the policy's forward (reference log-probs,
critic values, behaviour fields) is computed untimed, as the training loop does before its update, and then:
memory = the peak resident memory of the first ``train.update`` call above the memory just before it (on CUDA,
``max_memory_allocated`` above the allocation before it), which includes the gradients and the optimizer state;
time = the median wall time of the next ``--repeats`` calls. The table prints both with their ratio to SFT.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

VARIANTS = {
    "sft": ["algorithm=sft"],
    "lco_kld": ["algorithm=lco", "algorithm.loss=kld"],
    "lco_kld_fullvocab": ["algorithm=lco", "algorithm.loss=kld", "algorithm.top_k=null"],
    "lco_mse": ["algorithm=lco", "algorithm.loss=mse"],
    "lco_lch": ["algorithm=lco", "algorithm.loss=lch"],
    "grpo": ["algorithm=grpo"],
    "ppo": ["algorithm=ppo"],
}


def _memory_now() -> int:
    """Resident set size in bytes, and reset the kernel's peak (VmHWM) counter (Linux)."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kb("VmRSS") * 1024


def _peak() -> int:
    return _status_kb("VmHWM") * 1024


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def measure(args: argparse.Namespace) -> dict:
    """One variant, in this process."""
    import torch
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from lco_exp import models
    from lco_exp.algorithms import behaviour_top_k, compute_advantages, needs_critic, needs_reference, needs_scoring
    from lco_exp.batch import RolloutBatch, behaviour_fields
    from lco_exp.config import register_configs
    from lco_exp.train import CONF_DIR, critic_fields, make_optimizer, reference_fields, update

    register_configs()
    overrides = [*VARIANTS[args.one], f"model={args.model}", "algorithm.group_size=2", "logger=none"]
    overrides += [
        f"hardware={'gpu' if args.device == 'cuda' else 'cpu'}",
        f"hardware.micro_batch_size={args.sequences}",
    ]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        exp = OmegaConf.to_object(compose(config_name="train", overrides=overrides))
    algo, hw = exp.algorithm, exp.hardware
    torch.manual_seed(0)
    torch.set_num_threads(args.threads or torch.get_num_threads())
    policy, _ = models.load_base(exp.model, hw, Path(exp.cache_dir).expanduser(), seed=0)
    V, N, P, T = policy.config.vocab_size, args.sequences, args.prompt_len, args.response_len
    tokens = torch.randint(V, (N, P + T))
    batch = RolloutBatch(
        tokens=tokens,
        attention_mask=torch.ones(N, P + T, dtype=torch.long),
        mask=torch.ones(N, T),
        prompt_width=P,
        truncated=torch.zeros(N, dtype=torch.bool),
        rewards=torch.tensor([1.0, 0.0] * (N // 2) + [1.0] * (N % 2)),
    )
    with torch.no_grad():  # what the loop computes before its update
        if needs_reference(algo):
            batch = replace(batch, **reference_fields(models.frozen_copy(policy), batch, hw))
        if needs_scoring(algo):  # otherwise the update takes the behaviour fields from its own forward, as in training
            mb = batch.to(hw.device.value)
            with models.autocast(hw):
                logits = models.response_logits(policy, mb.tokens, mb.attention_mask, P)
            fields = behaviour_fields(logits, mb.response, behaviour_top_k(algo), hw.loss_chunk_tokens)
            batch = replace(batch, **{k: v.cpu() for k, v in fields.items()})
            del logits, mb
    critic = critic_opt = None
    if needs_critic(algo):
        critic = models.build_critic(policy, None, hw)
        critic_opt = torch.optim.AdamW(critic.parameters(), lr=algo.critic_lr)
        batch = replace(batch, **critic_fields(critic, batch, hw))
    batch = replace(batch, **compute_advantages(batch, algo))
    opt = make_optimizer(policy, algo)
    cuda = args.device == "cuda"

    def step():
        update(policy, opt, batch, algo, hw, False, critic, critic_opt)
        if cuda:
            torch.cuda.synchronize()

    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        step()
        peak = torch.cuda.max_memory_allocated() - before
    else:
        before = _memory_now()
        step()
        peak = _peak() - before
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {"variant": args.one, "peak_mib": peak / 2**20, "time_s": statistics.median(times), "vocab": V}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny", help="a conf/model option")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--sequences", type=int, default=16)
    parser.add_argument("--prompt-len", type=int, default=32)
    parser.add_argument("--response-len", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args)))
        return
    passthrough = [a for a in sys.argv[1:] if not a.startswith("--variants")]
    rows = []
    for name in args.variants.split(","):
        if name not in VARIANTS:
            parser.error(f"--variants: unknown {name!r}; choose from {', '.join(VARIANTS)}")
        out = subprocess.run(
            [sys.executable, "-m", "lco_exp.bench", *passthrough, "--one", name],
            capture_output=True,
            text=True,
            # Large allocations through mmap, returned to the OS when freed: resident memory then tracks live
            # tensors, instead of pages glibc keeps from earlier work in the process (the reference's forward).
            env=os.environ | {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "0"},
        )
        if out.returncode:
            sys.exit(f"{name} failed:\n{out.stderr[-3000:]}")
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    sft = next((r for r in rows if r["variant"] == "sft"), rows[0])
    print(
        f"model={args.model} device={args.device} vocab={rows[0]['vocab']} sequences={args.sequences} "
        f"prompt_len={args.prompt_len} response_len={args.response_len} repeats={args.repeats}"
    )
    print(f"| variant | update time (s) | time / {sft['variant']} | peak memory (MiB) | memory / {sft['variant']} |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['variant']} | {r['time_s']:.3f} | {r['time_s'] / sft['time_s']:.2f} | {r['peak_mib']:.0f} | "
            f"{r['peak_mib'] / sft['peak_mib']:.2f} |"
        )


if __name__ == "__main__":
    main()
