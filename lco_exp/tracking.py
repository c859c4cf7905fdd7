"""Run tracking: every logged dict goes to ``metrics.jsonl`` in the run directory and, if enabled, to W&B.

The jsonl file is written first and flushed per line, so nothing is lost when W&B is unreachable or fails
mid-run; a W&B error is reported once and the run continues with the file alone.
"""

from __future__ import annotations

import json
import math
import netrc
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from lco_exp.config import EvaluateConfig, ExperimentConfig, LoggerKind


def _has_wandb_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        hosts = netrc.netrc().hosts
    except (FileNotFoundError, netrc.NetrcParseError):
        return False
    return any("wandb" in host for host in hosts)


def wandb_mode(configured: str | None) -> str:
    """online | offline | disabled: the config's mode, else WANDB_MODE, else online iff an API key is configured."""
    if configured:
        return configured
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    return "online" if _has_wandb_key() else "offline"


def git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # JSON has no NaN/inf; keep them visible rather than dropping the key
    return v


class Run:
    """A tracked run. ``log`` writes one JSON object per call; ``summary`` collects final values."""

    def __init__(
        self,
        run_dir: Path,
        exp: ExperimentConfig | EvaluateConfig,
        resolved: dict[str, Any],
        overrides: list[str],
        job_type: str = "train",
    ):
        self.job_type = job_type
        self.dir = run_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self._file = open(self.dir / "metrics.jsonl", "a", encoding="utf-8")
        self.summary: dict[str, Any] = {}
        self.wandb = None
        (self.dir / "config_resolved.json").write_text(json.dumps(resolved, indent=2, default=str))
        (self.dir / "run_info.json").write_text(
            json.dumps({"git_sha": git_sha(), "overrides": overrides, "argv": sys.argv}, indent=2)
        )
        if exp.logger.kind == LoggerKind.wandb:
            self._init_wandb(exp, resolved)

    def _init_wandb(self, exp: ExperimentConfig | EvaluateConfig, resolved: dict[str, Any]) -> None:
        """Start (or, when this run directory already has one, resume) the W&B run. If W&B cannot be reached
        online, fall back to offline mode (sync later); if even that fails, metrics.jsonl alone carries on."""
        mode = wandb_mode(exp.logger.mode)
        if mode == "disabled":
            return
        model, task = exp.model.name, exp.task.name
        algo = exp.algorithm.name if isinstance(exp, ExperimentConfig) else "none"
        kwargs = dict(
            project=exp.logger.project,
            entity=exp.logger.entity,
            group=exp.logger.group or exp.name,
            name=f"{exp.name}-{algo}-{task}-{model}-s{exp.seed}",
            tags=[*exp.logger.tags, f"algorithm:{algo}", f"task:{task}", f"model:{model}", f"seed:{exp.seed}"],
            job_type=self.job_type,
            config=resolved,
            dir=str(self.dir),
            id=self.wandb_id,
            resume="allow",
        )
        for attempt in [mode] + (["offline"] if mode == "online" else []):
            try:
                import wandb

                self.wandb = wandb.init(mode=attempt, **kwargs)
                self.wandb.define_metric("step")
                self.wandb.define_metric("*", step_metric="step")
                mode = attempt
                break
            except Exception as err:  # a tracker failure must not cost the run
                print(f"[lco_exp] W&B init ({attempt}) failed ({type(err).__name__}: {err})")
                self.wandb = None
        if self.wandb is None:
            print(
                "[lco_exp] logging to metrics.jsonl only; replay it later: python -m lco_exp.tracking sync "
                + str(self.dir)
            )
            return
        if mode == "offline":
            print(f"[lco_exp] W&B is offline; upload later with: wandb sync {self.dir / 'wandb'}/offline-run-*")

    @property
    def _id_file(self) -> Path:
        return self.dir / "wandb_run_id"

    @property
    def wandb_id(self) -> str:
        """This run directory's W&B run id: made once (or given by a W&B sweep agent through WANDB_RUN_ID), kept
        in ``wandb_run_id`` so a resumed run continues it."""
        if not self._id_file.is_file():
            self._id_file.write_text(os.environ.get("WANDB_RUN_ID") or uuid.uuid4().hex[:12])
        return self._id_file.read_text().strip()

    def rewind(self, step: int) -> None:
        """Drop the records of steps after ``step`` from metrics.jsonl (a resumed run logs them again)."""
        self._file.close()
        path = self.dir / "metrics.jsonl"
        kept = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
        path.write_text("".join(line + "\n" for line in kept))
        self._file = open(path, "a", encoding="utf-8")

    @classmethod
    def from_hydra(cls, cfg, typed: ExperimentConfig | EvaluateConfig, job_type: str = "train") -> Run:
        """The run of the current ``@hydra.main`` job: its output directory, resolved config and overrides."""
        from hydra.core.hydra_config import HydraConfig
        from omegaconf import OmegaConf

        hydra_cfg = HydraConfig.get()
        resolved = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
        return cls(Path(hydra_cfg.runtime.output_dir), typed, resolved, list(hydra_cfg.overrides.task), job_type)

    def log(self, metrics: dict[str, Any], step: int) -> None:
        record = {"step": step, **{k: _jsonable(v) for k, v in metrics.items()}}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self.wandb is not None:
            try:
                self.wandb.log({"step": step, **metrics})
            except Exception as err:
                print(f"[lco_exp] W&B log failed ({type(err).__name__}: {err}); continuing with metrics.jsonl only")
                self.wandb = None

    def log_table(self, key: str, rows: list[dict[str, Any]], step: int) -> None:
        if self.wandb is None or not rows:
            return
        try:
            import wandb

            cols = list(rows[0])
            self.wandb.log({key: wandb.Table(columns=cols, data=[[r[c] for c in cols] for r in rows]), "step": step})
        except Exception as err:
            print(f"[lco_exp] W&B table failed ({type(err).__name__}: {err})")

    def finish(self) -> None:
        (self.dir / "final_metrics.json").write_text(json.dumps(self.summary, indent=2, default=_jsonable))
        self._file.close()
        if self.wandb is not None:
            try:
                self.wandb.summary.update(self.summary)
                self.wandb.finish()
            except Exception as err:
                print(f"[lco_exp] W&B finish failed ({type(err).__name__}: {err})")


