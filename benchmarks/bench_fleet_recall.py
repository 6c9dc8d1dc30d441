#!/usr/bin/env python3
"""Recall scope's cost (issue 15): a recall of this robot beside the same recall of the fleet.

Robot A's memory (:class:`MemoryStore`, RAM storage) and a milvus-lite fleet collection each
hold ``n`` synthetic engrams (:mod:`benchmarks.synthetic`: clustered 256-d vectors, labels
from a small list), the fleet's written as robot ``b``. Each query kind is asked ``queries``
times with ``scope`` ROBOT and FLEET: ``label`` (``label:frequent``, on 10 % of the engrams,
and no vector: every matching fleet engram is read and ranked), ``vector`` (the fleet's
nearest ``k x 4``), ``vector+label`` (a vector and one label). Reports p50 / p99 wall latency
and how many answers came from robot b, one thread, on a machine shared with other jobs (load
average recorded).
Writes ``<out>.json`` and ``<out>.md``.

Example::

    python benchmarks/bench_fleet_recall.py --n 10000 --queries 20 \\
        --out docs/benchmarks/fleet_recall
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.synthetic import DIM  # noqa: E402
from benchmarks.synthetic import engram_batches  # noqa: E402
from engram_ros.core.backends.milvus import MilvusBackend  # noqa: E402
from engram_ros.core.memory import MemoryStore  # noqa: E402
from engram_ros.core.memory import StoreConfig  # noqa: E402
from engram_ros.core.query import RecallQuery  # noqa: E402
from engram_ros.core.query import RecallScope  # noqa: E402
from engram_ros.core.storage import MemoryStorage  # noqa: E402

K = 10


class Fleet:
    """The fleet as robot A sees it (the :class:`FleetView` protocol)."""

    def __init__(self, backend: MilvusBackend) -> None:
        self.robot_id = 'a'
        self._backend = backend

    def backend(self) -> MilvusBackend:
        return self._backend


def _engrams(n: int, seed: int) -> list:
    out = []
    for batch in engram_batches(n, batch=10000, seed=seed):
        out.extend(batch)
    return out


def _load() -> str:
    return ' '.join(f'{v:.2f}' for v in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--n', type=int, default=10000, help='engrams per robot')
    parser.add_argument('--queries', type=int, default=20, help='recalls per kind and scope')
    parser.add_argument('--out', default='docs/benchmarks/fleet_recall')
    args = parser.parse_args(argv)

    start_load = _load()
    started = datetime.datetime.now(datetime.timezone.utc)
    local = _engrams(args.n, seed=1)
    fleet_rows = _engrams(args.n, seed=2)
    for i, engram in enumerate(fleet_rows):
        engram.id = 10_000_000 + i          # the fleet's own ids
    labels = sorted({t for e in fleet_rows for t in e.tags if t.startswith('label:')})
    with tempfile.TemporaryDirectory() as tmp:
        backend = MilvusBackend(str(Path(tmp) / 'fleet.db'), DIM, robot_id='b')
        t0 = time.perf_counter()
        for s in range(0, len(fleet_rows), 2000):
            backend.put(fleet_rows[s:s + 2000])
        backend.flush()
        fill_s = time.perf_counter() - t0
        store = MemoryStore(MemoryStorage(), StoreConfig(dim=DIM))
        store.robot_id = 'a'
        store.bulk_load(local)
        store.fleet = Fleet(backend)
        rng = np.random.default_rng(7)
        kinds = {
            'label': lambda: RecallQuery(tags_any=('label:frequent',), k=K),
            'vector': lambda: RecallQuery(vector=fleet_rows[int(rng.integers(args.n))].vector,
                                          k=K),
            'vector+label': lambda: RecallQuery(
                vector=fleet_rows[int(rng.integers(args.n))].vector,
                tags_any=(labels[int(rng.integers(len(labels)))],), k=K),
        }
        rows = []
        for name, make in kinds.items():
            for scope in (RecallScope.ROBOT, RecallScope.FLEET):
                times, from_b, candidates = [], 0, 0
                for _ in range(args.queries):
                    query = make()
                    query.scope = scope
                    t = time.perf_counter()
                    result = store.recall(query)
                    times.append((time.perf_counter() - t) * 1e3)
                    from_b += sum(h.robot == 'b' for h in result.hits)
                    candidates += result.candidates
                rows.append({'query': name, 'scope': scope.name.lower(),
                             'p50_ms': round(float(np.percentile(times, 50)), 2),
                             'p99_ms': round(float(np.percentile(times, 99)), 2),
                             'answers_from_b': from_b, 'answers': args.queries * K,
                             'mean_candidates': candidates // args.queries})
        store.close()
        backend.close()
    end_load = _load()
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True,
                            text=True).stdout.strip()
    report = {'date': started.strftime('%Y-%m-%d %H:%M UTC'), 'commit': commit,
              'machine': f'{platform.machine()}, {os.cpu_count()} cores, shared with other jobs',
              'load_start': start_load, 'load_end': end_load, 'n_per_robot': args.n,
              'queries': args.queries, 'k': K, 'fleet_fill_s': round(fill_s, 1), 'rows': rows}
    out = Path(args.out)
    out.with_suffix('.json').write_text(json.dumps(report, indent=1) + '\n')
    lines = [
        '# Recall of this robot beside the same recall of the fleet '
        '(`benchmarks/bench_fleet_recall.py`)', '',
        f'* Command: `python benchmarks/bench_fleet_recall.py --n {args.n} --queries '
        f'{args.queries} --out {args.out}`',
        f'* Date: {report["date"]}; commit {commit}; {report["machine"]}; Python '
        f'{platform.python_version()}',
        f'* Load average (1/5/15 min) at the start: {start_load}, at the end: {end_load} '
        '(other jobs share the cores: latencies are wall times under that load)',
        f'* {args.n:,} engrams in robot A\'s memory and {args.n:,} of robot b in a milvus-lite '
        f'collection (fill {fill_s:.1f} s), k = {K}', '',
        '| query | scope | p50 ms | p99 ms | answers from b | mean candidates |',
        '|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f'| {r["query"]} | {r["scope"]} | {r["p50_ms"]} | {r["p99_ms"]} | '
                     f'{r["answers_from_b"]} of {r["answers"]} | {r["mean_candidates"]:,} |')
    out.with_suffix('.md').write_text('\n'.join(lines) + '\n')
    print('\n'.join(lines))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
