"""The sparse symbolic sketch: canonical tags, so the same thing gets the same tag every time.

A tag is a lowercase ``namespace:value`` string, for example ``label:mug``, ``color:red``,
``room:kitchen``, ``size:small``, ``sound:doorbell``, ``place:p12``, ``vw:431`` (a visual word)
or ``kind:object``. Values use ``_`` between words (``label:tennis_ball``).

The normaliser is deliberately small and rule based: vocabularies of synonyms (module
constants below, easy to extend), simple English singulars and a colour namer. Free text is
mapped to tags only where it mentions a vocabulary entry or a label the memory already knows,
so a question never invents a filter that matches nothing.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Iterable

from engram_ros.core import colour
from engram_ros.core.model.engram import KINDS

logger = logging.getLogger(__name__)

#: Accepted tag namespaces.
NAMESPACES: tuple[str, ...] = ('label', 'color', 'room', 'size', 'sound', 'place', 'vw', 'kind')

#: Alternative spellings of namespaces.
NAMESPACE_ALIASES: dict[str, str] = {'colour': 'color', 'object': 'label', 'word': 'vw'}

#: Object names -> canonical label. Canonical labels map to themselves implicitly; plurals are
#: handled by :func:`singular`, so list singular forms only.
LABEL_SYNONYMS: dict[str, str] = {
    'cup': 'mug', 'coffee mug': 'mug', 'coffee cup': 'mug', 'teacup': 'mug', 'tea cup': 'mug',
    'couch': 'sofa', 'settee': 'sofa',
    'television': 'tv', 'monitor': 'tv', 'tv set': 'tv', 'screen': 'tv',
    'bin': 'trash_can', 'trash can': 'trash_can', 'trash': 'trash_can', 'wastebasket': 'trash_can',
    'waste basket': 'trash_can', 'garbage can': 'trash_can', 'dustbin': 'trash_can',
    'rubbish bin': 'trash_can', 'trashcan': 'trash_can',
    'cellphone': 'phone', 'cell phone': 'phone', 'mobile': 'phone', 'mobile phone': 'phone',
    'smartphone': 'phone', 'telephone': 'phone',
    'water bottle': 'bottle',
    'wine glass': 'glass', 'drinking glass': 'glass', 'tumbler': 'glass',
    'eyeglasses': 'eyeglasses', 'spectacles': 'eyeglasses', 'reading glasses': 'eyeglasses',
    'notebook computer': 'laptop', 'computer': 'laptop',
    'computer mouse': 'mouse',
    'remote control': 'remote', 'tv remote': 'remote',
    'keys': 'key', 'house key': 'key', 'car key': 'key',
    'rucksack': 'backpack', 'schoolbag': 'backpack',
    'handbag': 'bag', 'purse': 'bag',
    'sneaker': 'shoe', 'trainer': 'shoe', 'boot': 'shoe',
    'potted plant': 'plant', 'houseplant': 'plant', 'house plant': 'plant', 'flower pot': 'plant',
    'fridge': 'refrigerator', 'freezer': 'refrigerator',
    'stove': 'oven', 'cooker': 'oven',
    'microwave oven': 'microwave',
    'armchair': 'chair', 'stool': 'chair',
    'desk': 'desk', 'dining table': 'table', 'coffee table': 'table',
    'pillow': 'cushion',
    'tennis ball': 'tennis_ball',
    'scissors': 'scissors',
    'notebook': 'book', 'magazine': 'book',
    'plate': 'plate', 'dish': 'plate', 'bowl': 'bowl', 'spoon': 'spoon', 'fork': 'fork',
    'knife': 'knife', 'bottle': 'bottle', 'laptop': 'laptop', 'keyboard': 'keyboard',
    'lamp': 'lamp', 'clock': 'clock', 'door': 'door', 'window': 'window', 'bed': 'bed',
    'sink': 'sink', 'toilet': 'toilet', 'umbrella': 'umbrella', 'wallet': 'wallet',
    'towel': 'towel', 'charger': 'charger', 'box': 'box', 'cardboard box': 'box', 'ball': 'ball',
    'toy': 'toy', 'person': 'person', 'people': 'person', 'man': 'person', 'woman': 'person',
    'child': 'person', 'kid': 'person', 'dog': 'dog', 'puppy': 'dog', 'cat': 'cat',
    'kitten': 'cat', 'bicycle': 'bicycle', 'bike': 'bicycle', 'vase': 'vase', 'kettle': 'kettle',
    'toaster': 'toaster', 'book': 'book', 'chair': 'chair', 'table': 'table', 'sofa': 'sofa',
    'tv': 'tv', 'phone': 'phone', 'mug': 'mug', 'key': 'key', 'glass': 'glass',
    'washbasin': 'sink', 'wash basin': 'sink', 'basin': 'sink', 'washstand': 'sink',
    'bathtub': 'bathtub', 'tub': 'bathtub', 'bath': 'bathtub', 'bath tub': 'bathtub',
    'vacuum cleaner': 'vacuum_cleaner', 'vacuum': 'vacuum_cleaner', 'hoover': 'vacuum_cleaner',
}

#: Room names -> canonical room.
ROOM_SYNONYMS: dict[str, str] = {
    'kitchen': 'kitchen', 'kitchenette': 'kitchen',
    'bedroom': 'bedroom', 'bed room': 'bedroom', 'master bedroom': 'bedroom',
    'bathroom': 'bathroom', 'bath room': 'bathroom', 'washroom': 'bathroom',
    'restroom': 'bathroom', 'lavatory': 'bathroom',
    'living room': 'living_room', 'lounge': 'living_room', 'sitting room': 'living_room',
    'family room': 'living_room',
    'hallway': 'hallway', 'corridor': 'hallway', 'hall': 'hallway', 'entrance': 'hallway',
    'entryway': 'hallway', 'foyer': 'hallway',
    'office': 'office', 'study': 'office', 'home office': 'office',
    'dining room': 'dining_room',
    'garage': 'garage',
    'laundry': 'laundry', 'laundry room': 'laundry', 'utility room': 'laundry',
}

#: Colour names -> canonical colour (the palette of :func:`color_name`).
COLOR_SYNONYMS: dict[str, str] = {
    'red': 'red', 'crimson': 'red', 'scarlet': 'red', 'maroon': 'red',
    'orange': 'orange',
    'yellow': 'yellow', 'gold': 'yellow', 'golden': 'yellow',
    'green': 'green', 'lime': 'green',
    'blue': 'blue', 'navy': 'blue', 'cyan': 'blue', 'turquoise': 'blue', 'teal': 'blue',
    'purple': 'purple', 'violet': 'purple', 'lilac': 'purple', 'lavender': 'purple',
    'pink': 'pink', 'magenta': 'pink',
    'brown': 'brown', 'beige': 'brown', 'tan': 'brown',
    'black': 'black',
    'white': 'white',
    'gray': 'gray', 'grey': 'gray', 'silver': 'gray',
}

#: Size words -> canonical size.
SIZE_SYNONYMS: dict[str, str] = {
    'small': 'small', 'tiny': 'small', 'little': 'small',
    'medium': 'medium',
    'large': 'large', 'big': 'large', 'huge': 'large', 'giant': 'large',
}

#: Sound names -> canonical sound class.
SOUND_SYNONYMS: dict[str, str] = {
    'doorbell': 'doorbell', 'door bell': 'doorbell',
    'alarm': 'alarm', 'fire alarm': 'alarm', 'smoke alarm': 'alarm', 'siren': 'alarm',
    'speech': 'speech', 'voice': 'speech', 'talking': 'speech', 'conversation': 'speech',
    'music': 'music', 'song': 'music',
    'dog bark': 'dog_bark', 'barking': 'dog_bark', 'bark': 'dog_bark',
    'dog barking': 'dog_bark',
    'knock': 'knock', 'knocking': 'knock',
    'footsteps': 'footsteps', 'footstep': 'footsteps',
    'water': 'water', 'running water': 'water', 'dripping': 'water',
    'microwave beep': 'microwave_beep', 'microwave beeping': 'microwave_beep',
    'phone ring': 'phone_ring', 'phone ringing': 'phone_ring', 'ringtone': 'phone_ring',
    'ringing phone': 'phone_ring',
}

#: Words :func:`text_to_tags` never turns into a tag on their own (question and stop words).
STOP_WORDS: frozenset[str] = frozenset("""
    a about above after again all am an and any anything are around as at be been before behind
    being below beside between by can could did do does doing done during every find for found
    from get go got had has have having he hear heard her here him his how i if in inside into is
    it its last let look looked looking me mine my near nearby next no not now of off on one or
    our out over please put saw see seeing seen she show so some something than that the their
    them then there these they thing this those to under up us was we were what when where which
    while who whom whose why will with would you your
