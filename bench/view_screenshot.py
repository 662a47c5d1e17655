"""A screenshot of a Rerun recording as the web viewer draws it, in headless Chromium (the README's picture).

    excavation-sim picture --delta-mm 10 --num-envs 1 --steps 80 --rrd /tmp/scene.rrd   # docs/images/view.png
    python bench/view_screenshot.py /tmp/scene.rrd --out docs/images/view.png

The recording is served on loopback by the Rerun CLI (``rerun --serve-web FILE.rrd``: its gRPC proxy
holds the file, the page reads it from there, as the live view's page does), the page is opened in
headless Chromium on a software GPU (SwiftShader: no GPU needed) over the DevTools pipe of
tests/view/headless_page.py, and the screenshot is taken once the 3D view shows the soil and the picture
has stopped changing. It fails, saying what it saw, if the soil never appears (a blank or stuck page).

Keep the recording small (few frames, one depth image, soil strided by ``--max-soil-points``): the
viewer replays it in WebAssembly on the CPU.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import time

import numpy as np

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
# The DevTools driver the page test uses (stdlib only): one copy of it, in the tests that check it works.
sys.path.insert(0, os.path.join(REPO, "tests", "view"))

# Soil-coloured pixels that mean "the 3D view has drawn the bed": the 10 mm bed of picture --rrd covers
# about 25 000 at 1600x900; the viewer's own panels have none.
MIN_SOIL_PIXELS = 2000


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pixels(png: bytes) -> tuple[int, int]:
    """(pixels near the soil colour, distinct colours) of a screenshot."""
    from PIL import Image

    from excavation_sim.scene_view import SOIL_COLOR

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3).astype(int)
    near = int((np.abs(rgb - np.asarray(SOIL_COLOR)).sum(axis=1) < 60).sum())
    return near, len(np.unique(rgb, axis=0))


def write_blueprint(path: str, eye: tuple[float, float, float], look_at: tuple[float, float, float]) -> str:
    """The picture's layout for recordings of the cell (application id ``excavation``: the live view's and
    picture --rrd's): the 3D view from ``eye`` beside the depth image, side panels folded away. The 3D view
    leaves out the back-projected depth image: seen from the side, its points of the tray rim would hide
    the soil bed under them (the 2D view beside it shows the image)."""
    import rerun.blueprint as rrb

    from excavation_sim.scene_view import APPLICATION_ID, TIMELINE

    bp = rrb.Blueprint(
        rrb.Horizontal(
            rrb.Spatial3DView(origin="world", contents=["+ world/**", "- world/camera/depth"], name="soil, rock and bucket",
                              eye_controls=rrb.EyeControls3D(position=eye, look_target=look_at)),
            rrb.Spatial2DView(origin="world/camera", contents="$origin/**", name="depth camera"),
            column_shares=[3, 2],
        ),
        rrb.BlueprintPanel(state="collapsed"),
        rrb.SelectionPanel(state="collapsed"),
        rrb.TimePanel(state="collapsed", timeline=TIMELINE),
    )
    bp.save(APPLICATION_ID, path)
    return path


def screenshot(rrd: str, out: str, width: int, height: int, timeout: float, settle: float,
               eye=(0.22, -0.30, 0.20), look_at=(-0.02, 0.0, -0.04), min_soil_pixels: int = MIN_SOIL_PIXELS,
               log=print) -> dict:
    from headless_page import HeadlessPage, find_chromium

    from excavation_simulation.view import WebViewer, viewer_url

    if find_chromium() is None:
        raise RuntimeError("no Chromium on PATH (scripts/setup.sh installs Debian's chromium)")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    web_port, grpc_port = free_port(), free_port()
    tmp = tempfile.mkdtemp(prefix="view_screenshot.")
    blueprint = write_blueprint(os.path.join(tmp, "layout.rbl"), tuple(eye), tuple(look_at))
    viewer = WebViewer(web_port, grpc_port, paths=[os.path.abspath(rrd), blueprint])
    try:
        viewer.wait_ready(30.0)
        t0 = time.monotonic()
        with HeadlessPage(width=width, height=height) as page:
            page.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                             "mobile": False})
            page.navigate(viewer_url(web_port, grpc_port))
            page.wait_for("(() => { const c = document.querySelector('canvas'); return c && c.width > 0; })()", timeout)
            log(f"canvas after {time.monotonic() - t0:.0f} s")
            last, stable_since, seen, png = None, None, [], None
            deadline = t0 + timeout
            while time.monotonic() < deadline:
                png = page.screenshot()
                soil, colours = pixels(png)
                seen.append((round(time.monotonic() - t0), soil, colours))
                # Drawn (the viewer's panels and the soil in 3D) and unchanged for `settle` seconds: the
                # viewer has loaded the whole file and the 3D view's camera has come to rest.
                if soil >= min_soil_pixels and colours > 300:
                    if last is not None and abs(soil - last) <= max(50, soil // 100):
                        stable_since = stable_since or time.monotonic()
                        if time.monotonic() - stable_since >= settle:
                            with open(out, "wb") as f:
                                f.write(png)
                            log(f"wrote {out} after {time.monotonic() - t0:.0f} s: {soil} soil pixels, {colours} colours")
                            return {"out": out, "seconds": round(time.monotonic() - t0, 1), "soil_pixels": soil,
                                    "colours": colours}
                    else:
                        stable_since = None
                    last = soil
                time.sleep(1.0)
            failed = os.path.splitext(out)[0] + ".failed.png"
            if png is not None:
                with open(failed, "wb") as f:  # what the page showed instead, to look at
                    f.write(png)
            raise TimeoutError(f"the page never showed the soil steadily in {timeout:g} s (its last picture: {failed}); "
                               f"(seconds, soil pixels, colours) seen: {seen[-12:]}")
    finally:
        viewer.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="view_screenshot", description=__doc__.splitlines()[0],
                                 epilog="Make the recording with `excavation-sim picture --rrd`, `launch_stack "
                                 "--record-view` or `excavation-train train --view` (docs/view.md).")
    ap.add_argument("rrd", help="the Rerun recording (.rrd) to draw")
    ap.add_argument("--out", default=os.path.join(REPO, "docs", "images", "view.png"),
                    help="PNG to write (default: docs/images/view.png of this repository)")
    ap.add_argument("--width", type=int, default=1600, help="page width in pixels (default 1600)")
    ap.add_argument("--height", type=int, default=900, help="page height in pixels (default 900)")
    ap.add_argument("--timeout", type=float, default=300.0,
                    help="seconds to wait for the page to draw the scene (default 300: the viewer's WebAssembly "
                    "compiles and renders on a software GPU)")
    ap.add_argument("--settle", type=float, default=5.0, help="seconds the picture must stay the same before it is taken (default 5)")
    ap.add_argument("--min-soil-pixels", type=int, default=MIN_SOIL_PIXELS, metavar="N",
                    help=f"soil-coloured pixels that count as the bed drawn (default {MIN_SOIL_PIXELS}; lower it for a "
                    "coarse bed: 70 mm has 4 particles)")
    ap.add_argument("--eye", type=float, nargs=3, default=(0.22, -0.30, 0.20), metavar=("X", "Y", "Z"),
                    help="3D view's eye in the tray frame, m (default 0.22 -0.30 0.20: beyond the rock, above the rim, facing the bucket)")
    ap.add_argument("--look-at", type=float, nargs=3, default=(-0.02, 0.0, -0.04), metavar=("X", "Y", "Z"),
                    help="point the eye looks at, tray frame, m (default -0.02 0 -0.04: the soil bed, a little to the robot side)")
    a = ap.parse_args(argv)
    if not os.path.isfile(a.rrd):
        print(f"view_screenshot: {a.rrd} does not exist", file=sys.stderr)
        return 2
    if a.width < 320 or a.height < 240:
        print(f"view_screenshot: --width/--height must be at least 320x240, got {a.width}x{a.height}", file=sys.stderr)
        return 2
    try:
        screenshot(a.rrd, a.out, a.width, a.height, a.timeout, a.settle, eye=a.eye, look_at=a.look_at,
                   min_soil_pixels=a.min_soil_pixels)
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"view_screenshot: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
