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
    """Per entity path of an .rrd file, read with Rerun's own reader: rows logged, the distinct sim_time
    stamps (ns), and ``times``: the distinct values of every timeline."""
    import warnings

    import pyarrow as pa
    from rerun.chunk import RrdReader

    out: dict[str, dict] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a file still being written has no footer yet: read whole
        chunks = list(RrdReader(str(path)).stream())
    for chunk in chunks:
        e = out.setdefault(chunk.entity_path, {"rows": 0, "sim_times": set(), "static": False, "times": {}})
        e["rows"] += chunk.num_rows
        e["static"] |= chunk.is_static
        if chunk.timeline_names:
            batch = chunk.to_record_batch()
            for name in chunk.timeline_names:
                col = batch.column(name)
                e["times"].setdefault(name, set()).update(v for v in pa.array(col).cast(pa.int64()).to_pylist() if v is not None)
        e["sim_times"] = e["times"].get("sim_time", set())
    return out


def read_scalars(path, entity: str, timeline: str = "iteration") -> list[tuple[int, float]]:
    """(time, value) of every ``Scalars`` row of ``entity`` (e.g. ``/train/success_rate``), sorted by time."""
    import warnings

    import pyarrow as pa
    from rerun.chunk import RrdReader

    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chunks = [c for c in RrdReader(str(path)).stream() if c.entity_path == entity and not c.is_static]
    for chunk in chunks:
        batch = chunk.to_record_batch()
        name = next(n for n in batch.schema.names if n.endswith("scalars"))
        times = pa.array(batch.column(timeline)).cast(pa.int64()).to_pylist()
        for t, v in zip(times, batch.column(name).to_pylist()):
            if v is not None:
                rows.append((t, float(v[0])))
    return sorted(rows)