def _restore(value: Any) -> Any:
    return float(value) if value in ("nan", "inf", "-inf") else value


def replay(run_dir: Path, mode: str | None = None) -> int:
    """Log a run directory's metrics.jsonl (and final summary) into its W&B run, resuming it by id: for runs
    whose W&B connection failed at start or mid-run. Returns the number of records sent."""
    import wandb

    resolved = json.loads((run_dir / "config_resolved.json").read_text())
    logger = resolved.get("logger") or {}
    id_file = run_dir / "wandb_run_id"
    run = wandb.init(
        project=logger.get("project", "lco_exp"),
        entity=logger.get("entity"),
        group=logger.get("group") or resolved.get("name"),
        id=id_file.read_text().strip() if id_file.is_file() else None,
        resume="allow",
        config=resolved,
        dir=str(run_dir),
        mode=mode or wandb_mode(logger.get("mode")),
    )
    run.define_metric("step")
    run.define_metric("*", step_metric="step")
    sent = 0
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        if line.strip():
            run.log({k: _restore(v) for k, v in json.loads(line).items()})
            sent += 1
    final = run_dir / "final_metrics.json"
    if final.is_file():
        run.summary.update(json.loads(final.read_text()))
    run.finish()
    return sent


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m lco_exp.tracking")
    sub = parser.add_subparsers(dest="command", required=True)
    sync = sub.add_parser("sync", help="replay a run directory's metrics.jsonl into its W&B run")
    sync.add_argument("run_dir", type=Path)
    sync.add_argument("--mode", choices=["online", "offline"], default=None)
    args = parser.parse_args(argv)
    if not (args.run_dir / "metrics.jsonl").is_file():
        parser.error(f"{args.run_dir}: no metrics.jsonl (not a run directory)")
    print(f"[lco_exp] sent {replay(args.run_dir, args.mode)} records from {args.run_dir / 'metrics.jsonl'}")


if __name__ == "__main__":
    main()
