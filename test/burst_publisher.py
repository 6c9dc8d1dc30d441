"""A publisher of Observation messages in its own process, driven line by line on stdin.

The node tests use it to offer the memory more than it can take (a burst published in a tight
loop by another process, as a busy detector would) and to act as a second, independent
publisher (its own gid). Commands, one per line; each is acknowledged with one line on stdout:

* ``warm LABEL X``: publish one observation of LABEL at (X, 0, 0.5); ``ok``.
* ``burst N LABEL``: publish N observations of LABEL in a tight loop, at distinct positions
  far from everything else; ``sent N``.
* ``big``: publish one observation with a 4096-d vector (a message of about 16 KiB); ``ok``.
* ``quit``: exit.

It prints ``ready`` once a subscription matches its topic (``argv[1]``).
"""

from __future__ import annotations

import sys
import time
import zlib

import numpy as np
import rclpy
from rclpy.qos import QoSProfile

from engram_ros.core.model.engram import Observation
from engram_ros.msg import Observation as ObservationMsg
from engram_ros.ros.conversions import memory as conversions

DIM = 256


def observation(label: str, x: float, dim: int = DIM, seed: int | None = None) -> ObservationMsg:
    if seed is None:                # one look per label and place
        seed = zlib.crc32(label.encode()) + int(x)
    vector = np.random.default_rng(seed).normal(size=dim)
    return conversions.observation_to_msg(Observation(
        kind='object', frame_id='map', position=np.array([x, 0.0, 0.5]), stamp=time.time(),
        vector=vector, label=label))


def main() -> None:
    topic = sys.argv[1]
    rclpy.init()
    node = rclpy.create_node(f'burst_publisher_{np.random.default_rng().integers(1 << 30)}')
    # A deep writer history: what is lost is lost at the subscriber's queue, where it counts.
    publisher = node.create_publisher(ObservationMsg, topic, QoSProfile(depth=10000))
    while publisher.get_subscription_count() == 0:
        time.sleep(0.05)
    print('ready', flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == 'quit':
            break
        if words[0] == 'warm':
            publisher.publish(observation(words[1], float(words[2])))
            print('ok', flush=True)
        elif words[0] == 'burst':
            n, label = int(words[1]), words[2]
            msgs = [observation(label, 1000.0 + 10.0 * i, seed=i) for i in range(n)]
            for msg in msgs:
                publisher.publish(msg)
            print(f'sent {n}', flush=True)
        elif words[0] == 'big':
            publisher.publish(observation('mug', 500.0, dim=4096))
            print('ok', flush=True)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == '__main__':
    main()
