"""Summaries of finished runs, from what every run writes online or not (``metrics.jsonl``, ``final_metrics.json``,
``config_resolved.json``):

- ``python -m lco_exp.report stability <runs dir> [--out results/stability]``: one row per run (gradient norm,
  reward, entropy, held-out accuracy), ``summary.csv``, ``summary.md`` and ``curves.png``.
- ``python -m lco_exp.report grid <grid dir> --out results/<grid> --scale cpu|paper``: runs found anywhere below
  the grid directory, grouped by task, model and algorithm variant over seeds. Writes ``summary.csv`` (one row
  per group and benchmark: mean and std over seeds, plus stability figures), ``README.md`` (the tables, beside the
  paper's reported numbers, each column saying whose number and at what scale), and ``curves_<task>.png``
  (reward, gradient norm, entropy, sampled-token probability; mean over seeds per algorithm).
- ``python -m lco_exp.report peer <runs dir> --out results/peer_addition``: the comparison with the TRL peer
  (``sweeps/peer/run_grid.sh``): one row per algorithm variant and learning rate (held-out accuracy mean and std
  over seeds, collapse, wall time, seconds per step) beside TRL's figures, ``summary.csv``, ``summary.md`` and
  ``curves.png`` (reward and gradient norm).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import statistics
import time
from pathlib import Path


def load_run(run_dir: Path) -> dict:
    """A run directory's records, config and final metrics; ``metrics.jsonl.gz`` stands in for ``metrics.jsonl``
    (committed result folders keep their runs compressed)."""
    path = run_dir / "metrics.jsonl"
    text = path.read_text() if path.is_file() else gzip.decompress((run_dir / "metrics.jsonl.gz").read_bytes()).decode()
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    config = json.loads((run_dir / "config_resolved.json").read_text())
    final = json.loads((run_dir / "final_metrics.json").read_text())
    train = [r for r in records if "train/grad_norm" in r]
    return {"label": run_dir.name, "config": config, "final": final, "train": train, "records": records}


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def stability_row(run: dict) -> dict[str, float | str]:
    """One table row: how a run's gradient norm, reward and entropy moved over training."""
    train = run["train"]
    series = {k: [r[k] for r in train if k in r] for k in train[0]}
    norms = series["train/grad_norm"]
    q = max(1, len(norms) // 6)  # first and last sixth of the run (25 steps of 150)
    acc_key = next(k for k in run["final"] if k.startswith("eval/") and k.endswith("/accuracy"))
    before = next(r[acc_key] for r in run["records"] if acc_key in r)
    algo = run["config"]["algorithm"]
    return {
        "run": run["label"],
        "algorithm": algo["name"] + (f"-{algo['loss']}" if "loss" in algo else ""),
        "lr": algo["lr"],
        "steps": len(train),
        "heldout_acc_before": before,
        "heldout_acc_after": run["final"][acc_key],
        "reward_first": _mean(series["rollout/reward_mean"][:q]),
        "reward_last": _mean(series["rollout/reward_mean"][-q:]),
        "grad_norm_first": statistics.median(norms[:q]),
        "grad_norm_last": statistics.median(norms[-q:]),
        "grad_norm_last_over_first": statistics.median(norms[-q:]) / statistics.median(norms[:q]),
        # smoothness: median absolute step-to-step change relative to the median norm
        "grad_norm_jitter": statistics.median([abs(b - a) for a, b in zip(norms, norms[1:], strict=False)])
        / statistics.median(norms),
        "grad_norm_max_over_median": max(norms) / statistics.median(norms),
        "grad_spikes": train[-1].get("train/grad_spikes_total", float("nan")),
        "grad_norm_qkv_last": statistics.median(series.get("train/grad_norm_qkv", [float("nan")])[-q:]),
        "entropy_first": _mean(series["train/entropy"][:q]),
        "entropy_last": _mean(series["train/entropy"][-q:]),
        "sampled_prob_last": _mean(series["train/sampled_prob"][-q:]),
        "kl_ref_last": _mean(series.get("train/kl_ref", [float("nan")])[-q:]),
        "directionality_mean": _mean(series.get("train/directionality", [])),
    }


def write_table(rows: list[dict], out: Path) -> None:
    with (out / "summary.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    cols = [
        ("algorithm", "algorithm"),
        ("lr", "lr"),
        ("heldout_acc_before", "held-out acc before"),
        ("heldout_acc_after", "after"),
        ("reward_first", "reward first 25"),
        ("reward_last", "last 25"),
        ("grad_norm_first", "grad norm first 25"),
        ("grad_norm_last", "last 25"),
        ("grad_norm_last_over_first", "last / first"),
        ("grad_norm_jitter", "jitter"),
        ("grad_norm_max_over_median", "max / median"),
        ("grad_spikes", "spikes"),
        ("entropy_first", "entropy first"),
        ("entropy_last", "last"),
        ("sampled_prob_last", "p(sampled) last"),
        ("kl_ref_last", "KL(ref) last"),
    ]
    lines = ["| " + " | ".join(h for _, h in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [f"{r[k]:.3g}" if isinstance(r[k], float) else str(r[k]) for k, _ in cols]
        lines.append("| " + " | ".join(cells) + " |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")


def plot_curves(runs: list[dict], out: Path, smooth: int = 5) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("train/grad_norm", "gradient norm (all parameters, log)"),
        ("rollout/reward_mean", "rollout reward"),
        ("train/entropy", "token entropy (nats)"),
        ("train/sampled_prob", "sampled-token probability"),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4))
    for run in runs:
        steps = [r["step"] for r in run["train"]]
        for ax, (key, title) in zip(axes, panels, strict=True):
            ys = [r.get(key, float("nan")) for r in run["train"]]
            sm = [_mean(ys[max(0, i - smooth + 1) : i + 1]) for i in range(len(ys))]
            ax.plot(steps, sm, label=run["label"], linewidth=1.4)
            ax.set_title(title)
            ax.set_xlabel("step")
    axes[0].set_yscale("log")
    axes[-1].legend(fontsize=8)
    fig.suptitle(f"CPU stability comparison ({smooth}-step trailing mean)")
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)


