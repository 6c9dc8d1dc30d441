"""Scale paths of the memory at 1M engrams: reopen (clean and after a crash), budget eviction,
churn, and recall latency; results in ``docs/benchmarks/scale.md``.

Run from a fresh clone after ``source tools/env.sh``::

    python benchmarks/bench_scale.py                 # 1M engrams (the store is built once)
    python benchmarks/bench_scale.py --n 100000 --runs 3

The store of ``--n`` engrams (256-d clustered vectors, a few tags each, as in
``bench_service.py``) is built once under ``--work`` (default ``$TMPDIR/engram_bench_scale``)
and reused; building 1M takes several minutes (the time is printed and kept in
``build.json``). Each measurement runs in a child process, so its wall time, CPU time and RSS
are its own:

* clean reopen: open a store closed cleanly (the index cache is loaded), wall and CPU;
* crash reopen: a child opens the store, ingests a few observations and is killed with
  SIGKILL, so the cache is stale; the next open rebuilds the index from SQLite and answers
  while the HNSW graph is built in the background: open, first answers (an unfiltered and a
  tag-filtered recall) and graph ready, each as wall and process CPU from the start of the
  open (the clean reopen measures the same three);
* eviction: a copy of the store opened with a budget 10 % below its size, one consolidation;
  RSS sampled every 20 ms before and during the pass (the child exits without closing, so the
  copy's compaction at close is not part of it);
* churn: a fresh store with a short-term capacity of ``--churn-capacity`` takes 10x that many
  new observations, consolidating after each tenth; RSS, index slots and tombstones after each
  round, and the saved cache's size at the end;
* recall p50 at k=10 (vector + tag filter) on the 1M store and on a 100k one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from synthetic import DIM
from synthetic import engram_batches

HERE = Path(__file__).resolve()


def rss_mib() -> float:
    with open('/proc/self/status', encoding='ascii') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024.0
    return float('nan')


def dir_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob('*') if p.is_file()) / 2 ** 20


def open_store(directory: Path, **config):
    from engram_ros.core.memory import MemoryStore
    from engram_ros.core.memory import StoreConfig
    from engram_ros.core.storage import SQLiteStorage
    return MemoryStore(SQLiteStorage(directory), StoreConfig(dim=DIM, **config))


def fill(directory: Path, size: int, seed: int = 0) -> None:
    """A store of ``size`` long-term engrams, the same as ``bench_service.py`` fills."""
    with open_store(directory) as store:
        for engrams in engram_batches(size, seed):
            store.bulk_load(engrams)
        # as after the consolidation that follows an import: nothing left to merge
        store.storage.clear_dirty()
        store.state.dirty.clear()


def built_store(work: Path, n: int) -> tuple[Path, float | None]:
    """The cached store of ``n`` engrams (built now if missing) and its build time [s]."""
    home = work / f'n{n}'
    store = home / 'store'
    info = home / 'build.json'
    if not info.is_file():
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        print(f'building a store of {n} engrams under {home} (once) ...', flush=True)
        t = time.perf_counter()
        fill(home / 'building', n)
        (home / 'building').rename(store)
        info.write_text(json.dumps({'n': n, 'build_s': time.perf_counter() - t}))
    built = json.loads(info.read_text())
    print(f'store of {n} engrams: built in {built["build_s"]:.0f} s', flush=True)
    return store, built['build_s']


# ----------------------------------------------------------------------------- children

def child(args: list[str], timeout: float = 3600.0, code: Path | None = None) -> dict:
    """Run this script as ``--child ...`` and return the JSON it prints last; with ``code``,
    against the engram_ros of that checkout (the baseline of a side-by-side run)."""
    env = dict(os.environ)
    if code is not None:
        env['PYTHONPATH'] = os.pathsep.join([str(code), env.get('PYTHONPATH', '')])
    out = subprocess.run([sys.executable, str(HERE), '--child', *args], capture_output=True,
                         text=True, timeout=timeout, env=env)
    lines = [line for line in out.stdout.splitlines() if line.startswith('{')]
    if not lines:
        raise RuntimeError(f'child {args} failed ({out.returncode}):\n{out.stderr[-3000:]}')
    return json.loads(lines[-1])


def measure_open(directory: Path) -> dict:
    """Open, then the first answers (one unfiltered recall, one with a tag: after a crash the
    graph may still be pending, and every search is exact), then the wait for the graph."""
    from engram_ros.core.memory import MemoryStore  # noqa: F401 - imports are not timed
    from engram_ros.core.query import RecallQuery
    rng = np.random.default_rng(3)
    queries = [RecallQuery(vector=rng.normal(size=DIM).astype(np.float32), k=10),
               RecallQuery(vector=rng.normal(size=DIM).astype(np.float32), k=10,
                           tags_all=('label:frequent',))]
    t0, c0 = time.perf_counter(), time.process_time()
    store = open_store(directory)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    pending = getattr(store, 'graph_pending', False)    # (the baseline has no such state)
    for q in queries:
        store.recall(q, now=1.8e9)
    # process CPU: a background graph build running meanwhile is counted too
    answered = {'wall_s': time.perf_counter() - t0, 'cpu_s': time.process_time() - c0,
                'graph_pending': pending}
    if hasattr(store, 'wait_graph'):
        store.wait_graph()
    ready = {'wall_s': time.perf_counter() - t0, 'cpu_s': time.process_time() - c0}
    result = {'wall_s': wall, 'cpu_s': cpu, 'from_cache': store.index_from_cache,
              'rejected': getattr(store, 'index_cache_rejected', None), 'engrams': len(store),
              'rss_mib': rss_mib(), 'first_answers': answered, 'graph_ready': ready}
    t1 = time.perf_counter()
    store.close()
    result['close_s'] = time.perf_counter() - t1
    return result


def crash(directory: Path) -> None:
    from engram_ros.core.model.engram import Observation
    store = open_store(directory)
    rng = np.random.default_rng(int(time.time()))
    for i in range(10):
        store.ingest(Observation(kind='object', frame_id='map', position=rng.uniform(0, 100, 3),
                                 stamp=1.8e9 + i, vector=rng.normal(size=DIM), label='crash'))
    os.kill(os.getpid(), signal.SIGKILL)


class RssSampler:
    def __init__(self, period: float = 0.02) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(period,), daemon=True)
        self._thread.start()

    def _run(self, period: float) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mib())
            time.sleep(period)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return max(self.peak, rss_mib())


def evict(directory: Path) -> dict:
    store = open_store(directory)
    n = len(store)
    store.config.budget = int(n * 0.9)
    before = rss_mib()
    sampler = RssSampler()
    t = time.perf_counter()
    report = store.consolidate(now=1.8e9)
    wall = time.perf_counter() - t
    peak = sampler.stop()
    print(json.dumps({'engrams': n, 'evicted': report.forgotten, 'wall_s': wall,
                      'rss_before_mib': before, 'rss_peak_mib': peak,
                      'rss_after_mib': rss_mib()}), flush=True)
    os._exit(0)   # no close: the compaction at close is not what is measured


def churn(directory: Path, capacity: int) -> dict:
    from engram_ros.core.model.engram import Observation
    rng = np.random.default_rng(1)
    store = open_store(directory, short_term_capacity=capacity)
    rounds = []
    stamp = 1.7e9
    for r in range(10):
        for _ in range(capacity):
            stamp += 1.0
            store.ingest(Observation(kind='object', frame_id='map',
                                     position=rng.uniform(0, 1000, 3) * (1, 1, 0.001),
                                     stamp=stamp, vector=rng.normal(size=DIM),
                                     label=f'thing{rng.integers(0, 1000)}'))
        store.consolidate(now=stamp)
        rounds.append({'round': r + 1, 'ingested': (r + 1) * capacity, 'engrams': len(store),
                       'slots': store.index.slot_count, 'tombstones': store.index.tombstones,
                       'rss_mib': rss_mib()})
    store.close()
    return {'capacity': capacity, 'rounds': rounds,
            'cache_mib': dir_mib(directory / 'index')}


def recall_p50(directory: Path, queries: int = 300) -> dict:
    from engram_ros.core.query import RecallQuery
    store = open_store(directory)
    rng = np.random.default_rng(7)
    times = []
    for i in range(queries):
        q = RecallQuery(vector=rng.normal(size=DIM).astype(np.float32), k=10,
                        tags_all=(('label:frequent',) if i % 2 else ('room:r3',)))
        t = time.perf_counter()
        store.recall(q, now=1.8e9)
        times.append(time.perf_counter() - t)
    n = len(store)
    store.close()
    return {'engrams': n, 'p50_ms': 1e3 * statistics.median(times),
            'p90_ms': 1e3 * float(np.percentile(times, 90))}


def run_child(argv: list[str]) -> None:
    what, directory = argv[0], Path(argv[1])
    if what == 'open':
        print(json.dumps(measure_open(directory)), flush=True)
    elif what == 'crash':
        crash(directory)
    elif what == 'evict':
        evict(directory)
    elif what == 'churn':
        print(json.dumps(churn(directory, int(argv[2]))), flush=True)
    elif what == 'recall':
        print(json.dumps(recall_p50(directory)), flush=True)


# ----------------------------------------------------------------------------- main

def spread(values: list[float]) -> str:
    return f'{min(values):.2f}-{max(values):.2f}' if len(values) > 1 else f'{values[0]:.2f}'


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == '--child':
        run_child(sys.argv[2:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--n', type=int, default=1_000_000, help='engrams in the big store')
    ap.add_argument('--small', type=int, default=100_000, help='engrams in the recall store')
    ap.add_argument('--runs', type=int, default=3)
    ap.add_argument('--churn-capacity', type=int, default=2000)
    ap.add_argument('--work', type=Path,
                    default=Path(tempfile.gettempdir()) / 'engram_bench_scale')
    ap.add_argument('--skip', default='', help='comma list of: clean,crash,evict,churn,recall')
    ap.add_argument('--json', type=Path, default=None, help='write the results here')
    ap.add_argument('--baseline', type=Path, default=None,
                    help='another checkout (e.g. the main branch) measured beside this one in '
                         'the same run: clean and crash reopen, eviction')
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(',')))
    args.work.mkdir(parents=True, exist_ok=True)
    out: dict = {'n': args.n, 'loadavg': [], 'date': time.strftime('%Y-%m-%d %H:%M UTC',
                                                                   time.gmtime())}

    def load() -> None:
        out['loadavg'].append(Path('/proc/loadavg').read_text().split()[:3])

    store, out['build_s'] = built_store(args.work, args.n)
    load()
    codes = [('this', None)] + ([('baseline', args.baseline)] if args.baseline else [])
    if 'clean' not in skip:
        # The baseline first: its close writes a cache without state.json, which this code
        # still loads, but reads every record for (its warm-up close writes one again).
        for name, code in reversed(codes):
            child(['open', str(store)], code=code)     # a clean close first: cache current
            runs = [child(['open', str(store)], code=code) for _ in range(args.runs)]
            assert all(r['from_cache'] for r in runs)
            out.setdefault('clean', {})[name] = runs
            print(f'{name}: clean reopen wall', spread([r['wall_s'] for r in runs]), 's, cpu',
                  spread([r['cpu_s'] for r in runs]), 's, rss',
                  spread([r['rss_mib'] for r in runs]), 'MiB', flush=True)
            load()
    if 'crash' not in skip:
        for _ in range(args.runs):
            for name, code in codes:
                subprocess.run([sys.executable, str(HERE), '--child', 'crash', str(store)],
                               capture_output=True, timeout=3600)
                r = child(['open', str(store)], code=code)
                assert not r['from_cache']
                out.setdefault('crash', {}).setdefault(name, []).append(r)
                a, g = r['first_answers'], r['graph_ready']
                print(f'{name}: crash reopen wall {r["wall_s"]:.1f} s, cpu {r["cpu_s"]:.1f} s;'
                      f' first answers at {a["wall_s"]:.1f} s wall, {a["cpu_s"]:.1f} s cpu '
                      f'(graph pending: {a["graph_pending"]}); graph ready at '
                      f'{g["wall_s"]:.1f} s wall, {g["cpu_s"]:.1f} s cpu', flush=True)
        load()
    if 'evict' not in skip:
        for _ in range(args.runs):
            for name, code in codes:
                copy = args.work / 'evict_copy'
                shutil.rmtree(copy, ignore_errors=True)
                shutil.copytree(store, copy)
                r = child(['evict', str(copy)], code=code)
                shutil.rmtree(copy, ignore_errors=True)
                out.setdefault('evict', {}).setdefault(name, []).append(r)
                print(f'{name}: eviction', r, flush=True)
        load()
    if 'churn' not in skip:
        runs = []
        for _ in range(args.runs):
            directory = args.work / 'churn'
            shutil.rmtree(directory, ignore_errors=True)
            runs.append(child(['churn', str(directory), str(args.churn_capacity)]))
            shutil.rmtree(directory, ignore_errors=True)
            last = runs[-1]['rounds']
            print('churn rss', [round(r['rss_mib']) for r in last], 'MiB, slots',
                  [r['slots'] for r in last], 'cache', f'{runs[-1]["cache_mib"]:.1f}', 'MiB',
                  flush=True)
        out['churn'] = runs
        load()
    if 'recall' not in skip:
        small, out['build_small_s'] = built_store(args.work, args.small)
        out['recall'] = {}
        for name, directory in (('small', small), ('big', store)):
            runs = [child(['recall', str(directory)]) for _ in range(args.runs)]
            out['recall'][name] = runs
            print(f'recall p50 at {runs[0]["engrams"]}:',
                  spread([r['p50_ms'] for r in runs]), 'ms', flush=True)
        load()
    print('loadavg', out['loadavg'])
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
