#!/usr/bin/env python3
"""Benchmark of the store's ingest alone (no ROS): one observation at a time against group
commits (:meth:`MemoryStore.ingest_many`), on SQLite files and in RAM.

Each run ingests the same stream into a fresh store: ``--observations`` observations of
256-d context vectors, a robot walking past ``--things`` objects and seeing each again now and
then (about half the observations reactivate an engram, the rest are new things; the
short-term LRU capacity is the store's default, so evictions happen once it is full). Batch
size 1 is :meth:`MemoryStore.ingest` (itself a batch of one); larger sizes hand that many
observations at a time to :meth:`MemoryStore.ingest_many`. Every (backend, batch) pair is
measured once per round and the rounds repeat ``--runs`` times, in rotating order, so all
configurations share the machine's load alike. Reported: observations/s (wall) and the
process's CPU ms per observation (``time.process_time``: all threads), median and range.

Example::

    python benchmarks/bench_store_ingest.py --runs 3 --out docs/benchmarks/store_ingest.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engram_ros.core.memory import MemoryStore  # noqa: E402
from engram_ros.core.memory import StoreConfig  # noqa: E402
from engram_ros.core.model.engram import Observation  # noqa: E402
from engram_ros.core.storage import MemoryStorage  # noqa: E402
from engram_ros.core.storage import SQLiteStorage  # noqa: E402

DIM = 256
FRAME = 'map'
LABELS = ('mug', 'book', 'chair', 'bottle', 'plant', 'laptop', 'cup', 'box')


def stream(n: int, things: int, seed: int) -> list[Observation]:
    """``n`` observations: thing ``j`` (own look and place) seen again with noise, or new."""
    rng = np.random.default_rng(seed)
    looks = rng.normal(size=(things, DIM)).astype(np.float32)
    places = rng.uniform(0.0, 60.0, size=(things, 3)) * np.array([1.0, 1.0, 0.0])
    out = []
    for i in range(n):
        if rng.random() < 0.5:      # a thing seen before (or its first sighting)
            j = int(rng.integers(things))
            vector = looks[j] + 0.05 * rng.normal(size=DIM).astype(np.float32)
            position = places[j] + rng.normal(scale=0.02, size=3)
            label = LABELS[j % len(LABELS)]
        else:                       # something new, somewhere
            vector = rng.normal(size=DIM).astype(np.float32)
            position = rng.uniform(0.0, 60.0, size=3) * np.array([1.0, 1.0, 0.0])
            label = LABELS[int(rng.integers(len(LABELS)))]
        out.append(Observation(kind='object', frame_id=FRAME, position=position,
                               stamp=1.7e9 + 0.01 * i, vector=vector, label=label,
                               tags=('room:lab',)))
    return out


def run_once(backend: str, batch: int, observations: list[Observation], tmp: Path) -> dict:
    directory = tmp / f'{backend}-{batch}'
    storage = MemoryStorage() if backend == 'ram' else SQLiteStorage(directory)
    store = MemoryStore(storage, StoreConfig(dim=DIM, frame_id=FRAME))
    try:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        if batch == 1:
            for obs in observations:
                store.ingest(obs)
        else:
            for start in range(0, len(observations), batch):
                for r in store.ingest_many(observations[start:start + batch]):
                    if isinstance(r, Exception):
                        raise r
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        engrams = len(store)
    finally:
        store.close()
        shutil.rmtree(directory, ignore_errors=True)
    n = len(observations)
    return {'backend': backend, 'batch': batch, 'obs_per_s': n / wall,
            'cpu_ms_per_obs': 1e3 * cpu / n, 'engrams': engrams}


def loadavg() -> str:
    with open('/proc/loadavg', encoding='ascii') as f:
        return ' '.join(f.read().split()[:3])


def table(results: list[dict], backends: list[str], batches: list[int]) -> str:
    lines = ['| storage | batch | obs/s median | obs/s range | CPU ms/obs median | '
             'CPU ms/obs range | x batch 1 (median obs/s) |',
             '|---|---:|---:|---:|---:|---:|---:|']
    for backend in backends:
        base = None
        for batch in batches:
            rows = [r for r in results if r['backend'] == backend and r['batch'] == batch]
            rate = [r['obs_per_s'] for r in rows]
            cpu = [r['cpu_ms_per_obs'] for r in rows]
            med = statistics.median(rate)
            base = base or med
            lines.append(f'| {backend} | {batch} | {med:,.0f} | {min(rate):,.0f}-'
                         f'{max(rate):,.0f} | {statistics.median(cpu):.3f} | '
                         f'{min(cpu):.3f}-{max(cpu):.3f} | {med / base:.2f} |')
    return '\n'.join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--observations', type=int, default=3000)
    parser.add_argument('--things', type=int, default=800)
    parser.add_argument('--batches', type=int, nargs='+', default=[1, 16, 64, 256])
    parser.add_argument('--backends', nargs='+', default=['sqlite', 'ram'],
                        choices=['sqlite', 'ram'])
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--dir', type=Path, default=None,
                        help='where the SQLite stores are made (default: a temporary dir)')
    parser.add_argument('--out', type=Path, default=None, help='JSON results')
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    faiss.omp_set_num_threads(1)
    observations = stream(args.observations, args.things, seed=7)
    configs = [(b, n) for b in args.backends for n in args.batches]
    results, loads = [], [loadavg()]
    tmp = Path(tempfile.mkdtemp(dir=args.dir))
    try:
        for run in range(args.runs):
            shift = run % len(configs)
            for backend, batch in configs[shift:] + configs[:shift]:
                r = run_once(backend, batch, observations, tmp)
                r['run'] = run
                results.append(r)
                print(f"run {run} {backend:6s} batch {batch:3d}: {r['obs_per_s']:8.0f} obs/s "
                      f"{r['cpu_ms_per_obs']:.3f} CPU ms/obs ({r['engrams']} engrams)",
                      flush=True)
            loads.append(loadavg())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(f'load average (1, 5, 15 min) before and after each round: {" | ".join(loads)}')
    print(f'{platform.node()} {os.cpu_count()} CPUs, python {platform.python_version()}, '
          f'{args.observations} observations of {DIM}-d vectors per run')
    print(table(results, args.backends, args.batches))
    if args.out:
        args.out.write_text(json.dumps({'results': results, 'loadavg': loads,
                                        'args': {k: str(v) for k, v in vars(args).items()}},
                                       indent=1) + '\n')


if __name__ == '__main__':
    main()
