"""TakeLoop over real DDS: batches with message infos, services answered in its thread, and an
executor spinning the same node never runs what the loop takes."""

from __future__ import annotations

import threading
import uuid

import pytest

from conftest import wait_for

rclpy = pytest.importorskip('rclpy')

from rclpy.qos import QoSProfile  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from engram_ros.ros.take_loop import TakeLoop  # noqa: E402


@pytest.fixture
def loop(test_node):
    loops: list[TakeLoop] = []

    def make(**kwargs) -> TakeLoop:
        loops.append(TakeLoop(test_node, f'test_take_{len(loops)}', **kwargs))
        return loops[-1]

    yield make
    for each in loops:
        each.stop()


def test_messages_arrive_in_order_in_batches_with_their_sequence_numbers(test_node, loop):
    topic = f'/take_{uuid.uuid4().hex[:8]}'
    batches: list[list] = []
    taker = loop()
    taker.subscribe(String, topic, QoSProfile(depth=200), batches.append, batch=4)
    taker.start()
    publisher = test_node.create_publisher(String, topic, QoSProfile(depth=200))
    assert wait_for(lambda: publisher.get_subscription_count() == 1, 10.0)

    for i in range(50):
        publisher.publish(String(data=str(i)))
    # the node is spun by the test's executor too: had it run the loop's subscription, the
    # messages it took would be missing here
    assert wait_for(lambda: sum(map(len, batches)) == 50, 20.0), batches
    assert all(1 <= len(batch) <= 4 for batch in batches)
    items = [item for batch in batches for item in batch]
    assert [msg.data for msg, _ in items] == [str(i) for i in range(50)]
    seqs = [info['publication_sequence_number'] for _, info in items]
    assert seqs == list(range(seqs[0], seqs[0] + 50))
    assert taker.failure is None


def test_raw_messages_are_the_serialized_bytes(test_node, loop):
    from rclpy.serialization import deserialize_message

    topic = f'/take_raw_{uuid.uuid4().hex[:8]}'
    batches: list[list] = []
    taker = loop()
    taker.subscribe(String, topic, QoSProfile(depth=10), batches.append, batch=8, raw=True)
    taker.start()
    publisher = test_node.create_publisher(String, topic, 10)
    assert wait_for(lambda: publisher.get_subscription_count() == 1, 10.0)
    publisher.publish(String(data='x' * 1000))
    assert wait_for(lambda: batches, 10.0)
    raw, _ = batches[0][0]
    assert isinstance(raw, bytes) and len(raw) > 1000
    assert deserialize_message(raw, String).data == 'x' * 1000


def test_a_failing_handler_costs_its_own_answer_and_nothing_after(test_node, loop):
    name = f'/take_srv_{uuid.uuid4().hex[:8]}'
    calls = []

    def handler(request, response):
        calls.append(threading.current_thread().name)
        if len(calls) == 1:
            raise RuntimeError('a bug in the handler')
        response.success, response.message = True, f'call {len(calls)}'
        return response

    batches: list[list] = []

    def on_batch(items):
        batches.append(items)
        raise RuntimeError('a bug in the batch handler')

    taker = loop()
    taker.serve(Trigger, name, handler)
    topic = f'/take_fail_{uuid.uuid4().hex[:8]}'
    taker.subscribe(String, topic, QoSProfile(depth=10), on_batch, batch=1)
    taker.start()
    client = test_node.create_client(Trigger, name)
    assert client.wait_for_service(timeout_sec=10.0)

    first = client.call_async(Trigger.Request())    # the handler raises: never answered
    assert wait_for(lambda: len(calls) == 1, 10.0)
    second = client.call_async(Trigger.Request())
    assert wait_for(second.done, 10.0)
    assert second.result().success and second.result().message == 'call 2'
    assert not first.done()
    assert calls == ['test_take_0', 'test_take_0']  # answered in the loop's own thread

    publisher = test_node.create_publisher(String, topic, 10)
    assert wait_for(lambda: publisher.get_subscription_count() == 1, 10.0)
    for i in range(3):
        publisher.publish(String(data=str(i)))
    assert wait_for(lambda: len(batches) == 3, 10.0)    # it went on after each failure
    assert taker.running and taker.failure is None


def test_stop_returns_with_the_thread_ended_and_idle_work_runs_while_nothing_comes(test_node,
                                                                                 loop):
    ticks = threading.Event()
    taker = loop(idle=ticks.set, idle_period=0.05)
    taker.subscribe(String, f'/take_idle_{uuid.uuid4().hex[:8]}', QoSProfile(depth=1),
                    lambda items: None, batch=1)
    taker.start()
    assert ticks.wait(10.0)             # no message came, the idle work ran anyway
    taker.stop()
    assert not taker.running
    taker.stop()                        # again: a no-op


def test_a_batch_below_one_is_refused(test_node, loop):
    with pytest.raises(ValueError, match='batch'):
        loop().subscribe(String, '/take_bad', QoSProfile(depth=1), lambda items: None, batch=0)
