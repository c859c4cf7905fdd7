"""The reproduction layer: paper experiment files cite their sources, sweep presets and W&B sweep specs compose,
the SLURM launcher config resolves, the dashboard builds offline, the grid report aggregates correctly, and the
reproduce script skips finished runs."""

from __future__ import annotations

import gzip
import json
import os
import re
import socket
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from lco_exp import dashboard, report
from lco_exp.config import ExperimentConfig
from tests.conftest import CONF_DIR, compose_cfg
from tests.test_train_smoke import documented, glossary_keys

ROOT = CONF_DIR.parent
PAPER = sorted((CONF_DIR / "experiment" / "paper").glob("*.yaml"))
QA_FEEDBACK_FILES = ["task.train.name=train.json", "task.benchmarks.qa_feedback.name=test.json"]


def test_the_paper_grid_is_two_models_by_three_tasks_by_three_algorithms():
    names = {p.stem for p in PAPER}
    assert names == {f"{m}_{t}_{a}" for m in ("qwen2.5-3b", "llama3.2-3b") for t in ("math", "reading", "instruct")
                     for a in ("lco", "ppo", "grpo")}  # fmt: skip


@pytest.mark.parametrize("path", PAPER, ids=lambda p: p.stem)
def test_paper_experiment_composes_and_every_value_names_its_source(path):
    extra = QA_FEEDBACK_FILES if "_reading_" in path.stem else []
    exp = OmegaConf.to_object(compose_cfg([f"experiment=paper/{path.stem}", *extra]))
    assert isinstance(exp, ExperimentConfig)
    model, task, algo = path.stem.split("_")
    assert exp.algorithm.name == algo and exp.task.name == task and exp.model.name.startswith(model)
    assert exp.hardware.device.value == "cuda"
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if re.match(r"^\s*[\w.]+:\s*\S", line) and not line.lstrip().startswith("name:"):
            assert re.search(r"#.*(paper-notes|assumed)", line), f"{path.name}:{lineno} has no source: {line!r}"


@pytest.mark.parametrize("preset", ["seeds", "beta", "lr", "lco_loss"])
def test_multirun_presets_set_sweeper_params(preset):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"+sweep={preset}"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    assert len(params) == 1
    (key, values), *_ = params.items()
    assert len(str(values).split(",")) >= 3
    compose_cfg([f"{key}={str(values).split(',')[0]}"])  # each swept key is a real override


def test_slurm_launcher_config_resolves_to_submitit():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["hydra/launcher=slurm"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher") and cfg.hydra.launcher.gpus_per_node == 1


@pytest.mark.parametrize("spec", sorted((ROOT / "sweeps").glob("wandb_*.yaml")), ids=lambda p: p.stem)
def test_wandb_sweep_specs_call_the_entry_point_with_hydra_overrides(spec):
    doc = yaml.safe_load(spec.read_text())
    assert doc["command"][-3:] == ["-m", "lco_exp.train", "${args_no_hyphens}"]
    overrides = []
    for key, p in doc["parameters"].items():
        value = p.get("value", (p.get("values") or [p.get("min")])[0])
        overrides.append(f"{key}={value}")
    exp = OmegaConf.to_object(compose_cfg(overrides))  # what one agent run composes
    assert isinstance(exp, ExperimentConfig)
    assert doc["metric"]["name"].startswith("eval/")


def test_dashboard_builds_without_network_and_plots_documented_metrics(monkeypatch, capsys):
    def refuse(*a, **k):
        raise OSError("network use")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    workspace = dashboard.build_workspace("ent", "proj", "quickstart")
    report_ = dashboard.build_report("ent", "proj", "quickstart", ["eval/math/arithmetic/accuracy"])
    assert str(workspace.runset_settings.filters) == """Metric("Group") == 'quickstart'"""  # only this group's runs
    assert len(workspace.sections[0].panels) == len(dashboard.TRAINING_PANELS)
    assert len(report_.blocks) == 4
    glossary = glossary_keys()
    for keys in dashboard.TRAINING_PANELS.values():
        for key in keys:
            assert documented(key, glossary), f"dashboard plots undocumented metric {key}"
    dashboard.main(["--entity", "e", "--group", "g", "--report", "--dry-run"])
    assert "Workspace" in capsys.readouterr().out


def fake_run(root: Path, task: str, algo: str, loss: str | None, seed: int, score: float, norms: list[float]) -> None:
    d = root / task / f"{algo}{'_' + loss if loss else ''}" / f"seed{seed}"
    d.mkdir(parents=True)
    algorithm = {"name": algo, **({"loss": loss} if loss else {})}
    (d / "config_resolved.json").write_text(
        json.dumps({"algorithm": algorithm, "task": {"name": task}, "model": {"name": "tiny"}, "seed": seed})
    )
    key = f"eval/{task}/bench/accuracy"
    (d / "final_metrics.json").write_text(json.dumps({key: score, f"{key}@before": 0.1}))
    lines = [{"step": 0, key: 0.1}]
    for i, n in enumerate(norms, start=1):
        spikes = float(sum(x > 5 for x in norms[:i]))  # cumulative, as logged
        lines.append({"step": i, "train/grad_norm": n, "rollout/reward_mean": i / 10, "train/entropy": 1.0,
                      "train/sampled_prob": 0.5, "train/grad_spikes_total": spikes})  # fmt: skip
    lines.append({"step": len(norms), key: score})
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))


