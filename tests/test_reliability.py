"""Reliability: kill-and-resume is exact, signals checkpoint, non-finite runs stop with the last good state, bad
data names its row, loaders are safe, and W&B failures never cost the run or its metrics."""

from __future__ import annotations

import importlib.machinery
import json
import os
import re
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lco_exp import checkpoint, train
from lco_exp.config import BadRows, DataSourceConfig, SourceKind, TaskConfig
from lco_exp.tasks import DataError, make_task
from lco_exp.tracking import Run, replay

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "disabled"}
# GRPO (group of 4, reference model, sampled rollouts) at a high lr: every step changes the parameters, so a
# resume that lost any state (optimizer moments, RNG, data cursor) would end somewhere else.
TRAIN = [sys.executable, "-m", "lco_exp.train", "experiment=smoke", "steps=40", "checkpoint.every=5",
         "logger=none", "algorithm=grpo", "algorithm.lr=1e-3"]  # fmt: skip


def start(run_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [*TRAIN, f"hydra.run.dir={run_dir}"],
        env=ENV,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(run_dir: Path) -> None:
    done = subprocess.run([*TRAIN, f"hydra.run.dir={run_dir}"], env=ENV, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, "the run ended before it could be interrupted"
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.005)


def records(run_dir: Path) -> list[dict]:
    """Logged metrics without wall-clock timings (the only values a resume may change)."""
    out = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        out.append({k: v for k, v in rec.items() if not k.startswith("perf/") and k != "warmup/time_s"})
    return out


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    finish(run_dir)
    return run_dir


def assert_same_run(a: Path, b: Path) -> None:
    pa, pb = load_file(a / "final_policy" / "model.safetensors"), load_file(b / "final_policy" / "model.safetensors")
    assert pa.keys() == pb.keys() and all(torch.equal(pa[k], pb[k]) for k in pa), "parameters differ"
    ra, rb = records(a), records(b)
    assert [r["step"] for r in ra] == [r["step"] for r in rb]
    assert ra == rb, "logged metrics differ"


def test_sigkill_then_rerun_ends_bit_for_bit_like_an_uninterrupted_run(uninterrupted, tmp_path):
    run_dir = tmp_path / "run"
    proc = start(run_dir)
    wait_for(run_dir / "checkpoints" / "step_000005" / checkpoint.STATE, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "final_policy").exists()  # it really died mid-run
    finish(run_dir)  # the same command on the same run directory
    assert_same_run(uninterrupted, run_dir)
    assert [p.name for p in checkpoint.step_dirs(run_dir)] == ["step_000035", "step_000040"]  # keep: 2


def test_sigterm_saves_a_checkpoint_and_exits_then_resumes_exactly(uninterrupted, tmp_path):
    run_dir = tmp_path / "run"
    proc = start(run_dir)
    wait_for(run_dir / "checkpoints" / "step_000005" / checkpoint.STATE, proc)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, out[-2000:]
    assert "stopped by SIGTERM after step" in out
    stopped_at = int(re.search(r"stopped by SIGTERM after step (\d+)", out).group(1))
    assert checkpoint.latest(run_dir).name == f"step_{stopped_at:06d}"
    finish(run_dir)
    assert_same_run(uninterrupted, run_dir)


def test_rerunning_a_finished_run_does_nothing(uninterrupted):
    before = (uninterrupted / "metrics.jsonl").read_text()
    summary = json.loads((uninterrupted / "final_metrics.json").read_text())
    finish(uninterrupted)
    assert (uninterrupted / "metrics.jsonl").read_text() == before
    assert json.loads((uninterrupted / "final_metrics.json").read_text()) == summary


def test_non_finite_losses_stop_the_run_with_the_last_good_parameters(exp_factory, tmp_path, monkeypatch):
    real = train.policy_loss
    calls = {"n": 0}

    def poisoned(logits, mb, algo, chunk):
        loss, stats = real(logits, mb, algo, chunk)
        calls["n"] += 1
        return (loss * float("nan"), stats) if calls["n"] > 2 else (loss, stats)  # steps 1-2 fine, then NaN

    monkeypatch.setattr(train, "policy_loss", poisoned)
    exp = exp_factory("max_bad_steps=3", "steps=10", "algorithm.lr=1e-3", "hardware.micro_batch_size=4")
    run = Run(tmp_path / "run", exp, {}, [])
    with pytest.raises(train.RunStopped, match=r"3 consecutive steps had a non-finite loss or gradient"):
        train.run_experiment(exp, run)
    run.finish()
    saved = checkpoint.latest(tmp_path / "run")
    assert saved.name == "step_000005"  # steps 3, 4, 5 were bad
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    skipped = [r["train/skipped_steps"] for r in lines if "train/skipped_steps" in r]
    assert skipped == [0.0, 0.0, 1.0, 1.0, 1.0]
    assert [r["train/nonfinite_steps_total"] for r in lines if "train/nonfinite_steps_total" in r][-1] == 3.0
    state = torch.load(saved / checkpoint.STATE, weights_only=True)
    assert (
        state["step"] == 5
        and state["bad_streak"] == 3
        and all(torch.isfinite(v).all() for v in state["rng"].values() if isinstance(v, torch.Tensor))
    )
    params = load_file(saved / "policy.safetensors")
    assert all(torch.isfinite(p).all() for p in params.values())


def test_bad_rows_error_naming_file_and_row_or_are_skipped_and_counted(tmp_path):
    path = tmp_path / "train.jsonl"
    rows = [
        {"question": "1+1?", "answer": "2"},
        {"question": "2+2?"},  # missing field
        {"question": {"text": "3+3?"}, "answer": "6"},  # wrong type
        {"question": "4+4?", "answer": ""},  # empty answer
        {"question": "5+5?", "answer": ["10"]},  # wrong type
        "not an object",
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    task = make_task(TaskConfig(name="math"))
    src = DataSourceConfig(kind=SourceKind.local, name=str(path))
    with pytest.raises(DataError, match=r"train.jsonl row 1: missing field 'answer'"):
        task.load(src)
    for i, message in [(2, "field 'question' must be text, got dict"), (3, "no final answer in field 'answer'"),
                       (4, "field 'answer' must be text or a number, got list")]:  # fmt: skip
        path.write_text(json.dumps(rows[0]) + "\n" + json.dumps(rows[i]))
        with pytest.raises(DataError, match=rf"train.jsonl row 1: {re.escape(message)}"):
            task.load(src)
    path.write_text(json.dumps(rows[0]) + "\n" + json.dumps(rows[5]))
    with pytest.raises(DataError, match=r"train.jsonl row 1: expected a JSON object"):
        task.load(src)
    path.write_text("\n".join(json.dumps(r) for r in rows))
    kept = task.load(DataSourceConfig(kind=SourceKind.local, name=str(path), bad_rows=BadRows.skip))
    assert [e.answer for e in kept] == ["2"] and task.skipped_rows == {str(path): 5}


def test_only_safe_loaders_and_no_evaluation_of_text_in_the_package():
    offenders = []
    for file in (ROOT / "lco_exp").rglob("*.py"):
        text = file.read_text()
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            if "weights_only=True" not in call:
                offenders.append(f"{file.name}: {call}")
        for pattern in (r"\bpickle\b", r"(?<![.\w])eval\(", r"(?<![.\w])exec\(", r"trust_remote_code\s*=\s*True"):
            if re.search(pattern, text):
                offenders.append(f"{file.name}: {pattern}")
    assert not offenders


class FakeWandb(types.ModuleType):
    """A stand-in for the wandb module: records calls, and fails where told to."""

    def __init__(self, fail_online: bool = False, fail_log_after: int | None = None):
        super().__init__("wandb")
        # a spec, as a real module has: libraries that probe importlib.util.find_spec("wandb") would raise otherwise
        self.__spec__ = importlib.machinery.ModuleSpec("wandb", None)
        self.inits, self.logged = [], []
        self.fail_online, self.fail_log_after = fail_online, fail_log_after

    def init(self, **kwargs):
        self.inits.append(kwargs)
        if self.fail_online and kwargs["mode"] == "online":
            raise ConnectionError("api.wandb.ai unreachable")
        fake = self

        class FakeRun:
            id = kwargs["id"]
            summary: dict = {}

            def define_metric(self, *a, **k):
                pass

            def log(self, data):
                if fake.fail_log_after is not None and len(fake.logged) >= fake.fail_log_after:
                    raise ConnectionError("connection dropped")
                fake.logged.append(data)

            def finish(self):
                pass

        return FakeRun()

    class Table:
        def __init__(self, columns, data):
            self.columns, self.data = columns, data


def test_wandb_unreachable_falls_back_to_offline_and_a_mid_run_failure_keeps_metrics(
    exp_factory, tmp_path, monkeypatch
):
    fake = FakeWandb(fail_online=True, fail_log_after=3)
    monkeypatch.setitem(sys.modules, "wandb", fake)
    exp = exp_factory("logger=wandb", "logger.mode=online", "steps=4")
    run = Run(tmp_path / "run", exp, {"logger": {"project": "p"}}, [])
    assert [i["mode"] for i in fake.inits] == ["online", "offline"] and run.wandb is not None
    train.run_experiment(exp, run)
    run.finish()
    assert run.wandb is None and len(fake.logged) == 3  # W&B broke after three records ...
    steps = [json.loads(x)["step"] for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    # ... and metrics.jsonl still has every step, the final eval and the run's wall time (perf/time_run_s)
    assert steps[-6:] == [1, 2, 3, 4, 4, 4]

    later = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", later)
    assert replay(tmp_path / "run", mode="offline") == len(steps)
    assert later.inits[0]["id"] == (tmp_path / "run" / "wandb_run_id").read_text()  # the same W&B run, resumed
    assert [r["step"] for r in later.logged] == steps


def test_ppo_resume_restores_the_critic_and_both_optimizers(exp_factory, tmp_path, monkeypatch):
    """In-process: SIGTERM arrives during step 2 of a PPO run; the re-run must match an uninterrupted run."""
    overrides = ("algorithm=ppo", "steps=4", "checkpoint.every=0", "algorithm.lr=1e-3", "algorithm.critic_lr=1e-3")

    def run_in(run_dir: Path) -> None:
        exp = exp_factory(*overrides)
        run = Run(run_dir, exp, {}, [])
        try:
            train.run_experiment(exp, run)
        finally:
            run.finish()

    run_in(tmp_path / "a")
    real, calls = train.update, {"n": 0}

    def update_then_signal(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # handled by the loop: finish the step, checkpoint, stop
        return real(*args, **kwargs)

    monkeypatch.setattr(train, "update", update_then_signal)
    handler_before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(train.RunStopped, match="stopped by SIGTERM after step 2"):
        run_in(tmp_path / "b")
    assert signal.getsignal(signal.SIGTERM) is handler_before  # the run's handler is removed again
    monkeypatch.setattr(train, "update", real)
    run_in(tmp_path / "b")
    assert_same_run(tmp_path / "a", tmp_path / "b")
    ca, cb = (
        load_file(tmp_path / "a" / "critic" / "value_head.safetensors"),
        load_file(tmp_path / "b" / "critic" / "value_head.safetensors"),
    )
    assert all(torch.equal(ca[k], cb[k]) for k in ca)
