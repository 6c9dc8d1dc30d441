"""Loss counting from publishers' sequence numbers, and the per-publisher rate limit.

``engram_ros.ros.publisher_loss`` reads plain message-info dicts (what rclpy passes with each
message): these properties hold for any interleaving of publishers, any pattern of gaps.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from engram_ros.ros import publisher_loss
from engram_ros.ros.publisher_loss import PublisherLoss


def info(gid: int, seq: int | None) -> dict:
    return {'publisher_gid': {'data': gid.to_bytes(16, 'little')},
            'publication_sequence_number': seq}


# Per publisher: which of its messages 1..n arrive (a non-empty subset, kept in order).
delivered = st.lists(st.booleans(), min_size=1, max_size=200).filter(any)


@settings(max_examples=200, deadline=None)
@given(st.lists(delivered, min_size=1, max_size=5), st.randoms(use_true_random=False))
def test_lost_is_what_each_publisher_sent_between_its_first_and_last_seen_and_never_saw(
        patterns, rnd):
    streams = [[info(gid, seq) for seq, arrived in enumerate(pattern, start=1) if arrived]
               for gid, pattern in enumerate(patterns)]
    # any interleaving of the publishers, each one's own order kept (as DDS keeps it)
    order = [gid for gid, stream in enumerate(streams) for _ in stream]
    rnd.shuffle(order)
    loss, cursors, gaps = PublisherLoss(), [0] * len(streams), 0
    for gid in order:
        gaps += loss.note(streams[gid][cursors[gid]], now=0.0)
        cursors[gid] += 1

    expected = 0
    for pattern in patterns:
        seen = [seq for seq, arrived in enumerate(pattern, start=1) if arrived]
        expected += seen[-1] - seen[0] + 1 - len(seen)
    assert loss.lost == gaps == expected
    assert loss.seen == sum(map(len, streams))
    assert loss.out_of_order == 0 and loss.counting
    assert loss.publishers == len(patterns)


@given(st.lists(st.integers(1, 50), min_size=1, max_size=100))
def test_repeats_and_reordering_are_counted_apart_never_as_negative_loss(seqs):
    loss = PublisherLoss()
    for seq in seqs:
        assert loss.note(info(1, seq), 0.0) >= 0
    highest, backwards = seqs[0], 0
    for seq in seqs[1:]:
        if seq > highest:
            highest = seq
        else:
            backwards += 1
    assert loss.out_of_order == backwards
    assert loss.lost >= 0


def test_a_middleware_without_sequence_numbers_is_reported_not_guessed():
    loss = PublisherLoss()
    for _ in range(5):
        assert loss.note(info(1, 0), 0.0) == 0
        assert loss.note(info(2, None), 0.0) == 0
    assert loss.lost == 0 and not loss.counting and loss.unnumbered == 10


@settings(deadline=None)
@given(rate=st.floats(1.0, 1000.0), burst=st.floats(1.0, 200.0),
       steps=st.lists(st.floats(0.0, 0.5), min_size=1, max_size=300))
def test_a_publisher_gets_at_most_its_burst_plus_its_rate_over_the_time(rate, burst, steps):
    loss, now, admitted = PublisherLoss(rate, burst=burst), 0.0, 0
    for i, step in enumerate(steps, start=1):
        now += step
        loss.note(info(1, i), now)
        admitted += loss.admit(info(1, i), now)
    elapsed = now - steps[0]
    assert admitted <= burst + rate * elapsed + 1e-6
    assert admitted + loss.refused_rate == len(steps)


def test_a_flood_takes_nothing_from_a_publisher_within_its_rate():
    loss = PublisherLoss(rate_limit=50.0)     # burst: one second's worth
    polite_refused = 0
    for i in range(1, 1001):                  # the flood: 1000 in 0.1 s
        now = i * 1e-4
        loss.note(info(1, i), now)
        loss.admit(info(1, i), now)
        if i % 100 == 0:                      # the polite one: 10 in the same 0.1 s
            loss.note(info(2, i // 100), now)
            polite_refused += not loss.admit(info(2, i // 100), now)
    assert polite_refused == 0
    assert 0 < loss.refused_rate <= 1000 - 50


def test_no_limit_admits_everything():
    loss = PublisherLoss(0.0)
    for i in range(1, 10_001):
        loss.note(info(1, i), 0.0)
        assert loss.admit(info(1, i), 0.0)
    assert loss.refused_rate == 0


def test_remembered_publishers_are_bounded(monkeypatch):
    monkeypatch.setattr(publisher_loss, 'MAX_PUBLISHERS', 8)
    loss = PublisherLoss()
    for gid in range(100):                     # short-lived publishers, one message each
        loss.note(info(gid, 1), 0.0)
    assert loss.publishers == 8
    # one forgotten and heard again starts afresh: its gap since is not invented
    assert loss.note(info(0, 500), 0.0) == 0
    assert loss.lost == 0


def test_a_negative_rate_is_refused():
    with pytest.raises(ValueError, match='rate_limit'):
        PublisherLoss(-1.0)
