#!/usr/bin/env python3
"""Fleet sync lag (issue 15): from an engram's ingest on robot 1 to its row being queryable by
another process in the fleet collection.

One ``engram fleet serve`` process hosts a milvus-lite file; robot 1 is a :class:`MemoryStore`
on a fresh SQLite store with a :class:`FleetSync` thread (the memory node's, same code) to that
server; robot 2 is a separate pymilvus client of the same server that polls, by fleet id, for
the engram just ingested (``query(ids=[...])`` every ``--poll`` s). Per ``--period`` (the
node's ``fleet.sync_period``) ``--n`` observations are ingested, each waited for before the
next and ingested after a random pause of 0..period (seeded), so sightings fall at every phase
of the sync cycle (a fixed pause would always land at the same phase). The lag is ingest
return -> first successful query; it holds up to one sync period of waiting, the upload, and
the reader's poll. Writes ``<out>.json`` and
``<out>.md``.

Example::

    python benchmarks/bench_fleet_sync.py --n 20 --periods 0.2 2.0 --out docs/benchmarks/fleet_sync
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engram_ros.apps.cli.fleet import serve_in_subprocess  # noqa: E402
from engram_ros.core.backends.milvus import MilvusBackend  # noqa: E402
from engram_ros.core.fleet.ids import fleet_id  # noqa: E402
from engram_ros.core.fleet.link import FleetLink  # noqa: E402
from engram_ros.core.fleet.sync import FleetSync  # noqa: E402
from engram_ros.core.memory import MemoryStore  # noqa: E402
from engram_ros.core.memory import StoreConfig  # noqa: E402
from engram_ros.core.model.engram import Observation  # noqa: E402
from engram_ros.core.storage import SQLiteStorage  # noqa: E402

DIM = 256
MODEL = 'bench'


def _observation(i: int) -> Observation:
    rng = np.random.default_rng(zlib.crc32(str(i).encode()))
    v = rng.normal(size=DIM)
    return Observation(kind='object', frame_id='map', position=np.array([3.0 * i, 0.0, 0.0]),
                       stamp=time.time(), vector=v / np.linalg.norm(v), label=f'thing{i}',
                       tags=(f'label:thing{i}',))


def run_period(uri: str, period: float, n: int, poll: float, tmp: Path,
               offset: int) -> dict:
    store = MemoryStore(SQLiteStorage(tmp / f'robot1_{period}'),
                        StoreConfig(dim=DIM, frame_id='map'))
    link = FleetLink(uri, DIM, robot_id=f'robot1_p{period}', model=MODEL, frame_id='map')
    sync = FleetSync(store.storage, link)
    reader = MilvusBackend(uri, DIM, model=MODEL, frame_id='map', robot_id='robot2')
    sync.start(period)
    lags: list[float] = []
    rng = np.random.default_rng(offset)
    try:
        deadline = time.monotonic() + 120.0
        while link.robot_index == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        for i in range(n):
            time.sleep(float(rng.uniform(0.0, period)))
            local = store.ingest(_observation(offset + i)).engram_id
            t0 = time.monotonic()
            wanted = fleet_id(link.robot_index, local)
            while not reader.get([wanted]):
                if time.monotonic() - t0 > 120.0:
                    raise RuntimeError(f'engram {local} never reached the fleet: '
                                       f'{sync.status()}')
                time.sleep(poll)
            lags.append(time.monotonic() - t0)
    finally:
        sync.stop()
        reader.close()
        store.close()
    ms = np.asarray(lags) * 1000.0
    return {'period_s': period, 'n': n, 'p50_ms': round(float(np.percentile(ms, 50)), 1),
            'p95_ms': round(float(np.percentile(ms, 95)), 1),
            'max_ms': round(float(ms.max()), 1), 'mean_ms': round(float(ms.mean()), 1),
            'counters': sync.status()}


def _machine() -> dict:
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True,
                            text=True, cwd=Path(__file__).resolve().parents[1]).stdout.strip()
    import milvus_lite
    import pymilvus
    return {'python': platform.python_version(), 'cpus': os.cpu_count(), 'commit': commit,
            'pymilvus': pymilvus.__version__, 'milvus_lite': milvus_lite.__version__,
            'machine': '2-core EPYC VM, 24 GiB, shared with other jobs'}


def _markdown(result: dict) -> str:
    m = result['machine']
    lines = ['# Fleet sync lag (`benchmarks/bench_fleet_sync.py`)', '',
             f'* Command: `{result["command"]}`',
             f'* Date: {result["date"]}; commit {m["commit"]}; {m["machine"]}; Python '
             f'{m["python"]}, pymilvus {m["pymilvus"]}, milvus-lite {m["milvus_lite"]}',
             f'* Load average (1/5/15 min) at the start: {result["load_start"]}, at the end: '
             f'{result["load_end"]} (other helpers share the 2 cores: wall times under load)',
             f'* Lag = robot 1\'s `MemoryStore.ingest` returned -> robot 2 (another client of '
             f'the `engram fleet serve` process) first finds the row by fleet id, polling every '
             f'{result["poll_s"]} s; each sighting after a random pause of 0..period (every '
             f'phase of the sync cycle); {DIM}-d vectors',
             '', '| fleet.sync_period [s] | sightings | p50 ms | p95 ms | max ms | mean ms |',
             '|---|---|---|---|---|---|']
    for row in result['rows']:
        lines.append(f'| {row["period_s"]} | {row["n"]} | {row["p50_ms"]} | {row["p95_ms"]} | '
                     f'{row["max_ms"]} | {row["mean_ms"]} |')
    return '\n'.join(lines) + '\n'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--n', type=int, default=20)
    parser.add_argument('--periods', type=float, nargs='+', default=[0.2, 2.0])
    parser.add_argument('--poll', type=float, default=0.02)
    parser.add_argument('--out', type=Path, default=None)
    args = parser.parse_args()
    started = datetime.datetime.now(datetime.timezone.utc)
    load_start = ' '.join(f'{v:.2f}' for v in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix='bench_fleet_sync_') as tmp:
        proc, uri = serve_in_subprocess(Path(tmp) / 'fleet.db', timeout=120.0)
        try:
            rows = [run_period(uri, p, args.n, args.poll, Path(tmp), 1000 * k)
                    for k, p in enumerate(args.periods)]
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    result = {'command': 'python ' + ' '.join(sys.argv),
              'date': started.strftime('%Y-%m-%d %H:%M UTC'), 'load_start': load_start,
              'load_end': ' '.join(f'{v:.2f}' for v in os.getloadavg()),
              'machine': _machine(), 'poll_s': args.poll, 'rows': rows}
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix('.json').write_text(json.dumps(result, indent=1) + '\n')
        args.out.with_suffix('.md').write_text(_markdown(result))
    print(_markdown(result))


if __name__ == '__main__':
    main()
