"""Executables that are not nodes: the ``engram`` command line (:mod:`.cli`) and the node-set
launcher ``engram_launch`` with the one launch-wiring source (:mod:`.wiring`).
"""
