"""The one way every engram_ros executable starts, spins and stops its node."""

from __future__ import annotations

import signal
from typing import Callable

import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import Executor
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


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
    rclpy.init(args=args)
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
    executor: Executor | None = None
    try:
        executor = make_executor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        # rclpy's handler also forwards the interrupt to Python, which may raise
        # KeyboardInterrupt a moment later, in the middle of this clean-up or after it:
        # from here on the process only closes what it holds (the memory saves its store) and
        # exits, so further interrupts are ignored rather than allowed to cut that short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if executor is not None:
            executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
