"""Shared fixtures: offline environment, Hydra composition from conf/, a run directory in tmp."""

from __future__ import annotations

import os
from pathlib import Path

# Before anything imports transformers / datasets / wandb: never touch the network from tests.
os.environ.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "disabled"})

import pytest  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from lco_exp.config import ExperimentConfig, register_configs  # noqa: E402

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
register_configs()


def compose_cfg(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def make_exp(overrides: list[str], tmp_path: Path) -> ExperimentConfig:
    """The smoke experiment plus ``overrides``, typed, with its cache inside ``tmp_path``."""
    cfg = compose_cfg(["experiment=smoke", f"cache_dir={tmp_path / 'cache'}", *overrides])
    return OmegaConf.to_object(cfg)


@pytest.fixture
def exp_factory(tmp_path):
    return lambda *overrides: make_exp(list(overrides), tmp_path)
