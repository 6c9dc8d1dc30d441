"""The size limits (engram_ros.core.model.limits) in the core: one past each limit is refused
with its status or reason and a message naming the limit; at the limit it is accepted."""

from __future__ import annotations

import numpy as np
import pytest

from engram_ros.core.governance import check_edit_sizes
from engram_ros.core.governance import check_id_count
from engram_ros.core.governance import EngramFilter
from engram_ros.core.governance import GovernanceError
from engram_ros.core.governance import GovernanceStatus
from engram_ros.core.memory import MemoryStore
from engram_ros.core.memory import StoreConfig
from engram_ros.core.model.engram import InvalidObservation
from engram_ros.core.model.engram import Observation
from engram_ros.core.model.engram import REASON_LABEL_TOO_LONG
from engram_ros.core.model.engram import REASON_TAG_TOO_LONG
from engram_ros.core.model.engram import REASON_TOO_MANY_TAGS
from engram_ros.core.model.limits import MAX_LABEL_BYTES
from engram_ros.core.model.limits import MAX_QUERY_TEXT_BYTES
from engram_ros.core.model.limits import MAX_REQUEST_ITEMS
from engram_ros.core.model.limits import MAX_TAG_BYTES
from engram_ros.core.model.limits import MAX_TAGS_PER_OBSERVATION
from engram_ros.core.query import QueryError
from engram_ros.core.query import RecallQuery
from engram_ros.core.query import RecallStatus
from engram_ros.core.storage import MemoryStorage

DIM = 8


def label_of(size: int) -> str:
    """A label of ``size`` UTF-8 bytes, with two-byte characters (bytes are what count)."""
    return 'é' * (size // 2) + 'a' * (size % 2)


def tag_of(size: int, i: int = 0) -> str:
    head = f'place:{i}-'
    return head + 'x' * (size - len(head))


def observation(label: str = 'mug', tags=()) -> Observation:
    return Observation(kind='object', frame_id='map', position=np.zeros(3), stamp=1.7e9,
                       vector=np.eye(DIM)[0], label=label, tags=tuple(tags))


OVER = [
    ('label', dict(label=label_of(MAX_LABEL_BYTES + 1)), REASON_LABEL_TOO_LONG,
     'MAX_LABEL_BYTES'),
    ('tags', dict(tags=[tag_of(20, i) for i in range(MAX_TAGS_PER_OBSERVATION + 1)]),
     REASON_TOO_MANY_TAGS, 'MAX_TAGS_PER_OBSERVATION'),
    ('tag', dict(tags=[tag_of(MAX_TAG_BYTES + 1)]), REASON_TAG_TOO_LONG, 'MAX_TAG_BYTES'),
]


@pytest.mark.parametrize('kwargs, reason, name', [o[1:] for o in OVER], ids=[o[0] for o in OVER])
def test_an_observation_past_a_limit_is_refused_and_not_stored(kwargs, reason, name) -> None:
    store = MemoryStore(MemoryStorage(), StoreConfig(dim=DIM))
    with pytest.raises(InvalidObservation, match=name) as refused:
        store.ingest(observation(**kwargs))
    assert refused.value.reason == reason
    assert len(store) == 0


def test_an_observation_at_every_limit_is_stored() -> None:
    store = MemoryStore(MemoryStorage(), StoreConfig(dim=DIM))
    label = label_of(MAX_LABEL_BYTES)
    tags = [tag_of(MAX_TAG_BYTES, i) for i in range(MAX_TAGS_PER_OBSERVATION)]
    result = store.ingest(observation(label=label, tags=tags))
    stored = store.get([result.engram_id])[0]
    assert stored.label == label and len(label.encode()) == MAX_LABEL_BYTES
    assert sum(t.startswith('place:') for t in stored.tags) == MAX_TAGS_PER_OBSERVATION


def recall(**kwargs) -> RecallQuery:
    return RecallQuery(**kwargs)


def test_recall_text_and_tags_past_their_limits_are_refused() -> None:
    at = [recall(text='a' * MAX_QUERY_TEXT_BYTES),
          recall(tags_any=tuple(f'place:{i}' for i in range(MAX_REQUEST_ITEMS))),
          recall(tags_all=(tag_of(MAX_TAG_BYTES),)),
          recall(kinds=('object',) * MAX_REQUEST_ITEMS)]
    for query in at:
        query.validate(DIM, 10, 'map')
    over = [(recall(text='é' * (MAX_QUERY_TEXT_BYTES // 2) + 'a'), RecallStatus.INVALID_TAG,
             'MAX_QUERY_TEXT_BYTES'),
            (recall(tags_all=('place:a',) * 5000,
                    tags_none=('place:b',) * (MAX_REQUEST_ITEMS - 4999)),
             RecallStatus.INVALID_TAG, 'MAX_REQUEST_ITEMS'),
            (recall(tags_none=(tag_of(MAX_TAG_BYTES + 1),)), RecallStatus.INVALID_TAG,
             'MAX_TAG_BYTES'),
            (recall(kinds=('object',) * (MAX_REQUEST_ITEMS + 1)), RecallStatus.UNKNOWN_KIND,
             'MAX_REQUEST_ITEMS')]
    for query, status, name in over:
        with pytest.raises(QueryError, match=name) as refused:
            query.validate(DIM, 10, 'map')
        assert refused.value.status == status


def test_governance_requests_past_their_limits_are_refused() -> None:
    EngramFilter(tags_any=tuple(f'place:{i}' for i in range(MAX_REQUEST_ITEMS))).normalized('map')
    check_edit_sizes([tag_of(MAX_TAG_BYTES)], [], label_of(MAX_LABEL_BYTES))
    check_id_count(MAX_REQUEST_ITEMS)
    too_many = ('place:a',) * (MAX_REQUEST_ITEMS + 1)
    over = [(lambda: EngramFilter(tags_all=too_many).normalized('map'),
             GovernanceStatus.INVALID_TAG, 'MAX_REQUEST_ITEMS'),
            (lambda: EngramFilter(tags_any=(tag_of(MAX_TAG_BYTES + 1),)).normalized('map'),
             GovernanceStatus.INVALID_TAG, 'MAX_TAG_BYTES'),
            (lambda: EngramFilter(kinds=('object',) * (MAX_REQUEST_ITEMS + 1)).normalized('map'),
             GovernanceStatus.UNKNOWN_KIND, 'MAX_REQUEST_ITEMS'),
            (lambda: check_edit_sizes([], ['place:a'] * (MAX_REQUEST_ITEMS + 1), None),
             GovernanceStatus.INVALID_TAG, 'MAX_REQUEST_ITEMS'),
            (lambda: check_edit_sizes([], [], label_of(MAX_LABEL_BYTES + 1)),
             GovernanceStatus.INVALID_EDIT, 'MAX_LABEL_BYTES'),
            (lambda: check_id_count(MAX_REQUEST_ITEMS + 1), GovernanceStatus.INVALID_PAGE,
             'MAX_REQUEST_ITEMS')]
    for call, status, name in over:
        with pytest.raises(GovernanceError, match=name) as refused:
            call()
        assert refused.value.status == status
