"""The one way every engram_ros executable starts, spins and stops its node."""

from __future__ import annotations

from typing import Callable

import rclpy
from rclpy.executors import Executor
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


def run_node(make_node: Callable[[], Node], make_executor: Callable[[], Executor], *,
             logger_name: str, startup_errors: tuple[type[BaseException], ...],
             what: str, args: list[str] | None = None) -> int:
    """Initialise rclpy, build the node, spin it until Ctrl-C / SIGTERM, shut down cleanly.

    :param startup_errors: exceptions that mean the node cannot start (a bad store, scenario
        or parameter): logged as fatal with ``what`` and answered with exit code 2.
    :returns: the process exit code (0 after a clean shutdown).
    """
    rclpy.init(args=args)
    try:
        node = make_node()
    except startup_errors as exc:
        rclpy.logging.get_logger(logger_name).fatal(f'cannot {what}: {exc}')
        rclpy.try_shutdown()
        return 2
    executor = make_executor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        node.destroy_node()     # nodes close what they hold (the memory saves its store) here
        rclpy.try_shutdown()
    return 0
