#!/usr/bin/env python3
"""Ghosts, duplicates, colours and sizes of object engrams with a noisy detector (issue 14).

The simulator patrols a scenario (default: ``house``, the demo's, with its default detector
noise: misses, label swaps, false-positive boxes); every frame goes through the perception
pipeline exactly as the node runs it (masks from the simulated detector, none for its false
positives; the demo's 320x240 camera at 4 Hz; the world's rooms) and every observation into a
core :class:`MemoryStore`, consolidated every 10 s of simulated time (the demo's period) and at
the end. No ROS: the run is deterministic, so before/after figures compare code, not luck.

Perception runs once; its observations are kept (``--cache``) and replayed into a store per
``--noise-support`` value asked for, so the label-noise rule is compared on the same input.

Printed per store, against the simulator's ground truth at the end of the run:

* **engrams per true thing**: current object engrams / things in the world;
* **ghosts**: current object engrams more than 1 m from every true thing of their label;
* **duplicates**: true things with two or more current engrams of their label within 1 m;
* **missing**: true things seen by the detector (true positive at least once) with no current
  engram of their label within 1 m;
* **noise forgets**: one-off engrams the label-noise rule forgot, and of those the *false*
  ones (within 1 m of a true thing of their own label: a real sighting forgotten); the
  **false-forget rate** is true things that lost their only engram that way / things seen;
* **colour**: engrams whose colour tag names the true colour (things of a named colour);
* **size tags**: engrams carrying more than one ``size:`` tag.

Example::

    python benchmarks/bench_ghosts.py --laps 3 --noise-support 0 3 --cache /tmp/obs.pkl
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pickle
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

T0 = 1.7e9
COLOUR_OF = {'grey': 'gray', 'silver': 'gray', 'dark_grey': 'black', 'beige': 'brown',
             'teal': 'blue', 'cyan': 'blue'}


def perceive(scenario_name: str, laps: int, size: tuple[int, int]) -> tuple[list, dict, dict]:
    """Run the simulator through perception: (observations with stamps, truth, counters)."""
    import dataclasses

    from engram_ros.perception.audio import SoundClassifier
    from engram_ros.perception.audio import SoundModel
    from engram_ros.perception.geometry import checked_pose
    from engram_ros.perception.geometry import Intrinsics
    from engram_ros.perception.objects import Detection
    from engram_ros.perception.pipeline import Perception
    from engram_ros.perception.pipeline import PerceptionConfig
    from engram_ros.perception.rooms import RoomMap
    from engram_ros.perception.visual import load_visual_encoder
    from engram_ros.sim.scenario import load_scenario
    from engram_ros.sim.scene import CameraModel
    from engram_ros.sim.simulator import Simulator
    from engram_ros.sim.world import yaw_quaternion

    scenario = dataclasses.replace(load_scenario(scenario_name), laps=laps)
    camera = CameraModel(width=size[0], height=size[1])
    seen: set[str] = set()
    observations = []
    with Simulator(scenario, camera) as sim:
        config = PerceptionConfig(camera_xyz=camera.xyz, camera_rpy=camera.rpy,
                                  camera_convention='optical',
                                  rooms=RoomMap.parse(scenario.world.room_specs()))
        p = Perception(config, load_visual_encoder('orb_bow', 256),
                       SoundClassifier(SoundModel.load()))
        k = camera.K
        p.add_camera_info(Intrinsics(k[0, 0], k[1, 1], k[0, 2], k[1, 2], camera.width,
                                     camera.height))
        for frame in sim.frames():
            stamp = T0 + frame.t
            x, y, yaw = frame.odom
            jobs = p.add_pose(stamp, checked_pose((x, y, 0.0), yaw_quaternion(yaw)))
            jobs += p.add_color(stamp, frame.render.rgb)
            jobs += p.add_depth(stamp, frame.render.depth)
            seen.update(d.true_label for d in frame.detections if d.true_label
                        and d.label == d.true_label)
            jobs += p.add_detections(stamp, [Detection(d.label, d.score, d.box, d.mask)
                                             for d in frame.detections])
            for job in jobs:
                observations += p.run(job)
            if frame.index % 100 == 0:
                print(f'frame {frame.index}/{sim.total_frames}', file=sys.stderr, flush=True)
        truth = sim.ground_truth()
    truth['seen'] = sorted(seen)
    return observations, truth, p.snapshot()


class _NoiseLog(logging.Handler):
    """Collects the ids consolidation forgets as label noise (from its log line)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.ids: list[int] = []

    def emit(self, record: logging.LogRecord) -> None:
        if 'is label noise of engram' in record.getMessage():
            self.ids.append(int(record.args[0]))


