"""The main demo: a robot patrols the simulated house, then a planner asks its memory.

    python -m engram_ros.sim.demo [--scenario house] [--laps N] [--store DIR] [--png PATH]

It starts the simulated robot, perception and the memory (on the embedded SQLite store in
``DIR``, wiped first: it is the demo's own) as separate processes with
:mod:`engram_ros.apps.launcher`, shows a progress bar while the robot explores, then asks
through the Recall service: where is the mug, what is in the kitchen, what was heard in the
hallway, what changed since lap 1, and where is something never seen. Answers are printed as
tables, with the distance to the simulator's ground truth, and drawn on a top-down PNG of the
memory.

Answers are read the way a planner should read them: the memory's current beliefs (Recall
answers those unless asked ``at_time`` or ``changed_since``), best supported first; engrams
still in the short-term tier (seen once: often detector label noise) are named under the
table as unconfirmed rather than presented as answers; "what changed" is the memory's own
temporal validity (``changed_since``), each belief marked current or history with where the
thing moved from or to.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from engram_ros.sim.demo_picture import draw

ROOT = Path(__file__).resolve().parents[2]


#: Engram.tier of an engram seen once (not yet consolidated into a long-term slot).
TIER_SHORT = 'short'


@dataclass
class Answer:
    question: str
    engrams: list = field(default_factory=list)
    scores: list = field(default_factory=list)
    message: str = ''
    note: list = field(default_factory=list)   # one per engram: extra words for the table
    #: Short-term engrams (seen once) held back from the table and named under it.
    unconfirmed: list = field(default_factory=list)
    #: The answer in words, printed above the table ('' = none).
    summary: str = ''
    #: Per engram, the robot that saw it (Recall's ``robots``; empty for one robot's answer).
    robots: list = field(default_factory=list)

    def keep(self, wanted: Callable[[object], bool]) -> 'Answer':
        """Drop the engrams ``wanted`` rejects, keeping scores and notes aligned."""
        rows = [(e, self.scores[i] if i < len(self.scores) else 0.0,
                 self.note[i] if i < len(self.note) else '',
                 self.robots[i] if i < len(self.robots) else '')
                for i, e in enumerate(self.engrams) if wanted(e)]
        self.engrams = [r[0] for r in rows]
        self.scores = [r[1] for r in rows]
        self.note = [r[2] for r in rows] if self.note else []
        self.robots = [r[3] for r in rows] if self.robots else []
        return self

    def hold_back_unconfirmed(self) -> 'Answer':
        """Move engrams seen once (short-term tier) from the table to :attr:`unconfirmed`."""
        self.unconfirmed += [e for e in self.engrams if e.tier == TIER_SHORT]
        return self.keep(lambda e: e.tier != TIER_SHORT)


class Watcher:
    """Keeps the latest sim status and ground truth, and the odometry trajectory."""

    def __init__(self, node, namespace: str) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from nav_msgs.msg import Odometry
        from rclpy.qos import DurabilityPolicy
        from rclpy.qos import QoSProfile
        from std_msgs.msg import String

        self.lock = threading.Lock()
        self.status: dict = {}
        self.truth: dict = {}
        #: perception's latest diagnostics values (where its poses come from, what it skipped)
        self.perception: dict[str, str] = {}
        self._perception_id = f'{namespace}/engram_perception'
        #: the memory's latest diagnostics values (the fleet demo reads ``fleet``)
        self.memory: dict[str, str] = {}
        self._memory_id = f'{namespace}/engram_memory'
        self.trajectory: list[tuple[float, float]] = []
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._subs = [
            node.create_subscription(String, f'{namespace}/sim/status', self.status_callback,
                                     latched),
            node.create_subscription(String, f'{namespace}/sim/ground_truth',
                                     self.truth_callback, latched),
            node.create_subscription(Odometry, f'{namespace}/odom', self.odom_callback, 50),
            node.create_subscription(DiagnosticArray, '/diagnostics',
                                     self.diagnostics_callback, 50)]

    def status_callback(self, msg) -> None:
        with self.lock:
            self.status = json.loads(msg.data)

    def truth_callback(self, msg) -> None:
        with self.lock:
            self.truth = json.loads(msg.data)

    def diagnostics_callback(self, msg) -> None:
        for status in msg.status:
            if status.hardware_id == self._perception_id:
                with self.lock:
                    self.perception = {kv.key: kv.value for kv in status.values}
            elif status.hardware_id == self._memory_id:
                with self.lock:
                    self.memory = {kv.key: kv.value for kv in status.values}

    def odom_callback(self, msg) -> None:
        p = msg.pose.pose.position
        with self.lock:
            self.trajectory.append((p.x, p.y))


class Progress:
    """The exploration's progress bar (tqdm, on stderr): frames done of the patrol, and the lap.

    ``desc`` names it, ``position`` is its line (one bar per robot in the fleet demo).
    """

    def __init__(self, desc: str = '  exploring', position: int = 0) -> None:
        self.bar: tqdm | None = None
        self.desc, self.position = desc, position

    def update(self, status: dict) -> None:
        total = max(1, status.get('total_frames', 1))
        if self.bar is None:
            self.bar = tqdm(total=total, desc=self.desc, unit='frame', file=sys.stderr,
                            position=self.position,
                            bar_format='{desc} {bar:30} {n_fmt}/{total_fmt} frames  '
                                       '{postfix}  {elapsed}')
        self.bar.n = min(total, status.get('frame', 0))
        self.bar.set_postfix_str(f'lap {status.get("lap", 1)}/{status.get("laps", "?")}',
                                 refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    out = ['  ' + '  '.join(h.ljust(w) for h, w in zip(header, widths)),
           '  ' + '  '.join('-' * w for w in widths)]
    out += ['  ' + '  '.join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
    return '\n'.join(line.rstrip() for line in out)


def truth_distance(engram, truth: dict) -> str:
    """Distance [m] in the plane to the true object (or sound source) of the same label.

    A sound source matches by its label or its kind of sound (``synth``, e.g. speech); '-'
    when nothing matches, and for history (the truth is where the thing is now).
    """
    if is_history(engram):
        return '-'
    p = engram.pose.pose.position
    label = same_label(engram.label)
    for obj in truth.get('objects', []):
        if same_label(obj['label']) == label:
            return f'{math.hypot(p.x - obj["position"][0], p.y - obj["position"][1]):.2f}'
    for sound in truth.get('sounds', []):
        if label in (same_label(sound['label']), same_label(sound.get('synth', ''))):
            return f'{math.hypot(p.x - sound["position"][0], p.y - sound["position"][1]):.2f}'
    return '-'


def same_label(label: str) -> str:
    """The memory's canonical form of a label (the simulator's 'fridge' is 'refrigerator')."""
    from engram_ros.core.sketch import normalize_tag
    try:
        return normalize_tag('label:' + label) if label else ''
    except ValueError:
        return label


def room_of(x: float, y: float, truth: dict) -> str:
    for room in truth.get('rooms', []):
        if room['min'][0] <= x <= room['max'][0] and room['min'][1] <= y <= room['max'][1]:
            return room['name']
    return ''


def room_of_engram(engram, truth: dict) -> str:
    p = engram.pose.pose.position
    return room_of(p.x, p.y, truth) or 'outside the rooms'


def lap_of(stamp: float, lap_ends: list[float]) -> int:
    """The lap (1-based) a stamp [s since the epoch] falls in; after the last, the last."""
    lap = 1 + sum(1 for end in lap_ends if stamp > end)
    return min(lap, max(1, len(lap_ends)))


def is_history(engram) -> bool:
    """True when the belief is no longer current (``valid_to`` set)."""
    return engram.valid_to.sec != 0 or engram.valid_to.nanosec != 0


def _seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def belief_note(engram, lap_ends: list[float]) -> str:
    """When the belief became current and when it was last confirmed, in laps."""
    since = lap_of(_seconds(engram.valid_from), lap_ends)
    last = lap_of(_seconds(engram.last_seen), lap_ends)
    return f'current since lap {since}, last seen in lap {last}'


def twin_note(engram, current: list, radius: float = 1.5) -> str:
    """Names the nearest other current engram of the same label within ``radius`` [m], if any.

    Two such engrams are likely one thing seen from places far enough apart that perception
    put it more than the merge radius apart (large furniture); a reader should know.
    """
    p = engram.pose.pose.position
    best = None
    for other in current:
        if other.id == engram.id or other.label != engram.label or is_history(other):
            continue
        q = other.pose.pose.position
        d = math.hypot(p.x - q.x, p.y - q.y)
        if d <= radius and (best is None or d < best[0]):
            best = (d, other)
    if best is None:
        return ''
    return f'same as #{best[1].id} ({best[0]:.2f} m away)?'


def change_notes(engrams: list, truth: dict, lap_ends: list[float],
                 current: list | None = None) -> list[str]:
    """For a ``changed_since`` answer: each belief current or history, and where it moved.

    :param current: every current engram, to point out likely duplicates of new ones.
    """
    by_id = {e.id: e for e in engrams}
    predecessor = {e.successor_id: e for e in engrams if is_history(e) and e.successor_id}
    notes = []
    for e in engrams:
        if is_history(e):
            successor = by_id.get(e.successor_id)
            since = f'history since lap {lap_of(_seconds(e.valid_to), lap_ends)}'
            if not e.successor_id:
                notes.append(f'{since}: gone, not seen where it should have been visible')
            else:
                notes.append(f'{since}: moved to the {room_of_engram(successor, truth)} '
                             f'(#{e.successor_id})' if successor is not None
                             else f'{since}: superseded by #{e.successor_id}')
        elif e.id in predecessor:
            old = predecessor[e.id]
            notes.append(f'current since lap {lap_of(_seconds(e.valid_from), lap_ends)}: '
                         f'moved here from the {room_of_engram(old, truth)} (#{old.id})')
        else:
            twin = twin_note(e, current or [])
            notes.append(f'current: first seen in lap {lap_of(_seconds(e.valid_from), lap_ends)}'
                         + (f'; {twin}' if twin else ''))
    return notes


def moves_first(answer: Answer) -> Answer:
    """Order a changes answer: each history belief followed by its successor, then the rest."""
    order: list[int] = []
    ids = [e.id for e in answer.engrams]
    for i, e in enumerate(answer.engrams):
        if is_history(e) and i not in order:
            order.append(i)
            if e.successor_id in ids and ids.index(e.successor_id) not in order:
                order.append(ids.index(e.successor_id))
    order += [i for i in range(len(answer.engrams)) if i not in order]
    answer.engrams = [answer.engrams[i] for i in order]
    answer.scores = [answer.scores[i] for i in order] if answer.scores else []
    answer.note = [answer.note[i] for i in order] if answer.note else []
    return answer


def unconfirmed_line(engrams: list, truth: dict) -> str:
    """Lines naming short-term engrams (seen once) and their rooms, or ''."""
    if not engrams:
        return ''
    names = ', '.join(f'{e.label or e.kind} ({room_of_engram(e, truth)}'
                      + (', history)' if is_history(e) else ')') for e in engrams)
    return textwrap.fill(f'{len(engrams)} seen only once, unconfirmed (short-term): {names}',
                         width=97, initial_indent='  ', subsequent_indent='    ')


def show(answer: Answer, truth: dict) -> None:
    print(f'\n> {answer.question}')
    if answer.summary:
        print(f'  {answer.summary}')
    if not answer.engrams:
        if answer.unconfirmed:
            print('  Nothing confirmed (seen more than once).')
            print(unconfirmed_line(answer.unconfirmed, truth))
        else:
            print(f'  I don\'t know: I remember nothing like that ({answer.message}).')
        return
    rows = []
    for i, e in enumerate(answer.engrams):
        p = e.pose.pose.position
        rows.append([e.label or '(unnamed)', e.kind, room_of(p.x, p.y, truth),
                     f'({p.x:.2f}, {p.y:.2f}, {p.z:.2f})', str(e.observation_count),
                     f'{answer.scores[i]:.2f}' if i < len(answer.scores) else '',
                     truth_distance(e, truth), answer.note[i] if i < len(answer.note) else ''])
    print(table(rows, ['what', 'kind', 'room', 'where [m, map]', 'seen', 'score',
                       'off truth [m]', 'note']))
    if answer.unconfirmed:
        print(unconfirmed_line(answer.unconfirmed, truth))


def ask(client, truth: dict, lap_ends: list[float], current: list | None = None
        ) -> list[Answer]:
    """A planner's questions; ``current`` (every current object) lets notes name duplicates."""
    from engram_ros.srv import Recall

    def recall(question: str, **query) -> Answer:
        response = client.recall(**query)
        if response.status != Recall.Response.STATUS_OK:
            return Answer(question, message=f'status {response.status}: {response.message}')
        return Answer(question, list(response.engrams), list(response.scores),
                      response.message)

    # Current beliefs only (Recall's default), best supported first.
    mug = recall('Where is the mug?', text='where is the mug?', kinds=['object'], k=5)
    mug.keep(lambda e: e.label == 'mug').hold_back_unconfirmed()
    mug.note = [belief_note(e, lap_ends) for e in mug.engrams]
    if mug.engrams:
        best = mug.engrams[0]
        mug.summary = (f'The mug is in the {room_of_engram(best, truth)} (the current belief: '
                       f'seen {best.observation_count} times, last in lap '
                       f'{lap_of(_seconds(best.last_seen), lap_ends)}).')
    answers = [mug]
    # No known word in it: the memory matches the text to its labels by meaning.
    seat = recall('Where can I sit down?', text='where can I sit down?', kinds=['object'], k=3)
    seat.hold_back_unconfirmed()
    if seat.engrams and 'means' in seat.message:
        seat.summary = 'Matched by meaning: ' + seat.message.split('means ', 1)[1].rstrip(')')
    answers.append(seat)
    rooms = {r['name']: r for r in truth.get('rooms', [])}
    if 'kitchen' in rooms:
        # Perception tags what it sees with the room it is in (its `rooms` parameter).
        a = recall('What is in the kitchen?', kinds=['object'], tags_all=['room:kitchen'], k=30)
        a.hold_back_unconfirmed()
        a.note = [twin_note(e, current or []) for e in a.engrams]
        answers.append(a)
    if 'hallway' in rooms:
        r = rooms['hallway']
        cx, cy = (r['min'][0] + r['max'][0]) / 2, (r['min'][1] + r['max'][1]) / 2
        radius = math.hypot(r['max'][0] - cx, r['max'][1] - cy)
        a = recall('What did you hear in the hallway?', kinds=['audio'],
                   center=(cx, cy, 0.0), radius=radius, k=20)
        a.keep(lambda e: room_of_engram(e, truth) == 'hallway')
        answers.append(a.hold_back_unconfirmed())
    if len(lap_ends) >= 2:
        # The memory's temporal validity: beliefs that began or ended since the end of lap 1.
        changed = recall('What changed since lap 1?', kinds=['object'], k=100,
                         changed_since=lap_ends[0])
        changed.hold_back_unconfirmed()
        changed.note = change_notes(changed.engrams, truth, lap_ends, current)
        answers.append(moves_first(changed))
    a = recall('Where is the unicorn?', text='where is the unicorn?', kinds=['object'], k=1)
    answers.append(a.keep(lambda e: e.label == 'unicorn'))
    return answers


