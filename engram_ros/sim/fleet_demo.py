"""The fleet demo (issue 15): two robots, one fleet memory; robot 2 finds robot 1's mug.

    python -m engram_ros.sim.fleet_demo [--laps N] [--store DIR] [--png PATH] [--summary JSON]
    ./tools/demo.sh --fleet [the same options]

What runs, all on this machine: one ``engram fleet serve`` process hosting a milvus-lite file
(the fleet collection) on a free localhost port, and two robots, each the main demo's three
processes (simulator, perception, memory) in its own namespace, started with
:mod:`engram_ros.apps.launcher`:

* robot 1 (``/robot1``, ``config/scenarios/fleet_south.yaml``) patrols the kitchen and the
  living room, where the mug is;
* robot 2 (``/robot2``, ``fleet_north.yaml``) patrols the hallway, the office and the bedroom,
  and never sees the mug itself.

Each memory keeps its own store and syncs it with the fleet (``fleet.uri``,
``docs/fleet.md``). TF is remapped into each namespace (``/robot1/tf``), so the two robots'
``odom -> base_link`` do not mix. Both robots run live: each half-house patrol is about a
third of the main demo's (222 and 268 frames against 612), so the two pipelines together cost
about what the main demo's one does on 2 cores.

While they patrol, the demo measures the **sync lag**: it asks robot 1's own memory for the mug
at 5 Hz until it has it (the time robot 1's memory stored it), then robot 2 with
``scope = SCOPE_FLEET`` at 5 Hz until robot 2's answer holds robot 1's mug. After both patrols
(and a consolidation of each memory, as a planner would ask for), robot 2 is asked over DDS
"where is the mug?" with ``SCOPE_FLEET`` (the answer: robot 1's sighting, with who saw it and
the distance to the simulator's truth) and with ``SCOPE_ROBOT`` (its own memory: nothing), and
the PNG shows who saw what (:func:`engram_ros.sim.demo_picture.draw_fleet`).

The stores and the fleet file live in a fresh temporary directory (removed at the end), or in
``--store DIR`` (wiped first, kept). Every process started is stopped at the end, on a failure
and on Ctrl-C or SIGTERM. The robots use the namespaces ``/robot1`` and ``/robot2`` on this
shell's ``ROS_DOMAIN_ID``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from dataclasses import dataclass
from pathlib import Path

from engram_ros.sim.demo import Answer
from engram_ros.sim.demo import log_tail
from engram_ros.sim.demo import Progress
from engram_ros.sim.demo import room_of
from engram_ros.sim.demo import room_of_engram
from engram_ros.sim.demo import table
from engram_ros.sim.demo import truth_distance
from engram_ros.sim.demo_picture import draw_fleet

ROOT = Path(__file__).resolve().parents[2]
#: (robot id = namespace without its slash, scenario): robot 1 sees the mug, robot 2 asks.
ROBOTS = (('robot1', 'fleet_south'), ('robot2', 'fleet_north'))
#: [s] between polls of the sync-lag measurement (5 Hz).
POLL = 0.2
#: A ``--store DIR`` the demo made (it wipes only those, or empty ones).
MARKER = '.engram_fleet_demo'
MUG = 'mug'
#: What the demo says when Recall has no ``scope`` (a build before issue 15's recall scope).


@dataclass
class SyncLag:
    """Robot 1's mug, from its camera to robot 2's fleet answer (wall clock [s], 0 = not yet).

    ``seen``: the stamp of robot 1's first frame of the mug (``first_seen``); ``stored``: the
    first poll at which robot 1's own memory answered with it; ``shared``: the first poll at
    which robot 2's fleet-scoped recall did. Polls are :data:`POLL` apart, so each time is late
    by at most that much.
    """

    seen: float = 0.0
    stored: float = 0.0
    shared: float = 0.0

    def lag(self) -> float | None:
        """The sync lag [s]: robot 1's memory has the mug -> robot 2 answers with it."""
        return self.shared - self.stored if self.stored and self.shared else None

    def sighting_to_answer(self) -> float | None:
        """[s] robot 1's camera frame of the mug -> robot 2 answers with it."""
        return self.shared - self.seen if self.seen and self.shared else None

    def line(self) -> str:
        """The measurement in words."""
        if not self.stored:
            return 'Sync lag: not measured (robot 1 never stored a mug).'
        if not self.shared:
            return ('Sync lag: not measured (robot 2\'s fleet recall never answered with robot '
                    '1\'s mug while they patrolled).')
        return (f'Sync lag: {self.lag():.1f} s from robot 1\'s memory storing the mug to robot '
                f'2\'s fleet answer naming it ({self.sighting_to_answer():.1f} s from robot 1\'s '
                f'camera frame; {self.stored - self.seen:.1f} s of that is robot 1\'s perception '
                f'and memory; polled at {1 / POLL:.0f} Hz).')


def seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def seen_by(answer: Answer, robot: str) -> list:
    """The engrams of ``answer`` that ``robot`` saw (Recall's per-engram ``robots``)."""
    return [e for e, r in zip(answer.engrams, answer.robots) if r == robot]


def only(label: str, answer: Answer) -> Answer:
    """Keep the engrams of ``label``; when none is left of a non-empty answer, the message says
    so (not the recall's own summary of the others)."""
    others = len(answer.engrams)
    answer.keep(lambda e: e.label == label)
    if others and not answer.engrams:
        answer.message = f'no {label} in what it recalled ({others} other things)'
    return answer


def off_truth(engram, truth: dict) -> float | None:
    """Distance [m] in the plane to the true object of the same label, None when none."""
    text = truth_distance(engram, truth)
    return None if text == '-' else float(text)


def fleet_table(answer: Answer, truth: dict) -> str:
    """The answer as a table with who saw each thing (``answer.robots``)."""
    rows = []
    for i, e in enumerate(answer.engrams):
        p = e.pose.pose.position
        rows.append([e.label or '(unnamed)', answer.robots[i] if i < len(answer.robots) else '?',
                     room_of(p.x, p.y, truth), f'({p.x:.2f}, {p.y:.2f}, {p.z:.2f})',
                     str(e.observation_count), e.tier,
                     f'{answer.scores[i]:.2f}' if i < len(answer.scores) else '',
                     truth_distance(e, truth)])
    return table(rows, ['what', 'seen by', 'room', 'where [m, map]', 'seen', 'tier', 'score',
                        'off truth [m]'])


def summary_line(answer: Answer, truth: dict, asker: str) -> str:
    """The answer in words: where the best hit is, who saw it, how far from the truth."""
    if not answer.engrams:
        return f'{asker} does not know: {answer.message or "no such memory"}.'
    best = answer.engrams[0]
    who = answer.robots[0] if answer.robots else asker
    off = off_truth(best, truth)
    where = f', {off:.2f} m from where it really is' if off is not None else ''
    return (f'The {best.label} is in the {room_of_engram(best, truth)}: {who} saw it '
            f'{best.observation_count} times{where}.')


def engram_record(engram, robot: str, truth: dict) -> dict:
    """One answer row for ``--summary``."""
    p = engram.pose.pose.position
    return {'label': engram.label, 'robot': robot, 'x': p.x, 'y': p.y,
            'room': room_of(p.x, p.y, truth), 'observations': engram.observation_count,
            'tier': engram.tier, 'off_truth_m': off_truth(engram, truth)}


class FleetServer:
    """``engram fleet serve FILE --address 127.0.0.1:0`` as a child process.

    It dies with this process (``PR_SET_PDEATHSIG``) should this one be killed outright.
    """

    def __init__(self, path: Path, log_path: Path) -> None:
        self.path, self.log_path = path, log_path
        self.proc: subprocess.Popen | None = None
        self.uri = ''

    def start(self, timeout: float = 60.0) -> str:
        """Start it and wait for its ``serving FILE at URI`` line.

        :raises RuntimeError: when it exits or says nothing within ``timeout``.
        """
        from engram_ros.apps.launcher import die_with_parent
        with open(self.log_path, 'w') as log:
            self.proc = subprocess.Popen(
                [sys.executable, '-m', 'engram_ros.apps.cli', 'fleet', 'serve', str(self.path),
                 '--address', '127.0.0.1:0'], stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent, env={**os.environ, 'PYTHONUNBUFFERED': '1'})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            for line in self.log_path.read_text().splitlines():
                if line.startswith('serving ') and ' at http://' in line:
                    self.uri = line.rsplit(' at ', 1)[1].strip()
                    return self.uri
            time.sleep(0.1)
        raise RuntimeError(f'engram fleet serve did not start (exit code {self.proc.poll()}); '
                           f'its log ends:\n{log_tail(self.log_path)}')

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if self.proc.poll() is not None:
                break
            self.proc.send_signal(sig)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                continue
        return self.proc.wait()