# ----------------------------------------------------------------------------------------------- grid

# paper-notes 6.1: the only recovered numbers, presumably the best LCO entries; model and method not stated
PAPER = [
    ("math", "math500", "MATH500 pass@1", 73.2, "accuracy"),
    ("math", "amc23", "AMC23 pass@1", 55.5, "accuracy"),
    ("math", "minerva_math", "Minerva Math avg@1", 24.26, "accuracy"),
    ("math", "mmlu", "MMLU accuracy", 72.11, "accuracy"),
    ("math", "mmlu_redux", "MMLU-Redux accuracy", 76.71, "accuracy"),
    ("reading", "qa_feedback", "QA-Feedback relevance (a reward-model score; ours: token F1)", 44.9, "f1"),
    ("instruct", "alpaca_eval", "AlpacaEval 2.0 win rate (GPT-4 judge; ours: local-judge proxy)", 29.05,
     "local_judge_win_rate"),
]  # fmt: skip
HEADLINES = ("accuracy", "exact_match", "prompt_strict", "local_judge_win_rate")


def variant(config: dict) -> str:
    algo = config["algorithm"]
    return algo["name"] + (f"_{algo['loss']}" if algo["name"] == "lco" and "loss" in algo else "")


def _std(xs: list[float]) -> float:
    return statistics.stdev(xs) if len(xs) > 1 else 0.0


