"""The quick-start demo: a memory node on the embedded store, a small house, planner queries.

    python -m engram_ros.demo [--store DIR] [--laps N]

It starts the memory node in its own process (SQLite store in ``DIR``, wiped first: it is the
demo's own), publishes what a robot walking through a four-room house for a few laps would
observe (places, objects, a doorbell) on the ingest topic, asks the memory planner-style
questions through the Recall service, consolidates, restarts the node on the same store and
asks again. Everything goes over real ROS 2 topics and services.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engram_ros import conversions
from engram_ros.client import MemoryClient
from engram_ros.client import spinning_node
from engram_ros.core.engram import Observation
from engram_ros.core.storage import MARKER_NAME
from engram_ros.msg import Observation as ObservationMsg
from engram_ros.srv import Recall

DIM = 256
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Thing:
    label: str
    kind: str
    room: str
    position: tuple[float, float, float]
    tags: tuple[str, ...] = ()


ROOMS = {'kitchen': (2.0, 2.0), 'living_room': (7.0, 2.0), 'bedroom': (7.0, 7.0),
         'hallway': (2.0, 7.0)}
THINGS = [
    Thing('mug', 'object', 'kitchen', (1.2, 2.6, 0.9), ('color:red',)),
    Thing('kettle', 'object', 'kitchen', (2.8, 1.4, 0.9), ('color:white',)),
    Thing('fridge', 'object', 'kitchen', (0.5, 0.5, 0.9), ('color:white', 'size:large')),
    Thing('sofa', 'object', 'living_room', (7.5, 1.0, 0.4), ('color:blue', 'size:large')),
    Thing('tv', 'object', 'living_room', (8.8, 2.5, 1.0), ('color:black',)),
    Thing('book', 'object', 'living_room', (6.2, 2.8, 0.5), ('color:green',)),
    Thing('bed', 'object', 'bedroom', (7.5, 7.8, 0.5), ('size:large',)),
    Thing('laptop', 'object', 'bedroom', (6.4, 6.3, 0.8), ('color:gray',)),
    Thing('plant', 'object', 'hallway', (1.0, 8.2, 0.3), ('color:green',)),
    Thing('keys', 'object', 'hallway', (2.6, 6.4, 1.0), ('size:small',)),
    Thing('doorbell', 'audio', 'hallway', (0.5, 7.0, 1.8), ('sound:doorbell',)),
]


def appearance(name: str, rng: np.random.Generator, noise: float = 0.08) -> np.ndarray:
    """A stable context vector per thing (seeded by its name) plus per-sighting noise."""
    base = np.random.default_rng(abs(hash_name(name))).normal(size=DIM)
    return base / np.linalg.norm(base) + noise * rng.normal(size=DIM) / np.sqrt(DIM)


def hash_name(name: str) -> int:
    return int.from_bytes(name.encode()[:8].ljust(8, b'\0'), 'little')


def lap_observations(lap: int, rng: np.random.Generator, t0: float) -> list[Observation]:
    """What one walk through the house shows: each room as a place, then what is in it."""
    out = []
    t = t0 + lap * 60.0
    for room, (x, y) in ROOMS.items():
        jitter = rng.normal(scale=0.1, size=3) * (1, 1, 0)
        out.append(Observation(kind='place', frame_id='map', position=np.array([x, y, 0.0]) + jitter,
                               stamp=t, vector=appearance(room, rng), tags=(f'room:{room}',),
                               label=room, modality='vision', confidence=0.9))
        t += 5.0
        for thing in (th for th in THINGS if th.room == room):
            pos = np.array(thing.position) + rng.normal(scale=0.05, size=3)
            out.append(Observation(
                kind=thing.kind, frame_id='map', position=pos, stamp=t,
                vector=appearance(thing.label, rng), label=thing.label,
                tags=(f'room:{room}',) + thing.tags,
                modality='audio' if thing.kind == 'audio' else 'vision',
                confidence=float(np.clip(0.8 + rng.normal(scale=0.05), 0.0, 1.0))))
            t += 2.0
    return out


def start_memory(store: Path, namespace: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, '-m', 'engram_ros.nodes.memory_node', '--ros-args',
         '--params-file', str(ROOT / 'config' / 'engram.yaml'), '-r', f'__ns:={namespace}',
         '-p', 'persist:=true', '-p', f'store_dir:={store}', '-p', 'consolidation_period:=0.0',
         '--log-level', 'warn'],
        cwd=ROOT)


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = '  '.join(h.ljust(w) for h, w in zip(header, widths))
    out = [line, '  '.join('-' * w for w in widths)]
    out += ['  '.join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
    return '\n'.join(out)


def show(question: str, response: Recall.Response) -> None:
    print(f'\n> {question}')
    if response.status != Recall.Response.STATUS_OK:
        print(f'  status {response.status}: {response.message}')
        return
    if not response.engrams:
        print(f'  I do not remember anything like that ({response.message}).')
        return
    rows = []
    for i, e in enumerate(response.engrams):
        p = e.pose.pose.position
        room = next((t.split(':', 1)[1] for t in e.tags if t.startswith('room:')), '')
        rows.append([e.label or e.kind, e.kind, room, f'({p.x:.2f}, {p.y:.2f}, {p.z:.2f})',
                     str(e.observation_count), e.tier, f'{response.scores[i]:.2f}',
                     f'{response.symbolic_scores[i]:.2f}/{response.dense_scores[i]:.2f}/'
                     f'{response.spatial_scores[i]:.2f}/{response.temporal_scores[i]:.2f}'])
    print(table(rows, ['what', 'kind', 'room', 'where [m, map]', 'seen', 'tier', 'score',
                       'sym/dense/space/time']))
    print(f'  ({response.message})')


def ask_all(client: MemoryClient) -> None:
    mug = appearance('mug', np.random.default_rng(0), noise=0.0)
    hall = ROOMS['hallway']
    show('Where is the mug?', client.recall(text='where is the mug?', kinds=['object'], k=3))
    show('What is in the kitchen?', client.recall(tags_all=['room:kitchen'], kinds=['object'],
                                                  k=10))
    show('What did you hear near the hallway?',
         client.recall(kinds=['audio'], center=(hall[0], hall[1], 0.0), radius=3.0, k=5))
    show('What looks like this mug (by context vector)?', client.recall(vector=mug, k=3))
    show('Where is the unicorn?', client.recall(text='where is the unicorn?', k=3))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--store', type=Path, default=ROOT / 'demo_store',
                        help='store directory for the demo (wiped first)')
    parser.add_argument('--laps', type=int, default=3, help='walks through the house')
    args = parser.parse_args(argv)

    if args.store.exists():
        if any(args.store.iterdir()) and not (args.store / MARKER_NAME).exists():
            parser.error(f'{args.store} exists and is not an engram store; not wiping it')
        shutil.rmtree(args.store)
    namespace = f'/demo_{uuid.uuid4().hex[:6]}'
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    with spinning_node('engram_demo') as node:
        return run(node, args.store, args.laps, namespace)


def run(node, store: Path, laps: int, namespace: str) -> int:
    client = MemoryClient(node, namespace)
    memory = start_memory(store, namespace)
    try:
        client.wait_for_services(timeout=30.0)
        publisher = node.create_publisher(ObservationMsg, f'{namespace}/engram/observations', 100)
        while publisher.get_subscription_count() == 0:
            time.sleep(0.05)
        rng = np.random.default_rng(42)
        t0 = time.time() - 600.0
        sent = 0
        for lap in range(laps):
            for obs in lap_observations(lap, rng, t0):
                publisher.publish(conversions.observation_to_msg(obs))
                sent += 1
                time.sleep(0.005)
        everything = ['place', 'object', 'audio', 'event']
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline:
            stored = client.recall(kinds=everything, k=100).engrams
            if sum(e.observation_count for e in stored) >= sent:
                break
            time.sleep(0.2)
        print(f'Published {sent} observations over {laps} laps; the memory keeps '
              f'{len(stored)} engrams (store: {store}).')
        ask_all(client)
        report = client.consolidate()
        print(f'\nConsolidate: {report.message}; {report.size_before} -> {report.size_after} '
              'engrams.')

        memory.send_signal(signal.SIGINT)
        memory.wait(30)
        print('\nRestarted the memory node on the same store:')
        memory = start_memory(store, namespace)
        client.wait_for_services(timeout=30.0)
        show('Where is the mug? (after restart)', client.recall(text='mug', k=1))
    finally:
        if memory.poll() is None:
            memory.send_signal(signal.SIGINT)
            memory.wait(30)
    return 0


if __name__ == '__main__':
    sys.exit(main())
