"""Shared parts of the DDS benchmarks (``bench_ingest.py``, ``bench_recall_load.py``).

Every actor runs in its own process, started here with :mod:`subprocess` and stopped by its
PID only (never by name: other jobs share the machine):

* the memory node (``python -m engram_ros.ros.nodes.memory_node``), the real node on a real
  SQLite store, over Fast DDS;
* a publisher process (``python benchmarks/dds_bench.py publisher ...``) that offers
  ``engram_ros/Observation`` messages at a given rate when told so on its stdin, and answers
  how many it published;
* an empty ``std_srvs/Trigger`` server (``python benchmarks/dds_bench.py trigger ...``), the
  baseline of a service round trip: a plain rclpy node spun by ``rclpy.spin``;
* service clients (``python benchmarks/dds_bench.py client ...``) that call Recall or Trigger
  as fast as they can for a given time when told so, and answer their latencies.

The benchmark process itself reads the memory node's counters from ``/diagnostics``
(:class:`Diagnostics`) and its CPU time from ``/proc/<pid>/stat`` (:func:`cpu_seconds`).
Workers talk to it in JSON lines on stdin/stdout: simple, and no shared state to lock.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / 'config' / 'engram.yaml'
DIM = 256
#: Counters of observations the node did not store, by what the benchmark reports them as.
REFUSED = ('refused_rate',)
DROPPED = ('dropped_queue_full', 'dropped_error')
REJECTED = ('dropped_malformed', 'dropped_label_too_long', 'dropped_too_many_tags',
            'dropped_tag_too_long', 'dropped_oversize', 'dropped_privacy')
#: Counters read from the memory node's diagnostics (missing ones read as 0).
COUNTERS = ('received', 'lost', 'ingested', 'merged', *REFUSED, *DROPPED, *REJECTED,
            'write_queue', 'recalls', 'recall_errors')


# ----------------------------------------------------------------------------- measuring
def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads), from /proc/<pid>/stat."""
    with open(f'/proc/{pid}/stat', encoding='ascii') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    # after the command name: state is field 3, utime 14 and stime 15 (1-based, man 5 proc)
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def rss_mb(pid: int) -> float:
    """Resident set size of process ``pid`` [MiB]."""
    with open(f'/proc/{pid}/status', encoding='ascii') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    return 0.0


def loadavg() -> str:
    """The first three fields of /proc/loadavg (1, 5, 15 min)."""
    with open('/proc/loadavg', encoding='ascii') as f:
        return ' '.join(f.read().split()[:3])


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import rclpy
    model = ''
    try:
        with open('/proc/cpuinfo', encoding='ascii', errors='replace') as f:
            model = next((line.split(':', 1)[1].strip() for line in f
                          if line.startswith('model name')), '')
    except OSError:
        pass
    try:
        commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT, text=True,
                                capture_output=True, check=False).stdout.strip()
    except OSError:
        commit = ''
    from importlib.metadata import version
    mem_gib = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2 ** 30
    return {'cpus': os.cpu_count(), 'cpu': model, 'memory_gib': round(mem_gib, 1),
            'python': platform.python_version(),
            'rclpy': _version(version, 'rclpy') or getattr(rclpy, '__version__', ''),
            'rmw': os.environ.get('RMW_IMPLEMENTATION', ''), 'commit': commit}


def _version(version, name: str) -> str:
    try:
        return version(name)
    except Exception:       # not a distribution (a sourced ROS install)
        return ''


def spread(values: list[float]) -> dict[str, float]:
    """Median, min and max of ``values`` (the spread over runs)."""
    array = np.asarray(values, dtype=float)
    return {'median': float(np.median(array)), 'min': float(array.min()),
            'max': float(array.max())}


def fmt_spread(s: dict[str, float], digits: int = 3) -> str:
    """``median (min-max)`` with ``digits`` significant digits."""
    def f(v: float) -> str:
        return f'{v:.{digits}g}' if abs(v) < 10 ** (digits - 1) else f'{v:.0f}'
    if s['min'] == s['max']:
        return f(s['median'])
    return f'{f(s["median"])} ({f(s["min"])}-{f(s["max"])})'


def write_result(result: dict[str, Any], text: str, out: str) -> None:
    """Print the markdown ``text``; with ``out``, write ``out``.json (``result``) and .md."""
    print('\n' + text)
    if out:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_suffix('.json').write_text(json.dumps(result, indent=1) + '\n')
        path.with_suffix('.md').write_text(text)


