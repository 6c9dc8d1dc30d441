"""The one way every engram_ros executable starts, spins and stops its node."""

from __future__ import annotations

import signal
import threading
from typing import Callable

import rclpy
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.exceptions import ParameterException
from rclpy.executors import Executor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from engram_ros.ros.nodes import boot
from engram_ros.ros.nodes.boot import STOP_SIGNALS


def run_node(make_node: Callable[[], Node], make_executor: Callable[[], Executor], *,
             logger_name: str, startup_errors: tuple[type[BaseException], ...],
             what: str, args: list[str] | None = None) -> int:
    """Initialise rclpy, build the node, spin it until Ctrl-C / SIGTERM, shut down cleanly.

    A Ctrl-C while the node is being built (its services may already be visible) stops it
    there: the node's constructor releases what it opened (the memory closes its store).

    :param startup_errors: exceptions that mean the node cannot start (a bad store, scenario
        or parameter): logged as fatal with ``what`` and answered with exit code 2, without a
        traceback; a parameter of the wrong type (rclpy's ``ParameterException``) is one for
        every node. rclpy's shutdown destroys a node whose constructor failed half-way: its
        ``destroy_node`` must cope with that, or the constructor destroys it first.
    :returns: the process exit code (0 after a clean shutdown).
    """
    stop = StopSignals()
    make_node = stop.interruptible(make_node)
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    logger = rclpy.logging.get_logger(logger_name)
    try:
        node = make_node()
    except KeyboardInterrupt:
        logger.info('stopped while starting')
        rclpy.try_shutdown()
        return 0
    except (*startup_errors, ParameterException) as exc:
        logger.fatal(f'cannot {what}: {exc}')
        rclpy.try_shutdown()
        return 2
    spin_until_stopped(node, make_executor, stop)
    return 0


class StopSignals:
    """The one handler of SIGINT and SIGTERM in a node's process, installed before rclpy starts.

    rclpy's own handlers stay out (``SignalHandlerOptions.NO``): they forward an interrupt to
    Python as a ``KeyboardInterrupt`` that may land anywhere, also in the middle of the clean-up
    after the first one, and two Ctrl-C a few milliseconds apart (a terminal's and the one
    ``ros2 launch`` forwards) then crashed nodes (memory -6 and -11, the simulator -11 in
    PyBullet's disconnect). Here the first stop signal only sets :attr:`requested`, and every
    later one is ignored: the teardown runs once, to its end. Only while the node is being
    built does the signal raise ``KeyboardInterrupt``, to cut a long start short.
    """

    def __init__(self) -> None:
        self.requested = threading.Event()
        self._starting = False
        if boot.early_signal:       # a stop signal while the modules were imported
            self.ignore()
            self.requested.set()
            return
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._handler)

    def _handler(self, signum: int, frame) -> None:
        self.ignore()
        self.requested.set()
        if self._starting:
            self._starting = False
            raise KeyboardInterrupt

    @staticmethod
    def ignore() -> None:
        """From now on the process only closes what it holds: stop signals are ignored."""
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)

    def interruptible(self, make_node: Callable[[], Node]) -> Callable[[], Node]:
        """``make_node`` that a stop signal interrupts with ``KeyboardInterrupt``."""
        def make() -> Node:
            self._starting = True
            try:
                if self.requested.is_set():
                    raise KeyboardInterrupt
                return make_node()
            finally:
                self._starting = False
        return make

    def wait(self) -> None:
        # Python runs signal handlers in the main thread only, between bytecodes; a signal that
        # the kernel gives another thread (DDS, the executor) wakes nobody, so look every 0.1 s.
        while not self.requested.wait(0.1):
            pass


def spin_until_stopped(node: Node, make_executor: Callable[[], Executor],
                       stop: StopSignals) -> None:
    """Spin ``node`` in a worker thread until a stop signal, then tear down in order.

    The main thread only waits, so no signal can interrupt a callback or the teardown. The
    order is safe for every node: the spinning thread leaves its loop after its current
    callback, the executor waits for the callbacks still running in its pool, then the node is
    destroyed (the memory closes its store, the simulator disconnects from PyBullet), and only
    then rclpy shuts down. A callback's exception stops the node the same way, then is raised.
    """
    failure: list[BaseException] = []
    executor: Executor | None = None
    spinner: threading.Thread | None = None
    # Executor.wake() does not end a spin_once that has nothing else to do (the simulator
    # after its patrol has no timer left): a guard condition with a callback does.
    wake = node.create_guard_condition(lambda: None,
                                       callback_group=MutuallyExclusiveCallbackGroup())

    def spin() -> None:
        try:
            executor.add_node(node)
            while not stop.requested.is_set() and executor.context.ok():
                executor.spin_once()
        except BaseException as exc:  # raised by the main thread after the teardown
            failure.append(exc)
        finally:
            stop.requested.set()

    try:
        executor = make_executor()
        spinner = threading.Thread(target=spin, name='engram_spin')
        spinner.start()
        stop.wait()
    finally:
        stop.ignore()
        if executor is not None:
            wake.trigger()
            if spinner is not None:
                spinner.join()
            executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    if failure:
        raise failure[0]
