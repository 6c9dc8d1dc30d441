"""The simulated robot, perception and memory: the set `engram_launch sim` starts.

    ros2 launch engram_ros sim_launch.py scenario:=house namespace:=/robot1

Perception gets the sim's camera mount (engram_sim camera_xyz/camera_rpy, optical convention)
from the same parameter file, so the two never disagree (tf2 is not used), and the scenario's
rooms as its ``rooms`` parameter (places and objects get ``room:`` tags), and writes its
evidence where and as the memory keeps evidence (``<store_dir>/evidence``, its encryption).
The node set and what perception shares come from :mod:`engram_ros.apps.wiring`, as for
engram_launch.
"""

from launch.actions import DeclareLaunchArgument
from launch.actions import OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from engram_ros.apps import wiring
from launch import LaunchDescription


def _nodes(context):
    params_file = LaunchConfiguration('params_file').perform(context)
    # the launch arguments each node gets (substitutions: launch_ros parses them as YAML)
    arguments = {'memory': {'persist': LaunchConfiguration('persist'),
                            'store_dir': LaunchConfiguration('store_dir')},
                 'sim': {'scenario': LaunchConfiguration('scenario')}}
    values = {node: {name: value.perform(context) for name, value in items.items()}
              for node, items in arguments.items()}
    return [Node(package='engram_ros', executable=node.spec.executable,
                 name=node.spec.params_key, namespace=LaunchConfiguration('namespace'),
                 output='screen',
                 parameters=[params_file, {**node.parameters,
                                           **arguments.get(node.spec.name, {})}])
            for node in wiring.node_set('sim', params_file, values)]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument('params_file', default_value=str(wiring.default_params_file()),
                              description='YAML with engram_sim, engram_perception and '
                                          'engram_memory parameters'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of the three nodes'),
        DeclareLaunchArgument('scenario', default_value='house',
                              description='scenario name (config/scenarios) or path'),
        DeclareLaunchArgument('persist', default_value='false',
                              description='consent to keep the memory on disk'),
        DeclareLaunchArgument('store_dir', default_value='~/.ros/engram_store',
                              description='memory store directory (with persist:=true)'),
        OpaqueFunction(function=_nodes),
    ])
