"""The simulated robot, perception and memory: the set `engram_launch sim` starts.

    ros2 launch engram_ros sim_launch.py scenario:=house namespace:=/robot1

Perception gets the sim's camera mount (engram_sim camera_xyz/camera_rpy, optical convention)
from the same parameter file, so the two never disagree (tf2 is not used), and the scenario's
rooms as its ``rooms`` parameter (places and objects get ``room:`` tags), and writes its
evidence where and as the memory keeps evidence (``<store_dir>/evidence``, its encryption).
The node set and what perception shares come from :mod:`engram_ros.apps.wiring`, as for
engram_launch.
"""

import yaml
from launch.actions import DeclareLaunchArgument
from launch.actions import OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from engram_ros.apps import wiring
from launch import LaunchDescription


def _nodes(context):
    params_file = LaunchConfiguration('params_file').perform(context)
    namespace = LaunchConfiguration('namespace').perform(context)
    # the launch arguments each node gets, when given (empty: the params_file's value);
    # substitutions in parameters are parsed as YAML by launch_ros, and so here
    arguments = {'memory': ('persist', 'store_dir'), 'sim': ('scenario',)}
    given = {node: {name: LaunchConfiguration(name) for name in names
                    if LaunchConfiguration(name).perform(context) != ''}
             for node, names in arguments.items()}
    values = {node: {name: yaml.safe_load(value.perform(context))
                     for name, value in items.items()}
              for node, items in given.items()}
    return [Node(package='engram_ros', executable=node.spec.executable,
                 name=node.spec.params_key, namespace=LaunchConfiguration('namespace'),
                 output='screen',
                 parameters=[params_file, {**node.parameters,
                                           **given.get(node.spec.name, {})}])
            for node in wiring.node_set('sim', params_file, values, namespace=namespace)]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument('params_file', default_value=str(wiring.default_params_file()),
                              description='YAML with engram_sim, engram_perception and '
                                          'engram_memory parameters'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of the three nodes'),
        DeclareLaunchArgument('scenario', default_value='',
                              description='scenario name (config/scenarios) or path; '
                                          'empty: engram_sim scenario in params_file'),
        DeclareLaunchArgument('persist', default_value='',
                              description='consent to keep the memory on disk (true|false); '
                                          'empty: engram_memory persist in params_file'),
        DeclareLaunchArgument('store_dir', default_value='',
                              description='memory store directory (with persist:=true); '
                                          'empty: engram_memory store_dir in params_file'),
        OpaqueFunction(function=_nodes),
    ])