""".split())

#: Bare words are looked up in these namespaces, in this order (so 'orange' is a colour).
_BARE_ORDER: tuple[tuple[str, dict[str, str]], ...] = (
    ('room', ROOM_SYNONYMS), ('color', COLOR_SYNONYMS), ('size', SIZE_SYNONYMS),
    ('sound', SOUND_SYNONYMS), ('label', LABEL_SYNONYMS))

#: Irregular plurals and words that look plural but are not.
_IRREGULAR_SINGULARS: dict[str, str] = {
    'mice': 'mouse', 'men': 'man', 'women': 'woman', 'children': 'child', 'people': 'people',
    'feet': 'foot', 'teeth': 'tooth', 'geese': 'goose', 'dice': 'die',
    'knives': 'knife', 'wives': 'wife', 'lives': 'life', 'leaves': 'leaf', 'shelves': 'shelf',
    'halves': 'half', 'wolves': 'wolf', 'loaves': 'loaf', 'scarves': 'scarf', 'calves': 'calf',
    'thieves': 'thief', 'hooves': 'hoof',
    'buses': 'bus', 'lenses': 'lens', 'potatoes': 'potato', 'tomatoes': 'tomato',
    'heroes': 'hero', 'echoes': 'echo', 'movies': 'movie', 'cookies': 'cookie',
    'series': 'series', 'species': 'species', 'news': 'news', 'scissors': 'scissors',
    'trousers': 'trousers', 'pants': 'pants', 'jeans': 'jeans', 'shorts': 'shorts',
    'clothes': 'clothes', 'footsteps': 'footsteps', 'headphones': 'headphones',
    'eyeglasses': 'eyeglasses', 'sheep': 'sheep', 'fish': 'fish', 'deer': 'deer',
    'gas': 'gas', 'tvs': 'tv', 'pcs': 'pc',
}

_SEPARATORS = re.compile(r'[\s_\-]+')
_NOT_WORD = re.compile(r'[^\w]+')
_TOKEN = re.compile(r'[^\W_]+')
_EXPLICIT = re.compile(r'\b(' + '|'.join(NAMESPACES + tuple(NAMESPACE_ALIASES))
                       + r')\s*:\s*([\w\-]+)', re.IGNORECASE)


def singular(word: str) -> str:
    """Return the singular of an English noun by simple rules, in lowercase.

    ``cups`` -> ``cup``, ``boxes`` -> ``box``, ``glasses`` -> ``glass``, ``shelves`` ->
    ``shelf``, ``batteries`` -> ``battery``, ``keys`` -> ``key``, ``mice`` -> ``mouse``; words
    that are already singular (``glass``, ``grass``, ``bus``, ``tennis``) are left alone. For a
    phrase (``tennis_balls``, ``coffee mugs``) only the last word changes.
    """
    word = word.strip().lower()
    cut = max(word.rfind('_'), word.rfind(' '))
    head, last = word[:cut + 1], word[cut + 1:]
    return head + _singular_word(last)


def _singular_word(word: str) -> str:
    if word in _IRREGULAR_SINGULARS:
        return _IRREGULAR_SINGULARS[word]
    if len(word) <= 3 or not word.isalpha() or not word.endswith('s'):
        return word
    if word.endswith(('ss', 'us', 'is')):
        return word
    if word.endswith('ies') and len(word) > 4:
        return word[:-3] + 'y'
    if word.endswith(('sses', 'shes', 'ches', 'xes', 'zzes')):
        return word[:-2]
    return word[:-1]


def _clean(value: str) -> str:
    """Lowercase; apostrophes dropped; runs of spaces, '_', '-' and punctuation become '_'."""
    value = value.strip().lower().replace("'", '').replace('\u2019', '')
    value = _NOT_WORD.sub('_', _SEPARATORS.sub('_', value))
    return value.strip('_')


def _lookup(namespace: str, value: str) -> str | None:
    """Canonical form of a cleaned ``value`` in ``namespace``'s vocabulary, or of its singular."""
    table = _TABLES[namespace]
    if value in table:
        return table[value]
    return table.get(singular(value))


