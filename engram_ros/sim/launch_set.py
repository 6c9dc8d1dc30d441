"""What the simulated robot shares with perception in the ``sim`` set: the camera where the sim
mounts it (no tf2 here), and the simulated house's rooms, as a user would draw them on a real
robot's map (places and objects get ``room:`` tags).

Named by :data:`engram_ros.apps.wiring.NODES` and imported only when a set runs the simulator.
"""

from __future__ import annotations

from typing import Any

from engram_ros.sim.scenario import load_scenario

#: The sim's parameters perception must follow, with the sim's defaults.
SIM_SHARED = {'camera_xyz': [0.1, 0.0, 1.0], 'camera_rpy': [-1.7708, 0.0, -1.5708],
              'scenario': 'house'}


def shared_by_sim(parameters) -> dict[str, Any]:
    """Perception's camera mount and rooms from the sim's parameters
    (a :class:`engram_ros.apps.wiring.Parameters`).

    :raises ScenarioError: (a ValueError) when the sim's scenario cannot be read.
    """
    sim = parameters.of('sim', SIM_SHARED)
    return {'camera_xyz': [float(v) for v in sim['camera_xyz']],
            'camera_rpy': [float(v) for v in sim['camera_rpy']],
            'camera_convention': 'optical',
            'rooms': load_scenario(str(sim['scenario'])).world.room_specs()}
