"""The view's logging helpers write a recording that Rerun's own reader reads back: every entity the
view documents, and as many depth frames as were logged; Rerun stays an optional dependency."""

import ast
import os
import sys

import numpy as np
import pytest

from view_helpers import REPO, read_rrd

pytestmark = pytest.mark.timeout(120)

FRAMES = 7


def log_run(view, frames: int = FRAMES) -> None:
    """What the view node logs for ``frames`` depth frames of one episode, then the episode's end."""
    rng = np.random.default_rng(0)
    view.tray((0.16, 0.16))
    view.camera(np.eye(4), [61.5, 0, 32, 0, 61.5, 24, 0, 0, 1], 64, 48)
    view.bucket_shape([((-0.02, 0.0, 0.002), (0.02, 0.03, 0.002))])
    view.new_episode()
    for k in range(frames):
        view.at(0.1 * (k + 1))
        view.depth(rng.integers(500, 650, (48, 64)).astype(np.uint16))
        view.candidates(rng.uniform(-0.05, 0.05, (3, 3)))
        view.chosen_rock([0.01, 0.0, 0.04])
        view.ground(0.035, (0.16, 0.16))
        view.bucket([0.05 - 0.01 * k, 0.0, 0.08], 0.3)
        view.target([0.04 - 0.01 * k, 0.0, 0.07], 0.3)
        view.soil(rng.uniform(-0.08, 0.08, (500, 3)), 0.005)
        view.rock([0.0, 0.0, 0.04], [0, 0, 0, 1], [((0, 0, 0), (0.01, 0.01, 0.01))] if k == 0 else None)
        view.latency(4.0 + k)
    view.episode(1, True, 3.5, frames)


def test_a_recording_holds_every_entity_and_each_frame(tmp_path):
    from excavation_simulation import view as V

    path = tmp_path / "run.rrd"
    v = V.open_view(record=str(path))
    log_run(v)
    v.flush()
    v.rec.disconnect()
    found = read_rrd(path)
    missing = {"/" + e for e in V.ENTITIES} - set(found)
    assert not missing, f"entities not in the recording: {sorted(missing)}"
    stamps = {int(round(0.1 * (k + 1) * 1e9)) for k in range(FRAMES)}
    assert found["/world/camera/depth"]["sim_times"] == stamps
    assert found["/world/soil"]["rows"] == FRAMES
    assert found["/episode/success"]["rows"] == found["/episode/reward"]["rows"] == 1
    assert found["/world/tray"]["static"] and found["/world/camera"]["static"]


def test_two_runs_differ_in_frame_count(tmp_path):
    """The count read back is the count logged (a reader that saw a fixed number would pass the test above)."""
    from excavation_simulation import view as V

    counts = []
    for n in (2, 5):
        path = tmp_path / f"run{n}.rrd"
        v = V.open_view(record=str(path))
        log_run(v, frames=n)
        v.flush()
        v.rec.disconnect()
        counts.append(len(read_rrd(path)["/world/camera/depth"]["sim_times"]))
    assert counts == [2, 5]


def test_a_view_needs_somewhere_to_go():
    from excavation_simulation import view as V

    with pytest.raises(ValueError):
        V.open_view()


def test_the_node_names_the_missing_sdk_and_its_pinned_version(monkeypatch):
    from excavation_simulation import view_node

    import tomllib

    pins = [line.strip() for line in open(os.path.join(REPO, "requirements.txt")) if line.startswith("rerun-sdk==")]
    assert pins == [view_node.RERUN_PIN], "view_node.RERUN_PIN must be the version requirements.txt pins"
    with open(os.path.join(REPO, "sim", "pyproject.toml"), "rb") as f:
        extra = tomllib.load(f)["project"]["optional-dependencies"]["view"]
    assert extra == [view_node.RERUN_PIN], "the simulator's `view` extra must pin what requirements.txt pins"
    assert view_node.rerun_missing() is None
    monkeypatch.setitem(sys.modules, "rerun", None)  # import rerun now raises ImportError
    msg = view_node.rerun_missing()
    assert msg and view_node.RERUN_PIN in msg and "pip install" in msg
    assert view_node.main([]) == 2


def test_only_the_view_imports_rerun():
    """Rerun is optional: no module but the one home of the view's logging may import it (the robot never
    needs it; training, the picture command and the live view reach it only through that module, lazily)."""
    allowed = {
        # The entity names and logging helpers of the live view, `excavation-sim picture --rrd` and
        # `excavation-train train --view`: in the simulator, the lowest layer all three may import; it
        # imports Rerun inside functions only, when a recording is opened.
        os.path.join("excavation_sim", "scene_view.py"),
    }
    offenders = []
    for top in ("ros2_ws/src", "sim", "training"):
        for dirpath, dirs, files in os.walk(os.path.join(REPO, top)):
            dirs[:] = [d for d in dirs if d not in ("build", "install", "__pycache__") and not d.endswith(".egg-info")]
            for f in files:
                if not f.endswith(".py"):
                    continue
                path = os.path.join(dirpath, f)
                tree = ast.parse(open(path).read(), filename=path)
                mods = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
                mods |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module and n.level == 0}
                if any(m.split(".")[0] == "rerun" for m in mods) and not any(path.endswith(a) for a in allowed):
                    offenders.append(os.path.relpath(path, REPO))
    assert not offenders, f"import rerun outside the view: {offenders}"
