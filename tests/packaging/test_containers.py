"""The container files, checked without building (a build takes many minutes: scripts/build_containers.sh).

Per Dockerfile in docker/: the build arguments exist with defaults (BASE_IMAGE before FROM, so the same file
builds on the official base and on the local Debian one), every ``${VAR}`` a step uses is declared, every COPY
source exists in the tree and is not excluded by .dockerignore, the ENTRYPOINT is a file the image copies (and
executable), the CMD's program is a console script of a package the image installs (setup.py / pyproject.toml /
setup.cfg), and the pins the images take from requirements.txt are there. The results file of
scripts/build_containers.sh, when it exists, has exactly the keys that script writes."""

from __future__ import annotations

import ast
import configparser
import fnmatch
import json
import os
import re
import subprocess
import sys
import tomllib

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DOCKER = os.path.join(REPO, "docker")
RESULTS = os.path.join(REPO, "bench", "results", "containers.json")
WORKDIR = "/ws"
# Dockerfile -> (build arguments that must have defaults, the official base, package folders it copies and installs)
DOCKERFILES = {
    "Dockerfile.training": ({"BASE_IMAGE", "PYTHON", "TORCH_INDEX_URL"}, "nvidia/cuda:",
                            ("ros2_ws/src/excavation_contract", "sim", "training")),
    "Dockerfile.ros": ({"BASE_IMAGE", "ROS_FROM", "PYTHON", "TORCH_INDEX_URL"}, "ros:jazzy-ros-base",
                       ("ros2_ws/src/excavation_contract", "ros2_ws/src/excavation", "ros2_ws/src/excavation_simulation",
                        "sim")),
}
IMAGE_KEYS = {"built", "size_mb", "build_s", "checks"}
CHECK_KEYS = {"name", "passed", "detail"}


