"""Column scans of the SQLite storage: the columns a big pass needs, no record decoded.

Opening a million-engram store, budget eviction and the index rebuild after a crash read a
few columns of every row; decoding every record for them cost most of their time (see
``docs/benchmarks/scale.md``). Each scan here reads keyset pages (``id >= ? ORDER BY id
LIMIT ?``), each in a short read transaction of its own, so a scan never holds one open.
:class:`ColumnScans` is mixed into :class:`~engram_ros.core.storage.sqlite.SQLiteStorage`,
whose ``_read()`` it uses.
"""

from __future__ import annotations

import json
from typing import Iterator
from typing import Sequence

import numpy as np

from engram_ros.core.forgetting import RetentionRows
from engram_ros.core.model.engram import kind_code
from engram_ros.core.model.engram import KINDS
from engram_ros.core.model.engram import TIER_LONG
from engram_ros.core.model.engram import TIER_SHORT
from engram_ros.core.storage.base import chunks
from engram_ros.core.storage.base import INT64_MAX
from engram_ros.core.storage.base import INT64_MIN


class ColumnScans:
    """The scans of :class:`~engram_ros.core.storage.base.Storage` that SQLite answers from
    columns (``state_scan``, ``iter_retention``, ``iter_index_rows``, ``ids_with_tags``)."""

    def _pages(self, select: str, params: tuple, batch_size: int) -> Iterator[list]:
        """The rows of ``select`` (whose first column is ``id``; it may not have a WHERE) in
        increasing id order, ``batch_size`` at a time: keyset pages, each read in a short read
        transaction of its own, so a scan over a million rows never holds one open."""
        if batch_size < 1:
            raise ValueError(f'batch_size={batch_size} must be >= 1')
        start = INT64_MIN
        while True:
            with self._read() as conn:
                rows = conn.execute(f'{select} WHERE id >= ? ORDER BY id LIMIT ?',
                                    (*params, start, batch_size)).fetchall()
            if rows:
                yield rows
            if len(rows) < batch_size or rows[-1][0] == INT64_MAX:
                return
            start = rows[-1][0] + 1

    def state_scan(self) -> tuple[list[int], set[str]]:
        """See :meth:`Storage.state_scan`: two column scans in SQLite, no record decoded."""
        with self._read() as conn:
            ids = [int(r[0]) for r in conn.execute(
                'SELECT id FROM engrams WHERE tier = ? OR pinned != 0 OR valid_to IS NOT NULL '
                "OR valid_from > first_seen OR anchor_id != 0 OR keyframe_id != '' ORDER BY id",
                (TIER_SHORT,))]
            labels = {str(r[0]) for r in conn.execute(
                "SELECT DISTINCT label FROM engrams WHERE label != ''")}
        return ids, labels

    def iter_retention(self, batch_size: int = 65536) -> Iterator[RetentionRows]:
        """See :meth:`Storage.iter_retention`: eight columns per row, no record decoded."""
        for rows in self._pages(
                'SELECT id, score, observation_count, recall_count, last_seen, last_access, '
                'tier = ?, pinned != 0 FROM engrams', (TIER_LONG,), batch_size):
            cols = list(zip(*rows))
            yield RetentionRows(
                ids=np.array(cols[0], dtype=np.int64),
                score=np.array(cols[1], dtype=np.float64),
                observations=np.array(cols[2], dtype=np.int64),
                recalls=np.array(cols[3], dtype=np.int64),
                last_seen=np.array(cols[4], dtype=np.float64),
                last_access=np.array(cols[5], dtype=np.float64),
                long_term=np.array(cols[6], dtype=bool),
                pinned=np.array(cols[7], dtype=bool))

    def iter_index_rows(self, batch_size: int = 10000) -> Iterator[dict]:
        """See :meth:`Storage.iter_index_rows`: nine columns per row, the blobs joined and
        read as one array per batch, no record decoded."""
        codes = {kind: kind_code(kind) for kind in KINDS}
        for rows in self._pages(
                'SELECT id, kind, position, vector, first_seen, last_seen, score, '
                'observation_count, tags FROM engrams', (), batch_size):
            cols = list(zip(*rows))
            vectors = np.frombuffer(b''.join(cols[3]), dtype='<f4')
            yield {'ids': np.array(cols[0], dtype=np.int64),
                   'kinds': np.array([codes[k] for k in cols[1]], dtype=np.int64),
                   'positions': np.frombuffer(b''.join(cols[2]), dtype='<f8')
                   .astype(np.float64).reshape(-1, 3),
                   'vectors': vectors.astype(np.float32).reshape(len(rows), -1),
                   'first_seen': np.array(cols[4], dtype=np.float64),
                   'last_seen': np.array(cols[5], dtype=np.float64),
                   'scores': np.array(cols[6], dtype=np.float64),
                   'counts': np.array(cols[7], dtype=np.int64),
                   'tags': [() if t == '[]' else tuple(json.loads(t)) for t in cols[8]]}

    def ids_with_tags(self, tags: Sequence[str]) -> set[int]:
        """See :meth:`Storage.ids_with_tags` (the tag table's index answers)."""
        wanted = sorted(set(tags))
        out: set[int] = set()
        with self._read() as conn:
            for chunk in chunks(wanted):
                marks = ', '.join('?' * len(chunk))
                out.update(int(r[0]) for r in conn.execute(
                    f'SELECT DISTINCT engram_id FROM engram_tags WHERE tag IN ({marks})', chunk))
        return out
