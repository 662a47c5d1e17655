"""The bundle format and loader live in the ROS package (``excavation_contract.bundle``) so the robot
can load bundles without the training stack; this module re-exports them for the exporter."""

from excavation_contract.bundle import *  # noqa: F401,F403
from excavation_contract.bundle import (  # noqa: F401
    FORMAT_VERSION,
    META_FILE,
    POLICY_FILE,
    PROBE_ATOL,
    REQUIRED_KEYS,
    SUPPORTED_FORMAT_VERSIONS,
    BundleError,
    PolicyBundle,
    check_layout,
    file_sha256,
    load_bundle,
)
