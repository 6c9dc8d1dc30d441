#!/usr/bin/env python3
"""Quality benchmark (issue 14): how right is a memory built from a patrol, against the
simulator's ground truth.

For each scenario (``benchmarks/quality/house.yaml``, ``workshop.yaml`` and the held-aside
``heldout/house_heldout.yaml``, reported separately) and each run:

1. the simulator records the patrol to an MCAP bag (``engram_launch sim --without perception
   --without memory --record PATH --record-raw``, not real time, 320x240 as the demo), the
   detector seeded with the scenario's seed + the run's index. Bags are cached under
   ``--cache`` (gitignored) by scenario, seed, size and a hash of the scenario text and of the
   simulator's code, so a rerun skips recording;
2. the bag is ingested into a new store with :func:`engram_ros.apps.bag_ingest.ingest_bag` (the
   code of ``engram ingest-bag``: same bag, same memory), parameters ``config/engram.yaml`` with
   ``persist: true`` and the world's rooms given to perception as the ``sim`` set gives them.
   At the end of each lap (the sim's ``lap_end_stamps``) the object engrams are snapshot;
3. scored (:mod:`quality_score`) against the ground truth the sim recorded in the bag
   (``sim/ground_truth`` after each lap's events):

   (a) top-1 within 0.5 m per label: the memory's text query "where is the <label>?" (recall
       with the memory node's text matcher, kinds ``object``), its top-1 names the thing and
       lies within 0.5 m of it now (target >= 95 %);
   (b) the questions of ``benchmarks/quality/questions.yaml`` that apply to the world, asked
       the same way, per ``via`` (table | model) and ``kind`` (>= 95 %);
   (c) ghosts: current object engrams > 1 m from every true thing they name (<= 2 %);
   (d) current object engrams per true thing (<= 1.2);
   (e) moves noticed within one visit: at the end of the lap after the move, the old belief
       ended with a successor within 0.5 m of the new place (every move), with the frames per
       lap the detector reported the thing (from the bag's ``detections``);
   (f) store size (engrams) at the end of lap 6 over lap 2 (<= 1.1);
   (g) false forgets of the label-noise rule: true things whose only engrams near them were
       forgotten as label noise, over the true things (<= 1 %).

``--live`` runs each scenario once more through the nodes (sim, perception, memory as
separate processes, real time, the sim recording truth and detections but no raw data) and
scores the store the memory node leaves: the gap between bag and live. Without lap snapshots
there, moves are judged at the end of the run and (f) is not given.

Example::

    python benchmarks/bench_quality.py --runs 3 --out docs/benchmarks/quality.json
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import hashlib
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / 'benchmarks'))

import quality_score as qs  # noqa: E402

QUALITY = ROOT / 'benchmarks' / 'quality'
SCENARIOS = {'house': QUALITY / 'house.yaml', 'workshop': QUALITY / 'workshop.yaml',
             'heldout': QUALITY / 'heldout' / 'house_heldout.yaml'}
START_TIME = 1700000000.0


def loadavg() -> str:
    return ' '.join(Path('/proc/loadavg').read_text().split()[:3])


def uptime() -> str:
    try:
        return subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()
    except OSError:
        return 'load average: ' + loadavg()


# ----------------------------------------------------------------------------- recording
def sim_version() -> str:
    """A hash of the code and message definitions that make the simulator's bags."""
    h = hashlib.sha256()
    files = sorted((ROOT / 'engram_ros' / 'sim').glob('*.py')) + sorted(
        (ROOT / 'msg').glob('*.msg')) + [ROOT / 'engram_ros' / 'ros' / 'bag.py']
    for path in files:
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()[:12]


def seeded_scenario(source: Path, run: int, work: Path, laps: int = 0) -> tuple[Path, int]:
    """A copy of ``source`` whose detector seed is its own + ``run`` (and ``laps`` when
    given); returns it and the seed."""
    doc = yaml.safe_load(source.read_text())
    detector = doc.setdefault('detector', {})
    seed = int(detector.get('seed', 0)) + run
    detector['seed'] = seed
    if laps:
        doc['laps'] = laps
        doc['events'] = [e for e in doc.get('events', []) if e['after_lap'] < laps]
    work.mkdir(parents=True, exist_ok=True)
    path = work / f'{source.stem}_seed{seed}.yaml'
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path, seed