def grid_rows(runs: list[dict]) -> list[dict]:
    """One row per (task, model, algorithm variant, benchmark): held-out score before and after (mean, std over
    seeds) and the stability figures of the group's runs."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for run in runs:
        cfg = run["config"]
        groups.setdefault((cfg["task"]["name"], cfg["model"]["name"], variant(cfg)), []).append(run)
    rows = []
    for (task, model, algo), members in sorted(groups.items()):
        keys = sorted(k for k in members[0]["final"] if k.startswith("eval/") and k.rsplit("/", 1)[1] in HEADLINES)
        stab = []
        for run in members:
            train = run["train"]
            third = max(1, len(train) // 3)
            reward = [r["rollout/reward_mean"] for r in train]
            norms = [r["train/grad_norm"] for r in train]
            stab.append({
                "reward_first": _mean(reward[:third]),
                "reward_last": _mean(reward[-third:]),
                "grad_norm_last": statistics.median(norms[-third:]),
                # a run whose gradient was always zero (e.g. GRPO groups that all got the same reward) has no ratio
                "grad_norm_max_over_median": max(norms) / statistics.median(norms) if any(norms) else float("nan"),
                "grad_spikes": train[-1].get("train/grad_spikes_total", 0.0),
                "nonfinite_steps": train[-1].get("train/nonfinite_steps_total", 0.0),
                "entropy_last": _mean([r["train/entropy"] for r in train][-third:]),
            })  # fmt: skip
        for key in keys:
            after = [r["final"][key] for r in members if key in r["final"]]
            before = [r["final"].get(f"{key}@before", float("nan")) for r in members]
            rows.append({
                "task": task, "model": model, "algorithm": algo, "benchmark": key.split("/")[2],
                "metric": key.rsplit("/", 1)[1], "seeds": len(after),
                "before_mean": _mean(before), "after_mean": _mean(after), "after_std": _std(after),
                **{k: _mean([s[k] for s in stab]) for k in stab[0]},
            })  # fmt: skip
    return rows


def plot_grid(runs: list[dict], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("rollout/reward_mean", "rollout reward"),
        ("train/grad_norm", "gradient norm (symlog)"),
        ("train/entropy", "token entropy (nats)"),
        ("train/sampled_prob", "sampled-token probability"),
    ]
    written = []
    for task in sorted({r["config"]["task"]["name"] for r in runs}):
        fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4))
        by_algo: dict[str, list[dict]] = {}
        for r in runs:
            if r["config"]["task"]["name"] == task:
                by_algo.setdefault(f"{r['config']['model']['name']} {variant(r['config'])}", []).append(r)
        for label, members in sorted(by_algo.items()):
            steps = sorted({t["step"] for r in members for t in r["train"]})
            for ax, (key, title) in zip(axes, panels, strict=True):
                ys = [
                    _mean([t[key] for r in members for t in r["train"] if t["step"] == s and key in t]) for s in steps
                ]
                ax.plot(steps, ys, label=f"{label} (n={len(members)})", linewidth=1.4)
                ax.set_title(title)
                ax.set_xlabel("step")
        axes[1].set_yscale("symlog", linthresh=1e-3)  # all-zero runs (GRPO with equal rewards) stay plottable
        axes[-1].legend(fontsize=7)
        fig.suptitle(f"{task}: mean over seeds")
        fig.tight_layout()
        path = out / f"curves_{task}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def _fmt(x: float) -> str:
    return "n/a" if x != x else f"{x:.3f}"


def grid_markdown(rows: list[dict], scale: str, grid: str, command: str) -> str:
    lines = [
        f"# `{grid}`: LCO vs PPO vs GRPO, {scale} scale",
        "",
        f"Made with `{command}` on {time.strftime('%Y-%m-%d')}. Scale `{scale}`: "
        + (
            "the tiny 3.2M-parameter model (short SFT warm-up), offline data, a few RL steps per run on a 2-core "
            "CPU. At this scale the numbers check the pipeline end to end; they are far too small to rank the "
            "methods."
            if scale == "cpu"
            else "the paper settings of conf/experiment/paper/ on GPUs."
        ),
        "",
        "## Held-out scores (ours; mean ± std over seeds) and stability",
        "",
        "| task | model | algorithm | benchmark | metric | seeds | before | after | reward first → last third | "
        "grad norm (last third) | max / median | spikes | non-finite |",
        "|" + "---|" * 13,
    ]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['model']} | {r['algorithm']} | {r['benchmark']} | {r['metric']} | {r['seeds']} | "
            f"{_fmt(r['before_mean'])} | {_fmt(r['after_mean'])} ± {_fmt(r['after_std'])} | "
            f"{_fmt(r['reward_first'])} → {_fmt(r['reward_last'])} | {_fmt(r['grad_norm_last'])} | "
            f"{_fmt(r['grad_norm_max_over_median'])} | {r['grad_spikes']:.1f} | {r['nonfinite_steps']:.1f} |"
        )
    lines += [
        "",
        "## Beside the paper's reported numbers",
        "",
        "Paper column: paper-notes 6.1, the only numbers recovered (presumably the best LCO entries; model not "
        "stated; arxivlens also quotes 61.40 on MATH500 for Qwen-2.5-3B). Ours: the best algorithm of this grid on "
        "the same benchmark, or a dash where this grid did not run it.",
        "",
        f"| benchmark | paper (LCO, model unknown) | ours ({scale} scale) |",
        "|---|---|---|",
    ]
    for task, bench, label, value, metric in PAPER:
        ours = [r for r in rows if r["task"] == task and r["benchmark"] == bench and r["metric"] == metric]
        best = max(ours, key=lambda r: r["after_mean"], default=None)
        cell = "—" if best is None else f"{100 * best['after_mean']:.1f} ({best['algorithm']}, {best['model']})"
        lines.append(f"| {label} | {value} | {cell} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------- peer

# reference/peer-baseline.md: TRL 1.16 on the same work, one seed per run (its runs 3 and 2)
PEER_TRL = [
    {"label": "TRL GRPO (peer run 3, grad ckpt off)", "lr": 5e-5, "before": 0.080, "after": 0.125,
     "reward_first": 0.228, "reward_last": 0.223, "wall_s": 349.8, "step_s": 0.608, "collapsed": "no"},
    {"label": "TRL GRPO (peer run 2, from run 1's SFT)", "lr": 3e-4, "before": 0.070, "after": 0.025,
     "reward_first": 0.136, "reward_last": 0.014, "wall_s": float("nan"), "step_s": 0.637, "collapsed": "yes"},
]  # fmt: skip
PEER_BAR = 0.25  # issue 7: twice TRL's best held-out accuracy
PEER_WALL_S = 349.8  # TRL's whole pipeline (data, evaluations, 150 s SFT, 300 GRPO steps), its run 3
COLLAPSE_RATIO = 0.5  # a run has collapsed when accuracy or reward ends below half of where it started
EDGE_STEPS = 30  # reward "first" and "last" are means over this many steps, as the peer's 10-step logs


def peer_run(run: dict, heldout: str) -> dict:
    """One run's figures for the peer table. Collapse: held-out accuracy after RL below COLLAPSE_RATIO x its
    value after SFT, or the train reward of the last EDGE_STEPS steps below COLLAPSE_RATIO x the first's."""
    final, train = run["final"], run["train"]
    key = f"eval/math/{heldout}/accuracy"
    warm = next((r for r in run["records"] if "warmup/cached" in r), {})
    sft_s = warm.get("warmup/time_s", float("nan"))
    run_s = final.get("perf/time_run_s", float("nan"))
    rl_s = run_s - (sft_s if warm.get("warmup/cached") == 0.0 else 0.0)  # less the SFT, if this process trained it
    reward = [r["rollout/reward_mean"] for r in train]
    before, after = final[f"{key}@before"], final[key]
    first, last = _mean(reward[:EDGE_STEPS]), _mean(reward[-EDGE_STEPS:])
    return {
        "before": before, "after": after, "val_after": final.get(f"eval/math/{heldout}_val/accuracy", float("nan")),
        "reward_first": first, "reward_last": last,
        "sft_s": sft_s, "rl_s": rl_s, "wall_s": sft_s + rl_s,
        "step_s": statistics.median(r["perf/time_step_s"] for r in train),
        "grad_norm_median": statistics.median(r["train/grad_norm"] for r in train),
        "collapsed": after < COLLAPSE_RATIO * before or last < COLLAPSE_RATIO * first,
    }  # fmt: skip


