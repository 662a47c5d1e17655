"""excavation_contract: what the simulator, the trainer, the exported bundle and the ROS nodes agree on.

Imports numpy only (torch only when a caller passes tensors, or loads a bundle): the bottom layer of
the house. Modules:

* ``layout``: observation/action fields, ``pack_*``/``unpack_*``, action limit, control period;
* ``geometry``: bucket geometry, pitch convention;
* ``limits``: trained workspace and the real driver's default safety box;
* ``frames``: frame names;
* ``interfaces``: ROS topic/service names and types of the robot graph (types imported lazily);
* ``bundle``: the policy bundle format and its loader.

``import excavation_contract as contract`` gives the layout, geometry, limits and frames in one name.
"""

from .frames import *  # noqa: F401,F403
from .geometry import *  # noqa: F401,F403
from .layout import *  # noqa: F401,F403
from .limits import *  # noqa: F401,F403
from . import frames, geometry, layout, limits

__all__ = [*frames.__all__, *geometry.__all__, *layout.__all__, *limits.__all__]