def ros_env() -> dict:
    """Our nodes on a domain of their own, on this host only: other runs on the machine must
    neither see our /tf nor feed our memory."""
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    env.setdefault('ROS_DOMAIN_ID', str(100 + os.getpid() % 100))
    return env


def launch(args: list[str], done: Path, log: Path, timeout: float) -> float:
    """Run the launcher until ``done`` exists, then stop it (SIGINT: the memory closes its
    store); the seconds it took."""
    start = time.perf_counter()
    with open(log, 'w') as out:
        proc = subprocess.Popen([sys.executable, '-m', 'engram_ros.apps.launcher', *args],
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=ros_env())
    try:
        while not done.exists():
            if proc.poll() is not None:
                raise SystemExit(f'the launcher exited ({proc.returncode}) before {done} was '
                                 f'written; log: {log}')
            if time.perf_counter() - start > timeout:
                raise SystemExit(f'{done} not written after {timeout:.0f} s; log: {log}')
            time.sleep(1.0)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return time.perf_counter() - start


def record(scenario: Path, bag: Path, width: int, height: int, log: Path) -> float:
    args = ['sim', '--without', 'perception', '--without', 'memory', '--namespace',
            '/quality', '-p', f'sim.scenario:={scenario}',
            '-p', f'sim.width:={width}', '-p', f'sim.height:={height}',
            '-p', 'sim.realtime:=false', '-p', 'sim.wait_for_subscribers:=false',
            '-p', f'sim.start_time:={START_TIME}', '--record', str(bag), '--record-raw']
    return launch(args, bag / 'metadata.yaml', log, timeout=3600)


# ----------------------------------------------------------------------------- the bag's truth
def bag_truth(bag: Path) -> dict:
    """Lap ends, ground truth after each change and detections per label and lap, from the
    bag the sim recorded (its topics in any namespace)."""
    from engram_ros.ros.bag import BagReader
    with BagReader(bag) as reader:
        topics = {t for t in reader.topics
                  if t.endswith(('/sim/ground_truth', '/sim/status', '/detections'))}
        truths, status, detections = [], {}, []
        for topic, log_ns, msg in reader.messages(topics):
            if topic.endswith('/sim/ground_truth'):
                truths.append((log_ns * 1e-9, json.loads(msg.data)))
            elif topic.endswith('/sim/status'):
                status = json.loads(msg.data)
            else:
                stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
                detections.append((stamp, sorted({d.label for d in msg.detections})))
        color = [t for t in reader.topics if t.endswith('/camera/color/image_raw')]
    lap_ends = [float(t) for t in status.get('lap_end_stamps', [])]
    seen = collections.defaultdict(lambda: collections.Counter())
    for stamp, labels in detections:
        lap = 1 + sum(1 for end in lap_ends if stamp > end + 1e-6)
        for label in labels:
            seen[label][lap] += 1
    return {'lap_ends': lap_ends, 'truths': truths, 'final': truths[-1][1],
            'namespace': color[0][:-len('/camera/color/image_raw')] if color else '',
            'frames_seen': {k: dict(v) for k, v in seen.items()}}


def truth_at(truths: list, t: float) -> dict:
    """The ground truth in force at time ``t`` (the last one logged at or before it)."""
    current = truths[0][1]
    for stamp, truth in truths:
        if stamp <= t + 1e-6:
            current = truth
    return current


def thing(truth: dict, label: str) -> dict | None:
    return next((o for o in truth['objects'] if o['label'] == label), None)


