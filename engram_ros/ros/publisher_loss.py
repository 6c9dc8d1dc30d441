"""Messages lost between a publisher and this subscriber, counted from sequence numbers.

A subscription's queue is a keep-last history: when the subscriber takes more slowly than
publishers publish, DDS overwrites the oldest samples, and rmw reports none of it (queue
overwrites are not sample-lost events). What it does give with each message
(``rclpy.subscription.MessageInfo``) is the publisher's gid and its ``publication_sequence_
number``, which grows by one per message of that publisher. A jump of ``n + 1`` means ``n``
messages of that publisher never reached this subscriber: counted here as lost.

Counting starts at each publisher's first message seen (a subscriber that joins late has not
lost what was published before it matched). A sequence number that does not grow (a message
delivered twice or out of order) is counted as ``out_of_order``, never as a negative loss.
Publishers are remembered by gid, the least recently heard forgotten past
:data:`MAX_PUBLISHERS` (a publisher forgotten and heard again starts counting afresh).

Where the RMW gives no sequence numbers (``None``, or always 0), nothing can be counted:
:attr:`PublisherLoss.counting` is False and diagnostics say so.

A per-publisher rate limit (token bucket, :meth:`PublisherLoss.admit`) refuses the messages of
a flooding publisher past its share before any expensive work, so that one misbehaving
publisher cannot take the writer's time from the well-behaved ones.

Nothing here imports ROS: message infos are plain dicts.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Mapping

#: Publishers remembered at most (a flood of short-lived publishers cannot grow memory).
MAX_PUBLISHERS = 4096


@dataclass
class _Publisher:
    last_seq: int
    tokens: float
    last_time: float
    lost: int = 0
    refused: int = 0


def publisher_key(info: Mapping) -> bytes:
    """The publisher's identity in a message info: its gid bytes (b'' when not given)."""
    gid = info.get('publisher_gid')
    if not gid:
        return b''
    data = gid.get('data') if isinstance(gid, Mapping) else gid
    return bytes(data or b'')


class PublisherLoss:
    """Per-publisher sequence gaps (lost messages) and rate limits; not thread-safe: the one
    thread that takes the subscription's messages calls it."""

    def __init__(self, rate_limit: float = 0.0, burst: float | None = None) -> None:
        """:param rate_limit: messages per second admitted per publisher (0: no limit).
        :param burst: messages a publisher may send at once above the rate (default: one
            second's worth, at least 10)."""
        if rate_limit < 0.0:
            raise ValueError(f'rate_limit={rate_limit} must be >= 0')
        self.rate_limit = float(rate_limit)
        self.burst = float(burst if burst is not None else max(10.0, rate_limit))
        self._publishers: collections.OrderedDict[bytes, _Publisher] = (
            collections.OrderedDict())
        #: Messages published and never seen here, over all publishers.
        self.lost = 0
        #: Messages whose sequence number did not grow (duplicates, reordering).
        self.out_of_order = 0
        #: Messages refused by the per-publisher rate limit.
        self.refused_rate = 0
        #: Messages that carried no usable sequence number.
        self.unnumbered = 0
        #: Messages seen in all.
        self.seen = 0

    @property
    def counting(self) -> bool:
        """False when no message seen so far carried a sequence number."""
        return self.seen == 0 or self.unnumbered < self.seen

    @property
    def publishers(self) -> int:
        """Publishers heard recently (at most :data:`MAX_PUBLISHERS`)."""
        return len(self._publishers)

    def note(self, info: Mapping, now: float) -> int:
        """Account for one message taken at ``now`` (seconds, monotonic) with message info
        ``info``; the number of its publisher's messages lost just before it."""
        self.seen += 1
        seq = info.get('publication_sequence_number')
        key = publisher_key(info)
        publisher = self._publishers.get(key)
        if not seq:                 # None, or 0: this RMW does not number its messages
            self.unnumbered += 1
            if publisher is None:
                self._remember(key, _Publisher(0, self.burst, now))
            return 0
        if publisher is None:
            self._remember(key, _Publisher(seq, self.burst, now))
            return 0
        self._publishers.move_to_end(key)
        gap = 0
        if seq > publisher.last_seq:
            gap = seq - publisher.last_seq - 1
            publisher.last_seq = seq
            publisher.lost += gap
            self.lost += gap
        else:
            self.out_of_order += 1
        return gap

    def admit(self, info: Mapping, now: float) -> bool:
        """True when the message's publisher is within its rate (call after :meth:`note`);
        False (counted in :attr:`refused_rate`) for a publisher over it."""
        if self.rate_limit <= 0.0:
            return True
        publisher = self._publishers.get(publisher_key(info))
        if publisher is None:       # note() was not called: nothing to limit against
            return True
        publisher.tokens = min(self.burst, publisher.tokens
                               + (now - publisher.last_time) * self.rate_limit)
        publisher.last_time = now
        if publisher.tokens >= 1.0:
            publisher.tokens -= 1.0
            return True
        publisher.refused += 1
        self.refused_rate += 1
        return False

    def _remember(self, key: bytes, publisher: _Publisher) -> None:
        self._publishers[key] = publisher
        while len(self._publishers) > MAX_PUBLISHERS:
            self._publishers.popitem(last=False)