def choose_domain(domain: int | None) -> int:
    """Set ``ROS_DOMAIN_ID`` for this process and the ones it starts (random 150-229 unless
    given, so that the benchmark does not meet other jobs' nodes)."""
    domain = domain if domain is not None else random.randint(150, 229)
    os.environ['ROS_DOMAIN_ID'] = str(domain)
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    return domain


# ----------------------------------------------------------------------------- processes
class Process:
    """A process started by the benchmark (stdout a pipe when it is a worker), stopped by its
    PID with SIGINT, then SIGKILL if it does not end."""

    def __init__(self, argv: list[str], log_path: Path, *, worker: bool = False) -> None:
        self.log_path = log_path
        self._log = open(log_path, 'w')
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, stderr=self._log, text=True,
            stdout=subprocess.PIPE if worker else self._log,
            stdin=subprocess.PIPE if worker else subprocess.DEVNULL)
        self.pid = self.proc.pid

    def send(self, **command: Any) -> None:
        """Write one JSON command line to the worker."""
        self.proc.stdin.write(json.dumps(command) + '\n')
        self.proc.stdin.flush()

    def receive(self, timeout: float = 120.0) -> dict[str, Any]:
        """The next JSON line the worker writes; raises if it ends or says nothing in time."""
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(self.proc.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(timeout)
        if not result or not result[0]:
            raise RuntimeError(f'worker {self.pid} said nothing within {timeout} s '
                               f'(exit code {self.proc.poll()}); log:\n{self.log()[-3000:]}')
        return json.loads(result[0])

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors='replace')

    def stop(self, timeout: float = 20.0) -> int | None:
        """End the process: a worker by closing its stdin, any by SIGINT to its PID after
        that, SIGKILL past ``timeout``; its exit code."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
            try:
                self.proc.wait(5.0)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def start_memory(namespace: str, store_dir: Path, log_path: Path,
                 params: list[str]) -> Process:
    """The memory node on ``store_dir`` (persisted, SQLite) in namespace ``namespace``;
    ``params`` are ``NAME:=VALUE`` overrides of config/engram.yaml."""
    argv = [sys.executable, '-m', 'engram_ros.ros.nodes.memory_node', '--ros-args',
            '--params-file', str(PARAMS), '-r', f'__ns:={namespace}',
            '-p', 'persist:=true', '-p', f'store_dir:={store_dir}', '--log-level', 'warn']
    for param in params:
        argv += ['-p', param]
    return Process(argv, log_path)


def start_worker(role: str, log_path: Path, *args: str) -> Process:
    return Process([sys.executable, str(Path(__file__).resolve()), role, *args], log_path,
                   worker=True)


class Diagnostics:
    """The latest counters the memory node ``node_fqn`` published on ``/diagnostics``."""

    def __init__(self, node, node_fqn: str) -> None:
        from diagnostic_msgs.msg import DiagnosticArray

        self._fqn = node_fqn
        self._lock = threading.Lock()
        self._values: dict[str, str] = {}
        self._stamp = 0.0
        node.create_subscription(DiagnosticArray, '/diagnostics', self._on_array, 50)

    def _on_array(self, array) -> None:
        for status in array.status:
            if status.hardware_id == self._fqn:
                with self._lock:
                    self._values = {kv.key: kv.value for kv in status.values}
                    self._stamp = time.monotonic()

    def counters(self, newer_than: float = 0.0, timeout: float = 10.0) -> dict[str, int]:
        """The counters of :data:`COUNTERS` from a status received after ``newer_than``
        (``time.monotonic()``); raises when none comes within ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self._values and self._stamp > newer_than:
                    return {name: _int(self._values.get(name)) for name in COUNTERS}
            time.sleep(0.02)
        raise RuntimeError(f'no diagnostics from {self._fqn} within {timeout} s')


def _int(value: str | None) -> int:
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before[name] for name in after}


def accounting(published: int, d: dict[str, int]) -> dict[str, int]:
    """What became of ``published`` observations, from the node's counter deltas ``d``:
    ``uncounted = published - stored - (lost + refused + dropped + rejected)``, 0 when every
    loss is counted."""
    refused = sum(d[n] for n in REFUSED)
    dropped = sum(d[n] for n in DROPPED)
    rejected = sum(d[n] for n in REJECTED)
    stored = d['ingested']
    return {'published': published, 'taken': d['received'], 'lost': d['lost'],
            'stored': stored, 'merged': d['merged'], 'refused': refused, 'dropped': dropped,
            'rejected': rejected,
            'uncounted': published - stored - (d['lost'] + refused + dropped + rejected)}


