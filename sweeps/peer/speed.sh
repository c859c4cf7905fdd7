#!/usr/bin/env bash
# Timings on an otherwise idle machine, one run after the other with 2 torch threads each, on the peer_addition
# batch (8 prompts x 8 completions, 16 new tokens); the grid's own timings are taken two runs at a time:
#   0. lco_exp LCO-KLD as the grid runs it, all 300 steps: the RL stage's wall time for the whole-pipeline figure;
#   1. lco_exp GRPO as the grid runs it (k3 KL to a frozen reference, coefficient 0.01, plus the KL metric);
#   2. lco_exp GRPO doing TRL's work (no reference model: algorithm.kl_coef=0 reference_kl_metric=false);
#   3. TRL 1.16 GRPOTrainer (sweeps/peer/trl_grpo.py) from run 2's final policy, in a scratch virtualenv:
#        python3 -m venv /tmp/trl-venv && /tmp/trl-venv/bin/pip install torch==2.13.0 trl==1.16.0 \
#          transformers==5.23.0 datasets reasoning-gym==0.1.25
#        TRL_PYTHON=/tmp/trl-venv/bin/python bash sweeps/peer/speed.sh [steps]
# Writes results/peer_addition/speed.md (medians and the ratios). trl is never a dependency of lco_exp.
set -euo pipefail
trl_python="${TRL_PYTHON:?set TRL_PYTHON to the python of a scratch virtualenv with trl (see the header of this script)}"
steps="${1:-100}"
out="${OUT:-outputs/peer_speed}"
common=(experiment=peer_addition algorithm=grpo seed=0 steps="$steps" eval_every=0 logger=none
        hardware.num_threads=2 checkpoint.resume=false)
mkdir -p "$out"
python -m lco_exp.train experiment=peer_addition algorithm=lco seed=0 logger=none hardware.num_threads=2 \
  checkpoint.resume=false hydra.run.dir="$out/lco_exp_lco_kld" > "$out/lco_kld.log" 2>&1
python -m lco_exp.train "${common[@]}" hydra.run.dir="$out/lco_exp_grid" > "$out/grid.log" 2>&1
python -m lco_exp.train "${common[@]}" algorithm.kl_coef=0 reference_kl_metric=false \
  hydra.run.dir="$out/lco_exp_no_ref" > "$out/no_ref.log" 2>&1
"$trl_python" sweeps/peer/trl_grpo.py --model "$out/lco_exp_no_ref/final_policy" --steps "$steps" --threads 2 \
  --out "$out/trl.json"
python - "$out" "$steps" <<'PY'
import json, sys, time
from pathlib import Path

from lco_exp.report import load_run, peer_run

out, steps = Path(sys.argv[1]), int(sys.argv[2])
grid, no_ref, lco = (peer_run(load_run(out / name), "arithmetic")
                     for name in ("lco_exp_grid", "lco_exp_no_ref", "lco_exp_lco_kld"))
trl = json.loads((out / "trl.json").read_text())["median_step_s"]
grid, no_ref = grid["step_s"], no_ref["step_s"]
lines = [
    "# GRPO step time: lco_exp beside TRL (issue 7)",
    "",
    f"Made with `TRL_PYTHON=... bash sweeps/peer/speed.sh {steps}` on {time.strftime('%Y-%m-%d')}: {steps} GRPO "
    "steps each, one run after the other on the same machine, 2 torch threads, batch 8 prompts x 8 completions, "
    "16 new tokens. Median wall time of a whole step (generation, reward, extra forward passes, update).",
    "",
    "| run | median s / step | TRL / this |",
    "|---|---|---|",
    f"| lco_exp GRPO as in the grid (frozen reference for the k3 KL and the KL metric) | {grid:.3f} | {trl / grid:.2f} |",
    f"| lco_exp GRPO without a reference (TRL's work: beta 0) | {no_ref:.3f} | {trl / no_ref:.2f} |",
    f"| TRL 1.16 GRPOTrainer, gradient checkpointing off | {trl:.3f} | 1.00 |",
    "",
    "TRL / this above 1 means lco_exp's step is faster. The peer's own figure on this machine kind was 0.608 s.",
    "",
    f"Whole pipeline, LCO-KLD as in the grid (seed 0): SFT {lco['sft_s']:.0f} s (its warm-up run) + RL "
    f"process {lco['rl_s']:.0f} s (300 steps at a median {lco['step_s']:.3f} s, four evaluations of two 200-row "
    f"sets, data) = {lco['wall_s']:.0f} s; the peer's whole pipeline took 349.8 s.",
]
dest = Path("results/peer_addition")
dest.mkdir(parents=True, exist_ok=True)
(dest / "speed.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