def remember(observations: list, noise_support: int | None, period: float = 10.0):
    """Replay the observations into a fresh in-RAM store; (store, label-noise ids)."""
    from engram_ros.core.memory import MemoryStore
    from engram_ros.core.memory import StoreConfig
    from engram_ros.core.memory.config import LOGGER_NAME
    from engram_ros.core.merge import MergePolicy
    from engram_ros.core.storage import MemoryStorage

    merge = MergePolicy() if noise_support is None else MergePolicy(noise_support=noise_support)
    store = MemoryStore(MemoryStorage(), StoreConfig(merge=merge, graph_build='inline'))
    handler = _NoiseLog()
    logger = logging.getLogger(LOGGER_NAME)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    noise_engrams = {}
    try:
        now = [T0]
        store.clock = lambda: now[0]
        next_pass = T0 + period
        for obs in observations:
            now[0] = obs.stamp
            if now[0] >= next_pass:
                store.consolidate(now=now[0])
                next_pass = now[0] + period
            result = store.ingest(obs)
            if obs.kind == 'object' and not result.merged:
                noise_engrams[result.engram_id] = (obs.label, np.asarray(obs.position))
        store.consolidate(now=now[0])
    finally:
        logger.removeHandler(handler)
    return store, [(i, *noise_engrams[i]) for i in handler.ids if i in noise_engrams]


def evaluate(store, noise: list, truth: dict) -> dict:
    """The figures of the module doc for one store."""
    from engram_ros.core import sketch

    things = [dict(t, label=sketch.normalize_tag(f"label:{t['label']}")[6:])
              for t in truth['objects']]
    history = store.state.history
    engrams = [e for e in store.storage.iter_all() if e.kind == 'object' and e.id not in history]
    by_label: dict[str, list] = {}
    for t in things:
        by_label.setdefault(t['label'], []).append(np.asarray(t['center']))

    def near(label: str, position) -> float:
        spots = by_label.get(label, [])
        return min((float(np.linalg.norm((np.asarray(position) - s)[:2])) for s in spots),
                   default=float('inf'))

    ghosts = [e for e in engrams if near(e.label, e.position) > 1.0]
    per_thing = {}
    for t in things:
        c = np.asarray(t['center'])
        per_thing[t['label']] = [e for e in engrams if e.label == t['label']
                                 and float(np.linalg.norm((e.position - c)[:2])) <= 1.0]
    seen = {sketch.normalize_tag(f'label:{lab}')[6:] for lab in truth['seen']}
    colour_ok = colour_n = 0
    for t in things:
        if not t['color']:
            continue
        want = COLOUR_OF.get(t['color'], t['color'])
        for e in per_thing[t['label']]:
            colour_n += 1
            colour_ok += f'color:{want}' in e.tags
    real_forgets = [(i, lab) for i, lab, pos in noise if near(lab, pos) <= 1.0]
    lost = sorted(lab for _, lab in real_forgets if lab in seen and not per_thing.get(lab))
    return {
        'object_engrams': len(engrams), 'true_things': len(things),
        'engrams_per_thing': round(len(engrams) / max(1, len(things)), 3),
        'ghosts': len(ghosts),
        'ghost_list': sorted(f'{e.label}@{e.position[0]:.1f},{e.position[1]:.1f}' for e in ghosts),
        'duplicates': sorted(lab for lab, es in per_thing.items() if len(es) > 1),
        'missing': sorted(lab for lab, es in per_thing.items() if not es and lab in seen),
        'things_seen': len(seen),
        'noise_forgotten': len(noise), 'noise_forgotten_real': len(real_forgets),
        'false_forget_things': lost,
        'false_forget_rate': round(len(lost) / max(1, len(seen)), 4),
        'colour_right': f'{colour_ok}/{colour_n}',
        'several_size_tags': sum(1 for e in engrams
                                 if sum(t.startswith('size:') for t in e.tags) > 1),
        'wrong_colours': sorted({f'{t["label"]}:{t["color"]}->' + ','.join(
            x for x in e.tags if x.startswith('color:'))
            for t in things if t['color'] for e in per_thing[t['label']]
            if f'color:{COLOUR_OF.get(t["color"], t["color"])}' not in e.tags}),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--scenario', default='house')
    parser.add_argument('--laps', type=int, default=3)
    parser.add_argument('--size', default='320x240')
    parser.add_argument('--noise-support', type=int, nargs='*', default=[],
                        help='values of MergePolicy.noise_support to compare (default: the '
                             "policy's default only)")
    parser.add_argument('--cache', default='', help='observations pickle: read if it exists, '
                                                    'else written')
    parser.add_argument('--out', default='', help='JSON results file')
    args = parser.parse_args()
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    width, _, height = args.size.partition('x')
    started = time.perf_counter()
    if args.cache and Path(args.cache).exists():
        with open(args.cache, 'rb') as f:
            observations, truth, counters = pickle.load(f)
    else:
        observations, truth, counters = perceive(args.scenario, args.laps,
                                                 (int(width), int(height)))
        if args.cache:
            with open(args.cache, 'wb') as f:
                pickle.dump((observations, truth, counters), f)
    perceived = time.perf_counter() - started
    results = {'command': ' '.join(sys.argv), 'date': time.strftime('%Y-%m-%d %H:%M UTC',
                                                                     time.gmtime()),
               'load': os.getloadavg(), 'machine': platform.processor() or platform.machine(),
               'perception_seconds': round(perceived, 1),
               'counters': {k: v for k, v in sorted(counters.items())
                            if k.startswith(('skipped', 'refused', 'object', 'detections'))},
               'stores': {}}
    for support in args.noise_support or [None]:
        store, noise = remember(observations, support)
        name = 'default' if support is None else f'noise_support={support}'
        results['stores'][name] = evaluate(store, noise, truth)
        store.close()
    print(json.dumps(results, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
