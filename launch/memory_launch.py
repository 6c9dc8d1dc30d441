"""Start the engram_ros memory node.

    ros2 launch engram_ros memory_launch.py params_file:=/path/to/engram.yaml namespace:=/robot1
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description() -> LaunchDescription:
    default_params = os.path.join(get_package_share_directory('engram_ros'), 'config',
                                  'engram.yaml')
    return LaunchDescription([
        DeclareLaunchArgument('params_file', default_value=default_params,
                              description='YAML with the engram_memory parameters'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace for the memory services and topics'),
        DeclareLaunchArgument('observations', default_value='engram/observations',
                              description='topic the memory ingests Observation messages from'),
        Node(package='engram_ros', executable='memory_node', name='engram_memory',
             namespace=LaunchConfiguration('namespace'), output='screen',
             parameters=[LaunchConfiguration('params_file')],
             remappings=[('engram/observations', LaunchConfiguration('observations'))]),
    ])
