"""Tests of engram_ros.core.validity: when a belief counts as missed where it was."""

from __future__ import annotations

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
