"""lco_exp: LCO, GRPO and PPO on real models and benchmarks (arXiv 2603.00963 reproduction)."""

__version__ = "0.1.0"