def clean_value(value: str) -> str:
    """A tag value as the sketch spells it: lowercase, words joined by ``_`` (``'Red Ball'``
    -> ``'red_ball'``); ``''`` when nothing is left."""
    return _clean(value)


def vocabulary_lookup(namespace: str, value: str) -> str | None:
    """The canonical value of a cleaned ``value`` in the vocabulary of ``namespace`` (``label``,
    ``room``, ``color``, ``size`` or ``sound``), or of its singular; ``None`` when it has none."""
    return _lookup(namespace, value)


def _canonical_value(namespace: str, value: str, tag: str) -> str:
    if namespace == 'label':
        return _lookup('label', value) or singular(value)
    if namespace == 'room':
        return _lookup('room', value) or singular(value)
    if namespace == 'color':
        return _lookup('color', value) or value
    if namespace == 'size':
        return _lookup('size', value) or value
    if namespace == 'sound':
        return _lookup('sound', value) or value
    if namespace == 'vw':
        if not (value.isascii() and value.isdigit()):
            raise ValueError(f'tag {tag!r}: a visual word must be a non-negative integer')
        return str(int(value))
    if namespace == 'kind':
        kind = singular(value)
        if kind not in KINDS:
            raise ValueError(f'tag {tag!r}: unknown kind; accepted: {", ".join(KINDS)}')
        return kind
    return value   # place: an opaque id such as 'p12'