# ----------------------------------------------------------------------------- the memory
def params_file(world_rooms: list[str], path: Path, overrides: dict | None = None) -> Path:
    """``config/engram.yaml`` with ``persist: true`` and perception given what the ``sim``
    set gives it (camera mount, rooms), and ``overrides`` of perception parameters (dotted
    names, e.g. ``objects.free_space_min``)."""
    from engram_ros.sim.launch_set import SIM_SHARED
    doc = yaml.safe_load((ROOT / 'config' / 'engram.yaml').read_text())
    doc['/**/engram_memory']['ros__parameters']['persist'] = True
    perception = doc['/**/engram_perception']['ros__parameters']
    perception.update(camera_xyz=SIM_SHARED['camera_xyz'],
                      camera_rpy=SIM_SHARED['camera_rpy'], camera_convention='optical',
                      rooms=world_rooms)
    for name, value in (overrides or {}).items():
        *groups, leaf = name.split('.')
        node = perception
        for group in groups:
            node = node.setdefault(group, {})
        node[leaf] = value
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def object_beliefs(store) -> list[qs.Belief]:
    return [qs.belief_of(e) for e in store.storage.iter_all() if e.kind == 'object']


def open_like_the_node(store_dir: Path, params: Path):
    """The store as the memory node opens it, with the node's text matcher (the sentence
    model behind free-text recall)."""
    from engram_ros.apps.bag_ingest import settings
    from engram_ros.core.semantic import SemanticTags
    from engram_ros.perception.text import MODEL_DIM
    from engram_ros.perception.text import TextEncoder
    from engram_ros.ros import memory_parameters
    _, memory = settings(params, store_dir)
    store, _ = memory_parameters.open_store(lambda name: memory[name])
    encoder = TextEncoder(dim=MODEL_DIM)
    store.text_matcher = SemanticTags(encoder.embed, threshold=memory['semantic_threshold'])
    return store


def ask(store, text: str, now: float) -> tuple[qs.Belief | None, str]:
    """Top-1 current object belief for ``text`` through the memory's text query."""
    from engram_ros.core.query import RecallQuery
    result = store.recall(RecallQuery(text=text, kinds=('object',), k=5), now=now,
                          requester='bench:quality')
    if not result.hits:
        return None, result.message
    return qs.belief_of(result.hits[0].engram), result.message


def score_store(store, truth: dict, questions: list[dict], now: float) -> dict:
    """(a)-(d) on the memory as it is now."""
    final = object_beliefs(store)
    current = [b for b in final if b.current]
    per_label = {}
    for obj in truth['objects']:
        answer, _ = ask(store, f'where is the {obj["label"]}?', now)
        per_label[obj['label']] = {
            'right': qs.top1_right(answer, obj),
            'answer': None if answer is None else answer.label,
            'error_m': None if answer is None else round(qs.distance(answer, obj), 3)}
    results = []
    for q in questions:
        row = {'ask': q['ask'], 'kind': q['kind'], 'via': q['via'],
               'applicable': qs.applicable(q, truth)}
        answer, message = ask(store, q['ask'], now)
        row.update(qs.answered(q, answer, truth))
        row['answer'] = None if answer is None else answer.label
        row['message'] = message
        results.append(row)
    ghosts = qs.ghosts(current, truth)
    right = sum(r['right'] for r in per_label.values())
    return {
        'top1': {'right': right, 'labels': len(per_label),
                 'pct': round(100.0 * right / max(1, len(per_label)), 1),
                 'per_label': per_label},
        'questions': qs.question_summary(results), 'question_rows': results,
        'ghosts': {'n': len(ghosts), 'current': len(current),
                   'pct': round(100.0 * len(ghosts) / max(1, len(current)), 1),
                   'which': [f'{g.label}@({g.x:.1f},{g.y:.1f})' for g in ghosts]},
        'per_thing': qs.per_thing(current, truth),
        'current_objects': len(current), 'true_things': len(truth['objects']),
        'engrams': len(store)}


