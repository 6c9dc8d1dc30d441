"""A real perception node given the memory's privacy zone: nothing encoded, written or published.

The node runs in its own process with ``privacy.zones`` as the launcher passes it (the memory's
value, :func:`engram_ros.apps.wiring.shared_by_memory`); the test drives the robot inside the
zone with a detected cup in view until the node reports the skipped observations, then looks at
the evidence directory and at what reached the observation topic.
"""

from __future__ import annotations

import time

import pytest

from conftest import NodeProcess
from conftest import wait_for

rclpy = pytest.importorskip('rclpy')

from test_perception_node import K  # noqa: E402
from test_perception_node import perception_args  # noqa: E402
from test_perception_node import Robot  # noqa: E402

from engram_ros.msg import Observation as ObservationMsg  # noqa: E402
from engram_ros.ros.conversions import sensors as pc  # noqa: E402


def test_nothing_leaves_perception_from_inside_a_privacy_zone(test_node, tmp_path):
    namespace = '/private_zone'
    received: list = []
    test_node.create_subscription(ObservationMsg, f'{namespace}/engram/observations',
                                  received.append, 100)
    perception = NodeProcess('engram_ros.ros.nodes.perception_node',
                             perception_args(namespace, tmp_path,
                                             'privacy.zones:=["circle:0,0,5"]'),
                             tmp_path / 'perception.log')
    robot = Robot(test_node, namespace)
    try:
        assert wait_for(robot.connected, 30.0), perception.log()
        robot.info.publish(pc.intrinsics_to_msg(K, time.time(), 'camera_optical'))
        time.sleep(0.5)
        t0 = time.time()
        path = (0.0, 0.8, 1.6)                        # every step a keyframe, the cup in view

        def skipped() -> bool:
            return (robot.diagnostic('privacy_skipped') >= 2
                    and robot.diagnostic('backlog') == 0)

        for i in range(40):
            robot.frame(t0 + 0.3 * i, path[i % len(path)])
            time.sleep(0.2)
            if skipped():
                break
        assert wait_for(skipped, 15.0), \
            f'counters: {sorted(robot.values.items())}\n{perception.log()}'
        assert robot.diagnostic('frames_encoded') == 0
        assert robot.diagnostic('frames_gated') >= 1
        assert [p for p in (tmp_path / 'evidence').rglob('*') if p.is_file()] == []
        assert received == []
    finally:
        assert perception.stop() == 0, perception.log()


def test_a_bad_privacy_zone_stops_perception_with_a_clear_message(tmp_path):
    proc = NodeProcess('engram_ros.ros.nodes.perception_node',
                       perception_args('/bad_zone', tmp_path, 'privacy.zones:=["circle:1,2"]'),
                       tmp_path / 'bad.log')
    assert proc.proc.wait(60) == 2
    assert "privacy zone 'circle:1,2' is not understood" in proc.log()
    proc.stop()