class Robot:
    """One robot of the demo: its launcher, and (once the graph runs) its watcher and client."""

    def __init__(self, name: str, scenario: str, launcher) -> None:
        self.name, self.scenario, self.launcher = name, scenario, launcher
        self.namespace = f'/{name}'
        self.watcher = None
        self.client = None
        self.progress = None

    def status(self) -> dict:
        with self.watcher.lock:
            return dict(self.watcher.status)

    def recall(self, scope: int | None = None, **query) -> Answer:
        """Recall as an :class:`Answer` (with ``robots``); ``scope`` None: the default."""
        from engram_ros.srv import Recall
        if scope is not None:
            query['scope'] = scope
        question = query.pop('question', '')
        response = self.client.recall(**query)
        if response.status != Recall.Response.STATUS_OK:
            return Answer(question, message=f'status {response.status}: {response.message}')
        return Answer(question, list(response.engrams), list(response.scores),
                      response.message, robots=list(response.robots))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--laps', type=int, default=0, help='override both scenarios\' laps')
    parser.add_argument('--store', type=Path, default=None,
                        help='directory for the fleet file and both stores (wiped first, kept); '
                             'default: a temporary directory, removed at the end')
    parser.add_argument('--png', type=Path, default=ROOT / 'fleet_memory.png',
                        help='where to write the picture of who saw what')
    parser.add_argument('--summary', type=Path, default=None,
                        help='also write the answers and the sync lag to this JSON file')
    parser.add_argument('--size', default='320x240', help='camera WIDTHxHEIGHT')
    parser.add_argument('--rate', type=float, default=4.0, help='[Hz] camera frames')
    parser.add_argument('--sync-period', type=float, default=2.0,
                        help='[s] the memories\' fleet.sync_period')
    parser.add_argument('--timeout', type=float, default=400.0,
                        help='[s] give up patrolling after this long')
    args = parser.parse_args(argv)
    width, _, height = args.size.partition('x')

    from engram_ros.sim.demo import with_laps
    from engram_ros.sim.scenario import load_scenario
    if args.store is not None:
        if args.store.exists():
            if any(args.store.iterdir()) and not (args.store / MARKER).exists():
                parser.error(f'{args.store} exists and is not a fleet demo directory; '
                             f'not wiping it')
            shutil.rmtree(args.store)
        args.store.mkdir(parents=True)
        store = args.store
    else:
        store = Path(tempfile.mkdtemp(prefix='engram_fleet_demo_'))
    (store / MARKER).touch()
    log_dir = Path(tempfile.mkdtemp(prefix='engram_fleet_demo_logs_'))

    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    from engram_ros.apps.launcher import Launcher

    def on_sigterm(_signum, _frame) -> None:
        raise SystemExit(130)

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    started = time.monotonic()
    server = FleetServer(store / 'fleet.db', log_dir / 'fleet_serve.log')
    robots: list[Robot] = []
    code = 1
    print(f'Starting the fleet memory and two robots (stores: {store}; logs: {log_dir}).')
    try:
        uri = server.start()
        print(f'Fleet memory: {uri} (milvus-lite, {store / "fleet.db"}).')
        for name, scenario in ROBOTS:
            path = str(load_scenario(scenario).source)
            if args.laps > 0:
                path = with_laps(path, args.laps)
            launcher = Launcher(
                'sim', namespace=f'/{name}', log_dir=log_dir / name, log_level='warn',
                remaps=[f'/tf:=/{name}/tf', f'/tf_static:=/{name}/tf_static'],
                params=[f'sim.scenario:={path}', f'sim.width:={width}', f'sim.height:={height}',
                        f'sim.rate:={args.rate}', 'memory.persist:=true',
                        f'memory.store_dir:={store / name}',
                        'memory.consolidation_period:=10.0', 'memory.noise_support:=3',
                        f'memory.fleet.uri:={uri}', f'memory.fleet.robot_id:={name}',
                        f'memory.fleet.sync_period:={args.sync_period}'])
            robots.append(Robot(name, path, launcher))
        from engram_ros.ros.client import spinning_node
        with spinning_node('engram_fleet_demo') as node:
            code = run(node, robots, server, args, started)
    except KeyboardInterrupt:
        print('\ninterrupted')
    except RuntimeError as exc:
        print(f'\n{exc}', file=sys.stderr)
    finally:
        codes = {f'{robot.name}/{name}': code for robot in robots
                 for name, code in robot.launcher.stop().items()}
        if server.proc is not None:
            codes['fleet serve'] = server.stop()
        print('Stopped ' + ', '.join(f'{name} ({code})' for name, code in codes.items())
              + ' (exit codes).')
        signal.signal(signal.SIGTERM, previous)
        if args.store is None:
            shutil.rmtree(store, ignore_errors=True)
    print(f'Fleet demo took {time.monotonic() - started:.0f} s (load average '
          f'{os.getloadavg()[0]:.1f}).')
    return code


