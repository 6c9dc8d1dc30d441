"""The README's workspace commands: package.xml declares what runs, colcon selects the package,
and the install space colcon made works once sourced over the ROS underlay.

``tools/setup.sh`` builds with ``colcon build --packages-select engram_ros`` (the README's
command) into ``install/``; these tests check what that left, from outside the source tree.
``ros2 launch`` and ``ros2 run`` (ros2cli, launch) are not on the package index: the launch
files are checked in test_launch_files.py, the executables' scripts in test_wiring.py.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys

import pytest
from catkin_pkg.package import parse_package

from conftest import ROOT

#: What the package's Python code and launch files import at run time, as package.xml keys.
RUN_DEPENDENCIES = {'rclpy', 'rcl_interfaces', 'lifecycle_msgs', 'ament_index_python',
                    'launch', 'launch_ros', 'ros2launch', 'python3-yaml', 'python3-numpy'}


def package():
    package = parse_package(str(ROOT / 'package.xml'))
    package.validate()          # as colcon's catkin_pkg reads it: a bad field fails the build
    return package


def imported_top_modules() -> set[str]:
    """Top-level modules every source file of the package and its launch files import."""
    names: set[str] = set()
    for path in [*(ROOT / 'engram_ros').rglob('*.py'), *(ROOT / 'launch').glob('*.py')]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split('.')[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split('.')[0])
    return names


def test_package_xml_declares_what_runs():
    declared = package()
    runs = {d.name for d in (*declared.exec_depends, *declared.build_export_depends)}
    assert RUN_DEPENDENCIES <= runs, sorted(RUN_DEPENDENCIES - runs)
    ros_packages = {name for name in imported_top_modules()
                    if name.endswith(('_msgs', '_interfaces')) or name in ('launch', 'launch_ros')}
    assert ros_packages <= runs | {'engram_ros'}, sorted(ros_packages - runs)
    # Gazebo is optional (gazebo_launch.py only): named in the README, not a dependency.
    everything = {d.name for d in (*declared.build_depends, *declared.exec_depends,
                                   *declared.test_depends)}
    assert not {name for name in everything if name.startswith('ros_gz')}


def test_colcon_selects_the_package():
    """``colcon build --packages-select engram_ros`` needs colcon-package-selection, which
    the set-up did not install: the README's command failed with an unknown argument."""
    colcon = shutil.which('colcon') or os.path.join(os.path.dirname(sys.executable), 'colcon')
    result = subprocess.run([colcon, 'list', '--packages-select', 'engram_ros',
                             '--base-paths', str(ROOT)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:3] == ['engram_ros', str(ROOT), '(ros.ament_cmake)']


def underlay() -> str:
    """Shell lines that source the ROS underlay: a distro's setup.bash, else the wheels in
    the virtual environment (what ``source /opt/ros/<distro>/setup.bash`` would be)."""
    distro = os.environ.get('ROS_DISTRO')
    if distro and os.path.isfile(f'/opt/ros/{distro}/setup.bash'):
        return f'source /opt/ros/{distro}/setup.bash'
    prefix = sys.prefix
    return (f'export PATH={prefix}/bin:$PATH AMENT_PREFIX_PATH={prefix} '
            f'CMAKE_PREFIX_PATH={prefix} RMW_IMPLEMENTATION=rmw_fastrtps_cpp')


def test_the_install_space_works_once_sourced(tmp_path):
    """``source install/setup.bash`` then, outside the source tree: the generated interfaces,
    the nodes, and the launch files and parameter file where ``ros2 launch`` looks for them."""
    setup = ROOT / 'install' / 'setup.bash'
    assert setup.is_file(), 'no install/setup.bash: run ./tools/setup.sh (colcon build) first'
    code = ('import os\n'
            'from ament_index_python.packages import get_package_share_directory\n'
            'import engram_ros\n'
            'from engram_ros.srv import Recall\n'
            'from engram_ros.ros.nodes.memory_node import MemoryNode\n'
            'share = get_package_share_directory("engram_ros")\n'
            'print(engram_ros.__file__)\n'
            'print(" ".join(sorted(os.listdir(os.path.join(share, "launch")))))\n'
            'print(os.path.isfile(os.path.join(share, "config", "engram.yaml")))\n')
    env = {'HOME': os.environ.get('HOME', str(tmp_path)), 'PATH': '/usr/bin:/bin',
           'ROS_DOMAIN_ID': os.environ.get('ROS_DOMAIN_ID', '0')}
    if os.environ.get('ROS_DISTRO'):
        env['ROS_DISTRO'] = os.environ['ROS_DISTRO']
    result = subprocess.run(
        ['bash', '-c', f'{underlay()} && source {setup} && python -c \'{code}\''],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    module, launch_files, params = result.stdout.split('\n')[:3]
    assert module.startswith(str(ROOT / 'install'))
    assert launch_files.split() == sorted(p.name for p in (ROOT / 'launch').glob('*.py'))
    assert params == 'True'


@pytest.mark.parametrize('name', sorted(p.name for p in (ROOT / 'scripts').iterdir()))
def test_ros2_run_finds_each_executable(name):
    """``ros2 run engram_ros <name>`` runs ``<prefix>/lib/engram_ros/<name>``."""
    path = ROOT / 'install' / 'engram_ros' / 'lib' / 'engram_ros' / name
    assert path.is_file() and os.access(path, os.X_OK)