def test_grid_report_aggregates_over_seeds_and_keeps_paper_and_ours_apart(tmp_path):
    grid = tmp_path / "grid"
    fake_run(grid, "math", "lco", "kld", 0, 0.5, [1.0, 1.0, 1.0])
    fake_run(grid, "math", "lco", "kld", 1, 0.7, [1.0, 2.0, 1.0])
    fake_run(grid, "math", "grpo", None, 0, 0.2, [1.0, 9.0, 1.0])
    fake_run(grid, "reading", "ppo", None, 0, 0.0, [0.0, 0.0, 0.0])  # a run whose gradient was always zero
    runs = [report.load_run(d) for d in report.find_runs(grid)]
    rows = {r["algorithm"]: r for r in report.grid_rows(runs)}
    assert rows["ppo"]["grad_norm_max_over_median"] != rows["ppo"]["grad_norm_max_over_median"]  # nan, not a crash
    assert rows["lco_kld"]["seeds"] == 2 and rows["lco_kld"]["after_mean"] == pytest.approx(0.6)
    assert rows["lco_kld"]["after_std"] == pytest.approx(0.1414, abs=1e-4)
    assert rows["grpo"]["grad_norm_max_over_median"] == pytest.approx(9.0) and rows["grpo"]["grad_spikes"] == 1.0
    text = report.grid_markdown(
        [r for r in rows.values() if r["task"] == "math"], "cpu", "grid", "bash sweeps/reproduce_paper.sh cpu"
    )
    assert "| MATH500 pass@1 | 73.2 | — |" in text  # the paper's number, and no claim of ours beside it
    assert "cpu scale" in text and "0.600 ± 0.141" in text
    assert [p.name for p in report.plot_grid(runs, tmp_path)] == ["curves_math.png", "curves_reading.png"]


def python_shim(tmp_path: Path) -> Path:
    """A ``python`` that only records its arguments in tmp_path/calls.txt, for running sweep scripts dry."""
    shim = tmp_path / "bin" / "python"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "calls.txt"}\n')
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    return shim


