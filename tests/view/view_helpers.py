"""Helpers of the view tests: free ports, condition waits, and a reader of .rrd files."""

import os
import socket

from shared_helpers import wait_for  # noqa: F401  (the view tests import it from here)

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_rrd(path) -> dict[str, dict]:
    """Per entity path of an .rrd file: rows logged and the distinct sim_time stamps, read with Rerun's own reader."""
    import warnings

    import pyarrow as pa
    from rerun.chunk import RrdReader

    out: dict[str, dict] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a file still being written has no footer yet: read whole
        chunks = list(RrdReader(str(path)).stream())
    for chunk in chunks:
        e = out.setdefault(chunk.entity_path, {"rows": 0, "sim_times": set(), "static": False})
        e["rows"] += chunk.num_rows
        e["static"] |= chunk.is_static
        if "sim_time" in chunk.timeline_names:
            col = chunk.to_record_batch().column("sim_time")
            e["sim_times"] |= {v for v in pa.array(col).cast(pa.int64()).to_pylist() if v is not None}
    return out


