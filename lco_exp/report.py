"""Summaries of finished runs: ``python -m lco_exp.report stability <runs dir> [--out results/stability]``.

Reads each run directory's ``metrics.jsonl``, ``final_metrics.json`` and ``config_resolved.json`` (what every run
writes, online or not) and writes ``summary.csv``, ``summary.md`` (a Markdown table) and ``curves.png``
(gradient norm, reward, entropy and sampled-token probability against steps, one line per run).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path


def load_run(run_dir: Path) -> dict:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["stability"])
    parser.add_argument("runs", type=Path, help="a directory whose sub-directories are finished runs")
    parser.add_argument("--out", type=Path, default=Path("results/stability"))
    args = parser.parse_args()
    dirs = sorted(d for d in args.runs.iterdir() if (d / "final_metrics.json").is_file())
    if not dirs:
        parser.error(f"{args.runs}: no finished runs (sub-directories with final_metrics.json)")
    runs = [load_run(d) for d in dirs]
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [stability_row(r) for r in runs]
    write_table(rows, args.out)
    plot_curves(runs, args.out)
    print((args.out / "summary.md").read_text())


if __name__ == "__main__":
    main()
