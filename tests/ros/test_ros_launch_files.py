"""Launch files parse and name only executables and config files that exist (static: `launch` is not
installable here, so they are read with ast, never imported)."""

import ast
import os
import re

import pytest

from conftest import PKG, SIM_PKG

pytestmark = pytest.mark.timeout(30)


def _console_scripts(pkg_dir=PKG):
    tree = ast.parse(open(os.path.join(pkg_dir, "setup.py")).read())
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


SIM_LAUNCH = os.path.join(SIM_PKG, "launch", "sim.launch.py")
REAL_LAUNCH = os.path.join(PKG, "launch", "real.launch.py")


def test_the_graph_names_existing_executables_and_configured_nodes():
    """sim.launch.py and launch_stack both start excavation_simulation.graph: its nodes exist as console
    scripts of their package, have a section in sim.yaml, and each argument targets declared parameters."""
    import importlib

    import yaml

    from excavation_simulation import graph, launcher

    scripts = {graph.PACKAGE: _console_scripts(SIM_PKG), graph.ROBOT_PACKAGE: _console_scripts(PKG)}
    data = yaml.safe_load(open(os.path.join(SIM_PKG, "config", graph.CONFIG_FILE)))
    params = {}
    for n in graph.NODES:
        assert n.executable in scripts[n.package], f"{n.package} has no executable {n.executable}"
        assert "ros__parameters" in data[n.name], n.name
        params[n.name] = importlib.import_module(n.module).PARAMS
    assert launcher.NODES == tuple(n.name for n in graph.NODES)
    for a in graph.ARGUMENTS:
        assert a.description and a.targets, a.name
        for node, param in a.targets:
            assert param in params[node], f"argument {a.name} sets unknown {node}.{param}"
    for (node, param), name in graph.CONFIG_FILE_PARAMETERS.items():
        assert param in params[node] and os.path.isfile(os.path.join(SIM_PKG, "config", name)), (node, param)
    defaults = graph.argument_defaults(os.path.join(SIM_PKG, "config", graph.CONFIG_FILE))
    assert defaults["resolution"] == str(data["sim_world"]["ros__parameters"]["resolution_mm"])


def test_sim_launch_reads_the_graph_and_describes_its_arguments():
    tree = ast.parse(open(SIM_LAUNCH).read(), filename=SIM_LAUNCH)
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)
    names = {n.names[0].name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "excavation_simulation"}
    assert "graph" in names, "sim.launch.py must start the graph the pip launcher starts"
    consts = _constants(tree)
    assert consts["PACKAGE"] == "excavation_simulation" and consts["CONFIG_FILE"] == "sim.yaml"
    assert os.path.isfile(os.path.join(SIM_PKG, "config", consts["CONFIG_FILE"]))
    own = _declared_args(SIM_LAUNCH)
    assert {"record", "config", "dds_profile"} <= own


def test_every_launch_argument_is_described_and_finite_choices_are_choices():
    from excavation_simulation import graph

    assert all(a.description for a in graph.ARGUMENTS)
    assert {a.name: a.choices for a in graph.ARGUMENTS if a.choices} == {
        "randomization": ("true", "false"), "qos": ("reliable", "best_effort")}
    for path in (SIM_LAUNCH, REAL_LAUNCH):
        tree = ast.parse(open(path).read(), filename=path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "DeclareLaunchArgument":
                kws = {kw.arg: kw.value for kw in node.keywords}
                assert "description" in kws, f"{path}: an argument has no description"
                if isinstance(node.args[0], ast.Constant):
                    default = kws.get("default_value")
                    if isinstance(default, ast.Constant) and default.value in ("true", "false"):
                        assert "choices" in kws, f"{path}: boolean argument {node.args[0].value} lists no choices"


def test_real_launch_names_existing_executables_and_offers_mock_hardware():
    tree = ast.parse(open(REAL_LAUNCH).read(), filename=REAL_LAUNCH)
    execs = set(_kw_strings(tree, "executable"))
    assert execs == {"ur5e_driver", "perception", "policy", "rtde_emulator"}
    assert execs <= _console_scripts(PKG)
    assert set(_kw_strings(tree, "package")) == {"excavation"}, "the robot launch starts nothing of the simulation"
    assert {"robot_ip", "use_mock_hardware", "policy_bundle", "tray_calibration", "dds_profile"} <= _declared_args(REAL_LAUNCH)
    for y in {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and str(n.value).endswith(".yaml")}:
        assert y == "calibration.yaml" or os.path.isfile(os.path.join(PKG, "config", y)), y  # calibration.yaml: the cell's


def test_every_declared_parameter_is_documented_in_sim_yaml():
    import importlib

    import yaml

    from excavation_simulation import graph

    data = yaml.safe_load(open(os.path.join(SIM_PKG, "config", "sim.yaml")))
    for n in graph.NODES:
        params = importlib.import_module(n.module).PARAMS
        assert set(params) == set(data[n.name]["ros__parameters"]), n.name
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

    from excavation_simulation import launcher

    path = os.path.join(PKG, "config", launcher.DDS_PROFILE_FILE)  # the robot package ships it
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

    assert "dds_profile" in _declared_args(SIM_LAUNCH) and "dds_profile" in _declared_args(REAL_LAUNCH)
    assert _constants(ast.parse(open(SIM_LAUNCH).read()))["DDS_PROFILE_FILE"] == launcher.DDS_PROFILE_FILE


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

    import excavation_contract as contract
    from excavation.nodes.policy_node import compute_target

    xyz, p, clipped = compute_target([0.0, 0.0, 0.1], 0.0, [0.001, 0.0, 0.0, 0.0])
    assert clipped == [] and np.allclose(xyz, [0.001, 0.0, 0.1])
    big = 10 * np.asarray(contract.ACTION_LIMIT, float)
    xyz, p, clipped = compute_target([0.0, 0.0, 0.1], 0.0, big)
    assert len(clipped) == 1 and clipped[0].startswith("action") and np.allclose(xyz - [0, 0, 0.1], contract.ACTION_LIMIT[:3])
    xyz, p, clipped = compute_target(contract.WORKSPACE_MAX, contract.PITCH_LIMIT_RAD[1], [0.001, 0.0, 0.0, 0.001])
    assert any(c.startswith("target") for c in clipped) and np.allclose(xyz, contract.WORKSPACE_MAX)
    assert p == contract.PITCH_LIMIT_RAD[1]
