"""Perception and memory on a real robot: the set `engram_launch robot` starts.

    ros2 launch engram_ros robot_launch.py namespace:=/robot1 \
        color:=/camera/color/image_raw depth:=/camera/aligned_depth_to_color/image_raw \
        camera_info:=/camera/color/camera_info odom:=/odom audio:=/audio/chunk

The robot pose comes from ``odom`` (nav_msgs/Odometry) or ``pose`` (geometry_msgs/PoseStamped,
e.g. a visual SLAM or localizer output), both of base_link in the memory frame: remap the one
your robot has; the other stays silent.

The camera's mount on base_link is engram_perception's camera_xyz/camera_rpy/camera_convention
in params_file (measure it on the robot; there is no tf2 lookup). Odometry must be in the
memory frame (map); detections come from any detector publishing engram_ros/DetectionArray.
Perception writes its evidence where and as the memory keeps evidence (``<store_dir>/evidence``,
its encryption): the node set and what perception shares come from
:mod:`engram_ros.apps.wiring`, as for engram_launch.
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
    remappings = {'perception': [(name, LaunchConfiguration(arg))
                                 for name, arg, _ in wiring.PERCEPTION_INPUTS]}
    return [Node(package='engram_ros', executable=node.spec.executable,
                 name=node.spec.params_key, namespace=LaunchConfiguration('namespace'),
                 output='screen', parameters=[params_file, node.parameters],
                 remappings=remappings.get(node.spec.name, []))
            for node in wiring.node_set('robot', params_file, namespace=namespace)]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument('params_file', default_value=str(wiring.default_params_file()),
                              description='YAML with engram_perception and engram_memory '
                                          'parameters'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of both nodes'),
    ] + [DeclareLaunchArgument(arg, default_value=name, description=text)
         for name, arg, text in wiring.PERCEPTION_INPUTS] + [
        OpaqueFunction(function=_nodes),
    ])
