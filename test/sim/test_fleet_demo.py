"""The fleet demo (engram_ros/sim/fleet_demo.py, issue 15): its two half-house scenarios, how it
reads and prints answers with who saw what, the PNG's colour per robot, its clean stop on
Ctrl-C, and (when this build's Recall has a scope) a reduced run end to end.

The full demo (two laps each, ~2 minutes on 2 cores) is ``./tools/demo.sh --fleet``; the end
to end test here runs one lap each (the same code, fewer frames).
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip('engram_ros.msg')

from engram_ros.core.storage import MARKER_NAME  # noqa: E402
from engram_ros.msg import Engram  # noqa: E402
from engram_ros.sim import fleet_demo  # noqa: E402
from engram_ros.sim.demo import Answer  # noqa: E402
from engram_ros.sim.demo_picture import draw_fleet  # noqa: E402
from engram_ros.sim.demo_picture import ROBOT_COLOURS  # noqa: E402
from engram_ros.sim.scenario import load_scenario  # noqa: E402

from conftest import ROOT  # noqa: E402
from conftest import wait_for  # noqa: E402

SOUTH = {'kitchen', 'living_room'}
NORTH = {'hallway', 'bedroom', 'office'}
TRUTH = {
    'rooms': [{'name': 'kitchen', 'min': [0.0, 0.0], 'max': [4.0, 4.5]},
              {'name': 'hallway', 'min': [0.0, 4.5], 'max': [4.0, 6.0]}],
    'walls': [[0.0, 4.5, 1.0, 4.5, 0.1]],
    'objects': [{'label': 'mug', 'position': [2.2, 0.8, 0.63]}],
}


def engram(engram_id: int, label: str, x: float, y: float, seen: int = 4) -> Engram:
    msg = Engram(id=engram_id, kind='object', label=label, observation_count=seen,
                 tier='long' if seen > 1 else 'short')
    msg.pose.pose.position.x, msg.pose.pose.position.y = x, y
    return msg


def rooms_along(world, route) -> set[str]:
    """Every room the closed route passes through, sampled every 5 cm along each leg."""
    rooms = set()
    for (x0, y0), (x1, y1) in zip(route, route[1:] + route[:1]):
        steps = max(1, int(math.hypot(x1 - x0, y1 - y0) / 0.05))
        for i in range(steps + 1):
            t = i / steps
            rooms.add(world.room_at(x0 + t * (x1 - x0), y0 + t * (y1 - y0)))
    return rooms


@pytest.mark.parametrize('name, half', [('fleet_south', SOUTH), ('fleet_north', NORTH)])
def test_each_robot_keeps_to_its_half_of_the_house(name: str, half: set[str]) -> None:
    scenario = load_scenario(name)
    assert scenario.world.name == 'house' and not scenario.events
    assert rooms_along(scenario.world, list(scenario.route)) <= half


def test_the_mug_is_only_in_robot_1s_half() -> None:
    south, north = load_scenario('fleet_south'), load_scenario('fleet_north')
    for scenario, half in ((south, SOUTH), (north, NORTH)):
        mugs = [o for o in scenario.world.objects if o.label == 'mug']
        assert len(mugs) == 1   # the same house: the one mug, in the kitchen
        assert (scenario.world.room_at(*mugs[0].position[:2]) in half) == (scenario is south)
    # no label swaps or invented boxes: robot 2 cannot get a "mug" of its own from noise
    assert north.detector.label_noise == 0.0 and north.detector.false_positives == 0.0


def test_the_fleet_table_and_summary_say_who_saw_it_and_how_far_from_the_truth() -> None:
    answer = Answer('robot2, where is the mug? (the fleet)',
                    [engram(7, 'mug', 2.3, 0.8, seen=5)], [0.91], robots=['robot1'])
    text = fleet_demo.fleet_table(answer, TRUTH)
    header, _, row = text.splitlines()
    assert header.split() == ['what', 'seen', 'by', 'room', 'where', '[m,', 'map]', 'seen',
                              'tier', 'score', 'off', 'truth', '[m]']
    assert row.split() == ['mug', 'robot1', 'kitchen', '(2.30,', '0.80,', '0.00)', '5', 'long',
                           '0.91', '0.10']
    assert fleet_demo.summary_line(answer, TRUTH, 'robot2') == (
        'The mug is in the kitchen: robot1 saw it 5 times, 0.10 m from where it really is.')
    assert fleet_demo.seen_by(answer, 'robot1') == answer.engrams
    assert fleet_demo.seen_by(answer, 'robot2') == []
    record = fleet_demo.engram_record(answer.engrams[0], 'robot1', TRUTH)
    assert record['robot'] == 'robot1' and record['off_truth_m'] == pytest.approx(0.1)


def test_an_answer_without_the_thing_says_so_not_the_recalls_summary_of_others() -> None:
    answer = Answer('robot2, where is the mug? (its own memory)',
                    [engram(1, 'table', 2.6, 0.9), engram(2, 'bowl', 2.6, 1.2)], [0.5, 0.4],
                    '2 of 2 candidates', robots=['robot2', 'robot2'])
    fleet_demo.only('mug', answer)
    assert answer.engrams == [] and answer.robots == [] and answer.scores == []
    assert fleet_demo.summary_line(answer, TRUTH, 'robot2') == (
        'robot2 does not know: no mug in what it recalled (2 other things).')


def test_keep_keeps_robots_aligned_with_the_engrams() -> None:
    answer = Answer('q', [engram(1, 'mug', 1, 1), engram(2, 'bowl', 1, 1),
                          engram(3, 'mug', 2, 2)], [0.9, 0.8, 0.7],
                    robots=['robot1', 'robot2', 'robot3'])
    answer.keep(lambda e: e.label == 'mug')
    assert [e.id for e in answer.engrams] == [1, 3]
    assert answer.robots == ['robot1', 'robot3'] and answer.scores == [0.9, 0.7]


def test_the_sync_lag_runs_from_robot_1s_memory_to_robot_2s_answer() -> None:
    lag = fleet_demo.SyncLag(seen=100.0, stored=101.5, shared=103.0)
    assert lag.lag() == pytest.approx(1.5)
    assert lag.sighting_to_answer() == pytest.approx(3.0)
    assert lag.line().startswith('Sync lag: 1.5 s from robot 1\'s memory storing the mug')
    assert fleet_demo.SyncLag(seen=100.0, stored=101.5).lag() is None
    assert 'never answered' in fleet_demo.SyncLag(seen=100.0, stored=101.5).line()
    assert 'never stored' in fleet_demo.SyncLag().line()


def test_the_picture_colours_each_engram_by_the_robot_that_saw_it(tmp_path: Path) -> None:
    cv2 = pytest.importorskip('cv2')
    path = tmp_path / 'fleet.png'
    engrams = {'robot1': {'object': [engram(1, 'mug', 2.2, 0.8)]},
               'robot2': {'object': [engram(2, 'shoes', 0.5, 5.5)]}}
    trajectories = {'robot1': [(1.0, 2.0), (3.0, 2.0)], 'robot2': [(1.0, 5.2), (3.0, 5.2)]}
    colours = draw_fleet(path, TRUTH, trajectories, engrams, [])
    assert colours == {'robot1': ROBOT_COLOURS[0], 'robot2': ROBOT_COLOURS[1]}
    img = cv2.imread(str(path))
    scale, x0, y1 = 70.0, -0.5, 6.5           # draw_fleet's scale; the rooms' bounds + 0.5 m

    def at(x: float, y: float) -> tuple[int, ...]:
        return tuple(int(v) for v in img[int((y1 - y) * scale), int((x - x0) * scale)])

    assert at(2.2, 0.8) == ROBOT_COLOURS[0]
    assert at(0.5, 5.5) == ROBOT_COLOURS[1]
    assert ROBOT_COLOURS[0] != ROBOT_COLOURS[1]
    # nothing in either colour where neither robot saw anything
    assert at(3.5, 3.5) not in ROBOT_COLOURS and np.any(img != 255)


#: An environment variable the test's demo gets, and every process it starts inherits.
MARK = 'ENGRAM_FLEET_DEMO_TEST'


def _demo_processes(tmp_path: Path) -> list[int]:
    """Pids of the processes of this test's demo: the demo and everything it started (their
    environment carries :data:`MARK` = ``tmp_path``), wherever they were reparented."""
    mark = f'{MARK}={tmp_path}'.encode()
    pids = []
    for entry in Path('/proc').iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / 'environ').read_bytes().split(b'\0')
        except OSError:
            continue
        if mark in environ:
            pids.append(int(entry.name))
    return pids


def _start_demo(tmp_path: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, '-m', 'engram_ros.sim.fleet_demo', '--store', str(tmp_path / 'store'),
         '--png', str(tmp_path / 'fleet.png'), '--summary', str(tmp_path / 'summary.json'),
         *args], cwd=ROOT, stdout=open(tmp_path / 'demo.log', 'w'), stderr=subprocess.STDOUT,
        env={**os.environ, MARK: str(tmp_path)})


def _wait_for_both_robots(demo: subprocess.Popen, tmp_path: Path) -> None:
    """Until both robots' memories have made their stores (the fleet server is up then)."""
    log = tmp_path / 'demo.log'
    assert wait_for(lambda: all((tmp_path / 'store' / r / MARKER_NAME).exists()
                                for r in ('robot1', 'robot2')) or demo.poll() is not None,
                    timeout=120.0, period=0.5), log.read_text()
    assert demo.poll() is None, log.read_text()
    # the demo, fleet serve, each robot's simulator, perception and memory
    assert len(_demo_processes(tmp_path)) >= 8, log.read_text()


