"""Helpers more than one test folder uses (pytest.ini puts tests/ on the path)."""

from __future__ import annotations

import contextlib
import os
import threading
import time


def wait_for(pred, timeout: float = 20.0, step: float = 0.05) -> bool:
    """Poll ``pred`` until it is true or ``timeout`` s passed; True if it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return bool(pred())


@contextlib.contextmanager
def spinning_probe(name: str = "probe"):
    """An rclpy context of its own with one node spinning in a background thread."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node(f"{name}_{os.getpid()}", context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    t = threading.Thread(target=ex.spin, daemon=True)
    t.start()
    try:
        yield node
    finally:
        ex.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
        t.join(timeout=2.0)
