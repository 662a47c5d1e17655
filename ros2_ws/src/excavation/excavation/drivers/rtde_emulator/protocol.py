"""RTDE wire format (UR "Real-Time Data Exchange" guide, protocol v2): framing and field types."""

from __future__ import annotations

import re
import struct

# Package types (ASCII letters).
RTDE_REQUEST_PROTOCOL_VERSION = 86  # V
RTDE_GET_URCONTROL_VERSION = 118  # v
RTDE_TEXT_MESSAGE = 77  # M
RTDE_DATA_PACKAGE = 85  # U
RTDE_CONTROL_PACKAGE_SETUP_OUTPUTS = 79  # O
RTDE_CONTROL_PACKAGE_SETUP_INPUTS = 73  # I
RTDE_CONTROL_PACKAGE_START = 83  # S
RTDE_CONTROL_PACKAGE_PAUSE = 80  # P

HEADER = struct.Struct(">HB")

# struct formats per RTDE type.
TYPE_FORMAT = {
    "BOOL": "?",
    "UINT8": "B",
    "UINT32": "I",
    "UINT64": "Q",
    "INT32": "i",
    "DOUBLE": "d",
    "VECTOR3D": "3d",
    "VECTOR6D": "6d",
    "VECTOR6INT32": "6i",
    "VECTOR6UINT32": "6I",
}

# Controller -> client fields (subset of the RTDE guide that a UR5e e-series offers).
OUTPUT_TYPES = {
    "timestamp": "DOUBLE",
    "target_q": "VECTOR6D",
    "target_qd": "VECTOR6D",
    "target_qdd": "VECTOR6D",
    "target_current": "VECTOR6D",
    "target_moment": "VECTOR6D",
    "actual_q": "VECTOR6D",
    "actual_qd": "VECTOR6D",
    "actual_current": "VECTOR6D",
    "actual_current_window": "VECTOR6D",
    "joint_control_output": "VECTOR6D",
    "actual_TCP_pose": "VECTOR6D",
    "actual_TCP_speed": "VECTOR6D",
    "actual_TCP_force": "VECTOR6D",
    "target_TCP_pose": "VECTOR6D",
    "target_TCP_speed": "VECTOR6D",
    "actual_digital_input_bits": "UINT64",
    "joint_temperatures": "VECTOR6D",
    "actual_execution_time": "DOUBLE",
    "robot_mode": "INT32",
    "joint_mode": "VECTOR6INT32",
    "safety_mode": "INT32",
    "safety_status": "INT32",
    "actual_tool_accelerometer": "VECTOR3D",
    "speed_scaling": "DOUBLE",
    "target_speed_fraction": "DOUBLE",
    "actual_momentum": "DOUBLE",
    "actual_main_voltage": "DOUBLE",
    "actual_robot_voltage": "DOUBLE",
    "actual_robot_current": "DOUBLE",
    "actual_joint_voltage": "VECTOR6D",
    "actual_digital_output_bits": "UINT64",
    "runtime_state": "UINT32",
    "elbow_position": "VECTOR3D",
    "elbow_velocity": "VECTOR3D",
    "robot_status_bits": "UINT32",
    "safety_status_bits": "UINT32",
    "analog_io_types": "UINT32",
    "standard_analog_input0": "DOUBLE",
    "standard_analog_input1": "DOUBLE",
    "standard_analog_output0": "DOUBLE",
    "standard_analog_output1": "DOUBLE",
    "io_current": "DOUBLE",
    "euromap67_input_bits": "UINT32",
    "euromap67_output_bits": "UINT32",
    "euromap67_24V_voltage": "DOUBLE",
    "euromap67_24V_current": "DOUBLE",
    "tool_mode": "UINT32",
    "tool_analog_input_types": "UINT32",
    "tool_analog_input0": "DOUBLE",
    "tool_analog_input1": "DOUBLE",
    "tool_output_voltage": "INT32",
    "tool_output_current": "DOUBLE",
    "tool_temperature": "DOUBLE",
    "tcp_force_scalar": "DOUBLE",
    "output_bit_registers0_to_31": "UINT32",
    "output_bit_registers32_to_63": "UINT32",
    "input_bit_registers0_to_31": "UINT32",
    "input_bit_registers32_to_63": "UINT32",
    "payload": "DOUBLE",
    "payload_cog": "VECTOR3D",
    "payload_inertia": "VECTOR6D",
    "script_control_line": "UINT32",
    "ft_raw_wrench": "VECTOR6D",
    "joint_position_deviation_ratio": "DOUBLE",
    "collision_detection_ratio": "DOUBLE",
    "time_scale_source": "UINT32",
    "tool_output_mode": "UINT8",
    "tool_digital_output0_mode": "UINT8",
    "tool_digital_output1_mode": "UINT8",
    "actual_current_as_torque": "VECTOR6D",
}

# Client -> controller fields that are not registers.
INPUT_TYPES = {
    "speed_slider_mask": "UINT32",
    "speed_slider_fraction": "DOUBLE",
    "standard_digital_output_mask": "UINT8",
    "standard_digital_output": "UINT8",
    "configurable_digital_output_mask": "UINT8",
    "configurable_digital_output": "UINT8",
    "tool_digital_output_mask": "UINT8",
    "tool_digital_output": "UINT8",
    "standard_analog_output_mask": "UINT8",
    "standard_analog_output_type": "UINT8",
    "standard_analog_output_0": "DOUBLE",
    "standard_analog_output_1": "DOUBLE",
    "external_force_torque": "VECTOR6D",
    "input_bit_registers0_to_31": "UINT32",
    "input_bit_registers32_to_63": "UINT32",
}

_REGISTER = re.compile(r"^(input|output)_(int|double|bit)_register_(\d+)$")
_REG_TYPE = {"int": "INT32", "double": "DOUBLE", "bit": "BOOL"}


def register(name: str):
    """("input"|"output", "int"|"double"|"bit", index) for a register field name, else None."""
    m = _REGISTER.match(name)
    if not m:
        return None
    idx = int(m.group(3))
    limit = 128 if m.group(2) == "bit" else 48
    if m.group(2) == "bit" and idx < 64:
        return None  # bits 0..63 are only reachable via the *_bit_registers*_to_* words
    if idx >= limit:
        return None
    return m.group(1), m.group(2), idx


def output_type(name: str) -> str:
    if name in OUTPUT_TYPES:
        return OUTPUT_TYPES[name]
    reg = register(name)
    if reg is not None:
        return _REG_TYPE[reg[1]]  # both input and output registers can be read back
    return "NOT_FOUND"


def input_type(name: str) -> str:
    if name in INPUT_TYPES:
        return INPUT_TYPES[name]
    reg = register(name)
    if reg is not None and reg[0] == "input":
        return _REG_TYPE[reg[1]]
    return "NOT_FOUND"


def recipe_struct(types: list[str]) -> struct.Struct:
    return struct.Struct(">" + "".join(TYPE_FORMAT[t] for t in types))


def pack(ptype: int, payload: bytes = b"") -> bytes:
    return HEADER.pack(HEADER.size + len(payload), ptype) + payload


def flatten(values) -> list:
    out = []
    for v in values:
        if isinstance(v, (list, tuple)):
            out.extend(v)
        elif hasattr(v, "tolist"):
            x = v.tolist()
            out.extend(x if isinstance(x, list) else [x])
        else:
            out.append(v)
    return out
