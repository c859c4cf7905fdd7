"""Rollout engines. ``make_engine`` is the only place that maps ``rollout.engine`` to a class.

An engine takes prompts as token ids and returns a ``RolloutBatch`` with token ids, response mask, behaviour
log-probs and, when asked, the top-K behaviour logits. vLLM (GPU) slots in here as a second engine.
"""

from __future__ import annotations

from lco_exp.config import HardwareConfig, RolloutConfig, RolloutEngineKind
from lco_exp.rollout.hf import HFEngine


def make_engine(cfg: RolloutConfig, model, tokenizer, hw: HardwareConfig) -> HFEngine:
    if cfg.engine == RolloutEngineKind.hf:
        return HFEngine(model, tokenizer, cfg, hw)
    raise ValueError(f"rollout.engine={cfg.engine.value!r}: no engine for it")


__all__ = ["HFEngine", "make_engine"]
