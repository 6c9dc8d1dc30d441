"""A thread that takes a node's hot-path messages and requests itself, without an executor.

rclpy's executors spend most of a message's cost in Python dispatch: measured here on the
2-core machine (256-d ``Observation`` messages, a callback that does nothing), the
``MultiThreadedExecutor`` took 550-690 messages/s at about 1 ms of CPU each and collapsed
below what was offered, while a loop that waits on the subscription and takes every waiting
message in a row took 1,000/s of 1,000 and 3,600/s of 4,000 at 130-220 us each. rclpy's
``EventsExecutor`` would be the other answer, but in this build (Kilted from the package
index) it crashes on subscriptions whose callback takes the message info ("SystemError: null
argument to internal routine"), refuses guard conditions, and hung on services; rclcpp is not
on the package index. So the memory's observation intake and its Recall service are served
by a :class:`TakeLoop` each:

* ``subscribe`` takes up to ``batch`` messages per wake-up, with their message infos
  (publisher gid and sequence number, for :mod:`engram_ros.ros.publisher_loss`), and hands
  them to one callback as a list: the work after the take (validation, a group commit) is
  done once per batch. The loop takes the next batch only when the callback returns, so under
  overload DDS's keep-last queue drops what cannot be handled (counted from sequence gaps)
  instead of the process spending its time on messages it will drop.
* ``serve`` takes a service's requests one by one and sends each response as soon as its
  handler returns: a Recall never waits behind the executor's timers and writers.

The entities are created on the node, in a callback group no executor may run
(:class:`TakenHere`), so they appear in the graph, lifecycle transitions track them and the
executor leaves them alone. :meth:`TakeLoop.stop` must be called before they are destroyed.
rclpy has no public wait-set class: this uses the one ``rclpy.wait_for_message`` uses.
"""

from __future__ import annotations

import threading
from typing import Any
from typing import Callable

from rclpy.callback_groups import CallbackGroup
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile


class TakenHere(CallbackGroup):
    """A callback group no executor runs: its entities are taken by a :class:`TakeLoop`."""

    def can_execute(self, entity) -> bool:
        return False

    def beginning_execution(self, entity) -> bool:
        return False

    def ending_execution(self, entity) -> None:
        pass


def _never_called(*_args) -> None:      # the executor never runs a TakenHere entity
    raise AssertionError('an entity of a TakeLoop was run by an executor')


class TakeLoop:
    """One thread that waits on some subscriptions and services of ``node`` and serves them.

    :param idle: called after every wake-up, and at least every ``idle_period`` seconds when
        nothing arrives (retries of a write queue); exceptions are logged, never raised.
    """

    def __init__(self, node: Node, name: str, *, idle: Callable[[], None] | None = None,
                 idle_period: float = 0.5) -> None:
        self._node = node
        self.name = name
        self._group = TakenHere()
        self._subs: list[tuple[Any, Callable[[list], None], int]] = []
        self._services: list[tuple[Any, Callable[[Any, Any], Any]]] = []
        self._idle = idle
        self._idle_ns = int(idle_period * 1e9)
        self._stopping = threading.Event()
        self._wake = node.create_guard_condition(_never_called, callback_group=self._group)
        self._thread: threading.Thread | None = None
        #: The exception that ended the loop, if one did.
        self.failure: BaseException | None = None

    def subscribe(self, msg_type, topic: str, qos: QoSProfile,
                  on_batch: Callable[[list[tuple[Any, dict]]], None], *, batch: int,
                  raw: bool = False):
        """A subscription whose messages reach ``on_batch`` as ``[(msg, info), ...]``, at most
        ``batch`` at a time (``raw``: the serialized bytes, for a size check before
        ``rclpy.serialization.deserialize_message``); returns the rclpy subscription."""
        if batch < 1:
            raise ValueError(f'batch={batch} must be >= 1')
        sub = self._node.create_subscription(msg_type, topic, _never_called, qos,
                                             callback_group=self._group, raw=raw)
        self._subs.append((sub, on_batch, int(batch)))
        return sub

    def serve(self, srv_type, name: str, handler: Callable[[Any, Any], Any]):
        """A service answered by ``handler(request, response) -> response`` in this thread;
        returns the rclpy service."""
        srv = self._node.create_service(srv_type, name, _never_called,
                                        callback_group=self._group)
        self._services.append((srv, handler))
        return srv

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop taking, after the batch or request in hand; returns when the thread ended."""
        self._stopping.set()
        if self._thread is not None:
            self._wake.trigger()
            self._thread.join()
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------------- the thread
    def _run(self) -> None:
        context = self._node.context
        wait_set = _rclpy.WaitSet(len(self._subs), 1, 0, 0, len(self._services), 0,
                                  context.handle)
        try:
            while not self._stopping.is_set() and context.ok():
                wait_set.clear_entities()
                for sub, _, _ in self._subs:
                    wait_set.add_subscription(sub.handle)
                for srv, _ in self._services:
                    wait_set.add_service(srv.handle)
                wait_set.add_guard_condition(self._wake.handle)
                wait_set.wait(self._idle_ns)
                if self._stopping.is_set():
                    break
                for srv, handler in self._services:
                    self._answer(srv, handler)
                for sub, on_batch, batch in self._subs:
                    self._take(sub, on_batch, batch)
                if self._idle is not None:
                    self._idle_call()
        except BaseException as exc:    # a destroyed entity or context: the node is going
            if not self._stopping.is_set():
                self.failure = exc
                self._node.get_logger().error(f'{self.name} stopped: {exc!r}')

    def _take(self, sub, on_batch, batch: int) -> None:
        items = []
        with sub.handle:
            while len(items) < batch:
                taken = sub.handle.take_message(sub.msg_type, sub.raw)
                if taken is None:
                    break
                items.append(taken)
        if items:
            try:
                on_batch(items)
            except Exception as exc:    # the callback counts its own failures; go on
                self._node.get_logger().error(f'{self.name}: batch handler failed: {exc!r}')

    def _answer(self, srv, handler) -> None:
        while not self._stopping.is_set():
            with srv.handle:
                taken = srv.handle.service_take_request(srv.srv_type.Request)
            if taken is None or taken[0] is None:
                return
            request, header = taken
            try:
                response = handler(request, srv.srv_type.Response())
            except Exception as exc:    # handlers answer every error themselves: a bug
                self._node.get_logger().error(
                    f'{self.name}: {srv.srv_name} failed, no answer sent: {exc!r}')
                continue
            srv.send_response(response, header)

    def _idle_call(self) -> None:
        try:
            self._idle()
        except Exception as exc:
            self._node.get_logger().error(f'{self.name}: idle work failed: {exc!r}')