def test_ctrl_c_stops_every_process_the_demo_started(tmp_path: Path) -> None:
    pytest.importorskip('pybullet')
    demo = _start_demo(tmp_path)
    log = tmp_path / 'demo.log'
    try:
        _wait_for_both_robots(demo, tmp_path)
        demo.send_signal(signal.SIGINT)
        demo.wait(120.0)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    text = log.read_text()
    assert 'interrupted' in text
    # each stopped by the demo with a clean exit (not killed when the demo died)
    assert ('Stopped robot1/memory (0), robot1/perception (0), robot1/sim (0), robot2/memory '
            '(0), robot2/perception (0), robot2/sim (0), fleet serve (0)') in text, text
    assert wait_for(lambda: not _demo_processes(tmp_path), timeout=10.0), (
        _demo_processes(tmp_path), log.read_text())


def test_a_node_that_dies_stops_the_demo_and_every_other_process(tmp_path: Path) -> None:
    pytest.importorskip('pybullet')
    demo = _start_demo(tmp_path)
    log = tmp_path / 'demo.log'
    try:
        _wait_for_both_robots(demo, tmp_path)
        # robot 2's simulator crashes (only processes of this test's own demo are named so)
        sims = [pid for pid in _demo_processes(tmp_path)
                if 'engram_ros.sim.node' in Path(f'/proc/{pid}/cmdline').read_text()
                and '/robot2' in Path(f'/proc/{pid}/cmdline').read_text()]
        assert len(sims) == 1, log.read_text()
        os.kill(sims[0], signal.SIGKILL)
        code = demo.wait(120.0)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    text = log.read_text()
    assert code == 1, text
    assert 'robot2\'s sim stopped unexpectedly (exit code -9)' in text, text
    assert ('Stopped robot1/memory (0), robot1/perception (0), robot1/sim (0), robot2/memory '
            '(0), robot2/perception (0), robot2/sim (-9), fleet serve (0)') in text, text
    assert wait_for(lambda: not _demo_processes(tmp_path), timeout=10.0), (
        _demo_processes(tmp_path), text)


