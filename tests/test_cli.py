"""The real entry points, as a user types them: Hydra main, typing, validation, run directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "disabled"}


def console_script() -> list[str]:
    script = Path(sys.executable).with_name("lco-train")
    if not script.exists():
        script = shutil.which("lco-train")
    if script is None:
        pytest.skip("lco-train is not installed in this environment (pip install -e .)")
    return [str(script)]


@pytest.mark.parametrize("entry", ["console_script", "module"])
def test_entry_point_runs_smoke_from_any_directory(entry, tmp_path):
    cmd = console_script() if entry == "console_script" else [sys.executable, "-m", "lco_exp.train"]
    run_dir = tmp_path / "run"
    out = subprocess.run(
        [*cmd, "experiment=smoke", f"cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "eval/math/arithmetic/accuracy" in out.stdout
    assert json.loads((run_dir / "config_resolved.json").read_text())["algorithm"]["loss"] == "kld"
    assert (run_dir / "final_policy" / "config.json").is_file()
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) >= 4  # eval, 2 steps, eval


def test_misspelled_override_fails_before_anything_loads(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "lco_exp.train", "algorithm.betaa=3", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    assert "betaa" in out.stderr
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
