#!/usr/bin/env bash
# Reproduce the paper's comparison at the scale your hardware allows, then write the report.
#   bash sweeps/reproduce_paper.sh cpu     # offline: tiny model, all three tasks, LCO-KLD/MSE/LCH, PPO, GRPO,
#                                           # seeds 0 1; under 30 minutes on a 2-core CPU -> results/reproduce_cpu
#   bash sweeps/reproduce_paper.sh paper   # GPUs + hub: the conf/experiment/paper/ grid (2 models x 3 tasks x
#                                           # LCO/PPO/GRPO, LCO in all three losses), seeds 0 1 2 -> results/reproduce_paper
# SEEDS="0 1 2" overrides the seeds. A re-run skips runs that already finished (their final_policy/ exists) and
# resumes interrupted ones from their checkpoints. Extra arguments go to every run (e.g. logger=none).
set -euo pipefail
scale="${1:?usage: reproduce_paper.sh cpu|paper [extra overrides...]}"; shift
out="outputs/reproduce_${scale}"

run() {  # run <run dir> <overrides...>
  local dir="$1"; shift
  if [[ -d "$dir/final_policy" ]]; then echo "skip $dir (finished)"; return; fi
  echo "=== $dir"
  python -m lco_exp.train hydra.run.dir="$dir" "$@"
}

variants=("lco_kld algorithm=lco algorithm.loss=kld" "lco_mse algorithm=lco algorithm.loss=mse"
          "lco_lch algorithm=lco algorithm.loss=lch" "ppo algorithm=ppo" "grpo algorithm=grpo")

if [[ "$scale" == cpu ]]; then
  seeds="${SEEDS:-0 1}"
  declare -A task_args=(
    [math]="task=math"
    [reading]="task=reading task.max_new_tokens=16 task.benchmarks.passages.size=100 model.warmup.steps=60 model.warmup.batch_size=16"
    [instruct]="task=instruct task.max_new_tokens=64 task.train.size=300 task.benchmarks.ifeval_synth.size=100 model.warmup.steps=60 model.warmup.batch_size=16"
  )
  for seed in $seeds; do
    for task in math reading instruct; do
      for v in "${variants[@]}"; do
        read -r label overrides <<< "$v"
        # GRPO and PPO at the grid's budget: GRPO's 4 samples per prompt on a quarter of the prompts
        [[ "$label" == grpo ]] && overrides+=" prompts_per_step=4"
        # shellcheck disable=SC2086
        run "$out/$task/$label/seed$seed" experiment=cpu_grid ${task_args[$task]} $overrides seed="$seed" "$@"
      done
    done
  done
elif [[ "$scale" == paper ]]; then
  seeds="${SEEDS:-0 1 2}"
  for seed in $seeds; do
    for model in qwen2.5-3b llama3.2-3b; do
      for task in math reading instruct; do
        for algo in lco ppo grpo; do
          if [[ "$algo" == lco ]]; then
            for loss in kld mse lch; do
              run "$out/$model/$task/lco_$loss/seed$seed" experiment="paper/${model}_${task}_lco" algorithm.loss="$loss" seed="$seed" "$@"
            done
          else
            run "$out/$model/$task/$algo/seed$seed" experiment="paper/${model}_${task}_${algo}" seed="$seed" "$@"
          fi
        done
      done
    done
  done
else
  echo "unknown scale '$scale': use cpu or paper" >&2; exit 2
fi

python -m lco_exp.report grid "$out" --out "results/reproduce_${scale}" --scale "$scale"
