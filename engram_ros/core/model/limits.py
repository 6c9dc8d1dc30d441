"""Size limits on what the memory accepts: one name each, checked by the core, used by the
message conversions.

A memory that runs for months on a robot must not be filled by one careless or hostile
producer: a 1 MiB label or a 5,000-tag observation would be stored, indexed and copied into
every answer that contains it. Observations past a limit are refused (counted per reason by the
memory node); requests past one get the closest ``INVALID_*`` status, with a message that names
the limit. Sizes of strings are UTF-8 bytes, as they travel on the wire.
"""

from __future__ import annotations

from typing import Iterable

#: Longest label of an observation or an edit [UTF-8 bytes].
MAX_LABEL_BYTES = 256
#: Most tags one observation may carry.
MAX_TAGS_PER_OBSERVATION = 64
#: Longest tag, in an observation or a request [UTF-8 bytes].
MAX_TAG_BYTES = 256
#: Longest free text of a recall [UTF-8 bytes].
MAX_QUERY_TEXT_BYTES = 1024
#: Most ids, tags or kinds one request may list (each list, and the tag lists together).
MAX_REQUEST_ITEMS = 10_000
#: Largest engram id: ids are SQLite INTEGERs (int64); a larger uint64 names no engram.
MAX_ENGRAM_ID = 2 ** 63 - 1


def utf8_len(text: str) -> int:
    """Bytes of ``text`` in UTF-8 (what a message carries)."""
    return len(text.encode('utf-8', errors='surrogatepass'))


def oversized_tag(tags: Iterable[str]) -> str | None:
    """The first tag longer than :data:`MAX_TAG_BYTES`, shortened for a message; None when
    every tag fits."""
    for tag in tags:
        if utf8_len(tag) > MAX_TAG_BYTES:
            return f'{tag[:40]}... ({utf8_len(tag)} bytes)'
    return None


__all__ = ['MAX_ENGRAM_ID', 'MAX_LABEL_BYTES', 'MAX_QUERY_TEXT_BYTES', 'MAX_REQUEST_ITEMS',
           'MAX_TAGS_PER_OBSERVATION', 'MAX_TAG_BYTES', 'oversized_tag', 'utf8_len']
