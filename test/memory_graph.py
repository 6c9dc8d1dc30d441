"""Shared handles on a memory node process for the node tests (test/ros, test/apps).

``Memory`` wraps a started memory node: its client, an observation publisher and its
diagnostics; ``observation`` builds an Observation message of a few known things; ``ingest``
publishes and waits until the memory holds them.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray

from engram_ros.core.model.engram import Observation
from engram_ros.msg import Observation as ObservationMsg
from engram_ros.ros.client import MemoryClient
from engram_ros.ros.conversions import memory as conversions
from engram_ros.srv import Recall

from conftest import wait_for

DIM = 256
RNG = np.random.default_rng(7)
VECTORS = {name: RNG.normal(size=DIM) for name in ('mug', 'book', 'kitchen', 'plant')}


def observation(label: str, position, kind: str = 'object', stamp: float | None = None,
                tags=()) -> ObservationMsg:
    vec = VECTORS[label] + 0.05 * RNG.normal(size=DIM)
    return conversions.observation_to_msg(Observation(
        kind=kind, frame_id='map', position=np.asarray(position, dtype=float),
        stamp=stamp or time.time(), vector=vec, label=label, tags=tuple(tags)))


class Memory:
    """A memory node process and the test's handles on it."""

    def __init__(self, test_node, process, namespace: str) -> None:
        self.process = process
        self.namespace = namespace
        self.client = MemoryClient(test_node, namespace)
        try:
            self.client.wait_for_services(timeout=20.0)
        except RuntimeError:
            pytest.fail(f'memory node did not come up:\n{process.log()}')
        self.publisher = test_node.create_publisher(
            ObservationMsg, f'{namespace}/engram/observations', 100)
        self.diagnostics: list[DiagnosticArray] = []
        test_node.create_subscription(DiagnosticArray, '/diagnostics',
                                      self.diagnostics.append, 10)
        assert wait_for(lambda: self.publisher.get_subscription_count() > 0, 10.0)

    def publish(self, *msgs: ObservationMsg) -> None:
        for msg in msgs:
            self.publisher.publish(msg)

    def diagnostic(self, key: str) -> str | None:
        """Latest value of ``key`` in this node's diagnostics."""
        for array in reversed(self.diagnostics):
            for status in array.status:
                if status.hardware_id == f'/{self.namespace.strip("/")}/engram_memory':
                    values = {kv.key: kv.value for kv in status.values}
                    if key in values:
                        return values[key]
        return None

    def count(self) -> int:
        response = self.client.recall(kinds=['place', 'object', 'audio', 'event'], k=100)
        assert response.status == Recall.Response.STATUS_OK, response.message
        return len(response.engrams)


def ingest(memory: Memory, msgs: list[ObservationMsg], expected: int) -> None:
    before = memory.count()
    memory.publish(*msgs)
    assert wait_for(lambda: memory.count() >= before + expected, 10.0), memory.process.log()
