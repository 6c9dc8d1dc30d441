"""Perception and memory on a real robot: the set `engram_launch robot` starts.

    ros2 launch engram_ros robot_launch.py namespace:=/robot1 \
        color:=/camera/color/image_raw depth:=/camera/aligned_depth_to_color/image_raw \
        camera_info:=/camera/color/camera_info odom:=/odom audio:=/audio/chunk

The camera's mount on base_link is engram_perception's camera_xyz/camera_rpy/camera_convention
in params_file (measure it on the robot; there is no tf2 lookup). Odometry must be in the
memory frame (map); detections come from any detector publishing engram_ros/DetectionArray.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

# (perception's input name, launch argument, description)
_INPUTS = [
    ('camera/color/image_raw', 'color', 'sensor_msgs/Image rgb8 topic'),
    ('camera/depth/image_raw', 'depth', 'sensor_msgs/Image 32FC1 [m] depth registered to color'),
    ('camera/color/camera_info', 'camera_info', 'sensor_msgs/CameraInfo of the colour camera'),
    ('odom', 'odom', 'nav_msgs/Odometry of base_link in the memory frame'),
    ('audio/chunk', 'audio', 'engram_ros/AudioChunk topic'),
    ('detections', 'detections', 'engram_ros/DetectionArray topic'),
]


def generate_launch_description() -> LaunchDescription:
    default_params = os.path.join(get_package_share_directory('engram_ros'), 'config',
                                  'engram.yaml')
    namespace = LaunchConfiguration('namespace')
    params = LaunchConfiguration('params_file')
    arguments = [
        DeclareLaunchArgument('params_file', default_value=default_params,
                              description='YAML with engram_perception and engram_memory '
                                          'parameters'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of both nodes'),
    ] + [DeclareLaunchArgument(arg, default_value=name, description=text)
         for name, arg, text in _INPUTS]
    return LaunchDescription(arguments + [
        Node(package='engram_ros', executable='memory_node', name='engram_memory',
             namespace=namespace, output='screen', parameters=[params]),
        Node(package='engram_ros', executable='perception_node', name='engram_perception',
             namespace=namespace, output='screen', parameters=[params],
             remappings=[(name, LaunchConfiguration(arg)) for name, arg, _ in _INPUTS]),
    ])
