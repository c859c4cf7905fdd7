#!/usr/bin/env bash
# lco_exp vs the TRL peer on tiny-model addition (reference/peer-baseline.md; conf/experiment/peer_addition.yaml):
# LCO (kld, mse, lch), GRPO and PPO, seeds 0 1 2, at the experiment's learning rate (5e-5, the peer's) and at
# 3e-4 (the peer's collapsed "adjustment"), then the report in results/peer_addition/.
#   bash sweeps/peer/run_grid.sh                 # 30 runs, one at a time
#   JOBS=2 bash sweeps/peer/run_grid.sh          # two at a time, one torch thread each
# Each seed's 150 s SFT warm-up runs alone first (it is time-budgeted, so a busy CPU would shorten it) and is
# cached; every run of that seed starts from it. SEEDS, LRS and VARIANTS override the lists; extra arguments go
# to every run. A re-run skips finished runs (final_policy/ exists).
set -euo pipefail
out="${OUT:-outputs/peer_addition}"
seeds="${SEEDS:-0 1 2}"
lrs="${LRS:-5e-5 3e-4}"
jobs="${JOBS:-1}"
variants="${VARIANTS:-lco_kld lco_mse lco_lch grpo ppo}"
threads=()
[[ "$jobs" -gt 1 ]] && threads=(hardware.num_threads=1)

declare -A algo_args=(
  [lco_kld]="algorithm=lco algorithm.loss=kld" [lco_mse]="algorithm=lco algorithm.loss=mse"
  [lco_lch]="algorithm=lco algorithm.loss=lch" [grpo]="algorithm=grpo" [ppo]="algorithm=ppo"
)

commands=()
for seed in $seeds; do
  # the seed's warm-up, alone: one RL step, no periodic evaluation; the run directory is kept for its log
  python -m lco_exp.train experiment=peer_addition seed="$seed" steps=1 eval_every=0 save_final_policy=false \
    logger=none hydra.run.dir="$out/warmup/seed$seed" "$@"
  for lr in $lrs; do
    for v in $variants; do
      dir="$out/$v/lr$lr/seed$seed"
      [[ -d "$dir/final_policy" ]] && { echo "skip $dir (finished)"; continue; }
      # no quotes or parentheses: xargs would strip the quotes before bash -c sees them
      commands+=("python -m lco_exp.train experiment=peer_addition ${algo_args[$v]} algorithm.lr=$lr seed=$seed \
${threads[*]} hydra.run.dir=$dir $* > /dev/null 2>&1 || echo FAILED $dir, see $dir/train.log")
    done
  done
done
printf '%s\n' "${commands[@]}" | xargs -P "$jobs" -I{} bash -c {}
python -m lco_exp.report peer "$out" --out results/peer_addition
