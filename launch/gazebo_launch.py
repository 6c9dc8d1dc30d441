"""Perception and memory on a Gazebo (gz sim) robot, through ros_gz_bridge.

    ros2 launch engram_ros gazebo_launch.py world:=/path/to/house.sdf

Needs ros_gz_sim and ros_gz_bridge (not installable from the package index; untested here).
config/gz_bridge.yaml maps the robot's RGB-D camera and odometry onto perception's inputs; see
the README's Simulation / launch section for what the SDF must publish. Memory and perception
are the robot set of :mod:`engram_ros.apps.wiring` (as `engram_launch robot`), on sim time.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument
from launch.actions import IncludeLaunchDescription
from launch.actions import OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from engram_ros.apps import wiring
from launch import LaunchDescription


def _nodes(context):
    params_file = LaunchConfiguration('params_file').perform(context)
    namespace = LaunchConfiguration('namespace').perform(context)
    return [Node(package='engram_ros', executable=node.spec.executable,
                 name=node.spec.params_key, namespace=LaunchConfiguration('namespace'),
                 output='screen',
                 parameters=[params_file, {**node.parameters, 'use_sim_time': True}])
            for node in wiring.node_set('robot', params_file, namespace=namespace)]


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory('engram_ros')
    return LaunchDescription([
        DeclareLaunchArgument('world', description='SDF world with the robot and its sensors'),
        DeclareLaunchArgument('params_file', default_value=str(wiring.default_params_file()),
                              description='YAML with engram_perception and engram_memory '
                                          'parameters'),
        DeclareLaunchArgument('bridge_file',
                              default_value=os.path.join(share, 'config', 'gz_bridge.yaml'),
                              description='ros_gz_bridge parameter_bridge configuration'),
        DeclareLaunchArgument('namespace', default_value='', description='namespace of the nodes'),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(os.path.join(
                get_package_share_directory('ros_gz_sim'), 'launch', 'gz_sim.launch.py')),
            launch_arguments={'gz_args': ['-r ', LaunchConfiguration('world')]}.items()),
        Node(package='ros_gz_bridge', executable='parameter_bridge', name='engram_gz_bridge',
             namespace=LaunchConfiguration('namespace'), output='screen',
             parameters=[{'config_file': LaunchConfiguration('bridge_file'),
                          'use_sim_time': True}]),
        OpaqueFunction(function=_nodes),
    ])
