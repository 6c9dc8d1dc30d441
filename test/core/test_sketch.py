"""Tests of engram_ros.core.sketch: canonical tags, free-text tags, singulars, colour names."""

from __future__ import annotations

import itertools

import pytest

from engram_ros.core import sketch
from engram_ros.core.sketch import color_name
from engram_ros.core.sketch import COLOR_SYNONYMS
from engram_ros.core.sketch import LABEL_SYNONYMS
from engram_ros.core.sketch import NAMESPACES
from engram_ros.core.sketch import normalize_tag
from engram_ros.core.sketch import normalize_tags
from engram_ros.core.sketch import ROOM_SYNONYMS
from engram_ros.core.sketch import singular
from engram_ros.core.sketch import SIZE_SYNONYMS
from engram_ros.core.sketch import SOUND_SYNONYMS
from engram_ros.core.sketch import text_to_tags

PALETTE = {'red', 'orange', 'yellow', 'green', 'blue', 'purple', 'pink', 'brown', 'black',
           'white', 'gray'}

VOCABULARIES = [('label', LABEL_SYNONYMS), ('room', ROOM_SYNONYMS), ('color', COLOR_SYNONYMS),
                ('size', SIZE_SYNONYMS), ('sound', SOUND_SYNONYMS)]
VOCABULARY_ENTRIES = [(namespace, key, value) for namespace, vocab in VOCABULARIES
                      for key, value in vocab.items()]


@pytest.mark.parametrize('tag, expected', [
    # synonyms
    ('cup', 'label:mug'), ('Cups', 'label:mug'), ('Coffee Mug', 'label:mug'),
    ('teacup', 'label:mug'), ('couch', 'label:sofa'), ('Television', 'label:tv'),
    ('monitor', 'label:tv'), ('wastebasket', 'label:trash_can'), ('trash can', 'label:trash_can'),
    ('bin', 'label:trash_can'), ('cellphone', 'label:phone'), ('mobile', 'label:phone'),
    ('fridge', 'label:refrigerator'), ('label:sofas', 'label:sofa'),
    # plurals, case, separators
    ('tennis ball', 'label:tennis_ball'), ('Tennis-Balls', 'label:tennis_ball'),
    ('tennis__ball', 'label:tennis_ball'), ('  BOXES ', 'label:box'), ('keys', 'label:key'),
    ('batteries', 'label:battery'), ('label: Toy  Robot', 'label:toy_robot'),
    ("label:dog's", 'label:dog'),
    # bare rooms, colours, sizes, sounds
    ('kitchen', 'room:kitchen'), ('Living Room', 'room:living_room'),
    ('lounge', 'room:living_room'), ('corridor', 'room:hallway'), ('study', 'room:office'),
    ('red', 'color:red'), ('GREY', 'color:gray'), ('orange', 'color:orange'),
    ('big', 'size:large'), ('tiny', 'size:small'),
    ('doorbell', 'sound:doorbell'), ('fire alarm', 'sound:alarm'), ('barking', 'sound:dog_bark'),
    # namespaces
    ('Color: RED', 'color:red'), ('colour:grey', 'color:gray'),
    ('ROOM:Dining Room', 'room:dining_room'),
    ('room:bedrooms', 'room:bedroom'), ('size:Huge', 'size:large'),
    ('sound:Door Bell', 'sound:doorbell'), ('sound:phone ringing', 'sound:phone_ring'),
    ('place:P12', 'place:p12'), ('vw:431', 'vw:431'), ('vw:0431', 'vw:431'),
    ('kind:Object', 'kind:object'), ('kind:places', 'kind:place'),
    ('color:turquoise', 'color:blue'), ('color:chartreuse', 'color:chartreuse'),
    ('label:red', 'label:red'),
])
def test_normalize_tag(tag: str, expected: str) -> None:
    assert normalize_tag(tag) == expected


