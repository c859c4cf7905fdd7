"""A W&B workspace (and optionally a report) comparing LCO, PPO and GRPO runs of one group:

    python -m lco_exp.dashboard --entity ENTITY --project lco_exp --group quickstart [--report] [--dry-run]

Runs are those whose W&B group is ``--group`` (the experiment name unless ``logger.group`` was set), grouped by
``algorithm.name`` (mean with a min-max band over seeds). Panels: reward, gradient norm (all parameters and
q/k/v), entropy, sampled-token probability, instability counts, and the final benchmark scores. Building the
objects needs no network (``--dry-run`` prints them); ``save()`` talks to W&B. Uses ``wandb-workspaces``
(optional extra ``dashboards``).
"""

from __future__ import annotations

import argparse

TRAINING_PANELS = {
    "reward": ["rollout/reward_mean"],
    "gradient norm": ["train/grad_norm", "train/grad_norm_qkv"],
    "signed gradient norm": ["train/grad_norm_pos_adv", "train/grad_norm_neg_adv"],
    "entropy": ["train/entropy"],
    "sampled-token probability": ["train/sampled_prob"],
    "instability events (cumulative)": ["train/grad_spikes_total", "train/nonfinite_steps_total"],
    "KL to the reference": ["train/kl_ref"],
}
EVAL_REGEX = r"eval/.*/(accuracy|exact_match|f1|prompt_strict|instruction_strict|local_judge_win_rate)$"


def _line_plots(wr, group_by: str) -> list:
    return [
        wr.LinePlot(
            title=title,
            x="step",
            y=list(keys),
            groupby=group_by,
            groupby_aggfunc="mean",
            groupby_rangefunc="minmax",
            smoothing_factor=0.6,
        )
        for title, keys in TRAINING_PANELS.items()
    ]


def _eval_plot(wr):
    return wr.LinePlot(title="held-out scores", x="step", metric_regex=EVAL_REGEX, groupby="algorithm.name")


def build_workspace(entity: str, project: str, group: str):
    """The workspace object (not saved)."""
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws

    return ws.Workspace(
        entity=entity,
        project=project,
        name=f"lco_exp: {group} (LCO vs PPO vs GRPO)",
        sections=[
            ws.Section(name="training stability", panels=_line_plots(wr, "algorithm.name"), is_open=True),
            ws.Section(
                name="held-out benchmarks",
                panels=[_eval_plot(wr)],
                is_open=True,
            ),
        ],
        settings=ws.WorkspaceSettings(x_axis="step"),
        runset_settings=ws.RunsetSettings(filters=[ws.Metric("Group") == group], groupby=[ws.Config("algorithm.name")]),
    )


def build_report(entity: str, project: str, group: str, scores: list[str]):
    """A report with the same panels and a bar chart of the final ``scores`` (summary keys), not saved."""
    import wandb_workspaces.reports.v2 as wr

    runset = wr.Runset(
        entity=entity, project=project, name=group, filters=f"Group == '{group}'", groupby=["algorithm.name"]
    )
    return wr.Report(
        entity=entity,
        project=project,
        title=f"lco_exp: LCO vs PPO vs GRPO ({group})",
        description="Training stability and held-out scores, grouped by algorithm (mean, min-max over seeds).",
        blocks=[
            wr.H1(text="Training stability"),
            wr.PanelGrid(runsets=[runset], panels=_line_plots(wr, "algorithm.name")),
            wr.H1(text="Held-out benchmarks"),
            wr.PanelGrid(
                runsets=[runset],
                panels=[
                    wr.BarPlot(
                        title="final scores",
                        metrics=[wr.SummaryMetric(k) for k in scores],
                        groupby="algorithm.name",
                        groupby_aggfunc="mean",
                        groupby_rangefunc="minmax",
                    ),
                    _eval_plot(wr),
                ],
            ),
        ],
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lco_exp.dashboard", description=__doc__.split("\n\n")[0])
    parser.add_argument("--entity", required=True)
    parser.add_argument("--project", default="lco_exp")
    parser.add_argument("--group", required=True, help="the W&B group: the experiment name by default")
    parser.add_argument("--report", action="store_true", help="also create a shareable report")
    parser.add_argument(
        "--score",
        action="append",
        default=None,
        help="a final score for the report's bar chart (repeatable); default eval/math/arithmetic/accuracy",
    )
    parser.add_argument("--dry-run", action="store_true", help="build and print the objects; contact nobody")
    args = parser.parse_args(argv)
    built = [build_workspace(args.entity, args.project, args.group)]
    if args.report:
        built.append(
            build_report(args.entity, args.project, args.group, args.score or ["eval/math/arithmetic/accuracy"])
        )
    for obj in built:
        if args.dry_run:
            print(f"{type(obj).__name__}: {obj.name if hasattr(obj, 'name') else obj.title}")
            continue
        obj.save()
        print(f"[lco_exp] saved {type(obj).__name__}: {getattr(obj, 'url', '')}")


if __name__ == "__main__":
    main()