def test_reproduce_script_skips_finished_runs_and_ends_with_the_report(tmp_path):
    shim = python_shim(tmp_path)
    work = tmp_path / "work"
    for task in ("math", "reading", "instruct"):
        for label in ("lco_kld", "lco_mse", "lco_lch", "ppo", "grpo"):
            for seed in (0, 1):
                (work / "outputs/reproduce_cpu" / task / label / f"seed{seed}" / "final_policy").mkdir(parents=True)
    (work / "outputs/reproduce_cpu/reading/grpo/seed1/final_policy").rmdir()  # one unfinished run
    env = {**os.environ, "PATH": f"{shim.parent}:{os.environ['PATH']}"}
    script = ROOT / "sweeps" / "reproduce_paper.sh"
    done = subprocess.run(
        ["bash", str(script), "cpu", "logger=none"], cwd=work, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    assert len(calls) == 2
    assert "hydra.run.dir=outputs/reproduce_cpu/reading/grpo/seed1" in calls[0] and "seed=1" in calls[0]
    assert "experiment=cpu_grid" in calls[0] and calls[0].endswith("logger=none")
    assert calls[1] == "-m lco_exp.report grid outputs/reproduce_cpu --out results/reproduce_cpu --scale cpu"
    bad = subprocess.run(["bash", str(script), "laptop"], cwd=work, env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown scale" in bad.stderr


def test_grid_report_reads_finished_runs_from_the_wandb_api(tmp_path):
    fake_run(tmp_path, "math", "lco", "kld", 0, 0.5, [1.0, 2.0, 1.0])
    local = report.load_run(tmp_path / "math" / "lco_kld" / "seed0")

    class FakeRun:
        name, config, summary = "r0", local["config"], {**local["final"], "_step": 3, "note": "text"}

        def scan_history(self):
            return iter(local["records"])

    class FakeApi:
        def runs(self, path, filters):
            assert path == "ent/proj" and filters["group"] == "g" and filters["state"] == "finished"
            return [FakeRun()]

    (remote,) = report.load_wandb_runs("ent/proj", "g", api=FakeApi())
    assert remote["final"] == local["final"] and remote["train"] == local["train"]
    assert report.grid_rows([remote]) == report.grid_rows([local])


def fake_peer_run(root: Path, algo: str, lr: float, seed: int, before: float, after: float, rewards: list[float],
                  cached: bool = True, **algo_extra) -> None:  # fmt: skip
    d = root / algo / f"lr{lr:g}" / f"seed{seed}{'_'.join(map(str, algo_extra.values()))}"
    d.mkdir(parents=True)
    name, _, loss = algo.partition("_")
    algorithm = {"name": name, "lr": lr, **({"loss": loss} if loss else {}), **algo_extra}
    (d / "config_resolved.json").write_text(json.dumps({"algorithm": algorithm, "task": {"name": "math"}}))
    key = "eval/math/arithmetic/accuracy"
    (d / "final_metrics.json").write_text(
        json.dumps({key: after, f"{key}@before": before, "perf/time_run_s": 200.0 if cached else 350.0})
    )
    lines = [{"step": 0, "warmup/time_s": 150.0, "warmup/cached": 1.0 if cached else 0.0}]
    lines += [{"step": i, "rollout/reward_mean": r, "train/grad_norm": 1.0, "perf/time_step_s": 0.5 + i / 1000}
              for i, r in enumerate(rewards, start=1)]  # fmt: skip
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))


