"""Robot drivers: UR5e kinematics, driver safety logic, the RTDE control loop and an RTDE emulator.

Everything here except ``ur5e_control_loop``/``rtde_connection`` (which need ``ur_rtde``) is pure
Python + numpy so the simulated robot and the tests can reuse it without a robot or ROS.
"""