@pytest.mark.parametrize('namespace, key, value', VOCABULARY_ENTRIES)
def test_every_vocabulary_entry_normalises_to_its_canonical_tag(
        namespace: str, key: str, value: str) -> None:
    expected = f'{namespace}:{value}'
    assert normalize_tag(f'{namespace}:{key}') == expected
    assert normalize_tag(f'{namespace}:{key.upper()}') == expected
    assert normalize_tag(expected) == expected, 'canonical tags are fixed points'


@pytest.mark.parametrize('tag', ['cups', 'Living Room', 'Red', 'tennis balls', 'place:P7',
                                 'vw:007', 'kind:audio', 'whatsit', 'coffee mugs', 'glasses'])
def test_normalize_tag_is_idempotent(tag: str) -> None:
    once = normalize_tag(tag)
    assert normalize_tag(once) == once
    namespace, _, value = once.partition(':')
    assert namespace in NAMESPACES
    assert value == value.lower() and ' ' not in value


@pytest.mark.parametrize('tag, message', [
    ('', 'empty'), ('   ', 'empty'), ('--', 'empty'), ('label:', 'empty value'),
    ('label:  _ ', 'empty value'), ('vw:abc', 'visual word'), ('vw:-3', 'visual word'),
    ('kind:thing', 'unknown kind'), ('foo:bar', 'accepted: label, color, room'),
    (':mug', 'unknown namespace'),
])
def test_normalize_tag_rejects(tag: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        normalize_tag(tag)


def test_unknown_namespace_message_lists_every_namespace() -> None:
    with pytest.raises(ValueError) as info:
        normalize_tag('mood:happy')
    for namespace in NAMESPACES:
        assert namespace in str(info.value)


def test_normalize_tags_sorts_and_deduplicates() -> None:
    assert normalize_tags(['Cups', 'mug', 'red', 'Color: RED', 'kitchen']) == (
        'color:red', 'label:mug', 'room:kitchen')
    assert normalize_tags([]) == ()
    with pytest.raises(ValueError):
        normalize_tags(['mug', 'bogus:x'])


@pytest.mark.parametrize('word, expected', [
    ('cups', 'cup'), ('boxes', 'box'), ('glasses', 'glass'), ('shelves', 'shelf'),
    ('batteries', 'battery'), ('keys', 'key'), ('mice', 'mouse'), ('knives', 'knife'),
    ('dishes', 'dish'), ('benches', 'bench'), ('shoes', 'shoe'), ('toys', 'toy'),
    ('horses', 'horse'), ('gloves', 'glove'), ('buses', 'bus'), ('children', 'child'),
    ('Cups', 'cup'), ('tennis_balls', 'tennis_ball'), ('coffee mugs', 'coffee mug'),
    # already singular, or not nouns with a plural -s
    ('glass', 'glass'), ('grass', 'grass'), ('bus', 'bus'), ('tennis', 'tennis'),
    ('cup', 'cup'), ('gas', 'gas'), ('series', 'series'), ('scissors', 'scissors'),
    ('p12', 'p12'), ('', ''),
])
def test_singular(word: str, expected: str) -> None:
    assert singular(word) == expected


@pytest.mark.parametrize('text, expected', [
    ('Where is the red mug?', ('color:red', 'label:mug')),
    ('what did you hear near the hallway', ('room:hallway',)),
    ('where are my keys', ('label:key',)),
    ("Where's the coffee mug?", ('label:mug',)),
    ('Did you see tennis balls in the living room?', ('label:tennis_ball',
                                                      'room:living_room')),
    ('When did the fire alarm go off', ('sound:alarm',)),
    ('Is the phone ringing?', ('sound:phone_ring',)),
    ('where did I leave my phone', ('label:phone',)),
    ('where is the water bottle', ('label:bottle',)),
    ('a small blue box in the garage', ('color:blue', 'label:box', 'room:garage',
                                        'size:small')),
    ('show me things tagged room:kitchen and vw:12', ('room:kitchen', 'vw:12')),
    ('Any CUPS in the Dining-Room?', ('label:mug', 'room:dining_room')),
    ('where is the flux capacitor', ()),
    ('what', ()),
    ('', ()),
])
def test_text_to_tags(text: str, expected: tuple[str, ...]) -> None:
    assert text_to_tags(text) == expected


def test_text_to_tags_matches_known_labels() -> None:
    known = ['toy robot', 'label:Flux Capacitor', 'widget', 'can', '']
    assert text_to_tags('where is the toy robot', known) == ('label:toy_robot',)
    assert text_to_tags('where is the flux capacitor', known) == ('label:flux_capacitor',)
    assert text_to_tags('any widgets in the office?', known) == ('label:widget', 'room:office')
    assert text_to_tags('where can I find a toy', known) == ('label:toy',), \
        'a stop word never matches on its own'
    assert text_to_tags('where is the widget', ()) == ()


def test_text_to_tags_ignores_invalid_explicit_tags() -> None:
    assert text_to_tags('kind:thing near the kitchen') == ('room:kitchen',)


def test_text_to_tags_output_is_canonical() -> None:
    text = 'red cups couch tv lounge doorbell footsteps big grey hall fridge tennis ball'
    tags = text_to_tags(text)
    assert tags == tuple(sorted(set(tags)))
    assert normalize_tags(tags) == tags


def test_vocabularies_can_be_extended() -> None:
    LABEL_SYNONYMS['gizmo'] = 'widget'
    try:
        sketch.rebuild_vocabularies()
        assert normalize_tag('Gizmos') == 'label:widget'
        assert text_to_tags('where is my gizmo') == ('label:widget',)
    finally:
        del LABEL_SYNONYMS['gizmo']
        sketch.rebuild_vocabularies()
    assert text_to_tags('where is my gizmo') == ()


@pytest.mark.parametrize('rgb, expected', [
    ((255, 0, 0), 'red'), ((200, 10, 10), 'red'), ((128, 0, 0), 'red'),
    ((255, 128, 0), 'orange'), ((255, 165, 0), 'orange'),
    ((255, 255, 0), 'yellow'), ((255, 215, 0), 'yellow'),
    ((0, 255, 0), 'green'), ((0, 128, 0), 'green'), ((34, 139, 34), 'green'),
    ((0, 0, 255), 'blue'), ((0, 0, 128), 'blue'), ((0, 255, 255), 'blue'),
    ((135, 206, 235), 'blue'),
    ((128, 0, 128), 'purple'), ((128, 0, 255), 'purple'), ((75, 0, 130), 'purple'),
    ((255, 192, 203), 'pink'), ((255, 105, 180), 'pink'), ((255, 0, 255), 'pink'),
    ((139, 69, 19), 'brown'), ((101, 67, 33), 'brown'), ((210, 180, 140), 'brown'),
    ((0, 0, 0), 'black'), ((20, 20, 30), 'black'),
    ((255, 255, 255), 'white'), ((240, 240, 235), 'white'),
    ((128, 128, 128), 'gray'), ((192, 192, 192), 'gray'),
])
def test_color_name(rgb: tuple[int, int, int], expected: str) -> None:
    assert color_name(rgb) == expected


def test_color_names_are_the_colour_vocabulary() -> None:
    assert set(COLOR_SYNONYMS.values()) == PALETTE
    levels = range(0, 256, 51)
    names = {color_name(rgb) for rgb in itertools.product(levels, levels, levels)}
    assert names == PALETTE
    for name in names:
        assert normalize_tag(name) == f'color:{name}'


@pytest.mark.parametrize('rgb', [(256, 0, 0), (-1, 0, 0), (0, 0), (0, 0, 0, 0),
                                 (float('nan'), 0, 0), 'red', None])
def test_color_name_rejects(rgb: object) -> None:
    with pytest.raises(ValueError):
        color_name(rgb)  # type: ignore[arg-type]


def test_word_tags_are_every_short_run_of_words_without_lone_stop_words():
    tags = sketch.word_tags('What is in the server rooms?', 'room')
    assert {'room:server', 'room:server_room', 'room:server_rooms', 'room:room'} <= set(tags)
    assert 'room:the' not in tags and 'room:in' not in tags
    assert sketch.word_tags('', 'room') == ()