def wait_drained(diagnostics: Diagnostics, before: dict[str, int], published: int,
                 settle: float = 3.0, timeout: float = 60.0) -> tuple[dict[str, int], float]:
    """Wait until the node accounted for all ``published`` observations since ``before``
    (taken or counted lost, and each taken one stored or counted) with an empty write queue,
    or until its counters stop changing for ``settle`` seconds (then what is missing is
    uncounted), at most ``timeout``; the counter deltas and the time it took."""
    start = time.monotonic()
    last, last_change = None, start
    while True:
        now = time.monotonic()
        d = delta(diagnostics.counters(newer_than=now - 0.001, timeout=10.0), before)
        acc = accounting(published, d)
        if acc['uncounted'] <= 0 and d['write_queue'] <= 0:
            return d, now - start
        if d != last:
            last, last_change = d, now
        elif now - last_change > settle or now - start > timeout:
            return d, last_change - start


# ----------------------------------------------------------------------------- workers
def sketch_observations(count: int, seed: int, stamp: float) -> list[bytes]:
    """``count`` serialized Observation messages like perception's sketches: objects of 24
    labels at random places in a 60 x 40 m map, 256-d vectors near their label's centre, a
    colour and a room tag, confidence 0.5-1; serialized once, so that publishing costs the
    publisher little."""
    from rclpy.serialization import serialize_message

    from engram_ros.core.model.engram import Observation
    from engram_ros.ros.conversions import memory as conversions

    rng = np.random.default_rng(seed)
    labels = ['mug', 'book', 'chair', 'plant', 'laptop', 'bottle', 'cup', 'bowl', 'keyboard',
              'phone', 'remote', 'vase', 'clock', 'backpack', 'umbrella', 'tv', 'couch', 'bed',
              'toaster', 'sink', 'oven', 'scissors', 'teddy bear', 'toothbrush']
    colours = ['red', 'green', 'blue', 'white', 'black', 'yellow']
    centres = rng.normal(size=(len(labels), DIM))
    out = []
    for i in range(count):
        j = int(rng.integers(len(labels)))
        out.append(serialize_message(conversions.observation_to_msg(Observation(
            kind='object', frame_id='map',
            position=rng.uniform((0, 0, 0), (60, 40, 2)), stamp=stamp - i * 1e-3,
            vector=centres[j] + 0.3 * rng.normal(size=DIM), label=labels[j],
            tags=(f'color:{colours[int(rng.integers(len(colours)))]}',
                  f'room:r{int(rng.integers(20))}'),
            modality='vision', confidence=float(rng.uniform(0.5, 1.0))))))
    return out


def _reply(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + '\n')
    sys.stdout.flush()


def _commands():
    for line in sys.stdin:
        if line.strip():
            yield json.loads(line)


def publisher_main(args: argparse.Namespace) -> None:
    """Publisher worker: ``{"rate": R, "seconds": S}`` offers R observations/s for S seconds
    (round-robin over ``--publishers`` publishers), paced against the clock; answers
    ``{"published": N, "seconds": T}``. Publishing is cut at S seconds, so at rates the
    process cannot reach ``published`` is below ``R * S``: the benchmark reports both."""
    import rclpy
    from rclpy.qos import QoSProfile

    from engram_ros.msg import Observation as ObservationMsg

    rclpy.init()
    node = rclpy.create_node(f'engram_bench_publisher_{os.getpid()}')
    # perception's observation publisher: reliable, keep-last 100
    pubs = [node.create_publisher(ObservationMsg, f'{args.namespace}/engram/observations',
                                  QoSProfile(depth=100)) for _ in range(args.publishers)]
    pool = sketch_observations(args.pool, args.seed, time.time())
    deadline = time.monotonic() + 60.0
    while any(p.get_subscription_count() == 0 for p in pubs):
        if time.monotonic() > deadline:
            raise RuntimeError('the memory node did not subscribe within 60 s')
        time.sleep(0.05)
    time.sleep(0.5)     # both ends matched (the subscriber may see us a little later)
    _reply(ready=True)
    sent = 0
    for command in _commands():
        rate, seconds = float(command['rate']), float(command['seconds'])
        n_pubs, n_pool = len(pubs), len(pool)
        start = time.monotonic()
        published = 0
        while True:
            elapsed = time.monotonic() - start
            if elapsed >= seconds:
                break
            due = min(int(elapsed * rate) + 1, int(rate * seconds))
            while published < due:
                pubs[sent % n_pubs].publish(pool[sent % n_pool])
                sent += 1
                published += 1
            if published >= int(rate * seconds):
                break
            pause = start + published / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        _reply(published=published, seconds=time.monotonic() - start)
    node.destroy_node()
    rclpy.try_shutdown()


