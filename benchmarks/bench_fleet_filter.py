#!/usr/bin/env python3
"""Filtered top-10 on the fleet backend (Milvus, milvus-lite) beside the embedded index (issue 15).

Fills one milvus-lite collection (HNSW, COSINE, M=16, efConstruction=200, as in production)
and one embedded backend (in-RAM :class:`EngramIndex`) with the same synthetic engrams
(:mod:`benchmarks.synthetic`: clustered 256-d vectors), each also tagged ``sel:<p>`` on an
exact random subset of ``p`` % of them (50, 10, 1, 0.1, 0.01 %). Then, per selectivity, the
same query vectors (an engram's vector plus noise) are asked as ``search(q, 10,
Stage1Filter(tags_all=('sel:<p>',)))`` of:

* ``milvus planned``: :class:`MilvusBackend` as shipped: a count with the filter, exact ranking
  of a matching set <= ``exact_threshold`` fetched by scalar query, else filtered HNSW with
  ``ef`` raised as the matching fraction drops;
* ``milvus unplanned``: the same collection, always the engine's filtered HNSW at ``ef`` 128;
* ``embedded``: :class:`EmbeddedBackend` (the robot's own index);
* ``exact``: numpy brute force over every vector with the filter's mask (the ground truth).

Reports recall@10 against the exact answer and p50 / p99 wall latency of each, one thread,
on a machine shared with other jobs (load average recorded). Writes ``<out>.json`` and
``<out>.md``.

Example::

    python benchmarks/bench_fleet_filter.py --n 100000 --queries 50 \\
        --out docs/benchmarks/fleet_filter
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
from engram_ros.core.backend import EmbeddedBackend  # noqa: E402
from engram_ros.core.backend import Stage1Filter  # noqa: E402
from engram_ros.core.backends.milvus import MilvusBackend  # noqa: E402
from engram_ros.core.storage import MemoryStorage  # noqa: E402

SELECTIVITIES = (0.5, 0.1, 0.01, 0.001, 0.0001)
K = 10
METHODS = ('milvus planned', 'milvus unplanned', 'embedded', 'exact')


def _tag(p: float) -> str:
    return f'sel:{p * 100:g}'


def _fill(n: int, seed: int) -> tuple[list, np.ndarray, np.ndarray]:
    """The engrams (ids 1..n, each with its ``sel:`` tags), their unit vectors and one
    boolean mask column per selectivity."""
    rng = np.random.default_rng(seed + 1)
    masks = np.zeros((len(SELECTIVITIES), n), dtype=bool)
    for row, p in enumerate(SELECTIVITIES):
        masks[row, rng.choice(n, size=max(K, round(n * p)), replace=False)] = True
    engrams = []
    for batch in engram_batches(n, seed=seed):
        for engram in batch:
            engram.id = len(engrams) + 1
            i = engram.id - 1
            engram.tags = engram.tags + tuple(_tag(p) for row, p in enumerate(SELECTIVITIES)
                                              if masks[row, i])
            engram.vector = engram.vector / np.linalg.norm(engram.vector)
            engram.valid_from = engram.first_seen
            engrams.append(engram)
    vectors = np.stack([e.vector for e in engrams]).astype(np.float32)
    return engrams, vectors, masks


def _exact(vectors: np.ndarray, mask: np.ndarray, q: np.ndarray) -> np.ndarray:
    scores = vectors @ q
    scores[~mask] = -np.inf
    top = np.argpartition(-scores, K - 1)[:K]
    top = top[np.argsort(-scores[top])]
    return top + 1                                           # ids are rows + 1


def _stats(latencies: list[float], recalls: list[float]) -> dict:
    ms = np.asarray(latencies) * 1000.0
    return {'recall_at_10': round(float(np.mean(recalls)), 4),
            'recall_min': round(float(np.min(recalls)), 4),
            'p50_ms': round(float(np.percentile(ms, 50)), 2),
            'p99_ms': round(float(np.percentile(ms, 99)), 2)}


def run(n: int, queries: int, seed: int, workdir: Path) -> dict:
    t0 = time.perf_counter()
    engrams, vectors, masks = _fill(n, seed)
    made = time.perf_counter() - t0
    milvus = MilvusBackend(str(workdir / 'fleet.db'), DIM, model='synthetic-256')
    options = {'index': 'HNSW', 'metric': 'COSINE', 'M': 16, 'efConstruction': 200,
               'tag_match': milvus.tag_match, 'exact_threshold': milvus.exact_threshold,
               'ef_search': milvus.ef_search, 'filtered_ef': milvus.filtered_ef,
               'max_ef': milvus.max_ef}
    t0 = time.perf_counter()
    for start in range(0, n, 10000):
        milvus.put(engrams[start:start + 10000])
    milvus.flush()                               # seal: segments, HNSW index built
    milvus_fill = time.perf_counter() - t0
    t0 = time.perf_counter()
    milvus.search(vectors[0], K)                 # first search: segments load, index ready
    milvus_first = time.perf_counter() - t0
    embedded = EmbeddedBackend(MemoryStorage(), DIM)
    t0 = time.perf_counter()
    for start in range(0, n, 10000):
        embedded.put(engrams[start:start + 10000])
    embedded_fill = time.perf_counter() - t0
    del engrams
    rng = np.random.default_rng(seed + 2)
    rows = []
    for row, p in enumerate(SELECTIVITIES):
        where = Stage1Filter(tags_all=(_tag(p),))
        matching = int(masks[row].sum())
        picked = rng.integers(0, n, queries)
        qs = vectors[picked] + 0.3 * rng.standard_normal((queries, DIM)).astype(np.float32) \
            / np.sqrt(DIM)
        qs /= np.linalg.norm(qs, axis=1, keepdims=True)
        result = {'selectivity': p, 'matching': matching}
        truths = []
        lat: list[float] = []
        for q in qs:
            t = time.perf_counter()
            truths.append(_exact(vectors, masks[row], q))
            lat.append(time.perf_counter() - t)
        result['exact'] = _stats(lat, [1.0] * queries)
        for name in METHODS[:3]:
            backend = embedded if name == 'embedded' else milvus
            if backend is milvus:
                milvus.plan_filters = name == 'milvus planned'
                milvus.plan_counts = {}
            lat, rec = [], []
            for q, truth in zip(qs, truths):
                t = time.perf_counter()
                got = backend.search(q, K, where).ids
                lat.append(time.perf_counter() - t)
                rec.append(len(set(got.tolist()) & set(truth.tolist())) / len(truth))
            result[name] = _stats(lat, rec)
            if backend is milvus:
                result[name]['plans'] = dict(milvus.plan_counts)
        rows.append(result)
        print(json.dumps(result), flush=True)
    milvus.close()
    embedded.close()
    return {'n': n, 'dim': DIM, 'k': K, 'queries_per_selectivity': queries, 'seed': seed,
            'fill_s': {'synthetic': round(made, 1), 'milvus_lite': round(milvus_fill, 1),
                       'milvus_first_search': round(milvus_first, 2),
                       'embedded': round(embedded_fill, 1)},
            'milvus_options': options,
            'rows': rows}


def _machine() -> dict:
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True,
                            text=True, cwd=Path(__file__).resolve().parents[1]).stdout.strip()
    import milvus_lite
    import pymilvus
    return {'python': platform.python_version(), 'cpus': os.cpu_count(), 'commit': commit,
            'pymilvus': pymilvus.__version__, 'milvus_lite': milvus_lite.__version__,
            'machine': '2-core EPYC VM, 24 GiB, shared with other jobs'}


def _markdown(result: dict) -> str:
    lines = ['# Filtered top-10 on Milvus (milvus-lite) beside the embedded index '
             '(`benchmarks/bench_fleet_filter.py`)', '',
             f'* Command: `{result["command"]}`',
             f'* Date: {result["date"]}; commit {result["machine"]["commit"]}; '
             f'{result["machine"]["machine"]}; Python {result["machine"]["python"]}, '
             f'pymilvus {result["machine"]["pymilvus"]}, milvus-lite '
             f'{result["machine"]["milvus_lite"]}',
             f'* Load average (1/5/15 min) at the start: {result["load_start"]}, at the end: '
             f'{result["load_end"]} (other jobs share the 2 cores: latencies are wall times '
             f'under that load)',
             f'* {result["n"]:,} engrams x {result["dim"]}-d (benchmarks/synthetic.py), '
             f'{result["queries_per_selectivity"]} queries per selectivity, k = {result["k"]}; '
             f'fill: milvus-lite {result["fill_s"]["milvus_lite"]} s (flush included), embedded '
             f'{result["fill_s"]["embedded"]} s',
             f'* Milvus: {json.dumps(result["milvus_options"])}; unplanned = always filtered '
             f'HNSW at ef 128', '',
             '| selectivity | matching | ' + ' | '.join(
                 f'{m} recall@10 | {m} p50 / p99 ms' for m in METHODS) + ' |',
             '|' + '---|' * (2 + 2 * len(METHODS))]
    for row in result['rows']:
        cells = [f'{row["selectivity"] * 100:g} %', f'{row["matching"]:,}']
        for m in METHODS:
            cells += [f'{row[m]["recall_at_10"]:.3f}', f'{row[m]["p50_ms"]} / {row[m]["p99_ms"]}']
        lines.append('| ' + ' | '.join(cells) + ' |')
    lines += ['', 'Plans taken by the planned Milvus search, per selectivity: ' + '; '.join(
        f'{r["selectivity"] * 100:g} %: {r["milvus planned"]["plans"]}' for r in result['rows'])]
    return '\n'.join(lines) + '\n'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--n', type=int, default=100_000)
    parser.add_argument('--queries', type=int, default=50)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', type=Path, default=None,
                        help='write <out>.json and <out>.md (e.g. docs/benchmarks/fleet_filter)')
    args = parser.parse_args()
    started = datetime.datetime.now(datetime.timezone.utc)
    load_start = ' '.join(f'{v:.2f}' for v in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix='bench_fleet_') as tmp:
        result = run(args.n, args.queries, args.seed, Path(tmp))
    result.update({'command': 'python ' + ' '.join(sys.argv),
                   'date': started.strftime('%Y-%m-%d %H:%M UTC'), 'load_start': load_start,
                   'load_end': ' '.join(f'{v:.2f}' for v in os.getloadavg()),
                   'machine': _machine()})
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix('.json').write_text(json.dumps(result, indent=1) + '\n')
        args.out.with_suffix('.md').write_text(_markdown(result))
    print(_markdown(result))


if __name__ == '__main__':
    main()
