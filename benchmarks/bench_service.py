"""Recall service round trip over DDS against a memory node holding N engrams, beside an
empty std_srvs/Trigger service measured in the same run.

    source tools/env.sh
    python benchmarks/bench_service.py --size 100000 --queries 200 --rounds 3 --clients 4

Fills a SQLite store with synthetic engrams (clustered 256-d vectors, tags of several
selectivities), starts the memory node on it in its own process, and an empty Trigger server
in another (served the way the node serves Recall: a :class:`~engram_ros.ros.take_loop.TakeLoop`
thread, a handler that does nothing). Then:

* one client (this process, spinning in the calling thread as a planner does): each query type
  and the empty service in turn, ``--queries`` calls each per round, ``--rounds`` rounds; the
  p50/p99 round trip of each, and per round the ratio of the text + tag query (k=10) to the
  empty service (issue 12's target: <= 2);
* ``--clients`` client processes calling as fast as they can for ``--seconds``, the empty
  service and Recall (text + tag, k=10, varied) in turn, ``--rounds`` times: calls/s in total,
  p50/p99, timeouts (issue 12's target: Recall >= 50 % of the empty service's calls/s).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import rclpy
from std_srvs.srv import Trigger
from synthetic import DIM
from synthetic import engram_batches

from engram_ros.core.memory import MemoryStore
from engram_ros.core.memory import StoreConfig
from engram_ros.core.storage import SQLiteStorage
from engram_ros.ros.client import MemoryClient
from engram_ros.ros.take_loop import TakeLoop

ROOT = Path(__file__).resolve().parents[1]


def fill(store_dir: Path, size: int, seed: int = 0) -> None:
    with MemoryStore(SQLiteStorage(store_dir), StoreConfig(dim=DIM)) as store:
        for engrams in engram_batches(size, seed):
            store.bulk_load(engrams)


#: Query texts naming vocabulary words (-> tags such as color:red, label:mug): exact text
#: matching. ("thing" is a stop word: a text of it alone is matched by meaning, by the
#: sentence model, which the 'text by meaning' query measures.)
TEXTS = ('where is the red mug', 'the blue cup', 'a book in the kitchen', 'green bottle',
         'find the chair')
MEANT = ('something to read', 'a computer', 'somewhere to sit', 'my sneakers', 'a flower')
TAG_CHOICES = ('label:frequent', 'label:rare', 'label:common', 'room:r3')
TRIGGER = 'empty Trigger service'
TEXT_TAG = 'text + tag, k=10'


def text_tag_query(rng: np.random.Generator, compact: bool = False) -> dict:
    """Issue 12's query: text (vocabulary words) + a tag filter, k=10, varied."""
    return dict(text=str(rng.choice(TEXTS)), tags_any=[str(rng.choice(TAG_CHOICES))], k=10,
                compact=compact)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float('nan')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--size', type=int, default=100000)
    parser.add_argument('--queries', type=int, default=200, help='calls per query per round')
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--clients', type=int, default=4,
                        help='client processes of the throughput phase (0: skip it)')
    parser.add_argument('--seconds', type=float, default=5.0,
                        help='length of each throughput measurement')
    parser.add_argument('--store', type=Path, default=None,
                        help='reuse a filled store directory (filled if missing)')
    parser.add_argument('--out', type=Path, default=None, help='write the figures as JSON')
    parser.add_argument('--node-param', action='append', default=[], metavar='NAME:=VALUE',
                        help='an extra memory node parameter, e.g. semantic_text:=false (the '
                             'sentence model then does not load during the first queries)')
    parser.add_argument('--role', choices=('main', 'trigger-server', 'client'), default='main',
                        help=argparse.SUPPRESS)
    parser.add_argument('--namespace', default='', help=argparse.SUPPRESS)
    parser.add_argument('--call', choices=('recall', 'trigger'), default='recall',
                        help=argparse.SUPPRESS)
    parser.add_argument('--start-at', type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument('--seed', type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == 'trigger-server':
        return serve_trigger(args.namespace)
    if args.role == 'client':
        return client_process(args)

    store = args.store or Path(tempfile.mkdtemp(prefix='engram_bench_')) / 'store'
    if not (store / 'engrams.sqlite3').exists():
        t = time.perf_counter()
        fill(store, args.size)
        print(f'filled {args.size} engrams in {time.perf_counter() - t:.1f} s')

    namespace = f'/bench_{uuid.uuid4().hex[:6]}'
    node_proc = subprocess.Popen(
        [sys.executable, '-m', 'engram_ros.ros.nodes.memory_node', '--ros-args',
         '--params-file', str(ROOT / 'config' / 'engram.yaml'), '-r', f'__ns:={namespace}',
         '-p', 'persist:=true', '-p', f'store_dir:={store}', '-p', 'consolidation_period:=0.0',
         '-p', 'marker_period:=3600.0',
         *[arg for param in args.node_param for arg in ('-p', param)],
         '--log-level', 'warn'], cwd=ROOT)
    trigger_proc = subprocess.Popen([sys.executable, __file__, '--role', 'trigger-server',
                                     '--namespace', namespace], cwd=ROOT)
    rclpy.init()
    node = rclpy.create_node('engram_bench')
    client = MemoryClient(node, namespace)
    trigger = node.create_client(Trigger, f'{namespace}/empty')
    out: dict = {'size': args.size, 'queries': args.queries, 'rounds': args.rounds,
                 'loadavg': [], 'single': {}, 'ratios': [], 'clients': args.clients,
                 'throughput': []}
    try:
        client.wait_for_services(timeout=120.0)
        if not trigger.wait_for_service(timeout_sec=60.0):
            raise RuntimeError('the empty Trigger service did not appear')
        _wait_for_meaning(node, client)
        rng = np.random.default_rng(1)
        queries = {
            TRIGGER: None,
            TEXT_TAG: lambda: text_tag_query(rng),
            TEXT_TAG + ', compact': lambda: text_tag_query(rng, compact=True),
            'text by meaning + tag, k=10': lambda: dict(
                text=str(rng.choice(MEANT)), tags_any=[str(rng.choice(TAG_CHOICES))], k=10),
            'tag filter (1%), k=10': lambda: dict(tags_all=['label:rare'], k=10),
            'tag filter (1%), k=1': lambda: dict(tags_all=['label:rare'], k=1),
            'vector, no filter, k=10': lambda: dict(vector=rng.normal(size=DIM), k=10),
            'vector + tag (10%), k=10': lambda: dict(vector=rng.normal(size=DIM),
                                                     tags_all=['label:frequent'], k=10),
            'vector + radius 5 m, k=10': lambda: dict(
                vector=rng.normal(size=DIM), center=tuple(rng.uniform(0, 100, 3) * (1, 1, 0)),
                radius=5.0, k=10),
        }
        times: dict[str, list[list[float]]] = {name: [] for name in queries}
        for make in queries.values():       # warm-up (and the sentence model's load)
            for _ in range(20):
                _call(node, client, make()) if make else _trigger(node, trigger)
        for _ in range(args.rounds):
            out['loadavg'].append(_loadavg())
            for name, make in queries.items():
                batch = []
                for _ in range(args.queries):
                    kwargs = make() if make else None
                    t = time.perf_counter()
                    response = _call(node, client, kwargs) if make else _trigger(node, trigger)
                    batch.append((time.perf_counter() - t) * 1e3)
                    if make:
                        assert response.status == 0, response.message
                times[name].append(batch)
            p50 = {name: percentile(runs[-1], 50) for name, runs in times.items()}
            out['ratios'].append(p50[TEXT_TAG] / p50[TRIGGER])
        for name, runs in times.items():
            flat = [t for run in runs for t in run]
            out['single'][name] = {'p50_ms': percentile(flat, 50), 'p99_ms': percentile(flat, 99),
                                   'p50_per_round_ms': [percentile(r, 50) for r in runs]}
        if args.clients:
            for _ in range(args.rounds):
                out['loadavg'].append(_loadavg())
                row = {call: _clients(args, namespace, call) for call in ('trigger', 'recall')}
                row['ratio'] = row['recall']['calls_per_s'] / row['trigger']['calls_per_s']
                out['throughput'].append(row)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        for proc in (node_proc, trigger_proc):
            proc.send_signal(signal.SIGINT)
        for proc in (node_proc, trigger_proc):
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
    _report(args, out)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2))
    return 0