def test_peer_report_flags_collapse_and_times_the_whole_pipeline(tmp_path):
    runs_dir = tmp_path / "peer"
    steady = [0.3] * 60
    fake_peer_run(runs_dir, "lco_kld", 5e-5, 0, 0.14, 0.30, steady)
    fake_peer_run(runs_dir, "lco_kld", 5e-5, 1, 0.12, 0.20, steady, cached=False)  # this run trained the warm-up
    fake_peer_run(runs_dir, "grpo", 3e-4, 0, 0.14, 0.15, [0.3] * 30 + [0.1] * 30)  # reward fell below half
    fake_peer_run(runs_dir, "grpo", 3e-4, 1, 0.14, 0.05, steady)  # accuracy fell below half
    fake_peer_run(runs_dir, "ppo", 3e-4, 0, 0.14, 0.08, steady)  # lower, but not below half
    fake_peer_run(runs_dir / "warmup", "grpo", 5e-5, 0, 0.14, 0.14, [0.3], cached=False)  # warm-up only: no row
    plain = next(runs_dir.glob("lco_kld/*/seed1")) / "metrics.jsonl"  # committed runs keep their records gzipped
    plain.with_suffix(".jsonl.gz").write_bytes(gzip.compress(plain.read_bytes()))
    plain.unlink()
    fake_peer_run(runs_dir, "lco_kld", 5e-5, 0, 0.14, 0.9, steady, adam_eps=1e-3)  # a diagnostic: its own row
    runs = [report.load_run(d) for d in report.peer_run_dirs(runs_dir)]
    assert len(runs) == 6
    rows = {(r["algorithm"], r["lr"]): r for r in report.peer_rows(runs)}
    kld, grpo, ppo = rows[("lco_kld", 5e-5)], rows[("grpo", 3e-4)], rows[("ppo", 3e-4)]
    assert rows[("lco_kld (adam_eps 0.001)", 5e-5)]["after_mean"] == 0.9
    assert kld["after_mean"] == pytest.approx(0.25) and kld["after_std"] == pytest.approx(0.0707, abs=1e-4)
    assert kld["collapsed"] == 0 and grpo["collapsed"] == 2 and ppo["collapsed"] == 0
    # wall = the seed's SFT + the RL process, whether or not the process trained the warm-up itself
    assert kld["wall_s"] == pytest.approx(350.0) and kld["rl_s"] == pytest.approx(200.0)
    assert kld["step_s"] == pytest.approx(0.5305)  # median of 0.501 ... 0.560
    del rows[("lco_kld (adam_eps 0.001)", 5e-5)]
    text = report.peer_markdown(list(rows.values()), "bash sweeps/peer/run_grid.sh", "")
    assert "| grpo | 0.0003 | 2 | 0.140 | 0.100 ± 0.071 | yes (2/2) |" in text
    assert "TRL GRPO (peer run 3" in text and "lco_kld with 0.250 ± 0.071 (bar 0.25: met)" in text
    assert report.plot_peer(runs, tmp_path).is_file()


def test_peer_grid_script_warms_each_seed_alone_then_runs_the_rest_and_reports(tmp_path):
    shim = python_shim(tmp_path)
    work = tmp_path / "work"
    (work / "outputs/peer_addition/grpo/lr3e-4/seed1/final_policy").mkdir(parents=True)  # finished: skipped
    env = {**os.environ, "PATH": f"{shim.parent}:{os.environ['PATH']}", "SEEDS": "0 1", "JOBS": "2",
           "VARIANTS": "lco_kld grpo"}  # fmt: skip
    script = ROOT / "sweeps" / "peer" / "run_grid.sh"
    done = subprocess.run(["bash", str(script), "logger=none"], cwd=work, env=env, capture_output=True, text=True)
    assert done.returncode == 0 and "FAILED" not in done.stdout, done.stdout + done.stderr
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    warm, runs, last = calls[:2], calls[2:-1], calls[-1]
    assert all("steps=1" in c and f"warmup/seed{s}" in c for s, c in enumerate(warm))
    dirs = {next(a for a in c.split() if a.startswith("hydra.run.dir=")).split("=", 1)[1] for c in runs}
    assert len(runs) == 7 and "outputs/peer_addition/grpo/lr3e-4/seed1" not in dirs
    assert "outputs/peer_addition/lco_kld/lr5e-5/seed0" in dirs
    assert all("hardware.num_threads=1" in c and c.endswith("logger=none") for c in runs)
    assert last == "-m lco_exp.report peer outputs/peer_addition --out results/peer_addition"


@pytest.mark.parametrize("script", sorted((ROOT / "sweeps").rglob("*.sh")), ids=lambda p: p.name)
def test_sweep_scripts_parse(script):
    done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_speed_script_names_the_missing_trl_python(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRL_PYTHON"}
    script = ROOT / "sweeps" / "peer" / "speed.sh"
    done = subprocess.run(["bash", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode != 0 and "TRL_PYTHON" in done.stderr and not (tmp_path / "outputs").exists()
