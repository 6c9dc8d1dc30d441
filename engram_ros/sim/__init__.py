"""The simulated house (ROS-free): worlds, scenarios, PyBullet scene, detector, audio, robot.

``engram_ros.nodes.sim_node`` publishes what :class:`~engram_ros.sim.simulator.Simulator`
produces on the perception topic contract.
"""
