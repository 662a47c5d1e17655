"""PRPD's algorithm (PPO + conservative transfer, ``prpd.py``), its auxiliary Q and the demonstration warm start."""

from .prpd import PRPD, Transition, distillation_loss, estimate_alpha
from .q_function import QLearner

__all__ = ["PRPD", "QLearner", "Transition", "distillation_loss", "estimate_alpha"]