def all_engrams(client) -> dict[str, list]:
    return {kind: list(client.recall(kinds=[kind], k=100).engrams)
            for kind in ('place', 'object', 'audio')}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--scenario', default='house', help='scenario name or path')
    parser.add_argument('--laps', type=int, default=0, help='override the scenario\'s laps')
    parser.add_argument('--store', type=Path, default=ROOT / 'demo_store',
                        help='store directory for the demo (wiped first)')
    parser.add_argument('--png', type=Path, default=ROOT / 'demo_memory.png',
                        help='where to write the picture of the memory')
    parser.add_argument('--size', default='320x240', help='camera WIDTHxHEIGHT')
    parser.add_argument('--rate', type=float, default=4.0, help='[Hz] camera frames')
    parser.add_argument('--timeout', type=float, default=600.0,
                        help='[s] give up exploring after this long')
    parser.add_argument('--param', action='append', default=[], metavar='NODE.NAME:=VALUE',
                        help='a node parameter over config/engram.yaml, e.g. '
                             '"perception.camera_xyz:=[5.0,5.0,5.0]" (a wrong camera mount: '
                             'TF still places the frames); repeatable')
    args = parser.parse_args(argv)
    width, _, height = args.size.partition('x')

    from engram_ros.core.storage import MARKER_NAME
    if args.store.exists():
        if any(args.store.iterdir()) and not (args.store / MARKER_NAME).exists():
            parser.error(f'{args.store} exists and is not an engram store; not wiping it')
        shutil.rmtree(args.store)
    from engram_ros.sim.scenario import load_scenario
    from engram_ros.sim.scenario import ScenarioError
    try:
        scenario_path = str(load_scenario(args.scenario).source)
    except ScenarioError as exc:
        parser.error(str(exc))
    if args.laps > 0:
        scenario_path = with_laps(scenario_path, args.laps)

    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    from engram_ros.apps.launcher import Launcher
    from engram_ros.ros.client import spinning_node

    namespace = f'/demo_{uuid.uuid4().hex[:6]}'
    log_dir = Path(tempfile.mkdtemp(prefix='engram_sim_demo_'))
    try:
        launcher = Launcher('sim', namespace=namespace, log_dir=log_dir, log_level='warn',
                            params=[f'sim.scenario:={scenario_path}', f'sim.width:={width}',
                                    f'sim.height:={height}', f'sim.rate:={args.rate}',
                                    'memory.persist:=true', f'memory.store_dir:={args.store}',
                                    'memory.consolidation_period:=10.0', 'memory.noise_support:=3',
                                    *args.param])
    except ValueError as exc:        # a --param that is not NODE.NAME:=VALUE
        parser.error(str(exc))
    started = time.monotonic()
    print(f'Starting the simulated robot, perception and memory (logs: {log_dir}).')
    launcher.start()
    code = 1
    try:
        with spinning_node('engram_sim_demo') as node:
            code = run(node, launcher, namespace, args, started)
    except KeyboardInterrupt:
        print('\ninterrupted')
    finally:
        codes = launcher.stop()
        if codes.get('memory') == 0:
            print(f'Memory stopped cleanly; its store is in {args.store}.')
    print(f'Demo took {time.monotonic() - started:.0f} s.')
    return code


