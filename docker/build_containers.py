"""Build the training and the ROS image on this machine and run checks inside them.

Without Docker Hub or nvcr: the base is a Debian 12 (bookworm) made here with ``mmdebstrap --variant=minbase``
and imported with ``podman import``; each image is built from its unchanged Dockerfile (``docker/``) with
``podman build --isolation chroot`` and build arguments that select the local base (and, for the ROS image,
ROS 2 from its PyPI wheels). pip inside the build uses this machine's pip sources (PyPI plus the local wheel
folders of its pip configuration, mounted read-only for the build only; torch is the CPU wheel pinned in
requirements.txt), as scripts/setup.sh does here.

``podman run`` cannot start a container in this sandbox (crun: setrlimit RLIMIT_NOFILE: Operation not
permitted, no CAP_SYS_RESOURCE), so the checks run in ``buildah run --isolation chroot`` containers of the built
images, inside ``unshare --net --mount`` with only loopback up and a private /dev/shm: nothing can download at
run time and DDS stays inside the check. On a normal machine the same images run with ``docker run``
(docker/README.md).

Checks: training image: ``excavation-train train`` a few iterations at 70 mm on the CPU with its run folder on a
bound volume, then ``excavation-train export`` of a bundle onto another; ROS image: the simulated stack
(``launch_stack``) for one episode through the image's entry point, and ``colcon build`` of the workspace with
its install layout checked. Both: the image's CMD through its ENTRYPOINT, no pip cache in the image.

Writes ``bench/results/containers.json`` (``images`` -> name -> built, size_mb, build_s, checks; ``machine``;
``revision``). Needs root, podman, buildah, mmdebstrap (``apt-get install podman buildah mmdebstrap``).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from bench.provenance import revision  # noqa: E402

RESULTS = REPO / "bench" / "results" / "containers.json"
BASE_TAG = "localhost/excavation-debian:bookworm"
IMAGES = {
    # name -> Dockerfile, local tag, build arguments for the local Debian base
    "excavation-train": ("docker/Dockerfile.training", "localhost/excavation-train:local",
                         {"BASE_IMAGE": BASE_TAG, "PYTHON": "python3.11"}),
    "excavation-ros": ("docker/Dockerfile.ros", "localhost/excavation-ros:local",
                       {"BASE_IMAGE": BASE_TAG, "ROS_FROM": "pip", "PYTHON": "python3"}),
}
SHORT = {"training": "excavation-train", "ros": "excavation-ros"}
ROS_PACKAGES = ("excavation_contract", "excavation", "excavation_simulation")
ROS_ENV = {"ROS_DOMAIN_ID": os.environ.get("ROS_DOMAIN_ID", "42"), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
           "PYTHONUNBUFFERED": "1"}


def log(msg: str) -> None:
    print(f"[build_containers {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sh(cmd: list[str], timeout: float | None = None, log_file: Path | None = None, **kw) -> tuple[int, str, float]:
    """Run a command in its own process group; returns (exit code, its output, seconds). On a timeout the
    whole group is killed (exit 124). The output also goes to log_file."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            **kw)
    try:
        text, _ = proc.communicate(timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        text, _ = proc.communicate()
        rc, text = 124, (text or "") + f"\n[timed out after {timeout} s]"
    dt = time.monotonic() - t0
    if log_file is not None:
        with open(log_file, "a") as f:
            f.write(f"$ {shlex.join(cmd)}\n{text}\n[exit {rc} after {dt:.1f} s]\n\n")
    return rc, text, dt


def tail(text: str, n: int = 600) -> str:
    text = text.strip()
    return text if len(text) <= n else "..." + text[-n:]


def rnd(v, nd: int = 1):
    return round(v, nd) if isinstance(v, (int, float)) else v


def check(name: str, passed: bool, detail: str) -> dict:
    log(f"check {name}: {'PASS' if passed else 'FAIL'} - {detail[:300]}")
    return {"name": name, "passed": bool(passed), "detail": detail}


# ------------------------------------------------------------------ local base and pip sources
def make_base(work: Path, mirror: str, rebuild: bool, logs: Path) -> dict:
    tar = work / "debian-bookworm-minbase.tar"
    info = {"image": BASE_TAG, "made_with": f"mmdebstrap --variant=minbase bookworm {mirror}"}
    if rebuild or not tar.exists():
        tmp = tar.with_suffix(".tmp.tar")
        rc, out, dt = sh(["mmdebstrap", "--variant=minbase", "--mode=root", "--format=tar", "bookworm", str(tmp), mirror],
                         timeout=1800, log_file=logs / "base.log")
        if rc != 0:
            raise SystemExit(f"mmdebstrap failed (exit {rc}): {tail(out)}")
        tmp.rename(tar)
        info["mmdebstrap_s"] = round(dt, 1)
    else:
        info["mmdebstrap_s"] = None  # reused from an earlier run (--rebuild-base makes it again)
    info["tar_mb"] = round(tar.stat().st_size / 1e6, 1)
    rc, out, dt = sh(["podman", "import", str(tar), BASE_TAG], timeout=600, log_file=logs / "base.log")
    if rc != 0:
        raise SystemExit(f"podman import failed (exit {rc}): {tail(out)}")
    info["import_s"] = round(dt, 1)
    return info


def host_pip_sources() -> tuple[list[str], list[str], str | None]:
    """find-links, extra-index-url and cert (CA bundle) of this machine's pip configuration (what
    scripts/setup.sh installs with)."""
    rc, out, _ = sh([sys.executable, "-m", "pip", "config", "list"])
    find_links, extra, cert = [], [], os.environ.get("PIP_CERT")
    for line in out.splitlines() if rc == 0 else []:
        m = re.match(r"^[\w:.]+\.(find-links|extra-index-url|cert)='(.*)'$", line.strip())
        if m and m.group(1) == "cert":
            cert = cert or m.group(2)
        elif m:
            target = find_links if m.group(1) == "find-links" else extra
            for v in m.group(2).split():
                if v not in target:
                    target.append(v)
    return find_links, extra, cert


def local_path(url: str) -> str | None:
    if url.startswith("file://"):
        return url[len("file://"):]
    return url if url.startswith("/") else None


def pip_build_setup(work: Path, torch_pin: str) -> tuple[list[str], str, dict]:
    """Volumes for `podman build -v`, the TORCH_INDEX_URL, and what was used (for the results)."""
    find_links, extra, cert = host_pip_sources()
    volumes, used = [], {"find_links": [], "extra_index_url": []}
    lines = ["[global]"]
    if cert and os.path.isfile(cert):
        # The CA bundle this machine's pip trusts (HTTPS here goes through a proxy with its own CA), mounted
        # for the build only, beside the image's own bundle.
        volumes += ["-v", f"{cert}:/etc/pip-build-ca.crt:ro"]
        lines.append("cert = /etc/pip-build-ca.crt")
        used["cert"] = cert
    local_dirs = []
    for key, urls in (("find-links", find_links), ("extra-index-url", extra)):
        keep = []
        for u in urls:
            p = local_path(u)
            if p is None:
                keep.append(u)
            elif os.path.isdir(p):
                keep.append(u)
                # A local index (X/simple) links its files relatively (X/files): mount X.
                local_dirs.append(str(Path(p).parent) if Path(p).name == "simple" else p)
        if keep:
            lines.append(f"{key} = {' '.join(keep)}")
            used[key.replace("-", "_")] = keep
    conf = work / "pip.conf"
    conf.write_text("\n".join(lines) + "\n")
    volumes += ["-v", f"{conf}:/etc/pip.conf:ro"]
    for d in sorted(set(local_dirs)):
        volumes += ["-v", f"{d}:{d}:ro"]
    # torch: the CPU wheel of requirements.txt's pin from a local folder, as a one-package index mounted for the
    # build; without one, PyTorch's CPU index (needs download.pytorch.org).
    version = torch_pin.split("==", 1)[1]
    wheel = None
    for d in local_dirs:
        for f in sorted(Path(d).glob(f"torch-{version}+cpu-cp311-*.whl")):
            wheel = f
    if wheel is None:
        used["torch"] = "https://download.pytorch.org/whl/cpu"
        return volumes, "https://download.pytorch.org/whl/cpu", used
    index = work / "torch-index" / "torch"
    index.mkdir(parents=True, exist_ok=True)
    (index / "index.html").write_text(f'<html><body><a href="file://{wheel}">{wheel.name}</a></body></html>\n')
    volumes += ["-v", f"{work / 'torch-index'}:/opt/torch-index:ro"]
    used["torch"] = str(wheel)
    return volumes, "file:///opt/torch-index", used


# ------------------------------------------------------------------ build
def build(name: str, volumes: list[str], torch_index: str, logs: Path, timeout: float, cache: bool) -> dict:
    dockerfile, tag, args = IMAGES[name]
    args = {**args, "TORCH_INDEX_URL": torch_index}
    cmd = ["podman", "build", "--isolation", "chroot", "--pull=never", "-f", dockerfile, "-t", tag]
    if not cache:
        cmd.append("--no-cache")
    for k, v in args.items():
        cmd += ["--build-arg", f"{k}={v}"]
    cmd += volumes + ["."]
    log(f"building {name}: {shlex.join(cmd)}")
    log_file = logs / f"build-{name}.log"
    log_file.write_text("")
    rc, out, dt = sh(cmd, timeout=timeout, log_file=log_file, cwd=REPO)
    entry = {"built": rc == 0, "size_mb": None, "build_s": round(dt, 1), "checks": []}
    shown = " ".join(f"{k}={v}" for k, v in args.items())
    if rc == 0:
        entry["size_mb"] = image_size_mb(tag)
        largest, leftovers = inspect_image(tag, volumes)
        entry["checks"].append(check("build", True, f"podman build --isolation chroot -f {dockerfile} --build-arg "
                                     f"{shown}: {dt:.0f} s, {entry['size_mb']} MB; largest in the venv (MB): "
                                     f"{largest} (log {log_file})"))
        entry["checks"].append(check("build_mounts_not_in_image", not leftovers,
                                     "what the build mounted (pip.conf, CA bundle, local wheel folders, torch index) "
                                     f"left at most empty mount points in the image: {leftovers or 'yes'}"))
    else:
        entry["checks"].append(check("build", False, f"podman build -f {dockerfile} ({shown}) exit {rc} after "
                                     f"{dt:.0f} s: {tail(out, 1500)}"))
    return entry


def inspect_image(tag: str, volumes: list[str]) -> tuple[dict, list[str]]:
    """The largest distributions of the image's venv (MB), and the build's mount targets that hold anything."""
    rc, out, _ = sh(["podman", "image", "mount", tag])
    if rc != 0:
        return {}, [f"podman image mount: {tail(out, 200)}"]
    root = Path(out.strip())
    try:
        sizes = {}
        for site in (root / "opt" / "venv" / "lib").glob("python3*/site-packages"):
            for d in site.iterdir():
                if d.is_dir():
                    rc, du, _ = sh(["du", "-sm", str(d)])
                    if rc == 0:
                        sizes[d.name] = int(du.split()[0])
        largest = dict(sorted(sizes.items(), key=lambda kv: -kv[1])[:8])
        leftovers = []
        targets = [v.split(":")[1] for flag, v in zip(volumes[::2], volumes[1::2]) if flag == "-v"]
        for t in targets:
            p = root / t.lstrip("/")
            if p.is_dir() and any(p.iterdir()) or p.is_file() and p.stat().st_size > 0:
                leftovers.append(t)
        return largest, leftovers
    finally:
        sh(["podman", "image", "unmount", tag])


def image_size_mb(tag: str) -> float | None:
    rc, out, _ = sh(["podman", "image", "inspect", "--format", "{{.Size}}", tag])
    return round(int(out.strip()) / 1e6, 1) if rc == 0 and out.strip().isdigit() else None


def image_config(tag: str) -> dict:
    rc, out, _ = sh(["podman", "image", "inspect", tag])
    return json.loads(out)[0].get("Config", {}) if rc == 0 else {}


# ------------------------------------------------------------------ running inside an image
class Container:
    """A buildah working container of an image; commands run with `buildah run --isolation chroot` inside a
    fresh network namespace (loopback only) with a private /dev/shm."""

    def __init__(self, tag: str, logs: Path, name: str):
        self.tag, self.log_file = tag, logs / f"run-{name}.log"
        self.log_file.write_text("")
        rc, out, _ = sh(["buildah", "from", "--pull-never", tag], log_file=self.log_file)
        if rc != 0:
            raise RuntimeError(f"buildah from {tag}: {tail(out)}")
        self.id = out.strip().splitlines()[-1]

    def run(self, argv: list[str], volumes: dict[str, str] | None = None, env: dict[str, str] | None = None,
            workdir: str | None = None, timeout: float = 600) -> tuple[int, str, float]:
        inner = ["buildah", "run", "--isolation", "chroot"]
        for host, target in (volumes or {}).items():
            inner += ["-v", f"{host}:{target}"]
        for k, v in (env or {}).items():
            inner += ["--env", f"{k}={v}"]
        if workdir:
            inner += ["--workingdir", workdir]
        inner += [self.id, "--", *argv]
        script = "mount -t tmpfs -o size=4g tmpfs /dev/shm && ip link set lo up && exec " + shlex.join(inner)
        return sh(["unshare", "--net", "--mount", "--propagation", "private", "--", "sh", "-c", script],
                  timeout=timeout, log_file=self.log_file)

    def remove(self) -> None:
        sh(["buildah", "rm", self.id], log_file=self.log_file)


def default_command_check(ctr: Container, tag: str) -> dict:
    cfg = image_config(tag)
    argv = list(cfg.get("Entrypoint") or []) + list(cfg.get("Cmd") or [])
    rc, out, dt = ctr.run(argv, timeout=300)
    return check("default_command", rc == 0, f"ENTRYPOINT+CMD {shlex.join(argv)}: exit {rc} in {dt:.0f} s, "
                 f"no network: {tail(out, 160)}")


def no_network_check(ctr: Container) -> dict:
    probe = ("import socket\nfor host in ('pypi.org', '151.101.0.223'):\n    try:\n"
             "        socket.create_connection((host, 443), timeout=5)\n        print(host, 'CONNECTED')\n"
             "    except OSError as e:\n        print(host, 'no connection:', e)")
    rc, out, _ = ctr.run(["/opt/venv/bin/python", "-c", probe], timeout=60)
    return check("checks_ran_offline", rc == 0 and out.count("no connection") == 2 and "CONNECTED" not in out,
                 f"the checks' containers reach no network (a fresh network namespace, loopback only), so none of "
                 f"them downloaded anything: port 443 of pypi.org and of a PyPI address -> {tail(out, 300)}")


def no_pip_cache_check(ctr: Container) -> dict:
    probe = ("import os; c = '/root/.cache/pip'; n = sum(len(f) for _, _, f in os.walk(c)); "
             "p = '/etc/pip.conf'; s = os.path.getsize(p) if os.path.exists(p) else -1; "
             "print(f'pip cache files {n}; /etc/pip.conf bytes {s}')")
    rc, out, _ = ctr.run(["/opt/venv/bin/python", "-c", probe], timeout=120)
    m = re.search(r"pip cache files (\d+); /etc/pip.conf bytes (-?\d+)", out)
    ok = rc == 0 and m is not None and m.group(1) == "0" and int(m.group(2)) <= 0
    return check("no_pip_cache", ok, tail(out, 300) + " (the build's pip.conf is a read-only mount, not a layer: "
                 "-1 absent, 0 an empty mount point)")


def training_checks(tag: str, work: Path, logs: Path, iterations: int) -> list[dict]:
    checks = []
    runs, policies = work / "train-volumes" / "runs", work / "train-volumes" / "policies"
    for d in (runs, policies):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    ctr = Container(tag, logs, "excavation-train")
    try:
        checks.append(default_command_check(ctr, tag))
        rc, out, dt = ctr.run(["python", "-c", "import torch, warp, newton, excavation_sim, excavation_training; "
                               "print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), "
                               "'warp', warp.__version__, 'newton', newton.__version__)"], timeout=300)
        checks.append(check("imports", rc == 0, f"exit {rc} in {dt:.0f} s: {tail(out, 300)}"))
        vols = {str(runs): "/ws/runs", str(policies): "/ws/policies"}
        train = ["excavation-train", "train", "--preset", "cpu", "--set", "prpd.resolutions_mm=[70]",
                 "--iterations", str(iterations), "--no-progress", "--log-dir", "/ws/runs/container_check"]
        rc, out, dt = ctr.run(train, volumes=vols, workdir="/ws", timeout=1800)
        ckpt = runs / "container_check" / "checkpoints" / "latest.pt"
        report = re.search(r'"iterations":\s*(\d+)', out)
        checks.append(check("train_70mm_cpu", rc == 0 and ckpt.is_file(),
                            f"{shlex.join(train)} (runs/ bound from the host, no network): exit {rc} in {dt:.0f} s, "
                            f"iterations {report.group(1) if report else '?'}, host sees {ckpt.relative_to(work)}: "
                            f"{ckpt.is_file()}; {tail(out, 400)}"))
        export = ["excavation-train", "export", "/ws/runs/container_check", "--out", "/ws/policies/container_check",
                  "--eval-resolutions", "70", "--episodes", "4", "--num-envs", "4", "--overwrite"]
        rc, out, dt = ctr.run(export, volumes=vols, workdir="/ws", timeout=1200)
        bundle = policies / "container_check"
        meta = {}
        try:
            meta = json.loads((bundle / "policy.json").read_text())
        except (OSError, ValueError):
            pass
        ok = rc == 0 and (bundle / "policy.pt").is_file() and bool(meta)
        checks.append(check("export_bundle", ok, f"{shlex.join(export)} (policies/ bound from the host): exit {rc} in "
                            f"{dt:.0f} s; host sees policy.pt {(bundle / 'policy.pt').is_file()}, policy.json keys "
                            f"{sorted(meta)[:8]}; {tail(out, 300)}"))
        checks.append(no_pip_cache_check(ctr))
        checks.append(no_network_check(ctr))
    finally:
        ctr.remove()
    return checks


def console_scripts(pkg: str) -> set[str]:
    """Console script names of a ROS package's setup.py (tests/packaging/test_colcon_build.py reads them here too)."""
    tree = ast.parse((REPO / "ros2_ws" / "src" / pkg / "setup.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and "=" in node.value and ":" in node.value:
            name, _, target = node.value.partition("=")
            if target.strip().count(":") == 1 and name.strip().isidentifier():
                names.add(name.strip())
    return names


def layout_problems(install: Path) -> list[str]:
    problems = []
    for pkg in ROS_PACKAGES:
        prefix = install / pkg
        if not (prefix / "share" / "ament_index" / "resource_index" / "packages" / pkg).is_file():
            problems.append(f"{pkg}: no ament index marker")
        if not (prefix / "share" / pkg / "package.xml").is_file():
            problems.append(f"{pkg}: no share/{pkg}/package.xml")
        for exe in sorted(console_scripts(pkg)):
            p = prefix / "lib" / pkg / exe
            if not (p.is_file() and os.access(p, os.X_OK)):
                problems.append(f"{pkg}: lib/{pkg}/{exe} missing or not executable")
        src_launch = {p.name for p in (REPO / "ros2_ws" / "src" / pkg / "launch").glob("*.launch.py")}
        got = {p.name for p in (prefix / "share" / pkg / "launch").glob("*.launch.py")}
        if got != src_launch:
            problems.append(f"{pkg}: launch files {sorted(got)} != {sorted(src_launch)}")
        src_cfg = {p.name for p in (REPO / "ros2_ws" / "src" / pkg / "config").glob("*.yaml")}
        got_cfg = {p.name for p in (prefix / "share" / pkg / "config").glob("*")}
        if not src_cfg <= got_cfg:
            problems.append(f"{pkg}: config lacks {sorted(src_cfg - got_cfg)}")
    return problems


def ros_checks(tag: str, work: Path, logs: Path, resolution: float, timeout: float) -> list[dict]:
    checks = []
    runs, colcon = work / "ros-volumes" / "runs", work / "ros-volumes" / "colcon"
    for d in (runs, colcon):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    entry = "/ws/docker/ros_entrypoint.sh"
    ctr = Container(tag, logs, "excavation-ros")
    try:
        checks.append(default_command_check(ctr, tag))
        rc, out, dt = ctr.run([entry, "python", "-c", "import rclpy, excavation, excavation_simulation, excavation_sim, "
                               "torch, open3d, rtde_control; from sensor_msgs.msg import CameraInfo; "
                               "CameraInfo(k=[0.0] * 9); print('torch', torch.__version__)"], env=ROS_ENV, timeout=300)
        checks.append(check("imports", rc == 0, f"through {entry}: exit {rc} in {dt:.0f} s: {tail(out, 300)}"))
        stack = [entry, "launch_stack", "--policy", "policies/default", "--episodes", "1", "--resolution",
                 f"{resolution:g}", "--quiet", "--summary-json", "/ws/runs/ros_summary.json"]
        rc, out, dt = ctr.run(stack, volumes={str(runs): "/ws/runs"}, env=ROS_ENV, workdir="/ws", timeout=timeout)
        summary = {}
        try:
            summary = json.loads((runs / "ros_summary.json").read_text())
        except (OSError, ValueError):
            pass
        ok = rc == 0 and summary.get("episodes") == 1
        checks.append(check("launch_stack_episode", ok,
                            f"{shlex.join(stack[1:])} (ROS 2 from PyPI wheels, separate rclpy processes on loopback DDS, "
                            f"no network, ROS_DOMAIN_ID={ROS_ENV['ROS_DOMAIN_ID']}): exit {rc} in {dt:.0f} s; "
                            f"summary: episodes {summary.get('episodes')}, successes {summary.get('successes')}, "
                            f"latency p50 {rnd(summary.get('latency_p50_ms'))} ms, p95 {rnd(summary.get('latency_p95_ms'))} ms, "
                            f"episode wall {rnd(summary.get('wall_s'))} s; "
                            f"{tail(out, 400)}"))
        build = [entry, "sh", "-c", "rm -rf /ws/colcon_check/* && cp -r /ws/ros2_ws/src /ws/colcon_check/src && "
                 "cd /ws/colcon_check && colcon build --base-paths src"]
        rc, out, dt = ctr.run(build, volumes={str(colcon): "/ws/colcon_check"}, env=ROS_ENV, timeout=900)
        problems = layout_problems(colcon / "install") if rc == 0 else ["colcon build failed"]
        # The image's own workspace (built by the Dockerfile), read from the mounted image.
        rc2, mnt, _ = sh(["podman", "image", "mount", tag])
        image_problems = layout_problems(Path(mnt.strip()) / "ws" / "ros2_ws" / "install") if rc2 == 0 else \
            [f"podman image mount: {tail(mnt, 200)}"]
        sh(["podman", "image", "unmount", tag])
        checks.append(check("colcon_build_layout", rc == 0 and not problems and not image_problems,
                            f"colcon build of a copy of ros2_ws/src inside the image: exit {rc} in {dt:.0f} s; layout "
                            f"({', '.join(ROS_PACKAGES)}: ament index, package.xml, every console script in lib/<pkg>, "
                            f"launch and config in share/<pkg>): {problems or 'ok'}; the image's /ws/ros2_ws/install: "
                            f"{image_problems or 'ok'}; {tail(out, 200) if rc else ''}"))
        checks.append(no_pip_cache_check(ctr))
        checks.append(no_network_check(ctr))
    finally:
        ctr.remove()
    return checks


# ------------------------------------------------------------------ results
def tool_version(cmd: list[str]) -> str | None:
    rc, out, _ = sh(cmd)
    return out.strip().splitlines()[0] if rc == 0 and out.strip() else None


def redact_host_paths(result: dict, work: Path, pip_used: dict) -> dict:
    """The result file is committed: it names this machine's folders by role (<repo>, <work>, <host pip
    source N>, <host CA bundle>), never by path; wheel files keep their names."""
    names: dict[str, str] = {}
    for i, src in enumerate([*pip_used.get("find_links", []), *pip_used.get("extra_index_url", [])]):
        names[str(src)] = f"<host pip source {i}>"
        if str(src).startswith("file://"):
            names[str(src)[len("file://"):]] = f"<host pip source {i}>"
    if pip_used.get("cert"):
        names[str(pip_used["cert"])] = "<host CA bundle>"
    torch = str(pip_used.get("torch", ""))
    if torch.startswith("/"):
        names[torch] = f"<host wheel {Path(torch).name}>"
    names[str(work.resolve())], names[str(work)] = "<work>", "<work>"
    names[str(REPO)] = "<repo>"
    text = json.dumps(result)
    for path in sorted(names, key=len, reverse=True):  # longest first: a folder inside another
        text = text.replace(json.dumps(path)[1:-1], names[path])
    return json.loads(text)


def machine(base: dict, pip_used: dict) -> dict:
    mem_gb = None
    try:
        with open("/proc/meminfo") as f:
            mem_gb = round(int(f.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    cpu = platform.processor() or None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    os_name = None
    try:
        os_name = dict(line.strip().split("=", 1) for line in open("/etc/os-release") if "=" in line)["PRETTY_NAME"].strip('"')
    except (OSError, KeyError):
        pass
    return {"os": os_name, "kernel": platform.release(), "cpu": cpu, "cores": os.cpu_count(), "memory_gb": mem_gb,
            "podman": tool_version(["podman", "--version"]), "buildah": tool_version(["buildah", "--version"]),
            "mmdebstrap": tool_version(["mmdebstrap", "--version"]), "local_base": base, "pip_sources": pip_used,
            "runs_in": "buildah run --isolation chroot in unshare --net --mount (loopback only, private /dev/shm); "
                       "podman run fails here: crun: setrlimit RLIMIT_NOFILE: Operation not permitted"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/build_containers.sh", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", default="training,ros", help="comma-separated: training, ros (default both)")
    p.add_argument("--work-dir", type=Path, default=REPO / "build" / "containers",
                   help="base tarball, pip config, volumes and logs (default build/containers, git-ignored)")
    p.add_argument("--mirror", default="http://deb.debian.org/debian", help="Debian mirror for mmdebstrap")
    p.add_argument("--rebuild-base", action="store_true", help="make the Debian tarball again even if the work dir has one")
    p.add_argument("--skip-build", action="store_true", help="check the images built before (localhost/...:local)")
    p.add_argument("--no-checks", action="store_true", help="build only")
    p.add_argument("--cache", action="store_true", help="reuse cached layers of earlier builds (default: build every "
                   "step, so build_s is a full build)")
    p.add_argument("--iterations", type=int, default=2, help="training iterations of the training check (default 2)")
    p.add_argument("--resolution", type=float, default=20.0, help="soil resolution (mm) of the ROS episode (default 20)")
    p.add_argument("--build-timeout", type=float, default=3600, help="seconds per image build (default 3600)")
    p.add_argument("--episode-timeout", type=float, default=1200, help="seconds for the ROS episode (default 1200)")
    p.add_argument("--results", type=Path, default=RESULTS, help=f"results file (default {RESULTS.relative_to(REPO)})")
    a = p.parse_args(argv)

    names = []
    for n in a.images.split(","):
        n = n.strip()
        if n not in SHORT:
            p.error(f"--images: unknown image {n!r}; expected training, ros")
        names.append(SHORT[n])
    if os.geteuid() != 0:
        p.error("needs root (mmdebstrap --mode=root, podman/buildah with root storage, unshare)")
    missing = [t for t in ("podman", "buildah", "mmdebstrap", "unshare", "ip") if shutil.which(t) is None]
    if missing:
        p.error(f"missing {missing}: apt-get install podman buildah mmdebstrap util-linux iproute2")

    work = a.work_dir.resolve()
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    rev = revision()
    torch_pin = next(line.strip() for line in (REPO / "requirements.txt").read_text().splitlines()
                     if line.startswith("torch=="))
    base: dict = {"image": BASE_TAG}
    volumes, torch_index, pip_used = pip_build_setup(work, torch_pin)
    if not a.skip_build:
        log("making the Debian 12 base (mmdebstrap) and importing it (podman import)")
        base = make_base(work, a.mirror, a.rebuild_base, logs)
        log(f"base: {base}")
    images: dict[str, dict] = {}
    for name in names:
        tag = IMAGES[name][1]
        if a.skip_build:
            size = image_size_mb(tag)
            images[name] = {"built": size is not None, "size_mb": size, "build_s": None,
                            "checks": [check("build", size is not None, f"--skip-build: {tag} "
                                             f"{'exists' if size is not None else 'is not there'}")]}
        else:
            images[name] = build(name, volumes, torch_index, logs, a.build_timeout, a.cache)
        if images[name]["built"] and not a.no_checks:
            log(f"checks in {name}")
            try:
                if name == "excavation-train":
                    images[name]["checks"] += training_checks(tag, work, logs, a.iterations)
                else:
                    images[name]["checks"] += ros_checks(tag, work, logs, a.resolution, a.episode_timeout)
            except RuntimeError as e:
                images[name]["checks"].append(check("run", False, str(e)))
    result = {"images": images, "machine": machine(base, pip_used), "revision": rev}
    result["machine"]["script_s"] = round(time.monotonic() - t_start, 1)
    result = redact_host_paths(result, work, pip_used)
    a.results.parent.mkdir(parents=True, exist_ok=True)
    a.results.write_text(json.dumps(result, indent=2) + "\n")
    log(f"wrote {a.results} in {result['machine']['script_s']:.0f} s")
    failed = [f"{n}:{c['name']}" for n, e in images.items() for c in e["checks"] if not c["passed"]]
    for n, e in images.items():
        log(f"{n}: built {e['built']}, {e['size_mb']} MB, build {e['build_s']} s, "
            f"checks {sum(c['passed'] for c in e['checks'])}/{len(e['checks'])} passed")
    if failed:
        log(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
