"""Detector labels read as words: head noun, colour words, compounds, bad input."""

from __future__ import annotations

import pytest

from engram_ros.core.labels import detection_tags
from engram_ros.core.labels import label_problem
from engram_ros.core.labels import parse_label
from engram_ros.core.labels import UNLABELED


@pytest.mark.parametrize('raw, label, base, head, colors', [
    ('red ball', 'red_ball', 'ball', 'ball', ('red',)),
    ('Red Soccer Balls', 'red_soccer_ball', 'soccer_ball', 'ball', ('red',)),
    ('soccer ball', 'soccer_ball', 'soccer_ball', 'ball', ()),
    ('tennis ball', 'tennis_ball', 'tennis_ball', 'ball', ()),
    ('dark blue box', 'dark_blue_box', 'box', 'box', ('blue',)),
    ('green_box', 'green_box', 'box', 'box', ('green',)),
    ('teddy bear', 'teddy_bear', 'teddy_bear', 'teddy_bear', ()),     # a toy, not a bear
    ('hot dog', 'hot_dog', 'hot_dog', 'hot_dog', ()),                 # no dog
    ('toothbrush cup', 'toothbrush_cup', 'toothbrush_cup', 'mug', ()),  # cup -> mug
    ('paint can', 'paint_can', 'paint_can', 'can', ()),
    ('laundry basket', 'laundry_basket', 'laundry_basket', 'basket', ()),
    ('cell phone', 'phone', 'phone', 'phone', ()),                    # synonyms still apply
    ('coffee table', 'table', 'table', 'table', ()),
    ('trash can', 'trash_can', 'trash_can', 'trash_can', ()),
    ('washbasin', 'sink', 'sink', 'sink', ()),
    ('orange', 'orange', 'orange', 'orange', ()),                     # a colour word alone
])
def test_a_label_splits_into_head_and_colour_words(raw, label, base, head, colors):
    parsed = parse_label(raw)
    assert (parsed.label, parsed.base, parsed.head, parsed.colors, parsed.problem) == \
        (label, base, head, colors, '')
    assert parse_label(parsed.label) == parsed      # a stored label reads the same


def test_the_detectors_colour_word_wins_over_the_pixels():
    assert detection_tags('red ball', 'gray', 'small') == (
        'color:red', 'label:red_ball', 'size:small')
    assert detection_tags('ball', 'gray', 'small') == ('color:gray', 'label:ball', 'size:small')
    assert detection_tags('Blue Box', None) == ('color:blue', 'label:blue_box')


@pytest.mark.parametrize('raw, label, problem', [
    ('', UNLABELED, 'empty'), ('  ', UNLABELED, 'empty'), ('?!', UNLABELED, 'empty'),
    ('41', '41', 'numeric'), ('0_7', '0_7', 'numeric'),
    ('\u676f\u5b50', '\u676f\u5b50', 'non_ascii'),
    ('Tasse \u00e0 caf\u00e9', 'tasse_\u00e0_caf\u00e9', 'non_ascii'),
])
def test_odd_labels_are_kept_as_given_with_their_problem(raw, label, problem):
    parsed = parse_label(raw)
    assert label_problem(raw) == problem
    assert (parsed.label, parsed.head, parsed.colors, parsed.problem) == \
        (label, label, (), problem)
    assert detection_tags(raw, 'red') == ('color:red', f'label:{label}')


def test_plain_labels_have_no_problem():
    assert [label_problem(x) for x in ('mug', 'red ball', 'R2 unit', 'mug 2')] == [''] * 4