def instructions(path: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    out, buf = [], ""
    for raw in open(path).read().splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    assert not buf, f"{path} ends in a continuation line"
    return out


def args_with_defaults(ins: list[tuple[str, str]]) -> dict[str, str | None]:
    found = {}
    for word, rest in ins:
        if word == "ARG":
            name, eq, default = rest.partition("=")
            found[name.strip()] = default.strip().strip('"') if eq else None
    return found


def dockerignore() -> list[str]:
    path = os.path.join(REPO, ".dockerignore")
    if not os.path.isfile(path):
        return []
    return [line.strip() for line in open(path) if line.strip() and not line.startswith("#")]


def ignored(rel: str, patterns: list[str]) -> bool:
    """Whether .dockerignore drops rel or a folder above it (patterns as Docker reads them, no '!' used here)."""
    parts = rel.strip("/").split("/")
    for i in range(1, len(parts) + 1):
        prefix = "/".join(parts[:i])
        for pat in patterns:
            pat = pat.strip("/")
            if fnmatch.fnmatchcase(prefix, pat) or (pat.startswith("**/") and fnmatch.fnmatchcase(parts[i - 1], pat[3:])):
                return True
    return False


def copies(ins) -> list[tuple[list[str], str]]:
    out = []
    for word, rest in ins:
        if word in ("COPY", "ADD"):
            words = [w for w in rest.split() if not w.startswith("--")]
            assert not any(w.startswith("--from") for w in rest.split()), "multi-stage COPY is not expected here"
            out.append((words[:-1], words[-1]))
    return out


def exec_form(ins, word: str) -> list[str] | None:
    values = [rest for w, rest in ins if w == word]
    if not values:
        return None
    value = json.loads(values[-1])  # the JSON (exec) form: no shell in between
    assert isinstance(value, list) and value and all(isinstance(v, str) for v in value), f"{word} {values[-1]}"
    return value


def console_scripts(pkg_dir: str) -> set[str]:
    """Console scripts declared by a package folder: setup.py entry_points, pyproject [project.scripts], setup.cfg."""
    names: set[str] = set()
    root = os.path.join(REPO, pkg_dir)
    setup_py = os.path.join(root, "setup.py")
    if os.path.isfile(setup_py):
        for node in ast.walk(ast.parse(open(setup_py).read())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and "=" in node.value and ":" in node.value:
                name, _, target = node.value.partition("=")
                if target.strip().count(":") == 1 and re.fullmatch(r"[\w.-]+", name.strip()):
                    names.add(name.strip())
    pyproject = os.path.join(root, "pyproject.toml")
    if os.path.isfile(pyproject):
        with open(pyproject, "rb") as f:
            names |= set(tomllib.load(f).get("project", {}).get("scripts", {}))
    cfg_path = os.path.join(root, "setup.cfg")
    cfg = configparser.ConfigParser()
    if os.path.isfile(cfg_path) and cfg.read(cfg_path) and cfg.has_option("options.entry_points", "console_scripts"):
        for line in cfg.get("options.entry_points", "console_scripts").splitlines():
            if "=" in line:
                names.add(line.split("=", 1)[0].strip())
    return names


def tree_path(image_path: str, ins) -> str | None:
    """The tree file an absolute path of the image comes from, through the COPY instructions (a file copied
    into a folder keeps its name; a folder's contents land in the destination)."""
    for sources, dest in copies(ins):
        dest_abs = dest if dest.startswith("/") else f"{WORKDIR}/{dest}"
        for src in sources:
            if os.path.isdir(os.path.join(REPO, src)):
                base = dest_abs.rstrip("/") + "/"
                if image_path.startswith(base):
                    return os.path.normpath(os.path.join(src, image_path[len(base):]))
            elif dest.endswith("/"):
                if image_path == dest_abs + os.path.basename(src):
                    return src
            elif image_path == dest_abs:
                return src
    return None


@pytest.fixture(params=sorted(DOCKERFILES))
def dockerfile(request):
    return request.param, instructions(os.path.join(DOCKER, request.param))


def test_dockerfiles_are_the_ones_listed():
    assert {f for f in os.listdir(DOCKER) if f.startswith("Dockerfile")} == set(DOCKERFILES)


def test_build_args_have_defaults_and_base_is_one(dockerfile):
    name, ins = dockerfile
    required, official, _ = DOCKERFILES[name]
    args = args_with_defaults(ins)
    for arg in required:
        assert args.get(arg), f"{name}: ARG {arg} is missing or has no default"
    first_from = next(i for i, (w, _) in enumerate(ins) if w == "FROM")
    before = args_with_defaults(ins[:first_from])
    assert "BASE_IMAGE" in before, f"{name}: ARG BASE_IMAGE must come before FROM"
    assert before["BASE_IMAGE"].startswith(official), f"{name}: default base {before['BASE_IMAGE']!r}, not {official}"
    assert ins[first_from][1] in ("${BASE_IMAGE}", "$BASE_IMAGE"), f"{name}: FROM {ins[first_from][1]}"
    assert sum(w == "FROM" for w, _ in ins) == 1


def test_every_variable_a_step_uses_is_declared(dockerfile):
    name, ins = dockerfile
    declared = set(args_with_defaults(ins))
    for word, rest in ins:
        if word == "ENV":
            declared |= set(re.findall(r"(\w+)=", rest))
    declared |= {"PATH", "HOME"}
    for word, rest in ins:
        if word in ("RUN", "ENV", "COPY", "WORKDIR", "FROM"):
            # ${VAR} and "$VAR" in the Dockerfile's own text (shell loop variables are lower case here)
            used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)\}", rest)) | set(re.findall(r"\$([A-Z_][A-Z0-9_]*)", rest))
            assert used <= declared, f"{name}: {word} uses undeclared {sorted(used - declared)}"


def test_copy_sources_exist_and_are_in_the_build_context(dockerfile):
    name, ins = dockerfile
    patterns = dockerignore()
    assert copies(ins), f"{name} copies nothing"
    for sources, _ in copies(ins):
        for src in sources:
            assert not os.path.isabs(src) and ".." not in src.split("/"), f"{name}: COPY {src} leaves the context"
            assert os.path.exists(os.path.join(REPO, src)), f"{name}: COPY source {src} is not in the tree"
            if src != ".":
                assert not ignored(src, patterns), f"{name}: COPY source {src} is excluded by .dockerignore"


def test_dockerignore_keeps_local_state_out():
    patterns = dockerignore()
    for path in (".venv", ".git", "runs", "build", "sim/excavation_sim.egg-info", "training/x/__pycache__"):
        assert ignored(path, patterns), f".dockerignore lets {path} into the images"
    for path in ("requirements.txt", "sim", "training", "ros2_ws/src", "policies/default", "docker/ros_entrypoint.sh"):
        assert not ignored(path, patterns), f".dockerignore drops {path}"


