"""The one record codec: how every field of an :class:`Engram` is written down and read back.

An engram leaves the process in three shapes: a JSON record (``engram export``/``import``), an
SQLite row (:mod:`engram_ros.core.storage`) and a ROS message. Written three ways, they drifted
(the export lost the validity and anchor fields). Here each field has one type that knows both
its JSON value and its SQLite column value, and :data:`FIELDS` is read off the dataclass, so a
new field without a type here fails the first time any engram is encoded.

A record is a dict of JSON values: arrays as lists of floats, tuples as lists of strings, ``None``
kept. Records written before the validity and anchor fields existed still decode; missing fields
take the dataclass defaults, and keys that are not fields (``evidence_files``) are ignored.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any
from typing import Callable
from typing import Sequence

import numpy as np

from engram_ros.core.model.engram import Engram

#: Every field of :class:`Engram`, in dataclass order: the keys of a record.
FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Engram))

#: Fields a record must carry (the dataclass gives them no default).
REQUIRED: frozenset[str] = frozenset(
    f.name for f in dataclasses.fields(Engram)
    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)


class CodecError(ValueError):
    """A record cannot be decoded; :attr:`field` names the field at fault."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f'{field}: {problem}')
        self.field = field


class FieldType:
    """How one field is written as JSON and as an SQLite column, and read back.

    ``from_json`` checks its input (records come from files). ``to_column`` raises
    ``ValueError`` for values no column can hold (an array of the wrong size); ``from_column``
    trusts what the storage wrote and is ``None`` when the stored value is used as it is.
    Column encoders are builtins where one fits: a put encodes every field of thousands.
    """

    def to_json(self, value: Any) -> Any:
        raise NotImplementedError

    def from_json(self, value: Any) -> Any:
        raise NotImplementedError

    def to_column(self, value: Any) -> Any:
        raise NotImplementedError

    from_column: Callable[[Any], Any] | None = None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class IntType(FieldType):
    """An integer (ids, counts): a JSON number, an SQLite INTEGER."""

    def to_json(self, value: Any) -> int:
        return int(value)

    def from_json(self, value: Any) -> int:
        if not _is_number(value) or not float(value).is_integer():
            raise TypeError(f'{value!r} is not an integer')
        return int(value)

    to_column = int     # and read as stored: SQLite hands INTEGER columns back as int


class FloatType(FieldType):
    """A time, confidence or score: a JSON number, an SQLite REAL (the storage refuses NaN,
    which SQLite would store as NULL)."""

    def to_json(self, value: Any) -> float:
        return float(value)

    def from_json(self, value: Any) -> float:
        if not _is_number(value):
            raise TypeError(f'{value!r} is not a number')
        return float(value)

    to_column = float


class OptionalFloatType(FloatType):
    """A time that may be absent (``valid_to``): ``null``/NULL for ``None``."""

    def to_json(self, value: Any) -> float | None:
        return None if value is None else float(value)

    def from_json(self, value: Any) -> float | None:
        return None if value is None else super().from_json(value)

    def to_column(self, value: Any) -> float | None:
        return None if value is None else float(value)


class StrType(FieldType):
    """A string: a JSON string, an SQLite TEXT."""

    def to_json(self, value: Any) -> str:
        return str(value)

    def from_json(self, value: Any) -> str:
        if not isinstance(value, str):
            raise TypeError(f'{value!r} is not a string')
        return value

    to_column = str


class BoolType(FieldType):
    """A flag: a JSON boolean, an SQLite INTEGER 0 or 1."""

    def to_json(self, value: Any) -> bool:
        return bool(value)

    def from_json(self, value: Any) -> bool:
        if value not in (True, False) or not isinstance(value, (bool, int)):
            raise TypeError(f'{value!r} is not a boolean')
        return bool(value)

    def to_column(self, value: Any) -> int:
        return int(bool(value))

    from_column = bool


class ArrayType(FieldType):
    """A flat array: a JSON list of floats, an SQLite BLOB of little-endian values.

    :param dtype: the little-endian dtype stored (``'<f8'``, or ``'<f4'`` for the vector).
    :param size: the number of values required; ``None`` for any non-zero number.
    """

    def __init__(self, dtype: str, size: int | None) -> None:
        self.dtype = np.dtype(dtype)
        self.native = self.dtype.newbyteorder('=')
        self.size = size

    def _checked(self, arr: np.ndarray) -> np.ndarray:
        if self.size is None and arr.size == 0:
            raise ValueError('is empty')
        if self.size is not None and arr.size != self.size:
            raise ValueError(f'has {arr.size} values; {self.size} required')
        return arr

    def to_json(self, value: Any) -> list[float]:
        return np.asarray(value, dtype=self.native).reshape(-1).tolist()

    def from_json(self, value: Any) -> np.ndarray:
        if not isinstance(value, (list, tuple)) \
                or not all(_is_number(v) for v in _leaves(value)):
            raise TypeError('is not a list of numbers')
        return self._checked(np.asarray(value, dtype=self.native).reshape(-1))

    def to_column(self, value: Any) -> bytes:
        # No reshape: the bytes of any shape are its values in C order.
        return self._checked(np.asarray(value, dtype=self.dtype)).tobytes()

    def from_column(self, blob: bytes) -> np.ndarray:
        return np.frombuffer(blob, dtype=self.dtype).astype(self.native)


