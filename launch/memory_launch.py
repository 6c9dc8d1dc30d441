"""Start the engram_ros memory node: the set `engram_launch memory` starts.

    ros2 launch engram_ros memory_launch.py params_file:=/path/to/engram.yaml namespace:=/robot1

The node set and the default parameter file come from :mod:`engram_ros.apps.wiring`, as for
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
    namespace = LaunchConfiguration('namespace').perform(context)
    remappings = [('engram/observations', LaunchConfiguration('observations'))]
    return [Node(package='engram_ros', executable=node.spec.executable,
                 name=node.spec.params_key, namespace=LaunchConfiguration('namespace'),
                 output='screen', parameters=[params_file, node.parameters],
                 remappings=remappings)
            for node in wiring.node_set('memory', params_file, namespace=namespace)]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument('params_file', default_value=str(wiring.default_params_file()),
                              description='YAML with the engram_memory parameters'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace for the memory services and topics'),
        DeclareLaunchArgument('observations', default_value='engram/observations',
                              description='topic the memory ingests Observation messages from'),
        OpaqueFunction(function=_nodes),
    ])
