"""`colcon build` of ros2_ws (colcon from PyPI, pinned) gives the layout `ros2 run` / `ros2 launch` expect.

Builds a copy of ros2_ws/src in a temporary folder, then checks per package: every console script in
`lib/<pkg>/` (where launch_ros looks, thanks to setup.cfg), launch files and config in `share/<pkg>/`,
the ament index marker, and that package.xml declares what the package's code imports."""

from __future__ import annotations

import ast
import configparser
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SRC = os.path.join(REPO, "ros2_ws", "src")
PACKAGES = ("excavation_contract", "excavation", "excavation_simulation")
# What each package must install beyond its console scripts.
LAUNCH_FILES = {"excavation": {"real.launch.py"}, "excavation_simulation": {"sim.launch.py"}}
CONFIG_FILES = {"excavation": {"ur5e_driver.yaml", "calibration_robot.yaml", "fastdds_large_frames.xml"},
                "excavation_simulation": {"sim.yaml", "calibration_sim.yaml", "perception_sim.yaml"}}
MUST_RUN = {"excavation": {"ur5e_driver", "perception", "policy", "rtde_emulator", "calibrate_tray", "recorder"},
            "excavation_simulation": {"sim_world", "sim_camera", "sim_robot", "episode_runner", "launch_stack", "view"}}
# Imported top-level module -> the package.xml key that provides it (rosdep keys for Python libraries).
ROSDEP = {"numpy": "python3-numpy", "yaml": "python3-yaml", "torch": "python3-torch", "scipy": "python3-scipy",
          "cv2": "python3-opencv", "rtde_control": "python3-ur-rtde-pip", "rtde_receive": "python3-ur-rtde-pip",
          "rtde_io": "python3-ur-rtde-pip",
          "rosbags": "python3-rosbags-pip", "psutil": "python3-psutil",
          "excavation_sim": "python3-excavation-sim-pip", "rerun": "python3-rerun-sdk-pip"}
ROS_PACKAGES = {"rclpy", "std_msgs", "std_srvs", "sensor_msgs", "geometry_msgs", "trajectory_msgs", "visualization_msgs",
                "diagnostic_msgs", "rosgraph_msgs", "builtin_interfaces", "ament_index_python", "rcl_interfaces",
                "launch", "launch_ros", *PACKAGES}
STDLIB = set(sys.stdlib_module_names) | {"__future__", "setuptools"}


@pytest.fixture(scope="module")
def install(tmp_path_factory):
    colcon = shutil.which("colcon", path=os.path.dirname(sys.executable)) or shutil.which("colcon")
    assert colcon, "colcon is not installed (requirements.txt pins colcon-core, colcon-ros, colcon-python-setup-py)"
    ws = tmp_path_factory.mktemp("ws")
    shutil.copytree(SRC, ws / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", "build", "install"))
    out = subprocess.run([colcon, "build", "--base-paths", "src"], cwd=ws, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    return ws / "install"


def console_scripts(pkg: str) -> set[str]:
    """The package's setup.py console scripts, read by the one reader the container checks also use."""
    sys.path.insert(0, os.path.join(REPO, "docker"))
    try:
        from build_containers import console_scripts as read
    finally:
        sys.path.remove(os.path.join(REPO, "docker"))
    return read(pkg)


@pytest.mark.parametrize("pkg", PACKAGES)
def test_setup_cfg_puts_executables_where_launch_ros_looks(pkg):
    cfg = configparser.ConfigParser()
    assert cfg.read(os.path.join(SRC, pkg, "setup.cfg")), f"{pkg} has no setup.cfg"
    assert cfg["develop"]["script_dir"] == f"$base/lib/{pkg}"
    assert cfg["install"]["install_scripts"] == f"$base/lib/{pkg}"


@pytest.mark.parametrize("pkg", PACKAGES)
def test_install_layout(install, pkg):
    prefix = install / pkg
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / pkg).is_file()
    assert (prefix / "share" / pkg / "package.xml").is_file()
    scripts = console_scripts(pkg)
    assert scripts >= MUST_RUN.get(pkg, set()), f"{pkg} lacks executables {MUST_RUN[pkg] - scripts}"
    for name in scripts:
        exe = prefix / "lib" / pkg / name
        assert exe.is_file() and os.access(exe, os.X_OK), f"{exe} is missing or not executable"
    assert not (prefix / "bin").exists() or not any((prefix / "bin").iterdir()), f"{pkg} installs into bin/"
    launch = {p.name for p in (prefix / "share" / pkg / "launch").glob("*.launch.py")}
    assert launch == LAUNCH_FILES.get(pkg, set()), f"{pkg} launch files {launch}"
    config = {p.name for p in (prefix / "share" / pkg / "config").glob("*")}
    assert config >= CONFIG_FILES.get(pkg, set()), f"{pkg} config lacks {CONFIG_FILES[pkg] - config}"


def imported_top_levels(pkg: str) -> set[str]:
    """Top-level modules the package's code imports (lazy imports inside functions included)."""
    names = set()
    for root in (os.path.join(SRC, pkg, pkg), os.path.join(SRC, pkg, "launch")):
        for dirpath, _, files in os.walk(root):
            for f in files:
                if f.endswith(".py"):
                    tree = ast.parse(open(os.path.join(dirpath, f)).read())
                    for node in ast.walk(tree):
                        if isinstance(node, ast.Import):
                            names |= {a.name.split(".")[0] for a in node.names}
                        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                            names.add(node.module.split(".")[0])
                        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                            # "pkg/msg/Name" strings: message types imported lazily (interfaces.msg_type)
                            m = re.match(r"^([a-z_]+)/(msg|srv)/[A-Z]\w*$", node.value)
                            if m:
                                names.add(m.group(1))
    return names - STDLIB - {pkg}


@pytest.mark.parametrize("pkg", PACKAGES)
def test_package_xml_declares_what_the_code_imports(pkg):
    root = ET.parse(os.path.join(SRC, pkg, "package.xml")).getroot()
    assert root.findtext("name") == pkg
    declared = {e.text.strip() for tag in ("depend", "exec_depend", "build_depend") for e in root.findall(tag)}
    needed = set()
    for mod in imported_top_levels(pkg):
        if mod in ROS_PACKAGES:
            needed.add(mod)
        else:
            assert mod in ROSDEP, f"{pkg} imports {mod!r}: add its package.xml key to this test's ROSDEP table"
            needed.add(ROSDEP[mod])
    assert needed <= declared, f"{pkg}/package.xml does not declare {sorted(needed - declared)}"
    ros_declared = {d for d in declared if d in ROS_PACKAGES and d not in ("launch", "launch_ros")}
    assert ros_declared <= needed, f"{pkg}/package.xml declares {sorted(ros_declared - needed)} that nothing imports"
