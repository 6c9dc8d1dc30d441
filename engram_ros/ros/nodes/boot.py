"""Start a node with its stop signals caught from the first instant of the process.

A node module's imports (rclpy, numpy, faiss, PyBullet, torch) take seconds. A Ctrl-C or a
SIGTERM in that time met Python's default handling: the process died by the signal (exit -2
or -15) instead of stopping cleanly with 0, e.g. the simulator when ``engram_launch`` stopped
it because another node had exited just after the start. Every way a node is started goes
through here first: ``engram_launch`` runs ``python -m engram_ros.ros.nodes.boot MODULE ARGS``,
the ``scripts/*_node`` executables call :func:`latch` before their imports. The handler only
records the first signal; :class:`~engram_ros.ros.nodes.spin.StopSignals` takes over and stops
the node while it is being built (``stopped while starting``, exit 0). What is left is the
interpreter's own start before this module runs (tens of ms after exec, longer on a cold
bytecode cache): a signal then still ends the process by the signal.

Nothing here imports more than the standard library.
"""

from __future__ import annotations

import runpy
import signal
import sys

#: The signals that stop a node: Ctrl-C (SIGINT) and ``kill``/``ros2 launch`` (SIGTERM).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

#: The first stop signal received before the node's own handler was installed, else 0.
early_signal = 0


def _record(signum: int, frame) -> None:
    global early_signal
    early_signal = early_signal or signum


def latch() -> None:
    """Record stop signals from now on, until the node installs its own handler."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _record)


def main(argv: list[str] | None = None) -> None:
    """``boot MODULE [ARGS...]``: :func:`latch`, then run ``MODULE`` as ``__main__``."""
    argv = sys.argv if argv is None else argv
    if len(argv) < 2:
        sys.exit('usage: python -m engram_ros.ros.nodes.boot MODULE [ARGS...]')
    latch()
    sys.argv = [argv[0], *argv[2:]]
    runpy.run_module(argv[1], run_name='__main__', alter_sys=True)


if __name__ == '__main__':
    # Run as ``-m`` this file is ``__main__``; the state the node reads is the importable
    # module's, so use that one.
    from engram_ros.ros.nodes import boot as _boot
    _boot.main()