def moves(meta: dict, snapshots: dict[int, list], laps: int) -> list[dict]:
    """(e) for every move the sim applied."""
    out = []
    final = meta['final']
    for event in final.get('applied', []):
        if event['action'] != 'move':
            continue
        lap, label = event['after_lap'], event['label']
        lap_ends = meta['lap_ends']
        old = thing(truth_at(meta['truths'], lap_ends[lap - 1]), label)
        new = thing(truth_at(meta['truths'], lap_ends[min(lap, len(lap_ends) - 1)]), label)
        frames = meta['frames_seen'].get(label, {})
        row = {'label': label, 'after_lap': lap,
               'frames_per_lap': [frames.get(k, 0) for k in range(1, laps + 1)],
               'noticed_by_lap': None}
        if lap in snapshots and lap + 1 in snapshots:
            row.update(qs.move_noticed(label, old, new, snapshots[lap], snapshots[lap + 1]))
            for k in range(lap + 1, laps + 1):
                if k in snapshots and qs.move_noticed(label, old, new, snapshots[lap],
                                                      snapshots[k])['noticed']:
                    row['noticed_by_lap'] = k
                    break
        elif 'end' in snapshots:     # live: everything the memory ever held, against its end
            ever = [replace(b, valid_to=None) for b in snapshots['end']]
            row.update(qs.move_noticed(label, old, new, ever, snapshots['end']))
        out.append(row)
    return out


@contextlib.contextmanager
def label_noise_forgets():
    """Record every engram consolidation forgets as label noise, as it was just before, with
    the memory's time: a list of ``(now, Belief)`` filled while the block runs."""
    from engram_ros.core.memory import consolidation
    rule = consolidation._label_noise
    forgotten: list[tuple[float, qs.Belief]] = []

    def recording(store, engrams, plan, now):
        pairs = rule(store, engrams, plan, now)
        ids = [noise for noise, _ in pairs]
        forgotten.extend((now, qs.belief_of(plan.changed.get(e.id, e)))
                         for e in store.storage.get(ids))
        return pairs

    consolidation._label_noise = recording
    try:
        yield forgotten
    finally:
        consolidation._label_noise = rule


def false_forgets(meta: dict, forgotten: list, snapshots: dict, final: list) -> dict:
    """(g) the label-noise rule's false forgets (:func:`quality_score.false_forgets`), per
    lap against the truth of that lap and the memory at its end (the final memory for the
    last consolidation); a thing lost in any lap counts once."""
    lap_ends = meta['lap_ends']
    by_lap: dict[int, list] = {}
    for now, belief in forgotten:
        lap = 1 + sum(1 for end in lap_ends if now > end + 1e-6)
        by_lap.setdefault(lap, []).append((now, belief))
    lost: set[str] = set()
    naming = 0
    for lap, rows in sorted(by_lap.items()):
        truth = truth_at(meta['truths'], min(now for now, _ in rows))
        after = snapshots.get(lap, final)
        got = qs.false_forgets([b for _, b in rows], truth, after)
        lost.update(got['things_lost'])
        naming += got['naming_real']
    things = len(meta['final']['objects'])
    return {'forgotten': len(forgotten), 'naming_real': naming, 'things_lost': sorted(lost),
            'things': things, 'rate_pct': round(100.0 * len(lost) / max(1, things), 2)}


