"""Stopping nodes the way a terminal and ``ros2 launch`` do: two stop signals milliseconds apart.

A Ctrl-C under ``ros2 launch`` reaches a node twice (the terminal sends SIGINT to the process
group, launch forwards another), and once crashed nodes in their teardown. Every node starts
through :func:`engram_ros.ros.nodes.spin.run_node`, which installs one handler for SIGINT and
SIGTERM and ignores every later signal while the node closes. ``tools/stress_signals.py`` runs
the same attack 60 times per node; here a few per node, and the handler itself in a probe.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid

import pytest

from conftest import memory_args
from conftest import NodeProcess
from conftest import PARAMS
from conftest import ROOT

pytest.importorskip('rclpy')

ROUNDS = 5

#: A node that checks, from inside its own process, which handlers run_node installed, then
#: sends itself two SIGINTs back to back, two more (SIGTERM, SIGINT) in the middle of its
#: teardown and a SIGTERM after run_node returned: the process must survive all and exit 0.
PROBE = r"""
import json
import os
import signal
import sys
import time

from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from engram_ros.ros.nodes.spin import run_node

seen = {}


def name(handler):
    return getattr(handler, '__qualname__', None) or repr(handler)


class Probe(Node):
    def __init__(self):
        super().__init__('engram_signal_probe')
        self.timer = self.create_timer(0.05, self.tick)

    def tick(self):
        if 'running' in seen:
            return
        sigint, sigterm = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
        seen['running'] = [name(sigint), name(sigterm)]
        seen['one_handler'] = callable(sigint) and sigint == sigterm
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)

    def destroy_node(self):
        handlers = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]
        seen['teardown'] = [name(h) for h in handlers]
        seen['ignored_in_teardown'] = all(h == signal.SIG_IGN for h in handlers)
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)
        super().destroy_node()
        seen['destroyed'] = True


code = run_node(Probe, SingleThreadedExecutor, logger_name='engram_signal_probe',
                startup_errors=(), what='probe')
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(0.2)
print('PROBE ' + json.dumps(seen), flush=True)
sys.exit(code)
"""


def test_one_handler_stops_the_node_and_later_signals_are_ignored(tmp_path):
    proc = subprocess.run([sys.executable, '-c', PROBE], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    seen = json.loads(out.split('PROBE ', 1)[1].splitlines()[0])
    # one Python handler for both signals (rclpy's own, which raise KeyboardInterrupt
    # anywhere, are not installed), and both ignored once the node is being torn down
    assert seen['one_handler'], seen
    assert seen['ignored_in_teardown'], seen
    assert seen['destroyed'], seen
    assert 'Traceback' not in out, out


def start(node: str, tmp_path, run: int) -> tuple[NodeProcess, str | None]:
    """Start ``node`` in a fresh namespace; the memory persists into its own store."""
    namespace = f'/s{uuid.uuid4().hex[:8]}'
    log = tmp_path / f'{node}_{run}.log'
    if node == 'memory':
        store = tmp_path / f'store_{run}'
        args = memory_args(namespace, store)
        return NodeProcess('engram_ros.ros.nodes.memory_node', args, log), str(store)
    common = ['--params-file', str(PARAMS), '-r', f'__ns:={namespace}']
    if node == 'perception':
        args = common + ['-p', f'evidence_dir:={tmp_path / "evidence"}']
        return NodeProcess('engram_ros.ros.nodes.perception_node', args, log), None
    args = common + ['-p', 'scenario:=small', '-p', 'width:=96', '-p', 'height:=72',
                     '-p', 'wait_for_subscribers:=false', '-p', 'rate:=20.0']
    return NodeProcess('engram_ros.sim.node', args, log), None


READY = {'memory': 'memory ready', 'perception': 'perception ready', 'sim': 'scenario '}


def double_sigint(proc: NodeProcess, ready: str) -> int:
    """Wait until the node is up, send SIGINT twice 5-20 ms apart, return its exit code."""
    deadline = time.monotonic() + 90.0
    while ready not in proc.log():
        assert proc.proc.poll() is None and time.monotonic() < deadline, proc.log()
        time.sleep(0.05)
    time.sleep(random.uniform(0.0, 0.3))   # somewhere in its first callbacks
    proc.proc.send_signal(signal.SIGINT)
    time.sleep(random.uniform(0.005, 0.020))
    proc.proc.send_signal(signal.SIGINT)
    try:
        return proc.proc.wait(60)
    finally:
        proc.stop()


@pytest.mark.parametrize('node', ['memory', 'perception', 'sim'])
def test_two_sigints_milliseconds_apart_stop_the_node_cleanly(node, tmp_path):
    if node == 'sim':
        pytest.importorskip('pybullet')
    for run in range(ROUNDS):
        proc, store = start(node, tmp_path, run)
        code = double_sigint(proc, READY[node])
        assert code == 0, f'run {run}: exit {code}\n{proc.log()}'
        assert 'Traceback' not in proc.log(), proc.log()
        if store is not None:
            verify = subprocess.run(
                [sys.executable, '-m', 'engram_ros.apps.cli', '--store', store, 'verify'],
                cwd=ROOT, capture_output=True, text=True, timeout=120,
                env={**os.environ, 'PYTHONUNBUFFERED': '1'})
            assert verify.returncode == 0, f'run {run}: {verify.stdout}{verify.stderr}'


def catches(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler for ``signum`` (``SigCgt`` in /proc)."""
    with open(f'/proc/{pid}/status') as status:
        for line in status:
            if line.startswith('SigCgt:'):
                return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


def maps(pid: int, name: str) -> bool:
    """Whether process ``pid`` has a file whose path holds ``name`` mapped."""
    with open(f'/proc/{pid}/maps') as mapped:
        return any(name in line for line in mapped)


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_while_the_node_imports_its_modules_is_a_clean_stop(sig, tmp_path):
    """``engram_launch`` starts nodes through ``engram_ros.ros.nodes.boot``: a stop signal
    while rclpy, numpy and PyBullet are still being imported (it killed the simulator with
    exit -2 when the launcher stopped it right after another node died) is a clean stop while
    starting, exit 0."""
    namespace = f'/s{uuid.uuid4().hex[:8]}'
    log = tmp_path / 'sim.log'
    with open(log, 'w') as out:
        proc = subprocess.Popen(
            [sys.executable, '-m', 'engram_ros.ros.nodes.boot', 'engram_ros.sim.node',
             '--ros-args', '--params-file', str(PARAMS), '-r', f'__ns:={namespace}',
             '-p', 'scenario:=small', '-p', 'width:=96', '-p', 'height:=72'],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            # as soon as boot has latched (SIGTERM caught: Python itself catches only SIGINT),
            # i.e. before the node's modules are imported; the first tens of ms after exec,
            # before boot runs, are the interpreter's own start
            deadline = time.monotonic() + 30.0
            while not catches(proc.pid, signal.SIGTERM):
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.002)
            # frozen while still importing (rclpy's extension not loaded yet), signalled, let go
            proc.send_signal(signal.SIGSTOP)
            try:
                assert not maps(proc.pid, '_rclpy_pybind11'), 'the node had imported rclpy'
                proc.send_signal(sig)
            finally:
                proc.send_signal(signal.SIGCONT)
            code = proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = log.read_text()
    assert code == 0, text
    assert 'stopped while starting' in text and 'Traceback' not in text, text
