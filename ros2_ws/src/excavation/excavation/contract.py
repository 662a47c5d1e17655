"""Transition shim: the contract is the distribution ``excavation_contract``. Removed once every import is switched."""
from excavation_contract import *  # noqa: F401,F403