def _wait_for_meaning(node, client: MemoryClient, timeout: float = 180.0) -> None:
    """Wait until the node matches text by meaning (its sentence model loads in the
    background after start), so that every round measures the same work."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = _call(node, client, dict(text=MEANT[0], k=1))
        if 'text means' in response.message or 'close in meaning' in response.message:
            return      # matched by meaning, or said that nothing is close in meaning
        time.sleep(1.0)
    print(f'semantic text matching not ready after {timeout:.0f} s (semantic_text off?): '
          'the "text by meaning" query measures exact matching only')


def _report(args, out: dict) -> None:
    print(f'\nRound trip over DDS, {args.size} engrams, one client (spins in the calling '
          f'thread), {args.rounds} rounds x {args.queries} calls; load {out["loadavg"]}')
    print(f'{"query":36s} {"p50 ms":>8s} {"p99 ms":>8s}  p50 per round')
    for name, r in out['single'].items():
        rounds = ' '.join(f'{v:.2f}' for v in r['p50_per_round_ms'])
        print(f'{name:36s} {r["p50_ms"]:8.2f} {r["p99_ms"]:8.2f}  {rounds}')
    print('text + tag p50 / empty service p50, per round: '
          + ' '.join(f'{v:.2f}' for v in out['ratios']))
    if out['throughput']:
        print(f'\n{args.clients} client processes, {args.seconds:.0f} s each:')
        print(f'{"round":>5s} {"call":8s} {"calls/s":>8s} {"p50 ms":>7s} {"p99 ms":>7s} '
              f'{"timeouts":>8s}')
        for i, row in enumerate(out['throughput']):
            for call in ('trigger', 'recall'):
                r = row[call]
                print(f'{i:5d} {call:8s} {r["calls_per_s"]:8.0f} {r["p50_ms"]:7.2f} '
                      f'{r["p99_ms"]:7.2f} {r["timeouts"]:8d}')
            print(f'{"":5s} recall / empty service: {row["ratio"]:.2f}')


def _loadavg() -> str:
    return Path('/proc/loadavg').read_text().split(' ')[0]


def _clients(args, namespace: str, call: str) -> dict:
    """Run ``args.clients`` client processes calling ``call`` at once; their totals."""
    start_at = time.time() + 6.0      # every client ready (rclpy imported, service found)
    procs = [subprocess.Popen(
        [sys.executable, __file__, '--role', 'client', '--namespace', namespace, '--call', call,
         '--seconds', str(args.seconds), '--start-at', str(start_at), '--seed', str(i)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True) for i in range(args.clients)]
    results = []
    for proc in procs:
        stdout, _ = proc.communicate(timeout=args.seconds + 120)
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    latencies = [t for r in results for t in r['ms']]
    return {'calls_per_s': sum(r['calls'] for r in results) / args.seconds,
            'p50_ms': percentile(latencies, 50), 'p99_ms': percentile(latencies, 99),
            'max_ms': max(latencies, default=float('nan')),
            'timeouts': sum(r['timeouts'] for r in results),
            'warm_up_timeouts': sum(r['warm_up_timeouts'] for r in results),
            'late_starts': sum(r['late'] for r in results)}


def client_process(args) -> int:
    """One client of the throughput phase: calls from ``--start-at`` for ``--seconds``."""
    rclpy.init()
    node = rclpy.create_node(f'engram_bench_client_{os.getpid()}')
    client = MemoryClient(node, args.namespace)
    trigger = node.create_client(Trigger, f'{args.namespace}/empty')
    rng = np.random.default_rng(100 + args.seed)
    ms: list[float] = []
    timeouts = 0
    try:
        (client.recall_client if args.call == 'recall' else trigger).wait_for_service(60.0)
        warm_timeouts = 0
        for _ in range(10):     # warm-up; a request right after discovery may go unanswered
            try:
                _call(node, client, text_tag_query(rng), timeout=2.0) if (
                    args.call == 'recall') else _trigger(node, trigger, timeout=2.0)
            except TimeoutError:
                warm_timeouts += 1
        late = int(time.time() > args.start_at)
        time.sleep(max(0.0, args.start_at - time.time()))
        end = args.start_at + args.seconds
        while True:
            t = time.perf_counter()
            try:
                if args.call == 'recall':
                    response = _call(node, client, text_tag_query(rng), timeout=2.0)
                    assert response.status == 0, response.message
                else:
                    _trigger(node, trigger, timeout=2.0)
            except TimeoutError:
                timeouts += 1
            if time.time() >= end:
                break
            ms.append((time.perf_counter() - t) * 1e3)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    print(json.dumps({'calls': len(ms), 'ms': ms, 'timeouts': timeouts, 'late': late,
                      'warm_up_timeouts': warm_timeouts}))
    return 0


def serve_trigger(namespace: str) -> int:
    """The empty service: std_srvs/Trigger answered by a TakeLoop thread, as Recall is."""
    rclpy.init()
    node = rclpy.create_node('engram_bench_empty', namespace=namespace)
    loop = TakeLoop(node, 'empty')
    loop.serve(Trigger, 'empty', lambda request, response: response)
    loop.start()
    stop = False

    def on_signal(*_):
        nonlocal stop
        stop = True
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stop:
        time.sleep(0.1)
    loop.stop()
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def _call(node, client: MemoryClient, kwargs: dict, timeout: float = 10.0):
    """One Recall call the way a planner's single-threaded node makes it."""
    request = client.make_recall_request(**kwargs)
    future = client.recall_client.call_async(request)
    rclpy.spin_until_future_complete(node, future, timeout_sec=timeout)
    if not future.done():
        client.recall_client.remove_pending_request(future)
        raise TimeoutError('recall timed out')
    return future.result()


def _trigger(node, trigger, timeout: float = 10.0):
    future = trigger.call_async(Trigger.Request())
    rclpy.spin_until_future_complete(node, future, timeout_sec=timeout)
    if not future.done():
        trigger.remove_pending_request(future)
        raise TimeoutError('trigger timed out')
    return future.result()


if __name__ == '__main__':
    sys.exit(main())
