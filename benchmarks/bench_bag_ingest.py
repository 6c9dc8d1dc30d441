#!/usr/bin/env python3
"""Benchmark of ``engram ingest-bag``: bag duration against ingest wall and CPU time.

The simulator node records the house scenario (three laps, 4 Hz, ``--width`` x ``--height``,
colour, depth, audio, detections, TF) to an MCAP bag as fast as it renders
(``realtime: false``, ``record_raw: true``), unless ``--bag`` names one. Then the bag is ingested
``--runs`` times, each into a new store (``persist: true``, otherwise config/engram.yaml), in
this process, with :func:`engram_ros.apps.bag_ingest.ingest_bag`; measured per run: the ingest
loop's wall and CPU time (``time.perf_counter``, ``time.process_time``: the pipeline and the
memory, not the start-up: loading the models, opening the bag), as multiples of the bag's
duration ("x real time"). The load average is read before and after every run; the machine is
shared, so report it with the figures. Every run must give the same engram count.

Example::

    python benchmarks/bench_bag_ingest.py --runs 3 --out docs/benchmarks/bag_ingest.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engram_ros.apps.bag_ingest import ingest_bag  # noqa: E402
from engram_ros.ros.bag import BagReader  # noqa: E402


def loadavg() -> str:
    return ' '.join(Path('/proc/loadavg').read_text().split()[:3])


def record(path: Path, scenario: str, width: int, height: int) -> float:
    """Record ``scenario`` with the sim node (its own process); the seconds it took."""
    start = time.perf_counter()
    params = ['scenario:=' + scenario, f'width:={width}', f'height:={height}',
              'realtime:=false', 'wait_for_subscribers:=false', 'start_time:=1700000000.0',
              f'record:={path}', 'record_raw:=true']
    args = [sys.executable, '-m', 'engram_ros.sim.node', '--ros-args',
            '--params-file', str(ROOT / 'config' / 'engram.yaml')]
    for item in params:
        args += ['-p', item]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    try:
        while not (path / 'metadata.yaml').exists():
            if proc.poll() is not None:
                raise SystemExit(f'the simulator exited ({proc.returncode}) before the bag was '
                                 'complete')
            time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(30)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--bag', type=Path, help='ingest this bag instead of recording one')
    parser.add_argument('--scenario', default='house')
    parser.add_argument('--width', type=int, default=320)
    parser.add_argument('--height', type=int, default=240)
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--out', type=Path, help='write the results as JSON here')
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix='bench_bag_ingest_'))
    try:
        bag = args.bag
        recorded_s = None
        if bag is None:
            bag = work / 'bag'
            recorded_s = record(bag, args.scenario, args.width, args.height)
        with BagReader(bag) as reader:
            duration = reader.duration_s
            messages = reader.count(reader.topics)
        size = sum(f.stat().st_size for f in bag.iterdir())
        params = work / 'params.yaml'
        params.write_text('/**/engram_memory:\n  ros__parameters:\n    persist: true\n')
        runs = []
        for i in range(args.runs):
            before = loadavg()
            report = ingest_bag(bag, work / f'store{i}', params, progress=False)
            runs.append({'wall_s': round(report.wall_seconds, 2),
                         'cpu_s': round(report.cpu_seconds, 2),
                         'x_real_time_wall': round(duration / report.wall_seconds, 2),
                         'x_real_time_cpu': round(duration / report.cpu_seconds, 2),
                         'engrams': report.engrams, 'messages': report.messages,
                         'frames': report.counters.get('frames_synced', 0),
                         'loadavg_before': before, 'loadavg_after': loadavg()})
            print(json.dumps(runs[-1]), flush=True)
        result = {'date': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
                  'machine': f'{platform.machine()}, {os.cpu_count()} cores, no GPU',
                  'command': ' '.join(['python', *sys.argv]),
                  'bag': {'scenario': args.scenario if args.bag is None else str(args.bag),
                          'size': f'{args.width}x{args.height}', 'duration_s': round(duration, 2),
                          'messages': messages, 'bytes': size, 'recorded_in_s': recorded_s},
                  'runs': runs}
        if len({r['engrams'] for r in runs}) != 1:
            print('engram counts differ between runs', file=sys.stderr)
            return 1
        if args.out:
            args.out.write_text(json.dumps(result, indent=1) + '\n')
        print(json.dumps(result['bag']))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
