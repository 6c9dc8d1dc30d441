"""Perception and memory on a Gazebo (gz sim) robot, through ros_gz_bridge.

    ros2 launch engram_ros gazebo_launch.py world:=/path/to/house.sdf
    ros2 launch engram_ros gazebo_launch.py --show-args

Needs ros_gz_sim and ros_gz_bridge at run time (not installable from the package index;
untested here). They are found through ``FindPackageShare`` substitutions, resolved when the
launch runs, not when this file loads: ``--show-args`` works without them, and a missing one is
reported by name (``package 'ros_gz_sim' not found``) instead of crashing the load.

The bridge contract (config/gz_bridge.yaml, the README's Simulation / launch section): the
SDF robot's rgbd_camera topics (``camera/image``, ``camera/depth_image``,
``camera/camera_info``) become perception's ``camera/color/image_raw``,
``camera/depth/image_raw`` and ``camera/color/camera_info``; the OdometryPublisher's
``model/robot/odometry`` (in ``map``) becomes ``odom``; gz's ``/clock`` becomes ``/clock``, and
every node runs on it (``use_sim_time``). Gazebo has no microphone or detector: ``audio/chunk``
and ``detections`` are not bridged. Memory and perception are the robot set of
:mod:`engram_ros.apps.wiring` (as ``engram_launch robot``).
"""

from launch.actions import DeclareLaunchArgument
from launch.actions import IncludeLaunchDescription
from launch.actions import OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch.substitutions import PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

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
    return LaunchDescription([
        DeclareLaunchArgument('world', description='SDF world with the robot and its sensors'),
        DeclareLaunchArgument('params_file', default_value=str(wiring.default_params_file()),
                              description='YAML with engram_perception and engram_memory '
                                          'parameters'),
        DeclareLaunchArgument('bridge_file',
                              default_value=PathJoinSubstitution([
                                  FindPackageShare('engram_ros'), 'config', 'gz_bridge.yaml']),
                              description='ros_gz_bridge parameter_bridge configuration'),
        DeclareLaunchArgument('namespace', default_value='', description='namespace of the nodes'),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(PathJoinSubstitution([
                FindPackageShare('ros_gz_sim'), 'launch', 'gz_sim.launch.py'])),
            launch_arguments={'gz_args': ['-r ', LaunchConfiguration('world')]}.items()),
        Node(package='ros_gz_bridge', executable='parameter_bridge', name='engram_gz_bridge',
             namespace=LaunchConfiguration('namespace'), output='screen',
             parameters=[{'config_file': LaunchConfiguration('bridge_file'),
                          'use_sim_time': True}]),
        OpaqueFunction(function=_nodes),
    ])