def run(node, robots: list[Robot], server: FleetServer, args, started: float) -> int:
    from engram_ros.ros.client import MemoryClient
    from engram_ros.sim.demo import Watcher
    from engram_ros.srv import Recall

    scope_fleet = Recall.Request.SCOPE_FLEET
    for i, robot in enumerate(robots):
        robot.watcher = Watcher(node, robot.namespace)
        robot.client = MemoryClient(node, robot.namespace)
        robot.progress = Progress(f'  {robot.name}', position=i)
    owner, asker = robots
    for robot in robots:
        robot.launcher.start()
    for robot in robots:
        robot.client.wait_for_services(timeout=60.0)
    lag = SyncLag()
    mug_query = {'tags_all': [f'label:{MUG}'], 'kinds': ['object'], 'k': 5}
    done_at = 0.0
    try:
        while True:
            tick = time.monotonic()
            for robot in robots:
                died = robot.launcher.check()
                if died is not None:
                    raise RuntimeError(
                        f'{robot.name}\'s {died.spec.name} stopped unexpectedly (exit code '
                        f'{died.returncode}); its log ends:\n'
                        + log_tail(robot.launcher.log_dir / f'{died.spec.name}.log'))
                if robot.status():
                    robot.progress.update(robot.status())
            if not server.running():
                raise RuntimeError('engram fleet serve stopped unexpectedly; its log ends:\n'
                                   + log_tail(server.log_path))
            if not lag.stored:
                mugs = [e for e in owner.recall(**mug_query).engrams if e.label == MUG]
                if mugs:
                    lag.stored, lag.seen = time.time(), min(seconds(e.first_seen) for e in mugs)
            elif not lag.shared:
                if seen_by(asker.recall(scope_fleet, **mug_query), owner.name):
                    lag.shared = time.time()
            if not done_at and all(robot.status().get('done') for robot in robots):
                done_at = time.monotonic()
            # after the patrols, the sync-lag poll gets a few sync periods more
            if done_at and (lag.shared or not lag.stored
                            or time.monotonic() - done_at > 3 * args.sync_period + 10.0):
                break
            if time.monotonic() - started > args.timeout:
                raise RuntimeError('the patrols did not finish in time')
            time.sleep(max(0.0, POLL - (time.monotonic() - tick)))
    finally:
        for robot in robots:
            robot.progress.close()
    for robot in robots:
        settle(robot.client)
        robot.client.consolidate()
    fleet_agrees(owner, asker, scope_fleet, mug_query, timeout=3 * args.sync_period + 10.0)
    consolidate_fleet(server)
    return answer(robots, lag, args, scope_fleet)


def consolidate_fleet(server: FleetServer) -> None:
    """What both robots saw (a table through a doorway) merged once, as ``engram fleet
    consolidate URI --lock FILE`` does (the served file is the server's: the lock sits beside
    it); its outcome printed."""
    from engram_ros.core.fleet.consolidate import run_consolidation
    from engram_ros.core.fleet.lease import LeaseRefused
    try:
        result = run_consolidation(server.uri, holder='fleet-demo',
                                   lock_path=server.path.with_suffix('.consolidate.lock'))
    except (LeaseRefused, ValueError, RuntimeError) as exc:
        print(f'\nFleet consolidation did not run: {exc}')
        return
    print(f'\nFleet consolidation (engram fleet consolidate): {result.status}: {result.message}'
          f' (lease token {result.token}).')