def _leaves(values: Sequence) -> list:
    """The numbers of a list, nested lists (a 6x6 covariance) flattened."""
    out = []
    for v in values:
        out.extend(_leaves(v) if isinstance(v, (list, tuple)) else (v,))
    return out


class StringsType(FieldType):
    """A tuple of strings (tags, evidence URIs): a JSON list; in SQLite, that list as TEXT.

    :param cached: decode through a cache returning one shared tuple per distinct text; for
        tags, which repeat across thousands of engrams (evidence URIs do not).
    """

    def __init__(self, cached: bool) -> None:
        self.cached = cached

    def to_json(self, value: Any) -> list[str]:
        return [str(v) for v in value]

    def from_json(self, value: Any) -> tuple[str, ...]:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise TypeError('is not a list of strings')
        return tuple(value)

    def to_column(self, value: Sequence[str]) -> str:
        if not value:
            return '[]'
        if type(value) is tuple and all(type(v) is str for v in value):
            return _json_tuple(value)      # only exact str: 1 == True == 1.0 as cache keys
        return json.dumps([str(v) for v in value])

    def from_column(self, text: str) -> tuple[str, ...]:
        if text == '[]':
            return ()
        return _str_tuple(text) if self.cached else tuple(json.loads(text))


# Tag lists repeat a lot (every engram of a label carries the same few tags): a consolidation
# pass re-encodes and re-decodes thousands of them. Cached, both directions are a dict lookup.
@functools.lru_cache(maxsize=4096)
def _json_tuple(values: tuple[str, ...]) -> str:
    return json.dumps(list(values))


@functools.lru_cache(maxsize=4096)
def _str_tuple(text: str) -> tuple[str, ...]:
    """A stored JSON string list as a tuple (immutable, so one tuple can serve every row)."""
    return tuple(json.loads(text))


_INT = IntType()
_FLOAT = FloatType()
_STR = StrType()

#: The type of every field. Keyed by name; :data:`FIELDS` gives the order.
TYPES: dict[str, FieldType] = {
    'id': _INT, 'kind': _STR, 'frame_id': _STR,
    'position': ArrayType('<f8', 3), 'vector': ArrayType('<f4', None),
    'first_seen': _FLOAT, 'last_seen': _FLOAT,
    'tags': StringsType(cached=True), 'label': _STR,
    'orientation': ArrayType('<f8', 4),       # x, y, z, w
    'covariance': ArrayType('<f8', 36),       # row-major 6x6
    'modality': _STR, 'confidence': _FLOAT, 'evidence': StringsType(cached=False),
    'observation_count': _INT, 'score': _FLOAT, 'tier': _STR, 'pinned': BoolType(),
    'last_access': _FLOAT, 'recall_count': _INT,
    'valid_from': _FLOAT, 'valid_to': OptionalFloatType(),
    'successor_id': _INT, 'anchor_id': _INT, 'keyframe_id': _STR,
}


def to_record(engram: Engram) -> dict[str, Any]:
    """Every field of ``engram`` as JSON-safe values, keyed by field name.

    :raises KeyError: for a field :data:`TYPES` does not know (a field added without a type).
    """
    return {name: TYPES[name].to_json(getattr(engram, name)) for name in FIELDS}


def from_record(record: dict[str, Any]) -> Engram:
    """The engram a record describes (the inverse of :func:`to_record`).

    Missing optional fields take the dataclass defaults; keys that are no field are ignored.

    :raises CodecError: naming the field that is missing or malformed.
    """
    if not isinstance(record, dict):
        raise CodecError('record', f'is a JSON object, not {type(record).__name__}')
    values = {}
    for name in FIELDS:
        if name not in record:
            if name in REQUIRED:
                raise CodecError(name, 'missing')
            continue
        try:
            values[name] = TYPES[name].from_json(record[name])
        except (TypeError, ValueError) as exc:
            raise CodecError(name, str(exc)) from None
    return Engram(**values)