def normalize_tag(tag: str) -> str:
    """Return the canonical ``namespace:value`` form of ``tag``.

    ``'Cups'`` -> ``'label:mug'``, ``'Color: RED'`` -> ``'color:red'``, ``'kitchen'`` ->
    ``'room:kitchen'``, ``'red'`` -> ``'color:red'``, ``'tennis ball'`` ->
    ``'label:tennis_ball'``. A bare word is looked up as a room, colour, size and sound (in that
    order) and otherwise becomes a singular label.

    :raises ValueError: for an empty tag or value, an unknown namespace (the message lists the
        accepted ones), a non-numeric visual word or an unknown kind.
    """
    if not isinstance(tag, str):
        raise ValueError(f'tag {tag!r} is not a string')
    namespace, sep, raw_value = tag.partition(':')
    if not sep:
        value = _clean(tag)
        if not value:
            raise ValueError(f'empty tag {tag!r}')
        for name, _ in _BARE_ORDER:
            canonical = _lookup(name, value)
            if canonical is not None:
                return f'{name}:{canonical}'
        return f'label:{singular(value)}'
    namespace = namespace.strip().lower()
    namespace = NAMESPACE_ALIASES.get(namespace, namespace)
    if namespace not in NAMESPACES:
        raise ValueError(f'tag {tag!r} has unknown namespace {namespace!r}; accepted: '
                         f'{", ".join(NAMESPACES)}')
    value = raw_value.strip() if namespace == 'vw' else _clean(raw_value)
    if not value:
        raise ValueError(f'tag {tag!r} has an empty value')
    return f'{namespace}:{_canonical_value(namespace, value, tag)}'


