"""The ROS 2 layer: message conversions (:mod:`.conversions`), the nodes (:mod:`.nodes`), the
planners' client, RViz markers and the common start-up path. Thin: it translates messages,
calls :mod:`engram_ros.core` and translates back.
"""