def peer_variant(config: dict) -> str:
    """The algorithm variant, with a non-default Adam epsilon named so such runs never pool with the grid's."""
    eps = config["algorithm"].get("adam_eps", 1e-8)
    return variant(config) + ("" if eps == 1e-8 else f" (adam_eps {eps:g})")


def peer_run_dirs(root: Path) -> list[Path]:
    """Finished runs below ``root``, leaving out the warm-up-only runs of sweeps/peer/run_grid.sh (``warmup/``)."""
    return [d for d in find_runs(root) if "warmup" not in d.relative_to(root).parts]


def peer_rows(runs: list[dict], heldout: str = "arithmetic") -> list[dict]:
    """One row per (algorithm variant, learning rate): mean and std over seeds."""
    groups: dict[tuple[str, float], list[dict]] = {}
    for run in runs:
        groups.setdefault((peer_variant(run["config"]), run["config"]["algorithm"]["lr"]), []).append(
            peer_run(run, heldout)
        )
    rows = []
    for (algo, lr), members in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        after = [m["after"] for m in members]
        row = {"algorithm": algo, "lr": lr, "seeds": len(members), "after_mean": _mean(after), "after_std": _std(after)}
        for k in ("before", "val_after", "reward_first", "reward_last", "sft_s", "rl_s", "wall_s", "step_s",
                  "grad_norm_median"):  # fmt: skip
            row[k] = _mean([m[k] for m in members])
        row["collapsed"] = sum(m["collapsed"] for m in members)
        rows.append(row)
    return rows


