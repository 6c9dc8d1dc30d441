#!/usr/bin/env python3
"""Benchmark of consolidation into a map-like memory, in the simulated house.

The robot patrols the house (``config/scenarios/house.yaml``) for ``--laps`` laps; after lap 2
the mug is carried to the bedroom. Observations go straight into the core
:class:`~engram_ros.core.memory.MemoryStore` (no DDS), built from the simulator's detector:

* **objects**: every detection the simulated detector reports from the rendered segmentation
  (its misses and label noise included; its false positives, which have no true object, are
  skipped), placed at the true centre of the detected object plus 5 cm Gaussian noise, with a
  context vector = the object's own appearance vector + noise (identical objects would share
  one). This stands in for the perception core, which was still being finished (it lives
  uncommitted in ``engram_ros/perception/``) and needs trained encoders;
* **places**: one place observation each time the robot has moved 0.75 m or turned 45 degrees,
  at its true pose, with an appearance vector that varies smoothly with position and differs
  between rooms (random Fourier features plus a room vector), and a keyframe id.

Consolidation runs at the end of every lap (as the node's timer would). Beside it, a
write-everything baseline keeps every observation as its own engram (``bulk_load``).

Measured: store size per lap; "where is X" (tags + the object's appearance vector, k = 1)
against the simulator's ground truth after the last lap, for every object seen; place revisit
precision/recall; stale beliefs after the move (current engrams of the moved object at its old
place) and the history answer ("where was it at lap 1"); and consolidation throughput on
bulk-loaded synthetic engrams on one core.

Example::

    python benchmarks/bench_consolidation.py --laps 10 --out docs/benchmarks/consolidation.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import platform
import sys
import time
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engram_ros.core import sketch  # noqa: E402
from engram_ros.core.memory import MemoryStore  # noqa: E402
from engram_ros.core.memory import StoreConfig  # noqa: E402
from engram_ros.core.merge import MergePolicy  # noqa: E402
from engram_ros.core.model.engram import Engram  # noqa: E402
from engram_ros.core.model.engram import Observation  # noqa: E402
from engram_ros.core.query import RecallQuery  # noqa: E402
from engram_ros.core.storage import MemoryStorage  # noqa: E402
from engram_ros.core.storage import SQLiteStorage  # noqa: E402

_LOG = logging.getLogger('bench_consolidation')
DIM = 256
T0 = 1.7e9


def look(name: str, dim: int = DIM) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    v = rng.normal(size=dim)
    return (v / np.linalg.norm(v)).astype(np.float32)


class PlaceLook:
    """Appearance of a place: smooth in position (length scale ~1 m), different per room."""

    def __init__(self, dim: int = DIM, scale: float = 1.0) -> None:
        rng = np.random.default_rng(11)
        self.w = rng.normal(scale=1.0 / scale, size=(dim, 2))
        self.b = rng.uniform(0.0, 2 * math.pi, size=dim)

    def __call__(self, x: float, y: float, room: str) -> np.ndarray:
        v = np.cos(self.w @ np.array([x, y]) + self.b) / math.sqrt(len(self.b) / 2)
        v = v + 0.8 * look('room:' + room)
        return (v / np.linalg.norm(v)).astype(np.float32)


def observations(laps: int, rate: float, seed: int):
    """(lap, stamp, [Observation], truth, events, objects named correctly) per frame."""
    from engram_ros.sim.scenario import Event
    from engram_ros.sim.scenario import load_scenario
    from engram_ros.sim.simulator import Simulator

    scenario = load_scenario('house')
    bedroom = scenario.world.room('bedroom')
    scenario = dataclasses.replace(scenario, laps=laps, events=(
        Event(2, 'move', 'mug', position=bedroom.drop, room='bedroom'),))
    rng = np.random.default_rng(seed)
    place_look = PlaceLook()
    last_place = None
    with Simulator(scenario, rate=rate, with_masks=False) as sim:
        for frame in sim.frames():
            stamp = T0 + frame.t
            x, y, yaw = frame.pose
            out = []
            if last_place is None or math.hypot(x - last_place[0], y - last_place[1]) >= 0.75 \
                    or abs(math.remainder(yaw - last_place[2], 2 * math.pi)) >= math.pi / 4:
                last_place = (x, y, yaw)
                room = scenario.world.room_at(x, y)
                p = np.array([x, y, 0.0]) + np.append(rng.normal(scale=0.02, size=2), 0.0)
                out.append(Observation(
                    kind='place', frame_id='map', position=p, stamp=stamp,
                    vector=place_look(x, y, room), tags=(f'room:{room}',),
                    orientation=np.array([0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)]),
                    keyframe_id=f'kf{frame.index}'))
            for det in frame.detections:
                if not det.true_label:
                    continue                      # a false positive: no true object to place
                lo, hi = sim.scene.object_extent(det.true_label)
                centre = (lo + hi) / 2.0 + rng.normal(scale=0.05, size=3)
                vec = look(det.true_label) + 0.3 * rng.normal(size=DIM) / math.sqrt(DIM)
                cov = np.diag([0.05 ** 2] * 3 + [1.0] * 3).reshape(-1)
                out.append(Observation(
                    kind='object', frame_id='map', position=centre, stamp=stamp, vector=vec,
                    label=det.label, confidence=float(det.score), covariance=cov))
            named = {d.true_label for d in frame.detections if d.true_label == d.label}
            truth = None
            if frame.lap_done:
                truth = {o['label']: o for o in sim.ground_truth()['objects']}
            yield frame.lap, stamp, out, truth, frame.events, named


def where_is(store: MemoryStore, label: str, **query) -> Engram | None:
    result = store.recall(RecallQuery(tags_all=(f'label:{label}',), kinds=('object',),
                                      vector=look(label), k=1, **query))
    return result.hits[0].engram if result.hits else None


def evaluate(store: MemoryStore, truth: dict, seen: set[str]) -> dict:
    errors = []
    for label in sorted(seen):
        if label not in truth:
            continue
        hit = where_is(store, label)
        centre = np.asarray(truth[label]['center'])
        errors.append(math.inf if hit is None else float(np.linalg.norm(hit.position - centre)))
    errors_arr = np.asarray(errors)
    missing = [label for label, e in zip(sorted(seen), errors) if not e <= 0.5]
    return {'objects': len(errors), 'beyond_0_5m_or_unanswered': missing,
            'within_0_5m': float(np.mean(errors_arr <= 0.5)),
            'median_error_m': float(np.median(errors_arr)),
            'max_error_m': float(np.max(errors_arr))}


def run_laps(args) -> dict:
    config = StoreConfig(dim=DIM, merge=MergePolicy(noise_support=args.noise_support))
    store = MemoryStore(MemoryStorage(), config)
    baseline = MemoryStore(MemoryStorage(), StoreConfig(dim=DIM, short_term_capacity=10 ** 8))
    rows = []
    seen: set[str] = set()
    pending: list[Engram] = []
    revisits = {'observations': 0, 'merged': 0, 'correct': 0}
    old_mug = None
    move_time = None
    lap_start = {}
    n_obs = 0
    started = time.perf_counter()
    ingest_cpu = 0.0
    for lap, stamp, obs_list, truth, events, named in observations(args.laps, args.rate,
                                                                   args.seed):
        lap_start.setdefault(lap, stamp)
        seen |= named           # objects the detector named correctly at least once
        if events and move_time is None:
            move_time = stamp
        for obs in obs_list:
            n_obs += 1
            pending.append(Engram.from_observation(0, dataclasses.replace(
                obs, tags=sketch.normalize_tags(tuple(obs.tags) + (
                    (f'label:{obs.label}',) if obs.label else ())))))
            c0 = time.thread_time()
            result = store.ingest(dataclasses.replace(obs))
            ingest_cpu += time.thread_time() - c0
            if obs.kind == 'place' and lap >= 2:
                revisits['observations'] += 1
                if result.merged:
                    revisits['merged'] += 1
                    engram = store.get([result.engram_id])[0]
                    same = float(np.linalg.norm(engram.position[:2] - obs.position[:2])) <= 1.0
                    revisits['correct'] += int(same and engram.tags == tuple(sorted(set(
                        engram.tags))) and f'{obs.tags[0]}' in engram.tags)
        if truth is None:
            continue
        c0 = time.thread_time()
        report = store.consolidate(now=stamp)
        consolidate_cpu = time.thread_time() - c0
        baseline.bulk_load(pending)
        pending = []
        row = {'lap': lap, 'engrams': len(store), 'baseline_engrams': len(baseline),
               'places': len(store.place_graph().places), 'edges': len(store.place_graph().edges),
               'merged': report.merged, 'forgotten': report.forgotten,
               'moved': len(report.moved), 'label_noise_forgotten': report.absorbed,
               'consolidate_cpu_s': round(consolidate_cpu, 3)}
        mug_truth = np.asarray(truth['mug']['center'])
        if lap == 2:
            old_mug = mug_truth
        if old_mug is not None and lap > 2:
            stale = [h.engram for h in store.recall(RecallQuery(
                tags_all=('label:mug',), kinds=('object',), center=old_mug, radius=0.5,
                k=10)).hits]
            base_stale = [h.engram for h in baseline.recall(RecallQuery(
                tags_all=('label:mug',), kinds=('object',), center=old_mug, radius=0.5,
                k=100)).hits]
            row['stale_mug_beliefs'] = len(stale)
            row['baseline_stale_mug_sightings'] = len(base_stale)
        rows.append(row)
        _LOG.info('lap %d: %s', lap, row)
    elapsed = time.perf_counter() - started
    final = evaluate(store, truth, seen)
    final_base = evaluate(baseline, truth, seen)
    then = where_is(store, 'mug', at_time=lap_start[1] + 30.0)
    changed = store.recall(RecallQuery(tags_all=('label:mug',), k=10,
                                       changed_since=move_time))
    by_lap = {r['lap']: r['engrams'] for r in rows}
    out = {
        'laps': rows, 'observations': n_obs, 'wall_s': round(elapsed, 1),
        'ingest_cpu_us_per_observation': round(1e6 * ingest_cpu / max(1, n_obs), 1),
        'plateau_ratio_last_over_lap2': round(by_lap[max(by_lap)] / by_lap[2], 3)
        if 2 in by_lap else None,
        'reduction_vs_baseline': round(rows[-1]['baseline_engrams'] / rows[-1]['engrams'], 1),
        'where_is': final, 'where_is_baseline': final_base,
        'place_revisits': dict(revisits,
                               precision=revisits['correct'] / max(1, revisits['merged']),
                               recall=revisits['merged'] / max(1, revisits['observations'])),
        'mug_at_lap1_answer': None if then is None else [round(float(v), 3)
                                                         for v in then.position],
        'mug_at_lap1_truth': None if old_mug is None else [round(float(v), 3) for v in old_mug],
        'mug_changed_since_move': len(changed.hits),
        'mug_history': sum(1 for e in store.list_engrams().engrams
                           if e.label == 'mug' and e.valid_to is not None),
    }
    store.close()
    baseline.close()
    return out


def throughput(n: int, seed: int = 0, storage: str = 'memory', repeat: int = 1) -> dict:
    """Consolidation over ``n`` bulk-loaded engrams: n/5 things seen 5 times each.

    Only the ``consolidate()`` call is timed (CPU of the calling thread, and wall), not the
    bulk load before it. ``storage`` is ``memory`` (RAM, as the node without persistence
    consent) or ``sqlite`` (a store in a temporary directory, as the persistent node).
    ``repeat`` runs it on that many fresh stores: on a machine shared with other jobs one run
    can be 30 % slower than the next, so every run is listed with the median and the best.
    """
    import statistics
    import tempfile

    import faiss
    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(seed)
    things = n // 5
    looks = rng.normal(size=(things, DIM)).astype(np.float32)
    side = math.sqrt(things) * 1.5          # about one thing per 2 m^2
    centres = np.column_stack([rng.uniform(0, side, things), rng.uniform(0, side, things),
                               rng.uniform(0, 1.5, things)])
    engrams = []
    for i in range(n):
        t = i % things
        engrams.append(Engram(
            id=0, kind='object', frame_id='map',
            position=centres[t] + rng.normal(scale=0.05, size=3),
            vector=looks[t] + 0.1 * rng.normal(size=DIM).astype(np.float32) * math.sqrt(
                float(np.mean(looks[t] ** 2))),
            first_seen=T0 + i, last_seen=T0 + i, tags=(f'label:thing{t % 200}',),
            label=f'thing{t % 200}', last_access=T0 + i))
    cpus, walls = [], []
    for _ in range(max(1, repeat)):
        with tempfile.TemporaryDirectory(prefix='bench_consolidation_') as tmp:
            backend = (MemoryStorage() if storage == 'memory'
                       else SQLiteStorage(Path(tmp) / 'store'))
            store = MemoryStore(backend, StoreConfig(dim=DIM, short_term_capacity=10 ** 8))
            store.bulk_load(engrams)
            wall0, cpu0 = time.perf_counter(), time.thread_time()
            report = store.consolidate(now=T0 + n + 1)
            walls.append(time.perf_counter() - wall0)
            cpus.append(time.thread_time() - cpu0)
            store.close()
    cpu, wall = statistics.median(cpus), statistics.median(walls)
    return {'engrams': n, 'storage': storage, 'merged': report.merged,
            'after': report.size_after, 'runs': len(cpus), 'cpu_s': round(cpu, 3),
            'wall_s': round(wall, 3), 'engrams_per_cpu_s': round(n / cpu),
            'engrams_per_wall_s': round(n / wall),
            'best_engrams_per_cpu_s': round(n / min(cpus)),
            'cpu_s_runs': [round(c, 3) for c in cpus], 'wall_s_runs': [round(w, 3) for w in walls]}


def plot_sizes(sim: dict, path: Path) -> None:
    """Store size per lap, consolidated vs write-everything, as a PNG (opencv)."""
    import cv2

    width, height, margin = 640, 400, 60
    laps = [r['lap'] for r in sim['laps']]
    series = (('consolidated', [r['engrams'] for r in sim['laps']], (40, 140, 40)),
              ('write-everything', [r['baseline_engrams'] for r in sim['laps']], (40, 40, 200)))
    top = max(max(v) for _, v, _ in series)
    img = np.full((height, width, 3), 255, dtype=np.uint8)

    def px(lap: float, value: float) -> tuple[int, int]:
        x = margin + (lap - laps[0]) / max(1, laps[-1] - laps[0]) * (width - 2 * margin)
        return int(x), int(height - margin - value / top * (height - 2 * margin))

    cv2.line(img, px(laps[0], 0), px(laps[-1], 0), (0, 0, 0), 1)
    cv2.line(img, px(laps[0], 0), px(laps[0], top), (0, 0, 0), 1)
    for lap in laps:
        cv2.putText(img, str(lap), (px(lap, 0)[0] - 5, height - margin + 20),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    for value in (0, top // 2, top):
        cv2.putText(img, str(value), (5, px(laps[0], value)[1] + 5), cv2.FONT_HERSHEY_SIMPLEX,
                    0.45, (0, 0, 0), 1)
    for i, (name, values, colour) in enumerate(series):
        points = np.array([px(lap, v) for lap, v in zip(laps, values)], dtype=np.int32)
        cv2.polylines(img, [points], False, colour, 2)
        cv2.putText(img, f'{name} ({values[-1]} after lap {laps[-1]})', (margin + 10, 25 + 20 * i),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1)
    cv2.putText(img, 'engrams per lap (mug moved after lap 2)', (margin, height - 15),
                cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
    cv2.imwrite(str(path), img)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--laps', type=int, default=10)
    parser.add_argument('--rate', type=float, default=2.0, help='simulated frames per second')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--noise-support', type=int, default=3,
                        help='MergePolicy.noise_support (the node default, 3)')
    parser.add_argument('--throughput', type=int, nargs='*', default=[20000, 100000])
    parser.add_argument('--throughput-storage', nargs='+', choices=('memory', 'sqlite'),
                        default=['memory'], help='backends the throughput runs use')
    parser.add_argument('--repeat', type=int, default=3,
                        help='throughput runs per size (median and best are reported)')
    parser.add_argument('--out', type=Path)
    parser.add_argument('--plot', type=Path, help='PNG of the store size per lap')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    logging.getLogger('engram_ros').setLevel(logging.WARNING)
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    result = {'machine': {'python': platform.python_version(), 'cpus': os.cpu_count(),
                          'load_avg': os.getloadavg()},
              'command': ' '.join(sys.argv)}
    if args.laps > 0:
        result['sim'] = run_laps(args)
    result['throughput'] = [throughput(n, storage=backend, repeat=args.repeat)
                            for backend in args.throughput_storage for n in args.throughput]
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + '\n')
    if args.plot and 'sim' in result:
        plot_sizes(result['sim'], args.plot)
    return 0


if __name__ == '__main__':
    sys.exit(main())
