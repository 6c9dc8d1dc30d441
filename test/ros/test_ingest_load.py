"""The memory under more than it can take, over real DDS: every observation accounted for.

Another process publishes bursts in a tight loop (as a busy detector would); the node's
subscription queue is kept small so that DDS overwrites what the node has not taken. Nothing
here is timed: the checks are exact counts (published == taken + counted lost; taken ==
stored + refused + dropped) and that Recall answers while the burst is worked off.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import wait_for
from memory_graph import Memory

rclpy = pytest.importorskip('rclpy')

from engram_ros.ros.diagnostics import MEMORY_COUNTERS  # noqa: E402
from engram_ros.srv import Recall  # noqa: E402

PUBLISHER = Path(__file__).resolve().parents[1] / 'burst_publisher.py'
#: Every counter of an observation taken and not stored.
NOT_STORED = [name for name in MEMORY_COUNTERS
              if name.startswith('dropped_') or name == 'refused_rate']


class Publisher:
    """A burst_publisher.py process (its own gid, its own sequence numbers)."""

    def __init__(self, topic: str, log: Path) -> None:
        self._log = open(log, 'w')
        self.proc = subprocess.Popen([sys.executable, str(PUBLISHER), topic],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log, text=True)
        assert self.proc.stdout.readline().strip() == 'ready', log.read_text()
        self.sent = 0

    def command(self, line: str) -> str:
        self.proc.stdin.write(line + '\n')
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        assert answer, f'publisher died on {line!r}'
        self.sent += int(answer.split()[1]) if answer.startswith('sent') else 1
        return answer

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write('quit\n')
            self.proc.stdin.flush()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture
def publishers(tmp_path):
    started: list[Publisher] = []

    def start(topic: str) -> Publisher:
        publisher = Publisher(topic, tmp_path / f'publisher_{len(started)}.log')
        started.append(publisher)
        return publisher

    yield start
    for publisher in started:
        publisher.close()


def counters(memory: Memory) -> dict[str, int]:
    """The node's counters in a diagnostics message published after this call."""
    seen = len(memory.diagnostics)
    assert wait_for(lambda: len(memory.diagnostics) >= seen + 2, 10.0), memory.process.log()
    values = {name: memory.diagnostic(name) for name in (*MEMORY_COUNTERS, 'write_queue')}
    return {name: int(value) for name, value in values.items() if value is not None}


def settled(memory: Memory, published: int) -> dict[str, int]:
    """Counters once everything published was taken or counted lost and written."""
    state = {}

    def done() -> bool:
        state.update(counters(memory))
        return (state['received'] + state['lost'] == published
                and state['write_queue'] == 0)
    assert wait_for(done, 60.0, period=0.2), (state, memory.process.log())
    return state


def label_count(memory: Memory, label: str) -> int:
    answer = memory.client.recall(tags_all=[f'label:{label}'], k=100, timeout=30.0)
    assert answer.status == Recall.Response.STATUS_OK, answer.message
    return len(answer.engrams)


def test_a_burst_past_what_the_node_takes_is_counted_to_the_last_message(
        test_node, start_memory, publishers, tmp_path):
    process, namespace = start_memory(None, tmp_path / 'store', 'queue_depth:=8',
                                      'ingest_batch:=16')
    memory = Memory(test_node, process, namespace)
    publisher = publishers(f'{namespace}/engram/observations')
    # The node counts a publisher's losses from the first message of it that it sees: one
    # message first, and everything after it is the experiment.
    publisher.command('warm book 0.0')
    assert wait_for(lambda: label_count(memory, 'book') == 1, 20.0), memory.process.log()
    before = counters(memory)
    assert before['received'] == 1 and before['lost'] == 0

    answers: list[int] = []
    stop = threading.Event()

    def ask() -> None:      # a planner asking all along
        while not stop.is_set():
            answers.append(memory.client.recall(kinds=['object'], k=10, timeout=30.0).status)

    asking = threading.Thread(target=ask)
    asking.start()
    try:
        publisher.command('burst 3000 mug')
        publisher.command('warm plant 20.0')    # the last one in: the tail is counted too
        after = settled(memory, publisher.sent)
    finally:
        stop.set()
        asking.join()

    taken = after['received']
    assert after['lost'] > 0, 'the burst did not overload the node: the test proves nothing'
    assert taken + after['lost'] == publisher.sent == 3002
    assert taken == after['ingested'] + sum(after[name] for name in NOT_STORED), after
    assert after['ingested'] > 1
    assert answers and set(answers) == {Recall.Response.STATUS_OK}
    assert label_count(memory, 'plant') == 1
    assert process.proc.poll() is None


def test_a_flooding_publisher_is_refused_past_its_rate_and_the_others_are_not(
        test_node, start_memory, publishers, tmp_path):
    process, namespace = start_memory(None, tmp_path / 'store', 'ingest_rate_limit:=50.0',
                                      'max_observation_bytes:=8192')
    memory = Memory(test_node, process, namespace)
    topic = f'{namespace}/engram/observations'
    flood, polite = publishers(topic), publishers(topic)
    flood.command('warm mug 0.0')
    polite.command('warm plant 0.0')
    assert wait_for(lambda: label_count(memory, 'plant') == 1 and label_count(memory, 'mug') == 1,
                    20.0), memory.process.log()

    flood.command('burst 600 mug')     # 12 s worth of its 50/s in one go
    for i in range(1, 6):
        polite.command(f'warm plant {100.0 * i}')
    polite.command('big')              # 16 KiB: over the size limit, refused unread
    after = settled(memory, flood.sent + polite.sent)

    assert after['lost'] == 0          # the queue (1000) holds everything: nothing overwritten
    assert after['received'] == flood.sent + polite.sent == 608
    assert after['refused_rate'] > 0
    assert after['dropped_oversize'] == 1
    # the polite publisher's observations all stored, whatever the flood did
    assert label_count(memory, 'plant') == 6
    assert after['received'] == after['ingested'] + sum(after[n] for n in NOT_STORED), after
    assert process.proc.poll() is None
