"""Tests of engram_ros.core.validity: when a belief counts as missed where it was."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engram_ros.core.validity import Candidate
from engram_ros.core.validity import find_moves
from engram_ros.core.validity import missed


@pytest.mark.parametrize('anchor, anchor_seen, robot_place, expected', [
    (0, 200.0, 0, False),          # not anchored: never judged missed
    (5, None, 0, False),           # anchor place unknown
    (5, 104.0, 9, False),          # back at the place, but within the grace period
    (5, 106.0, 9, True),           # there after the grace period, and left
    (5, 106.0, 5, False),          # still there: not judged yet
])
def test_missed(anchor: int, anchor_seen: float | None, robot_place: int,
                expected: bool) -> None:
    assert missed(anchor, anchor_seen, 100.0, 5.0, robot_place) is expected


@pytest.mark.parametrize('anchor_seen, moves', [(106.0, 1), (104.0, 0)])
def test_a_move_needs_the_old_belief_missed(anchor_seen: float, moves: int) -> None:
    v = np.ones(4, dtype=np.float32) / 2
    old = Candidate(1, frozenset({'label:mug'}), np.zeros(3), v, 0.0, 100.0, 5, anchor_seen)
    new = Candidate(2, frozenset({'label:mug'}), np.array([9.0, 0.0, 0.0]), v, 101.0, 110.0)
    assert len(find_moves([old, new], min_distance=1.0, min_similarity=0.7, grace=5.0,
                          robot_place=9)) == moves


# ------------------------------------------------------------------ the validity table

def test_validity_table_keeps_its_arrays_until_it_changes() -> None:
    from engram_ros.core.validity import ValidityTable
    table = ValidityTable({5: (1.0, 2.0), 3: (4.0, math.inf)})
    ids, froms, tos, history = table.arrays()
    assert ids.tolist() == [3, 5] and froms.tolist() == [4.0, 1.0]
    assert tos.tolist() == [math.inf, 2.0] and history.tolist() == [5]
    assert table.arrays()[0] is ids                       # kept, not rebuilt
    table.cache['x'] = 1
    version = table.version
    table[7] = (0.5, 0.75)
    assert table.version > version and table.cache == {}
    assert table.arrays()[3].tolist() == [5, 7]
    table.pop(99, None)                                   # absent: nothing changed
    assert table.arrays()[3].tolist() == [5, 7]
    table.pop(5)
    assert table.arrays()[3].tolist() == [7] and dict(table) == {3: (4.0, math.inf),
                                                                  7: (0.5, 0.75)}


def _index_with_history():
    from engram_ros.core.index import EngramIndex
    index = EngramIndex(4, exact_threshold=100)
    rng = np.random.default_rng(0)
    n = 40
    index.add_batch(np.arange(1, n + 1), rng.normal(size=(n, 4)), kinds=np.zeros(n),
                    positions=np.zeros((n, 3)), first_seen=np.full(n, 10.0),
                    last_seen=np.full(n, 20.0), tags=[('label:a',)] * n)
    return index


def test_history_stays_hidden_across_compaction_and_re_adds() -> None:
    """The history's slots are cached between recalls; a compaction (slots renumbered) or a
    re-add (a new slot) must not let a history belief through, nor hide a current one."""
    from engram_ros.core.backend import filter_index
    from engram_ros.core.backend import Stage1Filter
    from engram_ros.core.validity import ValidityTable
    index = _index_with_history()
    table = ValidityTable({i: (10.0, 15.0) for i in range(2, 41, 3)})   # history
    table[1] = (12.0, math.inf)                                         # moved in late
    where = Stage1Filter(tags_all=('label:a',))

    def visible() -> set[int]:
        return set(index.ids_of(filter_index(index, where, table)).tolist())

    def expected() -> set[int]:
        live = set(index.ids_of(index.live_slots()).tolist())
        return {i for i in live if not (i in table and math.isfinite(table[i][1]))}

    assert visible() == expected() and 2 not in visible() and 1 in visible()
    assert visible() == set(index.ids_of(filter_index(index, where, dict(table))).tolist())
    index.remove_batch(np.arange(1, 21))
    index.compact()                                       # slots renumbered
    assert visible() == expected() and len(expected()) > 0
    index.add_batch(np.array([5, 6]), np.eye(4)[:2], kinds=np.zeros(2),
                    positions=np.zeros((2, 3)), first_seen=np.full(2, 30.0),
                    last_seen=np.full(2, 30.0), tags=[('label:a',)] * 2)
    assert 5 not in visible() and 6 in visible()          # 5 is still history in the table
    at = Stage1Filter(tags_all=('label:a',), at_time=12.5)
    got = set(index.ids_of(filter_index(index, at, table)).tolist())
    assert 23 in got and 24 in got                        # history then (10..15), current
    assert set(index.ids_of(filter_index(index, at, dict(table))).tolist()) == got
