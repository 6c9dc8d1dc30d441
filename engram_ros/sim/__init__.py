"""The simulated house: worlds, scenarios, PyBullet scene, detector, audio, robot (ROS-free), and
what runs it: its node, the main demo, a planner example and its part of the launch wiring.

:mod:`engram_ros.sim.node` publishes what :class:`~engram_ros.sim.simulator.Simulator`
produces on the perception topic contract.
"""