def peer_markdown(rows: list[dict], command: str, timing_note: str) -> str:
    lines = [
        "# lco_exp vs TRL on tiny-model addition (issue 7)",
        "",
        f"Made with `{command}` on {time.strftime('%Y-%m-%d')}; the work is `experiment=peer_addition`, set up as "
        "reference/peer-baseline.md describes TRL's. Held-out: greedy accuracy on 200 addition problems whose "
        "expressions never occur in training, graded by the first number in the output (the peer's rule).",
        "",
        "| algorithm | lr | seeds | held-out after SFT | after RL (mean ± std) | collapsed | train reward first → "
        f"last {EDGE_STEPS} steps | SFT s | RL stage s | wall s | s / RL step | median grad norm |",
        "|" + "---|" * 12,
    ]
    for r in rows:
        collapsed = f"yes ({r['collapsed']}/{r['seeds']})" if r["collapsed"] else "no"
        lines.append(
            f"| {r['algorithm']} | {r['lr']:g} | {r['seeds']} | {_fmt(r['before'])} | "
            f"{_fmt(r['after_mean'])} ± {_fmt(r['after_std'])} | {collapsed} | "
            f"{_fmt(r['reward_first'])} → {_fmt(r['reward_last'])} | {r['sft_s']:.0f} | {r['rl_s']:.0f} | "
            f"{r['wall_s']:.0f} | {r['step_s']:.3f} | {r['grad_norm_median']:.3g} |"
        )
    for p in PEER_TRL:
        wall = "n/a" if p["wall_s"] != p["wall_s"] else f"{p['wall_s']:.0f}"
        lines.append(
            f"| {p['label']} | {p['lr']:g} | 1 | {p['before']:.3f} | {p['after']:.3f} | {p['collapsed']} | "
            f"{p['reward_first']:.3f} → {p['reward_last']:.3f} (10-step logs) | 150 | – | {wall} | "
            f"{p['step_s']:.3f} | – |"
        )
    lco = [r for r in rows if r["algorithm"].startswith("lco") and "adam_eps" not in r["algorithm"]]  # the grid's
    lines += [
        "",
        f"Collapsed: accuracy after RL below {COLLAPSE_RATIO:g} x after SFT, or the train reward of the last "
        f"{EDGE_STEPS} steps below {COLLAPSE_RATIO:g} x the first {EDGE_STEPS} (count of seeds). Wall s = the "
        "seed's SFT warm-up + the RL process (data, RL steps, four evaluations of two 200-row sets). " + timing_note,
        "",
    ]
    if lco:
        default_lr = min(r["lr"] for r in lco)
        best = max((r for r in lco if r["lr"] == default_lr), key=lambda r: r["after_mean"])
        high = [r for r in lco if r["lr"] == 3e-4]
        lines.append(
            f"Bar (issue 7): LCO's best variant at lr {default_lr:g} is {best['algorithm']} with "
            f"{_fmt(best['after_mean'])} ± {_fmt(best['after_std'])} (bar {PEER_BAR}: "
            f"{'met' if best['after_mean'] >= PEER_BAR else 'not met'}), wall {best['wall_s']:.0f} s (TRL "
            f"{PEER_WALL_S:.0f} s). At lr 3e-4: "
            + ", ".join(f"{r['algorithm']} {'collapsed' if r['collapsed'] else 'no collapse'}" for r in high)
            + "."
        )
    return "\n".join(lines) + "\n"


