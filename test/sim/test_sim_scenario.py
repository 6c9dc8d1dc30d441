"""Scenario files: the shipped ones load; every kind of bad input names its line and problem."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from engram_ros.sim import world as worlds
from engram_ros.sim.scenario import load_scenario
from engram_ros.sim.scenario import parse_scenario
from engram_ros.sim.scenario import scenario_dirs
from engram_ros.sim.scenario import ScenarioError

ROOT = Path(__file__).resolve().parents[2]


def parse(text: str):
    return parse_scenario(textwrap.dedent(text).lstrip('\n'), source='bad.yaml')


@pytest.mark.parametrize('name', sorted(p.stem for d in scenario_dirs() if d.is_dir()
                                        for p in d.glob('*.yaml')))
def test_shipped_scenarios_load(name):
    scenario = load_scenario(name)
    assert scenario.laps >= 1 and len(scenario.route) >= 2


@pytest.mark.parametrize('world_name', sorted(worlds.WORLDS))
def test_every_built_in_world_passes_the_scenario_checks(world_name):
    """Objects inside the walls and rooms, the route clear of walls: the same checks a file
    gets, so a new world cannot ship with a waypoint in a wall."""
    scenario = parse_scenario(f'world: {world_name}\n', source=f'{world_name}.yaml')
    assert scenario.world.name == world_name
    assert {scenario.world.room_at(*o.position[:2]) for o in scenario.world.objects} <= {
        r.name for r in scenario.world.rooms}


QUALITY = ROOT / 'benchmarks' / 'quality'


@pytest.mark.parametrize('path', sorted(p for p in QUALITY.rglob('*.yaml')
                                        if p.name != 'questions.yaml'))
def test_quality_benchmark_scenarios_load(path):
    scenario = load_scenario(path)
    assert scenario.laps >= 6 and len(scenario.events) >= 5


def test_house_has_rooms_objects_sounds_and_an_event():
    scenario = load_scenario('house')
    world = scenario.world
    assert {'kitchen', 'living_room', 'bedroom', 'hallway'} <= {r.name for r in world.rooms}
    objects = [o for o in world.objects]
    assert len({o.label for o in objects}) >= 15
    assert {s.synth for s in world.sounds} == {'chime', 'beep', 'speech'}
    move = [e for e in scenario.events if e.action == 'move'][0]
    assert (move.label, move.room, move.after_lap) == ('mug', 'bedroom', 2)


def test_defaults_and_overrides():
    scenario = parse("""
        world: small
        laps: 2
        detector: {miss_rate: 0.25, seed: 3}
        route: [[1.0, 2.0], [4.5, 2.0]]
        """)
    assert scenario.world.name == 'small' and scenario.laps == 2
    assert scenario.detector.miss_rate == 0.25 and scenario.detector.label_noise == 0.0
    assert scenario.route == ((1.0, 2.0), (4.5, 2.0))


@pytest.mark.parametrize('text, line, words', [
    ('world: small\nlapz: 2\n', 2, ["unknown key 'lapz'", 'laps']),
    ('world: small\ndetector:\n  miss_rate: 0.1\n  recall: 0.9\n', 4,
     ["unknown key 'recall'", 'detector']),
    ('world: castle\n', 1, ["unknown world 'castle'", 'house']),
    ('world: small\nlaps: two\n', 2, ['laps must be an integer']),
    ('world: small\nlaps: 0\n', 2, ['laps must be in']),
    ('world: small\ndetector: {miss_rate: 1.5}\n', 2, ['miss_rate must be in']),
    ('world: small\nlaps: 1\nlaps: 2\n', 3, ["duplicate key 'laps'", 'line 2']),
    ('world: small\nroute:\n  - [1.0, 2.0]\n  - [3.0, 1.0]\n  - [4.5, 2.0]\n', 4,
     ['waypoint 2 at (3, 1) is inside the wall']),
    ('world: small\nroute:\n  - [1.0, 2.0]\n  - [7.0, 2.0]\n', 4,
     ['waypoint 2 at (7, 2) is outside the house']),
    ('world: small\nroute:\n  - [1.0, 1.0]\n  - [4.5, 1.0]\n', 4,
     ['leg from waypoint 1 to waypoint 2', 'through the wall']),
    ('world: small\nroute:\n  - [1.0, 2.0]\n  - [4.5, 2.0]\n  - [4.5, 1.0]\n', 3,
     ['closing leg from waypoint 3 back to waypoint 1']),
    ('world: small\nroute:\n  - [1.0, 2.0]\n  - [4.5]\n', 4, ['a waypoint must be a list of 2']),
    ('world: small\nobjects:\n  - label: vase\n    asset: no/such/vase.urdf\n'
     '    position: [1.0, 1.0, 0.0]\n', 4, ["asset 'no/such/vase.urdf'", 'not found']),
    ('world: small\nobjects:\n  - label: vase\n    position: [9.0, 1.0, 0.0]\n', 3,
     ["object 'vase' at (9, 1) is outside the house"]),
    ('world: small\nobjects:\n  - label: mug\n    position: [1.0, 1.0, 0.0]\n', 3,
     ["'mug' is already in the world"]),
    ('world: small\nobjects:\n  - {label: vase, color: mauve, position: [1, 1, 0]}\n', 3,
     ["color 'mauve' is not one of"]),
    ('world: small\nevents:\n  - {after_lap: 1, move: unicorn, to: kitchen}\n', 3,
     ["no object labelled 'unicorn'"]),
    ('world: small\nevents:\n  - {after_lap: 1, move: mug, to: attic}\n', 3,
     ["no room 'attic'"]),
    ('world: small\nlaps: 2\nevents:\n  - {after_lap: 3, remove: mug}\n', 4,
     ['after_lap must be in [1, 2]']),
    ('world: small\nevents:\n  - {after_lap: 1, move: mug}\n', 3, ['needs "to"']),
    ('world: small\nlaps: [1\n', 3, ['not valid YAML']),
])
def test_bad_scenarios_name_the_line_and_the_problem(text, line, words):
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, source='bad.yaml')
    message = str(info.value)
    assert message.startswith(f'bad.yaml:{line}: '), message
    for word in words:
        assert word in message, message


def test_unknown_scenario_name_lists_the_known_ones():
    with pytest.raises(ScenarioError, match='no such scenario file.*house'):
        load_scenario('no_such_scenario')


def test_file_errors_name_the_file(tmp_path):
    path = tmp_path / 'mine.yaml'
    path.write_text('world: small\nspeed: -1\n')
    with pytest.raises(ScenarioError, match=rf'^{path}:2: speed must be in'):
        load_scenario(path)
