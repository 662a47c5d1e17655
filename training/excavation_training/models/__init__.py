"""Networks: actor-critic, observation normaliser, auxiliary Q-function."""

from .actor_critic import ActorCritic, gaussian_kl
from .normalizer import ObservationNormalizer
from .q_function import QFunction

__all__ = ["ActorCritic", "ObservationNormalizer", "QFunction", "gaussian_kl"]