def test_robot_2_answers_with_robot_1s_mug_from_the_fleet(tmp_path: Path) -> None:
    """The demo as the README runs it (two laps each: with one, a machine loaded past the
    demo's own load dropped every look at the mug once): robot 2's fleet-scoped answer is
    robot 1's mug, near the truth; its own memory has none; the sync lag was measured;
    nothing is left running."""
    pytest.importorskip('pybullet')
    from engram_ros.srv import Recall
    assert hasattr(Recall.Request, 'SCOPE_FLEET')
    demo = _start_demo(tmp_path, '--laps', '2')
    log = tmp_path / 'demo.log'
    try:
        code = demo.wait(400.0)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert code == 0, log.read_text()[-4000:]
    summary = json.loads((tmp_path / 'summary.json').read_text())
    fleet = summary['fleet_answer']
    assert fleet and fleet[0]['robot'] == 'robot1' and fleet[0]['label'] == 'mug', summary
    assert fleet[0]['off_truth_m'] < 0.5, summary
    assert summary['own_answer'] == [], summary
    assert summary['sync_lag_s'] is not None and summary['sync_lag_s'] >= 0.0, summary
    assert (tmp_path / 'fleet.png').stat().st_size > 0
    # Both robots saw things through doorways: the fleet consolidation ran and merged some.
    assert re.search(r'Fleet consolidation \(engram fleet consolidate\): ok: merged [1-9]',
                     log.read_text()), log.read_text()[-2000:]
    assert not _demo_processes(tmp_path), log.read_text()[-2000:]
