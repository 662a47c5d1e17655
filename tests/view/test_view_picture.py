"""``excavation-sim picture --rrd``: the picture's scene as a Rerun recording, read back with Rerun's reader:
soil, rock, bucket, its path and the depth image under the live view's entity names, one frame per
scripted step plus the picture's own; bad input and a missing SDK are named before the env is built."""

import sys

import pytest

from view_helpers import read_rrd

pytestmark = pytest.mark.timeout(240)  # a cold Warp kernel cache compiles the simulator's kernels first

STEPS = 3


def test_the_names_have_one_home():
    from excavation_sim import scene_view as S
    from excavation_simulation import view as V

    assert V.ENTITIES is S.ENTITIES and V.View is S.View and V.SOIL_COLOR == S.SOIL_COLOR
    assert set(S.PICTURE_ENTITIES) <= set(S.ENTITIES) | set(S.ENV_ENTITIES)


def test_picture_rrd_holds_the_scene(tmp_path, capsys):
    from excavation_sim import scene_view as S
    from excavation_sim.cli import main

    out = tmp_path / "scene.rrd"
    assert main(["picture", "--delta-mm", "70", "--num-envs", "1", "--steps", str(STEPS), "--rrd", str(out)]) == 0
    assert "saved" in capsys.readouterr().out
    assert not (tmp_path / "scene.png").exists() and not list(tmp_path.glob("*.png")), "only the recording was asked for"
    found = read_rrd(out)
    missing = {"/" + e for e in S.PICTURE_ENTITIES} - set(found)
    assert not missing, f"entities not in the recording: {sorted(missing)}; got {sorted(found)}"
    frames = STEPS + 1  # every scripted step, then the picture's moment with the depth image
    assert found["/world/soil"]["rows"] == frames and len(found["/world/soil"]["sim_times"]) == frames
    assert len(found["/world/bucket"]["sim_times"]) == len(found["/world/rock"]["sim_times"]) == frames
    assert found["/world/camera/depth"]["rows"] == 1
    assert found["/world/camera/depth"]["sim_times"] <= found["/world/soil"]["sim_times"]
    assert found["/world/tray"]["static"] and found["/world/camera"]["static"]


def test_picture_rrd_names_bad_input_and_the_missing_sdk(tmp_path, capsys, monkeypatch):
    from excavation_sim.cli import main

    assert main(["picture", "--num-envs", "1", "--rrd", str(tmp_path / "scene.png")]) == 2
    assert "--rrd must name an .rrd file" in capsys.readouterr().err
    assert main(["picture", "--num-envs", "1", "--rrd", str(tmp_path / "a.rrd"), "--max-soil-points", "0"]) == 2
    assert "--max-soil-points must be > 0, got 0" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "rerun", None)  # import rerun now raises ImportError
    assert main(["picture", "--num-envs", "1", "--rrd", str(tmp_path / "b.rrd")]) == 2
    err = capsys.readouterr().err
    assert "rerun-sdk==0.41.0" in err and "pip install" in err
    assert not list(tmp_path.iterdir()), "nothing is written when the input is refused"


def test_strided_soil_keeps_at_most_the_limit():
    import numpy as np

    from excavation_sim.scene_view import strided

    pts = np.arange(30_000 * 3, dtype=np.float32).reshape(-1, 3)
    assert len(strided(pts, 20_000)) <= 20_000 and len(strided(pts, 40_000)) == 30_000
    assert strided(pts, 7)[-1, 0] >= pts[len(pts) // 2, 0], "spread over the whole bed, not its first rows"


def test_picture_without_rrd_needs_no_rerun(tmp_path, monkeypatch):
    """As before --rrd existed: the PNG (scene.png by default), and it works where Rerun is not installed.
    (Not "Rerun is not imported": Newton's own optional Rerun viewer imports it whenever it is installed.)"""
    monkeypatch.setitem(sys.modules, "rerun", None)  # import rerun now raises ImportError
    monkeypatch.chdir(tmp_path)
    from excavation_sim.cli import main

    assert main(["picture", "--num-envs", "1", "--steps", "1"]) == 0
    assert (tmp_path / "scene.png").stat().st_size > 10_000
    assert not list(tmp_path.glob("*.rrd"))
