"""The PRPD training loop, its scheduler, logging, checkpoints and the env factory."""

from .checkpoint import load_checkpoint, load_policy
from .env_factory import build_env_factory, build_eval_factory
from .prpd_runner import PRPDRunner, TrainResult
from .scheduler import ResolutionScheduler

__all__ = [
    "PRPDRunner",
    "ResolutionScheduler",
    "TrainResult",
    "build_env_factory",
    "build_eval_factory",
    "load_checkpoint",
    "load_policy",
]
