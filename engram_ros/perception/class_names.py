"""Numeric class ids of a detector (``"41"``, as YOLO nodes publish COCO classes) -> labels.

The ``class_names`` file (the perception parameter of the same name) is one of:

* text: one name per line, the first line is id 0 (darknet's ``coco.names``; the shipped
  ``config/coco_names.txt`` holds COCO's 80);
* YAML: a list of names (index = id), a mapping ``{id: name}``, or either under a top-level
  ``names:`` key (an ultralytics dataset file).

A numeric id not in the file is refused (``unknown_class``): a label the detector did not
mean is worse than none. Without a file, and for ids that are not numbers, the id is the
label as it is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import yaml

from engram_ros.perception.errors import InputRejected


class ClassNamesError(ValueError):
    """A class_names file that cannot be read or parsed."""


class ClassNames:
    """Labels by numeric class id; empty: ids are used as they are."""

    def __init__(self, names: Mapping[int, str] | None = None, source: str = '') -> None:
        self.names = dict(names or {})
        self.source = source

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def load(cls, path: str) -> ClassNames:
        """Read ``path`` (``''``: no file, ids are labels).

        :raises ClassNamesError: when the file is missing, unreadable, empty or malformed.
        """
        if not path:
            return cls()
        file = Path(os.path.expanduser(path))
        try:
            text = file.read_text(encoding='utf-8')
        except (OSError, UnicodeDecodeError) as exc:
            raise ClassNamesError(f'class_names file {path!r} cannot be read: {exc}') from None
        if file.suffix.lower() in ('.yaml', '.yml'):
            names = _from_yaml(text, path)
        else:
            names = _from_lines(text, path)
        if not names:
            raise ClassNamesError(f'class_names file {path!r} holds no name')
        return cls(names, path)

    def label(self, class_id: str) -> str:
        """The label of ``class_id``.

        :raises InputRejected: ``unknown_class`` for a numeric id the file does not name.
        """
        key = class_id.strip()
        if not self.names or not key.isdigit():
            return class_id
        try:
            return self.names[int(key)]
        except KeyError:
            raise InputRejected('unknown_class', f'class id {key} is not in class_names '
                                                 f'{self.source!r} ({len(self.names)} '
                                                 'names)') from None


def _from_lines(text: str, path: str) -> dict[int, str]:
    lines = [line.strip() for line in text.strip().splitlines()]
    for number, name in enumerate(lines, 1):
        if not name:
            raise ClassNamesError(f'class_names file {path!r}: line {number} is empty (ids '
                                  'are line numbers from 0, so a gap would shift them)')
    return dict(enumerate(lines))


def _from_yaml(text: str, path: str) -> dict[int, str]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ClassNamesError(f'class_names file {path!r} is not YAML: {exc}') from None
    if isinstance(data, Mapping) and 'names' in data:
        data = data['names']
    if isinstance(data, list):
        data = dict(enumerate(data))
    if not isinstance(data, Mapping):
        raise ClassNamesError(f'class_names file {path!r}: expected a list of names or a '
                              'mapping id: name (optionally under names:)')
    names: dict[int, str] = {}
    for key, name in data.items():
        if isinstance(key, str) and key.strip().isdigit():
            key = int(key)
        if isinstance(key, bool) or not isinstance(key, int) or key < 0 \
                or not isinstance(name, str) or not name.strip():
            raise ClassNamesError(f'class_names file {path!r}: entry {key!r}: {name!r} is '
                                  'not a non-negative id and a name')
        names[key] = name.strip()
    return names
