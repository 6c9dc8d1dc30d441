"""Approximate-time synchronisation by stamp."""

import pytest

from engram_ros.perception.errors import InputRejected
from engram_ros.perception.sync import ApproximateTimeSynchronizer


def test_pairs_messages_within_slop_in_either_order():
    sync = ApproximateTimeSynchronizer(('color', 'depth'), slop=0.01)
    assert sync.add('color', 1.000, 'c1') is None
    assert sync.add('depth', 1.004, 'd1') == (1.004, {'color': 'c1', 'depth': 'd1'})
    assert sync.add('depth', 2.000, 'd2') is None
    assert sync.add('color', 1.995, 'c2') == (1.995, {'color': 'c2', 'depth': 'd2'})
    assert sync.matched == 2 and sync.dropped == 0


def test_no_pair_beyond_slop_and_closest_partner_wins():
    sync = ApproximateTimeSynchronizer(('a', 'b'), slop=0.02)
    sync.add('a', 1.00, 'a1')
    assert sync.add('b', 1.05, 'b1') is None           # 50 ms apart: no set
    sync.add('a', 1.04, 'a2')                           # pairs with b1 (10 ms)
    assert sync.matched == 1
    sync.add('b', 2.00, 'b2')
    sync.add('b', 2.03, 'b3')
    stamp, items = sync.add('a', 2.025, 'a3')
    assert items == {'a': 'a3', 'b': 'b3'}              # the closest, not the oldest
    assert sync.dropped >= 2                            # a1 and b2 were passed over


def test_bounded_queues_count_evictions():
    sync = ApproximateTimeSynchronizer(('a', 'b'), slop=0.001, queue_size=3)
    for i in range(10):
        sync.add('a', float(i), i)
    assert sync.queued('a') == 3 and sync.dropped == 7


@pytest.mark.parametrize('second', [1.0, 0.5])
def test_stamps_that_do_not_advance_are_rejected(second):
    sync = ApproximateTimeSynchronizer(('a', 'b'), slop=0.01)
    sync.add('a', 1.0, 'x')
    with pytest.raises(InputRejected) as info:
        sync.add('a', second, 'y')
    assert info.value.reason == 'stamp_backwards'
    sync.reset()
    sync.add('a', 0.5, 'z')                             # after a reset, anything goes


@pytest.mark.parametrize('names, slop, size', [(('a',), 0.1, 1), (('a', 'a'), 0.1, 1),
                                               (('a', 'b'), -1.0, 1), (('a', 'b'), 0.1, 0)])
def test_bad_settings_raise(names, slop, size):
    with pytest.raises(ValueError):
        ApproximateTimeSynchronizer(names, slop, size)
