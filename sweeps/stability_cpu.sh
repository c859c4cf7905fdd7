#!/usr/bin/env bash
# CPU stability comparison (README "Stability comparison"): same seed, same warm-started tiny model, offline
# arithmetic, 150 steps of 64 completions each. About 25 minutes on a 2-core CPU once the warm-up is cached.
# Usage: bash sweeps/stability_cpu.sh [seed]   then   python -m lco_exp.report stability outputs/stability
set -euo pipefail
seed="${1:-0}"
out="outputs/stability/seed${seed}"
run() {  # run <label> <overrides...>; skips a label whose run already finished
  local label="$1"; shift
  if [[ -f "$out/$label/final_metrics.json" ]]; then echo "skip $label"; return; fi
  python -m lco_exp.train experiment=stability seed="$seed" hydra.run.dir="$out/$label" "$@"
}
run lco_kld algorithm=lco algorithm.loss=kld
run lco_mse algorithm=lco algorithm.loss=mse
run lco_lch algorithm=lco algorithm.loss=lch
run grpo    algorithm=grpo prompts_per_step=16
run ppo     algorithm=ppo
run reinforce algorithm=reinforce
run sft     algorithm=sft
