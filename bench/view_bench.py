"""Cost of the Rerun view per logged frame: what the view node's callbacks spend in the logging calls,
and the whole cost once Rerun has encoded and written everything (flush included), per frame.

    python bench/view_bench.py            # writes bench/results/view.json

A "frame" is what the view logs per depth frame of the stack: the 640x480 depth image, perception's
candidates, chosen rock and ground, bucket and target (and the target path), the rock pose, a latency
scalar; the soil (``soil_points`` particles) is logged every ``--soil-every`` frames, as sim_world
sends it every graph.VIEW_SCENE_EVERY ticks. Rows are per soil size; the sink is an .rrd file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

from provenance import revision

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def machine() -> dict:
    import rerun

    return {"python": platform.python_version(), "rerun_sdk": rerun.__version__, "processor": platform.machine(),
            "cpus": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2)}


def one_row(particles: int, frames: int, soil_every: int, width: int, height: int) -> dict:
    from excavation_simulation import view as V

    rng = np.random.default_rng(0)
    depth = rng.integers(400, 650, (height, width)).astype(np.uint16)
    soil = rng.uniform(-0.08, 0.08, (particles, 3)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.rrd")
        v = V.open_view(record=path)
        v.tray((0.16, 0.16))
        v.camera(np.eye(4), [615, 0, 320, 0, 615, 240, 0, 0, 1], width, height)
        call_ms = []
        t_all = time.perf_counter()
        for k in range(frames):
            t0 = time.perf_counter()
            v.at(0.1 * k)
            v.depth(depth)
            v.candidates(rng.uniform(-0.05, 0.05, (3, 3)))
            v.chosen_rock([0.0, 0.0, 0.04])
            v.ground(0.035, (0.16, 0.16))
            v.bucket([0.05, 0.0, 0.08], 0.3)
            v.target([0.05 - 0.0005 * k, 0.0, 0.07], 0.3)
            v.rock([0.0, 0.0, 0.04], [0, 0, 0, 1])
            v.latency(5.0)
            if k % soil_every == 0:
                v.soil(soil, 0.01)
            call_ms.append((time.perf_counter() - t0) * 1e3)
        v.flush()
        total_ms = (time.perf_counter() - t_all) * 1e3
        v.rec.disconnect()
        size = os.path.getsize(path)
    c = np.asarray(call_ms[5:])  # the first frames include Rerun's own start-up
    return {"soil_particles": particles, "soil_every": soil_every, "image": f"{width}x{height}", "frames": frames,
            "call_ms_p50": round(float(np.percentile(c, 50)), 3), "call_ms_p95": round(float(np.percentile(c, 95)), 3),
            "total_ms_per_frame": round(total_ms / frames, 3), "rrd_bytes_per_frame": int(size / frames),
            "sink": "rrd file", "machine": machine(), "revision": revision()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="view_bench", description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--particles", type=int, nargs="+", default=[2000, 10000, 50000],
                    help="soil particle counts (one row each)")
    ap.add_argument("--soil-every", type=int, default=5)
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results", "view.json"))
    a = ap.parse_args(argv)
    rows = [one_row(n, a.frames, a.soil_every, 640, 480) for n in a.particles]
    for r in rows:
        print(f"{r['soil_particles']:>6} particles: calls p50 {r['call_ms_p50']:.2f} ms, p95 {r['call_ms_p95']:.2f} ms; "
              f"all-in {r['total_ms_per_frame']:.2f} ms/frame, {r['rrd_bytes_per_frame'] / 1e3:.0f} kB/frame")
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump({"command": "python bench/view_bench.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                   "rows": rows}, f, indent=2)
    print(f"wrote {os.path.relpath(a.out, REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
