"""Launch files parse and name only executables and config files that exist (static: `launch` is not
installable here, so they are read with ast, never imported)."""

import ast
import os
import re

import pytest

from conftest import PKG, REPO

pytestmark = pytest.mark.timeout(30)


def _console_scripts():
    tree = ast.parse(open(os.path.join(PKG, "setup.py")).read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            m = re.match(r"^\s*([A-Za-z_][\w]*)\s*=\s*[\w.]+:\w+\s*$", node.value)
            if m:
                names.add(m.group(1))
    return names


def _constants(tree):
    """Module-level NAME = "string" assignments (launch files name their package and config that way)."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    out[t.id] = node.value.value
    return out


def _kw_strings(tree, key):
    consts, out = _constants(tree), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg == key and isinstance(kw.value, ast.Constant):
                    out.append(kw.value.value)
                elif kw.arg == key and isinstance(kw.value, ast.Name):
                    assert kw.value.id in consts, f"{key}={kw.value.id} is not a module-level string constant"
                    out.append(consts[kw.value.id])
    return out


def test_sim_launch_parses_and_references_exist():
    path = os.path.join(REPO, "launch", "sim.launch.py")
    tree = ast.parse(open(path).read(), filename=path)
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)
    scripts = _console_scripts()
    execs = _kw_strings(tree, "executable")
    assert set(execs) >= {"sim_world", "sim_camera", "sim_robot", "perception", "policy", "episode_runner"}
    assert set(execs) <= scripts, f"unknown executables {set(execs) - scripts}"
    assert set(_kw_strings(tree, "package")) == {"excavation"}
    consts = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    yamls = {c for c in consts if c.endswith(".yaml")}
    assert yamls, "the launch file names no config file"
    for y in yamls:
        assert os.path.isfile(os.path.join(PKG, "config", y)), y
    # Every launch argument is described, and the documented ones are there.
    args = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "DeclareLaunchArgument":
            desc = [kw for kw in node.keywords if kw.arg == "description"]
            args[node.args[0].value] = bool(desc and desc[0].value.value)
    assert {"policy", "resolution", "depth_topic", "info_topic", "qos", "record"} <= set(args)
    assert all(args.values())


def test_all_launch_files_parse_and_name_existing_executables():
    scripts = _console_scripts()
    folder = os.path.join(REPO, "launch")
    for name in os.listdir(folder):
        if name.endswith(".launch.py"):
            tree = ast.parse(open(os.path.join(folder, name)).read(), filename=name)
            assert set(_kw_strings(tree, "executable")) <= scripts, name


def test_config_names_every_node_and_launcher_uses_it():
    import yaml

    from excavation import launcher

    data = yaml.safe_load(open(os.path.join(PKG, "config", "sim.yaml")))
    assert set(launcher.NODES) <= set(data)
    for n in launcher.NODES:
        assert "ros__parameters" in data[n]
    # The console scripts the launcher's modules stand for exist in setup.py.
    assert set(launcher.NODES) <= _console_scripts()


def test_every_declared_parameter_is_documented_in_sim_yaml():
    import importlib

    import yaml

    data = yaml.safe_load(open(os.path.join(PKG, "config", "sim.yaml")))
    mods = {"sim_world": "sim_world", "sim_camera": "sim_camera", "sim_robot": "sim_robot",
            "perception": "perception_node", "policy": "policy_node", "episode_runner": "episode_runner"}
    for node, mod in mods.items():
        params = importlib.import_module(f"excavation.nodes.{mod}").PARAMS
        assert set(params) == set(data[node]["ros__parameters"]), node
        assert all(p.description for p in params.values())


def _declared_args(path):
    tree = ast.parse(open(path).read(), filename=path)
    return {node.args[0].value for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "DeclareLaunchArgument"}


def test_dds_profile_is_shipped_and_given_to_the_simulated_stack(tmp_path):
    """Depth frames (640x480 16UC1 = 600 kB) need a shared-memory segment larger than Fast DDS's
    default 512 kB; the profile that gives one is installed, used by launch_stack and sim.launch.py
    by default (an environment's own profile wins), optional in real.launch.py."""
    import xml.etree.ElementTree as ET

    from excavation import launcher

    path = os.path.join(PKG, "config", launcher.DDS_PROFILE_FILE)
    ns = {"p": "http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"}
    root = ET.parse(path).getroot()
    kinds = {d.findtext("p:type", namespaces=ns): d for d in root.iterfind(".//p:transport_descriptor", ns)}
    assert set(kinds) == {"SHM", "UDPv4"}, "shared memory for frames, UDPv4 kept for discovery and other hosts"
    assert int(kinds["SHM"].findtext("p:segment_size", namespaces=ns)) >= 4 * 640 * 480 * 2
    participant = root.find(".//p:participant", ns)
    assert participant.get("is_default_profile") == "true"
    assert participant.findtext(".//p:useBuiltinTransports", namespaces=ns) == "false"
    assert "config/*.xml" in open(os.path.join(PKG, "setup.py")).read(), "setup.py does not install the profile"

    env = launcher.dds_environment(None, {})
    assert set(env) == set(launcher.DDS_PROFILE_ENV) and all(v == os.path.abspath(path) for v in env.values())
    assert launcher.dds_environment(None, {"FASTRTPS_DEFAULT_PROFILES_FILE": "/mine.xml"}) == {}
    assert launcher.dds_environment("none", {}) == {}
    own = tmp_path / "own.xml"
    own.write_text("<profiles/>")
    assert set(launcher.dds_environment(str(own), {}).values()) == {str(own)}
    with pytest.raises(ValueError):
        launcher.dds_environment(str(tmp_path / "missing.xml"), {})

    sim = os.path.join(REPO, "launch", "sim.launch.py")
    assert "dds_profile" in _declared_args(sim) and "dds_profile" in _declared_args(os.path.join(REPO, "launch", "real.launch.py"))
    assert _constants(ast.parse(open(sim).read()))["DDS_PROFILE_FILE"] == launcher.DDS_PROFILE_FILE


def test_the_configs_relative_policy_path_is_found_from_any_working_folder(tmp_path, monkeypatch):
    from excavation import ros_common as rc

    monkeypatch.chdir(tmp_path)
    found = rc.resolve_bundle_path("policies/default")  # config/sim.yaml's policy_path
    assert os.path.isfile(os.path.join(found, "policy.json"))
    assert rc.resolve_bundle_path("policies/no_such_bundle") == "policies/no_such_bundle"  # the loader names it
    (tmp_path / "policies" / "default").mkdir(parents=True)
    assert rc.resolve_bundle_path("policies/default") == "policies/default"  # the working folder's comes first


def test_policy_targets_say_what_was_clipped():
    import numpy as np

    from excavation import contract
    from excavation.nodes.policy_node import compute_target

    xyz, p, clipped = compute_target([0.0, 0.0, 0.1], 0.0, [0.001, 0.0, 0.0, 0.0])
    assert clipped == [] and np.allclose(xyz, [0.001, 0.0, 0.1])
    big = 10 * np.asarray(contract.ACTION_LIMIT, float)
    xyz, p, clipped = compute_target([0.0, 0.0, 0.1], 0.0, big)
    assert len(clipped) == 1 and clipped[0].startswith("action") and np.allclose(xyz - [0, 0, 0.1], contract.ACTION_LIMIT[:3])
    xyz, p, clipped = compute_target(contract.WORKSPACE_MAX, contract.PITCH_LIMIT_RAD[1], [0.001, 0.0, 0.0, 0.001])
    assert any(c.startswith("target") for c in clipped) and np.allclose(xyz, contract.WORKSPACE_MAX)
    assert p == contract.PITCH_LIMIT_RAD[1]
