"""Shim: the nodes moved to :mod:`engram_ros.ros.nodes` (memory, perception) and
:mod:`engram_ros.sim.node` (the simulated robot); ``engram_ros.nodes.memory_node`` and
``engram_ros.nodes.perception_node`` only re-export them (the benchmarks start them by these
names)."""
