"""The nodes load the package's Fast DDS profile (a service reply waits for its reader).

Fast DDS drops a service reply when the client's reply reader has not matched within its
``max_blocking_time`` (100 ms by default); on a loaded machine a first Recall then timed out.
``engram_ros.ros.nodes`` points Fast DDS at ``config/fastdds.xml`` unless the user chose a file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip('rclpy')

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import os
import engram_ros.ros.nodes
import rclpy
from std_srvs.srv import Trigger
rclpy.init()
node = rclpy.create_node('profile_probe')
node.create_service(Trigger, 'profile_probe', lambda request, response: response)
node.destroy_node()
rclpy.shutdown()
print(os.environ.get('FASTDDS_DEFAULT_PROFILES_FILE', ''))
"""


def run_probe(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c', PROBE], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=60)


def test_nodes_load_the_packages_profile_and_fast_dds_accepts_it():
    env = {k: v for k, v in os.environ.items() if k != 'FASTDDS_DEFAULT_PROFILES_FILE'}
    probe = run_probe(env)
    assert probe.returncode == 0, probe.stderr
    assert Path(probe.stdout.strip()) == ROOT / 'config' / 'fastdds.xml'
    assert 'XMLPARSER' not in probe.stderr, probe.stderr


def test_a_users_profiles_file_is_left_alone(tmp_path):
    own = tmp_path / 'robot.xml'
    own.write_text((ROOT / 'config' / 'fastdds.xml').read_text())
    probe = run_probe(dict(os.environ, FASTDDS_DEFAULT_PROFILES_FILE=str(own)))
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == str(own)
