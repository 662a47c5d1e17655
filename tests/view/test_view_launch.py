"""``launch_stack --view`` / ``--record-view`` add the view node and turn on sim_world's scene topics;
without them neither runs (the stack pays nothing for the view it does not use)."""

import os

import pytest
import yaml

pytestmark = pytest.mark.timeout(60)


def commands(tmp_path, *argv):
    from excavation_simulation import launcher

    a = launcher.parse_args(list(argv))
    a.params_out = str(tmp_path / "params.yaml")
    cmds = launcher.build_commands(a)
    params = yaml.safe_load(open(a.params_out))
    return cmds, params["sim_world"]["ros__parameters"].get("publish_scene_every")


def test_view_adds_the_node_serving_on_the_given_port(tmp_path):
    from excavation_simulation import graph

    cmds, every = commands(tmp_path, "--view", "--view-port", "9191", "--record-view", "out/run.rrd")
    assert every == graph.VIEW_SCENE_EVERY > 0
    cmd = " ".join(cmds["view"])
    assert "-m excavation_simulation.view_node" in cmd
    assert "serve:=true" in cmd and "web_port:=9191" in cmd and f"grpc_port:={graph.VIEW_GRPC_PORT}" in cmd
    assert f"record:={os.path.abspath('out/run.rrd')}" in cmd


def test_record_view_alone_records_without_serving(tmp_path):
    cmds, every = commands(tmp_path, "--record-view", "run.rrd")
    assert "serve:=false" in " ".join(cmds["view"]) and every > 0


def test_no_view_no_node_and_no_scene_topics(tmp_path):
    cmds, every = commands(tmp_path)
    assert "view" not in cmds and every == 0


def test_view_parameters_are_described():
    from excavation_simulation import view_node

    assert all(p.description for p in view_node.PARAMS.values())
    assert {"serve", "web_port", "grpc_port", "record"} <= set(view_node.PARAMS)
