"""The main demo's answer formatting (engram_ros/sim/demo.py) on real Engram messages.

The demo itself (PyBullet, three node processes, ~3 minutes) is run by ``tools/demo.sh``; these
tests cover how it reads the memory's answers: laps, current versus history, moves, and
short-term engrams held back as unconfirmed.
"""

from __future__ import annotations

import pytest

pytest.importorskip('engram_ros.msg')

from engram_ros.msg import Engram  # noqa: E402
from engram_ros.ros.conversions.common import seconds_to_time  # noqa: E402
from engram_ros.sim import demo as sim_demo  # noqa: E402

T0 = 1.7e9
LAP_ENDS = [T0 + 100.0, T0 + 200.0, T0 + 300.0]
TRUTH = {
    'rooms': [{'name': 'kitchen', 'min': [0.0, 0.0], 'max': [4.0, 4.5]},
              {'name': 'bedroom', 'min': [0.0, 6.0], 'max': [5.0, 9.0]}],
    'objects': [{'label': 'mug', 'position': [4.0, 8.5, 0.8]},
                {'label': 'fridge', 'position': [0.45, 0.45, 0.0]}],
    'sounds': [{'label': 'voice', 'synth': 'speech', 'position': [1.0, 1.0, 0.9]}],
}


def engram(engram_id: int, label: str, x: float, y: float, *, seen: int = 3,
           first: float = T0 + 10.0, last: float = T0 + 250.0, valid_to: float = 0.0,
           successor: int = 0, kind: str = 'object') -> Engram:
    msg = Engram(id=engram_id, kind=kind, label=label, observation_count=seen,
                 tier='short' if seen == 1 else 'long', successor_id=successor)
    msg.pose.pose.position.x, msg.pose.pose.position.y = x, y
    msg.first_seen = msg.valid_from = seconds_to_time(first)
    msg.last_seen = seconds_to_time(last)
    msg.valid_to = seconds_to_time(valid_to)
    return msg


@pytest.mark.parametrize('offset, lap', [(-50.0, 1), (50.0, 1), (100.0, 1), (150.0, 2),
                                         (250.0, 3), (400.0, 3)])
def test_lap_of_counts_the_lap_ends_before_a_stamp(offset: float, lap: int) -> None:
    assert sim_demo.lap_of(T0 + offset, LAP_ENDS) == lap


def test_lap_of_without_laps_is_lap_one() -> None:
    assert sim_demo.lap_of(T0, []) == 1


def test_changes_say_history_or_current_and_where_it_moved() -> None:
    old = engram(11, 'mug', 2.2, 0.8, last=T0 + 150.0, valid_to=T0 + 230.0, successor=40)
    new = engram(40, 'mug', 4.0, 8.5, first=T0 + 230.0)
    plant = engram(41, 'plant', 1.0, 7.0, first=T0 + 120.0)
    answer = sim_demo.Answer('What changed since lap 1?', [new, plant, old], [0.9, 0.8, 0.7])
    answer.note = sim_demo.change_notes(answer.engrams, TRUTH, LAP_ENDS)
    assert answer.note == ['current since lap 3: moved here from the kitchen (#11)',
                           'current: first seen in lap 2',
                           'history since lap 3: moved to the bedroom (#40)']
    sim_demo.moves_first(answer)
    assert [e.id for e in answer.engrams] == [11, 40, 41]
    assert answer.scores == [0.7, 0.9, 0.8]
    assert answer.note[0].startswith('history') and answer.note[1].startswith('current since')


def test_history_without_a_successor_is_gone() -> None:
    book = engram(12, 'book', 7.2, 1.3, valid_to=T0 + 230.0)
    assert sim_demo.change_notes([book], TRUTH, LAP_ENDS) == [
        'history since lap 3: gone, not seen where it should have been visible']


def test_history_whose_successor_is_not_in_the_answer_names_its_id() -> None:
    old = engram(11, 'mug', 2.2, 0.8, valid_to=T0 + 230.0, successor=40)
    assert sim_demo.change_notes([old], TRUTH, LAP_ENDS) == [
        'history since lap 3: superseded by #40']


def test_unconfirmed_engrams_are_held_back_with_scores_aligned() -> None:
    answer = sim_demo.Answer('What is in the kitchen?',
                             [engram(1, 'table', 2.4, 1.0, seen=25),
                              engram(2, 'tv', 0.1, 0.8, seen=1),
                              engram(3, 'kettle', 2.8, 1.1, seen=13)], [0.6, 0.5, 0.4],
                             note=['a', 'b', 'c'])
    answer.hold_back_unconfirmed()
    assert [e.label for e in answer.engrams] == ['table', 'kettle']
    assert answer.scores == [0.6, 0.4] and answer.note == ['a', 'c']
    assert [e.label for e in answer.unconfirmed] == ['tv']


