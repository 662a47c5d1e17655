"""excavation_training: PRPD training (PPO, conservative KL transfer, Q-estimated mixture rate) on excavation_sim."""

__version__ = "0.1.0"