def trigger_main(args: argparse.Namespace) -> None:
    """An empty ``std_srvs/Trigger`` server, ``<namespace>/bench/trigger``, spun by
    ``rclpy.spin`` (a SingleThreadedExecutor): the round trip of a service doing nothing."""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from std_srvs.srv import Trigger

    def answer(request, response):
        response.success = True
        return response

    rclpy.init()
    node = rclpy.create_node('engram_bench_trigger', namespace=args.namespace)
    node.create_service(Trigger, 'bench/trigger', answer)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    node.destroy_node()
    rclpy.try_shutdown()


RECALL_TEXTS = ('thing', 'rare thing', 'common thing', 'frequent thing', 'a very rare thing',
                'where is the thing')


def client_main(args: argparse.Namespace) -> None:
    """Service client worker: ``{"service": "recall"|"trigger", "seconds": S}`` calls it in a
    loop for S seconds, each call awaited (``spin_until_future_complete``, as a planner's
    single-threaded node does), with a ``--timeout``; answers the latencies [ms] of the
    answered calls, the timeouts and the answers with a non-OK status. Recall asks k=10 with
    a text and a room tag, varied per call."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from std_srvs.srv import Trigger

    from engram_ros.ros.client import MemoryClient

    rclpy.init()
    node = rclpy.create_node(f'engram_bench_client_{os.getpid()}')
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    memory = MemoryClient(node, args.namespace)
    trigger = node.create_client(Trigger, f'{args.namespace}/bench/trigger')
    rng = random.Random(args.seed)

    def recall_request():
        return memory.make_recall_request(
            text=rng.choice(RECALL_TEXTS), tags_all=[f'room:r{rng.randrange(20)}'], k=10,
            compact=args.compact)

    def call(service: str, timeout: float) -> tuple[float | None, bool]:
        client = memory.recall_client if service == 'recall' else trigger
        request = recall_request() if service == 'recall' else Trigger.Request()
        start = time.perf_counter()
        future = client.call_async(request)
        executor.spin_until_future_complete(future, timeout_sec=timeout)
        if not future.done():
            client.remove_pending_request(future)
            return None, False
        ms = (time.perf_counter() - start) * 1e3
        response = future.result()
        ok = response.success if service == 'trigger' else response.status == 0
        return ms, ok

    for client in (memory.recall_client, trigger):
        if not client.wait_for_service(timeout_sec=120.0):
            raise RuntimeError(f'{client.srv_name} not available')
    for service in ('recall', 'trigger'):      # warm up both paths
        for _ in range(5):
            call(service, 10.0)
    _reply(ready=True)
    for command in _commands():
        service, seconds = command['service'], float(command['seconds'])
        latencies, timeouts, errors = [], 0, 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            ms, ok = call(service, args.timeout)
            if ms is None:
                timeouts += 1
                continue
            latencies.append(round(ms, 4))
            errors += not ok
        _reply(latencies=latencies, timeouts=timeouts, errors=errors)
    node.destroy_node()
    rclpy.try_shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description='a worker process of the DDS benchmarks')
    sub = parser.add_subparsers(dest='role', required=True)
    pub = sub.add_parser('publisher')
    pub.add_argument('--namespace', required=True)
    pub.add_argument('--publishers', type=int, default=1)
    pub.add_argument('--pool', type=int, default=5000)
    pub.add_argument('--seed', type=int, default=0)
    trig = sub.add_parser('trigger')
    trig.add_argument('--namespace', required=True)
    cli = sub.add_parser('client')
    cli.add_argument('--namespace', required=True)
    cli.add_argument('--timeout', type=float, default=2.0)
    cli.add_argument('--seed', type=int, default=0)
    cli.add_argument('--compact', action='store_true', help='Recall with compact answers')
    args = parser.parse_args()
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    {'publisher': publisher_main, 'trigger': trigger_main, 'client': client_main}[args.role](
        args)
    return 0


if __name__ == '__main__':
    sys.exit(main())
