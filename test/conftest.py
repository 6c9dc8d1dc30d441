"""Shared fixtures: a private DDS domain per test run, nodes in their own processes."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck
from hypothesis import settings

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / 'config' / 'engram.yaml'


# Fixtures shared by several test files: the index tests' `data` and `index`, the store tests'
# `make_store` (both backends).
pytest_plugins = ['index_cases', 'store_cases']

# Property tests (hypothesis): no per-example deadline and no "too slow" health check, which
# are timing assertions on a shared 2-core machine; derandomized, so CI runs the same examples
# every time and a failure reproduces.
settings.register_profile('engram', deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile('engram')

# One DDS domain per pytest process, so parallel runs on one machine do not see each other.
os.environ.setdefault('ROS_DOMAIN_ID', str(random.Random(os.getpid()).randint(100, 200)))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')


class NodeProcess:
    """A node started as ``python -m <module>`` with ROS arguments; log kept in a file."""

    def __init__(self, module: str, ros_args: list[str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, 'w')
        self.proc = subprocess.Popen(
            [sys.executable, '-m', module, '--ros-args', *ros_args],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT)

    def log(self) -> str:
        """Everything the process wrote so far; also after :meth:`stop` (an assertion's
        message reads it then, and must show the process's words, not a closed-file error)."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15.0) -> int:
        """Stop the process and return its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@pytest.fixture(scope='session')
def ros_context():
    """rclpy initialised once for the test process, with a spinning executor thread."""
    rclpy = pytest.importorskip('rclpy')
    from rclpy.executors import MultiThreadedExecutor

    rclpy.init()
    executor = MultiThreadedExecutor(num_threads=2)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    yield executor
    executor.shutdown()
    rclpy.try_shutdown()


@pytest.fixture
def test_node(ros_context):
    """A plain rclpy node for the test to create clients and publishers on."""
    import rclpy

    node = rclpy.create_node(f'test_{uuid.uuid4().hex[:8]}')
    ros_context.add_node(node)
    yield node
    ros_context.remove_node(node)
    node.destroy_node()


def memory_args(namespace: str, store_dir: Path | None, *extra: str) -> list[str]:
    args = ['--params-file', str(PARAMS), '-r', f'__ns:={namespace}',
            '-p', 'consolidation_period:=0.0', '-p', 'diagnostics_period:=0.2',
            '-p', 'marker_period:=0.2', '-p', 'semantic_text:=false']
    if store_dir is not None:
        args += ['-p', 'persist:=true', '-p', f'store_dir:={store_dir}']
    for item in extra:
        args += ['-p', item]
    return args


@pytest.fixture
def start_memory(tmp_path):
    """Start memory nodes in their own processes; all are stopped at teardown."""
    started: list[NodeProcess] = []

    def start(namespace: str | None = None, store_dir: Path | None = None,
              *extra: str) -> tuple[NodeProcess, str]:
        namespace = namespace or f'/t{uuid.uuid4().hex[:8]}'
        proc = NodeProcess('engram_ros.ros.nodes.memory_node',
                           memory_args(namespace, store_dir, *extra),
                           tmp_path / f'memory_{len(started)}.log')
        started.append(proc)
        return proc, namespace

    yield start
    for proc in started:
        proc.stop()


def wait_for(predicate, timeout: float = 10.0, period: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(period)
    return bool(predicate())
