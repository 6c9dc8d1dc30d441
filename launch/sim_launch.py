"""The simulated robot, perception and memory: the set `engram_launch sim` starts.

    ros2 launch engram_ros sim_launch.py scenario:=house namespace:=/robot1

Perception gets the sim's camera mount (engram_sim camera_xyz/camera_rpy, optical convention)
from the same parameter file, so the two never disagree (tf2 is not used), and the scenario's
rooms as its ``rooms`` parameter (places and objects get ``room:`` tags), and writes its
evidence where and as the memory keeps evidence (``<store_dir>/evidence``, its encryption).
"""

import os

import yaml
from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.actions import OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from engram_ros.sim.scenario import load_scenario


def _nodes(context):
    params_file = LaunchConfiguration('params_file').perform(context)
    namespace = LaunchConfiguration('namespace').perform(context)
    with open(params_file) as f:
        doc = yaml.safe_load(f) or {}
    sim = (doc.get('engram_sim') or {}).get('ros__parameters') or {}
    stored = (doc.get('engram_memory') or {}).get('ros__parameters') or {}
    scenario = LaunchConfiguration('scenario').perform(context)
    perception = {'camera_xyz': sim.get('camera_xyz', [0.1, 0.0, 1.0]),
                  'camera_rpy': sim.get('camera_rpy', [-1.7708, 0.0, -1.5708]),
                  'camera_convention': 'optical',
                  # the house's rooms, as a user would draw them on a real robot's map
                  'rooms': load_scenario(scenario).world.room_specs(),
                  # evidence kept, encrypted and expired as the memory's
                  'evidence_dir': os.path.join(
                      LaunchConfiguration('store_dir').perform(context), 'evidence'),
                  'encrypt_evidence': bool(stored.get('encrypt_evidence', False)),
                  'encryption_key_file': str(stored.get('encryption_key_file', ''))}
    memory = {'persist': LaunchConfiguration('persist'),
              'store_dir': LaunchConfiguration('store_dir')}
    return [
        Node(package='engram_ros', executable='memory_node', name='engram_memory',
             namespace=namespace, output='screen', parameters=[params_file, memory]),
        Node(package='engram_ros', executable='perception_node', name='engram_perception',
             namespace=namespace, output='screen', parameters=[params_file, perception]),
        Node(package='engram_ros', executable='sim_node', name='engram_sim',
             namespace=namespace, output='screen',
             parameters=[params_file, {'scenario': LaunchConfiguration('scenario')}]),
    ]


def generate_launch_description() -> LaunchDescription:
    default_params = os.path.join(get_package_share_directory('engram_ros'), 'config',
                                  'engram.yaml')
    return LaunchDescription([
        DeclareLaunchArgument('params_file', default_value=default_params,
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
