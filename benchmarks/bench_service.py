"""Recall service round trip over DDS against a memory node holding N engrams.

    source tools/env.sh
    python benchmarks/bench_service.py --size 100000 --queries 500

Fills a SQLite store with synthetic engrams (clustered 256-d vectors, tags of several
selectivities), starts the memory node on it in its own process, and times Recall calls from
a client process: the full round trip (request serialisation, Fast DDS, the node's executor,
filter + rank + record fetch, response) as a planner sees it. Reports p50/p99 per query type.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import rclpy

from engram_ros.core.memory import MemoryStore
from engram_ros.core.memory import StoreConfig
from engram_ros.core.model.engram import Engram
from engram_ros.core.storage import SQLiteStorage
from engram_ros.ros.client import MemoryClient

ROOT = Path(__file__).resolve().parents[1]
DIM = 256
# Tag families: (tag, fraction of engrams carrying it).
TAGS = [('label:common', 0.5), ('label:frequent', 0.1), ('label:rare', 0.01),
        ('label:very_rare', 0.001)]


def fill(store_dir: Path, size: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(256, DIM)).astype(np.float32)
    with MemoryStore(SQLiteStorage(store_dir), StoreConfig(dim=DIM)) as store:
        batch = 10000
        for start in range(0, size, batch):
            n = min(batch, size - start)
            vecs = centres[rng.integers(0, len(centres), n)] + 0.5 * rng.normal(size=(n, DIM))
            pos = rng.uniform(0, 100, size=(n, 3)) * (1, 1, 0.02)
            engrams = []
            for i in range(n):
                tags = tuple(t for t, p in TAGS if rng.random() < p) + (
                    f'room:r{rng.integers(0, 20)}',)
                engrams.append(Engram(
                    id=0, kind='object', frame_id='map', position=pos[i],
                    vector=vecs[i].astype(np.float32), first_seen=1.7e9 + start + i,
                    last_seen=1.7e9 + start + i, tags=tags, label='thing', tier='long'))
            store.bulk_load(engrams)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--size', type=int, default=100000)
    parser.add_argument('--queries', type=int, default=500)
    parser.add_argument('--store', type=Path, default=None,
                        help='reuse a filled store directory (filled if missing)')
    parser.add_argument('--out', type=Path, default=None, help='write the figures as JSON')
    parser.add_argument('--node-param', action='append', default=[], metavar='NAME:=VALUE',
                        help='an extra memory node parameter, e.g. semantic_text:=false (the '
                             'sentence model then does not load during the first queries)')
    args = parser.parse_args()

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
    rclpy.init()
    node = rclpy.create_node('engram_bench')
    client = MemoryClient(node, namespace)
    results: dict[str, dict[str, float]] = {}
    try:
        client.wait_for_services(timeout=120.0)
        rng = np.random.default_rng(1)
        queries = {
            'tag filter (1%), k=10': lambda: dict(tags_all=['label:rare'], k=10),
            'vector, no filter, k=10': lambda: dict(vector=rng.normal(size=DIM), k=10),
            'vector + tag (10%), k=10': lambda: dict(vector=rng.normal(size=DIM),
                                                     tags_all=['label:frequent'], k=10),
            'text "rare", k=10': lambda: dict(text='rare', k=10),
            'vector + radius 5 m, k=10': lambda: dict(
                vector=rng.normal(size=DIM), center=tuple(rng.uniform(0, 100, 3) * (1, 1, 0)),
                radius=5.0, k=10),
        }
        for name, make in queries.items():
            for _ in range(20):       # warm-up
                _call(node, client, make())
            times = []
            for _ in range(args.queries):
                kwargs = make()
                t = time.perf_counter()
                response = _call(node, client, kwargs)
                times.append((time.perf_counter() - t) * 1e3)
                assert response.status == 0, response.message
            results[name] = {'p50_ms': percentile(times, 50), 'p99_ms': percentile(times, 99),
                             'hits': len(response.engrams)}
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        node_proc.send_signal(signal.SIGINT)
        node_proc.wait(60)

    print(f'\nRecall round trip over DDS, {args.size} engrams, {args.queries} calls each '
          '(client spins in the calling thread):')
    print(f'{"query":32s} {"p50 ms":>8s} {"p99 ms":>8s}')
    for name, r in results.items():
        print(f'{name:32s} {r["p50_ms"]:8.2f} {r["p99_ms"]:8.2f}')
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({'size': args.size, 'queries': args.queries,
                                        'results': results}, indent=2))
    return 0


def _call(node, client: MemoryClient, kwargs: dict):
    """One Recall call the way a planner's single-threaded node makes it."""
    request = client.make_recall_request(**kwargs)
    future = client.recall_client.call_async(request)
    rclpy.spin_until_future_complete(node, future, timeout_sec=10.0)
    if not future.done():
        raise RuntimeError('recall timed out')
    return future.result()


if __name__ == '__main__':
    sys.exit(main())