def test_keep_filters_engrams_and_scores_together() -> None:
    answer = sim_demo.Answer('Where is the mug?', [engram(1, 'bowl', 2.4, 1.3),
                                                   engram(2, 'mug', 4.0, 8.5)], [0.9, 0.8])
    answer.keep(lambda e: e.label == 'mug')
    assert [e.id for e in answer.engrams] == [2] and answer.scores == [0.8]


def test_truth_distance_matches_sounds_by_kind_and_skips_history() -> None:
    assert sim_demo.truth_distance(engram(5, 'speech', 4.0, 5.0, kind='audio'), TRUTH) == '5.00'
    assert sim_demo.truth_distance(engram(6, 'mug', 4.0, 8.0), TRUTH) == '0.50'
    # the memory's canonical label ('refrigerator') against the simulator's ('fridge')
    assert sim_demo.truth_distance(engram(8, 'refrigerator', 0.45, 1.45), TRUTH) == '1.00'
    old = engram(7, 'mug', 2.2, 0.8, valid_to=T0 + 230.0, successor=6)
    assert sim_demo.truth_distance(old, TRUTH) == '-'


def test_belief_note_gives_laps() -> None:
    mug = engram(40, 'mug', 4.0, 8.5, first=T0 + 230.0, last=T0 + 290.0)
    assert sim_demo.belief_note(mug, LAP_ENDS) == 'current since lap 3, last seen in lap 3'


def test_show_prints_summary_table_and_unconfirmed(capsys) -> None:
    answer = sim_demo.Answer('Where is the mug?', [engram(40, 'mug', 4.0, 8.5)], [0.9],
                             summary='The mug is in the bedroom.',
                             unconfirmed=[engram(72, 'mug', 1.7, 2.6, seen=1)])
    sim_demo.show(answer, TRUTH)
    out = capsys.readouterr().out
    assert 'The mug is in the bedroom.' in out
    rows = [line for line in out.splitlines() if line.strip().startswith('mug ')]
    assert len(rows) == 1 and 'bedroom' in rows[0] and '0.90' in rows[0]
    assert '1 seen only once, unconfirmed (short-term): mug (kitchen)' in out


def test_show_without_confirmed_engrams(capsys) -> None:
    sim_demo.show(sim_demo.Answer('Where is the vase?',
                                  unconfirmed=[engram(82, 'vase', 1.0, 7.0, seen=1)]), TRUTH)
    out = capsys.readouterr().out
    assert 'Nothing confirmed' in out and 'vase (bedroom)' in out
    sim_demo.show(sim_demo.Answer('Where is the unicorn?', message='no known label'), TRUTH)
    assert "I don't know" in capsys.readouterr().out


def test_a_nearby_current_engram_of_the_same_label_is_named_as_a_likely_twin() -> None:
    old_tv = engram(16, 'tv', 9.73, 2.64, first=T0 + 6.0)
    new_tv = engram(79, 'tv', 9.47, 1.89, first=T0 + 157.0)
    far_tv = engram(80, 'tv', 2.0, 2.0, first=T0 + 160.0)
    current = [old_tv, new_tv, far_tv, engram(15, 'tv_stand', 9.6, 2.7)]
    assert sim_demo.twin_note(new_tv, current) == 'same as #16 (0.79 m away)?'
    assert sim_demo.twin_note(far_tv, current) == ''
    assert sim_demo.change_notes([new_tv], TRUTH, LAP_ENDS, current) == [
        'current: first seen in lap 2; same as #16 (0.79 m away)?']


def test_unconfirmed_line_wraps_and_marks_history() -> None:
    seen_once = [engram(100 + i, 'printer', 1.0, 7.0, seen=1) for i in range(12)]
    seen_once.append(engram(77, 'mug', 1.7, 2.6, seen=1, valid_to=T0 + 230.0, successor=40))
    lines = sim_demo.unconfirmed_line(seen_once, TRUTH).splitlines()
    assert len(lines) > 1 and all(len(line) <= 97 for line in lines)
    assert lines[0].startswith('  13 seen only once') and lines[1].startswith('    ')
    assert lines[-1].endswith('mug (kitchen, history)')
