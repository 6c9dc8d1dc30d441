"""Start a set of engram_ros nodes, each in its own process, from one parameter file.

``ros2 launch`` (the ``launch`` packages) cannot be installed from the package index; this
starts the same sets as ``launch/sim_launch.py`` and ``launch/robot_launch.py`` from the same
``config/engram.yaml``, with the same wiring (both ask :mod:`engram_ros.apps.wiring`):

    python -m engram_ros.apps.launcher sim                      # sim + perception + memory
    python -m engram_ros.apps.launcher robot --namespace /r1    # perception + memory
    python -m engram_ros.apps.launcher sim -p sim.scenario:=small -p memory.persist:=true \\
        --remap camera/color/image_raw:=/cam/rgb --without perception
    python -m engram_ros.apps.launcher sim --without perception --without memory \\
        -p sim.realtime:=false -p sim.wait_for_subscribers:=false \\
        --record ~/bags/house --record-raw         # an MCAP bag, as fast as it renders

Supervision: on Ctrl-C or SIGTERM the launcher stops the nodes in reverse start order
(producers first, the memory last, so what is in flight is still stored), each with SIGINT,
then SIGTERM, then SIGKILL after ``--grace`` seconds. If any node exits by itself, the others
are stopped the same way and the launcher exits with status 1. Each node runs in its own
session so that a terminal's Ctrl-C reaches it exactly once, through the launcher, and dies
with the launcher (``PR_SET_PDEATHSIG``) should the launcher be killed outright.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Sequence

import yaml

from engram_ros.apps.wiring import check_set
from engram_ros.apps.wiring import default_params_file
from engram_ros.apps.wiring import node_set
from engram_ros.apps.wiring import NodeLaunch
from engram_ros.apps.wiring import NODES
from engram_ros.apps.wiring import NodeSpec
from engram_ros.apps.wiring import SETS

_LOG = logging.getLogger('engram_launch')


def die_with_parent() -> None:
    """In the child before exec: new session, and SIGTERM when the launcher dies (Linux)."""
    os.setsid()
    try:
        libc = ctypes.CDLL('libc.so.6', use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@dataclass
class Child:
    spec: NodeSpec
    command: list[str]
    proc: subprocess.Popen | None = None
    log_file: object | None = None
    returncode: int | None = None


@dataclass
class Launcher:
    """Starts, watches and stops the nodes of one set."""

    set_name: str = 'sim'
    params_file: Path = field(default_factory=default_params_file)
    namespace: str = ''
    params: Sequence[str] = ()                # "node.name:=value"
    remaps: Sequence[str] = ()                # "from:=to", for every node
    without: Sequence[str] = ()               # node names to leave out
    log_dir: Path | None = None               # None: children write to this terminal
    log_level: str = ''
    grace: float = 15.0                       # [s] per signal before the next, stronger one

    def __post_init__(self) -> None:
        check_set(self.set_name, self.without)
        self.params_file = Path(self.params_file)
        if not self.params_file.is_file():
            raise ValueError(f'parameter file {self.params_file} not found')
        self.overrides: dict[str, list[str]] = {name: [] for name in NODES}
        for item in self.params:
            node, sep, assignment = item.partition('.')
            if not sep or node not in NODES or ':=' not in assignment:
                raise ValueError(f'parameter override {item!r} is not <node>.<name>:=<value> '
                                 f'with <node> one of {", ".join(NODES)}')
            self.overrides[node].append(assignment)
        for remap in self.remaps:
            if ':=' not in remap:
                raise ValueError(f'remapping {remap!r} is not <from>:=<to>')
        launches = node_set(self.set_name, self.params_file, self.override_values(),
                            self.without, self.namespace)
        self.children = [Child(launch.spec, self.command(launch)) for launch in launches]
        self.stopping = False

    def override_values(self) -> dict[str, dict]:
        """The ``-p`` overrides per node, their values parsed as the nodes will parse them."""
        values: dict[str, dict] = {}
        for node, assignments in self.overrides.items():
            for assignment in assignments:
                name, _, value = assignment.partition(':=')
                try:
                    values.setdefault(node, {})[name] = yaml.safe_load(value)
                except yaml.YAMLError:   # the node will say what is wrong with it
                    values.setdefault(node, {})[name] = value
        return values

    # --------------------------------------------------------------------------- commands
    def command(self, launch: NodeLaunch) -> list[str]:
        """The node's command line: the wiring's parameters first, so ``-p`` overrides win."""
        spec = launch.spec
        # through boot: a stop signal during the node's imports is a clean stop
        args = [sys.executable, '-m', 'engram_ros.ros.nodes.boot', spec.module, '--ros-args',
                '--params-file',
                str(self.params_file)]
        if self.namespace:
            args += ['-r', f'__ns:={self.namespace}']
        for remap in self.remaps:
            args += ['-r', remap]
        shared = [f'{name}:={_yaml_value(value)}' for name, value in launch.parameters.items()]
        for assignment in shared + self.overrides[spec.name]:
            args += ['-p', assignment]
        if self.log_level:
            args += ['--log-level', self.log_level]
        return args

    # --------------------------------------------------------------------------- running
    def start(self) -> None:
        env = dict(os.environ)
        env.setdefault('PYTHONUNBUFFERED', '1')
        for child in self.children:
            out = None
            if self.log_dir is not None:
                Path(self.log_dir).mkdir(parents=True, exist_ok=True)
                child.log_file = open(Path(self.log_dir) / f'{child.spec.name}.log', 'w')
                out = child.log_file
            child.proc = subprocess.Popen(child.command, stdout=out,
                                          stderr=subprocess.STDOUT if out else None,
                                          preexec_fn=die_with_parent, env=env, cwd=os.getcwd())
            _LOG.info('started %s (pid %d)', child.spec.name, child.proc.pid)

    def pids(self) -> dict[str, int]:
        return {c.spec.name: c.proc.pid for c in self.children if c.proc is not None}

    def check(self) -> Child | None:
        """The first node that exited by itself, if any."""
        for child in self.children:
            if child.proc is not None and child.returncode is None:
                code = child.proc.poll()
                if code is not None:
                    child.returncode = code
                    return child
        return None

    def stop(self) -> dict[str, int]:
        """Stop every node still running, in reverse start order; returns exit codes."""
        self.stopping = True
        for child in reversed(self.children):
            if child.proc is None:
                continue
            if child.proc.poll() is None:
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
                    try:
                        child.proc.send_signal(sig)
                    except ProcessLookupError:
                        break
                    try:
                        child.proc.wait(self.grace)
                        break
                    except subprocess.TimeoutExpired:
                        _LOG.warning('%s did not stop on %s', child.spec.name,
                                     signal.Signals(sig).name)
            child.returncode = child.proc.wait()
            if child.log_file is not None:
                child.log_file.close()
            _LOG.info('%s stopped (exit code %d)', child.spec.name, child.returncode)
        return {c.spec.name: c.returncode for c in self.children if c.proc is not None}

    def run(self, poll: float = 0.1) -> int:
        """Start, watch until a signal or a node's exit, stop all; 0 only on a clean stop."""
        requested: list[int] = []

        def on_signal(signum, _frame) -> None:
            requested.append(signum)

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        died = None
        try:
            self.start()
            while not requested:
                died = self.check()
                if died is not None:
                    _LOG.error('%s exited by itself (exit code %d): stopping the others',
                               died.spec.name, died.returncode)
                    break
                time.sleep(poll)
            codes = self.stop()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        if died is not None:
            return 1
        return 0 if all(code == 0 for code in codes.values()) else 1


