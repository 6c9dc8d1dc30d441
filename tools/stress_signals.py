#!/usr/bin/env python3
"""Stress the nodes' stop path: two SIGINTs 5-20 ms apart, many times per node (not CI).

A Ctrl-C in a terminal under ``ros2 launch`` reaches each node twice, a few milliseconds
apart (the terminal signals the process group, launch forwards another). That once crashed
nodes in their teardown (memory -6 and -11, the simulator -11 in PyBullet's disconnect: 3 in
26). This script starts each node with the shipped ``config/engram.yaml`` (the memory with
``persist: true`` in a temporary store), waits until it is up and a random moment more, sends
the two signals and counts every run that does not end with exit status 0, and, for the
memory, every store that ``engram verify`` does not pass afterwards. CI runs a few of these
(test/ros/test_signals.py); this is the long version.

    source tools/env.sh
    nice -n 10 python tools/stress_signals.py                 # 60 runs of each node
    nice -n 10 python tools/stress_signals.py --runs 10 --nodes memory

Exit status 0 when every run stopped cleanly and every store verified.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / 'config' / 'engram.yaml'
MODULES = {'memory': 'engram_ros.ros.nodes.memory_node',
           'perception': 'engram_ros.ros.nodes.perception_node',
           'sim': 'engram_ros.sim.node'}
READY = {'memory': 'memory ready', 'perception': 'perception ready', 'sim': 'scenario '}


def node_args(node: str, work: Path, namespace: str) -> list[str]:
    args = ['--ros-args', '--params-file', str(PARAMS), '-r', f'__ns:={namespace}']
    if node == 'memory':
        args += ['-p', 'persist:=true', '-p', f'store_dir:={work / "store"}']
    elif node == 'perception':
        args += ['-p', f'evidence_dir:={work / "evidence"}']
    else:       # patrol at once: the signals arrive while frames are rendered
        args += ['-p', 'wait_for_subscribers:=false']
    return args


def run_once(node: str, work: Path, rng: random.Random) -> tuple[int | None, float, str]:
    """One start and double-SIGINT stop; returns (exit status, gap [ms], log tail)."""
    log_path = work / f'{node}.log'
    with open(log_path, 'w') as log:
        proc = subprocess.Popen([sys.executable, '-m', MODULES[node],
                                 *node_args(node, work, f'/x{uuid.uuid4().hex[:8]}')],
                                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    deadline = time.monotonic() + 120.0
    while READY[node] not in log_path.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            return None, 0.0, 'never ready:\n' + log_path.read_text()[-3000:]
        time.sleep(0.05)
    time.sleep(rng.uniform(0.0, 1.0))
    gap = rng.uniform(0.005, 0.020)
    proc.send_signal(signal.SIGINT)
    time.sleep(gap)
    proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = proc.wait()
        return code, gap * 1e3, 'hung for 60 s, killed:\n' + log_path.read_text()[-3000:]
    return code, gap * 1e3, log_path.read_text()[-3000:]


def verify(store: Path) -> tuple[bool, str]:
    proc = subprocess.run([sys.executable, '-m', 'engram_ros.apps.cli', '--store', str(store),
                           'verify'], cwd=ROOT, capture_output=True, text=True, timeout=300)
    return proc.returncode == 0, (proc.stdout + proc.stderr)[-2000:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--runs', type=int, default=60, help='runs per node (default 60)')
    parser.add_argument('--nodes', nargs='+', choices=sorted(MODULES),
                        default=['memory', 'perception', 'sim'])
    parser.add_argument('--seed', type=int, default=None, help='random seed of the delays')
    args = parser.parse_args(argv)
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    os.environ.setdefault('ROS_DOMAIN_ID', str(random.Random(os.getpid()).randint(100, 200)))
    rng = random.Random(args.seed)
    failures = 0
    for node in args.nodes:
        crashes, unverified, started = [], [], time.monotonic()
        for run in range(args.runs):
            with tempfile.TemporaryDirectory(prefix=f'stress_{node}_') as tmp:
                work = Path(tmp)
                code, gap, tail = run_once(node, work, rng)
                if code != 0 or 'Traceback' in tail:
                    crashes.append((run, code, gap, tail))
                    print(f'{node} run {run}: exit {code} (gap {gap:.1f} ms)\n{tail}\n',
                          flush=True)
                if node == 'memory' and code is not None:
                    ok, report = verify(work / 'store')
                    if not ok:
                        unverified.append(run)
                        print(f'{node} run {run}: store does not verify\n{report}\n',
                              flush=True)
        failures += len(crashes) + len(unverified)
        codes = sorted({c for _, c, _, _ in crashes}, key=str)
        print(f'{node}: {args.runs} runs in {time.monotonic() - started:.0f} s, '
              f'{len(crashes)} not clean (exit statuses {codes or "-"})'
              + (f', {len(unverified)} stores not verified' if node == 'memory' else ''),
              flush=True)
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
