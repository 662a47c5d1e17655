"""excavation_training: variable-resolution excavation simulator (Newton) and PRPD training."""

__version__ = "0.1.0"