def _yaml_value(value) -> str:
    """A value as a ``-p`` argument the node reads back unchanged: a word as it is, any other
    string JSON-quoted (a path, an empty string), everything else as JSON (YAML reads it)."""
    if isinstance(value, str) and value.isidentifier():
        return value
    return json.dumps(value)


def record_params(set_name: str, record: Path | None, raw: bool) -> list[str]:
    """The sim's ``-p`` overrides of ``--record PATH [--record-raw]``.

    :raises ValueError: for a set without the simulator, or ``--record-raw`` alone.
    """
    if not (record or raw):
        return []
    if 'sim' not in SETS[set_name]:
        raise ValueError('--record and --record-raw need a set with the simulator (sim)')
    if not record:
        raise ValueError('--record-raw needs --record PATH')
    return [f'sim.record:={_yaml_value(str(Path(record).expanduser().absolute()))}',
            f'sim.record_raw:={"true" if raw else "false"}']


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='engram_launch', description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='sets: ' + '; '.join(f'{k}: {", ".join(v)}' for k, v in SETS.items()))
    parser.add_argument('set', choices=sorted(SETS), help='which nodes to start')
    parser.add_argument('--params-file', type=Path, default=default_params_file(),
                        help='parameter file, one top-level key per node (default: %(default)s)')
    parser.add_argument('--namespace', default='', help='namespace of every node, e.g. /robot1')
    parser.add_argument('-p', '--param', action='append', default=[], metavar='NODE.NAME:=VALUE',
                        help='override a parameter of one node, e.g. sim.scenario:=small')
    parser.add_argument('-r', '--remap', action='append', default=[], metavar='FROM:=TO',
                        help='remap a topic or service name for every node')
    parser.add_argument('--without', action='append', default=[], metavar='NODE',
                        help=f'leave a node of the set out ({", ".join(NODES)})')
    parser.add_argument('--record', type=Path, metavar='PATH',
                        help='sim set: the simulator writes its topics to a new MCAP bag at PATH '
                             '(sim.record)')
    parser.add_argument('--record-raw', action='store_true',
                        help='with --record: also colour, depth and audio, outside the '
                             'memory\'s privacy zones and windows (sim.record_raw)')
    parser.add_argument('--log-dir', type=Path,
                        help='write each node\'s output to <dir>/<node>.log')
    parser.add_argument('--log-level', default='', help='ROS log level of the nodes')
    parser.add_argument('--grace', type=float, default=15.0,
                        help='[s] to wait after each stop signal (default: %(default)s)')
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='[engram_launch] %(message)s')
    try:
        args.param += record_params(args.set, args.record, args.record_raw)
        launcher = Launcher(args.set, args.params_file, args.namespace, args.param, args.remap,
                            args.without, args.log_dir, args.log_level, args.grace)
    except ValueError as exc:
        _LOG.error('%s', exc)
        return 2
    return launcher.run()


if __name__ == '__main__':
    sys.exit(main())
