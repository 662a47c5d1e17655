"""What one emulator instance is: its address and ports, control rate, firmware version, start pose."""

from __future__ import annotations

from dataclasses import dataclass

PROTECTIVE_STOP_UNLOCK_DELAY_S = 5.0  # controller rule: no unlock within 5 s of the stop


@dataclass
class EmulatorConfig:
    host: str = "127.0.0.1"
    rtde_port: int = 30004
    dashboard_port: int = 29999
    script_port: int = 30003
    rate_hz: float = 500.0  # e-series control cycle
    controller_version: tuple[int, int, int, int] = (5, 15, 0, 0)
    initial_q: tuple[float, ...] = (0.0, -1.67, 2.0, -1.9, -1.571, -1.578)
    # Fraction of the UR5e max joint speeds the emulated servo may use.
    joint_speed_scale: float = 1.0
    script_start_delay_s: float = 0.02
    protective_stop_unlock_delay_s: float = PROTECTIVE_STOP_UNLOCK_DELAY_S
    allow_remote_hosts: bool = False  # loopback only unless explicitly allowed