def normalize_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Normalise every tag; return them sorted and without duplicates.

    :raises ValueError: as :func:`normalize_tag`, for the first bad tag.
    """
    return tuple(sorted({normalize_tag(t) for t in tags}))


def text_to_tags(text: str, known_labels: Iterable[str] = ()) -> tuple[str, ...]:
    """Return the tags a free-text query mentions, sorted and without duplicates.

    ``"Where is the red mug?"`` -> ``('color:red', 'label:mug')``. Words are matched against
    the vocabularies (multiword entries such as ``living room`` or ``tennis ball`` first, the
    longest match winning, plurals accepted) and against ``known_labels``, the labels the memory
    has seen (bare or ``label:``-prefixed). Other words, stop words and question words give no
    tag. Explicit tags in the text (``room:kitchen``) are kept when valid.
    """
    found: set[str] = set()

    def explicit(match: re.Match) -> str:
        try:
            found.add(normalize_tag(f'{match.group(1)}:{match.group(2)}'))
        except ValueError:
            logger.debug('ignoring invalid tag %r in query text', match.group(0))
        return ' '

    text = _EXPLICIT.sub(explicit, text.lower().replace("'s ", ' ').replace('\u2019s ', ' '))
    tokens = _TOKEN.findall(text.replace("'", '').replace('\u2019', ''))
    phrases, longest = _phrase_table(known_labels if isinstance(known_labels, frozenset)
                                     else frozenset(known_labels))
    i = 0
    while i < len(tokens):
        for n in range(min(longest, len(tokens) - i), 0, -1):
            words = tokens[i:i + n]
            if n == 1 and words[0] in STOP_WORDS:
                continue
            tag = phrases.get(tuple(words))
            if tag is None:
                tag = phrases.get(tuple(words[:-1]) + (_singular_word(words[-1]),))
            if tag is not None:
                found.add(tag)
                i += n
                break
        else:
            i += 1
    return tuple(sorted(found))


def word_tags(text: str, namespace: str, longest: int = 3) -> tuple[str, ...]:
    """Every ``namespace:`` tag the text's words could name outside the vocabularies: each run
    of up to ``longest`` words (stop words alone left out) joined by ``_``.

    ``"the box in the server room"`` with ``room`` -> ``room:box``, ``room:server``,
    ``room:server_room``, ... A caller keeps those the memory holds (a room its map names that no
    vocabulary lists, e.g. ``workshop``): cheap to check against the tag postings, and never a
    filter on a tag nobody carries.
    """
    text = _EXPLICIT.sub(' ', text.lower().replace("'s ", ' ').replace('\u2019s ', ' '))
    tokens = _TOKEN.findall(text.replace("'", '').replace('\u2019', ''))
    out: dict[str, None] = {}
    for i in range(len(tokens)):
        for n in range(1, min(longest, len(tokens) - i) + 1):
            words = tokens[i:i + n]
            if n == 1 and words[0] in STOP_WORDS:
                continue
            for form in ('_'.join(words), '_'.join(words[:-1] + [_singular_word(words[-1])])):
                out[f'{namespace}:{form}'] = None
    return tuple(out)


def color_name(rgb: tuple[int, int, int]) -> str:
    """Name the colour of an 8-bit RGB triple with the palette of :data:`COLOR_SYNONYMS`,
    in CIELAB (:func:`engram_ros.core.colour.colour_name`).

    :raises ValueError: unless ``rgb`` is three finite numbers in [0, 255].
    """
    return colour.colour_name(rgb)


# --------------------------------------------------------------------------------------------
# Lookup tables built from the vocabularies above.

_TABLES: dict[str, dict[str, str]] = {}
_PHRASES: dict[tuple[str, ...], str] = {}


@functools.lru_cache(maxsize=8)
def _phrase_table(known_labels: frozenset[str]) -> tuple[dict[tuple[str, ...], str], int]:
    """The phrases a query text is matched against, and the longest one's word count.

    Cached (a recall asks it every time, with the same labels until the memory learns a new
    one; building it was a tenth of a recall): keyed by the labels, cleared by
    :func:`rebuild_vocabularies`. Callers only read the table.
    """
    phrases = _PHRASES
    labels = _known_label_phrases(known_labels)
    if labels:
        phrases = {**labels, **_PHRASES}
    return phrases, max(len(p) for p in phrases)


def rebuild_vocabularies() -> None:
    """Rebuild the lookup tables; call it after changing a vocabulary constant at run time."""
    tables: dict[str, dict[str, str]] = {}
    phrases: dict[tuple[str, ...], str] = {}
    for namespace, vocab in _BARE_ORDER:
        table = {_clean(k): _clean(v) for k, v in vocab.items()}
        for canonical in set(table.values()):
            table.setdefault(canonical, canonical)
        tables[namespace] = table
        for key, canonical in table.items():
            phrases.setdefault(tuple(key.split('_')), f'{namespace}:{canonical}')
    _TABLES.clear()
    _TABLES.update(tables)
    _PHRASES.clear()
    _PHRASES.update(phrases)
    _phrase_table.cache_clear()


rebuild_vocabularies()


def _known_label_phrases(known_labels: Iterable[str]) -> dict[tuple[str, ...], str]:
    phrases: dict[tuple[str, ...], str] = {}
    for label in known_labels:
        raw = label[len('label:'):] if label.lower().startswith('label:') else label
        value = _clean(raw)
        if not value:
            continue
        tag = f'label:{_canonical_value("label", value, label)}'
        for form in (value, tag[len('label:'):]):
            words = tuple(w for w in form.split('_') if w)
            if words and not (len(words) == 1 and words[0] in STOP_WORDS):
                phrases.setdefault(words, tag)
    return phrases
