"""PPO and PRPD's conservative transfer (distillation term + auxiliary Q)."""

from .ppo import PPO
from .prpd_transfer import ConservativeTransfer, distillation_loss, estimate_alpha
from .q_function import QLearner

__all__ = ["PPO", "ConservativeTransfer", "QLearner", "distillation_loss", "estimate_alpha"]