def plot_peer(runs: list[dict], out: Path, smooth: int = 10) -> Path:
    """Reward and gradient norm per algorithm (mean over seeds, trailing mean), one row per learning rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lrs = sorted({r["config"]["algorithm"]["lr"] for r in runs})
    fig, axes = plt.subplots(len(lrs), 2, figsize=(12, 3.8 * len(lrs)), squeeze=False)
    for row, lr in zip(axes, lrs, strict=True):
        by_algo: dict[str, list[dict]] = {}
        for r in runs:
            if r["config"]["algorithm"]["lr"] == lr:
                by_algo.setdefault(peer_variant(r["config"]), []).append(r)
        for algo, members in sorted(by_algo.items()):
            steps = sorted({t["step"] for r in members for t in r["train"]})
            for ax, key in zip(row, ("rollout/reward_mean", "train/grad_norm"), strict=True):
                ys = [_mean([t[key] for r in members for t in r["train"] if t["step"] == s]) for s in steps]
                sm = [_mean(ys[max(0, i - smooth + 1) : i + 1]) for i in range(len(ys))]
                ax.plot(steps, sm, label=f"{algo} (n={len(members)})", linewidth=1.3)
        row[0].set_title(f"train reward, lr {lr:g}")
        row[1].set_title(f"gradient norm (all parameters), lr {lr:g}")
        row[1].set_yscale("symlog", linthresh=1e-3)
        for ax in row:
            ax.set_xlabel("RL step")
        row[0].legend(fontsize=8)
    fig.suptitle(f"peer_addition: mean over seeds, {smooth}-step trailing mean")
    fig.tight_layout()
    path = out / "curves.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def load_wandb_runs(path: str, group: str, api=None) -> list[dict]:
    """Finished runs of a W&B group (``path`` = entity/project) in the shape of ``load_run``: config, summary as
    the final metrics, full history as the records. For grids whose run directories are elsewhere."""
    if api is None:
        import wandb

        api = wandb.Api()
    runs = []
    for r in api.runs(path, filters={"group": group, "jobType": "train", "state": "finished"}):
        records = [dict(row) for row in r.scan_history()]
        final = {k: v for k, v in dict(r.summary).items() if isinstance(v, int | float) and not k.startswith("_")}
        train = [x for x in records if x.get("train/grad_norm") is not None]
        runs.append({"label": r.name, "config": dict(r.config), "final": final, "train": train, "records": records})
    return runs


def write_csv(rows: list[dict], path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def find_runs(grid: Path) -> list[Path]:
    return sorted(p.parent for p in grid.rglob("final_metrics.json") if (p.parent / "config_resolved.json").is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["stability", "grid", "peer"])
    parser.add_argument("runs", type=Path, help="stability: a directory of finished runs; grid: a grid directory")
    parser.add_argument("--wandb", default=None, help="grid: also read finished runs of W&B entity/project ...")
    parser.add_argument("--group", default=None, help="... in this W&B group (the experiment name)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--scale", choices=["cpu", "paper"], default="cpu", help="grid: the scale the runs were made at"
    )
    parser.add_argument(
        "--timing-note", default="", help="peer: how the timings were taken (e.g. two runs sharing the CPU)"
    )
    args = parser.parse_args()
    if args.kind == "peer":
        runs = [load_run(d) for d in peer_run_dirs(args.runs)]
        if not runs:
            parser.error(f"{args.runs}: no finished runs below it (final_metrics.json + config_resolved.json)")
        out = args.out or Path("results/peer_addition")
        out.mkdir(parents=True, exist_ok=True)
        rows = peer_rows(runs)
        write_csv(rows, out / "summary.csv")
        (out / "summary.md").write_text(peer_markdown(rows, "bash sweeps/peer/run_grid.sh", args.timing_note))
        plot_peer(runs, out)
        print((out / "summary.md").read_text())
        return
    if args.kind == "grid":
        runs = [load_run(d) for d in find_runs(args.runs)] if args.runs.is_dir() else []
        if args.wandb:
            if not args.group:
                parser.error("--wandb needs --group")
            runs += load_wandb_runs(args.wandb, args.group)
        if not runs:
            parser.error(f"{args.runs}: no finished runs below it (final_metrics.json + config_resolved.json)")
        out = args.out or Path("results") / args.runs.name
        out.mkdir(parents=True, exist_ok=True)
        rows = grid_rows(runs)
        write_csv(rows, out / "summary.csv")
        command = f"bash sweeps/reproduce_paper.sh {args.scale}"
        (out / "README.md").write_text(grid_markdown(rows, args.scale, out.name, command))
        plot_grid(runs, out)
        print((out / "README.md").read_text())
        return
    dirs = sorted(d for d in args.runs.iterdir() if (d / "final_metrics.json").is_file())
    if not dirs:
        parser.error(f"{args.runs}: no finished runs (sub-directories with final_metrics.json)")
    runs = [load_run(d) for d in dirs]
    out = args.out or Path("results/stability")
    out.mkdir(parents=True, exist_ok=True)
    rows = [stability_row(r) for r in runs]
    write_table(rows, out)
    plot_curves(runs, out)
    print((out / "summary.md").read_text())


if __name__ == "__main__":
    main()
