"""Checkpoints for exact resume: ``<run dir>/checkpoints/step_NNNNNN/``, written atomically, the last K kept.

A checkpoint holds everything the rest of the run depends on:

- ``policy.safetensors``: the policy's parameters (``safetensors.torch.save_model`` handles tied weights);
- ``critic.safetensors``: PPO's value model (backbone and head), when there is one;
- ``state.pt``: step, optimizer state(s), data order and cursor, every RNG state, the spike detector, the
  paired-eval baseline, the run summary and the W&B run id. Only tensors and plain Python values, read back with
  ``torch.load(weights_only=True)``.

The learning rate needs no scheduler state: it is a pure function of the step (``algorithms.actor_lr_scale``).
The frozen reference is not saved: it is the initial policy, which a resumed run rebuilds the same way (the
warm-up cache or the base weights) before the checkpoint's parameters are loaded into the policy.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model

STATE = "state.pt"


def _dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def step_dirs(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (a directory is complete once renamed into place)."""
    root = _dir(run_dir)
    if not root.is_dir():
        return []
    done = [p for p in root.iterdir() if p.name.startswith("step_") and (p / STATE).is_file()]
    return sorted(done, key=lambda p: int(p.name.removeprefix("step_")))


def latest(run_dir: Path) -> Path | None:
    dirs = step_dirs(run_dir)
    return dirs[-1] if dirs else None


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(run_dir: Path, step: int, policy, critic, state: dict[str, Any], keep: int) -> Path:
    """Write ``step_<step>`` into a temporary sibling, rename it into place, then drop all but the last ``keep``."""
    root = _dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:06d}"
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".tmp-step_{step:06d}-"))
    save_model(policy, str(tmp / "policy.safetensors"))
    if critic is not None:
        save_model(critic, str(tmp / "critic.safetensors"))
    torch.save({**state, "step": step, "rng": rng_state()}, tmp / STATE)
    if final.exists():  # re-saving a step (e.g. a signal right after a periodic save): replace it
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in step_dirs(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".tmp-step_*"):  # left by a run killed while writing
        shutil.rmtree(stale, ignore_errors=True)
    return final


def load(path: Path, policy, critic) -> dict[str, Any]:
    """Load parameters in place and return the state (RNG states are restored by the caller, last)."""
    load_model(policy, str(path / "policy.safetensors"))
    if critic is not None:
        load_model(critic, str(path / "critic.safetensors"))
    return torch.load(path / STATE, weights_only=True)