def run_bag(name: str, source: Path, run: int, args, questions: list[dict]) -> dict:
    from engram_ros.apps.bag_ingest import ingest_bag
    from engram_ros.sim.scenario import load_scenario
    cache = args.cache
    scenario, seed = seeded_scenario(source, run, cache / 'scenarios', args.laps)
    text_hash = hashlib.sha256(scenario.read_bytes()).hexdigest()[:8]
    bag = cache / f'{name}-seed{seed}-{args.width}x{args.height}-{text_hash}-sim{sim_version()}'
    recorded_s = None
    laps = load_scenario(scenario).laps
    if not (bag / 'metadata.yaml').exists():
        # Recorded under another name and renamed once whole: a cut-short recording (its bag
        # closed cleanly, metadata and all) is never taken for the scenario's bag.
        partial = bag.with_name(bag.name + '.partial')
        shutil.rmtree(partial, ignore_errors=True)
        print(f'[{name} run {run}] recording {bag.name}', flush=True)
        recorded_s = round(record(scenario, partial, args.width, args.height,
                                  cache / f'{bag.name}.log'), 1)
        got = len(bag_truth(partial)['lap_ends'])
        if got != laps:
            raise SystemExit(f'{partial}: {got} of {laps} laps recorded')
        partial.rename(bag)
    meta = bag_truth(bag)
    if len(meta['lap_ends']) != laps:
        raise SystemExit(f'{bag}: {len(meta["lap_ends"])} of {laps} laps; remove it')
    world = load_scenario(scenario).world
    work = Path(tempfile.mkdtemp(prefix=f'quality_{name}_'))
    try:
        params = params_file(world.room_specs(), work / 'params.yaml', args.perception_param)
        snapshots: dict = {}
        sizes: dict[int, int] = {}
        lap_of = {t: i + 1 for i, t in enumerate(meta['lap_ends'])}

        def on_lap(store, t: float) -> None:
            snapshots[lap_of[t]] = object_beliefs(store)
            sizes[lap_of[t]] = len(store)

        before = loadavg()
        started = time.perf_counter()
        print(f'[{name} run {run}] ingesting', flush=True)
        with label_noise_forgets() as forgotten:
            report = ingest_bag(bag, work / 'store', params, namespace=meta['namespace'],
                                progress=False,
                                checkpoints=meta['lap_ends'], on_checkpoint=on_lap)
        store = open_like_the_node(work / 'store', params)
        try:
            result = score_store(store, meta['final'], questions, meta['lap_ends'][-1])
            final = object_beliefs(store)
        finally:
            store.close()
        result.update(
            scenario=name, run=run, detector_seed=seed, bag=bag.name, recorded_s=recorded_s,
            ingest_wall_s=round(report.wall_seconds, 1), engrams_after_ingest=report.engrams,
            frames=report.counters.get('frames_synced', 0),
            refused={k: v for k, v in report.counters.items() if k.startswith('skipped_ghost')},
            moves=moves(meta, snapshots, laps), sizes=sizes,
            false_forgets=false_forgets(meta, forgotten, snapshots, final),
            size_ratio=qs.size_ratio(sizes, laps),
            current_objects_per_lap={k: sum(b.current for b in v)
                                     for k, v in sorted(snapshots.items())},
            loadavg_before=before, loadavg_after=loadavg(),
            wall_s=round(time.perf_counter() - started, 1))
        return result
    finally:
        if args.keep_stores:
            print(f'kept {work}')
        else:
            shutil.rmtree(work, ignore_errors=True)


def run_live(name: str, source: Path, args, questions: list[dict]) -> dict:
    """One run through the nodes in real time; the memory node's store is scored."""
    from engram_ros.sim.scenario import load_scenario
    work = Path(tempfile.mkdtemp(prefix=f'quality_live_{name}_'))
    try:
        scenario, seed = seeded_scenario(source, 0, work, args.laps)
        world = load_scenario(scenario).world
        params = params_file(world.room_specs(), work / 'params.yaml', args.perception_param)
        store_dir, bag = work / 'store', work / 'truth_bag'
        before = loadavg()
        started = time.perf_counter()
        print(f'[{name} live] running the nodes in real time', flush=True)
        launch(['sim', '--params-file', str(params), '--namespace', '/quality_live',
                '-p', f'sim.scenario:={scenario}', '-p', f'sim.width:={args.width}',
                '-p', f'sim.height:={args.height}', '-p', f'memory.store_dir:={store_dir}',
                '--record', str(bag)], bag / 'metadata.yaml', work / 'launch.log',
               timeout=3600)
        meta = bag_truth(bag)
        store = open_like_the_node(store_dir, params)
        try:
            result = score_store(store, meta['final'], questions, meta['lap_ends'][-1])
            result['moves'] = moves(meta, {'end': object_beliefs(store)},
                                    len(meta['lap_ends']))
        finally:
            store.close()
        result.update(scenario=name, run='live', detector_seed=seed,
                      loadavg_before=before, loadavg_after=loadavg(),
                      wall_s=round(time.perf_counter() - started, 1))
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ----------------------------------------------------------------------------- report
def line(r: dict) -> str:
    q = r['questions']
    via = ', '.join(f'{k} {v["answered"]}/{v["applicable"]}' for k, v in q['via'].items())
    noticed = sum(m.get('noticed', False) for m in r['moves'])
    text = (f'{r["scenario"]} run {r["run"]}: (a) top-1 {r["top1"]["right"]}/'
            f'{r["top1"]["labels"]} ({r["top1"]["pct"]} %); (b) questions '
            f'{q["all"]["answered"]}/{q["all"]["applicable"]} ({q["all"]["pct"]} %; {via}); '
            f'(c) ghosts {r["ghosts"]["n"]}/{r["ghosts"]["current"]} ({r["ghosts"]["pct"]} %); '
            f'(d) {r["per_thing"]} per thing; (e) moves noticed {noticed}/{len(r["moves"])}')
    if r.get('size_ratio') is not None:
        text += f'; (f) size lap {max(r["sizes"])}/lap 2 {r["size_ratio"]}'
    if r.get('false_forgets'):
        f = r['false_forgets']
        text += (f'; (g) false forgets {len(f["things_lost"])}/{f["things"]} things '
                 f'({f["rate_pct"]} %; {f["forgotten"]} forgotten as label noise, '
                 f'{f["naming_real"]} named a real thing)')
    return text


