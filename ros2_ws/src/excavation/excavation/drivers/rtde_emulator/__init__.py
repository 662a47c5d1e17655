"""A protocol-level UR e-series controller emulator for tests and benchmarks (loopback only).

It speaks enough of the controller's three TCP interfaces for the real ``ur_rtde`` client:

* RTDE (30004): protocol version, controller version, output/input recipes, start/pause, data
  packages streamed at the recipe frequency after every emulated 500 Hz control cycle;
* dashboard (29999): the text commands ``ur_rtde`` and the driver send (version, remote control,
  robot/safety mode, unlock protective stop with the controller's 5 s rule, power on, brake release);
* script (30003): accepts ``ur_rtde``'s control script and "runs" it by interpreting the register
  protocol the script implements (command in ``input_int_register_0``, arguments in the double
  registers, ready/done handshake in ``output_int_register_0``).

Motion is integrated kinematically (servo targets go through the UR5e IK, joints move toward them
at bounded speed). Faults can be injected: protective stop, emergency stop, the program stopping, dropped
connections, a silent peer, a stalled script, added latency; the protective-stop unlock delay can be
changed at run time. See ``server.UREmulator``, which composes the modules below; each depends only
on those after it:

* ``server``: ``UREmulator`` (lifecycle, the control cycle, fault hooks) and ``free_loopback_host``;
* ``rtde_server``, ``dashboard_server``, ``script_server``: one TCP interface each;
* ``control_script``: ur_rtde's control script, run natively on the model's registers;
* ``network``: what the servers share (threads, client sockets, silent peer, added latency);
* ``robot_model``: the arm and the controller's state (modes, registers, motion);
* ``config``, ``protocol``: the instance's settings and the RTDE wire format.
"""

from .server import EmulatorConfig, UREmulator

__all__ = ["EmulatorConfig", "UREmulator"]