def settle(client, timeout: float = 20.0) -> None:
    """Wait until the memory's count of engrams stops changing (perception flushing)."""
    previous, stable_since = -1, time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        count = sum(len(client.recall(kinds=[kind], k=100).engrams)
                    for kind in ('place', 'object', 'audio'))
        if count != previous:
            previous, stable_since = count, time.monotonic()
        elif time.monotonic() - stable_since > 2.0:
            return
        time.sleep(0.5)


def fleet_agrees(owner: Robot, asker: Robot, scope_fleet: int, query: dict,
                 timeout: float) -> bool:
    """Wait until the asker's fleet answer holds exactly the owner's own current mugs (after
    the consolidation, a merge changes ids: the next sync carries it)."""
    from engram_ros.core.fleet.ids import local_id
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        own = {e.id for e in owner.recall(**query).engrams if e.label == MUG}
        fleet = {local_id(e.id) for e in seen_by(asker.recall(scope_fleet, **query), owner.name)
                 if e.label == MUG}
        if own and own == fleet:
            return True
        time.sleep(0.5)
    print(f'(after {timeout:.0f} s robot 2\'s fleet answer still differs from robot 1\'s own '
          f'mugs: a sync is late; the answers below are what the fleet holds now)')
    return False


def answer(robots: list[Robot], lag: SyncLag, args, scope_fleet: int) -> int:
    """Ask robot 2 where the mug is (fleet, then its own memory), print, draw, summarise."""
    from engram_ros.sim.demo import all_engrams

    owner, asker = robots
    with owner.watcher.lock:
        truth = dict(owner.watcher.truth)
    question = {'text': f'where is the {MUG}?', 'kinds': ['object'], 'k': 5}
    ask_fleet = f'{asker.name}, where is the {MUG}? (the fleet)'
    fleet = only(MUG, asker.recall(scope_fleet, question=ask_fleet, **question))
    # no scope: this robot's own memory (SCOPE_ROBOT, Recall's default)
    own = only(MUG, asker.recall(question=f'{asker.name}, where is the {MUG}? (its own memory)',
                                 **question))
    kept = {r.name: all_engrams(r.client) for r in robots}
    for r in robots:
        status = r.status()
        with r.watcher.lock:
            memory, seen = dict(r.watcher.memory), dict(r.watcher.perception)
        print(f'{r.name} patrolled {status.get("laps")} laps ({status.get("total_frames")} '
              f'frames; perception placed {seen.get("frames_posed_by_tf", "?")} from TF and '
              f'dropped {seen.get("jobs_dropped", "0")} jobs it had no time for) and keeps '
              f'{len(kept[r.name]["place"])} places, {len(kept[r.name]["object"])} objects, '
              f'{len(kept[r.name]["audio"])} sounds; fleet: {memory.get("fleet", "?")}, '
              f'{memory.get("fleet.uploaded", "?")} uploads.')
    for a in (fleet, own):
        print(f'\n> {a.question}')
        print(f'  {summary_line(a, truth, asker.name)}')
        if a.engrams:
            print(fleet_table(a, truth))
    print(f'\n{lag.line()}')
    trajectories = {}
    for r in robots:
        with r.watcher.lock:
            trajectories[r.name] = list(r.watcher.trajectory)
    draw_fleet(args.png, truth, trajectories, kept, [fleet, own])
    print(f'\nWho saw what, drawn: {args.png}')
    if args.summary is not None:
        args.summary.write_text(json.dumps({
            'fleet_answer': [engram_record(e, r, truth) for e, r in zip(fleet.engrams,
                                                                         fleet.robots)],
            'own_answer': [engram_record(e, asker.name, truth) for e in own.engrams],
            'sync': asdict(lag), 'sync_lag_s': lag.lag(),
            'sighting_to_answer_s': lag.sighting_to_answer(),
            'mug_truth': next(([o['position'][0], o['position'][1]]
                               for o in truth.get('objects', []) if o['label'] == MUG), None),
        }, indent=2))
    if not seen_by(fleet, owner.name):
        print(f'{asker.name}\'s fleet answer does not hold {owner.name}\'s {MUG}: the demo\'s '
              f'point failed.', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())