def test_entrypoint_and_cmd_exist(dockerfile):
    name, ins = dockerfile
    _, _, packages = DOCKERFILES[name]
    copied = [src for sources, _ in copies(ins) for src in sources]
    for pkg in packages:
        assert any(src == "." or pkg == src or pkg.startswith(src.rstrip("/") + "/") for src in copied), \
            f"{name} does not copy {pkg}"
    entrypoint, cmd = exec_form(ins, "ENTRYPOINT"), exec_form(ins, "CMD")
    assert cmd, f"{name} has no CMD"
    if entrypoint:
        src = tree_path(entrypoint[0], ins)
        assert src, f"{name}: ENTRYPOINT {entrypoint[0]} is not a file the image copies"
        path = os.path.join(REPO, src)
        assert os.path.isfile(path) and os.access(path, os.X_OK), f"{name}: {src} is missing or not executable"
        if path.endswith(".sh"):
            assert subprocess.run(["bash", "-n", path]).returncode == 0
    scripts = set().union(*(console_scripts(p) for p in packages))
    assert cmd[0] in scripts, f"{name}: CMD {cmd[0]!r} is not a console script of {packages} ({sorted(scripts)})"


def test_pins_the_images_take_from_requirements():
    req = [line.strip() for line in open(os.path.join(REPO, "requirements.txt"))]
    assert sum(line.startswith("torch==") for line in req) == 1, "the images take torch's pin from requirements.txt"
    for line in open(os.path.join(DOCKER, "ros_packages.txt")):
        name = line.split("#", 1)[0].strip()
        if name:
            assert any(re.match(rf"^{re.escape(name)}(\[[^]]*\])?==", r, re.I) for r in req), \
                f"docker/ros_packages.txt names {name}, which requirements.txt does not pin"
    assert any(r.startswith("ros-jazzy-rclpy") for r in req), "ROS_FROM=pip installs requirements.txt's ros-jazzy wheels"


def test_build_script_help():
    script = os.path.join(REPO, "scripts", "build_containers.sh")
    assert os.access(script, os.X_OK)
    out = subprocess.run([sys.executable, os.path.join(DOCKER, "build_containers.py"), "--help"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and "containers.json" in out.stdout, out.stderr


def test_results_file_keys():
    if not os.path.isfile(RESULTS):
        pytest.skip("no bench/results/containers.json yet (scripts/build_containers.sh writes it)")
    sys.path.insert(0, DOCKER)
    try:
        import build_containers
    finally:
        sys.path.remove(DOCKER)
    data = json.load(open(RESULTS))
    assert set(data) == {"images", "machine", "revision"}, sorted(data)
    assert isinstance(data["revision"], str) and data["revision"]
    assert isinstance(data["machine"], dict)
    assert set(data["images"]) <= set(build_containers.IMAGES) and data["images"], sorted(data["images"])
    for name, entry in data["images"].items():
        assert set(entry) == IMAGE_KEYS, f"{name}: {sorted(entry)}"
        assert isinstance(entry["built"], bool)
        assert entry["checks"], f"{name} has no checks"
        for c in entry["checks"]:
            assert set(c) == CHECK_KEYS, f"{name}: {sorted(c)}"
            assert isinstance(c["name"], str) and isinstance(c["passed"], bool) and isinstance(c["detail"], str)
        if entry["built"]:
            assert entry["size_mb"] > 0


# Paths inside the images (and the build's own mount points) may be named; the host's may not.
IN_IMAGE_ROOTS = ("/ws", "/opt/venv", "/opt/torch-index", "/opt/ros", "/etc/pip.conf", "/etc/pip-build-ca.crt",
                  "/dev/shm", "/usr", "/bin", "/tmp/pins.txt")


def test_results_file_names_no_host_path():
    if not os.path.isfile(RESULTS):
        pytest.skip("no bench/results/containers.json yet (scripts/build_containers.sh writes it)")
    text = open(RESULTS).read()
    paths = set(re.findall(r"(?<![\w.:/<>-])(/(?:[\w.+-]+/)*[\w.+-]+)", text))
    host = sorted(p for p in paths if not p.startswith(IN_IMAGE_ROOTS) and p.count("/") > 1)
    assert not host, f"host paths in {RESULTS} (the script redacts them as <work>, <repo>, ...): {host[:10]}"
