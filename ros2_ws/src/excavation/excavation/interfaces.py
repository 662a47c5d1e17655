"""Transition shim: moved to ``excavation_contract.interfaces``. Removed once every import is switched."""
from excavation_contract.interfaces import *  # noqa: F401,F403
from excavation_contract.interfaces import msg_type, driver_message_types  # noqa: F401
from excavation_contract.frames import TRAY_FRAME, BASE_FRAME  # noqa: F401
from excavation_contract.geometry import pitch_to_quaternion, quaternion_to_pitch  # noqa: F401
