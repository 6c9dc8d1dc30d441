"""A planner's use of the memory, small enough to copy: ask where something is, go there.

    python -m engram_ros.sim.planner_example mug [--namespace /robot1] [--goal-topic goal_pose]

:class:`WhereIs` calls ``engram/recall`` through :class:`engram_ros.ros.client.MemoryClient` and
turns the best answer into a ``geometry_msgs/PoseStamped`` navigation goal in the memory frame:
``standoff`` metres short of the object, facing it from where the robot stands, or on the
object itself when the robot's pose is unknown. It publishes the goal on ``goal_pose`` (what
Nav2's ``bt_navigator`` and RViz's "2D Goal Pose" use) and exits; "I don't know" is exit code 1.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass

from geometry_msgs.msg import PoseStamped
from rclpy.node import Node

from engram_ros.ros.client import MemoryClient
from engram_ros.ros.client import spinning_node
from engram_ros.ros.conversions.common import pose_stamped_msg
from engram_ros.ros.conversions.common import set_header
from engram_ros.srv import Recall


@dataclass(frozen=True)
class Sighting:
    """Where the memory last placed ``label``, and how sure it is."""

    label: str
    frame_id: str
    x: float
    y: float
    z: float
    score: float
    observation_count: int
    last_seen: float              # [s since the epoch]


class WhereIs:
    """"Where is X?" for a planner: recall, then a goal pose near the answer."""

    def __init__(self, node: Node, namespace: str = '', min_score: float = 0.2) -> None:
        self.client = MemoryClient(node, namespace)
        self.min_score = min_score

    def find(self, label: str, timeout: float = 10.0) -> Sighting | None:
        """The best-ranked object engram labelled ``label``, or None ("I don't know").

        :raises RuntimeError: when the memory does not answer (see :class:`MemoryClient`).
        """
        # compact: a planner needs the pose, the score and how well it is known, not the
        # vector, the evidence or the covariance (a smaller, cheaper answer).
        response = self.client.recall(text=f'where is the {label}?', kinds=['object'], k=1,
                                      min_score=self.min_score, compact=True, timeout=timeout)
        if response.status != Recall.Response.STATUS_OK or not response.engrams:
            return None
        e = response.engrams[0]
        p = e.pose.pose.position
        return Sighting(e.label, e.frame_id, p.x, p.y, p.z, float(response.scores[0]),
                        int(e.observation_count),
                        e.last_seen.sec + e.last_seen.nanosec * 1e-9)

    @staticmethod
    def goal(sighting: Sighting, robot_xy: tuple[float, float] | None = None,
             standoff: float = 0.7) -> PoseStamped:
        """A goal ``standoff`` m before the object on the line from the robot, facing it."""
        x, y, yaw = sighting.x, sighting.y, 0.0
        if robot_xy is not None:
            dx, dy = sighting.x - robot_xy[0], sighting.y - robot_xy[1]
            distance = math.hypot(dx, dy)
            yaw = math.atan2(dy, dx)
            if distance > standoff:
                x, y = sighting.x - standoff * dx / distance, sighting.y - standoff * dy / distance
        goal = pose_stamped_msg((x, y, 0.0), (0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)),
                                sighting.frame_id)
        return goal


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('label', help='what to look for, e.g. mug')
    parser.add_argument('--namespace', default='', help='the memory\'s namespace')
    parser.add_argument('--goal-topic', default='goal_pose', help='where to publish the goal')
    parser.add_argument('--from', dest='origin', type=float, nargs=2, metavar=('X', 'Y'),
                        help='robot position in the memory frame, to stop short and face it')
    args = parser.parse_args(argv)
    with spinning_node('engram_planner_example') as node:
        where = WhereIs(node, args.namespace)
        where.client.wait_for_services(timeout=10.0)
        sighting = where.find(args.label)
        if sighting is None:
            print(f"I don't know where the {args.label} is.")
            return 1
        goal = where.goal(sighting, tuple(args.origin) if args.origin else None)
        set_header(goal, node.get_clock().now().to_msg(), goal.header.frame_id)
        topic = f'{args.namespace.rstrip("/")}/{args.goal_topic}' if args.namespace else \
            args.goal_topic
        publisher = node.create_publisher(PoseStamped, topic, 1)
        deadline = time.monotonic() + 2.0   # give a navigator a moment to connect
        while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        publisher.publish(goal)
        p = goal.pose.position
        print(f'{sighting.label} at ({sighting.x:.2f}, {sighting.y:.2f}, {sighting.z:.2f}) in '
              f'{sighting.frame_id} (score {sighting.score:.2f}, seen '
              f'{sighting.observation_count}x); goal ({p.x:.2f}, {p.y:.2f}) on {topic}')
        time.sleep(0.2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