def override(text: str) -> tuple[str, object]:
    name, sep, value = text.partition('=')
    if not sep or not name:
        raise argparse.ArgumentTypeError(f'{text!r}: NAME=VALUE expected')
    return name, yaml.safe_load(value)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--scenario', action='append', choices=sorted(SCENARIOS),
                        help='(repeatable) default: all three')
    parser.add_argument('--runs', type=int, default=1,
                        help='runs per scenario; run i seeds the detector with seed + i')
    parser.add_argument('--first-run', type=int, default=0,
                        help='start at this run index (to add runs to an earlier --out)')
    parser.add_argument('--live', action='store_true',
                        help='also one run live through the nodes, per scenario')
    parser.add_argument('--laps', type=int, default=0,
                        help='fewer laps than the scenario (a quick check of the benchmark '
                             'itself; the figures need the scenario\'s six)')
    parser.add_argument('--width', type=int, default=320)
    parser.add_argument('--height', type=int, default=240)
    parser.add_argument('--cache', type=Path, default=ROOT / '.bench_cache' / 'quality',
                        help='recorded bags, reused while the scenario and the sim match')
    parser.add_argument('--keep-stores', action='store_true')
    parser.add_argument('--perception-param', action='append', default=[], type=override,
                        metavar='NAME=VALUE',
                        help='(repeatable) a perception parameter other than config/engram.yaml '
                             '(YAML value), e.g. objects.free_space_min=3')
    parser.add_argument('--out', type=Path, help='write the results as JSON here')
    args = parser.parse_args()
    args.perception_param = dict(args.perception_param)
    random.seed(0)
    args.cache.mkdir(parents=True, exist_ok=True)
    questions = yaml.safe_load((QUALITY / 'questions.yaml').read_text())['questions']
    from engram_ros.apps.bag_ingest import fix_threads
    fix_threads()
    git = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT,
                         capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    results = {'date': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
               'uptime_before': uptime(), 'commit': git + (' (modified)' if dirty else ''),
               'machine': f'{platform.machine()}, {os.cpu_count()} cores, no GPU',
               'command': ' '.join(['python', *sys.argv]), 'scenarios': {}}
    names = args.scenario or list(SCENARIOS)
    for name in names:
        results['scenarios'][name] = []
    # Run-major: every scenario's first run before any second one.
    for run in range(args.first_run, args.first_run + args.runs):
        for name in names:
            results['scenarios'][name].append(run_bag(name, SCENARIOS[name], run, args,
                                                      questions))
            print(line(results['scenarios'][name][-1]), flush=True)
            save(results, args.out)     # after each run: a long session keeps what it measured
    if args.live:
        for name in names:
            results['scenarios'][name].append(run_live(name, SCENARIOS[name], args, questions))
            print(line(results['scenarios'][name][-1]), flush=True)
            save(results, args.out)
    save(results, args.out)
    return 0


def save(results: dict, out: Path | None) -> None:
    results['uptime_after'] = uptime()
    results['date_after'] = time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())
    if out:
        out.write_text(json.dumps(results, indent=1) + '\n')


if __name__ == '__main__':
    sys.exit(main())