def with_laps(path: str, laps: int) -> str:
    """A copy of the scenario with another number of laps (events after it are dropped)."""
    import yaml
    doc = yaml.safe_load(Path(path).read_text())
    doc['laps'] = laps
    doc['events'] = [e for e in doc.get('events', []) if e.get('after_lap', 1) <= laps]
    for obj in doc.get('objects', []):  # relative assets stay next to the original
        if 'asset' in obj and not Path(obj['asset']).is_absolute():
            candidate = Path(path).parent / obj['asset']
            if candidate.exists():
                obj['asset'] = str(candidate)
    out = Path(tempfile.mkdtemp(prefix='engram_scenario_')) / Path(path).name
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(out)


def run(node, launcher, namespace: str, args, started: float) -> int:
    from engram_ros.ros.client import MemoryClient

    client = MemoryClient(node, namespace)
    watcher = Watcher(node, namespace)
    client.wait_for_services(timeout=60.0)
    progress = Progress()
    try:
        while True:
            died = launcher.check()
            if died is not None:
                progress.close()
                print(f'\n{died.spec.name} stopped unexpectedly (exit code {died.returncode}); '
                      f'its log ends:\n' + log_tail(launcher.log_dir / f'{died.spec.name}.log'))
                return 1
            with watcher.lock:
                status = dict(watcher.status)
            if status:
                progress.update(status)
            if status.get('done'):
                break
            if time.monotonic() - started > args.timeout:
                progress.close()
                print('\nexploration did not finish in time', file=sys.stderr)
                return 1
            time.sleep(0.5)
    finally:
        progress.close()
    # let perception flush what is in flight and the memory ingest it
    previous, stable_since = -1, time.monotonic()
    deadline = time.monotonic() + 20.0
    while time.monotonic() < deadline:
        count = sum(len(v) for v in all_engrams(client).values())
        if count != previous:
            previous, stable_since = count, time.monotonic()
        elif time.monotonic() - stable_since > 2.0:
            break
        time.sleep(0.5)
    with watcher.lock:
        truth, trajectory, status = dict(watcher.truth), list(watcher.trajectory), watcher.status
        seen = dict(watcher.perception)
    # What a planner would do before asking after a patrol: consolidate what just came in
    # (promotions, merges, moves) rather than wait for the next periodic pass.
    report = client.consolidate()
    engrams = all_engrams(client)
    print(f'Explored {status.get("laps")} laps ({status.get("total_frames")} frames); the memory '
          f'keeps {len(engrams["place"])} places, {len(engrams["object"])} objects, '
          f'{len(engrams["audio"])} sounds (current beliefs; last consolidation: '
          f'{report.merged} merged, {report.promoted} promoted, {report.moved} moved).')
    if seen:
        print(f'Perception placed {seen.get("frames_posed_by_tf", "0")} frames from TF and '
              f'{seen.get("frames_posed_by_parameters", "0")} from odometry and the camera '
              f'parameters (pose source: {seen.get("pose_source", "unknown")}); it dropped '
              f'{seen.get("jobs_dropped", "0")} jobs it had no time to encode '
              f'({seen.get("detections_dropped", "0")} looks at objects).')
    for event in truth.get('applied', []):
        print(f'  (the simulation, {event["text"]})')
    answers = ask(client, truth, status.get('lap_end_stamps', []), engrams['object'])
    for answer in answers:
        show(answer, truth)
    draw(args.png, truth, trajectory, engrams, answers)
    print(f'\nThe memory, drawn: {args.png}')
    return 0


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        return '\n'.join(path.read_text().splitlines()[-lines:])
    except OSError:
        return '(no log)'


if __name__ == '__main__':
    sys.exit(main())
