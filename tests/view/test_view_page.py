"""The web viewer, served on loopback, renders in headless Chromium: the page's canvas shows the soil
once it is logged, and did not before (so a blank or stuck page fails)."""

import io

import numpy as np
import pytest

from view_helpers import free_port, wait_for

pytestmark = pytest.mark.timeout(240)

LOAD_S = 120.0  # the viewer's Wasm compiles on a software GPU: tens of seconds on a small machine


def soil_pixels(png: bytes) -> tuple[int, int]:
    """(pixels near the soil colour, distinct colours) of a screenshot."""
    from PIL import Image

    from excavation_simulation.view import SOIL_COLOR

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3).astype(int)
    near = int((np.abs(rgb - np.asarray(SOIL_COLOR)).sum(axis=1) < 60).sum())
    return near, len(np.unique(rgb, axis=0))


@pytest.fixture
def page():
    from headless_page import HeadlessPage, PageError, find_chromium

    if find_chromium() is None:
        pytest.skip("Chromium is not installed (scripts/setup.sh installs Debian's chromium)")
    try:
        p = HeadlessPage()
    except (PageError, TimeoutError, OSError) as exc:
        pytest.skip(f"Chromium cannot start here: {exc}")
    yield p
    p.close()


@pytest.fixture
def web():
    from excavation_simulation.view import WebViewer

    w = WebViewer(web_port=free_port(), grpc_port=free_port())
    try:
        w.wait_ready()
        yield w
    finally:
        w.stop()


def test_the_viewer_listens_on_loopback_only(web):
    import psutil

    mine = [c for c in psutil.net_connections("tcp") if c.status == "LISTEN" and c.laddr.port in (web.web_port, web.grpc_port)]
    assert {c.laddr.port for c in mine} == {web.web_port, web.grpc_port}
    assert {c.laddr.ip for c in mine} == {"127.0.0.1"}


def test_the_page_renders_the_logged_soil(web, page):
    from excavation_simulation import view as V

    page.navigate(web.url)
    page.wait_for("(() => { const c = document.querySelector('canvas'); return c && c.width > 0 && c.height > 0; })()", LOAD_S)
    shots = {}

    def ui_drawn():
        shots["before"] = soil_pixels(page.screenshot())
        return shots["before"][1] > 300  # the viewer's panels, not the plain loading screen

    assert wait_for(ui_drawn, LOAD_S, step=1.0), f"the viewer never drew its UI: {shots}"
    assert shots["before"][0] < 200, f"soil-coloured pixels before any soil was logged: {shots}"
    v = V.open_view(grpc_port=web.grpc_port)
    rng = np.random.default_rng(1)
    v.at(0.1)
    v.soil(rng.uniform(-0.08, 0.08, (3000, 3)) * [1, 1, 0.3], 0.006)
    v.flush()

    def soil_shown():
        shots["after"] = soil_pixels(page.screenshot())
        return shots["after"][0] > 2000

    try:
        assert wait_for(soil_shown, LOAD_S, step=1.0), f"the logged soil never appeared in the page: {shots}"
    finally:
        v.rec.disconnect()
