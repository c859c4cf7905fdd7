"""The stability report reads run directories and computes its figures from the logged metrics."""

from __future__ import annotations

import json

import pytest

from lco_exp import report


def fake_run(path, norms, rewards):
    path.mkdir(parents=True)
    records = [{"step": 0, "eval/math/arithmetic/accuracy": 0.5}]
    for i, (g, r) in enumerate(zip(norms, rewards, strict=True), start=1):
        records.append(
            {"step": i, "train/grad_norm": g, "rollout/reward_mean": r, "train/entropy": 1.0, "train/sampled_prob": 0.5}
        )
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (path / "final_metrics.json").write_text(json.dumps({"eval/math/arithmetic/accuracy": 0.75}))
    (path / "config_resolved.json").write_text(json.dumps({"algorithm": {"name": "lco", "loss": "kld", "lr": 1e-5}}))


def test_stability_row_and_outputs(tmp_path):
    norms = [4.0] * 6 + [1.0] * 6 + [2.0] * 6  # first sixth median 4, last sixth median 2
    fake_run(tmp_path / "runs" / "a", norms, [0.0] * 3 + [1.0] * 15)
    run = report.load_run(tmp_path / "runs" / "a")
    row = report.stability_row(run)
    assert row["algorithm"] == "lco-kld" and row["steps"] == 18
    assert row["heldout_acc_before"] == 0.5 and row["heldout_acc_after"] == 0.75
    assert row["grad_norm_last_over_first"] == pytest.approx(0.5)
    assert row["reward_first"] == pytest.approx(0.0) and row["reward_last"] == pytest.approx(1.0)
    assert row["grad_norm_max_over_median"] == pytest.approx(4.0 / 2.0)
    out = tmp_path / "out"
    out.mkdir()
    report.write_table([row], out)
    report.plot_curves([run], out)
    assert "lco-kld" in (out / "summary.md").read_text() and (out / "curves.png").stat().st_size > 0


def test_benchmark_measures_one_variant_in_process():
    """The benchmark's per-variant measurement runs (its figures are for the README, not asserted here)."""
    import argparse

    from lco_exp import bench

    args = argparse.Namespace(
        one="lco_kld", model="tiny", device="cpu", sequences=2, prompt_len=4, response_len=6, repeats=1, threads=0
    )
    row = bench.measure(args)
    assert row["variant"] == "lco_kld" and row["time_s"] > 0 and row["peak_mib"] >= 0 and row["vocab"] > 90
