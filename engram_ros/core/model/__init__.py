"""The engram data model: ``Engram`` and ``Observation`` (:mod:`.engram`), place-graph edges
(:mod:`.edges`), the status-carrying error base (:mod:`.errors`) and the one record codec
(:mod:`.codec`). ROS-free; every other layer builds on it.
"""
